package downsample

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/util/kahansum"

	"github.com/vigil-tsdb/vigil/model"
)

const (
	minute = int64(60_000)
	hour   = 60 * minute
)

var (
	stale = math.Float64frombits(value.StaleNaN)
	nan   = math.NaN()
)

// sameFloat is equality of bit patterns: NaN equals NaN, -0 differs from 0.
func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

func sameWindow(a, b Window) bool {
	for c := ColumnCount; c < numColumns; c++ {
		if !sameFloat(a.value(c), b.value(c)) {
			return false
		}
	}
	return a.End == b.End
}

func requireWindows(t *testing.T, got, want []Window) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d windows, want %d:\ngot  %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range got {
		if !sameWindow(got[i], want[i]) {
			t.Fatalf("window %d:\ngot  %+v\nwant %+v", i, got[i], want[i])
		}
	}
}

func samples(tv ...float64) []model.Sample {
	var out []model.Sample
	for i := 0; i < len(tv); i += 2 {
		out = append(out, model.Sample{T: int64(tv[i]), V: tv[i+1]})
	}
	return out
}

func TestDownsample(t *testing.T) {
	m := float64(minute)
	tests := []struct {
		name    string
		samples []model.Sample
		want    []Window
	}{
		{name: "empty"},
		{name: "all stale", samples: samples(1, stale, 70_000, stale)},
		{
			name:    "one sample",
			samples: samples(30_000, 5),
			want:    []Window{{End: minute, Count: 1, Sum: 5, Min: 5, Max: 5, FirstT: 30_000, FirstV: 5, LastT: 30_000, LastV: 5}},
		},
		{
			name:    "samples exactly at window ends",
			samples: samples(0, 1, m, 2, m+1, 3, 2*m, 4, 3*m, 5),
			want: []Window{
				{End: 0, Count: 1, Sum: 1, Min: 1, Max: 1, FirstT: 0, FirstV: 1, LastT: 0, LastV: 1},
				{End: minute, Count: 1, Sum: 2, Min: 2, Max: 2, FirstT: minute, FirstV: 2, LastT: minute, LastV: 2},
				{End: 2 * minute, Count: 2, Sum: 7, Min: 3, Max: 4, FirstT: minute + 1, FirstV: 3, LastT: 2 * minute, LastV: 4, Inc: 1},
				{End: 3 * minute, Count: 1, Sum: 5, Min: 5, Max: 5, FirstT: 3 * minute, FirstV: 5, LastT: 3 * minute, LastV: 5},
			},
		},
		{
			name:    "negative times",
			samples: samples(-m-1, 1, -m, 2, -1, 3),
			want: []Window{
				{End: -minute, Count: 2, Sum: 3, Min: 1, Max: 2, FirstT: -minute - 1, FirstV: 1, LastT: -minute, LastV: 2, Inc: 1},
				{End: 0, Count: 1, Sum: 3, Min: 3, Max: 3, FirstT: -1, FirstV: 3, LastT: -1, LastV: 3},
			},
		},
		{
			name:    "reset inside a window",
			samples: samples(10_000, 5, 20_000, 8, 30_000, 2, 40_000, 3),
			want:    []Window{{End: minute, Count: 4, Sum: 18, Min: 2, Max: 8, FirstT: 10_000, FirstV: 5, LastT: 40_000, LastV: 3, Inc: 3 + 2 + 1}},
		},
		{
			name:    "reset at a window boundary",
			samples: samples(30_000, 5, m, 8, m+1, 2, 90_000, 3),
			want: []Window{
				{End: minute, Count: 2, Sum: 13, Min: 5, Max: 8, FirstT: 30_000, FirstV: 5, LastT: minute, LastV: 8, Inc: 3},
				{End: 2 * minute, Count: 2, Sum: 5, Min: 2, Max: 3, FirstT: minute + 1, FirstV: 2, LastT: 90_000, LastV: 3, Inc: 1},
			},
		},
		{
			name:    "duplicate timestamps keep the first",
			samples: samples(10_000, 1, 10_000, 7, 20_000, 2, 20_000, 9, 20_000, stale),
			want:    []Window{{End: minute, Count: 2, Sum: 3, Min: 1, Max: 2, FirstT: 10_000, FirstV: 1, LastT: 20_000, LastV: 2, Inc: 1}},
		},
		{
			name:    "stale marker first at a timestamp hides a later value there",
			samples: samples(10_000, 1, 20_000, stale, 20_000, 9, 30_000, 3),
			want:    []Window{{End: minute, Count: 2, Sum: 4, Min: 1, Max: 3, FirstT: 10_000, FirstV: 1, LastT: 30_000, LastV: 3, Inc: 2}},
		},
		{
			name:    "stale markers are skipped",
			samples: samples(10_000, 4, 20_000, stale, 30_000, 1, 70_000, stale, 130_000, 6),
			want: []Window{
				{End: minute, Count: 2, Sum: 5, Min: 1, Max: 4, FirstT: 10_000, FirstV: 4, LastT: 30_000, LastV: 1, Inc: 1},
				{End: 3 * minute, Count: 1, Sum: 6, Min: 6, Max: 6, FirstT: 130_000, FirstV: 6, LastT: 130_000, LastV: 6},
			},
		},
		{
			name:    "NaN values: min and max skip NaN unless all are NaN",
			samples: samples(10_000, nan, 20_000, 3, 30_000, nan, 40_000, 1, 70_000, nan, 80_000, nan),
			want: []Window{
				{End: minute, Count: 4, Sum: nan, Min: 1, Max: 3, FirstT: 10_000, FirstV: nan, LastT: 40_000, LastV: 1, Inc: nan},
				{End: 2 * minute, Count: 2, Sum: nan, Min: nan, Max: nan, FirstT: 70_000, FirstV: nan, LastT: 80_000, LastV: nan, Inc: nan},
			},
		},
		{
			name:    "signed zeros: the first of equal extremes wins, as in PromQL",
			samples: samples(10_000, math.Copysign(0, -1), 20_000, 0),
			want:    []Window{{End: minute, Count: 2, Sum: 0, Min: math.Copysign(0, -1), Max: math.Copysign(0, -1), FirstT: 10_000, FirstV: math.Copysign(0, -1), LastT: 20_000, LastV: 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireWindows(t, Downsample(tt.samples, minute), tt.want)
			// Min and Max must be what PromQL computes over the window.
			raw := promView(tt.samples)
			for _, w := range tt.want {
				in := rangeOf(raw, w.End-minute, w.End)
				if !sameFloat(w.Max, promMax(in)) || !sameFloat(w.Min, promMin(in)) || !sameFloat(w.Sum, promSum(in)) {
					t.Errorf("window %d: min/max/sum %v/%v/%v, PromQL says %v/%v/%v", w.End, w.Min, w.Max, w.Sum, promMin(in), promMax(in), promSum(in))
				}
			}
		})
	}
}

func TestCombine(t *testing.T) {
	tests := []struct {
		name string
		fine []Window
		want []Window
	}{
		{name: "empty"},
		{
			name: "reset between windows",
			fine: []Window{
				{End: minute, Count: 2, Sum: 13, Min: 5, Max: 8, FirstT: 30_000, FirstV: 5, LastT: minute, LastV: 8, Inc: 3},
				{End: 2 * minute, Count: 2, Sum: 5, Min: 2, Max: 3, FirstT: minute + 1, FirstV: 2, LastT: 90_000, LastV: 3, Inc: 1},
				{End: hour + minute, Count: 1, Sum: 9, Min: 9, Max: 9, FirstT: hour + 1, FirstV: 9, LastT: hour + 1, LastV: 9},
			},
			want: []Window{
				{End: hour, Count: 4, Sum: 18, Min: 2, Max: 8, FirstT: 30_000, FirstV: 5, LastT: 90_000, LastV: 3, Inc: 3 + 2 + 1},
				{End: 2 * hour, Count: 1, Sum: 9, Min: 9, Max: 9, FirstT: hour + 1, FirstV: 9, LastT: hour + 1, LastV: 9},
			},
		},
		{
			name: "min and max start from the first window's, not its first value",
			fine: []Window{
				{End: minute, Count: 2, Sum: 3, Min: 1, Max: 2, FirstT: 1, FirstV: 2, LastT: 2, LastV: 1, Inc: 1},
				{End: 2 * minute, Count: 1, Sum: nan, Min: nan, Max: nan, FirstT: minute + 1, FirstV: nan, LastT: minute + 1, LastV: nan},
			},
			want: []Window{{End: hour, Count: 3, Sum: nan, Min: 1, Max: 2, FirstT: 1, FirstV: 2, LastT: minute + 1, LastV: nan, Inc: nan}},
		},
		{
			name: "windows not after the previous kept one are dropped",
			fine: []Window{
				{End: minute, Count: 1, Sum: 1, Min: 1, Max: 1, FirstT: 1, FirstV: 1, LastT: 1, LastV: 1},
				{End: minute, Count: 1, Sum: 5, Min: 5, Max: 5, FirstT: 2, FirstV: 5, LastT: 2, LastV: 5},
				{End: minute / 2, Count: 1, Sum: 7, Min: 7, Max: 7, FirstT: 3, FirstV: 7, LastT: 3, LastV: 7},
			},
			want: []Window{{End: hour, Count: 1, Sum: 1, Min: 1, Max: 1, FirstT: 1, FirstV: 1, LastT: 1, LastV: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireWindows(t, Combine(tt.fine, hour), tt.want)
		})
	}
}

func TestCounterView(t *testing.T) {
	tests := []struct {
		name    string
		samples []model.Sample
		want    []model.Sample
	}{
		{name: "empty"},
		{name: "one sample, one point", samples: samples(1000, 7), want: samples(1000, 7)},
		{
			name:    "resets inside and between windows",
			samples: samples(10_000, 5, 20_000, 8, 30_000, 2, 70_000, 1, 80_000, 4, 130_000, 6),
			// window 1: 5→8→2, inc 3+2 with a reset; one point
			// (5+5-2 = 8) then the drop to 2 gives it;
			// window 2: 1→4, inc 3, no reset inside (the drop 2→1 is
			// between windows, seen from the raw values);
			// window 3: one sample.
			want: samples(10_000, 5, 10_001, 8, 30_000, 2, 70_000, 1, 80_000, 4, 130_000, 6),
		},
		{
			name:    "windows at a gap are spread",
			samples: samples(10_000, 1, 20_000, 2, 30_000, 4, 40_000, 7, 190_000, 10, 200_000, 11, 230_000, 20),
			// window 1 (the series' first): 4 samples, 4 points evenly
			// from 1 to 7; window 2 after a gap of two windows: 3 points.
			want: samples(10_000, 1, 20_000, 3, 30_000, 5, 40_000, 7, 190_000, 10, 210_000, 15, 230_000, 20),
		},
		{
			name:    "a window between two others is not spread; one with a reset keeps it",
			samples: samples(10_000, 1, 70_000, 2, 80_000, 3, 90_000, 5, 130_000, 6, 140_000, 9, 150_000, 1, 160_000, 2),
			// the last window, 6→9→1→2 (inc 5), before the gap at the
			// end: its reset point 9 moves to the second slot, the third
			// stays at 9, then the drop to 2 (3 + 0 + 2).
			want: samples(10_000, 1, 70_000, 2, 90_000, 5, 130_000, 6, 140_000, 9, 150_000, 9, 160_000, 2),
		},
		{
			name:    "two reset points, spread",
			samples: samples(0, 5, 10_000, 1, 20_000, 0, 30_000, 0, 40_000, 1, 50_000, 3),
			// 5→1 (reset, +1), 1→0 (reset, +0), then up to 3: inc 4,
			// which the ends show as 3: the reset points 1 and 0 (their
			// resets add 1 + 0), then the rise to 3 over the other slots.
			want: samples(0, 5, 10_000, 1, 20_000, 0, 30_000, 1, 40_000, 2, 50_000, 3),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CounterView(Downsample(tt.samples, minute), minute)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestColumns(t *testing.T) {
	w := Window{End: 60, Count: 1, Sum: 2, Min: 3, Max: 4, FirstT: 5, FirstV: 6, LastT: 7, LastV: 8, Inc: 9}
	for c := ColumnCount; c < numColumns; c++ {
		got := ColumnSamples([]Window{w}, c)
		if len(got) != 1 || got[0].T != 60 || got[0].V != float64(c)+1 {
			t.Errorf("column %s: %v", c, got)
		}
		if p, err := ParseColumn(c.String()); err != nil || p != c {
			t.Errorf("ParseColumn(%q) = %v, %v", c.String(), p, err)
		}
	}
	if got := ColumnSamples([]Window{w}, numColumns); got != nil {
		t.Errorf("unknown column: %v", got)
	}
	if s := Column(-1).String(); s != "Column(-1)" {
		t.Errorf("Column(-1).String() = %q", s)
	}
	if _, err := ParseColumn("avg"); err == nil {
		t.Error("ParseColumn(avg): no error")
	}
}

// PromQL's view of raw samples: duplicates (keep the first) and staleness
// markers removed.
func promView(ss []model.Sample) []model.Sample {
	var out []model.Sample
	for i, s := range ss {
		if i > 0 && s.T <= ss[i-1].T {
			continue
		}
		if !value.IsStaleNaN(s.V) {
			out = append(out, s)
		}
	}
	return out
}

// rangeOf returns the samples in (from, to] of sorted ss.
func rangeOf(ss []model.Sample, from, to int64) []model.Sample {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].T > from })
	j := sort.Search(len(ss), func(i int) bool { return ss[i].T > to })
	return ss[i:j]
}

// promMax, promMin and promSum are max/min/sum_over_time of
// promql/functions.go (Prometheus v0.315.0).
func promMax(ss []model.Sample) float64 {
	return promCompare(ss, func(cur, m float64) bool { return cur > m || math.IsNaN(m) })
}

func promMin(ss []model.Sample) float64 {
	return promCompare(ss, func(cur, m float64) bool { return cur < m || math.IsNaN(m) })
}

func promCompare(ss []model.Sample, replace func(cur, m float64) bool) float64 {
	m := ss[0].V
	for _, s := range ss {
		if replace(s.V, m) {
			m = s.V
		}
	}
	return m
}

func promSum(ss []model.Sample) float64 {
	var sum, c float64
	for _, s := range ss {
		sum, c = kahansum.Inc(s.V, sum, c)
	}
	if math.IsInf(sum, 0) {
		return sum
	}
	return sum + c
}

// rawIncrease is the reset-corrected increase over ss as PromQL's
// extrapolatedRate computes it before extrapolation.
func rawIncrease(ss []model.Sample) float64 {
	r := ss[len(ss)-1].V - ss[0].V
	for i := 1; i < len(ss); i++ {
		if ss[i].V < ss[i-1].V {
			r += ss[i-1].V
		}
	}
	return r
}

func closeTo(got, want, scale float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(scale, 1)
}

// series kinds for the property tests.
type kind struct {
	name string
	// exact: values are small multiples of 1/64, so every sum is exact.
	exact   bool
	counter bool
	next    func(r *rand.Rand, prev float64) float64
}

var kinds = []kind{
	{name: "integer counter", exact: true, counter: true, next: func(r *rand.Rand, prev float64) float64 {
		if r.IntN(500) == 0 {
			return float64(r.IntN(10)) // reset
		}
		return prev + float64(r.IntN(100))
	}},
	{name: "float counter", counter: true, next: func(r *rand.Rand, prev float64) float64 {
		if r.IntN(300) == 0 {
			return r.Float64()
		}
		return prev + r.Float64()*0.3 // e.g. CPU seconds
	}},
	{name: "dyadic gauge with NaN", exact: true, next: func(r *rand.Rand, _ float64) float64 {
		if r.IntN(50) == 0 {
			return nan
		}
		return float64(r.IntN(1<<20)-1<<19) / 64
	}},
	{name: "float gauge with NaN", next: func(r *rand.Rand, prev float64) float64 {
		if r.IntN(50) == 0 {
			return nan
		}
		if math.IsNaN(prev) {
			prev = 0
		}
		return prev + r.NormFloat64()*10
	}},
}

// randomSeries is a 30 s scrape over days, with jitter, gaps, duplicates
// and staleness markers.
func randomSeries(r *rand.Rand, k kind, days int) []model.Sample {
	var (
		out  []model.Sample
		v    float64
		t    = int64(r.IntN(int(hour))) - hour // start may be negative
		endT = t + int64(days)*24*hour
	)
	for t < endT {
		switch x := r.IntN(1000); {
		case x == 0:
			t += int64(r.IntN(int(3 * hour))) // gap
		case x < 5:
			out = append(out, model.Sample{T: t, V: stale})
		case x < 10 && len(out) > 0:
			out = append(out, model.Sample{T: out[len(out)-1].T, V: k.next(r, v)}) // duplicate
		}
		v = k.next(r, v)
		out = append(out, model.Sample{T: t, V: v})
		t += 30_000 + int64(r.IntN(2001)) - 1000
	}
	return out
}

// TestPropertyRangesEqualRaw: for T and r multiples of W, max/min/sum/count
// over raw equal max/min/sum/sum-of-count over the columns, for 1 m windows
// and for 1 h windows combined from them.
func TestPropertyRangesEqualRaw(t *testing.T) {
	for ki, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(ki)))
			raw := randomSeries(r, k, 4)
			view := promView(raw)
			m := Downsample(raw, minute)
			tiers := []struct {
				width int64
				ws    []Window
			}{{minute, m}, {hour, Combine(m, hour)}}
			for _, tier := range tiers {
				cols := map[Column][]model.Sample{}
				for _, c := range []Column{ColumnCount, ColumnSum, ColumnMin, ColumnMax} {
					cols[c] = ColumnSamples(tier.ws, c)
				}
				for range 2000 {
					T := WindowEnd(view[0].T, tier.width) + int64(r.IntN(int(4*24*hour/tier.width)+2))*tier.width
					rng := int64(1+r.IntN(180)) * tier.width
					in := rangeOf(view, T-rng, T)
					if len(in) == 0 {
						if got := rangeOf(cols[ColumnCount], T-rng, T); len(got) != 0 {
							t.Fatalf("T=%d r=%d: no raw samples but %d windows", T, rng, len(got))
						}
						continue
					}
					at := func(c Column) []model.Sample { return rangeOf(cols[c], T-rng, T) }
					if got, want := promSum(at(ColumnCount)), float64(len(in)); got != want {
						t.Fatalf("W=%d T=%d r=%d: count %v, raw %v", tier.width, T, rng, got, want)
					}
					if got, want := promMax(at(ColumnMax)), promMax(in); !sameFloat(got, want) {
						t.Fatalf("W=%d T=%d r=%d: max %v, raw %v", tier.width, T, rng, got, want)
					}
					if got, want := promMin(at(ColumnMin)), promMin(in); !sameFloat(got, want) {
						t.Fatalf("W=%d T=%d r=%d: min %v, raw %v", tier.width, T, rng, got, want)
					}
					got, want := promSum(at(ColumnSum)), promSum(in)
					if k.exact && !sameFloat(got, want) || !k.exact && !math.IsNaN(want) && !closeTo(got, want, absSum(in)) {
						t.Fatalf("W=%d T=%d r=%d: sum %v, raw %v", tier.width, T, rng, got, want)
					}
				}
			}
		})
	}
}

func absSum(ss []model.Sample) float64 {
	var s float64
	for _, x := range ss {
		s += math.Abs(x.V)
	}
	return s
}

// TestPropertyCombine: Combine(Downsample(x, 1m), 1h) = Downsample(x, 1h),
// exactly except Inc (and Sum for values whose sums round).
func TestPropertyCombine(t *testing.T) {
	for ki, k := range kinds {
		for seed := range uint64(3) {
			t.Run(fmt.Sprintf("%s/%d", k.name, seed), func(t *testing.T) {
				raw := randomSeries(rand.New(rand.NewPCG(seed, uint64(ki))), k, 3)
				got, want := Combine(Downsample(raw, minute), hour), Downsample(raw, hour)
				if len(got) != len(want) {
					t.Fatalf("%d windows, want %d", len(got), len(want))
				}
				for i := range got {
					g, w := got[i], want[i]
					if !closeTo(g.Inc, w.Inc, math.Abs(w.Inc)) && !(math.IsNaN(g.Inc) && math.IsNaN(w.Inc)) {
						t.Fatalf("window %d: inc %v, want %v", i, g.Inc, w.Inc)
					}
					g.Inc = w.Inc
					if !k.exact && closeTo(g.Sum, w.Sum, math.Abs(w.Sum)) {
						g.Sum = w.Sum
					}
					if !sameWindow(g, w) {
						t.Fatalf("window %d:\ngot  %+v\nwant %+v", i, g, w)
					}
				}
			})
		}
	}
}

// TestPropertyCounterView: PromQL's reset-corrected increase between the
// first points of any two windows of the counter view is the raw one
// between the same samples, and over the whole view it is the raw total;
// every window's first and last points are raw samples, and no window has
// more points than samples.
func TestPropertyCounterView(t *testing.T) {
	for ki, k := range kinds {
		if !k.counter {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			for seed := range uint64(3) {
				view := promView(randomSeries(rand.New(rand.NewPCG(seed, uint64(ki))), k, 5))
				// cum[t] is the raw increase from the first sample to the one at t.
				cum := make(map[int64]float64, len(view))
				raw := make(map[int64]float64, len(view))
				var c float64
				for i, s := range view {
					if i > 0 {
						c += ResetStep(view[i-1].V, s.V)
					}
					cum[s.T], raw[s.T] = c, s.V
				}
				total := rawIncrease(view)
				for _, tw := range []struct {
					ws    []Window
					width int64
				}{{Downsample(view, minute), minute}, {Combine(Downsample(view, minute), hour), hour}} {
					ws := tw.ws
					cv := CounterView(ws, tw.width)
					ends := map[int64]bool{} // the raw samples of the view
					for _, w := range ws {
						ends[w.FirstT], ends[w.LastT] = true, true
					}
					var vc float64 // the increase PromQL sees from cv[0]
					for i, p := range cv {
						if i > 0 {
							vc += ResetStep(cv[i-1].V, p.V)
						}
						want := cum[p.T]
						if !ends[p.T] {
							continue // a reset point, or a window at a gap spread
						}
						if p.V != raw[p.T] {
							t.Fatalf("point at %d: %v, raw sample %v", p.T, p.V, raw[p.T])
						}
						if !closeTo(vc, want, want) {
							t.Fatalf("increase to %d: %v, raw %v", p.T, vc, want)
						}
					}
					if got := rawIncrease(cv); !closeTo(got, total, total) {
						t.Fatalf("increase over the view %v, raw %v", got, total)
					}
					points := map[int64]float64{}
					for _, p := range cv {
						points[WindowEnd(p.T, minute)]++ // every window of ws is a whole number of minutes
					}
					for _, w := range ws {
						n := 0.0
						for e := w.End - (w.End-w.FirstT)/minute*minute; e <= w.End; e += minute {
							n += points[e]
						}
						if n > w.Count {
							t.Fatalf("window %d: %v points for %v samples", w.End, n, w.Count)
						}
					}
					if cv[0].T != view[0].T || cv[len(cv)-1].T != view[len(view)-1].T {
						t.Fatalf("view spans %d..%d, raw %d..%d", cv[0].T, cv[len(cv)-1].T, view[0].T, view[len(view)-1].T)
					}
				}
			}
		})
	}
}

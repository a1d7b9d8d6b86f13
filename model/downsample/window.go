package downsample

import (
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/util/kahansum"

	"github.com/vigil-tsdb/vigil/model"
)

// Window aggregates the samples of one series with End−W < t ≤ End, for a
// window width W that End is a multiple of. Times are milliseconds.
type Window struct {
	End    int64
	Count  float64 // number of samples
	Sum    float64 // Σ v, Kahan-summed as sum_over_time does
	Min    float64 // as min_over_time: NaN only if every value is NaN
	Max    float64 // as max_over_time
	FirstT int64
	FirstV float64
	LastT  int64
	LastV  float64
	Inc    float64 // Σ resetStep over consecutive samples
}

// Series is one series' windows, sorted by End, in parts: decoded
// windows, or aggregate chunks as stored, passed on without decoding.
type Series struct {
	Labels labels.Labels
	Parts  []Part
}

// Part is a run of a series' windows: Windows, or else Chunk, an aggregate
// chunk (AppendChunk) whose first and last windows end at Mint and Maxt.
type Part struct {
	Windows    []Window
	Chunk      []byte
	Mint, Maxt int64
}

// AllWindows returns the windows of every part, decoded, in order.
func (s Series) AllWindows() ([]Window, error) {
	var (
		out []Window
		dec Decoder
		err error
	)
	for _, p := range s.Parts {
		if p.Chunk == nil {
			out = append(out, p.Windows...)
			continue
		}
		if out, err = dec.Append(out, p.Chunk); err != nil {
			return nil, fmt.Errorf("series %s: chunk [%d, %d]: %w", s.Labels, p.Mint, p.Maxt, err)
		}
	}
	return out, nil
}

// ResetStep is Prometheus' counter-reset rule: the increase from v1 to v2,
// taking a drop as a restart from zero.
func ResetStep(v1, v2 float64) float64 {
	if v2 >= v1 {
		return v2 - v1
	}
	return v2
}

// WindowEnd returns the end of the width-wide window holding t: the least
// multiple of width ≥ t.
func WindowEnd(t, width int64) int64 {
	q := t / width // truncates toward zero: the ceiling for t ≤ 0
	if t%width > 0 {
		q++
	}
	return q * width
}

func checkWidth(width int64) {
	if width <= 0 {
		panic(fmt.Sprintf("downsample: window width %d is not positive", width))
	}
}

// builder accumulates one window. Sum and Min/Max follow PromQL's
// sum_over_time (Kahan–Neumaier from zero) and max/min_over_time (a NaN is
// replaced by the next value, whatever it is), so that the same functions
// over the columns equal them over raw data.
type builder struct {
	w    Window
	sum  float64
	comp float64
}

func (b *builder) start(end, t int64, v float64) {
	// NaN makes the first add set Min and Max, as PromQL starts from the
	// first value.
	b.w = Window{End: end, FirstT: t, FirstV: v, Min: math.NaN(), Max: math.NaN()}
	b.sum, b.comp = 0, 0
}

// add folds in n samples with the given sum, min and max: one value in
// Downsample, a finer window in Combine.
func (b *builder) add(n, sum, lo, hi float64) {
	b.w.Count += n
	b.sum, b.comp = kahansum.Inc(sum, b.sum, b.comp)
	if lo < b.w.Min || math.IsNaN(b.w.Min) {
		b.w.Min = lo
	}
	if hi > b.w.Max || math.IsNaN(b.w.Max) {
		b.w.Max = hi
	}
}

func (b *builder) finish() Window {
	b.w.Sum = b.sum
	if !math.IsInf(b.sum, 0) {
		b.w.Sum = b.sum + b.comp
	}
	return b.w
}

// Downsample aggregates samples into windows of the given width (> 0).
// Samples must be sorted by time; a sample not later than the one before it
// (a duplicate timestamp) is dropped, so the first of duplicates wins, even
// if it is a staleness marker. Staleness markers are not aggregated, and
// windows without samples are not emitted. The result is sorted by End.
func Downsample(samples []model.Sample, width int64) []Window {
	checkWidth(width)
	var (
		out   []Window
		b     builder
		open  bool
		prevT int64
	)
	for i, s := range samples {
		if i > 0 && s.T <= prevT {
			continue
		}
		prevT = s.T
		if value.IsStaleNaN(s.V) {
			continue
		}
		if end := WindowEnd(s.T, width); !open || end != b.w.End {
			if open {
				out = append(out, b.finish())
			}
			b.start(end, s.T, s.V)
			open = true
		} else {
			b.w.Inc += ResetStep(b.w.LastV, s.V)
		}
		b.add(1, s.V, s.V, s.V)
		b.w.LastT, b.w.LastV = s.T, s.V
	}
	if open {
		out = append(out, b.finish())
	}
	return out
}

// Combine aggregates windows sorted by End into coarser windows of the given
// width, which must be a positive multiple of theirs. A window whose End is
// not after the previous one's is dropped. Sum and Min/Max compose as
// sum/min/max_over_time over those columns; Inc adds the reset rule between
// one window's LastV and the next one's FirstV.
func Combine(ws []Window, width int64) []Window {
	checkWidth(width)
	var (
		out     []Window
		b       builder
		open    bool
		prevEnd int64
	)
	for i, w := range ws {
		if i > 0 && w.End <= prevEnd {
			continue
		}
		prevEnd = w.End
		if end := WindowEnd(w.End, width); !open || end != b.w.End {
			if open {
				out = append(out, b.finish())
			}
			b.start(end, w.FirstT, w.FirstV)
			open = true
		} else {
			b.w.Inc += ResetStep(b.w.LastV, w.FirstV)
		}
		b.add(w.Count, w.Sum, w.Min, w.Max)
		b.w.Inc += w.Inc
		b.w.LastT, b.w.LastV = w.LastT, w.LastV
	}
	if open {
		out = append(out, b.finish())
	}
	return out
}

// Column is one of a Window's nine aggregates.
type Column int

// The columns, in the order of the aggregate chunk.
const (
	ColumnCount Column = iota
	ColumnSum
	ColumnMin
	ColumnMax
	ColumnFirstT
	ColumnFirstV
	ColumnLastT
	ColumnLastV
	ColumnInc
	numColumns
)

var columnNames = [numColumns]string{"count", "sum", "min", "max", "first_t", "first_v", "last_t", "last_v", "inc"}

// String returns the column's name in docs/downsampling.md (the value of the
// querier's __aggr__ matcher).
func (c Column) String() string {
	if c < 0 || c >= numColumns {
		return fmt.Sprintf("Column(%d)", int(c))
	}
	return columnNames[c]
}

// ParseColumn is the inverse of Column.String.
func ParseColumn(s string) (Column, error) {
	for c, name := range columnNames {
		if name == s {
			return Column(c), nil
		}
	}
	return 0, fmt.Errorf("unknown aggregate column %q", s)
}

// value returns column c of w (times as float64); NaN for an unknown column.
func (w *Window) value(c Column) float64 {
	switch c {
	case ColumnCount:
		return w.Count
	case ColumnSum:
		return w.Sum
	case ColumnMin:
		return w.Min
	case ColumnMax:
		return w.Max
	case ColumnFirstT:
		return float64(w.FirstT)
	case ColumnFirstV:
		return w.FirstV
	case ColumnLastT:
		return float64(w.LastT)
	case ColumnLastV:
		return w.LastV
	case ColumnInc:
		return w.Inc
	}
	return math.NaN()
}

// ColumnSamples returns column c of each window stamped at the window's End,
// or nil for an unknown column.
func ColumnSamples(ws []Window, c Column) []model.Sample {
	if c < 0 || c >= numColumns {
		return nil
	}
	out := make([]model.Sample, len(ws))
	for i := range ws {
		out[i] = model.Sample{T: ws[i].End, V: ws[i].value(c)}
	}
	return out
}

// CounterView turns windows sorted by End back into a counter that PromQL's
// rate and increase can extrapolate, in raw values: per window
// (FirstT, FirstV) and (LastT, LastV), which are raw samples, so PromQL's
// reset rule between two windows (LastV, then FirstV) gives what it gives
// over the raw samples, and a range that starts at a window's start sees
// the raw first value (its extrapolation limit at zero included). Where
// the reset rule from FirstV to LastV does not give the window's Inc (it
// held a reset PromQL cannot see from its ends), resetPoints adds one
// point, or two, right after FirstT that make it give exactly Inc. A
// window never has more points than samples, so PromQL's average sample
// interval is never shorter than over raw data.
//
// A window of width width next to a gap (no window ends width before it,
// or width after it: the series starts, stops or pauses there) is
// spread: its Count samples (at most maxSpread) come back as that many
// evenly spaced points from FirstT to LastT (spread). PromQL extrapolates
// a range that holds such a gap by half the average sample interval,
// which the spread keeps as it was over raw data in that window; with two
// points it would be the window's span.
func CounterView(ws []Window, width int64) []model.Sample {
	out := make([]model.Sample, 0, 2*len(ws))
	for i, w := range ws {
		start := len(out)
		out = append(out, model.Sample{T: w.FirstT, V: w.FirstV})
		if w.LastT == w.FirstT {
			continue
		}
		out = resetPoints(out, w)
		gap := i == 0 || ws[i-1].End != w.End-width || i == len(ws)-1 || ws[i+1].End != w.End+width
		if gap && w.Count > float64(len(out)-start+1) {
			out = spread(out, start, w)
		}
		out = append(out, model.Sample{T: w.LastT, V: w.LastV})
	}
	return out
}

// maxSpread bounds the points CounterView spreads a window over.
const maxSpread = 240

// spread re-times the points of window w from out[start:] (its first
// point and reset points: the anchors) and adds points up to
// min(Count, maxSpread) with the last one, (LastT, LastV), which the
// caller appends: all evenly spaced from FirstT to LastT. After the
// anchors, the values go from the last anchor up to LastV, interpolated
// and never above it, or, where the last step is a reset (LastV below the
// last anchor), stay at the last anchor. The increase PromQL sees over
// the window is unchanged: the anchors in order, then steps of zero or
// one rise.
func spread(out []model.Sample, start int, w Window) []model.Sample {
	anchors := slices.Clone(out[start:])
	n := int64(min(w.Count, maxSpread))
	span := w.LastT - w.FirstT
	n = min(n, span+1) // distinct milliseconds
	m := int64(len(anchors))
	if n <= m+1 {
		return out
	}
	a := anchors[m-1].V
	rise := w.LastV >= a && !math.IsInf(w.LastV-a, 0)
	out = out[:start]
	for j := range n - 1 {
		t := w.FirstT + int64(float64(span)*float64(j)/float64(n-1))
		v := a
		switch {
		case j < m:
			v = anchors[j].V
		case rise:
			v = min(a+(w.LastV-a)*float64(j-m+1)/float64(n-m), w.LastV)
		}
		out = append(out, model.Sample{T: t, V: v})
	}
	return out
}

// resetPoints appends the points between (FirstT, FirstV) and
// (LastT, LastV) that make PromQL's reset-corrected increase over the
// window equal Inc: a value X with ResetStep(P, X) + ResetStep(X, L) = Inc
// (P = FirstV, L = LastV), where one exists, else the pair
// (P + Inc − L, 0). A window with a reset inside has Inc ≥ L; with three
// samples one point always suffices, with two none is needed.
func resetPoints(out []model.Sample, w Window) []model.Sample {
	p, l, f := w.FirstV, w.LastV, w.Inc
	if d := f - ResetStep(p, l); math.Abs(d) <= 1e-12*math.Max(math.Abs(f), 1) || !(f >= l) {
		return out // PromQL sees Inc already (up to rounding), or no reset
	}
	var x float64
	switch {
	case f == l && p > 0: // X below both: a reset to X, then up to L
		x = 0
	case f-l+p > l: // up to X, then a reset to L
		x = f - l + p
	case f-l > l && f-l < p: // a reset to X, then a reset to L
		x = f - l
	default:
		if w.LastT-w.FirstT < 3 {
			return out
		}
		return append(out, model.Sample{T: w.FirstT + 1, V: p + f - l}, model.Sample{T: w.FirstT + 2, V: 0})
	}
	if w.LastT-w.FirstT < 2 {
		return out
	}
	return append(out, model.Sample{T: w.FirstT + 1, V: x})
}

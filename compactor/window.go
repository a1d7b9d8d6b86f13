package compactor

import (
	"fmt"
	"math"

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

// resetStep is Prometheus' counter-reset rule: the increase from v1 to v2,
// taking a drop as a restart from zero.
func resetStep(v1, v2 float64) float64 {
	if v2 >= v1 {
		return v2 - v1
	}
	return v2
}

// windowEnd returns the end of the width-wide window holding t: the least
// multiple of width ≥ t.
func windowEnd(t, width int64) int64 {
	q := t / width // truncates toward zero: the ceiling for t ≤ 0
	if t%width > 0 {
		q++
	}
	return q * width
}

func checkWidth(width int64) {
	if width <= 0 {
		panic(fmt.Sprintf("compactor: window width %d is not positive", width))
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
		if end := windowEnd(s.T, width); !open || end != b.w.End {
			if open {
				out = append(out, b.finish())
			}
			b.start(end, s.T, s.V)
			open = true
		} else {
			b.w.Inc += resetStep(b.w.LastV, s.V)
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
		if end := windowEnd(w.End, width); !open || end != b.w.End {
			if open {
				out = append(out, b.finish())
			}
			b.start(end, w.FirstT, w.FirstV)
			open = true
		} else {
			b.w.Inc += resetStep(b.w.LastV, w.FirstV)
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
// rate and increase can extrapolate: per window (FirstT, C_first) and, if
// LastT differs, (LastT, C_last), where C is a running reset-corrected
// total starting at the first window's FirstV. The increase between any two
// points equals the raw increase between the same samples, and C never
// drops (for non-negative counters), so PromQL sees no resets.
func CounterView(ws []Window) []model.Sample {
	out := make([]model.Sample, 0, 2*len(ws))
	var c float64
	for i, w := range ws {
		if i == 0 {
			c = w.FirstV
		} else {
			c += resetStep(ws[i-1].LastV, w.FirstV)
		}
		out = append(out, model.Sample{T: w.FirstT, V: c})
		c += w.Inc
		if w.LastT != w.FirstT {
			out = append(out, model.Sample{T: w.LastT, V: c})
		}
	}
	return out
}

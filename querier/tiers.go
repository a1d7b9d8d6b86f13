package querier

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// AggrLabel is the hidden matcher name that tells a Select which view of
// downsampled data a selector wants (docs/downsampling.md, "Reads"). The
// querier strips it before reading; it never reaches a stored series.
const AggrLabel = "__aggr__"

// Views of a series a rewritten query asks for. Each has a raw equivalent,
// so a Select may answer from raw samples, from a tier, or from both
// stitched in time: count is 1 per raw sample; sum, min, max and last are
// the raw value; counter is the raw counter.
const (
	ViewCount   = "count"
	ViewSum     = "sum"
	ViewMin     = "min"
	ViewMax     = "max"
	ViewCounter = "counter" // reset-corrected running total (the counter view)
	ViewLast    = "last"    // the last sample of each window, at its time
)

// counterFuncs read a counter view: every increase they see between two
// points equals the raw increase between the same samples (irate sees the
// last two points of the view, which over a tier are a window's first and
// last sample: an approximation).
var counterFuncs = map[string]bool{"rate": true, "increase": true, "irate": true}

// rawOnlyFuncs keep their argument as it is (no view: raw data only):
// absent* derive their output labels from the selector's matchers, and
// resets counts drops that the counter view has folded away.
var rawOnlyFuncs = map[string]bool{"absent": true, "absent_over_time": true, "resets": true}

// RewriteForTiers rewrites expr so that every selector names the view it
// needs, and functions whose result over windows differs from the result
// over raw samples read a view that makes them agree:
//
//	max_over_time(x[r])   -> max_over_time(x{__aggr__="max"}[r])
//	min_over_time(x[r])   -> min_over_time(x{__aggr__="min"}[r])
//	sum_over_time(x[r])   -> sum_over_time(x{__aggr__="sum"}[r])
//	count_over_time(x[r]) -> sum_over_time(x{__aggr__="count"}[r])
//	avg_over_time(x[r])   -> sum_over_time(x{__aggr__="sum"}[r]) / sum_over_time(x{__aggr__="count"}[r])
//	rate, increase, irate (x[r]) -> the same over x{__aggr__="counter"}[r]
//	absent, absent_over_time, resets -> unchanged (raw data only)
//	any other selector    -> x{__aggr__="last"}
//
// Over raw data the rewritten query gives the original's result (avg up to
// float rounding). expr is not modified; the result shares no nodes with
// it. A selector that already has an AggrLabel matcher is an error.
func RewriteForTiers(expr parser.Expr) (parser.Expr, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr.String()) // a deep copy
	if err != nil {
		return nil, fmt.Errorf("copy expression: %w", err)
	}
	return rewrite(e)
}

func rewrite(e parser.Expr) (parser.Expr, error) {
	switch n := e.(type) {
	case *parser.Call:
		if rawOnlyFuncs[n.Func.Name] {
			return n, nil
		}
		if len(n.Args) == 1 {
			if ms, ok := n.Args[0].(*parser.MatrixSelector); ok {
				return rewriteRangeCall(n, ms)
			}
		}
		for i, a := range n.Args {
			r, err := rewrite(a)
			if err != nil {
				return nil, err
			}
			n.Args[i] = r
		}
		return n, nil
	case *parser.VectorSelector:
		return n, addView(n, ViewLast)
	case *parser.MatrixSelector:
		return n, addView(n.VectorSelector.(*parser.VectorSelector), ViewLast)
	case *parser.AggregateExpr:
		var err error
		if n.Expr, err = rewrite(n.Expr); err != nil {
			return nil, err
		}
		if n.Param != nil {
			n.Param, err = rewrite(n.Param)
		}
		return n, err
	case *parser.BinaryExpr:
		var err error
		if n.LHS, err = rewrite(n.LHS); err != nil {
			return nil, err
		}
		n.RHS, err = rewrite(n.RHS)
		return n, err
	case *parser.ParenExpr:
		var err error
		n.Expr, err = rewrite(n.Expr)
		return n, err
	case *parser.UnaryExpr:
		var err error
		n.Expr, err = rewrite(n.Expr)
		return n, err
	case *parser.SubqueryExpr:
		var err error
		n.Expr, err = rewrite(n.Expr)
		return n, err
	case *parser.StepInvariantExpr:
		var err error
		n.Expr, err = rewrite(n.Expr)
		return n, err
	default: // literals
		return e, nil
	}
}

// rewriteRangeCall rewrites fn(x[r]).
func rewriteRangeCall(call *parser.Call, ms *parser.MatrixSelector) (parser.Expr, error) {
	vs := ms.VectorSelector.(*parser.VectorSelector)
	view := ViewLast
	switch name := call.Func.Name; {
	case name == "max_over_time":
		view = ViewMax
	case name == "min_over_time":
		view = ViewMin
	case name == "sum_over_time":
		view = ViewSum
	case name == "count_over_time":
		view = ViewCount
		call.Func = parser.Functions["sum_over_time"]
	case name == "avg_over_time":
		den := &parser.Call{Func: parser.Functions["sum_over_time"], Args: parser.Expressions{cloneMatrix(ms)}, PosRange: call.PosRange}
		call.Func = parser.Functions["sum_over_time"]
		if err := addView(vs, ViewSum); err != nil {
			return nil, err
		}
		if err := addView(den.Args[0].(*parser.MatrixSelector).VectorSelector.(*parser.VectorSelector), ViewCount); err != nil {
			return nil, err
		}
		return &parser.BinaryExpr{Op: parser.DIV, LHS: call, RHS: den, VectorMatching: &parser.VectorMatching{Card: parser.CardOneToOne}}, nil
	case counterFuncs[name]:
		view = ViewCounter
	}
	return call, addView(vs, view)
}

func cloneMatrix(ms *parser.MatrixSelector) *parser.MatrixSelector {
	vs := *ms.VectorSelector.(*parser.VectorSelector)
	vs.LabelMatchers = append([]*labels.Matcher(nil), vs.LabelMatchers...)
	c := *ms
	c.VectorSelector = &vs
	return &c
}

func addView(vs *parser.VectorSelector, view string) error {
	for _, m := range vs.LabelMatchers {
		if m.Name == AggrLabel {
			return fmt.Errorf("selector %s: the label %s is reserved", vs, AggrLabel)
		}
	}
	vs.LabelMatchers = append(vs.LabelMatchers, labels.MustNewMatcher(labels.MatchEqual, AggrLabel, view))
	return nil
}

// ViewOf splits a Select's matchers into the view the selector asked for
// ("" when the query was not rewritten) and the matchers to read with.
func ViewOf(ms []*labels.Matcher) (string, []*labels.Matcher, error) {
	view, rest := "", ms
	for i, m := range ms {
		if m.Name != AggrLabel {
			continue
		}
		if m.Type != labels.MatchEqual {
			return "", nil, fmt.Errorf("matcher %s: only %s=\"<view>\" is allowed", m, AggrLabel)
		}
		switch m.Value {
		case ViewCount, ViewSum, ViewMin, ViewMax, ViewCounter, ViewLast:
		default:
			return "", nil, fmt.Errorf("matcher %s: unknown view %q", m, m.Value)
		}
		view = m.Value
		rest = append(append([]*labels.Matcher(nil), ms[:i]...), ms[i+1:]...)
		break
	}
	return view, rest, nil
}

// rawView adapts raw samples to what a view asks for: count is 1 per
// sample (staleness markers, which no range function counts, are dropped);
// every other view of raw data is the data itself.
func rawView(view string, ss storage.SeriesSet) storage.SeriesSet {
	if view != ViewCount {
		return ss
	}
	return &countSeriesSet{SeriesSet: ss}
}

type countSeriesSet struct{ storage.SeriesSet }

func (c *countSeriesSet) At() storage.Series { return &countSeries{c.SeriesSet.At()} }

type countSeries struct{ storage.Series }

func (c *countSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	return &countIterator{Iterator: c.Series.Iterator(it)}
}

// countIterator yields 1 at every sample time that is not a staleness
// marker. Raw series hold float samples only (docs/storage.md).
type countIterator struct{ chunkenc.Iterator }

func (c *countIterator) Next() chunkenc.ValueType { return c.skipStale(c.Iterator.Next()) }

func (c *countIterator) Seek(t int64) chunkenc.ValueType { return c.skipStale(c.Iterator.Seek(t)) }

func (c *countIterator) skipStale(vt chunkenc.ValueType) chunkenc.ValueType {
	for vt == chunkenc.ValFloat {
		if _, v := c.Iterator.At(); !value.IsStaleNaN(v) {
			return vt
		}
		vt = c.Iterator.Next()
	}
	return vt
}

func (c *countIterator) At() (int64, float64) {
	t, _ := c.Iterator.At()
	return t, 1
}

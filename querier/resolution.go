package querier

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-tsdb/vigil/model"
)

// Resolution is the data a Select reads: raw samples or a downsampled tier
// (docs/downsampling.md). Its values are the storage tiers' numbers.
type Resolution uint8

// The resolutions; ResolutionAuto lets chooseResolution decide.
const (
	ResolutionRaw    Resolution = 0
	ResolutionMinute Resolution = 1
	ResolutionHour   Resolution = 2
	ResolutionAuto   Resolution = 255
)

// width returns the window width of a tier in ms.
func (r Resolution) width() int64 {
	switch r {
	case ResolutionMinute:
		return time.Minute.Milliseconds()
	case ResolutionHour:
		return time.Hour.Milliseconds()
	}
	return 0
}

// String returns the name ParseResolution accepts.
func (r Resolution) String() string {
	switch r {
	case ResolutionRaw:
		return "raw"
	case ResolutionMinute:
		return "1m"
	case ResolutionHour:
		return "1h"
	case ResolutionAuto:
		return "auto"
	}
	return fmt.Sprintf("Resolution(%d)", uint8(r))
}

// ParseResolution reads auto, raw, 1m or 1h ("" is auto).
func ParseResolution(s string) (Resolution, error) {
	switch s {
	case "", "auto":
		return ResolutionAuto, nil
	case "raw":
		return ResolutionRaw, nil
	case "1m":
		return ResolutionMinute, nil
	case "1h":
		return ResolutionHour, nil
	}
	return 0, fmt.Errorf("unknown resolution %q (want auto, raw, 1m or 1h)", s)
}

type resolutionKey struct{}

// WithResolution returns a context whose queries read resolution r instead
// of the one chosen automatically (the API's resolution parameter).
func WithResolution(ctx context.Context, r Resolution) context.Context {
	return context.WithValue(ctx, resolutionKey{}, r)
}

// Retention is how long each tier keeps data after its UTC day ended: the
// compactor's -retention.* flags, which the querier must share. 0 disables
// a downsampled tier.
type Retention struct {
	Raw, Minute, Hour time.Duration
}

// MayUseTiers reports whether a query over [start−lookback, end] at step
// may read a downsampled tier under resolution r, that is whether it is
// worth rewriting with RewriteForTiers: a forced tier, or a step of at
// least 5 minutes, or a start before the raw retention.
func (q *Queryable) MayUseTiers(r Resolution, start, end time.Time, step time.Duration) bool {
	switch r {
	case ResolutionRaw:
		return false
	case ResolutionMinute, ResolutionHour:
		return true
	}
	ret := q.cfg.Retention
	if ret.Minute <= 0 && ret.Hour <= 0 {
		return false
	}
	return step >= 5*time.Minute || start.Before(time.Now().Add(-ret.Raw))
}

// chooseResolution picks what a view Select reads (docs/downsampling.md,
// "Reads: choosing a resolution"): the context's forced resolution if any;
// else raw when its start lies within raw retention and the step is under
// 5 minutes; else the 1 h tier for steps of an hour or more; else the
// coarsest tier that keeps data from start; raw when no tier fits. A tier
// is only taken when the selector's range (if any) holds at least one of
// its windows.
func (q *Queryable) chooseResolution(ctx context.Context, hints *storage.SelectHints, start int64) Resolution {
	if r, ok := ctx.Value(resolutionKey{}).(Resolution); ok && r != ResolutionAuto {
		return r
	}
	var step, rng int64
	if hints != nil {
		step, rng = hints.Step, hints.Range
	}
	now := time.Now().UnixMilli()
	ret := q.cfg.Retention
	within := func(d time.Duration) bool { return start > now-d.Milliseconds() }
	fits := func(r Resolution) bool { return rng == 0 || rng >= r.width() }
	minute := ret.Minute > 0 && fits(ResolutionMinute)
	hour := ret.Hour > 0 && fits(ResolutionHour)
	switch {
	case within(ret.Raw) && step < (5*time.Minute).Milliseconds():
		return ResolutionRaw
	case hour && step >= time.Hour.Milliseconds():
		return ResolutionHour
	case minute && within(ret.Minute):
		return ResolutionMinute
	case hour:
		return ResolutionHour
	case minute:
		return ResolutionMinute
	}
	return ResolutionRaw
}

// Prepare readies a query for its resolution (the API's resolution
// parameter, "" for auto): when a tier may be read (MayUseTiers, from the
// earliest time the query selects), the query is rewritten with
// RewriteForTiers and the returned context carries the resolution. A query
// that does not parse is returned as it is, for the engine to report.
func (q *Queryable) Prepare(ctx context.Context, query, resolution string, start, end time.Time, step time.Duration) (context.Context, string, error) {
	r, err := ParseResolution(resolution)
	if err != nil {
		return ctx, query, err
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	if err != nil {
		return ctx, query, nil
	}
	if !q.MayUseTiers(r, start.Add(-q.reach(expr)), end, step) {
		return ctx, query, nil
	}
	rw, err := RewriteForTiers(expr)
	if err != nil {
		return ctx, query, fmt.Errorf("%w: %v", model.ErrBadData, err)
	}
	return WithResolution(ctx, r), rw.String(), nil
}

// reach returns how far before its evaluation time expr selects data at
// most: the largest range, subquery range and offset on a path, or the
// lookback delta for instant selectors.
func (q *Queryable) reach(expr parser.Expr) time.Duration {
	var walk func(parser.Node) time.Duration
	walk = func(n parser.Node) time.Duration {
		var own time.Duration
		switch n := n.(type) {
		case *parser.VectorSelector:
			return q.cfg.LookbackDelta + max(n.OriginalOffset, 0)
		case *parser.MatrixSelector:
			vs := n.VectorSelector.(*parser.VectorSelector)
			return n.Range + max(vs.OriginalOffset, 0)
		case *parser.SubqueryExpr:
			own = n.Range + max(n.OriginalOffset, 0)
		}
		var most time.Duration
		for _, c := range parser.Children(n) {
			most = max(most, walk(c))
		}
		return own + most
	}
	return walk(expr)
}

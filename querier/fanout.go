package querier

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
)

type metrics struct {
	calls  *prometheus.CounterVec
	hedged prometheus.Counter
	failed *prometheus.CounterVec
	// selects counts view Selects (queries rewritten for the tiers) by the
	// resolution read.
	selects *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	f := promauto.With(reg)
	return &metrics{
		calls:   f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_querier_ingester_calls_total", Help: "Calls from the querier to ingesters, by result (ok, failed, hedged: given up on as slow, skipped: known down)."}, []string{"result"}),
		hedged:  f.NewCounter(prometheus.CounterOpts{Name: "vigil_querier_hedged_total", Help: "Times a slow ingester was given up on because the answer was complete without it."}),
		failed:  f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_querier_incomplete_total", Help: "Reads with more failed ingesters than the replication tolerates, by outcome (error, partial: answered with a warning)."}, []string{"outcome"}),
		selects: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_querier_tier_selects_total", Help: "Selects of queries rewritten for the downsampled tiers, by the resolution read (raw, 1m, 1h)."}, []string{"resolution"}),
	}, nil
}

// fanout tracks the ingesters that did not answer one read. Up to
// tolerance of them may be missing with the answer still complete: every
// acknowledged sample is on at least Quorum ingesters, so with at most
// Factor-Quorum missing, at least one copy of it was read.
type fanout struct {
	q         *Queryable
	tolerance int

	mu     sync.Mutex // protects failed
	failed map[string]error
}

func (q *querier) newFanout() *fanout {
	f := &fanout{q: q.q, tolerance: max(q.repl.Factor-q.repl.Quorum, 0), failed: map[string]error{}}
	for _, ing := range q.ings {
		if !ing.Healthy {
			q.q.metrics.calls.WithLabelValues("skipped").Inc()
			f.failed[ing.Name] = errors.New("down")
		}
	}
	return f
}

// fail records a failed ingester.
func (f *fanout) fail(name string, err error) {
	f.q.metrics.calls.WithLabelValues("failed").Inc()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed[name] = err
}

// giveUp records name as missing if the answer stays complete without it,
// and reports whether it did.
func (f *fanout) giveUp(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.failed[name]; ok {
		return true
	}
	if len(f.failed)+1 > f.tolerance {
		return false
	}
	f.failed[name] = fmt.Errorf("no answer within %s", f.q.cfg.HedgeAfter)
	f.q.metrics.calls.WithLabelValues("hedged").Inc()
	f.q.metrics.hedged.Inc()
	return true
}

// incomplete returns a description of the failures when there are more
// than tolerated, "" otherwise.
func (f *fanout) incomplete() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failed) <= f.tolerance {
		return ""
	}
	names := make([]string, 0, len(f.failed))
	for n := range f.failed {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ": " + f.failed[n].Error()
	}
	return fmt.Sprintf("incomplete: %d ingesters did not answer (%s); at most %d may be missing for a complete answer",
		len(names), strings.Join(parts, "; "), f.tolerance)
}

// outcome is what a finished read reports: nil and no warnings when
// complete; beyond the tolerance an error (model.ErrUnavailable), or with
// AllowPartial a warning.
func (f *fanout) outcome() (annotations.Annotations, error) {
	msg := f.incomplete()
	if msg == "" {
		return nil, nil
	}
	if f.q.cfg.AllowPartial {
		f.q.metrics.failed.WithLabelValues("partial").Inc()
		var w annotations.Annotations
		w.Add(errors.New(msg))
		return w, nil
	}
	f.q.metrics.failed.WithLabelValues("error").Inc()
	return nil, fmt.Errorf("%s: %w", msg, model.ErrUnavailable)
}

// gather calls every healthy ingester in parallel and returns the answers
// that arrived. Once all but a tolerable number answered, the rest get
// HedgeAfter more before they are given up on.
func gather[T any](ctx context.Context, q *querier, f *fanout, call func(context.Context, ingesterpb.IngesterClient) (T, error)) ([]T, annotations.Annotations, error) {
	type answer struct {
		name string
		v    T
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the calls given up on
	ch := make(chan answer, len(q.ings))
	pending := map[string]bool{}
	for _, ing := range q.ings {
		if !ing.Healthy {
			continue
		}
		pending[ing.Name] = true
		go func() {
			cctx, ccancel := context.WithTimeout(ctx, q.q.cfg.IngesterTimeout)
			defer ccancel()
			v, err := call(cctx, ing.Client)
			ch <- answer{name: ing.Name, v: v, err: err}
		}()
	}
	var out []T
	var hedge <-chan time.Time
	for len(pending) > 0 {
		select {
		case a := <-ch:
			delete(pending, a.name)
			if errors.Is(a.err, model.ErrBadData) {
				return nil, nil, a.err // the request's fault, not the ingester's
			}
			if a.err != nil {
				f.fail(a.name, a.err)
			} else {
				q.q.metrics.calls.WithLabelValues("ok").Inc()
				out = append(out, a.v)
			}
			if hedge == nil && len(pending) > 0 && len(pending) <= f.tolerance {
				hedge = time.After(q.q.cfg.HedgeAfter)
			}
		case <-hedge:
			for name := range pending {
				if f.giveUp(name) {
					delete(pending, name)
				}
			}
			hedge = nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	w, err := f.outcome()
	return out, w, err
}

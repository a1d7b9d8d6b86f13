package querier

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

type fsample struct {
	t int64
	f float64
}

func (s fsample) T() int64                      { return s.t }
func (s fsample) ST() int64                     { return 0 }
func (s fsample) F() float64                    { return s.f }
func (s fsample) H() *histogram.Histogram       { return nil }
func (s fsample) FH() *histogram.FloatHistogram { return nil }
func (s fsample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fsample) Copy() chunks.Sample           { return s }

// memQueryable holds raw series in memory and answers Selects the way the
// querier does for raw data: views are stripped and applied by rawView.
type memQueryable struct {
	series []storage.Series
	views  []string // every view a Select asked for
}

func (m *memQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &memQuerier{m: m}, nil
}

type memQuerier struct{ m *memQueryable }

func (q *memQuerier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	view, rest, err := ViewOf(ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	q.m.views = append(q.m.views, view)
	var out []storage.Series
	for _, s := range q.m.series {
		if matchAll(rest, s.Labels()) {
			out = append(out, s)
		}
	}
	return rawView(view, &listSeriesSet{list: out, i: -1})
}

func matchAll(ms []*labels.Matcher, ls labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (q *memQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *memQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *memQuerier) Close() error { return nil }

// randomSeries makes counters with resets and gauges with NaNs, scraped
// every 15 s with jitter and gaps, and a staleness marker in the middle.
func randomSeries(rng *rand.Rand, from, to int64) []storage.Series {
	var out []storage.Series
	for i := range 6 {
		var ss []chunks.Sample
		v := rng.Float64() * 100
		for t := from; t < to; t += 15_000 + rng.Int64N(2_000) {
			if rng.IntN(50) == 0 {
				t += 120_000 // a gap
			}
			switch {
			case i < 3: // counters
				v += rng.Float64() * 10
				if rng.IntN(200) == 0 {
					v = rng.Float64() * 5 // reset
				}
			default:
				v = rng.NormFloat64() * 50
				if rng.IntN(300) == 0 {
					v = math.NaN()
				}
			}
			ss = append(ss, fsample{t, v})
			if i == 4 && len(ss) == 200 {
				ss = append(ss, fsample{t + 5_000, math.Float64frombits(value.StaleNaN)})
				t += 400_000
			}
		}
		kind := "counter_total"
		if i >= 3 {
			kind = "gauge"
		}
		out = append(out, storage.NewListSeries(labels.FromStrings("__name__", kind, "i", fmt.Sprint(i), "g", fmt.Sprint(i%2)), ss))
	}
	return out
}

// TestRewriteForTiersOverRaw evaluates queries and their rewrites over the
// same raw data with the PromQL engine: a rewritten query must give the
// original's result, so that a Select may answer it from raw data.
func TestRewriteForTiersOverRaw(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	data := &memQueryable{series: randomSeries(rng, start.UnixMilli(), start.Add(6*time.Hour).UnixMilli())}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, EnableAtModifier: true})
	queries := []string{
		`max_over_time(gauge[1h])`, `min_over_time(gauge[30m])`, `sum_over_time(gauge[1h])`,
		`count_over_time(gauge[1h])`, `count_over_time(counter_total[10m])`, `avg_over_time(gauge[1h])`,
		`rate(counter_total[5m])`, `increase(counter_total[1h])`, `irate(counter_total[5m])`, `resets(counter_total[1h])`,
		`gauge`, `counter_total{i="1"}`, `sum by (g) (rate(counter_total[10m]))`, `topk(2, max_over_time(gauge[1h]))`,
		`quantile_over_time(0.9, gauge[1h])`, `max_over_time(rate(counter_total[5m])[30m:1m])`,
		`avg_over_time(gauge[1h] offset 30m)`, `count_over_time(gauge[1h] @ 1767236400)`,
		`gauge / on(i) group_left count_over_time(gauge[1h])`, `-sum(avg_over_time(gauge[15m]))`,
		`label_replace(max_over_time(gauge[1h]), "x", "$1", "i", "(.*)")`, `absent(nope)`,
	}
	p := parser.NewParser(parser.Options{})
	for _, q := range queries {
		t.Run(q, func(t *testing.T) {
			expr, err := p.ParseExpr(q)
			if err != nil {
				t.Fatal(err)
			}
			before := expr.String()
			rw, err := RewriteForTiers(expr)
			if err != nil {
				t.Fatal(err)
			}
			if expr.String() != before {
				t.Fatalf("RewriteForTiers modified its input: %s, was %s", expr, before)
			}
			data.views = nil
			want := evalRange(t, engine, data, q, start)
			got := evalRange(t, engine, data, rw.String(), start)
			if !slices.ContainsFunc(data.views, func(v string) bool { return v != "" }) && !strings.HasPrefix(q, "absent") && !strings.HasPrefix(q, "resets") {
				t.Fatalf("the rewrite %s asked for no view", rw)
			}
			compareMatrices(t, rw.String(), want, got)
		})
	}
}

func evalRange(t *testing.T, e *promql.Engine, q storage.Queryable, qs string, start time.Time) promql.Matrix {
	t.Helper()
	qry, err := e.NewRangeQuery(context.Background(), q, nil, qs, start.Add(time.Hour), start.Add(6*time.Hour), 5*time.Minute)
	if err != nil {
		t.Fatalf("%s: %v", qs, err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", qs, res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		t.Fatalf("%s: %v", qs, err)
	}
	// Close returns the points to the engine's pool: copy them.
	out := make(promql.Matrix, len(m))
	for i, s := range m {
		out[i] = promql.Series{Metric: s.Metric, Floats: slices.Clone(s.Floats)}
	}
	return out
}

func compareMatrices(t *testing.T, what string, want, got promql.Matrix) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%s: %d series, want %d", what, len(got), len(want))
	}
	var points int
	for i := range want {
		if !labels.Equal(want[i].Metric, got[i].Metric) {
			t.Fatalf("%s: series %d is %s, want %s", what, i, got[i].Metric, want[i].Metric)
		}
		if len(want[i].Floats) != len(got[i].Floats) {
			t.Fatalf("%s %s: %d points, want %d", what, want[i].Metric, len(got[i].Floats), len(want[i].Floats))
		}
		for j, w := range want[i].Floats {
			g := got[i].Floats[j]
			points++
			if g.T != w.T || !(g.F == w.F || math.IsNaN(g.F) && math.IsNaN(w.F) || math.Abs(g.F-w.F) <= 1e-12*math.Abs(w.F)) {
				t.Fatalf("%s %s at %d: %v, want %v", what, want[i].Metric, w.T, g.F, w.F)
			}
		}
	}
	if points == 0 && len(want) > 0 {
		t.Fatalf("%s: no points compared", what)
	}
}

func TestViewOf(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ms      []*labels.Matcher
		view    string
		rest    int
		wantErr string
	}{
		{name: "none", ms: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "x")}, rest: 1},
		{name: "count", ms: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"), labels.MustNewMatcher(labels.MatchEqual, AggrLabel, "count")}, view: "count", rest: 1},
		{name: "regexp", ms: []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, AggrLabel, "count")}, wantErr: "only __aggr__"},
		{name: "unknown view", ms: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, AggrLabel, "median")}, wantErr: "unknown view"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			view, rest, err := ViewOf(tc.ms)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || view != tc.view || len(rest) != tc.rest {
				t.Fatalf("view %q rest %d err %v", view, len(rest), err)
			}
		})
	}
	if _, err := RewriteForTiers(mustParse(t, `x{__aggr__="sum"}`)); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("a query naming %s was accepted: %v", AggrLabel, err)
	}
}

func mustParse(t *testing.T, q string) parser.Expr {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

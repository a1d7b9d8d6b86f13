package querier

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/model/downsample"
)

func retentionQueryable(t *testing.T, ret Retention) *Queryable {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Retention = ret
	q, err := New(cfg, func() ([]Ingester, Replication) { return nil, Replication{Factor: 1, Quorum: 1} }, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestChooseResolution(t *testing.T) {
	day := 24 * time.Hour
	q := retentionQueryable(t, Retention{Raw: 7 * day, Minute: 30 * day, Hour: 365 * day})
	now := time.Now()
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	tests := []struct {
		name        string
		ago         time.Duration // start of the Select before now
		step, rng   time.Duration
		forced      Resolution
		want        Resolution
		noMinute    bool
		noTiers     bool
		description string
	}{
		{name: "recent, fine step", ago: time.Hour, step: 15 * time.Second, want: ResolutionRaw},
		{name: "recent, instant", ago: 5 * time.Minute, want: ResolutionRaw},
		{name: "recent, 5m step", ago: time.Hour, step: 5 * time.Minute, rng: 5 * time.Minute, want: ResolutionMinute},
		{name: "recent, 1h step", ago: 2 * day, step: time.Hour, rng: time.Hour, want: ResolutionHour},
		{name: "1h step, range below an hour", ago: 2 * day, step: time.Hour, rng: 5 * time.Minute, want: ResolutionMinute},
		{name: "past raw, fine step", ago: 10 * day, step: 30 * time.Second, rng: 5 * time.Minute, want: ResolutionMinute},
		{name: "past 1m", ago: 60 * day, step: time.Minute, rng: time.Hour, want: ResolutionHour},
		{name: "past 1m, short range", ago: 60 * day, step: time.Minute, rng: 5 * time.Minute, want: ResolutionMinute},
		{name: "range under a minute", ago: 10 * day, step: 5 * time.Minute, rng: 30 * time.Second, want: ResolutionRaw},
		{name: "forced", ago: time.Hour, step: 15 * time.Second, forced: ResolutionHour, want: ResolutionHour},
		{name: "forced raw", ago: 100 * day, step: time.Hour, forced: ResolutionRaw, want: ResolutionRaw},
		{name: "1m disabled", ago: 10 * day, step: 5 * time.Minute, rng: time.Hour, noMinute: true, want: ResolutionHour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			qq := q
			if tt.noMinute {
				qq = retentionQueryable(t, Retention{Raw: 7 * day, Hour: 365 * day})
			}
			ctx := context.Background()
			if tt.forced != ResolutionAuto && tt.forced != 0 || tt.name == "forced raw" {
				ctx = WithResolution(ctx, tt.forced)
			}
			start := now.Add(-tt.ago).UnixMilli()
			got := qq.chooseResolution(ctx, &storage.SelectHints{Start: start, Step: ms(tt.step), Range: ms(tt.rng)}, start)
			if got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseResolution(t *testing.T) {
	for _, s := range []string{"auto", "raw", "1m", "1h"} {
		r, err := ParseResolution(s)
		if err != nil || r.String() != s {
			t.Fatalf("%s: %v %v", s, r, err)
		}
	}
	if r, err := ParseResolution(""); err != nil || r != ResolutionAuto {
		t.Fatalf(`"": %v %v`, r, err)
	}
	if _, err := ParseResolution("5m"); err == nil || err.Error() != `unknown resolution "5m" (want auto, raw, 1m or 1h)` {
		t.Fatalf("5m: %v", err)
	}
}

func TestPrepare(t *testing.T) {
	day := 24 * time.Hour
	q := retentionQueryable(t, Retention{Raw: 7 * day, Minute: 30 * day, Hour: 365 * day})
	now := time.Now()
	tests := []struct {
		query, res string
		start      time.Time
		step       time.Duration
		rewritten  bool
		err        bool
	}{
		{query: `rate(x[5m])`, start: now.Add(-time.Hour), step: 15 * time.Second},
		{query: `rate(x[5m])`, start: now.Add(-time.Hour), step: 5 * time.Minute, rewritten: true},
		{query: `rate(x[5m])`, start: now.Add(-time.Hour), step: 15 * time.Second, res: "1h", rewritten: true},
		{query: `rate(x[5m])`, start: now.Add(-time.Hour), step: time.Hour, res: "raw"},
		// the range reaches past raw retention
		{query: `max_over_time(x[7d])`, start: now.Add(-time.Hour), step: 15 * time.Second, rewritten: true},
		{query: `x offset 8d`, start: now.Add(-time.Hour), step: 15 * time.Second, rewritten: true},
		{query: `rate(x[5m])`, res: "2h", err: true},
		{query: `x{__aggr__="max"}`, res: "1h", err: true},
		{query: `rate(x[5m]`, res: "1h"}, // left to the engine to report
	}
	for _, tt := range tests {
		ctx, got, err := q.Prepare(context.Background(), tt.query, tt.res, tt.start, now, tt.step)
		if (err != nil) != tt.err {
			t.Fatalf("%s %s: error %v", tt.query, tt.res, err)
		}
		if err != nil {
			continue
		}
		_, forced := ctx.Value(resolutionKey{}).(Resolution)
		if (got != tt.query) != tt.rewritten || forced != tt.rewritten {
			t.Fatalf("%s res=%q step %s: got %q (resolution in context: %v), rewritten want %v", tt.query, tt.res, tt.step, got, forced, tt.rewritten)
		}
	}
}

func TestReach(t *testing.T) {
	q := retentionQueryable(t, Retention{Raw: time.Hour})
	for query, want := range map[string]time.Duration{
		`x`:                               5 * time.Minute,
		`rate(x[1h])`:                     time.Hour,
		`rate(x[1h] offset 1d)`:           25 * time.Hour,
		`max_over_time(rate(x[5m])[1d:])`: 24*time.Hour + 5*time.Minute,
		`x + rate(y[2h])`:                 2 * time.Hour,
		`1`:                               0,
	} {
		expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
		if err != nil {
			t.Fatal(err)
		}
		if got := q.reach(expr); got != want {
			t.Errorf("%s: reach %s, want %s", query, got, want)
		}
	}
}

func TestMergeWindows(t *testing.T) {
	w := func(end int64, count float64) downsample.Window { return downsample.Window{End: end, Count: count} }
	got := mergeWindows([]downsample.Window{w(1, 2), w(2, 1), w(4, 3)}, []downsample.Window{w(2, 2), w(3, 1), w(4, 3), w(5, 1)})
	want := []downsample.Window{w(1, 2), w(2, 2), w(3, 1), w(4, 3), w(5, 1)}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestViewSamples(t *testing.T) {
	stale := math.Float64frombits(value.StaleNaN)
	ws := downsample.Downsample([]model.Sample{{T: 10_000, V: 5}, {T: 20_000, V: 8}, {T: 30_000, V: 2}, {T: 70_000, V: 4}}, 60_000)
	raw := []model.Sample{{T: 125_000, V: 6}, {T: 130_000, V: stale}, {T: 140_000, V: 1}}
	tests := map[string][]model.Sample{
		ViewCount:   {{T: 60_000, V: 3}, {T: 120_000, V: 1}, {T: 125_000, V: 1}, {T: 140_000, V: 1}},
		ViewSum:     {{T: 60_000, V: 15}, {T: 120_000, V: 4}, {T: 125_000, V: 6}, {T: 130_000, V: stale}, {T: 140_000, V: 1}},
		ViewMax:     {{T: 60_000, V: 8}, {T: 120_000, V: 4}, {T: 125_000, V: 6}, {T: 130_000, V: stale}, {T: 140_000, V: 1}},
		ViewLast:    {{T: 30_000, V: 2}, {T: 70_000, V: 4}, {T: 125_000, V: 6}, {T: 130_000, V: stale}, {T: 140_000, V: 1}},
		ViewCounter: {{T: 10_000, V: 5}, {T: 10_001, V: 8}, {T: 30_000, V: 2}, {T: 70_000, V: 4}, {T: 125_000, V: 6}, {T: 130_000, V: stale}, {T: 140_000, V: 1}},
	}
	for view, want := range tests {
		got := viewSamples(view, 60_000, ws, raw)
		if len(got) != len(want) {
			t.Fatalf("%s: got %v, want %v", view, got, want)
		}
		for i := range want {
			if got[i].T != want[i].T || math.Float64bits(got[i].V) != math.Float64bits(want[i].V) {
				t.Fatalf("%s: got %v, want %v", view, got, want)
			}
		}
	}
}

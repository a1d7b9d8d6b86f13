package main

import (
	"context"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/grpc"

	"github.com/vigil-tsdb/vigil/compactor"
	"github.com/vigil-tsdb/vigil/ingester"
	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/model/downsample"
	"github.com/vigil-tsdb/vigil/querier"
	"github.com/vigil-tsdb/vigil/storage"
)

// tierStack is one ingester's storage with its compactor, served over
// loopback gRPC, and a querier with the PromQL engine over it: the read
// path of a single node, without HTTP. A stack of several replicas
// (newTierReplicas) has one storage and compactor per replica, and one
// querier over all of them.
type tierStack struct {
	db      *storage.DB
	comp    *compactor.Compactor
	qbl     *querier.Queryable
	engine  *promql.Engine
	cleanup func()
	clients []ingesterpb.IngesterClient // of the replicas, for writes

	replicas []*tierReplica
}

// tierReplica is one ingester of a tierStack.
type tierReplica struct {
	db   *storage.DB
	comp *compactor.Compactor
}

// newTierStack opens the stack over dir; small shrinks Badger's cache and
// memtables for tests (benchmarks use the defaults).
func newTierStack(t *testing.T, dir string, ccfg compactor.Config, small bool) *tierStack {
	t.Helper()
	return newTierReplicas(t, []string{dir}, ccfg, small)
}

// newTierReplicas opens one ingester per directory, every series held by
// all of them, and a querier that waits for every one (replication factor
// and quorum len(dirs)): the replicas of TestTierReplicasMerge each miss
// samples, which no write quorum would let them, so an answer without one
// of them (the querier hedges a slow one away when the quorum allows) is
// incomplete.
func newTierReplicas(t *testing.T, dirs []string, ccfg compactor.Config, small bool) *tierStack {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	st := &tierStack{}
	var closers []func()
	var ings []querier.Ingester
	for i, dir := range dirs {
		scfg := storage.DefaultConfig()
		scfg.Dir = dir
		scfg.FlushInterval = time.Hour
		if small {
			scfg.BadgerCacheSize, scfg.BadgerMemTableSize = 16<<20, 16<<20
		}
		db, err := storage.Open(scfg, logger, nil)
		if err != nil {
			t.Fatal(err)
		}
		comp, err := compactor.New(ccfg, db, logger, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ing, err := ingester.New(ingester.DefaultConfig(), db, logger, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ing.SetTierReader(func(ctx context.Context, tier uint8, mint, maxt int64, ms ...*labels.Matcher) ([]downsample.Series, error) {
			return compactor.Windows(ctx, db, tier, mint, maxt, ms...)
		})
		srv := grpc.NewServer(ingesterpb.ServerOptions()...)
		ingesterpb.RegisterIngesterServer(srv, ing)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		conn, err := ingesterpb.Dial(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		st.replicas = append(st.replicas, &tierReplica{db: db, comp: comp})
		st.clients = append(st.clients, conn)
		ings = append(ings, querier.Ingester{Name: "ingester-" + strconv.Itoa(i), Client: conn, Healthy: true})
		closers = append(closers, func() {
			conn.Close()
			srv.Stop()
			if err := db.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	st.db, st.comp = st.replicas[0].db, st.replicas[0].comp
	qcfg := querier.DefaultConfig()
	qcfg.Retention = querier.Retention{Raw: ccfg.RetentionRaw, Minute: ccfg.RetentionMinute, Hour: ccfg.RetentionHour}
	qbl, err := querier.New(qcfg, func() ([]querier.Ingester, querier.Replication) {
		return ings, querier.Replication{Factor: len(ings), Quorum: len(ings)}
	}, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	st.qbl, st.engine = qbl, querier.NewEngine(qcfg, logger, prometheus.NewRegistry())
	st.cleanup = func() {
		for _, c := range closers {
			c()
		}
	}
	return st
}

// rangeQuery runs q at res (rewritten for the tiers, as the API does) and
// returns its series by labels.
func (st *tierStack) rangeQuery(t *testing.T, res querier.Resolution, q string, start, end int64, step time.Duration) map[string][]promql.FPoint {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := querier.RewriteForTiers(expr)
	if err != nil {
		t.Fatal(err)
	}
	ctx := querier.WithResolution(context.Background(), res)
	qry, err := st.engine.NewRangeQuery(ctx, st.qbl, nil, rw.String(), time.UnixMilli(start), time.UnixMilli(end), step)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	r := qry.Exec(ctx)
	if r.Err != nil {
		t.Fatalf("%s at %s: %v", q, res, r.Err)
	}
	m, err := r.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]promql.FPoint, len(m))
	for _, s := range m {
		out[s.Metric.String()] = append([]promql.FPoint(nil), s.Floats...)
	}
	return out
}

// tierData is the 40-day data set of TestTiersEqualRaw: counters with
// integer increments and resets, integer gauges, float gauges; most scraped
// every 30 minutes (to keep the test's run time under the race detector),
// every 20th every 30 s with jitter for the last 2 days.
func tierData(series int, from, to int64) []model.Series {
	out := make([]model.Series, 0, series)
	for i := range series {
		r := rand.New(rand.NewPCG(uint64(i), 7))
		kind := []string{"tier_requests_total", "tier_queue_length", "tier_temperature"}[i%3]
		lset := labels.FromStrings("__name__", kind, "job", "tiers", "i", strconv.Itoa(i))
		interval, jitter := int64(30*time.Minute/time.Millisecond), int64(0)
		start := from
		if i%20 == 0 {
			interval, jitter = 30_000, 3_000
			start = to - 2*24*3_600_000 // dense series only in the last 2 days
		}
		var (
			smps []model.Sample
			v    float64
		)
		for t := start; t < to; t += interval {
			ts := t + 1 + r.Int64N(jitter+1)
			switch kind {
			case "tier_requests_total":
				if r.IntN(40) == 0 {
					v = float64(r.IntN(3)) // a restart
				} else {
					v += float64(r.IntN(50))
				}
			case "tier_queue_length":
				v = math.Max(0, v+float64(r.IntN(21)-10))
			default:
				v += r.NormFloat64()
			}
			smps = append(smps, model.Sample{T: ts, V: v})
		}
		out = append(out, model.Series{Labels: lset, Samples: smps})
	}
	return out
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTiersEqualRaw is issue 5's acceptance test: 40 days of 2,000 series
// (200 under the race detector; make test also runs it without)
// compacted with a fake clock; queries at a 1 h step over the 1 h and 1 m
// tiers equal the same queries over raw (max, min, count exactly; sums of
// integers exactly, of floats to 1e-12; avg and rate within 1 %). Then
// retention at a clock 8 days later drops raw days from disk, and the tiers
// still answer the same.
func TestTiersEqualRaw(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 40 days of data")
	}
	const days = 40
	series := 2000
	if raceEnabled {
		series = 200 // the full size runs in make test without -race
	}
	day0 := storage.DayOf(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	from, to := storage.DayStart(day0), storage.DayStart(day0+days)
	dir := t.TempDir()
	long := compactor.DefaultConfig()
	long.RetentionRaw, long.RetentionMinute, long.RetentionHour = 400*24*time.Hour, 400*24*time.Hour, 400*24*time.Hour
	st := newTierStack(t, dir, long, true)
	ctx := context.Background()
	start := time.Now()
	data := tierData(series, from, to)
	n := 0
	for i := 0; i < len(data); i += 50 {
		batch := data[i:min(i+50, len(data))]
		want := model.CountSamples(batch)
		res, err := st.db.Backfill(ctx, batch)
		if err != nil || res.Stored != want {
			t.Fatalf("backfill: %v; stored %d of %d %+v", err, res.Stored, want, res.Rejections)
		}
		n += want
	}
	t.Logf("wrote %d samples of %d series over %d days in %s", n, series, days, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	stats, err := st.comp.RunOnce(ctx, time.UnixMilli(to+3*3_600_000))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compacted in %s: 1m %d days %d windows %d B; 1h %d days %d windows %d B", time.Since(start).Round(time.Millisecond),
		len(stats.Compacted[1]), stats.Windows[1], stats.Bytes[1], len(stats.Compacted[2]), stats.Windows[2], stats.Bytes[2])
	if len(stats.Compacted[1]) < days || len(stats.Compacted[2]) < days {
		t.Fatalf("compacted %d 1m and %d 1h days, want at least %d each", len(stats.Compacted[1]), len(stats.Compacted[2]), days)
	}

	type check struct {
		q       string
		exact   bool    // bit for bit
		rel     float64 // else relative tolerance
		minRate bool    // compare only points with both values ≥ 1e-3 (rates of idle counters are ~0)
		// births: the points whose range holds the start of the dense
		// series are counted apart (extrapolation there uses the average
		// sample interval, which windows keep only where the counter view
		// spreads them; docs/downsampling.md); their worst difference is
		// logged, and held to rel too.
		births time.Duration
	}
	checks := []check{
		{q: `max_over_time({job="tiers"}[1h])`, exact: true},
		{q: `min_over_time({job="tiers"}[6h])`, exact: true},
		{q: `count_over_time({job="tiers"}[3h])`, exact: true},
		{q: `sum_over_time({__name__=~"tier_requests_total|tier_queue_length"}[2h])`, exact: true},
		{q: `sum_over_time(tier_temperature[2h])`, rel: 1e-12},
		{q: `avg_over_time({job="tiers"}[1h])`, rel: 0.01},
		{q: `rate(tier_requests_total[1h])`, rel: 0.01, minRate: true, births: time.Hour},
		{q: `increase(tier_requests_total[6h])`, rel: 0.01, minRate: true, births: 6 * time.Hour},
		{q: `sum(rate(tier_requests_total[3h]))`, rel: 0.01, births: 3 * time.Hour},
		{q: `tier_queue_length`, exact: true},
	}
	qFrom, qTo := from+24*3_600_000, to // the first day has no 6 h history
	denseFrom := to - 2*24*3_600_000    // tierData's dense series start
	compare := func(t *testing.T, res querier.Resolution, c check, raw map[string][]promql.FPoint) {
		got := st.rangeQuery(t, res, c.q, qFrom, qTo, time.Hour)
		if len(got) != len(raw) {
			t.Fatalf("%s: %d series at %s, %d over raw", c.q, len(got), res, len(raw))
		}
		points, worst, atBirth, worstAtBirth := 0, 0.0, 0, 0.0
		for k, want := range raw {
			g := got[k]
			if len(g) != len(want) {
				t.Fatalf("%s %s: %d points at %s, %d over raw", c.q, k, len(g), res, len(want))
			}
			for i := range want {
				if g[i].T != want[i].T {
					t.Fatalf("%s %s: point %d at %d at %s, %d over raw", c.q, k, i, g[i].T, res, want[i].T)
				}
				a, b := g[i].F, want[i].F
				if c.exact {
					if math.Float64bits(a) != math.Float64bits(b) {
						t.Fatalf("%s %s at %s: %v at %s, %v over raw", c.q, k, time.UnixMilli(g[i].T).UTC(), a, res, b)
					}
					points++
					continue
				}
				if c.minRate && (a < 1e-3 || b < 1e-3) {
					continue
				}
				d := math.Abs(a-b) / math.Max(math.Abs(b), 1e-300)
				if a == b {
					d = 0
				}
				if c.births > 0 && g[i].T > denseFrom && g[i].T <= denseFrom+c.births.Milliseconds() {
					atBirth++
					worstAtBirth = max(worstAtBirth, d)
				} else {
					worst = max(worst, d)
					points++
				}
				if d > c.rel {
					t.Fatalf("%s %s at %s: %v at %s, %v over raw (%.3g relative, allowed %g)", c.q, k, time.UnixMilli(g[i].T).UTC(), a, res, b, d, c.rel)
				}
			}
		}
		t.Logf("%-70s %s: %d series, %d points equal to raw (worst relative difference %.2g)", c.q, res, len(raw), points, worst)
		if atBirth > 0 {
			t.Logf("%-70s %s: %d points whose range holds a series' start: worst relative difference %.2g", c.q, res, atBirth, worstAtBirth)
		}
	}
	raws := map[string]map[string][]promql.FPoint{}
	for _, c := range checks {
		raws[c.q] = st.rangeQuery(t, querier.ResolutionRaw, c.q, qFrom, qTo, time.Hour)
		if len(raws[c.q]) == 0 {
			t.Fatalf("%s: no series over raw", c.q)
		}
		for _, res := range []querier.Resolution{querier.ResolutionHour, querier.ResolutionMinute} {
			compare(t, res, c, raws[c.q])
		}
	}

	// Retention at a clock 8 days after the data: raw past 7 days goes.
	// Sizes are measured with the DB closed (an open Badger counts its
	// preallocated value log).
	st.cleanup()
	before := dirBytes(t, dir)
	short := compactor.DefaultConfig()
	st = newTierStack(t, dir, short, true)
	stats, err = st.comp.RunOnce(ctx, time.UnixMilli(to+8*24*3_600_000))
	if err != nil {
		t.Fatal(err)
	}
	rawDays, err := st.db.TierDays(storage.TierRaw)
	if err != nil {
		t.Fatal(err)
	}
	st.cleanup()
	after := dirBytes(t, dir)
	t.Logf("retention dropped %d raw and %d 1m days; %d raw days left; data dir %.1f -> %.1f MB", len(stats.Dropped[0]), len(stats.Dropped[1]), len(rawDays), float64(before)/1e6, float64(after)/1e6)
	if len(stats.Dropped[0]) < days-8 || after >= before {
		t.Fatalf("retention dropped %d raw days (want ≥ %d) and the data dir went %d -> %d bytes", len(stats.Dropped[0]), days-8, before, after)
	}
	st = newTierStack(t, dir, short, true)
	defer st.cleanup()
	for _, c := range checks {
		compare(t, querier.ResolutionHour, c, raws[c.q])
	}
}

// TestTierReplicasMerge reads the tiers through two replicas that each
// missed samples the other holds (as after an outage that repair has not
// restored yet): in every window one replica is whole, so merging them
// window by window (the one with more samples wins) must give what raw
// data, merged sample by sample, gives.
func TestTierReplicasMerge(t *testing.T) {
	const days = 3
	day0 := storage.DayOf(time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	from, to := storage.DayStart(day0), storage.DayStart(day0+days)
	long := compactor.DefaultConfig()
	long.RetentionRaw, long.RetentionMinute, long.RetentionHour = 400*24*time.Hour, 400*24*time.Hour, 400*24*time.Hour
	st := newTierReplicas(t, []string{t.TempDir(), t.TempDir()}, long, true)
	defer st.cleanup()
	ctx := context.Background()

	full := tierDenseData(60, from, to)
	r := rand.New(rand.NewPCG(3, 3))
	holes := 0
	parts := [2][]model.Series{}
	for _, s := range full {
		var kept [2][]model.Sample
		for h := from; h < to; h += 3_600_000 {
			// In about one hour in six one replica (the other half the
			// time) misses up to all samples of the hour.
			lose, frac := -1, 0.0
			if r.IntN(6) == 0 {
				lose, frac = r.IntN(2), r.Float64()
				holes++
			}
			for _, smp := range s.Samples {
				if smp.T < h || smp.T >= h+3_600_000 {
					continue
				}
				for i := range 2 {
					if i != lose || r.Float64() >= frac {
						kept[i] = append(kept[i], smp)
					}
				}
			}
		}
		for i := range 2 {
			if len(kept[i]) > 0 {
				parts[i] = append(parts[i], model.Series{Labels: s.Labels, Samples: kept[i]})
			}
		}
	}
	for i, rep := range st.replicas {
		if res, err := rep.db.Backfill(ctx, parts[i]); err != nil || res.Stored != model.CountSamples(parts[i]) {
			t.Fatalf("replica %d: backfill: %v; stored %d of %d", i, err, res.Stored, model.CountSamples(parts[i]))
		}
		if _, err := rep.comp.RunOnce(ctx, time.UnixMilli(to+3*3_600_000)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d series, %d samples; %d hours where one replica misses samples", len(full), model.CountSamples(full), holes)

	qFrom, qTo := from+6*3_600_000, to
	for _, q := range []string{
		`max_over_time({job="dense"}[1h])`,
		`count_over_time({job="dense"}[2h])`,
		`sum_over_time(dense_requests_total[1h])`,
		`rate(dense_requests_total[1h])`,
		`increase(dense_requests_total[3h])`,
	} {
		raw := st.rangeQuery(t, querier.ResolutionRaw, q, qFrom, qTo, time.Hour)
		if len(raw) == 0 {
			t.Fatalf("%s: no series over raw", q)
		}
		for _, res := range []querier.Resolution{querier.ResolutionHour, querier.ResolutionMinute} {
			got := st.rangeQuery(t, res, q, qFrom, qTo, time.Hour)
			if len(got) != len(raw) {
				t.Fatalf("%s at %s: %d series, %d over raw", q, res, len(got), len(raw))
			}
			points := 0
			for k, want := range raw {
				g := got[k]
				if len(g) != len(want) {
					t.Fatalf("%s at %s, %s: %d points, %d over raw", q, res, k, len(g), len(want))
				}
				for i := range want {
					if g[i].T != want[i].T || math.Float64bits(g[i].F) != math.Float64bits(want[i].F) {
						t.Fatalf("%s at %s, %s: %v at %s, %v over raw", q, res, k, g[i].F, time.UnixMilli(g[i].T).UTC(), want[i].F)
					}
					points++
				}
			}
			t.Logf("%-45s %s: %d points equal to raw", q, res, points)
		}
	}
}

// tierDenseData is counters and integer gauges scraped every 30 s with
// jitter, counters with a restart every ~4 hours.
func tierDenseData(series int, from, to int64) []model.Series {
	out := make([]model.Series, 0, series)
	for i := range series {
		r := rand.New(rand.NewPCG(uint64(i), 13))
		name := []string{"dense_requests_total", "dense_queue_length"}[i%2]
		lset := labels.FromStrings("__name__", name, "job", "dense", "i", strconv.Itoa(i))
		var (
			smps []model.Sample
			v    float64
		)
		for t := from; t < to; t += 30_000 {
			switch {
			case name == "dense_queue_length":
				v = float64(r.IntN(100))
			case r.IntN(480) == 0:
				v = float64(r.IntN(3)) // a restart
			default:
				v += float64(r.IntN(50))
			}
			smps = append(smps, model.Sample{T: t + 1 + r.Int64N(3_000), V: v})
		}
		out = append(out, model.Series{Labels: lset, Samples: smps})
	}
	return out
}

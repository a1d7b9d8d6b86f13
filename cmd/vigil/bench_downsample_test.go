package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/compactor"
	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/querier"
	"github.com/vigil-tsdb/vigil/storage"
)

// TestBenchDownsample is `make bench-downsample` (skipped unless
// VIGIL_BENCH_DOWNSAMPLE=1): sum(rate(c[1h])) over 30 days at a 1 h step,
// over raw samples and over the 1 h tier, on the same data, through gRPC,
// the querier and the PromQL engine; and the bytes on disk of each tier.
// VIGIL_BENCH_SERIES (default 1000) counters scraped every
// VIGIL_BENCH_INTERVAL (default 60s) for 31 days; VIGIL_BENCH_CPUPROFILE
// writes a CPU profile of the tier queries; VIGIL_BENCH_KEEP_DIR
// keeps the data there (for profiling) instead of a temporary directory.
func TestBenchDownsample(t *testing.T) {
	if os.Getenv("VIGIL_BENCH_DOWNSAMPLE") != "1" {
		t.Skip("set VIGIL_BENCH_DOWNSAMPLE=1 (make bench-downsample)")
	}
	series, interval := 1000, time.Minute
	if v := os.Getenv("VIGIL_BENCH_SERIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 100_000 {
			t.Fatalf("VIGIL_BENCH_SERIES=%q: want 1..100000", v)
		}
		series = n
	}
	if v := os.Getenv("VIGIL_BENCH_INTERVAL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			t.Fatalf("VIGIL_BENCH_INTERVAL=%q: want a duration ≥ 1s", v)
		}
		interval = d
	}
	const days = 31
	day0 := storage.DayOf(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	from, to := storage.DayStart(day0), storage.DayStart(day0+days)
	dir := t.TempDir()
	if d := os.Getenv("VIGIL_BENCH_KEEP_DIR"); d != "" {
		dir = d // kept after the run, for profiling
	}
	long := compactor.DefaultConfig()
	long.RetentionRaw, long.RetentionMinute, long.RetentionHour = 400*24*time.Hour, 400*24*time.Hour, 400*24*time.Hour
	st := newTierStack(t, dir, long, false)
	ctx := context.Background()

	start := time.Now()
	lastReport := start
	step := interval.Milliseconds()
	total := 0
	for i := 0; i < series; i += 100 {
		var batch []model.Series
		for j := i; j < min(i+100, series); j++ {
			r := rand.New(rand.NewPCG(uint64(j), 11))
			lset := labels.FromStrings("__name__", "bench_requests_total", "job", "bench", "instance", "host-"+strconv.Itoa(j))
			smps := make([]model.Sample, 0, (to-from)/step)
			v := 0.0
			for ts := from + r.Int64N(step); ts < to; ts += step {
				if r.IntN(20_000) == 0 {
					v = 0 // a restart every ~2 weeks at 1 m
				}
				v += float64(r.IntN(100))
				smps = append(smps, model.Sample{T: ts, V: v})
			}
			batch = append(batch, model.Series{Labels: lset, Samples: smps})
		}
		n := model.CountSamples(batch)
		res, err := st.db.Backfill(ctx, batch)
		if err != nil || res.Stored != n {
			t.Fatalf("backfill: %v; stored %d of %d", err, res.Stored, n)
		}
		total += n
		if done := i + len(batch); time.Since(lastReport) > 5*time.Second || done == series {
			fmt.Fprintf(os.Stderr, "bench-downsample: wrote %d of %d series (%s)\n", done, series, time.Since(start).Round(time.Second))
			lastReport = time.Now()
		}
	}
	wrote := time.Since(start)
	st.cleanup()
	rawBytes := dirBytes(t, dir)
	st = newTierStack(t, dir, long, false)
	fmt.Fprintf(os.Stderr, "bench-downsample: compacting %d days\n", days)
	start = time.Now()
	stats, err := st.comp.RunOnce(ctx, time.UnixMilli(to+3*3_600_000))
	if err != nil {
		t.Fatal(err)
	}
	compacted := time.Since(start)
	st.cleanup()
	allBytes := dirBytes(t, dir)
	st = newTierStack(t, dir, long, false)
	defer st.cleanup()

	const q = `sum(rate(bench_requests_total[1h]))`
	qFrom, qTo := to-30*24*3_600_000, to
	measure := func(res querier.Resolution) (time.Duration, []float64) {
		var (
			took []time.Duration
			vals []float64
		)
		for range 5 {
			s := time.Now()
			m := st.rangeQuery(t, res, q, qFrom, qTo, time.Hour)
			took = append(took, time.Since(s))
			vals = vals[:0]
			for _, pts := range m {
				for _, p := range pts {
					vals = append(vals, p.F)
				}
			}
		}
		slices.Sort(took)
		return took[len(took)/2], vals
	}
	fmt.Fprintln(os.Stderr, "bench-downsample: querying")
	rawT, rawV := measure(querier.ResolutionRaw)
	if p := os.Getenv("VIGIL_BENCH_CPUPROFILE"); p != "" { // of the tier queries only
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
	}
	tierT, tierV := measure(querier.ResolutionHour)
	pprof.StopCPUProfile() // no-op without a profile
	if len(rawV) != len(tierV) || len(rawV) == 0 {
		t.Fatalf("%d points over raw, %d over the tier", len(rawV), len(tierV))
	}
	worst := 0.0
	for i := range rawV {
		worst = max(worst, math.Abs(tierV[i]-rawV[i])/math.Abs(rawV[i]))
	}
	fmt.Printf(`
### Downsampling: %s over 30 days at a 1 h step

%d counters scraped every %s for %d days (%d samples), written with Backfill in %s; compacted in %s.
Median of 5 runs each, through gRPC, the querier and the PromQL engine (one process).

| | raw | 1 h tier | ratio |
| --- | ---: | ---: | ---: |
| query latency | %s | %s | %.1f× faster |
| points, worst relative difference | %d | %d | %.2g |

| tier | windows | aggregate chunk bytes | bytes per window |
| --- | ---: | ---: | ---: |
| 1m | %d | %d | %.1f |
| 1h | %d | %d | %.1f |

Data directory (closed): raw only %.1f MB (%.2f bytes per sample); with both tiers %.1f MB (+%.1f MB).
`, q, series, interval, days, total, wrote.Round(time.Millisecond), compacted.Round(time.Millisecond),
		rawT.Round(time.Millisecond), tierT.Round(time.Millisecond), float64(rawT)/float64(tierT),
		len(rawV), len(tierV), worst,
		stats.Windows[1], stats.Bytes[1], float64(stats.Bytes[1])/float64(max(stats.Windows[1], 1)),
		stats.Windows[2], stats.Bytes[2], float64(stats.Bytes[2])/float64(max(stats.Windows[2], 1)),
		float64(rawBytes)/1e6, float64(rawBytes)/float64(total), float64(allBytes)/1e6, float64(allBytes-rawBytes)/1e6)
}

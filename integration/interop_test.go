package integration

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPrometheusInterop runs Debian's Prometheus 2.42 scraping a real
// node_exporter and itself every second and remote-writing everything to
// Vigil, then asks both the same PromQL queries over the same window and
// requires the same answers: the same label sets, the same timestamps, and
// values equal within interopRelTol relative (NaN only equals NaN, an
// infinity only the same infinity).
//
// Prometheus 2.42 evaluates PromQL 2.x; Vigil embeds the 3.x engine. The
// 3.0 change that shows up here is that range selectors (and the lookback
// window) became left-open: a sample exactly at t−range is excluded by 3.x
// and included by 2.x. Scrape timestamps are milliseconds on a per-target
// grid (Prometheus aligns them to the scrape schedule), so the test reads
// the sample timestamps back, picks an evaluation phase within the second
// that no sample has, evaluates at whole-second steps from it with
// whole-second ranges, and does the same for the subquery's inner range
// (subquery steps sit on multiples of their step, phase 0). No sample then
// sits on any window's start and the two engines must agree exactly,
// up to floating-point summation order (3.x sums with Kahan compensation),
// which is far inside 1e-9. No other 2.x/3.x difference shows up in these
// queries. As a check that the comparison is sharp: evaluating on a phase
// where samples sit made rate, sum_by, avg_over_time and count_over_time
// differ (the left-open change), the other six still agreeing.
//
// Vigil refuses non-staleness NaN and ±Inf samples by default (400, the
// valid part of the request stored), and Prometheus' own summaries have NaN
// quantiles until they see observations (prometheus_engine_query_duration_seconds,
// prometheus_rule_group_duration_seconds, ... in 2.42), so the queries only
// touch series that never hold NaN: counters, gauges and classic histogram
// buckets. Those NaN series ride in most of Prometheus' batches: Prometheus
// counts every such batch in prometheus_remote_storage_samples_failed_total
// (a 4xx is not retried), while the catch-up check below proves that Vigil
// stored every valid sample of them.
//
// For debugging the harness, VIGIL_INTEROP_TARGET=victoria-metrics writes to
// Debian's VictoriaMetrics instead of Vigil; its PromQL dialect (MetricsQL)
// differs, so the comparison is expected to fail there.
func TestPrometheusInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Prometheus for about 80 s; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 170*time.Second)
	defer cancel()

	target := interopTarget(t)
	ne := startNodeExporter(t,
		"--collector.disable-defaults",
		"--collector.cpu", "--collector.meminfo", "--collector.diskstats",
		"--collector.netdev", "--collector.filesystem", "--collector.loadavg",
		"--collector.stat", "--collector.vmstat",
	)
	prom := startPrometheus(t, func(self string) string {
		return interopPromConfig(self, ne.addr, target.writeURL)
	})
	promStarted := time.Now()
	prometheus := promAPI{name: "prometheus", base: prom.URL()}

	// Fail early and clearly if data does not flow at all.
	took := eventually(t, 30*time.Second, 250*time.Millisecond, "up == 1 for both scrape jobs on both sides", func() error {
		for _, api := range []promAPI{prometheus, target.api} {
			r, err := api.instant(ctx, `up == 1`, time.Now())
			if err != nil {
				return err
			}
			if len(r.Series) != 2 {
				return fmt.Errorf("%s has %d up series, want 2: %s", api.name, len(r.Series), r.format())
			}
		}
		return nil
	})
	t.Logf("both scrape jobs visible on %s %v after Prometheus was ready", target.name, took.Round(time.Millisecond))

	select {
	case <-time.After(time.Until(promStarted.Add(interopRunFor))):
	case <-ctx.Done():
		t.Fatalf("interrupted while collecting data: %v", ctx.Err())
	}

	// Evaluation times: whole seconds minus 2 s (every sample at or before
	// them has certainly been appended) plus a phase no sample has.
	now := time.Now()
	dataWindow := (time.Since(promStarted) + 30*time.Second).Truncate(time.Second)
	phases := samplePhases(ctx, t, prometheus, now, dataWindow)
	evalPhase, innerRange, err := choosePhases(phases)
	if err != nil {
		t.Fatal(err)
	}
	end := now.Truncate(time.Second).Add(-2 * time.Second).Add(evalPhase)
	start := end.Add(-interopRangeWindow)
	t.Logf("sample phases within the second (ms): %v; evaluating at phase %v, subquery inner range %s, range %s .. %s step %v",
		sortedKeys(phases), evalPhase, innerRange, start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), interopStep)

	took = awaitCatchUp(ctx, t, prometheus, target.api, end, dataWindow)
	t.Logf("%s caught up with Prometheus at %s %v after the evaluation time was fixed", target.name, end.Format(time.RFC3339Nano), took.Round(time.Millisecond))

	for _, q := range interopQueries {
		t.Run(q.name, func(t *testing.T) {
			expr := q.expr
			if strings.Contains(expr, "%s") {
				expr = fmt.Sprintf(expr, innerRange)
			}
			var want, got *queryResult
			var errWant, errGot error
			if q.isRange {
				want, errWant = prometheus.rangeQuery(ctx, expr, start, end, interopStep)
				got, errGot = target.api.rangeQuery(ctx, expr, start, end, interopStep)
			} else {
				want, errWant = prometheus.instant(ctx, expr, end)
				got, errGot = target.api.instant(ctx, expr, end)
			}
			if errWant != nil || errGot != nil {
				t.Fatalf("%s\nprometheus: %v\n%s: %v", expr, errWant, target.name, errGot)
			}
			if !meaningful(want) {
				t.Fatalf("%s: Prometheus' answer has no finite value, so comparing it proves nothing (pick another query):\n%s", expr, want.format())
			}
			for _, r := range []struct {
				name string
				res  *queryResult
			}{{"prometheus", want}, {target.name, got}} {
				if len(r.res.Warnings) > 0 || len(r.res.Infos) > 0 {
					t.Logf("%s annotations: warnings %q, infos %q", r.name, r.res.Warnings, r.res.Infos)
				}
			}
			if diffs := diffResults(want, got, interopRelTol); len(diffs) > 0 {
				t.Errorf("%s\n%s disagrees with Prometheus (%d differences):\n  %s\n\nprometheus answer:\n%s\n\n%s answer:\n%s",
					expr, target.name, len(diffs), strings.Join(limitLines(diffs, 50), "\n  "), want.format(), target.name, got.format())
				return
			}
			t.Logf("%s: same answer (%v)", expr, want)
		})
	}

	logRemoteWriteStats(ctx, t, prometheus)
}

const (
	// interopRunFor is how long Prometheus collects before the queries.
	interopRunFor = 75 * time.Second
	// interopRangeWindow and interopStep shape the range queries: 16
	// evaluation steps, all on the same phase as the instant queries.
	interopRangeWindow = 45 * time.Second
	interopStep        = 3 * time.Second
	// interopRelTol is the relative tolerance on every value; it is not to
	// be widened to hide a difference.
	interopRelTol = 1e-9
)

// interopMetrics are the metrics the queries read; the catch-up check
// requires their sample counts to agree before any query runs. None ever
// holds a NaN sample (see the test's comment).
var interopMetrics = []string{
	"up",
	"node_cpu_seconds_total",
	"node_memory_MemAvailable_bytes",
	"node_memory_MemTotal_bytes",
	"node_network_receive_bytes_total",
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"prometheus_http_request_duration_seconds_bucket",
}

// interopQueries are evaluated at the chosen instant or over the range
// window. Every range is whole seconds so that its start has the
// evaluation phase; %s in the subquery is its inner range, chosen by
// choosePhases.
var interopQueries = []struct {
	name    string
	expr    string
	isRange bool
}{
	{
		name:    "rate",
		expr:    `rate(node_cpu_seconds_total{mode=~"idle|user|system"}[10s])`,
		isRange: true,
	},
	{
		name: "sum_by",
		expr: `sum by (mode) (rate(node_cpu_seconds_total[30s]))`,
	},
	{
		// Prometheus scrapes its own /metrics every second, so this handler's
		// classic histogram always moves.
		name:    "histogram_quantile",
		expr:    `histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket{handler="/metrics"}[30s])))`,
		isRange: true,
	},
	{
		// Per-CPU idle and user seconds are far apart, so there are no ties
		// whose order the engines could resolve differently.
		name: "topk",
		expr: `topk(3, node_cpu_seconds_total)`,
	},
	{
		name: "label_replace",
		expr: `label_replace(rate(node_network_receive_bytes_total[20s]), "nic", "net-$1", "device", "(.+)")`,
	},
	{
		name:    "avg_over_time",
		expr:    `avg_over_time(process_resident_memory_bytes[20s])`,
		isRange: true,
	},
	{
		name: "count_by",
		expr: `count by (mode) (rate(node_cpu_seconds_total[15s]) > 0)`,
	},
	{
		name:    "binary_op",
		expr:    `1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes`,
		isRange: true,
	},
	{
		name: "subquery_max_over_time",
		expr: `max_over_time(rate(process_cpu_seconds_total[%s])[40s:5s])`,
	},
	{
		// Counting samples is where a left-open/left-closed boundary, a lost
		// or a duplicated sample shows first.
		name:    "count_over_time",
		expr:    `count_over_time(up[30s])`,
		isRange: true,
	},
}

// rwTarget is the remote-write receiver under test.
type rwTarget struct {
	name     string
	writeURL string
	api      promAPI
}

func interopTarget(t *testing.T) rwTarget {
	t.Helper()
	switch name := os.Getenv("VIGIL_INTEROP_TARGET"); name {
	case "", "vigil":
		v := startVigil(t)
		return rwTarget{name: "vigil", writeURL: v.URL() + "/api/v1/write", api: promAPI{name: "vigil", base: v.URL()}}
	case "victoria-metrics":
		vm := startVictoriaMetrics(t)
		return rwTarget{name: name, writeURL: vm.URL() + "/api/v1/write", api: promAPI{name: name, base: vm.URL()}}
	default:
		t.Fatalf("VIGIL_INTEROP_TARGET=%q: want vigil or victoria-metrics", name)
		return rwTarget{}
	}
}

// interopPromConfig scrapes node_exporter and Prometheus itself every
// second and remote-writes with a short batch deadline so that data reaches
// the receiver within about a second.
func interopPromConfig(self, nodeExporter, writeURL string) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 800ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [%q]
  - job_name: prometheus
    static_configs:
      - targets: [%q]
remote_write:
  - url: %q
    remote_timeout: 10s
    queue_config:
      batch_send_deadline: 200ms
      max_samples_per_send: 2000
      min_backoff: 50ms
      max_backoff: 1s
`, nodeExporter, self, writeURL)
}

// samplePhases reads back the raw samples of every metric the queries use
// and returns the set of their millisecond offsets within the second.
func samplePhases(ctx context.Context, t *testing.T, api promAPI, at time.Time, window time.Duration) map[int64]bool {
	t.Helper()
	q := fmt.Sprintf(`{__name__=~%q}[%ds]`, strings.Join(interopMetrics, "|"), int(window.Seconds()))
	r, err := api.instant(ctx, q, at)
	if err != nil {
		t.Fatalf("read raw sample timestamps: %v", err)
	}
	phases := make(map[int64]bool)
	for _, s := range r.Series {
		for _, p := range s.Points {
			phases[((p.T%1000)+1000)%1000] = true
		}
	}
	if len(phases) == 0 {
		t.Fatalf("no raw samples from Prometheus for %s", q)
	}
	return phases
}

// choosePhases picks the evaluation phase (never 0: subquery steps sit
// there) so that with whole-second ranges no window starts on a sample, and
// the subquery's inner range (10 s plus q ms) so that windows starting at
// phase −q do not either.
func choosePhases(phases map[int64]bool) (time.Duration, string, error) {
	candidates := []int64{500, 250, 750, 125, 375, 625, 875, 63, 188, 313, 438, 563, 688, 813, 938}
	eval := int64(-1)
	for _, c := range candidates {
		if !phases[c] {
			eval = c
			break
		}
	}
	inner := int64(-1)
	for _, q := range append([]int64{0}, candidates...) {
		if !phases[(1000-q)%1000] {
			inner = q
			break
		}
	}
	if eval < 0 || inner < 0 {
		return 0, "", fmt.Errorf("samples sit on every candidate phase %v (phases seen: %v)", candidates, sortedKeys(phases))
	}
	return time.Duration(eval) * time.Millisecond, fmt.Sprintf("%dms", 10000+inner), nil
}

// awaitCatchUp waits until, for every metric the queries use, the receiver
// holds exactly the samples Prometheus holds up to end: per series, the
// same count_over_time over the whole run. A receiver that loses or
// duplicates samples never gets there, and the test fails with both
// answers.
func awaitCatchUp(ctx context.Context, t *testing.T, prometheus, target promAPI, end time.Time, window time.Duration) time.Duration {
	t.Helper()
	return eventually(t, 60*time.Second, 500*time.Millisecond, target.name+" holding every sample Prometheus holds", func() error {
		for _, m := range interopMetrics {
			q := fmt.Sprintf("count_over_time(%s[%ds])", m, int(window.Seconds()))
			want, err := prometheus.instant(ctx, q, end)
			if err != nil {
				return err
			}
			got, err := target.instant(ctx, q, end)
			if err != nil {
				return err
			}
			if len(want.Series) == 0 {
				return fmt.Errorf("prometheus has no samples of %s", m)
			}
			if diffs := diffResults(want, got, 0); len(diffs) > 0 {
				return fmt.Errorf("%s (%d differences):\n  %s\nprometheus answer:\n%s\n%s answer:\n%s",
					q, len(diffs), strings.Join(limitLines(diffs, 20), "\n  "), want.format(), target.name, got.format())
			}
		}
		return nil
	})
}

// meaningful reports whether r has at least one finite value.
func meaningful(r *queryResult) bool {
	for _, s := range r.Series {
		for _, p := range s.Points {
			if !math.IsNaN(p.V) && !math.IsInf(p.V, 0) {
				return true
			}
		}
	}
	return false
}

// logRemoteWriteStats logs Prometheus' remote-write counters: samples sent,
// failed (a 4xx drops the whole batch on Prometheus' side, even where the
// receiver stored its valid part), retried and dropped.
func logRemoteWriteStats(ctx context.Context, t *testing.T, prometheus promAPI) {
	t.Helper()
	r, err := prometheus.instant(ctx, `{__name__=~"prometheus_remote_storage_(samples|metadata)_(total|failed_total|retried_total|dropped_total)"}`, time.Now())
	if err != nil {
		t.Logf("prometheus remote-write counters unavailable: %v", err)
		return
	}
	var b strings.Builder
	for _, s := range r.Series {
		fmt.Fprintf(&b, "\n  %s %v", s.Labels.Get("__name__"), s.Points[0].V)
	}
	t.Logf("prometheus remote-write counters:%s", b.String())
}

func limitLines(lines []string, n int) []string {
	if len(lines) <= n {
		return lines
	}
	return append(lines[:n:n], fmt.Sprintf("... and %d more", len(lines)-n))
}

func sortedKeys(m map[int64]bool) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

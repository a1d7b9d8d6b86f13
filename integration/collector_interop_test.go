package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// TestCollectorNodeExporterInterop has a real node_exporter (Debian 1.5)
// scraped every 2 s by Vigil's collector (single node, target registered
// through the registry API) and by a real Prometheus (Debian 2.42) side by
// side, and requires the same outcome at one evaluation time:
//
//   - the same label sets for every series of job="node" (instant query
//     {job="node"} and /api/v1/series over the run). Both add the same five
//     synthetic series, up, scrape_duration_seconds, scrape_samples_scraped,
//     scrape_samples_post_metric_relabeling and scrape_series_added, so
//     nothing is excluded;
//   - up 1 on both, the same number of series per node_* metric name, the
//     same values for series that do not change while node_exporter runs
//     (MemTotal, file system sizes, info metrics, boot time, the sample
//     counts of the synthetic series, and the NaN and ±Inf values of the
//     textfile below), and sum(rate(node_cpu_seconds_total[10s])) within
//     neInteropRateTol;
//   - after node_exporter is killed: up 0 on both, every node_exporter
//     series stale from exactly the timestamp of the first failed scrape
//     (the sample before it still answers 1 ms earlier), only the five
//     synthetic series left with the same values (duration aside), and
//     health "down" on both targets APIs.
//
// NaN and ±Inf: the collectors chosen here expose no NaN of their own on
// this machine, so the textfile collector adds a NaN gauge, two ±Inf gauges
// and a summary with NaN quantiles, as client libraries expose before the
// first observation. Vigil refuses non-staleness NaN and ±Inf by default
// (-limits.reject-nan-inf, model.Limits.RejectNaNInf); Prometheus stores
// them. So the Vigil compared with Prometheus runs with
// -limits.reject-nan-inf=false (whether that should become the default for
// scraped data is an open decision), and a second Vigil with the default
// scrapes the same node_exporter: it must hold exactly Prometheus' series
// minus those whose value is NaN or ±Inf, count the refusals in
// vigil_collector_batcher_rejected_samples_total{reason="invalid_value"}
// and log them, so they are refused visibly, not lost silently.
//
// One difference is expected and rewritten away: Prometheus 3 formats the
// quantile label of summaries and the le label of classic histogram
// buckets as OpenMetrics floats on ingestion (CHANGELOG 3.0.0, #15164), and
// Vigil's collector parses with Prometheus 3's textparse, so it stores
// go_gc_duration_seconds{quantile="0.0"} and {quantile="1.0"} where
// Prometheus 2.42 stores quantile="0" and "1". The test applies that rule
// to Prometheus' label sets (types from its /api/v1/metadata) before
// comparing and logs what it rewrote; any other difference fails.
//
// Timestamps differ by design: Prometheus stamps samples with its scrape
// time, Vigil with the scheduled slot start (docs/collector.md "Slots"),
// so the test compares instant answers at one time (both within the 5 m
// lookback), never raw samples.
func TestCollectorNodeExporterInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs node_exporter, Prometheus and two Vigils for about 25 s; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()

	textDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(textDir, "interop.prom"), []byte(neInteropTextfile), 0o644); err != nil {
		t.Fatalf("write textfile: %v", err)
	}
	ne := startNodeExporter(t,
		"--collector.disable-defaults",
		"--collector.cpu", "--collector.meminfo", "--collector.loadavg",
		"--collector.filesystem", "--collector.netdev", "--collector.stat",
		"--collector.time", "--collector.uname", "--collector.vmstat",
		"--collector.textfile", "--collector.textfile.directory="+textDir,
		// Interfaces that containers started by other tests add and remove
		// would change the series set between the two scrapers' scrapes.
		"--collector.netdev.device-exclude=^(lo|veth.*|br-.*|docker.*)$",
	)
	lenient := startVigil(t, "-limits.reject-nan-inf=false")
	strict := startVigil(t)
	prom := startPrometheus(t, func(string) string { return neInteropPromConfig(ne.addr) })
	x := &neInterop{
		t: t, ctx: ctx, ne: ne, strict: strict,
		prometheus:  promAPI{name: "prometheus", base: prom.URL()},
		vigil:       promAPI{name: "vigil", base: lenient.URL()},
		vigilStrict: promAPI{name: "vigil-strict", base: strict.URL()},
	}
	x.all = []promAPI{x.prometheus, x.vigil, x.vigilStrict}

	for _, v := range []*vigilProc{lenient, strict} {
		if err := neInteropRegister(ctx, v.URL(), ne.addr); err != nil {
			t.Fatal(err)
		}
	}
	registered := time.Now()
	x.warmUp(registered)
	x.compareSeriesSets(registered)
	x.compareValues()
	x.checkRefusals()
	if t.Failed() {
		return
	}
	x.checkDown()
}

// neInterop is the state TestCollectorNodeExporterInterop's phases share.
type neInterop struct {
	t                              *testing.T
	ctx                            context.Context
	ne                             *proc
	strict                         *vigilProc
	prometheus, vigil, vigilStrict promAPI
	all                            []promAPI

	at    time.Time         // the evaluation time of the comparisons
	types map[string]string // metric family → type, from Prometheus
	// want is Prometheus' {job="node"} at at, with 3.x label values.
	want *queryResult
	// nonFinite holds the label sets (labels.String()) of want's series
	// whose value is NaN or ±Inf.
	nonFinite map[string]bool
}

// warmUp waits until every side has scraped neInteropWarmScrapes times,
// covering more than the rate window, and fixes the evaluation time.
// (Prometheus 2.42 starts scraping up to 5 s after it is ready: its scrape
// manager applies targets on a 5 s tick.)
func (x *neInterop) warmUp(registered time.Time) {
	t := x.t
	q := fmt.Sprintf(`count_over_time(up{job="node"}[1m]) >= %d and up{job="node"} == 1`, neInteropWarmScrapes)
	took := eventually(t, 45*time.Second, 500*time.Millisecond, "several scrapes with up == 1 on every side", func() error {
		for _, api := range x.all {
			r, err := api.instant(x.ctx, q, time.Now())
			if err != nil {
				return err
			}
			if len(r.Series) != 1 {
				return fmt.Errorf("%s: %s", api.name, r.format())
			}
		}
		return nil
	})
	t.Logf("%d scrapes with up == 1 on every side %v after registering the target", neInteropWarmScrapes, took.Round(time.Millisecond))
	// Every sample stamped at or before at has been appended on every side:
	// a scrape of this node_exporter and its push take milliseconds.
	x.at = time.Now().Add(-time.Second)
	x.logPhases()
}

// compareSeriesSets requires the same label sets of job node on
// Prometheus and Vigil, at the evaluation time and over the run, and on
// the strict Vigil Prometheus' minus exactly the non-finite ones.
// Prometheus' label sets are first rewritten the way Prometheus 3 (and so
// Vigil's parser) normalises them.
func (x *neInterop) compareSeriesSets(registered time.Time) {
	t := x.t
	var err error
	if x.types, err = neInteropMetricTypes(x.ctx, x.prometheus); err != nil {
		t.Fatal(err)
	}
	sets := make(map[string]*queryResult, len(x.all))
	for _, api := range x.all {
		r, err := api.instant(x.ctx, `{job="node"}`, x.at)
		if err != nil {
			t.Fatal(err)
		}
		if api == x.prometheus {
			var rewritten []string
			r, rewritten = neInteropNormalizeV3(r, x.types)
			t.Logf("prometheus: %d label sets differ by Prometheus 3's le/quantile normalisation (CHANGELOG 3.0.0, #15164), compared as 3.x writes them: %s",
				len(rewritten), strings.Join(rewritten, "; "))
		}
		sets[api.name] = r
		t.Logf("%s: %d series of job node at %s: %s", api.name, len(r.Series), x.at.Format(time.RFC3339Nano), neInteropGroups(r))
	}
	x.want = sets[x.prometheus.name]
	x.nonFinite = neInteropNonFinite(x.want)
	t.Logf("series whose value is NaN or ±Inf in Prometheus: %d: %s", len(x.nonFinite), strings.Join(neInteropSorted(x.nonFinite), ", "))
	for _, extra := range [][]string{
		{"__name__", "interop_nan_gauge"},
		{"__name__", "interop_inf_gauge", "sign", "pos"},
		{"__name__", "interop_inf_gauge", "sign", "neg"},
		{"__name__", "interop_latency_seconds", "quantile", "0.5"},
		{"__name__", "interop_latency_seconds", "quantile", "0.99"},
	} {
		if k := labels.FromStrings(append(extra, "job", "node", "instance", x.ne.addr)...).String(); !x.nonFinite[k] {
			t.Errorf("Prometheus does not hold the non-finite series %s from the textfile: the NaN check proves nothing", k)
		}
	}
	if d := neInteropSetDiff(x.want, sets[x.vigil.name], nil); d != "" {
		t.Errorf("vigil's series of job node differ from Prometheus': %s", d)
	} else {
		t.Logf("vigil and Prometheus: the same %d series of job node", len(x.want.Series))
	}
	if d := neInteropSetDiff(x.want, sets[x.vigilStrict.name], x.nonFinite); d != "" {
		t.Errorf("vigil-strict's series differ from Prometheus' minus the %d non-finite ones: %s", len(x.nonFinite), d)
	} else {
		t.Logf("vigil-strict: Prometheus' series minus exactly the %d non-finite ones (%d series)", len(x.nonFinite), len(sets[x.vigilStrict.name].Series))
	}

	// The same through /api/v1/series over the whole run.
	from := registered.Add(-time.Minute)
	promSeries, errP := neInteropSeries(x.ctx, x.prometheus, `{job="node"}`, from, x.at)
	vigilSeries, errV := neInteropSeries(x.ctx, x.vigil, `{job="node"}`, from, x.at)
	if errP != nil || errV != nil {
		t.Fatalf("/api/v1/series: prometheus: %v, vigil: %v", errP, errV)
	}
	promSeriesV3, _ := neInteropNormalizeV3(&queryResult{Series: promSeries}, x.types)
	if d := neInteropSetDiff(promSeriesV3, &queryResult{Series: vigilSeries}, nil); d != "" {
		t.Errorf("/api/v1/series {job=\"node\"} over the run: vigil differs from Prometheus: %s", d)
	} else {
		t.Logf("/api/v1/series {job=\"node\"} over the run: the same %d series", len(promSeries))
	}
}

// compareValues requires up 1 everywhere, the same answers to queries
// whose values cannot differ between the two scrapers, and the CPU rate
// sum within neInteropRateTol.
func (x *neInterop) compareValues() {
	t := x.t
	for _, api := range x.all {
		r, err := api.instant(x.ctx, `up{job="node"}`, x.at)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Series) != 1 || r.Series[0].Points[0].V != 1 {
			t.Errorf("%s: up{job=\"node\"} at %s: %s, want one series = 1", api.name, x.at.Format(time.RFC3339Nano), r.format())
		}
	}
	exact := []struct {
		name, expr string
		strict     bool // also compared on vigil-strict
	}{
		{"count_by_name", `count by (__name__) ({job="node", __name__=~"node_.+"})`, true},
		{"synthetic_counts", `{job="node", __name__=~"scrape_samples_scraped|scrape_samples_post_metric_relabeling|scrape_series_added"}`, true},
		{"static_values", `{job="node", __name__=~"node_memory_MemTotal_bytes|node_memory_SwapTotal_bytes|node_filesystem_size_bytes|node_filesystem_files|node_boot_time_seconds|node_uname_info|node_exporter_build_info|go_info|interop_finite_gauge|interop_latency_seconds_(sum|count)"}`, true},
		{"non_finite_values", `{job="node", __name__=~"interop_(nan|inf)_gauge|interop_latency_seconds"}`, false},
	}
	for _, q := range exact {
		want, err := x.prometheus.instant(x.ctx, q.expr, x.at)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Series) == 0 {
			t.Errorf("%s: Prometheus has no answer; comparing it proves nothing", q.expr)
			continue
		}
		others := []promAPI{x.vigil}
		if q.strict {
			others = append(others, x.vigilStrict)
		}
		for _, api := range others {
			got, err := api.instant(x.ctx, q.expr, x.at)
			if err != nil {
				t.Fatal(err)
			}
			if diffs := diffResults(want, got, 0); len(diffs) > 0 {
				t.Errorf("%s: %s disagrees with Prometheus (%d differences):\n  %s\nprometheus:\n%s\n%s:\n%s",
					q.expr, api.name, len(diffs), strings.Join(limitLines(diffs, 30), "\n  "), want.format(), api.name, got.format())
			}
		}
		t.Logf("%s: %s: the same %d series", q.name, q.expr, len(want.Series))
	}

	const rateExpr = `sum(rate(node_cpu_seconds_total{job="node"}[10s]))`
	rates := map[string]float64{}
	for _, api := range []promAPI{x.prometheus, x.vigil} {
		r, err := api.instant(x.ctx, rateExpr, x.at)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Series) != 1 {
			t.Fatalf("%s: %s: %s", api.name, rateExpr, r.format())
		}
		rates[api.name] = r.Series[0].Points[0].V
	}
	cpus, err := x.prometheus.instant(x.ctx, `count(count by (cpu) (node_cpu_seconds_total{job="node"}))`, x.at)
	if err != nil || len(cpus.Series) != 1 {
		t.Fatalf("count CPUs: %v %v", err, cpus)
	}
	p, v := rates[x.prometheus.name], rates[x.vigil.name]
	t.Logf("%s: prometheus %.4f, vigil %.4f (relative difference %.3g), %v CPUs", rateExpr, p, v, relDiff(p, v), cpus.Series[0].Points[0].V)
	if !sameValue(p, v, neInteropRateTol) {
		t.Errorf("%s: vigil %v, prometheus %v: relative difference %.3g above %v", rateExpr, v, p, relDiff(p, v), neInteropRateTol)
	}
}

// checkRefusals requires the strict Vigil to have counted and logged the
// non-finite samples it refused.
func (x *neInterop) checkRefusals() {
	t := x.t
	rejected, err := neInteropMetric(x.ctx, x.strict.URL(), `vigil_collector_batcher_rejected_samples_total{reason="invalid_value"}`)
	if err != nil {
		t.Errorf("vigil-strict: %v", err)
	}
	logged := x.strict.logContains("downstream rejected samples")
	t.Logf("vigil-strict: vigil_collector_batcher_rejected_samples_total{reason=\"invalid_value\"} = %v (%d non-finite samples per scrape); rejection logged: %v",
		rejected, len(x.nonFinite), logged)
	if rejected < float64(len(x.nonFinite)) {
		t.Errorf("vigil-strict counted %v samples rejected as invalid_value, want at least the %d of one scrape", rejected, len(x.nonFinite))
	}
	if !logged {
		t.Errorf("vigil-strict did not log the rejected samples")
	}
}

// checkDown kills node_exporter and requires every side to report up 0,
// to mark every node_exporter series stale at the first failed scrape, to
// keep the same synthetic series and to show the target down.
func (x *neInterop) checkDown() {
	t := x.t
	killed := time.Now()
	x.ne.kill9()
	downAfter := map[string]time.Duration{}
	eventually(t, 10*neInteropInterval, 100*time.Millisecond, "up == 0 and node_memory_MemTotal_bytes gone on every side", func() error {
		for _, api := range x.all {
			if _, ok := downAfter[api.name]; ok {
				continue
			}
			now := time.Now()
			up, err := api.instant(x.ctx, `up{job="node"}`, now)
			if err != nil {
				return err
			}
			mem, err := api.instant(x.ctx, `node_memory_MemTotal_bytes{job="node"}`, now)
			if err != nil {
				return err
			}
			if len(up.Series) != 1 || up.Series[0].Points[0].V != 0 || len(mem.Series) != 0 {
				return fmt.Errorf("%s: up %s; node_memory_MemTotal_bytes %s", api.name, up.format(), mem.format())
			}
			downAfter[api.name] = time.Since(killed)
		}
		return nil
	})
	exporterSeries := 0
	for _, s := range x.want.Series {
		if !neInteropSynthetic[s.Labels.Get("__name__")] {
			exporterSeries++
		}
	}
	for _, api := range x.all {
		t.Logf("%s: up 0 and node_memory_MemTotal_bytes gone %v after the kill", api.name, downAfter[api.name].Round(time.Millisecond))
		n := exporterSeries
		if api == x.vigilStrict {
			n -= len(x.nonFinite)
		}
		x.checkStaleAtFirstFailure(api, n)
	}

	const left = `{job="node", __name__!="scrape_duration_seconds"}`
	after := time.Now()
	want, err := x.prometheus.instant(x.ctx, left, after)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prometheus after the kill (duration aside): %s", want.format())
	if len(want.Series) != len(neInteropSynthetic)-1 {
		t.Errorf("prometheus after the kill: %s, want the synthetic series only", want.format())
	}
	for _, api := range []promAPI{x.vigil, x.vigilStrict} {
		got, err := api.instant(x.ctx, left, after)
		if err != nil {
			t.Fatal(err)
		}
		if diffs := diffResults(want, got, 0); len(diffs) > 0 {
			t.Errorf("after the kill %s disagrees with Prometheus:\n  %s\nprometheus:\n%s\n%s:\n%s",
				api.name, strings.Join(limitLines(diffs, 30), "\n  "), want.format(), api.name, got.format())
		}
	}

	targets := map[string][]neInteropTarget{}
	eventually(t, 2*neInteropInterval, 200*time.Millisecond, "targets APIs report the target down", func() error {
		for _, api := range x.all {
			ts, err := neInteropTargets(x.ctx, api.base)
			if err != nil {
				return fmt.Errorf("%s: %w", api.name, err)
			}
			if len(ts) != 1 || ts[0].Health != "down" || ts[0].LastError == "" {
				return fmt.Errorf("%s: targets %+v, want one target, down, with its error", api.name, ts)
			}
			targets[api.name] = ts
		}
		return nil
	})
	for _, api := range []promAPI{x.prometheus, x.vigil} {
		t.Logf("%s /api/v1/targets: health %s, lastError %q", api.name, targets[api.name][0].Health, targets[api.name][0].LastError)
	}
}

const (
	neInteropInterval = 2 * time.Second
	// neInteropWarmScrapes is how many scrapes every side must have made
	// before the comparison: 14 s of data, more than the 10 s rate window.
	neInteropWarmScrapes = 8
	// neInteropRateTol bounds the relative difference of the CPU rate sum:
	// the two scrape at different instants, so their 10 s windows hold
	// different samples of counters that move in 10 ms ticks.
	neInteropRateTol = 0.1
)

// neInteropTextfile is read by node_exporter's textfile collector: NaN and
// ±Inf gauges, a summary before its first observation, one finite gauge.
const neInteropTextfile = `# HELP interop_nan_gauge A gauge whose value is NaN.
# TYPE interop_nan_gauge gauge
interop_nan_gauge NaN
# HELP interop_inf_gauge Gauges at the infinities.
# TYPE interop_inf_gauge gauge
interop_inf_gauge{sign="pos"} +Inf
interop_inf_gauge{sign="neg"} -Inf
# HELP interop_latency_seconds A summary without observations.
# TYPE interop_latency_seconds summary
interop_latency_seconds{quantile="0.5"} NaN
interop_latency_seconds{quantile="0.99"} NaN
interop_latency_seconds_sum 0
interop_latency_seconds_count 0
# HELP interop_finite_gauge A plain gauge.
# TYPE interop_finite_gauge gauge
interop_finite_gauge 42
`

// neInteropSynthetic are the series both Prometheus 2.42 and Vigil add
// per scrape.
var neInteropSynthetic = map[string]bool{
	"up":                                    true,
	"scrape_duration_seconds":               true,
	"scrape_samples_scraped":                true,
	"scrape_samples_post_metric_relabeling": true,
	"scrape_series_added":                   true,
}

// neInteropPromConfig scrapes only node_exporter, with the interval and
// timeout of the Vigil target (timeout defaults to min(10s, interval)).
func neInteropPromConfig(nodeExporter string) string {
	return fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [%[2]q]
`, neInteropInterval, nodeExporter)
}

// neInteropRegister adds node_exporter as a target of job node to the
// registry of the Vigil at base.
func neInteropRegister(ctx context.Context, base, addr string) error {
	body, err := json.Marshal(map[string]string{"job": "node", "address": addr, "interval": neInteropInterval.String()})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/registry/targets", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("register target %s: %w", body, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("register target %s: %s: %s", body, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// logPhases logs the offsets within the interval of each side's up
// samples over the last 20 s: one slot offset for Vigil, Prometheus' scrape
// times (aligned to its own offset within a few ms).
func (x *neInterop) logPhases() {
	t := x.t
	for _, api := range []promAPI{x.prometheus, x.vigil} {
		r, err := api.instant(x.ctx, `up{job="node"}[20s]`, x.at)
		if err != nil || len(r.Series) != 1 {
			t.Logf("%s: raw up samples unavailable: %v %v", api.name, err, r)
			continue
		}
		phases := map[int64]bool{}
		for _, p := range r.Series[0].Points {
			phases[p.T%neInteropInterval.Milliseconds()] = true
		}
		t.Logf("%s: %d up samples in 20 s, offsets within the %v interval (ms): %v", api.name, len(r.Series[0].Points), neInteropInterval, sortedKeys(phases))
	}
}

// checkStaleAtFirstFailure finds the first up == 0 sample after the last
// up == 1 and requires every node_exporter series (exporterSeries of them)
// to answer 1 ms before it and none at it: the staleness markers sit at
// the failed scrape's timestamp.
func (x *neInterop) checkStaleAtFirstFailure(api promAPI, exporterSeries int) {
	t, ctx := x.t, x.ctx
	raw, err := api.instant(ctx, `up{job="node"}[1m]`, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(raw.Series) != 1 {
		t.Fatalf("%s: raw up: %s", api.name, raw.format())
	}
	pts := raw.Series[0].Points
	first := -1
	for i := len(pts) - 1; i >= 0 && pts[i].V == 0; i-- {
		first = i
	}
	if first <= 0 {
		t.Fatalf("%s: no up 1 → 0 transition in the last minute: %s", api.name, raw.format())
	}
	down, lastUp := pts[first].T, pts[first-1].T
	q := `count({job="node", __name__!~"up|scrape_.+"})`
	before, err := api.instant(ctx, q, time.UnixMilli(down-1))
	if err != nil {
		t.Fatal(err)
	}
	at, err := api.instant(ctx, q, time.UnixMilli(down))
	if err != nil {
		t.Fatal(err)
	}
	if len(before.Series) != 1 || before.Series[0].Points[0].V != float64(exporterSeries) {
		t.Errorf("%s: %s 1 ms before the first failed scrape (%s): %s, want %d", api.name, q, neInteropFmtMs(down), before.format(), exporterSeries)
	}
	if len(at.Series) != 0 {
		t.Errorf("%s: %s at the first failed scrape (%s): %s, want no series (all stale)", api.name, q, neInteropFmtMs(down), at.format())
	}
	t.Logf("%s: last up 1 at %s, first up 0 at %s (%d up-0 samples since); %d node_exporter series answer 1 ms before it, none at it",
		api.name, neInteropFmtMs(lastUp), neInteropFmtMs(down), len(pts)-first, exporterSeries)
}

func neInteropFmtMs(ms int64) string { return time.UnixMilli(ms).UTC().Format("15:04:05.000") }

// neInteropSetDiff compares the label sets of two answers, ignoring
// those of want in skip (keyed by labels.String()), and describes the
// label sets only in want (missing) and only in got (extra); "" when they
// agree.
func neInteropSetDiff(want, got *queryResult, skip map[string]bool) string {
	w := map[string]bool{}
	for _, s := range want.Series {
		if k := s.Labels.String(); !skip[k] {
			w[k] = true
		}
	}
	g := map[string]bool{}
	var missing, extra []string
	for _, s := range got.Series {
		k := s.Labels.String()
		g[k] = true
		if !w[k] {
			extra = append(extra, k)
		}
	}
	for k := range w {
		if !g[k] {
			missing = append(missing, k)
		}
	}
	if len(missing)+len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return fmt.Sprintf("%d missing, %d extra\n  missing:\n    %s\n  extra:\n    %s",
		len(missing), len(extra), strings.Join(limitLines(missing, 50), "\n    "), strings.Join(limitLines(extra, 50), "\n    "))
}

// neInteropNonFinite returns the label sets (labels.String()) of r's series
// whose value is NaN or ±Inf.
func neInteropNonFinite(r *queryResult) map[string]bool {
	m := map[string]bool{}
	for _, s := range r.Series {
		if v := s.Points[0].V; math.IsNaN(v) || math.IsInf(v, 0) {
			m[s.Labels.String()] = true
		}
	}
	return m
}

// neInteropGroups summarises r by metric name prefix, for the log.
func neInteropGroups(r *queryResult) string {
	counts := map[string]int{}
	for _, s := range r.Series {
		name := s.Labels.Get("__name__")
		group := "synthetic"
		if !neInteropSynthetic[name] {
			group, _, _ = strings.Cut(name, "_")
			group += "_*"
		}
		counts[group]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
}

func neInteropSorted(m map[string]bool) []string {
	s := make([]string, 0, len(m))
	for k := range m {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// neInteropSeries asks /api/v1/series for the series matching match with
// samples between start and end.
func neInteropSeries(ctx context.Context, api promAPI, match string, start, end time.Time) ([]resultSeries, error) {
	params := url.Values{"match[]": {match}, "start": {apiTime(start)}, "end": {apiTime(end)}}
	var resp struct {
		Status string              `json:"status"`
		Error  string              `json:"error"`
		Data   []map[string]string `json:"data"`
	}
	if err := neInteropGetJSON(ctx, api.base+"/api/v1/series?"+params.Encode(), &resp); err != nil {
		return nil, fmt.Errorf("%s: %w", api.name, err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("%s series %s: status %q: %s", api.name, match, resp.Status, resp.Error)
	}
	out := make([]resultSeries, 0, len(resp.Data))
	for _, m := range resp.Data {
		out = append(out, resultSeries{Labels: labels.FromMap(m)})
	}
	return out, nil
}

// neInteropTarget is the part of a Prometheus /api/v1/targets entry the
// test reads; Vigil's collector serves the same fields.
type neInteropTarget struct {
	Labels     map[string]string `json:"labels"`
	ScrapePool string            `json:"scrapePool"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
}

// neInteropTargets returns the active targets of job node at base.
func neInteropTargets(ctx context.Context, base string) ([]neInteropTarget, error) {
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []neInteropTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := neInteropGetJSON(ctx, base+"/api/v1/targets?scrapePool=node", &resp); err != nil {
		return nil, err
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("targets: status %q", resp.Status)
	}
	return resp.Data.ActiveTargets, nil
}

func neInteropGetJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %.300s", u, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w: %.300s", u, err, b)
	}
	return nil
}

// neInteropMetric returns the value of one series (written exactly as
// client_golang exposes it) from the /metrics of the node at base.
func neInteropMetric(ctx context.Context, base, series string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read %s/metrics: %w", base, err)
	}
	return 0, fmt.Errorf("%s not in %s/metrics", series, base)
}

// neInteropMetricTypes returns the metric type of every metric family
// Prometheus knows (/api/v1/metadata).
func neInteropMetricTypes(ctx context.Context, api promAPI) (map[string]string, error) {
	var resp struct {
		Status string                             `json:"status"`
		Data   map[string][]struct{ Type string } `json:"data"`
	}
	if err := neInteropGetJSON(ctx, api.base+"/api/v1/metadata", &resp); err != nil {
		return nil, fmt.Errorf("%s metadata: %w", api.name, err)
	}
	types := make(map[string]string, len(resp.Data))
	for name, ms := range resp.Data {
		if len(ms) > 0 {
			types[name] = ms[0].Type
		}
	}
	return types, nil
}

// neInteropNormalizeV3 rewrites r's label sets as Prometheus 3 ingests them and
// Prometheus 2 does not: the quantile label of a summary and the le label
// of a classic histogram bucket are formatted as OpenMetrics floats
// ("0" becomes "0.0", "1" "1.0"), the rule of textparse's
// normalizeFloatsInLabelValues, which Vigil's collector parses with. It
// returns the rewritten result and a description of each change.
func neInteropNormalizeV3(r *queryResult, types map[string]string) (*queryResult, []string) {
	out := &queryResult{ResultType: r.ResultType, Warnings: r.Warnings, Infos: r.Infos, Raw: r.Raw}
	var changes []string
	for _, s := range r.Series {
		name := s.Labels.Get("__name__")
		label := ""
		switch {
		case types[name] == "summary":
			label = "quantile"
		case strings.HasSuffix(name, "_bucket") && types[strings.TrimSuffix(name, "_bucket")] == "histogram":
			label = "le"
		}
		if v := s.Labels.Get(label); label != "" && v != "" {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				if nv := labels.FormatOpenMetricsFloat(f); nv != v {
					b := labels.NewBuilder(s.Labels)
					b.Set(label, nv)
					changes = append(changes, fmt.Sprintf("%s{%s=%q} → %q", name, label, v, nv))
					s = resultSeries{Labels: b.Labels(), Points: s.Points}
				}
			}
		}
		out.Series = append(out.Series, s)
	}
	sort.Slice(out.Series, func(i, j int) bool { return labels.Compare(out.Series[i].Labels, out.Series[j].Labels) < 0 })
	return out, changes
}

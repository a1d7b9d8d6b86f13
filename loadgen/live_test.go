package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
)

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		name   string
		target string
		remote bool
		ok     bool
	}{
		{name: "loopback url", target: "http://127.0.0.1:9009", ok: true},
		{name: "other loopback address", target: "http://127.8.9.10:9009/x", ok: true},
		{name: "localhost", target: "http://localhost:9009", ok: true},
		{name: "ipv6 loopback", target: "http://[::1]:9009", ok: true},
		{name: "grpc host port", target: "127.0.0.1:9095", ok: true},
		{name: "private address", target: "http://10.0.0.7:9009"},
		{name: "public address", target: "http://8.8.8.8:9009"},
		{name: "host name", target: "http://vigil.internal:9009"},
		{name: "grpc private", target: "192.168.1.5:9095"},
		{name: "remote allowed", target: "http://10.0.0.7:9009", remote: true, ok: true},
		{name: "bad scheme even when allowed", target: "ftp://127.0.0.1:21", remote: true},
		{name: "no port", target: "127.0.0.1"},
		{name: "empty", target: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTarget(tc.target, tc.remote)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckTarget(%q, %v) = %v", tc.target, tc.remote, err)
			}
		})
	}
	if err := CheckTarget("http://10.0.0.7:9009", false); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("error %v is not ErrNotLoopback", err)
	}
}

func TestLiveConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mode   string
		change func(c *LiveConfig)
		ok     bool
	}{
		{name: "defaults", mode: ModeMixed, change: func(*LiveConfig) {}, ok: true},
		{name: "query ignores push fields", mode: ModeQuery, change: func(c *LiveConfig) { c.Push.Series = 0 }, ok: true},
		{name: "no duration", mode: ModeMixed, change: func(c *LiveConfig) { c.Duration = 0 }},
		{name: "longer than a day", mode: ModeQuery, change: func(c *LiveConfig) { c.Duration = 25 * time.Hour }},
		{name: "unknown mode", mode: "soak", change: func(*LiveConfig) {}},
		{name: "no series", mode: ModePush, change: func(c *LiveConfig) { c.Push.Series = 0 }},
		{name: "bad protocol", mode: ModePush, change: func(c *LiveConfig) { c.Push.Protocol = "influx" }},
		{name: "sdk to a remote grpc", mode: ModePush, change: func(c *LiveConfig) { c.Push.Protocol, c.GRPC = ProtocolSDK, "10.1.1.1:9095" }},
		{name: "sdk default grpc is loopback", mode: ModePush, change: func(c *LiveConfig) { c.Push.Protocol = ProtocolSDK }, ok: true},
		{name: "all late", mode: ModePush, change: func(c *LiveConfig) { c.Push.OOOFraction = 1 }},
		{name: "late beyond half the window", mode: ModePush, change: func(c *LiveConfig) {
			c.Push.OOOFraction, c.Push.Interval, c.Push.OOOMaxDelay = 0.1, time.Minute, 31
		}},
		{name: "negative churn", mode: ModePush, change: func(c *LiveConfig) { c.Push.Churn = -1 }},
		{name: "too many exporters", mode: ModeScrape, change: func(c *LiveConfig) { c.Scrape.Exporters = MaxExporters + 1 }},
		{name: "scrape interval below the registry's", mode: ModeScrape, change: func(c *LiveConfig) { c.Scrape.Interval = 500 * time.Millisecond }},
		{name: "qps too high", mode: ModeQuery, change: func(c *LiveConfig) { c.Query.QPS = MaxQPS + 1 }},
		{name: "no qps", mode: ModeMixed, change: func(c *LiveConfig) { c.Query.QPS = 0 }},
		{name: "remote url", mode: ModeQuery, change: func(c *LiveConfig) { c.URL = "http://172.16.0.1:9009" }},
		{name: "remote url allowed", mode: ModeQuery, change: func(c *LiveConfig) { c.URL, c.AllowRemote = "http://172.16.0.1:9009", true }, ok: true},
		{name: "verify fraction above 1", mode: ModePush, change: func(c *LiveConfig) { c.VerifyFraction = 1.5 }},
		{name: "verification beyond the memory bound", mode: ModePush, change: func(c *LiveConfig) {
			c.Duration, c.Push.Interval, c.VerifyFraction, c.VerifyMaxSeries = 24*time.Hour, time.Second, 1, MaxVerifySeries
		}},
		{name: "verification within the memory bound by max-samples", mode: ModePush, change: func(c *LiveConfig) {
			c.Duration, c.Push.Interval, c.VerifyFraction, c.VerifyMaxSeries, c.Push.MaxSamples = 24*time.Hour, time.Second, 1, MaxVerifySeries, 1_000_000
		}, ok: true},
		{name: "exporters too large in sum", mode: ModeScrape, change: func(c *LiveConfig) { c.Scrape.Exporters, c.Scrape.SeriesPerExporter = 1000, 20_000 }},
		{name: "too many queries to keep", mode: ModeQuery, change: func(c *LiveConfig) { c.Query.QPS, c.Duration = 100, 24*time.Hour }},
		{name: "many queries bounded by max-queries", mode: ModeQuery, change: func(c *LiveConfig) { c.Query.QPS, c.Duration, c.Query.MaxQueries = 100, 24*time.Hour, 1000 }, ok: true},
		{name: "push verifying nothing", mode: ModePush, change: func(c *LiveConfig) { c.VerifyFraction = 0 }},
		{name: "mixed verifying nothing", mode: ModeMixed, change: func(c *LiveConfig) { c.VerifyFraction = 0 }},
		{name: "push without verification on purpose", mode: ModePush, change: func(c *LiveConfig) { c.VerifyFraction, c.NoVerify = 0, true }, ok: true},
		{name: "query ignores the verify fraction", mode: ModeQuery, change: func(c *LiveConfig) { c.VerifyFraction = 0 }, ok: true},
		{name: "verify-max-series 0 is not unlimited", mode: ModePush, change: func(c *LiveConfig) { c.VerifyMaxSeries = 0 }},
		{name: "verify-max-series too high", mode: ModePush, change: func(c *LiveConfig) { c.VerifyMaxSeries = MaxVerifySeries + 1 }},
		{name: "scrape against a remote vigil even when allowed", mode: ModeScrape, change: func(c *LiveConfig) { c.URL, c.AllowRemote = "http://172.16.0.1:9009", true }},
		{name: "mixed against a remote vigil even when allowed", mode: ModeMixed, change: func(c *LiveConfig) { c.URL, c.AllowRemote = "http://172.16.0.1:9009", true }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultLiveConfig()
			c.Mode = tc.mode
			tc.change(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestExporterSizes(t *testing.T) {
	sizes := ExporterSizes(2001, 100, 0.5, 3)
	sorted := append([]int(nil), sizes...)
	sort.Ints(sorted)
	if med := sorted[len(sorted)/2]; med < 90 || med > 110 {
		t.Errorf("median %d, want about 100", med)
	}
	if sorted[0] < 1 || sorted[len(sorted)-1] > 2000 || sorted[0] == sorted[len(sorted)-1] {
		t.Errorf("range %d..%d", sorted[0], sorted[len(sorted)-1])
	}
	for _, n := range ExporterSizes(10, 77, 0, 3) {
		if n != 77 {
			t.Fatalf("sigma 0 gave %d, want 77", n)
		}
	}
}

// TestExporterExposition scrapes an exporter larger than one host's
// catalog twice and parses the answers with Prometheus' own text parser:
// every series once, no instance or job label, counters not going back.
func TestExporterExposition(t *testing.T) {
	stats := &ScrapeStats{}
	e := newExporter(250, 9, 2, stats)
	if err := e.start(); err != nil {
		t.Fatal(err)
	}
	defer e.close(context.Background())
	scrape := func() map[string]float64 {
		resp, err := http.Get("http://" + e.Addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("HTTP %d", resp.StatusCode)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				var b strings.Builder
				b.WriteString(name)
				for _, l := range m.GetLabel() {
					if l.GetName() == "instance" || l.GetName() == "job" {
						t.Errorf("%s has a %s label", name, l.GetName())
					}
					b.WriteString("," + l.GetName() + "=" + l.GetValue())
				}
				key := b.String()
				if _, dup := out[key]; dup {
					t.Errorf("series %s twice", key)
				}
				out[key] = metricValue(m)
			}
		}
		return out
	}
	first, second := scrape(), scrape()
	if len(first) != 250 || len(second) != 250 {
		t.Fatalf("%d and %d series, want 250", len(first), len(second))
	}
	for k, v := range second {
		if strings.HasPrefix(k, "node_cpu_seconds_total") && v < first[k] {
			t.Errorf("counter %s went from %v to %v", k, first[k], v)
		}
	}
	// The third scrape is over the limit of two.
	resp, err := http.Get("http://" + e.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || stats.Scrapes.Load() != 2 || stats.Refused.Load() != 1 || stats.Samples.Load() != 500 {
		t.Errorf("after the limit: HTTP %d, stats %d scrapes %d refused %d samples", resp.StatusCode, stats.Scrapes.Load(), stats.Refused.Load(), stats.Samples.Load())
	}
}

// rwLog is a remote-write endpoint that keeps, per series, the
// timestamps in arrival order; fail makes the first requests answer 503.
type rwLog struct {
	fail  atomic.Int64
	mu    sync.Mutex
	order map[string][]int64 // guarded by mu
	reqs  int                // guarded by mu
}

func (l *rwLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if l.fail.Add(-1) >= 0 {
		http.Error(w, "synthetic overload", http.StatusServiceUnavailable)
		return
	}
	wr, err := decode(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs++
	for _, ts := range wr.Timeseries {
		k := labelString(ts.Labels)
		for _, s := range ts.Samples {
			l.order[k] = append(l.order[k], s.Timestamp)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// TestLivePushShape runs the live push engine against a recording
// endpoint: every round arrives, late samples come after newer ones of
// their series, churn renames whole hosts, retries recover from 503s, and
// the verification set holds every acknowledged sample of its series.
func TestLivePushShape(t *testing.T) {
	l := &rwLog{order: map[string][]int64{}}
	l.fail.Store(2)
	srv := httptest.NewServer(l)
	defer srv.Close()
	cfg := DefaultLiveConfig()
	cfg.Mode, cfg.URL, cfg.Duration = ModePush, srv.URL, 2*time.Second
	cfg.Push.Series, cfg.Push.Interval, cfg.Push.BatchSize, cfg.Push.Concurrency = 350, 100*time.Millisecond, 100, 3
	cfg.Push.OOOFraction, cfg.Push.OOOMaxDelay = 0.2, 3
	cfg.Push.Churn = 100 * 600 // one host per round at 100 ms
	cfg.VerifyFraction = 0.1
	stats := &LivePushStats{}
	rec := NewRecorder()
	lp := newLivePush(cfg, time.Now(), stats, rec)
	began := time.Now()
	if err := lp.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 15*time.Second {
		t.Errorf("a 2 s run took %v", took)
	}
	const rounds = 20
	if got := stats.Acked.Load(); got != 350*rounds || stats.Failed.Load() != 0 || stats.Retries.Load() != 2 {
		t.Errorf("acked %d (want %d), failed %d, retries %d", got, 350*rounds, stats.Failed.Load(), stats.Retries.Load())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var total, late int
	instances := map[string]bool{}
	for k, ts := range l.order {
		total += len(ts)
		newest := int64(math.MinInt64)
		for _, t := range ts {
			if t < newest {
				late++
			}
			newest = max(newest, t)
		}
		for _, part := range strings.Split(k, ",") {
			if strings.HasPrefix(part, "instance=") {
				instances[part] = true
			}
			if strings.HasPrefix(part, "job=") && part != "job="+PushJob {
				t.Errorf("series %s: job label", k)
			}
		}
	}
	if total != 350*rounds {
		t.Errorf("received %d samples, want %d", total, 350*rounds)
	}
	if frac := float64(late) / float64(total); frac < 0.08 || frac > 0.25 {
		t.Errorf("%.3f of the samples arrived after a newer one, want about 0.2 less those whose newer ones were late too", frac)
	}
	// 4 hosts, each renamed about every 4 rounds: 4 + ~19 incarnations.
	if n := len(instances); n < 15 || n > 25 || stats.Churned.Load() == 0 {
		t.Errorf("%d instances, churned %d", n, stats.Churned.Load())
	}
	for _, s := range rec.Series() {
		got := l.order[labelString(toPromLabels(s.Labels))]
		if len(got) != len(s.Samples) {
			t.Errorf("%s: %d acknowledged, %d received", s.Selector(), len(s.Samples), len(got))
		}
	}
	if len(rec.Series()) < 35 {
		t.Errorf("%d verified series, want ≥ 35 (10 %% of 350 slots)", len(rec.Series()))
	}
}

// TestLivePushBudget: -max-samples stops the push before the duration.
func TestLivePushBudget(t *testing.T) {
	l := &rwLog{order: map[string][]int64{}}
	srv := httptest.NewServer(l)
	defer srv.Close()
	cfg := DefaultLiveConfig()
	cfg.Mode, cfg.URL, cfg.Duration = ModePush, srv.URL, time.Minute
	cfg.Push.Series, cfg.Push.Interval, cfg.Push.MaxSamples, cfg.Push.Concurrency = 100, 50*time.Millisecond, 450, 1
	stats := &LivePushStats{}
	began := time.Now()
	if err := newLivePush(cfg, time.Now(), stats, NewRecorder()).run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("took %v: the budget did not stop it", took)
	}
	if got := stats.Sent.Load(); got != 400 {
		t.Errorf("sent %d, want 400 (whole rounds within 450)", got)
	}
}

func toPromLabels(m map[string]string) (out []prompb.Label) {
	for k, v := range m {
		out = append(out, prompb.Label{Name: k, Value: v})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func TestMatchingSamples(t *testing.T) {
	body := []byte(`{"status":"success","data":{"resultType":"matrix","result":[
		{"metric":{"__name__":"x","a":"1","extra":"y"},"values":[[1700000000.5,"9"]]},
		{"metric":{"__name__":"x","a":"1"},"values":[[1700000000,"1.5"],[1700000000.001,"-0.25"],[1700000001.123,"1e+21"]]}]}}`)
	got, err := matchingSamples(body, map[string]string{"__name__": "x", "a": "1"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]float64{1700000000000: 1.5, 1700000000001: -0.25, 1700000001123: 1e21}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("at %d: %v, want %v", k, got[k], v)
		}
	}
	if _, err := matchingSamples([]byte(`{"status":"error","error":"bad"}`), nil); err == nil {
		t.Error("an API error passed")
	}
	if _, err := matchingSamples([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`), nil); err == nil {
		t.Error("a vector passed")
	}
}

func TestSelectorQuotes(t *testing.T) {
	s := &AckedSeries{Labels: map[string]string{"__name__": "m", "b": `say "hi"\n`, "a": "x"}}
	if got, want := s.Selector(), `{__name__="m",a="x",b="say \"hi\"\\n"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestVerifyCountAndPick(t *testing.T) {
	tests := []struct {
		name             string
		n                int
		frac             float64
		minS, maxS, want int
	}{
		{name: "fraction", n: 10_000, frac: 0.01, minS: 5, maxS: 2000, want: 100},
		{name: "at least a few", n: 100, frac: 0.01, minS: 5, maxS: 2000, want: 5},
		{name: "fewer than the minimum", n: 3, frac: 0.01, minS: 5, maxS: 2000, want: 3},
		{name: "capped", n: 1_000_000, frac: 0.5, minS: 5, maxS: 2000, want: 2000},
		{name: "off", n: 100, frac: 0, minS: 5, maxS: 2000, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := verifyCount(tc.n, tc.frac, tc.minS, tc.maxS)
			if k != tc.want {
				t.Fatalf("verifyCount = %d, want %d", k, tc.want)
			}
			picked := pickSlots(tc.n, k, 1)
			if len(picked) != k {
				t.Fatalf("picked %d", len(picked))
			}
			for i := range picked {
				if i < 0 || i >= tc.n {
					t.Fatalf("slot %d out of range", i)
				}
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.9, 90 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := Percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty")
	}
}

func TestParseServerMetrics(t *testing.T) {
	body := []byte("# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 1.5e+08\n" +
		"# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n" +
		"# TYPE vigil_storage_samples_appended_total counter\nvigil_storage_samples_appended_total 1000\n" +
		"# TYPE vigil_distributor_received_samples_total counter\nvigil_distributor_received_samples_total{a=\"1\"} 5\nvigil_distributor_received_samples_total{a=\"2\"} 7\n")
	m, err := parseServerMetrics(body)
	if err != nil {
		t.Fatal(err)
	}
	if m[MetricRSS] != 1.5e8 || m[MetricCPU] != 12.5 || m[MetricStored] != 1000 || m[MetricReceived] != 12 {
		t.Fatalf("got %v", m)
	}
	if _, err := parseServerMetrics([]byte("up 1\n")); err == nil {
		t.Fatal("a /metrics without process metrics passed")
	}
	if _, err := parseServerMetrics(bytes.Repeat([]byte("{"), 3)); err == nil {
		t.Fatal("garbage passed")
	}
}

// TestLivePushSpreadsHosts: a sender's hosts are due at phases spread
// over the interval, and their timestamps say so.
func TestLivePushSpreadsHosts(t *testing.T) {
	l := &rwLog{order: map[string][]int64{}}
	srv := httptest.NewServer(l)
	defer srv.Close()
	cfg := DefaultLiveConfig()
	cfg.Mode, cfg.URL, cfg.Duration = ModePush, srv.URL, time.Second
	cfg.Push.Series, cfg.Push.Interval, cfg.Push.Concurrency = 10*SeriesPerHost, time.Second, 1
	start := time.Now().Truncate(time.Second).Add(time.Second)
	stats := &LivePushStats{}
	if err := newLivePush(cfg, start, stats, NewRecorder()).run(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	phases := map[int64]int{}
	for _, ts := range l.order {
		if len(ts) != 1 {
			t.Fatalf("%d samples of a series in one round", len(ts))
		}
		phases[ts[0]-start.UnixMilli()]++
	}
	if len(phases) != 10 || l.reqs != 10 {
		t.Fatalf("phases %v in %d requests, want 10 groups of one host", phases, l.reqs)
	}
	for ph, n := range phases {
		if ph%100 != 0 || ph < 0 || ph >= 1000 || n != SeriesPerHost {
			t.Errorf("phase %d ms: %d series", ph, n)
		}
	}
}

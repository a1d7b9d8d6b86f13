package collector

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"
)

const ctOpenMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"

func TestScrapeHonorLabels(t *testing.T) {
	const body = `m{job="other",instance="x",exported_job="e",rack="r9",zone="z"} 1` + "\n"
	tests := []struct {
		name  string
		honor bool
		want  func(addr string) labels.Labels
	}{
		{"false: target labels win, scraped ones exported", false, func(addr string) labels.Labels {
			return labels.FromStrings("__name__", "m", "job", "node", "instance", addr, "rack", "r1", "zone", "z",
				"exported_job", "e", "exported_exported_job", "other", "exported_instance", "x", "exported_rack", "r9")
		}},
		{"true: scraped labels win", true, func(string) labels.Labels {
			return labels.FromStrings("__name__", "m", "job", "other", "instance", "x", "rack", "r9", "zone", "z", "exported_job", "e")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestExporter(t, body)
			tg := scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0)
			tg.HonorLabels = ptr(tc.honor)
			sink := newScrapeSink()
			s, _ := newTestScraper(t, testScraperConfig(), tg, sink)
			scrapeNow(s, 0)
			b := sink.last(t)
			ms := findSeries(b, "m")
			if len(ms) != 1 || !labels.Equal(ms[0].Labels, tc.want(tg.Address)) {
				t.Fatalf("got %v\nwant %v", ms, tc.want(tg.Address))
			}
			// Synthetic series always carry the target's labels.
			up := findSeries(b, "up")
			if want := labels.FromStrings("__name__", "up", "job", "node", "instance", tg.Address, "rack", "r1"); len(up) != 1 || !labels.Equal(up[0].Labels, want) {
				t.Fatalf("up labels %v", up)
			}
		})
	}
}

func TestScrapeInstanceLabel(t *testing.T) {
	e := newTestExporter(t, "m 1\n")
	tg := scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0)
	tg.Labels = map[string]string{"instance": "web-1"}
	sink := newScrapeSink()
	s, _ := newTestScraper(t, testScraperConfig(), tg, sink)
	scrapeNow(s, 0)
	for _, ser := range sink.last(t) {
		if ser.Labels.Get("instance") != "web-1" || ser.Labels.Get("job") != "node" {
			t.Fatalf("labels %s", ser.Labels)
		}
	}
}

func TestScrapeOpenMetricsTimestamps(t *testing.T) {
	const om = `# TYPE http_requests counter
# HELP http_requests Requests.
http_requests_total{code="200"} 10 1700000000.5
http_requests_created{code="200"} 1600000000
# TYPE temp gauge
temp 21.5
# TYPE req_seconds histogram
req_seconds_bucket{le="0.1"} 1
req_seconds_bucket{le="+Inf"} 3
req_seconds_count 3
req_seconds_sum 1.5
# EOF
`
	for _, honor := range []bool{true, false} {
		e := newTestExporter(t, om)
		e.set(func(r *exporterReply) { r.contentType = ctOpenMetrics })
		sink := newScrapeSink()
		cfg := testScraperConfig()
		cfg.HonorTimestamps = honor
		s, _ := newTestScraper(t, cfg, scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0), sink)
		k := scrapeNow(s, 0)
		slotT := s.Slots().Start(k)
		b := sink.last(t)
		if oneSample(t, b, "up").V != 1 || oneSample(t, b, "scrape_samples_scraped").V != 7 {
			t.Fatalf("honor=%v: %v (%s)", honor, b, s.Status().LastError)
		}
		wantT := slotT
		if honor {
			wantT = 1700000000500
		}
		if got := oneSample(t, b, "http_requests_total", "code", "200"); got.T != wantT || got.V != 10 {
			t.Fatalf("honor=%v: http_requests_total %+v, want T=%d", honor, got, wantT)
		}
		if got := oneSample(t, b, "temp"); got.T != slotT || got.V != 21.5 {
			t.Fatalf("temp %+v", got)
		}
		if got := oneSample(t, b, "http_requests_created"); got.V != 1600000000 || got.T != slotT {
			t.Fatalf("_created %+v", got)
		}
		if oneSample(t, b, "req_seconds_bucket", "le", "0.1").V != 1 || oneSample(t, b, "req_seconds_bucket", "le", "+Inf").V != 3 {
			t.Fatal("histogram buckets")
		}
		// Next scrape: only temp. Series with their own timestamp get no
		// markers (as in Prometheus); the others do.
		e.set(func(r *exporterReply) { r.body = "# TYPE temp gauge\ntemp 22\n# EOF\n" })
		scrapeNow(s, 1)
		var got []string
		for _, l := range staleMarkers(sink.last(t)) {
			got = append(got, l.Get("__name__"))
		}
		want := "http_requests_created req_seconds_bucket req_seconds_bucket req_seconds_count req_seconds_sum"
		if !honor {
			want = "http_requests_created http_requests_total req_seconds_bucket req_seconds_bucket req_seconds_count req_seconds_sum"
		}
		if strings.Join(got, " ") != want {
			t.Fatalf("honor=%v: markers for %v, want %s", honor, got, want)
		}
	}
}

func TestScrapeStaleness(t *testing.T) {
	e := newTestExporter(t, "a 1\nb 2\n")
	sink := newScrapeSink()
	s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0), sink)
	cl := s.Slots()

	scrapeNow(s, 0)
	if b := sink.last(t); oneSample(t, b, "scrape_series_added").V != 2 || len(staleMarkers(b)) != 0 {
		t.Fatalf("first scrape %v", b)
	}
	e.set(func(r *exporterReply) { r.body = "a 1\n" })
	k := scrapeNow(s, 1)
	b := sink.last(t)
	if st := staleMarkers(b); len(st) != 1 || st[0].Get("__name__") != "b" || oneSample(t, b, "b").T != cl.Start(k) {
		t.Fatalf("b vanished: %v", b)
	}
	if oneSample(t, b, "scrape_series_added").V != 0 || oneSample(t, b, "a").V != 1 {
		t.Fatalf("second scrape %v", b)
	}
	// A failed scrape marks everything stale, like an empty one.
	e.set(func(r *exporterReply) { r.status = http.StatusInternalServerError })
	scrapeNow(s, 2)
	b = sink.last(t)
	if oneSample(t, b, "up").V != 0 || !isStaleMarker(oneSample(t, b, "a").V) {
		t.Fatalf("failed scrape %v", b)
	}
	// Back: no markers; b is new again, a is still known (scrape cache).
	e.set(func(r *exporterReply) { r.status, r.body = http.StatusOK, "a 1\nb 2\n" })
	scrapeNow(s, 3)
	b = sink.last(t)
	if len(staleMarkers(b)) != 0 || oneSample(t, b, "scrape_series_added").V != 1 || oneSample(t, b, "up").V != 1 {
		t.Fatalf("recovered scrape %v", b)
	}
	// An empty body is an empty scrape, not an error.
	e.set(func(r *exporterReply) { r.body = "" })
	scrapeNow(s, 4)
	b = sink.last(t)
	if oneSample(t, b, "up").V != 1 || len(staleMarkers(b)) != 2 {
		t.Fatalf("empty scrape %v", b)
	}
	if n := gatherValue(t, reg, "vigil_collector_scrape_stale_markers_total"); n != 4 {
		t.Fatalf("stale markers counted %v, want 4", n)
	}
}

func TestScrapeBadExposition(t *testing.T) {
	tests := []struct {
		name        string
		body        string
		contentType string
		wantErr     string
	}{
		{"garbage", "this is { not exposition\n", ctText, "invalid exposition"},
		{"value missing", "m{a=\"1\"}\n", ctText, "invalid exposition"},
		{"error after the known series", nodeExposition + "broken{\n", ctText, "invalid exposition"},
		{"openmetrics without EOF", "# TYPE m gauge\nm 1\n", ctOpenMetrics, "EOF"},
		{"unknown content type", "<html></html>", "text/html", "Content-Type"},
		{"no content type", "m 1\n", "", "Content-Type"},
		{"invalid metric name", `{"my.metric"} 1` + "\n", "text/plain; version=1.0.0", "invalid metric name"},
		{"invalid label name", `m{"a.b"="1"} 1` + "\n", "text/plain; version=1.0.0", "invalid label name"},
		{"label value not UTF-8", "m{a=\"\xff\"} 1\n", ctText, "UTF-8"},
		{"duplicate label", "m{a=\"1\",a=\"2\"} 1\n", ctText, "duplicate label"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestExporter(t, nodeExposition)
			sink := newScrapeSink()
			s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 1), sink)
			scrapeNow(s, 0)
			e.set(func(r *exporterReply) { r.body, r.contentType = tc.body, tc.contentType })
			scrapeNow(s, 1)
			b := sink.last(t)
			if oneSample(t, b, "up").V != 0 || len(staleMarkers(b)) != 3 {
				t.Fatalf("bad nodeExposition gave %v", b)
			}
			st := s.Status()
			if st.Health != HealthDown || !strings.Contains(st.LastError, tc.wantErr) {
				t.Fatalf("status error %q, want it to mention %q", st.LastError, tc.wantErr)
			}
			if n := gatherValue(t, reg, "vigil_collector_scrape_total", "result", resultInvalid); n != 1 {
				t.Fatalf("invalid counted %v", n)
			}
			if n := len(e.requestLog()); n != 2 {
				t.Fatalf("%d requests: a bad body must not be retried", n)
			}
		})
	}
}

// TestSeriesStateRespelling: one series written two ways (the cache is by
// raw text, the series by final labels) is one series, not a vanished and
// a new one.
func TestSeriesStateRespelling(t *testing.T) {
	st := newSeriesState(DefaultScraperConfig(), labels.FromStrings("job", "j", "instance", "i"), false)
	steps := []struct {
		body       string
		stored     int
		stale      int
		added      int
		cacheSize  int
		seriesSize int
	}{
		{"m{a=\"1\"} 1\nn 1\n", 2, 0, 2, 2, 2},
		{"m{ a=\"1\" } 2\nn 1\n", 2, 0, 1, 2, 2},
		{"m{a=\"1\",} 3\n", 1, 1, 1, 1, 1},
		{"n 1\n", 1, 1, 1, 1, 1},
	}
	for i, s := range steps {
		res, err := st.apply([]byte(s.body), ctText, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		if res.stored != s.stored || res.stale != s.stale || res.added != s.added || len(st.cache) != s.cacheSize || len(st.series) != s.seriesSize {
			t.Fatalf("step %d: %+v, cache %d, series %d", i, res, len(st.cache), len(st.series))
		}
	}
}

func TestScrapeFallbackContentType(t *testing.T) {
	e := newTestExporter(t, "m 1\n")
	e.set(func(r *exporterReply) { r.contentType = "" })
	sink := newScrapeSink()
	cfg := testScraperConfig()
	cfg.FallbackContentType = "text/plain"
	s, _ := newTestScraper(t, cfg, scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0), sink)
	scrapeNow(s, 0)
	if b := sink.last(t); oneSample(t, b, "up").V != 1 || oneSample(t, b, "m").V != 1 {
		t.Fatalf("%v (%s)", b, s.Status().LastError)
	}
}

func TestScrapeDuplicateSeries(t *testing.T) {
	e := newTestExporter(t, "m{a=\"1\"} 1\nm{a=\"1\"} 2\nm{ a=\"1\" } 3\nn 4\n")
	sink := newScrapeSink()
	s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0), sink)
	scrapeNow(s, 0)
	b := sink.last(t)
	if oneSample(t, b, "up").V != 1 || oneSample(t, b, "m").V != 1 || oneSample(t, b, "scrape_samples_scraped").V != 4 {
		t.Fatalf("%v", b)
	}
	if n := gatherValue(t, reg, "vigil_collector_scrape_duplicate_samples_total"); n != 2 {
		t.Fatalf("duplicates %v", n)
	}
}

// TestScrapeNativeHistogramsDropped serves a client_golang histogram with
// classic and native buckets in the protobuf format: the classic series
// are kept, the native histogram is counted and dropped.
func TestScrapeNativeHistogramsDropped(t *testing.T) {
	r := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "latency_seconds", Help: "x", Buckets: []float64{0.1, 1},
		NativeHistogramBucketFactor: 1.1,
	})
	r.MustRegister(h)
	for _, v := range []float64{0.05, 0.5, 2} {
		h.Observe(v)
	}
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	format := expfmt.NewFormat(expfmt.TypeProtoDelim)
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	e := newTestExporter(t, buf.String())
	e.set(func(rep *exporterReply) { rep.contentType = string(format) })
	sink := newScrapeSink()
	s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0), sink)
	scrapeNow(s, 0)
	b := sink.last(t)
	if oneSample(t, b, "up").V != 1 || oneSample(t, b, "latency_seconds_count").V != 3 || oneSample(t, b, "latency_seconds_bucket", "le", "1.0").V != 2 {
		t.Fatalf("classic histogram: %v (%s)", metricNames(b), s.Status().LastError)
	}
	if n := gatherValue(t, reg, "vigil_collector_scrape_native_histograms_dropped_total"); n != 1 {
		t.Fatalf("native histograms dropped: %v", n)
	}
	// Scraped counts the native sample, stored and post-relabelling do not.
	if sc, pr := oneSample(t, b, "scrape_samples_scraped").V, oneSample(t, b, "scrape_samples_post_metric_relabeling").V; sc != pr+1 {
		t.Fatalf("scraped %v, post relabelling %v", sc, pr)
	}
}

// BenchmarkScrapeParse parses a node_exporter-sized exposition of 5,000
// series: "steady" is every scrape after the first (labels from the scrape
// cache), "first" a new target.
func BenchmarkScrapeParse(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.\n# TYPE node_cpu_seconds_total counter\n")
	for i := range 5000 {
		fmt.Fprintf(&sb, "node_cpu_seconds_total{cpu=\"%d\",mode=\"%s\"} %d.25\n", i/8, []string{"idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice"}[i%8], i*1000)
	}
	body := []byte(sb.String())
	tl := labels.FromStrings("job", "node", "instance", "10.0.0.7:9100", "rack", "r1")
	for _, steady := range []bool{true, false} {
		name := "first"
		if steady {
			name = "steady"
		}
		b.Run(name, func(b *testing.B) {
			st := newSeriesState(DefaultScraperConfig(), tl, false)
			if _, err := st.apply(body, ctText, 0); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if !steady {
					st = newSeriesState(DefaultScraperConfig(), tl, false)
				}
				res, err := st.apply(body, ctText, int64(i)*1000)
				if err != nil || res.stored != 5000 {
					b.Fatalf("%v, %d stored", err, res.stored)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5000, "ns/sample")
		})
	}
}

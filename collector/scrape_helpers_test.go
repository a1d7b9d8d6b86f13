package collector

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/vigil-tsdb/vigil/model"
)

// scrapeSink keeps every batch pushed to it, in order.
type scrapeSink struct {
	mu      sync.Mutex
	batches [][]model.Series
	times   []time.Time // wall time of each push
	delay   time.Duration
	notify  chan struct{}
}

func newScrapeSink() *scrapeSink { return &scrapeSink{notify: make(chan struct{}, 1)} }

func (r *scrapeSink) Push(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-ctx.Done():
			return model.PushResult{}, ctx.Err()
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, batch)
	r.times = append(r.times, time.Now())
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	return model.PushResult{Stored: model.CountSamples(batch)}, nil
}

func (r *scrapeSink) all() [][]model.Series {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]model.Series(nil), r.batches...)
}

// last returns the latest batch.
func (r *scrapeSink) last(t *testing.T) []model.Series {
	t.Helper()
	b := r.all()
	if len(b) == 0 {
		t.Fatal("no batch pushed")
	}
	return b[len(b)-1]
}

// waitFor waits until n batches were pushed.
func (r *scrapeSink) waitFor(t *testing.T, n int, timeout time.Duration) [][]model.Series {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if b := r.all(); len(b) >= n {
			return b
		}
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("waited %s for %d batches, got %d", timeout, n, len(r.all()))
		}
	}
}

// exporterReply is what the test exporter answers.
type exporterReply struct {
	body        string
	contentType string
	status      int
	gzip        bool
	delay       time.Duration
	failFirst   int                     // answer 503 to this many requests first
	check       func(*http.Request) int // non-zero: answer with this status
}

type exporterRequest struct {
	at     time.Time
	header http.Header
}

// testExporter serves exposition text over real HTTP on loopback; tests change
// its reply between scrapes.
type testExporter struct {
	srv      *httptest.Server
	mu       sync.Mutex
	reply    exporterReply     // protected by mu
	requests []exporterRequest // protected by mu
}

const ctText = "text/plain; version=0.0.4; charset=utf-8"

func newTestExporter(t *testing.T, body string) *testExporter {
	e := &testExporter{reply: exporterReply{body: body, contentType: ctText, status: http.StatusOK}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *testExporter) set(f func(r *exporterReply)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.reply)
}

func (e *testExporter) requestLog() []exporterRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]exporterRequest(nil), e.requests...)
}

func (e *testExporter) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.requests = append(e.requests, exporterRequest{at: time.Now(), header: r.Header.Clone()})
	rep := e.reply
	fail := e.reply.failFirst > 0
	if fail {
		e.reply.failFirst--
	}
	e.mu.Unlock()
	if fail {
		http.Error(w, "warming up", http.StatusServiceUnavailable)
		return
	}
	if rep.check != nil {
		if code := rep.check(r); code != 0 {
			http.Error(w, "refused", code)
			return
		}
	}
	if rep.delay > 0 {
		select {
		case <-time.After(rep.delay):
		case <-r.Context().Done():
			return
		}
	}
	if rep.contentType != "" {
		w.Header().Set("Content-Type", rep.contentType)
	} else {
		w.Header()["Content-Type"] = nil // no sniffing: send none
	}
	body := []byte(rep.body)
	if rep.gzip && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		zw.Close()
		body = buf.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.WriteHeader(rep.status)
	w.Write(body)
}

// scrapeTestTarget returns a resolved target of the server at rawURL. Intervals
// below the registry's minimum keep the tests short; the Scraper only
// needs 0 < timeout <= interval.
func scrapeTestTarget(t *testing.T, rawURL string, interval, timeout time.Duration, retries int) Target {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		t.Fatal(err)
	}
	return Target{
		Job:     "node",
		ID:      u.Host,
		Address: u.Host,
		ScrapeConfig: ScrapeConfig{
			Scheme:      u.Scheme,
			MetricsPath: "/metrics",
			Interval:    Duration(interval),
			Timeout:     Duration(timeout),
			Retries:     ptr(retries),
			HonorLabels: ptr(false),
			Labels:      map[string]string{"rack": "r1"},
		},
	}
}

// testScraperConfig is the default configuration with a short backoff.
func testScraperConfig() ScraperConfig {
	cfg := DefaultScraperConfig()
	cfg.RetryBackoff = 20 * time.Millisecond
	cfg.MaxRetryBackoff = 100 * time.Millisecond
	return cfg
}

// newTestScraper builds a scraper with its own metrics registry.
func newTestScraper(t *testing.T, cfg ScraperConfig, tg Target, sink Sink) (*Scraper, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewScrapeMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	s, err := NewScraper(cfg, tg, sink, m, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.fetcher.close() // Run does it; tests that call scrapeSlot do not run
		if t.Failed() {
			t.Logf("scraper log:\n%s", logs.String())
		}
	})
	return s, reg
}

// lockedBuffer collects a scraper's log, shown when its test fails.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scrapeNow scrapes the next slot that has not started yet, plus n: its
// window lies ahead, so retries have the whole interval.
func scrapeNow(s *Scraper, n int64) int64 {
	k := s.Slots().Next(time.Now().UnixMilli()) + n
	s.scrapeSlot(context.Background(), k)
	return k
}

// gatherValue returns the value of a counter, gauge or histogram (its
// count) with the given label values, 0 if absent.
func gatherValue(t *testing.T, reg *prometheus.Registry, name string, labelPairs ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labelPairs); i += 2 {
				if !gatheredHasLabel(m, labelPairs[i], labelPairs[i+1]) {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

func gatheredHasLabel(m *dto.Metric, name, val string) bool {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name && lp.GetValue() == val {
			return true
		}
	}
	return false
}

// find returns the series of batch with metric name and, if given, the
// extra label pairs.
func findSeries(batch []model.Series, name string, labelPairs ...string) []model.Series {
	var out []model.Series
	for _, s := range batch {
		if s.Labels.Get(model.MetricNameLabel) != name {
			continue
		}
		ok := true
		for i := 0; i+1 < len(labelPairs); i += 2 {
			ok = ok && s.Labels.Get(labelPairs[i]) == labelPairs[i+1]
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// one returns the single sample of the single series name in batch.
func oneSample(t *testing.T, batch []model.Series, name string, labelPairs ...string) model.Sample {
	t.Helper()
	ss := findSeries(batch, name, labelPairs...)
	if len(ss) != 1 || len(ss[0].Samples) != 1 {
		t.Fatalf("want one series %s%v with one sample, got %v", name, labelPairs, ss)
	}
	return ss[0].Samples[0]
}

func isStaleMarker(v float64) bool { return value.IsStaleNaN(v) }

// staleSeries returns the label sets of batch's staleness markers.
func staleMarkers(batch []model.Series) []labels.Labels {
	var out []labels.Labels
	for _, s := range batch {
		for _, smp := range s.Samples {
			if isStaleMarker(smp.V) {
				out = append(out, s.Labels)
			}
		}
	}
	return out
}

// names returns the metric names of batch in order.
func metricNames(batch []model.Series) []string {
	out := make([]string, len(batch))
	for i, s := range batch {
		out[i] = s.Labels.Get(model.MetricNameLabel)
	}
	return out
}

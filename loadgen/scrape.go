package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// ScrapeStats counts what the exporters served; read while they run.
type ScrapeStats struct {
	Exporters  int   // started
	Series     int64 // over all exporters
	Registered atomic.Int64
	Scrapes    atomic.Int64 // answered
	Samples    atomic.Int64 // samples in the answers
	Refused    atomic.Int64 // scrapes refused after MaxScrapes
	Sizes      []int        // series per exporter
}

// Exporter is one synthetic node_exporter-shaped /metrics endpoint on a
// loopback port. Each scrape advances its series by one sample.
type Exporter struct {
	Addr   string // 127.0.0.1:port
	Series int

	gen   *Generator
	order []int // series in exposition order (by metric name)
	names []string
	types map[string]string

	max    int64 // scrapes answered at most
	served atomic.Int64
	stats  *ScrapeStats

	mu  sync.Mutex // serialises scrapes: Generator.Next per series is not concurrent
	buf bytes.Buffer

	srv *http.Server
	ln  net.Listener
}

// ExporterSizes draws n exporter sizes from a lognormal distribution whose
// median is median series (sigma 0: all equal), each in [1, 20 × median].
func ExporterSizes(n, median int, sigma float64, seed int64) []int {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xe4907))
	out := make([]int, n)
	for i := range out {
		v := float64(median) * math.Exp(sigma*rng.NormFloat64())
		out[i] = int(math.Min(math.Max(math.Round(v), 1), 20*float64(median)))
	}
	return out
}

// newExporter makes an exporter of n series; it serves after start.
func newExporter(n int, seed int64, maxScrapes int64, stats *ScrapeStats) *Exporter {
	e := &Exporter{Series: n, gen: NewGenerator(n, seed, time.Now(), time.Second), max: maxScrapes, stats: stats, types: map[string]string{}}
	e.order = make([]int, n)
	e.names = make([]string, n)
	for i := range n {
		e.order[i] = i
		for _, l := range e.gen.Labels(i) {
			if l.Name == "__name__" {
				e.names[i] = l.Value
			}
		}
		t := "gauge"
		if strings.HasSuffix(e.names[i], "_total") {
			t = "counter"
		}
		e.types[e.names[i]] = t
	}
	sort.SliceStable(e.order, func(a, b int) bool { return e.names[e.order[a]] < e.names[e.order[b]] })
	return e
}

// start listens on a free loopback port and serves /metrics.
func (e *Exporter) start() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("exporter listen: %w", err)
	}
	e.ln, e.Addr = ln, ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", e.serveMetrics)
	e.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	return nil
}

// close stops serving.
func (e *Exporter) close(ctx context.Context) {
	if e.srv != nil {
		_ = e.srv.Shutdown(ctx)
	}
}

func (e *Exporter) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	if e.served.Add(1) > e.max {
		e.stats.Refused.Add(1)
		http.Error(w, "vigil-bench: scrape limit reached", http.StatusServiceUnavailable)
		return
	}
	e.mu.Lock()
	e.buf.Reset()
	e.writeExposition(&e.buf)
	body := append([]byte(nil), e.buf.Bytes()...)
	e.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(body)
	e.stats.Scrapes.Add(1)
	e.stats.Samples.Add(int64(e.Series))
}

// writeExposition writes one sample of every series in the Prometheus text
// format. instance and job are left to the scraper; an exporter larger
// than one host's catalog tells its hosts apart with a "shard" label.
func (e *Exporter) writeExposition(w io.Writer) {
	bw := bufio.NewWriter(w)
	last := ""
	for _, i := range e.order {
		name := e.names[i]
		if name != last {
			fmt.Fprintf(bw, "# TYPE %s %s\n", name, e.types[name])
			last = name
		}
		smp := e.gen.Next(i)
		bw.WriteString(name)
		writeExpositionLabels(bw, e.gen.Labels(i), i/SeriesPerHost)
		bw.WriteByte(' ')
		bw.WriteString(strconv.FormatFloat(smp.Value, 'g', -1, 64))
		bw.WriteByte('\n')
	}
	_ = bw.Flush()
}

func writeExpositionLabels(bw *bufio.Writer, ls []prompb.Label, shard int) {
	n := 0
	put := func(name, value string) {
		if n == 0 {
			bw.WriteByte('{')
		} else {
			bw.WriteByte(',')
		}
		n++
		bw.WriteString(name)
		bw.WriteString(`="`)
		bw.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(value))
		bw.WriteByte('"')
	}
	for _, l := range ls {
		switch l.Name {
		case "__name__", "instance", "job":
			continue
		}
		put(l.Name, l.Value)
	}
	if shard > 0 {
		put("shard", strconv.Itoa(shard))
	}
	if n > 0 {
		bw.WriteByte('}')
	}
}

// scrapeRun starts the exporters, registers them with Vigil's target
// registry API and, when stopped, removes them again.
type scrapeRun struct {
	cfg       LiveConfig
	stats     *ScrapeStats
	exporters []*Exporter
	client    *http.Client
}

func newScrapeRun(cfg LiveConfig, stats *ScrapeStats) *scrapeRun {
	return &scrapeRun{cfg: cfg, stats: stats, client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}}
}

// start starts and registers every exporter; on error, what was started
// is stopped and unregistered.
func (s *scrapeRun) start(ctx context.Context) error {
	sc := s.cfg.Scrape
	maxScrapes := int64(sc.MaxScrapes)
	if maxScrapes == 0 {
		maxScrapes = 2*int64(s.cfg.Duration/sc.Interval) + 10
	}
	sizes := ExporterSizes(sc.Exporters, sc.SeriesPerExporter, sc.SizeSigma, s.cfg.Seed)
	s.stats.Exporters = len(sizes)
	s.stats.Sizes = sizes
	for i, n := range sizes {
		e := newExporter(n, s.cfg.Seed+int64(i)*7919, maxScrapes, s.stats)
		if err := e.start(); err != nil {
			s.stop(ctx)
			return err
		}
		s.exporters = append(s.exporters, e)
		s.stats.Series += int64(n)
	}
	for i, e := range s.exporters {
		if err := s.register(ctx, e, i); err != nil {
			s.stop(ctx)
			return err
		}
		s.stats.Registered.Add(1)
	}
	return nil
}

// register POSTs the exporter as a target of the job.
func (s *scrapeRun) register(ctx context.Context, e *Exporter, i int) error {
	sc := s.cfg.Scrape
	body, _ := json.Marshal(map[string]any{
		"job": sc.Job, "address": e.Addr, "interval": sc.Interval.String(),
		"timeout": min(sc.Interval, 10*time.Second).String(),
		"labels":  map[string]string{"bench_exporter": fmt.Sprintf("e%d", i)},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(s.cfg.URL, "/")+"/api/v1/registry/targets", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("register exporter %s: %w", e.Addr, err)
	}
	req.Header.Set("Content-Type", "application/json")
	return s.do(req, "register exporter "+e.Addr)
}

func (s *scrapeRun) unregister(ctx context.Context, e *Exporter) error {
	q := url.Values{"job": {s.cfg.Scrape.Job}, "address": {e.Addr}}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimRight(s.cfg.URL, "/")+"/api/v1/registry/targets?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("unregister exporter %s: %w", e.Addr, err)
	}
	return s.do(req, "unregister exporter "+e.Addr)
}

// waitUnscraped waits (at most 15 s) until the collector of the node at
// URL no longer lists the job among the targets it scrapes, then one more
// scrape interval (at most 10 s) for the scrape loops to stop, so that no
// scrape of an exporter already stopped fails. A node without
// /api/v1/targets (no collector role) is not waited for.
func (s *scrapeRun) waitUnscraped(ctx context.Context) {
	u := strings.TrimRight(s.cfg.URL, "/") + "/api/v1/targets?" + url.Values{"job": {s.cfg.Scrape.Job}}.Encode()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		body, err := httpGet(ctx, s.client, u)
		if err != nil {
			return
		}
		var r struct {
			Data struct {
				ActiveTargets []json.RawMessage `json:"activeTargets"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &r) != nil {
			return
		}
		if len(r.Data.ActiveTargets) == 0 {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t := time.NewTimer(min(s.cfg.Scrape.Interval+500*time.Millisecond, 10*time.Second))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (s *scrapeRun) do(req *http.Request, what string) error {
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s: HTTP %d: %s", what, req.URL.Path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// stop unregisters every exporter and stops them; it returns the first
// unregistration error.
func (s *scrapeRun) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var errs []error
	for i, e := range s.exporters {
		if int64(i) < s.stats.Registered.Load() {
			if err := s.unregister(ctx, e); err != nil && len(errs) < 3 {
				errs = append(errs, err)
			}
		}
	}
	s.waitUnscraped(ctx)
	for _, e := range s.exporters {
		e.close(ctx)
	}
	s.exporters = nil
	s.client.CloseIdleConnections()
	return errors.Join(errs...)
}

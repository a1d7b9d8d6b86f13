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

	"github.com/vigil-tsdb/vigil/sdk"
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

// scrapeRun starts the exporters, registers them in Vigil's target
// registry under leases (the SDK's RegisterTarget) and, when stopped,
// removes them again.
type scrapeRun struct {
	cfg       LiveConfig
	stats     *ScrapeStats
	exporters []*Exporter
	client    *http.Client
	sdk       *sdk.Client         // target registration under leases
	regs      []*sdk.Registration // one per registered exporter, in order
	// regCtx bounds the registrations' keep-alives; regCancel ends them.
	regCtx    context.Context
	regCancel context.CancelFunc
}

func newScrapeRun(cfg LiveConfig, stats *ScrapeStats) *scrapeRun {
	s := &scrapeRun{cfg: cfg, stats: stats, client: newHTTPClient(10*time.Second, nil, cfg.AllowRemote)}
	s.regCtx, s.regCancel = context.WithCancel(context.Background())
	return s
}

// start starts and registers every exporter; on error, what was started
// is stopped and unregistered.
func (s *scrapeRun) start(ctx context.Context) error {
	sc := s.cfg.Scrape
	maxScrapes := int64(sc.MaxScrapes)
	if maxScrapes == 0 {
		maxScrapes = 2*int64(s.cfg.Duration/sc.Interval) + 10
	}
	c, err := sdk.New(s.cfg.grpcAddr(), sdk.WithMaxRetries(3))
	if err != nil {
		return fmt.Errorf("target registration: %w", err)
	}
	s.sdk = c
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

// register registers the exporter as a target of the job under a lease
// of LeaseTTL, kept alive until stop (or until the process dies: then the
// target goes when the lease ends).
func (s *scrapeRun) register(ctx context.Context, e *Exporter, i int) error {
	sc := s.cfg.Scrape
	// The call is bounded by ctx; the keep-alives by regCtx.
	done := make(chan struct{})
	defer close(done)
	rctx, cancel := context.WithCancel(s.regCtx)
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-done:
		}
	}()
	reg, err := s.sdk.RegisterTarget(rctx, sdk.Target{Job: sc.Job, Address: e.Addr, Interval: sc.Interval,
		Timeout: min(sc.Interval, 10*time.Second), Labels: map[string]string{"bench_exporter": fmt.Sprintf("e%d", i)}}, sc.LeaseTTL)
	if err != nil {
		cancel()
		return fmt.Errorf("register exporter %s: %w", e.Addr, err)
	}
	s.regs = append(s.regs, reg)
	return nil
}

// waitUnscraped waits (at most 15 s) until no collector of the cluster
// behind URL lists the job among the targets it scrapes, then one more
// scrape interval (at most 10 s) for the scrape loops to stop, so that no
// scrape of an exporter already stopped fails. A node without
// /api/v1/targets (no collector role) is not waited for.
func (s *scrapeRun) waitUnscraped(ctx context.Context) {
	// scope=all: in a cluster the plain endpoint lists only the targets
	// the answering node scrapes.
	u := strings.TrimRight(s.cfg.URL, "/") + "/api/v1/targets?" + url.Values{"job": {s.cfg.Scrape.Job}, "scope": {"all"}}.Encode()
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

// stop ends every exporter's registration (its lease is revoked: the
// target goes at once), waits for the collectors to let go, and stops the
// exporters; it returns the first errors. Its time grows with the
// exporters (one call each, one by one): 30 s plus 50 ms per exporter. A
// tester killed before stop leaves its targets until their leases end
// (LeaseTTL).
func (s *scrapeRun) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second+time.Duration(len(s.exporters))*50*time.Millisecond)
	defer cancel()
	var errs []error
	for _, reg := range s.regs {
		select {
		case <-reg.Done():
			if err := reg.Err(); err != nil && len(errs) < 3 {
				errs = append(errs, fmt.Errorf("exporter registration ended during the run: %w", err))
			}
		default:
		}
		if err := reg.Close(ctx); err != nil && len(errs) < 3 {
			errs = append(errs, fmt.Errorf("unregister exporter: %w", err))
		}
	}
	s.regs = nil
	s.regCancel()
	if s.sdk != nil {
		_ = s.sdk.Close()
		s.sdk = nil
	}
	s.waitUnscraped(ctx)
	for _, e := range s.exporters {
		e.close(ctx)
	}
	s.exporters = nil
	s.client.CloseIdleConnections()
	return errors.Join(errs...)
}

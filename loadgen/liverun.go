package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"
)

// Server metrics read from Vigil's /metrics.
const (
	MetricRSS      = "process_resident_memory_bytes"
	MetricCPU      = "process_cpu_seconds_total"
	MetricStored   = "vigil_storage_samples_appended_total"
	MetricReceived = "vigil_distributor_received_samples_total"
	// MetricSeriesCreated counts series added to the head: its growth
	// over a run is the denominator of RSS per series.
	MetricSeriesCreated = "vigil_storage_series_created_total"
)

// Point is one sample of the run's time series: client counters
// (cumulative since the start) and Vigil's own metrics.
type Point struct {
	Elapsed       time.Duration
	PushAcked     int64
	PushFailed    int64
	ScrapeSamples int64 // samples the exporters served
	Queries       int64 // finished
	QueryErrors   int64
	// Server is false when /metrics could not be read; the server fields
	// are then zero.
	Server         bool
	ServerStored   float64 // vigil_storage_samples_appended_total
	ServerReceived float64 // vigil_distributor_received_samples_total
	ServerRSS      float64 // bytes
	ServerCPU      float64 // seconds
	// ServerSeries is vigil_storage_series_created_total; HasSeries is
	// false when /metrics lacks it.
	ServerSeries float64
	HasSeries    bool
}

// LiveResult is what a live run did. Engines not in the mode are nil.
type LiveResult struct {
	Config  LiveConfig
	Started time.Time
	Elapsed time.Duration // of the load, without setup and verification

	Push       *LivePushStats
	Scrape     *ScrapeStats
	ScrapeStop error // unregistering the exporters
	// PullVerify is the check of the exporters' series in Vigil; nil when
	// nothing was scraped or the run was cancelled.
	PullVerify  *PullVerifyResult
	Query       *QueryStats
	Points      []Point
	MetricsErrs int // /metrics reads that failed

	Recorded int64 // acknowledged samples kept for verification
	// Checked are the series verified, with their acknowledged samples
	// (to verify them again elsewhere: a replica, a restored backup).
	Checked        []*AckedSeries
	Verify         *VerifyResult // nil when nothing was pushed or the run was cancelled
	VerifyDuration time.Duration
}

// Passed is the run's verdict: true only when Failures finds nothing.
// runErr is the error RunLive returned with the result.
func (r *LiveResult) Passed(runErr error) bool { return len(r.Failures(runErr)) == 0 }

// Failures lists, one line each, why the run did not pass: lost or
// refused samples, failed queries, a pull path that did not scrape, a
// verification that failed, was skipped or checked nothing, a load the
// server (or the tester) did not sustain, and runErr, the error RunLive
// returned with the result. The report and the exit status both use it.
func (r *LiveResult) Failures(runErr error) []string {
	out := []string{}
	if p := r.Push; p != nil {
		if n := p.Failed.Load(); n > 0 {
			out = append(out, fmt.Sprintf("push: %d samples not acknowledged (requests failed after retries)", n))
		}
		if n := p.Rejected.Load(); n > 0 {
			out = append(out, fmt.Sprintf("push: the server refused %d samples", n))
		}
		if behind, notSent := p.Behind.Load(), p.NotSent.Load(); behind > 0 || notSent > 0 {
			out = append(out, fmt.Sprintf("push: did not sustain the load: %d host groups sent more than an interval late, %d samples due in the run not sent (%d of them late samples dropped at the end)",
				behind, notSent, p.LateDropped.Load()))
		}
	}
	if sc := r.Scrape; sc != nil {
		if r.ScrapeStop != nil {
			out = append(out, "scrape: "+r.ScrapeStop.Error())
		}
		if sc.Scrapes.Load() == 0 {
			out = append(out, "scrape: no exporter was scraped during the run")
		}
		if pv := r.PullVerify; pv != nil && pv.Failed() {
			out = append(out, "scrape: "+pv.Summary())
		}
	}
	if q := r.Query; q != nil {
		if n := q.Errors.Load(); n > 0 {
			out = append(out, fmt.Sprintf("query: %d queries failed", n))
		}
		if n := q.Skipped.Load(); n > 0 {
			out = append(out, fmt.Sprintf("query: did not sustain the load: %d ticks skipped with every query slot busy", n))
		}
	}
	switch v := r.Verify; {
	case r.Push == nil:
	case r.Config.NoVerify:
		out = append(out, "verification: skipped (-no-verify): the run is UNVERIFIED")
	case v == nil:
		out = append(out, "verification: not run (the run was interrupted)")
	case v.Failed():
		out = append(out, fmt.Sprintf("verification: %d missing, %d different, %d series unreadable", v.Missing, v.Different, v.QueryErrors))
	case v.Samples == 0:
		out = append(out, "verification: no acknowledged sample was checked: the run is UNVERIFIED")
	}
	if runErr != nil {
		out = append(out, "run: "+runErr.Error())
	}
	return out
}

// RunLive runs cfg's engines together for cfg.Duration against Vigil,
// writing progress to progress (a bar on a terminal, a line every few
// seconds elsewhere; nil: none), then verifies the pushed samples. The
// error is for a run that could not start (Vigil unreachable, a target not
// registered); losses are in the result.
func RunLive(ctx context.Context, cfg LiveConfig, progress io.Writer) (*LiveResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	res := &LiveResult{Config: cfg}
	mc := newHTTPClient(10*time.Second, nil, cfg.AllowRemote)
	defer mc.CloseIdleConnections()
	metricsURL := strings.TrimRight(cfg.URL, "/") + "/metrics"
	if _, err := readServerMetrics(ctx, mc, metricsURL); err != nil {
		return nil, fmt.Errorf("vigil at %s: %w", cfg.URL, err)
	}

	var scr *scrapeRun
	if cfg.Runs(ModeScrape) {
		res.Scrape = &ScrapeStats{}
		scr = newScrapeRun(cfg, res.Scrape)
		if err := scr.start(ctx); err != nil {
			return nil, fmt.Errorf("start exporters: %w", err)
		}
	}
	rec := NewRecorder()
	if cfg.Runs(ModePush) {
		res.Push = &LivePushStats{}
	}
	if cfg.Runs(ModeQuery) {
		res.Query = &QueryStats{}
	}

	res.Started = time.Now()
	deadline := res.Started.Add(cfg.Duration)
	point := func() Point {
		p := Point{Elapsed: time.Since(res.Started)}
		if res.Push != nil {
			p.PushAcked, p.PushFailed = res.Push.Acked.Load(), res.Push.Failed.Load()
		}
		if res.Scrape != nil {
			p.ScrapeSamples = res.Scrape.Samples.Load()
		}
		if res.Query != nil {
			p.Queries = res.Query.Done.Load()
			p.QueryErrors = res.Query.Errors.Load()
		}
		if m, err := readServerMetrics(ctx, mc, metricsURL); err == nil {
			p.Server = true
			p.ServerStored, p.ServerReceived, p.ServerRSS, p.ServerCPU = m[MetricStored], m[MetricReceived], m[MetricRSS], m[MetricCPU]
			p.ServerSeries, p.HasSeries = m[MetricSeriesCreated]
		} else {
			res.MetricsErrs++
		}
		return p
	}
	var mu sync.Mutex // guards res.Points while the sampler runs
	res.Points = append(res.Points, point())
	bar := newLiveBar(progress, cfg, res)

	// No deadline here: each engine stops issuing at the deadline and
	// bounds its in-flight work itself (a push request by its timeout past
	// the deadline, a query by the query timeout), so a slow request that
	// succeeds is not cancelled and counted as failed.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(cfg.SampleEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p := point()
				mu.Lock()
				res.Points = append(res.Points, p)
				mu.Unlock()
				bar.update(p)
			}
		}
	})

	g, gctx := errgroup.WithContext(runCtx)
	if res.Push != nil {
		lp := newLivePush(cfg, res.Started, res.Push, rec)
		g.Go(func() error { return lp.run(gctx) })
	}
	if res.Query != nil {
		g.Go(func() error { runQueries(gctx, cfg, deadline, res.Query); return nil })
	}
	g.Go(func() error { // the run lasts Duration whichever engines run
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-gctx.Done():
		case <-t.C:
		}
		return nil
	})
	runErr := g.Wait()
	res.Elapsed = time.Since(res.Started)
	close(done)
	sampler.Wait()
	last := point()
	// A window much shorter than the others would make a spike of noise
	// in the rates: the final reading replaces a reading just before it.
	if n := len(res.Points); n > 1 && last.Elapsed-res.Points[n-1].Elapsed < cfg.SampleEvery/2 {
		res.Points[n-1] = last
	} else {
		res.Points = append(res.Points, last)
	}
	bar.finish(last)
	if scr != nil { // after the last reading: the collector's let-go takes a scrape interval
		if progress != nil {
			fmt.Fprintf(progress, "removing %d exporters from the registry...\n", len(scr.exporters))
		}
		res.ScrapeStop = scr.stop(ctx)
	}
	if runErr != nil {
		return res, fmt.Errorf("run: %w", runErr)
	}
	if scr != nil && ctx.Err() == nil {
		pv := VerifyPull(ctx, mc, cfg.URL, cfg.Scrape.Job, res.Scrape.Exporters, res.Scrape.Series, res.Started.Add(res.Elapsed), res.Elapsed)
		res.PullVerify = &pv
	}

	if res.Push != nil && !cfg.NoVerify && ctx.Err() == nil {
		series := rec.Series()
		res.Recorded, res.Checked = rec.Samples(), series
		if progress != nil {
			fmt.Fprintf(progress, "verifying %d acknowledged samples of %d series...\n", res.Recorded, len(series))
		}
		began := time.Now()
		v := Verify(ctx, cfg.URL, series)
		res.Verify, res.VerifyDuration = &v, time.Since(began)
	}
	return res, nil
}

// readServerMetrics reads the server metrics the report plots, each
// summed over its label sets.
func readServerMetrics(ctx context.Context, client *http.Client, u string) (map[string]float64, error) {
	body, err := httpGet(ctx, client, u)
	if err != nil {
		return nil, fmt.Errorf("read /metrics: %w", err)
	}
	return parseServerMetrics(body)
}

func parseServerMetrics(body []byte) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	out := map[string]float64{}
	for _, name := range []string{MetricRSS, MetricCPU, MetricStored, MetricReceived, MetricSeriesCreated} {
		f, ok := fams[name]
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			out[name] += metricValue(m)
		}
	}
	if _, ok := out[MetricRSS]; !ok {
		return nil, fmt.Errorf("parse /metrics: no %s (not a Vigil /metrics?)", MetricRSS)
	}
	return out, nil
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

// liveBar prints the run's progress: a bar redrawn in place on a terminal,
// a plain line every few seconds elsewhere.
type liveBar struct {
	w     io.Writer
	cfg   LiveConfig
	res   *LiveResult
	tty   bool
	every time.Duration

	mu        sync.Mutex
	prev      Point
	lastPrint time.Time
}

func newLiveBar(w io.Writer, cfg LiveConfig, res *LiveResult) *liveBar {
	b := &liveBar{w: w, cfg: cfg, res: res, every: lineEvery}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.tty, b.every = true, 0
		}
	}
	if len(res.Points) > 0 {
		b.prev = res.Points[0]
	}
	return b
}

func (b *liveBar) update(p Point) {
	if b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.tty && time.Since(b.lastPrint) < b.every {
		return
	}
	line := b.line(p)
	b.prev, b.lastPrint = p, time.Now()
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\033[K", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
}

// finish prints the final line, with rates averaged over the whole run.
func (b *liveBar) finish(p Point) {
	if b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prev = b.res.Points[0]
	line := b.line(p)
	if b.tty {
		fmt.Fprintf(b.w, "\r%s\033[K\n", line)
	} else {
		fmt.Fprintln(b.w, line)
	}
}

func (b *liveBar) line(p Point) string {
	dt := (p.Elapsed - b.prev.Elapsed).Seconds()
	rate := func(now, then float64) string {
		if dt <= 0 {
			return "0"
		}
		return Human(max(now-then, 0) / dt)
	}
	frac := min(p.Elapsed.Seconds()/b.cfg.Duration.Seconds(), 1)
	var sb strings.Builder
	if b.tty {
		const width = 24
		n := int(frac * width)
		sb.WriteString("[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "] ")
	}
	fmt.Fprintf(&sb, "%3.0f%% %5.0fs/%.0fs", 100*frac, p.Elapsed.Seconds(), b.cfg.Duration.Seconds())
	if b.res.Push != nil {
		fmt.Fprintf(&sb, "  push %s/s acked (failed %d)", rate(float64(p.PushAcked), float64(b.prev.PushAcked)), p.PushFailed)
	}
	if b.res.Scrape != nil {
		fmt.Fprintf(&sb, "  scrape %s samples/s", rate(float64(p.ScrapeSamples), float64(b.prev.ScrapeSamples)))
	}
	if b.res.Query != nil {
		fmt.Fprintf(&sb, "  query %s/s (errors %d)", rate(float64(p.Queries), float64(b.prev.Queries)), p.QueryErrors)
	}
	if p.Server {
		fmt.Fprintf(&sb, "  vigil stores %s/s, RSS %.0f MiB, CPU %.2f cores", rate(p.ServerStored, b.prev.ServerStored),
			p.ServerRSS/(1<<20), max(p.ServerCPU-b.prev.ServerCPU, 0)/max(dt, 1e-9))
	}
	return sb.String()
}

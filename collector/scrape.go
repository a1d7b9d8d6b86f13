package collector

// The scrape loop of one target (docs/collector.md, "Scraping"): slots,
// retries, parsing, staleness and the synthetic series, as Prometheus' scrape
// loop does them, with slot-aligned timestamps so that two collectors
// scraping the same slot produce the same samples.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// The Scraper calls Sink.Push (sink.go) from its Run goroutine only, once per
// scrape, and never touches the batch after Push returns: the Sink may keep
// it.

var (
	// ErrScraperReused is returned by a second call of Scraper.Run: a
	// scraper's staleness state belongs to one run.
	ErrScraperReused = errors.New("scraper already ran")
	// ErrBodySizeLimit fails a scrape whose uncompressed body is larger
	// than ScraperConfig.BodySizeLimit.
	ErrBodySizeLimit = errors.New("body size limit exceeded")
	// ErrSampleLimit fails a scrape with more samples than
	// ScraperConfig.SampleLimit, as Prometheus' sample_limit does.
	ErrSampleLimit = errors.New("sample limit exceeded")
	// ErrScrapeTimeout: an attempt ran out of time (the target's timeout or
	// the end of the slot, whichever came first).
	ErrScrapeTimeout = errors.New("scrape timed out")
)

// ScraperConfig configures the scrape loops of one collector (flags
// -collector.scrape.*). Per-target settings (interval, timeout, retries,
// honor_labels, auth) come from the registry (docs/targets.md).
type ScraperConfig struct {
	// SecretsDir holds the files that password_ref, bearer_token_ref and
	// the tls *_ref fields name. Empty: targets that reference a secret
	// fail to scrape with an error saying so.
	SecretsDir string `yaml:"secrets_dir"`
	// BodySizeLimit caps the uncompressed body of one scrape in bytes;
	// 0 means no limit.
	BodySizeLimit int64 `yaml:"body_size_limit"`
	// SampleLimit caps the samples of one scrape (synthetic series not
	// counted); 0 means no limit.
	SampleLimit int `yaml:"sample_limit"`
	// HonorTimestamps keeps timestamps given in the exposition (as
	// Prometheus' honor_timestamps, default true).
	HonorTimestamps bool `yaml:"honor_timestamps"`
	// UseScrapeTime stamps samples with the time the successful attempt
	// began instead of the slot start. It breaks the identical-samples
	// property handover relies on; for comparisons with Prometheus only.
	UseScrapeTime bool `yaml:"use_scrape_time"`
	// ReportPostRelabeling adds scrape_samples_post_metric_relabeling,
	// which Prometheus always reports.
	ReportPostRelabeling bool `yaml:"report_samples_post_metric_relabeling"`
	// RetryBackoff is the wait before the first retry; it doubles up to
	// MaxRetryBackoff. Retries never run past the end of the slot.
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
	// FallbackContentType parses a body whose Content-Type is missing or
	// unknown: "" (fail the scrape, as Prometheus 3 does without
	// fallback_scrape_protocol), "text/plain" or "application/openmetrics-text".
	FallbackContentType string `yaml:"fallback_content_type"`
}

// DefaultScraperConfig returns a complete, working configuration.
func DefaultScraperConfig() ScraperConfig {
	return ScraperConfig{
		BodySizeLimit:        64 << 20,
		HonorTimestamps:      true,
		ReportPostRelabeling: true,
		RetryBackoff:         100 * time.Millisecond,
		MaxRetryBackoff:      2 * time.Second,
	}
}

// RegisterFlags adds the -collector.scrape.* flags, with the current values as defaults.
func (c *ScraperConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.SecretsDir, "collector.scrape.secrets-dir", c.SecretsDir, "directory of the secret files that targets name in password_ref, bearer_token_ref and tls.*_ref")
	f.Int64Var(&c.BodySizeLimit, "collector.scrape.body-size-limit", c.BodySizeLimit, "largest uncompressed scrape body in bytes; larger fails the scrape (0: no limit)")
	f.IntVar(&c.SampleLimit, "collector.scrape.sample-limit", c.SampleLimit, "most samples per scrape; more fails the scrape, like Prometheus' sample_limit (0: no limit)")
	f.BoolVar(&c.HonorTimestamps, "collector.scrape.honor-timestamps", c.HonorTimestamps, "keep timestamps given in the exposition")
	f.BoolVar(&c.UseScrapeTime, "collector.scrape.use-scrape-time", c.UseScrapeTime, "stamp samples with the actual scrape time instead of the slot time (breaks duplicate-free handover)")
	f.BoolVar(&c.ReportPostRelabeling, "collector.scrape.report-post-relabeling", c.ReportPostRelabeling, "write scrape_samples_post_metric_relabeling")
	f.DurationVar(&c.RetryBackoff, "collector.scrape.retry-backoff", c.RetryBackoff, "wait before the first retry of a failed scrape; doubles per retry")
	f.DurationVar(&c.MaxRetryBackoff, "collector.scrape.max-retry-backoff", c.MaxRetryBackoff, "longest wait between retries of one scrape")
	f.StringVar(&c.FallbackContentType, "collector.scrape.fallback-content-type", c.FallbackContentType, "parser for bodies without a known Content-Type: text/plain, application/openmetrics-text, or empty to fail them")
}

// Validate reports the first invalid field.
func (c ScraperConfig) Validate() error {
	switch {
	case c.BodySizeLimit < 0:
		return fmt.Errorf("collector.scrape.body-size-limit must not be negative")
	case c.SampleLimit < 0:
		return fmt.Errorf("collector.scrape.sample-limit must not be negative")
	case c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff:
		return fmt.Errorf("collector.scrape.retry-backoff must be positive and at most collector.scrape.max-retry-backoff")
	}
	switch c.FallbackContentType {
	case "", "text/plain", "application/openmetrics-text":
	default:
		return fmt.Errorf("collector.scrape.fallback-content-type %q: want text/plain, application/openmetrics-text or empty", c.FallbackContentType)
	}
	return nil
}

// SlotClock maps time to the scrape slots of one target. Slot k covers
// [Start(k), Start(k+1)); times are Unix milliseconds. Every collector
// computes the same clock for the same target (SlotClockOf).
type SlotClock struct {
	Interval int64 // milliseconds, > 0
	Offset   int64 // milliseconds, 0 <= Offset < Interval
}

// SlotClockOf returns the clock of a resolved target: its interval, and an
// offset that spreads targets over the interval: FNV-1a 64 of
// job 0xff address 0xff metrics_path 0xff url.Values(params).Encode(),
// modulo the interval in milliseconds.
func SlotClockOf(t Target) SlotClock {
	iv := max(time.Duration(t.Interval).Milliseconds(), 1)
	h := fnv.New64a()
	for _, s := range []string{t.Job, t.Address, t.MetricsPath, url.Values(t.Params).Encode()} {
		h.Write([]byte(s))
		h.Write([]byte{0xff})
	}
	return SlotClock{Interval: iv, Offset: int64(h.Sum64() % uint64(iv))}
}

// Start returns the start of slot k, the timestamp of its samples.
func (c SlotClock) Start(k int64) int64 { return k*c.Interval + c.Offset }

// At returns the slot that contains ms.
func (c SlotClock) At(ms int64) int64 {
	d := ms - c.Offset
	k := d / c.Interval
	if d%c.Interval < 0 {
		k--
	}
	return k
}

// Next returns the first slot that starts at or after ms.
func (c SlotClock) Next(ms int64) int64 {
	k := c.At(ms)
	if c.Start(k) < ms {
		k++
	}
	return k
}

// Health of a target as the /targets page shows it.
type Health string

// Health values, as Prometheus names them.
const (
	HealthUnknown Health = "unknown" // not scraped yet
	HealthUp      Health = "up"
	HealthDown    Health = "down"
)

// TargetStatus is what the /targets page shows of one target. It is a copy;
// the caller owns it.
type TargetStatus struct {
	Job, ID      string
	ScrapeURL    string
	Labels       labels.Labels // target labels: job, instance and the target's labels
	Interval     time.Duration
	Timeout      time.Duration
	Health       Health
	LastScrape   time.Time     // wall time the last scrape began; zero before the first
	LastSlot     int64         // slot of the last scrape
	LastSlotTime time.Time     // its start: the timestamp of its samples
	LastDuration time.Duration // of the last scrape, retries included
	Series       int           // samples stored by the last scrape, synthetic series excluded
	LastError    string        // empty after a successful scrape
	PushError    string        // of the last Push, empty if it succeeded
}

// Scraper scrapes one target, slot by slot, and pushes each scrape's
// samples to a Sink. Run does the work; Stop, StopAfter and Status are safe
// to call from any goroutine at any time.
type Scraper struct {
	cfg     ScraperConfig
	target  Target
	clock   SlotClock
	sink    Sink
	metrics *ScrapeMetrics
	logger  *slog.Logger

	tlabels labels.Labels
	report  reportLabels
	fetcher *fetcher     // used by the Run goroutine only
	series  *seriesState // used by the Run goroutine only

	started  atomic.Bool
	until    atomic.Int64
	wake     chan struct{} // buffered(1): until was lowered
	stopOnce sync.Once
	stopc    chan struct{} // closed by Stop
	final    atomic.Bool   // set by the Stop call that closed stopc
	done     chan struct{} // closed when Run returns

	// Run goroutine only.
	scraped  bool  // a scrape happened in this run
	lastSlot int64 // slot of the last scrape

	mu     sync.Mutex
	status TargetStatus // protected by mu
}

// NewScraper returns a scraper of t, a target as Resolve returns it (every
// field set). metrics is shared by all scrapers of a collector. Nothing
// runs until Run.
func NewScraper(cfg ScraperConfig, t Target, sink Sink, metrics *ScrapeMetrics, logger *slog.Logger) (*Scraper, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case sink == nil || metrics == nil:
		return nil, fmt.Errorf("new scraper: sink and metrics are required")
	case t.Job == "" || t.Address == "":
		return nil, fmt.Errorf("new scraper: target without job or address")
	case t.Scheme == "" || t.MetricsPath == "" || t.Retries == nil || t.HonorLabels == nil:
		return nil, fmt.Errorf("new scraper of %s: target is not resolved (use Resolve)", t.Address)
	case time.Duration(t.Interval) < time.Millisecond || t.Timeout <= 0 || t.Timeout > t.Interval:
		return nil, fmt.Errorf("new scraper of %s: want 0 < timeout (%s) <= interval (%s)", t.Address, t.Timeout, t.Interval)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tl := targetLabels(t)
	f, err := newFetcher(cfg, t, metrics)
	if err != nil {
		return nil, err
	}
	s := &Scraper{
		cfg:     cfg,
		target:  t,
		clock:   SlotClockOf(t),
		sink:    sink,
		metrics: metrics,
		logger:  logger.With("job", t.Job, "instance", tl.Get("instance"), "url", t.URL().String()),
		tlabels: tl,
		report:  newReportLabels(tl),
		fetcher: f,
		series:  newSeriesState(cfg, tl, *t.HonorLabels),
		wake:    make(chan struct{}, 1),
		stopc:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	s.until.Store(math.MaxInt64)
	s.status = TargetStatus{
		Job: t.Job, ID: t.ID, ScrapeURL: t.URL().String(), Labels: tl,
		Interval: time.Duration(t.Interval), Timeout: time.Duration(t.Timeout),
		Health: HealthUnknown,
	}
	return s, nil
}

// targetLabels are the labels every series of t gets: the target's labels,
// job, and instance (the address unless the labels set it).
func targetLabels(t Target) labels.Labels {
	m := make(map[string]string, len(t.Labels)+2)
	for k, v := range t.Labels {
		m[k] = v
	}
	m["job"] = t.Job
	if m["instance"] == "" {
		m["instance"] = t.Address
	}
	return labels.FromMap(m)
}

// Slots returns the target's slot clock.
func (s *Scraper) Slots() SlotClock { return s.clock }

// Target returns the target the scraper was built from; its maps are
// shared, do not modify them.
func (s *Scraper) Target() Target { return s.target }

// Done is closed when Run has returned.
func (s *Scraper) Done() <-chan struct{} { return s.done }

// Status returns a copy of the target's current status.
func (s *Scraper) Status() TargetStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// StopAfter makes Run return after scraping slot k (it lowers until to
// k+1; it never raises it), without staleness markers: the handover stop,
// where the new owner runs from slot k (make-before-break: both scrape
// slot k, with identical timestamps). It does not block.
func (s *Scraper) StopAfter(k int64) {
	if k == math.MaxInt64 {
		return
	}
	s.lowerUntil(k + 1)
}

func (s *Scraper) lowerUntil(u int64) {
	for {
		cur := s.until.Load()
		if u >= cur || s.until.CompareAndSwap(cur, u) {
			break
		}
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stop makes Run return before its next slot; a scrape in progress is
// finished and pushed first. final=true is for a target that is gone: Run
// then waits for the start of the slot after its last scrape and pushes a
// staleness marker at that time for every series of the last scrape
// (synthetic ones included) before it returns. final=false (handover) writes
// no markers: the new owner continues the series. The first call decides;
// later ones do nothing. Stop before Run makes Run return at once. Stop
// does not block; wait on Done.
func (s *Scraper) Stop(final bool) {
	s.stopOnce.Do(func() {
		s.final.Store(final)
		close(s.stopc)
	})
}

// Run scrapes the slots k with from <= k < until, each at Start(k), and
// pushes one batch per scrape. until = math.MaxInt64 runs until stopped.
//
//   - A slot whose start has passed but whose window [Start(k), Start(k+1))
//     has not is scraped at once, stamped with Start(k). A slot whose window
//     passed before its scrape could begin (the previous one ran late, the
//     process stalled, from lies in the past) is skipped; skipped slots after
//     the first scrape count as "missed" in vigil_collector_scrape_total.
//   - Run returns nil when the next slot is >= until (see StopAfter), after
//     Stop (see there), or when ctx is done. ctx ending abandons a scrape in
//     progress (nothing is pushed) and writes no staleness markers: a
//     process that shuts down does not know whether its targets live on.
//   - A Scraper runs once; a second Run returns ErrScraperReused.
func (s *Scraper) Run(ctx context.Context, from, until int64) error {
	if !s.started.CompareAndSwap(false, true) {
		return ErrScraperReused
	}
	defer close(s.done)
	defer s.fetcher.close()
	s.metrics.loops.Inc()
	defer s.metrics.loops.Dec()
	s.lowerUntil(until)
	for k := from; ; {
		select {
		case <-s.stopc:
			return s.finish(ctx)
		default:
		}
		if k >= s.until.Load() {
			return nil
		}
		now := time.Now().UnixMilli()
		if now >= s.clock.Start(k)+s.clock.Interval {
			cur := s.clock.At(now)
			if s.scraped {
				s.metrics.scrapes.WithLabelValues(resultMissed).Add(float64(min(cur, s.until.Load()) - k))
			}
			k = cur
			continue
		}
		switch s.sleepUntil(ctx, s.clock.Start(k), true) {
		case wokeCtx:
			return nil
		case wokeStop:
			return s.finish(ctx)
		case wokeUntil:
			continue // until changed: check k again
		}
		s.scrapeSlot(ctx, k)
		if ctx.Err() != nil {
			return nil
		}
		k++
	}
}

type wakeReason int

const (
	wokeTime wakeReason = iota
	wokeCtx
	wokeStop
	wokeUntil
)

// sleepUntil waits for the wall clock to reach ms, ctx, Stop, or (if
// interruptible) StopAfter.
func (s *Scraper) sleepUntil(ctx context.Context, ms int64, interruptible bool) wakeReason {
	d := time.Until(time.UnixMilli(ms))
	if d <= 0 {
		return wokeTime
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	stopc, wake := s.stopc, s.wake
	if !interruptible {
		stopc, wake = nil, nil
	}
	select {
	case <-ctx.Done():
		return wokeCtx
	case <-stopc:
		return wokeStop
	case <-wake:
		return wokeUntil
	case <-tm.C:
		return wokeTime
	}
}

// finish ends a stopped run: with a final stop, it writes the end-of-run
// staleness markers at the start of the slot after the last scrape.
func (s *Scraper) finish(ctx context.Context) error {
	if !s.final.Load() || !s.scraped {
		return nil
	}
	ts := s.clock.Start(s.lastSlot + 1)
	if s.sleepUntil(ctx, ts, false) == wokeCtx {
		return nil
	}
	batch := s.series.endOfRun(ts)
	batch = s.report.appendStale(batch, ts, s.cfg.ReportPostRelabeling)
	s.metrics.staleMarkers.Add(float64(len(batch)))
	_, err := s.sink.Push(ctx, batch)
	if err != nil {
		s.metrics.pushFailures.Inc()
		s.logger.Warn("push of end-of-run staleness markers failed", "err", err)
	}
	s.mu.Lock()
	s.status.PushError = errString(err)
	s.mu.Unlock()
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

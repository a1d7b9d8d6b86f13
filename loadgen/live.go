package loadgen

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Modes of a live run.
const (
	ModePush   = "push"
	ModeScrape = "scrape"
	ModeQuery  = "query"
	ModeMixed  = "mixed"
)

// Protocols of the live push.
const (
	ProtocolRemoteWrite = "remote-write"
	ProtocolSDK         = "sdk"
)

// Hard limits that no flag lifts: a live run is a test, not a service.
const (
	MaxDuration   = 24 * time.Hour
	MaxExporters  = 10_000
	MaxLiveSeries = 10_000_000
	MaxQPS        = 10_000
	// MaxVerifySeries bounds -verify-max-series.
	MaxVerifySeries = 100_000
	// MaxRecordedSamples bounds the acknowledged samples kept in memory
	// for verification (verified series × samples each).
	MaxRecordedSamples = 20_000_000
	// MaxScrapeSeries bounds the exporters' series summed.
	MaxScrapeSeries = 10_000_000
	// MaxQueryEvents bounds the queries of a run, each kept (kind,
	// latency, time) for the percentiles.
	MaxQueryEvents = 2_000_000
)

// LiveConfig describes a live run: push, scrape and query engines against
// one Vigil, each bounded by Duration and by a count.
type LiveConfig struct {
	Mode string `yaml:"mode"`
	// URL is Vigil's HTTP base, e.g. http://127.0.0.1:9009.
	URL string `yaml:"url"`
	// GRPC is Vigil's gRPC address for -protocol=sdk (default: URL's host
	// with port 9095).
	GRPC string `yaml:"grpc"`
	// AllowRemote lets URL and GRPC name hosts other than loopback.
	AllowRemote bool `yaml:"allow_remote"`
	// Duration bounds every engine.
	Duration time.Duration `yaml:"duration"`
	Seed     int64         `yaml:"seed"`

	Push   LivePushConfig `yaml:"push"`
	Scrape ScrapeConfig   `yaml:"scrape"`
	Query  QueryConfig    `yaml:"query"`

	// VerifyFraction of the pushed series are checked after the run
	// (at least VerifyMinSeries of them, at most VerifyMaxSeries).
	VerifyFraction  float64 `yaml:"verify_fraction"`
	VerifyMinSeries int     `yaml:"verify_min_series"`
	VerifyMaxSeries int     `yaml:"verify_max_series"`
	// NoVerify skips the verification of a push run on purpose: the run
	// then reports UNVERIFIED and does not pass. Without it, a push run
	// that would verify no series is refused.
	NoVerify bool `yaml:"no_verify"`
	// SampleEvery is how often Vigil's /metrics and the client counters
	// are sampled for the time series of the report.
	SampleEvery time.Duration `yaml:"sample_every"`
}

// LivePushConfig is the live push engine's part of a LiveConfig.
type LivePushConfig struct {
	Series      int           `yaml:"series"`
	Interval    time.Duration `yaml:"interval"`
	Protocol    string        `yaml:"protocol"`
	Concurrency int           `yaml:"concurrency"`
	BatchSize   int           `yaml:"batch_size"`
	// Churn is the number of series replaced per minute: whole hosts get
	// a new instance label, as when pods restart.
	Churn float64 `yaml:"churn"`
	// OOOFraction of the samples are held back 1 to OOOMaxDelay intervals
	// and sent after newer samples of their series.
	OOOFraction float64 `yaml:"ooo_fraction"`
	OOOMaxDelay int     `yaml:"ooo_max_delay"`
	// OOOWindow is the server's out-of-order window; a late sample is never
	// held longer than half of it.
	OOOWindow time.Duration `yaml:"ooo_window"`
	// MaxSamples bounds the samples sent (0: series × rounds of Duration).
	MaxSamples     int64         `yaml:"max_samples"`
	MaxRetries     int           `yaml:"max_retries"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// ScrapeConfig is the scrape engine's part of a LiveConfig.
type ScrapeConfig struct {
	Exporters         int           `yaml:"exporters"`
	SeriesPerExporter int           `yaml:"series_per_exporter"`
	SizeSigma         float64       `yaml:"size_sigma"`
	Interval          time.Duration `yaml:"interval"`
	Job               string        `yaml:"job"`
	// MaxScrapes bounds the scrapes each exporter answers (0: twice the
	// scrapes Duration allows, plus 10).
	MaxScrapes int `yaml:"max_scrapes"`
	// LeaseTTL is the lease each exporter is registered under (through the
	// SDK, at the gRPC address): a tester killed before it unregisters
	// leaves its targets for at most this long.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// QueryConfig is the query engine's part of a LiveConfig.
type QueryConfig struct {
	QPS         float64 `yaml:"qps"`
	Concurrency int     `yaml:"concurrency"`
	// MaxQueries bounds the queries sent (0: QPS × Duration).
	MaxQueries int64         `yaml:"max_queries"`
	Timeout    time.Duration `yaml:"timeout"`
}

// DefaultLiveConfig returns a two-minute mixed run of 10 k pushed series,
// 20 exporters of about 100 series each and 5 queries per second.
func DefaultLiveConfig() LiveConfig {
	return LiveConfig{
		Mode:     ModeMixed,
		URL:      "http://127.0.0.1:9009",
		Duration: 2 * time.Minute,
		Seed:     1,
		Push: LivePushConfig{
			Series: 10_000, Interval: 10 * time.Second, Protocol: ProtocolRemoteWrite,
			Concurrency: 4, BatchSize: 5_000, Churn: 0, OOOFraction: 0, OOOMaxDelay: 3,
			OOOWindow: time.Hour, MaxRetries: 10, RequestTimeout: 30 * time.Second,
		},
		Scrape: ScrapeConfig{Exporters: 20, SeriesPerExporter: 100, SizeSigma: 0.5, Interval: 10 * time.Second, Job: "vigil-bench-scrape", LeaseTTL: 30 * time.Second},
		Query:  QueryConfig{QPS: 5, Concurrency: 4, Timeout: 30 * time.Second},

		VerifyFraction: 0.01, VerifyMinSeries: 5, VerifyMaxSeries: 2_000,
		SampleEvery: 2 * time.Second,
	}
}

// RegisterFlags registers the live run's flags on f with c's values as
// defaults. Mode is not a flag: the command names it.
func (c *LiveConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.URL, "url", c.URL, "Vigil's HTTP base URL (remote write, queries, /metrics, the target registry)")
	f.StringVar(&c.GRPC, "grpc", c.GRPC, "Vigil's gRPC address for -protocol=sdk and for scrape's target leases (default: the -url host, port 9095)")
	f.BoolVar(&c.AllowRemote, "allow-remote", c.AllowRemote, "allow targets that are not loopback addresses")
	f.DurationVar(&c.Duration, "duration", c.Duration, "how long the load runs (at most 24h)")
	f.Int64Var(&c.Seed, "seed", c.Seed, "random seed")

	f.IntVar(&c.Push.Series, "series", c.Push.Series, "push: number of live series")
	f.DurationVar(&c.Push.Interval, "interval", c.Push.Interval, "push: one sample per series per interval")
	f.StringVar(&c.Push.Protocol, "protocol", c.Push.Protocol, "push: remote-write or sdk (gRPC through the Go SDK's Writer)")
	f.IntVar(&c.Push.Concurrency, "concurrency", c.Push.Concurrency, "push: senders, each owning a share of the series")
	f.IntVar(&c.Push.BatchSize, "batch-size", c.Push.BatchSize, "push: most samples per request")
	f.Float64Var(&c.Push.Churn, "churn", c.Push.Churn, "push: series replaced per minute (whole hosts get a new instance label)")
	f.Float64Var(&c.Push.OOOFraction, "ooo-fraction", c.Push.OOOFraction, "push: share of samples sent late, after newer ones (0..1)")
	f.IntVar(&c.Push.OOOMaxDelay, "ooo-max-delay", c.Push.OOOMaxDelay, "push: a late sample is held 1..N intervals")
	f.DurationVar(&c.Push.OOOWindow, "ooo-window", c.Push.OOOWindow, "push: Vigil's -storage.out-of-order-window; late samples stay within half of it")
	f.Int64Var(&c.Push.MaxSamples, "max-samples", c.Push.MaxSamples, "push: stop after this many samples (0: series × rounds in -duration)")
	f.IntVar(&c.Push.MaxRetries, "max-retries", c.Push.MaxRetries, "push: retries of one remote-write request")

	f.IntVar(&c.Scrape.Exporters, "exporters", c.Scrape.Exporters, "scrape: synthetic exporters started on 127.0.0.1")
	f.IntVar(&c.Scrape.SeriesPerExporter, "series-per-exporter", c.Scrape.SeriesPerExporter, "scrape: median series per exporter (sizes are lognormal)")
	f.Float64Var(&c.Scrape.SizeSigma, "size-sigma", c.Scrape.SizeSigma, "scrape: sigma of the lognormal exporter sizes (0: all equal)")
	f.DurationVar(&c.Scrape.Interval, "scrape-interval", c.Scrape.Interval, "scrape: interval registered for every exporter (at least 1s)")
	f.StringVar(&c.Scrape.Job, "job", c.Scrape.Job, "scrape: job of the registered exporters")
	f.IntVar(&c.Scrape.MaxScrapes, "max-scrapes", c.Scrape.MaxScrapes, "scrape: most scrapes one exporter answers (0: from -duration)")
	f.DurationVar(&c.Scrape.LeaseTTL, "lease-ttl", c.Scrape.LeaseTTL, "scrape: lease of each registered exporter; a killed tester's targets go after it (5s..1h)")

	f.Float64Var(&c.Query.QPS, "qps", c.Query.QPS, "query: queries per second")
	f.IntVar(&c.Query.Concurrency, "query-concurrency", c.Query.Concurrency, "query: most queries in flight")
	f.Int64Var(&c.Query.MaxQueries, "max-queries", c.Query.MaxQueries, "query: stop after this many queries (0: qps × duration)")

	f.Float64Var(&c.VerifyFraction, "verify-fraction", c.VerifyFraction, "share of pushed series whose every acknowledged sample is read back")
	f.IntVar(&c.VerifyMinSeries, "verify-min-series", c.VerifyMinSeries, "verify at least this many series (when that many were pushed)")
	f.IntVar(&c.VerifyMaxSeries, "verify-max-series", c.VerifyMaxSeries, "verify at most this many series (at least 1; their samples are held in memory)")
	f.BoolVar(&c.NoVerify, "no-verify", c.NoVerify, "push without reading anything back: the run is reported UNVERIFIED and exits non-zero")
	f.DurationVar(&c.SampleEvery, "sample-every", c.SampleEvery, "how often Vigil's /metrics and the client counters are sampled")
}

// Runs reports whether the run includes the engine of the given mode.
func (c LiveConfig) Runs(engine string) bool { return c.Mode == engine || c.Mode == ModeMixed }

// Validate reports the first invalid field.
func (c LiveConfig) Validate() error {
	switch c.Mode {
	case ModePush, ModeScrape, ModeQuery, ModeMixed:
	default:
		return fmt.Errorf("mode %q: want push, scrape, query or mixed", c.Mode)
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		return fmt.Errorf("duration %v: must be in (0, %v]", c.Duration, MaxDuration)
	}
	if c.SampleEvery < 100*time.Millisecond {
		return errors.New("sample-every must be at least 100ms")
	}
	if c.VerifyFraction < 0 || c.VerifyFraction > 1 || c.VerifyMinSeries < 0 {
		return errors.New("verify-fraction must be in [0, 1], verify-min-series not negative")
	}
	if c.VerifyMaxSeries <= 0 || c.VerifyMaxSeries > MaxVerifySeries {
		return fmt.Errorf("verify-max-series %d: must be in [1, %d] (0 is not unlimited: the verified samples are held in memory)", c.VerifyMaxSeries, MaxVerifySeries)
	}
	if err := CheckTarget(c.URL, c.AllowRemote); err != nil {
		return err
	}
	if c.Runs(ModePush) {
		p := c.Push
		switch {
		case p.Series <= 0 || p.Series > MaxLiveSeries:
			return fmt.Errorf("series %d: must be in [1, %d]", p.Series, MaxLiveSeries)
		case p.Interval < 100*time.Millisecond:
			return errors.New("interval must be at least 100ms")
		case p.Protocol != ProtocolRemoteWrite && p.Protocol != ProtocolSDK:
			return fmt.Errorf("protocol %q: want remote-write or sdk", p.Protocol)
		case p.Concurrency <= 0 || p.BatchSize <= 0:
			return errors.New("concurrency and batch-size must be positive")
		case p.Churn < 0:
			return errors.New("churn must not be negative")
		case p.OOOFraction < 0 || p.OOOFraction >= 1:
			return errors.New("ooo-fraction must be in [0, 1)")
		case p.OOOMaxDelay < 1:
			return errors.New("ooo-max-delay must be at least 1")
		case p.OOOFraction > 0 && time.Duration(p.OOOMaxDelay)*p.Interval > p.OOOWindow/2:
			return fmt.Errorf("late samples held %d × %v exceed half the out-of-order window %v", p.OOOMaxDelay, p.Interval, p.OOOWindow)
		case p.MaxSamples < 0 || p.MaxRetries < 0 || p.RequestTimeout <= 0:
			return errors.New("max-samples and max-retries must not be negative, the request timeout positive")
		}
		rounds := int64((c.Duration + p.Interval - 1) / p.Interval)
		if p.MaxSamples > 0 {
			rounds = min(rounds, (p.MaxSamples+int64(p.Series)-1)/int64(p.Series))
		}
		if k := int64(verifyCount(p.Series, c.VerifyFraction, c.VerifyMinSeries, c.VerifyMaxSeries)); !c.NoVerify && k*rounds > MaxRecordedSamples {
			return fmt.Errorf("verification would hold %d series × %d samples in memory, more than %d: lower -verify-fraction or -verify-max-series, or shorten -duration", k, rounds, MaxRecordedSamples)
		}
		if !c.NoVerify && verifyCount(p.Series, c.VerifyFraction, c.VerifyMinSeries, c.VerifyMaxSeries) == 0 {
			return fmt.Errorf("verify-fraction %v verifies none of the %d pushed series: pass -no-verify to push without verification (the run is then UNVERIFIED)", c.VerifyFraction, p.Series)
		}
		if p.Protocol == ProtocolSDK {
			if err := CheckTarget(c.grpcAddr(), c.AllowRemote); err != nil {
				return err
			}
		}
	}
	if c.Runs(ModeScrape) {
		s := c.Scrape
		// The exporters listen on this machine's loopback and are
		// registered by that address: a remote Vigil's collectors would
		// scrape their own loopback, -allow-remote or not.
		if err := CheckTarget(c.URL, false); err != nil {
			return fmt.Errorf("scrape mode needs a Vigil on this machine (its collectors scrape exporters on 127.0.0.1): %w", err)
		}
		if err := CheckTarget(c.grpcAddr(), false); err != nil {
			return fmt.Errorf("scrape mode registers the exporters at the gRPC address: %w", err)
		}
		switch {
		case s.Exporters <= 0 || s.Exporters > MaxExporters:
			return fmt.Errorf("exporters %d: must be in [1, %d]", s.Exporters, MaxExporters)
		case s.SeriesPerExporter <= 0 || s.SeriesPerExporter > 100_000:
			return fmt.Errorf("series-per-exporter %d: must be in [1, 100000]", s.SeriesPerExporter)
		case s.SizeSigma < 0 || s.SizeSigma > 3:
			return errors.New("size-sigma must be in [0, 3]")
		case s.Interval < time.Second || s.Interval > time.Hour:
			return errors.New("scrape-interval must be in [1s, 1h] (the registry's limits)")
		case s.Job == "":
			return errors.New("job must not be empty")
		case s.MaxScrapes < 0:
			return errors.New("max-scrapes must not be negative")
		case s.LeaseTTL < 5*time.Second || s.LeaseTTL > time.Hour:
			return fmt.Errorf("lease-ttl %v: must be in [5s, 1h] (the registry's limits)", s.LeaseTTL)
		}
		var sum int64
		for _, n := range ExporterSizes(s.Exporters, s.SeriesPerExporter, s.SizeSigma, c.Seed) {
			sum += int64(n)
		}
		if sum > MaxScrapeSeries {
			return fmt.Errorf("the exporters would serve %d series, more than %d: fewer -exporters or -series-per-exporter", sum, MaxScrapeSeries)
		}
	}
	if c.Runs(ModeQuery) {
		q := c.Query
		switch {
		case q.QPS <= 0 || q.QPS > MaxQPS:
			return fmt.Errorf("qps %v: must be in (0, %d]", q.QPS, MaxQPS)
		case q.Concurrency <= 0 || q.MaxQueries < 0 || q.Timeout <= 0:
			return errors.New("query-concurrency and the query timeout must be positive, max-queries not negative")
		}
		if n := c.queryBound(); n > MaxQueryEvents {
			return fmt.Errorf("%d queries (every latency is kept), more than %d: lower -qps, shorten -duration or set -max-queries", n, MaxQueryEvents)
		}
	}
	return nil
}

// queryBound is the most queries a run sends: MaxQueries, or QPS ×
// Duration.
func (c LiveConfig) queryBound() int64 {
	if c.Query.MaxQueries > 0 {
		return c.Query.MaxQueries
	}
	return int64(c.Query.QPS*c.Duration.Seconds()) + 1
}

// grpcAddr is GRPC or, when empty, URL's host with port 9095.
func (c LiveConfig) grpcAddr() string {
	if c.GRPC != "" {
		return c.GRPC
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(u.Hostname(), "9095")
}

// GRPCAddr is the gRPC address the SDK push uses.
func (c LiveConfig) GRPCAddr() string { return c.grpcAddr() }

// newHTTPClient returns a client without proxy whose redirects must pass
// CheckTarget too: a loopback server cannot send the tester elsewhere
// unless remote targets are allowed.
func newHTTPClient(timeout time.Duration, tr *http.Transport, allowRemote bool) *http.Client {
	if tr == nil {
		tr = &http.Transport{}
	}
	tr.Proxy = nil
	return &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if err := CheckTarget(req.URL.String(), allowRemote); err != nil {
			return fmt.Errorf("redirect refused: %w", err)
		}
		return nil
	}}
}

// ErrNotLoopback is returned for a target that is not a loopback address
// when remote targets are not allowed.
var ErrNotLoopback = errors.New("not a loopback address (pass -allow-remote to load a remote server)")

// CheckTarget accepts a URL (http://host:port/...) or a host:port whose host
// is a loopback IP or "localhost"; any other host needs allowRemote. Host
// names are not resolved: a name that happens to resolve to loopback still
// needs the flag.
func CheckTarget(target string, allowRemote bool) error {
	if target == "" {
		return errors.New("empty target address")
	}
	host := ""
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil {
			return fmt.Errorf("target %q: %w", target, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("target %q: scheme %q, want http or https", target, u.Scheme)
		}
		host = u.Hostname()
	} else {
		h, _, err := net.SplitHostPort(target)
		if err != nil {
			return fmt.Errorf("target %q: %w", target, err)
		}
		host = h
	}
	if host == "" {
		return fmt.Errorf("target %q: no host", target)
	}
	if allowRemote {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q: %w", target, ErrNotLoopback)
}

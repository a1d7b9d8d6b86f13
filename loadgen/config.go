package loadgen

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config describes one load: Series series × Samples samples each, one
// sample per Interval, ending at End.
type Config struct {
	// Series is the number of series; hosts = ceil(Series / SeriesPerHost).
	Series int `yaml:"series"`
	// Samples is the number of samples per series.
	Samples int `yaml:"samples"`
	// Interval is the simulated scrape interval between a series' samples.
	Interval time.Duration `yaml:"interval"`
	// BatchSize is the most samples (one per series) in one remote-write
	// request.
	BatchSize int `yaml:"batch_size"`
	// Concurrency is the number of requests in flight; each sender owns a
	// contiguous share of the series.
	Concurrency int `yaml:"concurrency"`
	// Seed makes the values reproducible.
	Seed int64 `yaml:"seed"`
	// MaxRetries bounds the retries of one request after a 5xx, a 429 or a
	// transport error; the push fails when they are used up.
	MaxRetries int `yaml:"max_retries"`
	// RequestTimeout bounds one attempt of one request.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// End is the time the load ends at: the last sample is at
	// End − Interval, the first at End − Samples×Interval. Zero means the
	// time Push starts.
	End time.Time `yaml:"-"`
}

// DefaultConfig returns the default load: 100 k series (1,000 hosts) × 360
// samples at 15 s (90 minutes of data), 10 k samples per request, 4 senders.
func DefaultConfig() Config {
	return Config{
		Series:         100_000,
		Samples:        360,
		Interval:       15 * time.Second,
		BatchSize:      10_000,
		Concurrency:    4,
		Seed:           1,
		MaxRetries:     10,
		RequestTimeout: 60 * time.Second,
	}
}

// RegisterFlags registers the load's flags on f with c's current values as
// defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.Series, "series", c.Series, "number of series (hosts = series / "+fmt.Sprint(SeriesPerHost)+")")
	f.IntVar(&c.Samples, "samples", c.Samples, "samples per series")
	f.DurationVar(&c.Interval, "interval", c.Interval, "simulated scrape interval; the data ends now and starts samples×interval ago")
	f.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "most samples per remote-write request")
	f.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "requests in flight")
	f.Int64Var(&c.Seed, "seed", c.Seed, "random seed for the values")
	f.IntVar(&c.MaxRetries, "max-retries", c.MaxRetries, "retries of one request after 5xx, 429 or a transport error")
	f.DurationVar(&c.RequestTimeout, "request-timeout", c.RequestTimeout, "timeout of one request attempt")
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Series <= 0:
		return errors.New("series must be positive")
	case c.Samples <= 0:
		return errors.New("samples must be positive")
	case c.Interval < time.Millisecond:
		return errors.New("interval must be at least 1ms")
	case c.BatchSize <= 0:
		return errors.New("batch size must be positive")
	case c.Concurrency <= 0:
		return errors.New("concurrency must be positive")
	case c.MaxRetries < 0:
		return errors.New("max retries must not be negative")
	case c.RequestTimeout <= 0:
		return errors.New("request timeout must be positive")
	}
	return nil
}

// TotalSamples is Series × Samples.
func (c Config) TotalSamples() int64 { return int64(c.Series) * int64(c.Samples) }

// Hosts is the number of hosts the series belong to.
func (c Config) Hosts() int { return (c.Series + SeriesPerHost - 1) / SeriesPerHost }

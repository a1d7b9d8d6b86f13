package api

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"time"
)

// Config holds the HTTP API's limits. The zero value is not usable; start
// from DefaultConfig.
type Config struct {
	// MaxBodyBytes bounds a push request body as it arrives on the wire,
	// before any decompression. Larger bodies get 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxDecodedBodyBytes bounds a push body after decompression (snappy,
	// gzip, zstd). Larger bodies get 413 before the decoded data is held in
	// memory: snappy declares its decoded length up front, gzip and zstd
	// are read through a limit.
	MaxDecodedBodyBytes int64 `yaml:"max_decoded_body_bytes"`
	// MaxSamplesPerRequest bounds the samples of one push request, checked
	// while decoding so that a body of millions of tiny series is refused
	// (413) before it is all in memory. 0 disables the check. The
	// distributor may apply a lower limit of its own.
	MaxSamplesPerRequest int `yaml:"max_samples_per_request"`
	// MaxQueryFormBytes bounds the form body of a POSTed query request.
	MaxQueryFormBytes int64 `yaml:"max_query_form_bytes"`
	// QueryTimeout is the longest a query may run; a smaller `timeout`
	// parameter shortens it for one request, a larger one is capped.
	QueryTimeout time.Duration `yaml:"query_timeout"`
	// RetryAfter is the Retry-After header sent with 429 and 503 answers to
	// pushes.
	RetryAfter time.Duration `yaml:"retry_after"`
	// MaxConcurrentWrites bounds the push requests being decoded and stored
	// at once; with MaxDecodedBodyBytes it bounds the memory writes can
	// take. Further requests wait in line up to WriteQueueTimeout, then get
	// 429 with Retry-After.
	MaxConcurrentWrites int           `yaml:"max_concurrent_writes"`
	WriteQueueTimeout   time.Duration `yaml:"write_queue_timeout"`
}

// Default limits. Remote write batches from Prometheus are typically a few
// hundred KiB compressed, so 16 MiB on the wire and 64 MiB decoded leave
// room for large imports while bounding what one request can make us hold.
const (
	DefaultMaxBodyBytes         = 16 << 20
	DefaultMaxDecodedBodyBytes  = 64 << 20
	DefaultMaxSamplesPerRequest = 1_000_000
	DefaultMaxQueryFormBytes    = 1 << 20
	DefaultQueryTimeout         = 2 * time.Minute
	DefaultRetryAfter           = 2 * time.Second
)

// DefaultConfig returns a complete, working configuration.
func DefaultConfig() Config {
	return Config{
		MaxBodyBytes:         DefaultMaxBodyBytes,
		MaxDecodedBodyBytes:  DefaultMaxDecodedBodyBytes,
		MaxSamplesPerRequest: DefaultMaxSamplesPerRequest,
		MaxQueryFormBytes:    DefaultMaxQueryFormBytes,
		QueryTimeout:         DefaultQueryTimeout,
		RetryAfter:           DefaultRetryAfter,
		MaxConcurrentWrites:  max(8, 4*runtime.GOMAXPROCS(0)),
		WriteQueueTimeout:    10 * time.Second,
	}
}

// RegisterFlags registers the config's flags, prefixed "api.", with the
// current values of c as defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Int64Var(&c.MaxBodyBytes, "api.max-body-bytes", c.MaxBodyBytes,
		"Largest push request body accepted on the wire, before decompression (bytes).")
	f.Int64Var(&c.MaxDecodedBodyBytes, "api.max-decoded-body-bytes", c.MaxDecodedBodyBytes,
		"Largest push request body after decompression (bytes).")
	f.IntVar(&c.MaxSamplesPerRequest, "api.max-samples-per-request", c.MaxSamplesPerRequest,
		"Most samples one push request may carry; 0 disables the check.")
	f.Int64Var(&c.MaxQueryFormBytes, "api.max-query-form-bytes", c.MaxQueryFormBytes,
		"Largest form body of a POSTed query request (bytes).")
	f.DurationVar(&c.QueryTimeout, "api.query-timeout", c.QueryTimeout,
		"Longest time a query may run; the timeout parameter can only shorten it.")
	f.IntVar(&c.MaxConcurrentWrites, "api.max-concurrent-writes", c.MaxConcurrentWrites,
		"Push requests processed at once; more wait in line (default: 4 per CPU, at least 8).")
	f.DurationVar(&c.WriteQueueTimeout, "api.write-queue-timeout", c.WriteQueueTimeout,
		"How long a push request may wait for a slot before it gets 429 with Retry-After.")
	f.DurationVar(&c.RetryAfter, "api.retry-after", c.RetryAfter,
		"Retry-After sent with 429 and 503 answers to pushes.")
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("api.max-body-bytes must be positive, got %d", c.MaxBodyBytes))
	}
	if c.MaxDecodedBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("api.max-decoded-body-bytes must be positive, got %d", c.MaxDecodedBodyBytes))
	}
	if c.MaxDecodedBodyBytes > 0 && c.MaxDecodedBodyBytes < c.MaxBodyBytes {
		errs = append(errs, fmt.Errorf("api.max-decoded-body-bytes (%d) must not be smaller than api.max-body-bytes (%d)",
			c.MaxDecodedBodyBytes, c.MaxBodyBytes))
	}
	if c.MaxConcurrentWrites <= 0 {
		errs = append(errs, fmt.Errorf("api.max-concurrent-writes must be positive, got %d", c.MaxConcurrentWrites))
	}
	if c.WriteQueueTimeout < 0 {
		errs = append(errs, fmt.Errorf("api.write-queue-timeout must not be negative, got %s", c.WriteQueueTimeout))
	}
	if c.MaxSamplesPerRequest < 0 {
		errs = append(errs, fmt.Errorf("api.max-samples-per-request must not be negative, got %d", c.MaxSamplesPerRequest))
	}
	if c.MaxQueryFormBytes <= 0 {
		errs = append(errs, fmt.Errorf("api.max-query-form-bytes must be positive, got %d", c.MaxQueryFormBytes))
	}
	if c.QueryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("api.query-timeout must be positive, got %s", c.QueryTimeout))
	}
	if c.RetryAfter < time.Second {
		errs = append(errs, fmt.Errorf("api.retry-after must be at least 1s (Retry-After is in whole seconds), got %s", c.RetryAfter))
	}
	return errors.Join(errs...)
}

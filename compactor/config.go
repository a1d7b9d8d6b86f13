package compactor

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config configures a Compactor. DefaultConfig returns a complete, working
// value. A retention is how long a day is kept after it ended; a tier with
// retention 0 is disabled: nothing is written to it, and days it still
// holds are dropped once the next tier holds them.
type Config struct {
	// Interval between passes; a pass also runs at start.
	Interval time.Duration `yaml:"interval"`
	// Settle: a day becomes due this long after it ended. It must cover
	// the storage's out-of-order window and one flush interval, so that no
	// ordinary append reaches a day after it was compacted (a later
	// backfill moves the day's cold-change mark and the day is redone).
	Settle time.Duration `yaml:"settle"`
	// RetentionRaw, RetentionMinute and RetentionHour are how long raw
	// samples, 1 m and 1 h aggregates are kept.
	RetentionRaw    time.Duration `yaml:"retention_raw"`
	RetentionMinute time.Duration `yaml:"retention_1m"`
	RetentionHour   time.Duration `yaml:"retention_1h"`
}

// DefaultConfig returns the configuration of docs/downsampling.md: raw 7
// days, 1 m 30 days, 1 h a year, a pass every 5 minutes, days due 1 h 10 m
// after they ended (the default out-of-order window plus a margin over one
// flush).
func DefaultConfig() Config {
	return Config{
		Interval:        5 * time.Minute,
		Settle:          time.Hour + 10*time.Minute,
		RetentionRaw:    7 * 24 * time.Hour,
		RetentionMinute: 30 * 24 * time.Hour,
		RetentionHour:   365 * 24 * time.Hour,
	}
}

// RegisterFlags adds the compactor and retention flags to f, with c's
// values as defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Interval, "compactor.interval", c.Interval, "how often the compactor downsamples due days and applies retention")
	f.DurationVar(&c.Settle, "compactor.settle", c.Settle, "how long after a UTC day ended it is downsampled; at least the storage out-of-order window plus one flush interval")
	f.DurationVar(&c.RetentionRaw, "retention.raw", c.RetentionRaw, "how long raw samples are kept after their day ended (kept longer until the day's aggregates exist)")
	f.DurationVar(&c.RetentionMinute, "retention.1m", c.RetentionMinute, "how long 1-minute aggregates are kept (0 disables the 1m tier)")
	f.DurationVar(&c.RetentionHour, "retention.1h", c.RetentionHour, "how long 1-hour aggregates are kept (0 disables the 1h tier)")
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Interval <= 0:
		return errors.New("compactor: interval must be positive")
	case c.Settle < 0:
		return errors.New("compactor: settle must not be negative")
	case c.RetentionRaw <= 0:
		return errors.New("compactor: retention_raw must be positive")
	case c.RetentionMinute < 0 || c.RetentionHour < 0:
		return errors.New("compactor: retentions must not be negative")
	case c.RetentionMinute > 0 && c.RetentionMinute < c.RetentionRaw:
		// Otherwise a tier day would be dropped while its raw day, which
		// waits for it, is kept, and would be compacted again.
		return fmt.Errorf("compactor: retention_1m %s is below retention_raw %s (use 0 to disable the 1m tier)", c.RetentionMinute, c.RetentionRaw)
	case c.RetentionHour > 0 && c.RetentionHour < max(c.RetentionRaw, c.RetentionMinute):
		return fmt.Errorf("compactor: retention_1h %s is below retention_raw or retention_1m (use 0 to disable the 1h tier)", c.RetentionHour)
	}
	return nil
}

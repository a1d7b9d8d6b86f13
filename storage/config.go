package storage

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config configures a DB. DefaultConfig returns a complete, working value.
type Config struct {
	Dir string `yaml:"dir"`
	// WALSync is SyncAlways (default) or SyncInterval; see their docs.
	WALSync         string        `yaml:"wal_sync"`
	WALSyncInterval time.Duration `yaml:"wal_sync_interval"`
	WALSegmentSize  int64         `yaml:"wal_segment_size"`
	// OutOfOrderWindow: a sample older than the newest sample in the DB by
	// more than this is refused as too old. Within it, out-of-order samples
	// are accepted and readable.
	OutOfOrderWindow time.Duration `yaml:"out_of_order_window"`
	// ChunkRange: chunks are cut at multiples of this (and at 120 samples).
	ChunkRange time.Duration `yaml:"chunk_range"`
	// FlushInterval: how often in-memory chunks are written to Badger and
	// the WAL truncated. Bounds WAL replay on restart.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxActiveSeries caps series in memory; new series beyond it are
	// refused (0 = no limit).
	MaxActiveSeries int `yaml:"max_active_series"`
	// BadgerCacheSize is Badger's block cache in bytes.
	BadgerCacheSize int64 `yaml:"badger_cache_size"`
	// BadgerMemTableSize is the size of one Badger memtable (an arena held
	// in memory). Smaller saves memory but lets more superseded versions of
	// open chunks reach disk before compaction (docs/benchmarks.md).
	BadgerMemTableSize int64 `yaml:"badger_memtable_size"`
}

// DefaultConfig returns the configuration single-node Vigil runs with.
func DefaultConfig() Config {
	return Config{
		Dir:              "data",
		WALSync:          SyncAlways,
		WALSyncInterval:  time.Second,
		WALSegmentSize:   128 << 20,
		OutOfOrderWindow: time.Hour,
		ChunkRange:       2 * time.Hour,
		FlushInterval:    5 * time.Minute,
		MaxActiveSeries:  5_000_000,
		BadgerCacheSize:  256 << 20,

		BadgerMemTableSize: 64 << 20,
	}
}

// RegisterFlags adds the storage flags to f, with c's values as defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.WALSync, "storage.wal-sync", c.WALSync, `WAL durability: "always" acknowledges writes after fsync (group commit; survives power loss), "interval" after write(2) with fsync every -storage.wal-sync-interval (survives kill -9, may lose that interval on power loss)`)
	f.DurationVar(&c.WALSyncInterval, "storage.wal-sync-interval", c.WALSyncInterval, `fsync period when -storage.wal-sync=interval`)
	f.Int64Var(&c.WALSegmentSize, "storage.wal-segment-size", c.WALSegmentSize, "bytes after which a new WAL segment is started")
	f.DurationVar(&c.OutOfOrderWindow, "storage.out-of-order-window", c.OutOfOrderWindow, "how far behind the newest sample a sample may be and still be accepted")
	f.DurationVar(&c.ChunkRange, "storage.chunk-range", c.ChunkRange, "chunks are cut at multiples of this duration (and at 120 samples); must divide 24h")
	f.DurationVar(&c.FlushInterval, "storage.flush-interval", c.FlushInterval, "how often in-memory chunks are persisted to Badger and the WAL truncated")
	f.IntVar(&c.MaxActiveSeries, "storage.max-active-series", c.MaxActiveSeries, "series held in memory at most; new series beyond are refused (0 = unlimited)")
	f.Int64Var(&c.BadgerCacheSize, "storage.badger-cache-size", c.BadgerCacheSize, "Badger block cache in bytes")
	f.Int64Var(&c.BadgerMemTableSize, "storage.badger-memtable-size", c.BadgerMemTableSize, "size of one Badger memtable in bytes")
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("storage: dir must be set")
	case c.WALSync != SyncAlways && c.WALSync != SyncInterval:
		return fmt.Errorf("storage: wal_sync is %q, want %q or %q", c.WALSync, SyncAlways, SyncInterval)
	case c.WALSync == SyncInterval && c.WALSyncInterval <= 0:
		return errors.New("storage: wal_sync_interval must be positive")
	case c.WALSegmentSize < 1<<20:
		return fmt.Errorf("storage: wal_segment_size %d is below 1 MiB", c.WALSegmentSize)
	case c.OutOfOrderWindow < 0:
		return errors.New("storage: out_of_order_window must not be negative")
	case c.ChunkRange < time.Minute || (24*time.Hour)%c.ChunkRange != 0:
		return fmt.Errorf("storage: chunk_range %s must be at least 1m and divide 24h", c.ChunkRange)
	case c.FlushInterval < 100*time.Millisecond:
		return fmt.Errorf("storage: flush_interval %s is below 100ms", c.FlushInterval)
	case c.BadgerMemTableSize < 1<<20:
		return fmt.Errorf("storage: badger_memtable_size %d is below 1 MiB", c.BadgerMemTableSize)
	case c.MaxActiveSeries < 0:
		return errors.New("storage: max_active_series must not be negative")
	}
	return nil
}

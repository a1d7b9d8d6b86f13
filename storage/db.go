package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-tsdb/vigil/model"
)

// DB is the storage engine of one ingester: a WAL, an in-memory head of
// recent chunks, and Badger for persisted chunks and the label index.
//
// Append, the queriers and Flush are safe for concurrent use.
type DB struct {
	// coldChanges counts writes and deletions that touched data older
	// than ColdAge (see ColdChanges) and keeps the per-day marks
	// (ColdChangesDay, tier.go).
	coldChanges coldCounter

	tiers tierState // the compactor's tier days (tier.go)

	cfg     Config
	logger  *slog.Logger
	metrics *dbMetrics
	bdb     *badger.DB
	head    *head
	wal     *wal

	chunkRange int64  // ms
	window     int64  // out-of-order window, ms
	tooOldMsg  string // the refusal message for samples older than the window

	appendMu sync.RWMutex // appends hold it shared; the WAL roll of a flush exclusively
	closed   bool         // under appendMu
	flushMu  sync.Mutex   // one flush at a time

	parts partitionSet // raw partitions present in Badger

	// onlyInBadgerBefore: every persisted chunk that is not also in memory
	// ended before this time (evicted, or not reloaded at start). A read of
	// a range starting at or after it needs nothing from Badger. Raised
	// before chunks are evicted; readers load it after their memory
	// snapshot, so an eviction in between is always seen.
	onlyInBadgerBefore atomic.Int64

	// evictions counts evictions. It is raised after onlyInBadgerBefore and
	// before chunks leave memory, so a reader whose Badger snapshot is
	// older than its memory snapshot can tell that chunks may have moved
	// in between (SeriesDigests).
	evictions atomic.Uint64

	// pending holds the series (encoded labels → ref) that a running
	// Backfill allocated a ref for and has not yet written to Badger. An
	// Append creating the same series meanwhile must take that ref, or the
	// labels would get two. Entries are added under the series' head stripe
	// lock, which the Append's lookup also holds.
	pendingMu sync.Mutex
	pending   map[string]uint64
	pendingN  atomic.Int64

	// replayedTombstones is how many series the WAL replay of Open deleted
	// from (DeleteSeries tombstones); Open then flushes so that they are
	// not replayed again.
	replayedTombstones int

	// testDeleteStop, set by tests, makes DeleteSeries return an error at
	// the named point ("tombstone": logged, nothing applied; "applied":
	// memory and Badger done, no flush yet), as a crash there would.
	testDeleteStop string
	// testBackfillResolved, set by tests, runs in Backfill after the refs
	// of new series are reserved and before anything is written.
	testBackfillResolved func()

	// testCrashBeforeCheckpoint, set by tests, makes a flush stop after
	// Badger synced and before the new checkpoint replaces the old one.
	testCrashBeforeCheckpoint bool

	closeOnce sync.Once
	closeErr  error
}

// removeEmptyMemtables deletes the empty memtable files in dir. A crash
// between Badger's creation of a memtable file and its first write leaves
// one, and badger.Open then fails with "Create a new file"
// (dgraph-io/badger#2207). An empty file holds no data.
func removeEmptyMemtables(dir string, logger *slog.Logger) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return err
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil || fi.Size() != 0 {
			continue
		}
		logger.Warn("removing an empty memtable file left by a crash", "file", f)
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("remove the empty memtable file %s: %w", f, err)
		}
	}
	return nil
}

// Open opens or creates the DB in cfg.Dir, loads recent chunks into memory
// and replays the WAL. It returns once the DB is ready for writes.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	walDir, badgerDir := filepath.Join(cfg.Dir, "wal"), filepath.Join(cfg.Dir, "badger")
	for _, d := range []string{walDir, badgerDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	bopts := badger.DefaultOptions(badgerDir).
		WithLogger(badgerLogger{logger.With("component", "badger")}).
		WithCompression(options.ZSTD).
		WithZSTDCompressionLevel(1).
		WithBlockCacheSize(cfg.BadgerCacheSize).
		WithMemTableSize(cfg.BadgerMemTableSize).
		WithNumVersionsToKeep(1).
		WithCompactL0OnClose(true)
	if err := removeEmptyMemtables(badgerDir, logger); err != nil {
		return nil, err
	}
	bdb, err := badger.Open(bopts)
	if err != nil {
		return nil, fmt.Errorf("open badger in %s: %w", badgerDir, err)
	}
	m := newDBMetrics(reg)
	db := &DB{
		cfg: cfg, logger: logger, metrics: m, bdb: bdb, head: newHead(m),
		chunkRange: cfg.ChunkRange.Milliseconds(), window: cfg.OutOfOrderWindow.Milliseconds(),
		pending: map[string]uint64{},
	}
	db.onlyInBadgerBefore.Store(math.MinInt64)
	db.coldChanges.bdb, db.coldChanges.logger = bdb, logger
	db.tooOldMsg = fmt.Sprintf("older than the out-of-order window (%s behind the newest sample)", cfg.OutOfOrderWindow)
	start := time.Now()
	next, err := db.load(walDir)
	if err != nil {
		bdb.Close()
		return nil, err
	}
	m.replayDuration.Set(time.Since(start).Seconds())
	db.wal, err = openWAL(walDir, next, cfg.WALSync, cfg.WALSyncInterval, cfg.WALSegmentSize, logger, m.wal)
	if err != nil {
		bdb.Close()
		return nil, err
	}
	if db.replayedTombstones > 0 {
		// A DeleteSeries was cut short: replay completed it; a checkpoint
		// now retires its tombstones, so that a later crash does not apply
		// them to samples written after this start.
		logger.Info("completed deletions found in the WAL", "series", db.replayedTombstones)
		if err := db.Flush(); err != nil {
			logger.Error("flush after completing deletions failed; retried by the periodic flush", "err", err)
		}
	}
	logger.Info("storage ready", "dir", cfg.Dir, "head_series", db.head.numSeries.Load(), "replay", time.Since(start).Round(time.Millisecond))
	return db, nil
}

// load restores the head: meta, recent chunks from Badger, then the WAL.
func (db *DB) load(walDir string) (int, error) {
	err := db.bdb.View(func(txn *badger.Txn) error {
		if v, err := getMeta(txn, metaVersion); err != nil {
			return err
		} else if v != nil && binary.BigEndian.Uint64(v) != FormatVersion {
			return fmt.Errorf("data format version %d, this build reads %d", binary.BigEndian.Uint64(v), FormatVersion)
		}
		for _, kv := range []struct {
			key []byte
			set func([]byte)
		}{
			{metaNextID, func(v []byte) { db.head.nextRef.Store(binary.BigEndian.Uint64(v)) }},
			{metaNextSeq, func(v []byte) { db.head.nextSeq.Store(binary.BigEndian.Uint64(v)) }},
			{metaHeadMaxT, func(v []byte) { db.head.maxt.Store(getTime(v)) }},
		} {
			v, err := getMeta(txn, kv.key)
			if err != nil {
				return err
			}
			if len(v) == 8 {
				kv.set(v)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read meta: %w", err)
	}
	if err := db.coldChanges.load(); err != nil {
		return 0, fmt.Errorf("read cold-change marks: %w", err)
	}
	if err := db.discoverPartitions(); err != nil {
		return 0, fmt.Errorf("list partitions: %w", err)
	}
	if err := db.loadHotChunks(); err != nil {
		return 0, fmt.Errorf("load recent chunks: %w", err)
	}
	from, err := db.loadCheckpoint()
	if err != nil {
		return 0, err
	}
	next, tombs, coldParts, err := db.replay(walDir, from)
	if err != nil {
		return 0, err
	}
	if len(tombs) > 0 {
		targets := make([]deleteTarget, 0, len(tombs))
		for ref, maxt := range tombs {
			tg := deleteTarget{ref: ref, maxt: maxt}
			if s := db.head.byRef(ref); s != nil {
				tg.lset = s.lset
			}
			targets = append(targets, tg)
		}
		if err := db.deleteChunks(targets); err != nil {
			return 0, fmt.Errorf("apply wal tombstones to badger: %w", err)
		}
		db.replayedTombstones = len(tombs)
		db.metrics.deletedSeries.Add(float64(len(tombs)))
	}
	// The marks of replayed changes may not have been persisted before the
	// crash: move them again (deletions: every day).
	db.coldChanges.mark(coldParts, len(tombs) > 0)
	return next, nil
}

// loadCheckpoint restores the open chunks of the last flush and returns
// the first WAL segment to replay.
func (db *DB) loadCheckpoint() (int, error) {
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	var sb labels.ScratchBuilder
	return readCheckpoint(db.cfg.Dir, func(ref uint64, mint, maxt int64, seq uint64, data []byte) error {
		xc, err := chunkFromBytes(data)
		if err != nil {
			return fmt.Errorf("chunk of series %d: %w", ref, err)
		}
		s, err := db.seriesForReplay(txn, ref, &sb)
		if err != nil {
			return err
		}
		s.loadOpenChunk(mint, maxt, seq, xc)
		return nil
	})
}

func getMeta(txn *badger.Txn, key []byte) ([]byte, error) {
	it, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// loadHotChunks reads back the persisted chunks that can still receive
// out-of-order samples, so that duplicate and conflict checks stay exact
// across restarts and the last open chunk continues where it stopped.
func (db *DB) loadHotChunks() error {
	hm := db.head.maxt.Load()
	if hm == math.MinInt64 {
		return nil
	}
	cutoff := hm - db.window
	firstMint := cutoff - db.chunkRange // no chunk spans more than one range
	db.onlyInBadgerBefore.Store(cutoff)
	var sb labels.ScratchBuilder
	return db.bdb.View(func(txn *badger.Txn) error {
		for _, part := range db.partitionsIn(firstMint, hm) {
			prefix := partPrefix(prefixChunks, TierRaw, part)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
			for it.Rewind(); it.Valid(); it.Next() {
				item := it.Item()
				id, mint, seq, err := parseChunkKey(item.Key())
				if err != nil {
					it.Close()
					return err
				}
				if mint < firstMint {
					continue
				}
				v, err := item.ValueCopy(nil)
				if err != nil {
					it.Close()
					return err
				}
				maxt, enc, data, err := parseChunkValue(v)
				if err != nil || enc != byte(model.EncXOR) {
					it.Close()
					return fmt.Errorf("chunk %x: bad value (encoding %d): %v", item.Key(), enc, err)
				}
				if maxt < cutoff {
					continue
				}
				xc, err := chunkFromBytes(data)
				if err != nil {
					it.Close()
					return fmt.Errorf("chunk %x: %w", item.Key(), err)
				}
				s, err := db.seriesForReplay(txn, id, &sb)
				if err != nil {
					it.Close()
					return err
				}
				s.loadChunk(mint, maxt, seq, xc)
			}
			it.Close()
		}
		return nil
	})
}

// loadChunk adds a closed chunk from Badger to a series being restored.
func (s *memSeries) loadChunk(mint, maxt int64, seq uint64, xc *chunkenc.XORChunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &memChunk{chunk: xc, mint: mint, maxt: maxt, seq: seq, closed: true, persisted: xc.NumSamples()}
	s.insertChunk(c)
	if maxt > s.maxt {
		s.maxt, s.lastV = maxt, lastValue(xc)
	}
}

// loadOpenChunk makes a checkpointed chunk the series' open chunk again,
// unless Badger already gave the head that chunk (closed, so newer).
func (s *memSeries) loadOpenChunk(mint, maxt int64, seq uint64, xc *chunkenc.XORChunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks {
		if c.seq == seq {
			return
		}
	}
	// Re-encode: a chunk made from bytes does not know how many bits of its
	// last byte are used, and appending to it as it is would corrupt it.
	fresh := chunkenc.NewXORChunk()
	app, _ := fresh.Appender()
	it := xc.Iterator(nil)
	for it.Next() != chunkenc.ValNone {
		t, v := it.At()
		app.Append(0, t, v)
	}
	c := &memChunk{chunk: fresh, mint: mint, maxt: maxt, seq: seq}
	s.insertChunk(c)
	if maxt >= s.maxt {
		if s.open != nil {
			s.open.closed = true
		}
		s.open, s.app = c, app
		s.maxt, s.lastV = maxt, lastValue(fresh)
	} else {
		c.closed = true // an older in-order chunk cannot take appends
	}
}

func lastValue(c chunkenc.Chunk) float64 {
	var v float64
	it := c.Iterator(nil)
	for it.Next() != chunkenc.ValNone {
		_, v = it.At()
	}
	return v
}

// seriesForReplay returns the head series with this ref, restoring it from
// Badger's labels key if it is not in the head.
func (db *DB) seriesForReplay(txn *badger.Txn, ref uint64, sb *labels.ScratchBuilder) (*memSeries, error) {
	if s := db.head.byRef(ref); s != nil {
		return s, nil
	}
	item, err := txn.Get(labelsKey(ref))
	if err != nil {
		return nil, fmt.Errorf("labels of series %d: %w", ref, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	lset, err := model.DecodeLabels(v, sb)
	if err != nil {
		return nil, fmt.Errorf("labels of series %d: %w", ref, err)
	}
	s, _, err := db.head.getOrCreate(lset.Hash(), lset, func() (uint64, bool, error) { return ref, true, nil }, nil)
	return s, err
}

// replay applies the WAL to the head. Limits on admission (the out-of-order
// window) are not re-applied: every logged sample was accepted once.
// Tombstones are applied to the head where they occur in the log (samples
// logged after one are kept) and returned (ref → maxt) to be applied to
// Badger. It also returns the partitions of replayed samples older than
// ColdAge.
func (db *DB) replay(walDir string, from int) (int, map[uint64]int64, []uint32, error) {
	var (
		sb         labels.ScratchBuilder
		rec        walRecord
		byRef      = map[uint64]*memSeries{}
		tombs      = map[uint64]int64{}
		lost       int
		coldBefore = time.Now().Add(-ColdAge).UnixMilli()
		coldParts  []uint32
	)
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	next, err := replayWAL(walDir, from, db.logger, func(seg int, p []byte) error {
		db.metrics.replayedRecords.Inc()
		if err := decodeRecord(p, &sb, &rec); err != nil {
			return &corruptionError{err}
		}
		for _, ws := range rec.series {
			s, _, err := db.head.getOrCreate(ws.labels.Hash(), ws.labels, func() (uint64, bool, error) {
				inBadger, err := db.inBadger(ws.labels)
				return ws.id, inBadger, err
			}, nil)
			if err != nil {
				return err
			}
			byRef[ws.id] = s
			if ws.id > db.head.nextRef.Load() {
				db.head.nextRef.Store(ws.id)
			}
		}
		for _, smp := range rec.samples {
			s := byRef[smp.id]
			if s == nil {
				var err error
				if s, err = db.seriesForReplay(txn, smp.id, &sb); err != nil {
					lost++
					continue
				}
				byRef[smp.id] = s
			}
			s.mu.Lock()
			s.append(smp.t, smp.v, math.MinInt64, db.chunkRange, db.head)
			s.mu.Unlock()
			db.head.updateMaxT(smp.t)
			if smp.t < coldBefore {
				if p := partitionOf(smp.t); !slices.Contains(coldParts, p) {
					coldParts = append(coldParts, p)
				}
			}
		}
		for _, ts := range rec.tombstones {
			if s := db.head.byRef(ts.id); s != nil {
				s.mu.Lock()
				s.deleteUpTo(ts.maxt)
				s.mu.Unlock()
			}
			if old, ok := tombs[ts.id]; !ok || ts.maxt > old {
				tombs[ts.id] = ts.maxt
			}
		}
		return nil
	})
	if lost > 0 {
		db.logger.Error("wal samples refer to unknown series and were skipped", "samples", lost)
	}
	return next, tombs, coldParts, err
}

func (db *DB) inBadger(lset labels.Labels) (bool, error) {
	_, ok, err := db.lookupRef(lset)
	return ok, err
}

// lookupRef finds the persisted ref of a series.
func (db *DB) lookupRef(lset labels.Labels) (uint64, bool, error) {
	var ref uint64
	var found bool
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(seriesKey(model.AppendLabels(nil, lset)))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("series key value of %d bytes", len(v))
			}
			ref, found = binary.BigEndian.Uint64(v), true
			return nil
		})
	})
	if err != nil {
		return 0, false, fmt.Errorf("look up series %s: %w", lset, err)
	}
	return ref, found, nil
}

// pendingRef returns the ref a running Backfill gave lset, if any. The
// caller holds lset's head stripe lock.
func (db *DB) pendingRef(lset labels.Labels) (uint64, bool) {
	if db.pendingN.Load() == 0 {
		return 0, false
	}
	key := model.AppendLabels(nil, lset)
	db.pendingMu.Lock()
	defer db.pendingMu.Unlock()
	ref, ok := db.pending[string(key)]
	return ref, ok
}

// Run flushes the head every FlushInterval until ctx is done.
func (db *DB) Run(ctx context.Context) error {
	t := time.NewTicker(db.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := db.Flush(); err != nil {
				db.logger.Error("flush failed; the WAL is kept and the flush retried", "err", err)
			}
		}
	}
}

// Close flushes the head to Badger and closes everything. Safe to call twice.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		ferr := db.Flush()
		db.appendMu.Lock()
		db.closed = true
		db.appendMu.Unlock()
		db.closeTiers()                // waits for a tier write or drop in progress
		cerr := db.coldChanges.close() // the exact marks: a clean restart moves none
		werr := db.wal.Close()
		berr := db.bdb.Close()
		db.closeErr = errors.Join(ferr, cerr, werr, berr)
	})
	return db.closeErr
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...any)   {}

// ColdAge is the age (before the wall clock) past which data normally no
// longer changes: the out-of-order window is shorter.
const ColdAge = 2 * time.Hour

// ColdChanges returns a counter that moves after every write or deletion
// that touched samples older than ColdAge (a late append, a backfill, a
// delete). A summary of data older than ColdAge computed after reading the
// counter stays valid while the counter has not moved. ColdChangesDay is
// the same per day.
func (db *DB) ColdChanges() uint64 { return db.coldChanges.Load() }

// touchedCold records an append of samples as old as minT. The cold ones
// lie between minT and the cutoff, at or before the head's newest sample.
func (db *DB) touchedCold(minT int64) {
	cutoff := time.Now().Add(-ColdAge).UnixMilli()
	if minT < cutoff {
		db.coldChanges.markRange(minT, min(cutoff, db.head.maxt.Load()))
		db.coldChanges.n.Add(1)
	}
}

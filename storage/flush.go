package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// Flush writes every closed chunk not yet in Badger and the open chunks to
// a new head checkpoint, then truncates the WAL up to the point where it
// was rolled, then evicts chunks that can no longer receive out-of-order
// samples. A crash anywhere in between loses nothing: the WAL is only cut
// after Badger has synced and the checkpoint replaced the old one, and
// replaying a sample that is already stored is a dropped duplicate.
func (db *DB) Flush() error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	return db.flushLocked()
}

// flushLocked is Flush with db.flushMu held.
func (db *DB) flushLocked() error {
	start := time.Now()
	db.metrics.flushes.Inc()
	if err := db.flush(); err != nil {
		db.metrics.flushFailures.Inc()
		return err
	}
	d := time.Since(start)
	db.metrics.flushDuration.Observe(d.Seconds())
	db.metrics.lastFlushSuccess.SetToCurrentTime()
	lvl := slog.LevelDebug
	if d > 10*time.Second {
		lvl = slog.LevelInfo
	}
	db.logger.Log(context.Background(), lvl, "flushed head to badger", "duration", d.Round(time.Millisecond), "head_series", db.head.numSeries.Load())
	return nil
}

type flushedChunk struct {
	s *memSeries
	c *memChunk
	n int
}

func (db *DB) flush() error {
	db.appendMu.Lock()
	if db.closed {
		db.appendMu.Unlock()
		return nil
	}
	seg, err := db.wal.Roll()
	headMaxT := db.head.maxt.Load()
	db.appendMu.Unlock()
	if err != nil {
		return fmt.Errorf("roll wal: %w", err)
	}
	cutoff := headMaxT - db.window
	if headMaxT < minTime+db.window {
		cutoff = minTime
	}

	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	ck, err := newCheckpointWriter(db.cfg.Dir, seg)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			ck.abort()
		}
	}()
	var (
		done     []flushedChunk
		newInDB  []*memSeries
		posted   []postedPart
		lblBuf   []byte
		setErr   error
		nbytes   int
		allSerie = db.head.all()
	)
	set := func(k, v []byte) {
		if setErr == nil {
			setErr = wb.Set(k, v)
		}
	}
	for _, s := range allSerie {
		s.mu.Lock()
		s.flushOOO(db.chunkRange, db.head)
		if s.open != nil && s.open.maxt < cutoff {
			s.open.closed = true
			s.open.chunk.Compact()
			s.open, s.app = nil, nil
		}
		if !s.inBadger {
			lblBuf = model.AppendLabels(lblBuf[:0], s.lset)
			set(seriesKey(lblBuf), u64(s.ref))
			set(labelsKey(s.ref), slices.Clone(lblBuf))
			newInDB = append(newInDB, s)
		}
		for _, c := range s.chunks {
			n := c.chunk.NumSamples()
			if !c.closed { // the open chunk goes to the checkpoint, not Badger
				if n > 0 {
					ck.addChunk(s.ref, c.mint, c.maxt, c.seq, c.chunk.Bytes())
				}
				continue
			}
			if n <= c.persisted {
				continue
			}
			data := c.chunk.Bytes()
			set(chunkKey(TierRaw, s.ref, c.mint, c.seq), chunkValue(c.maxt, byte(model.EncXOR), data))
			nbytes += len(data)
			done = append(done, flushedChunk{s, c, n})
			if p := partitionOf(c.mint); !slices.Contains(s.posted, p) {
				s.lset.Range(func(l labels.Label) { set(postingKey(TierRaw, p, l.Name, l.Value, s.ref), nil) })
				posted = append(posted, postedPart{s, p})
			}
		}
		s.mu.Unlock()
	}
	// Read after the snapshot: every ref and seq written above must be at
	// or below what a restart starts counting from, or a chunk rebuilt from
	// the WAL could take the key of a persisted one.
	set(metaVersion, u64(FormatVersion))
	set(metaNextID, u64(db.head.nextRef.Load()))
	set(metaNextSeq, u64(db.head.nextSeq.Load()))
	set(metaHeadMaxT, i64(headMaxT))
	if setErr != nil {
		return fmt.Errorf("stage flush batch: %w", setErr)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write flush batch: %w", err)
	}
	if err := db.bdb.Sync(); err != nil {
		return fmt.Errorf("sync badger: %w", err)
	}
	db.metrics.chunksPersisted.Add(float64(len(done)))
	db.metrics.bytesPersisted.Add(float64(nbytes))

	for _, f := range done {
		db.parts.add(partitionOf(f.c.mint))
		f.s.mu.Lock()
		f.c.persisted = max(f.c.persisted, f.n)
		f.s.mu.Unlock()
	}
	for _, s := range newInDB {
		s.mu.Lock()
		s.inBadger = true
		s.mu.Unlock()
	}
	for _, p := range posted {
		p.s.mu.Lock()
		if !slices.Contains(p.s.posted, p.part) {
			p.s.posted = append(p.s.posted, p.part)
			if len(p.s.posted) > 4 {
				p.s.posted = p.s.posted[1:]
			}
		}
		p.s.mu.Unlock()
	}
	if db.testCrashBeforeCheckpoint {
		return errors.New("test crash before checkpoint commit")
	}
	committed = true
	if err := ck.commit(); err != nil {
		return err
	}
	if err := db.wal.Truncate(seg); err != nil {
		return fmt.Errorf("truncate wal: %w", err)
	}
	db.evict(allSerie, cutoff)
	return nil
}

type postedPart struct {
	s    *memSeries
	part uint32
}

// evict drops persisted, closed chunks that ended before cutoff (no sample
// older than cutoff is accepted any more), and series left with nothing.
func (db *DB) evict(all []*memSeries, cutoff int64) {
	db.raiseWatermark(cutoff) // first: see DB.onlyInBadgerBefore
	db.evictions.Add(1)
	for _, s := range all {
		s.mu.Lock()
		kept := s.chunks[:0]
		for _, c := range s.chunks {
			if c.closed && c.maxt < cutoff && c.persisted >= c.chunk.NumSamples() {
				continue
			}
			kept = append(kept, c)
		}
		clear(s.chunks[len(kept):])
		s.chunks = kept
		empty := len(kept) == 0 && s.open == nil && len(s.ooo) == 0
		s.mu.Unlock()
		if empty {
			db.head.removeIfEmpty(s)
		}
	}
}

// raiseWatermark raises DB.onlyInBadgerBefore to t if it is lower.
func (db *DB) raiseWatermark(t int64) {
	for {
		cur := db.onlyInBadgerBefore.Load()
		if t <= cur || db.onlyInBadgerBefore.CompareAndSwap(cur, t) {
			return
		}
	}
}

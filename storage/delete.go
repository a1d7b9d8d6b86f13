package storage

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-tsdb/vigil/model"
)

// tombstonesPerRecord bounds one WAL tombstones record: at most 20 bytes
// each, well below maxRecordLen. A deletion of up to this many series is
// one record, so a crash applies all of it or none.
const tombstonesPerRecord = 1 << 22

// errTestStop is returned where DB.testDeleteStop stops a deletion.
var errTestStop = errors.New("stopped by test hook")

// deleteTarget is one series to delete from: samples at or before maxt.
type deleteTarget struct {
	ref  uint64
	maxt int64
	lset labels.Labels // empty if not known yet (read from Badger when needed)
	mem  *memSeries    // the head series when matched, nil if not in the head
	hit  bool          // a sample was removed
	days []uint32      // partitions it lost samples in
}

// DeleteSeries removes every sample with t <= maxt of every series for
// which match returns true, from memory and Badger, and returns the number
// of series that lost samples.
//
// It is durable once it returns: a WAL tombstone (series, maxt) is logged,
// and waited for as Config.WALSync promises, before anything is removed,
// and a flush at the end persists the result and retires the tombstones.
// If the process dies after the tombstones were logged, the next start
// completes the deletion. If it returns an error after logging them, the
// deletion may be partly applied: a restart before the next flush
// completes it, calling it again always does.
// Samples appended concurrently with t <= maxt may or may not survive;
// samples appended after it returns are kept.
//
// match is called on the calling goroutine, once for each series in the
// head and each series in Badger's label index, with immutable labels. ctx
// is honoured while series are matched; once tombstones are logged the
// deletion runs to the end. Flushes and Backfill wait meanwhile.
//
// The series' labels ↔ ref keys stay in Badger as empty shells; its
// postings in day partitions left without chunks of it are removed, so
// label queries do not list it for those days.
func (db *DB) DeleteSeries(ctx context.Context, match func(labels.Labels) bool, maxt int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.appendMu.RLock()
	closed := db.closed
	db.appendMu.RUnlock()
	if closed {
		return 0, fmt.Errorf("storage is closed: %w", model.ErrUnavailable)
	}
	targets, err := db.matchSeries(ctx, match, maxt)
	if err != nil || len(targets) == 0 {
		return 0, err
	}
	if err := db.logTombstones(targets); err != nil {
		return 0, err
	}
	if db.testDeleteStop == "tombstone" {
		return 0, errTestStop
	}
	for i := range targets {
		if s := targets[i].mem; s != nil {
			s.mu.Lock()
			targets[i].days = s.daysUpTo(maxt, targets[i].days)
			if s.deleteUpTo(maxt) > 0 {
				targets[i].hit = true
			}
			s.mu.Unlock()
		}
	}
	err = db.deleteChunks(targets)
	var days []uint32 // after applying: a summary read before is invalidated
	for _, tg := range targets {
		days = append(days, tg.days...)
	}
	db.coldChanges.mark(days, false)
	db.coldChanges.n.Add(1)
	if err != nil {
		return 0, fmt.Errorf("delete chunks: %w", err)
	}
	n := 0
	for _, tg := range targets {
		if tg.hit {
			n++
		}
	}
	db.metrics.deletedSeries.Add(float64(n))
	if db.testDeleteStop == "applied" {
		return n, errTestStop
	}
	if err := db.flushLocked(); err != nil {
		return n, fmt.Errorf("flush after delete: %w", err)
	}
	return n, nil
}

// matchSeries returns the series match selects, sorted by ref: the head's,
// then those only in Badger's label index.
func (db *DB) matchSeries(ctx context.Context, match func(labels.Labels) bool, maxt int64) ([]deleteTarget, error) {
	heads := db.head.all()
	headRefs := make([]uint64, 0, len(heads))
	var targets []deleteTarget
	for _, s := range heads {
		headRefs = append(headRefs, s.ref)
		if match(s.lset) {
			targets = append(targets, deleteTarget{ref: s.ref, maxt: maxt, lset: s.lset, mem: s})
		}
	}
	slices.Sort(headRefs)
	var sb labels.ScratchBuilder
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixLabels}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			k := item.Key()
			if len(k) != 9 {
				return fmt.Errorf("malformed labels key %x", k)
			}
			ref := binary.BigEndian.Uint64(k[1:])
			if _, found := slices.BinarySearch(headRefs, ref); found {
				continue // matched above
			}
			var lset labels.Labels
			err := item.Value(func(v []byte) error {
				var err error
				lset, err = model.DecodeLabels(v, &sb)
				return err
			})
			if err != nil {
				return fmt.Errorf("labels of series %d: %w", ref, err)
			}
			if match(lset) {
				targets = append(targets, deleteTarget{ref: ref, maxt: maxt, lset: lset})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("match series: %w", err)
	}
	slices.SortFunc(targets, func(a, b deleteTarget) int { return cmp.Compare(a.ref, b.ref) })
	return targets, nil
}

// logTombstones logs the deletions to the WAL and waits until they are
// durable.
func (db *DB) logTombstones(targets []deleteTarget) error {
	var (
		ticket uint64
		rec    []byte
		tombs  []walTombstone
		err    error
	)
	db.appendMu.RLock()
	for i := 0; i < len(targets) && err == nil; i += tombstonesPerRecord {
		tombs = tombs[:0]
		for _, tg := range targets[i:min(i+tombstonesPerRecord, len(targets))] {
			tombs = append(tombs, walTombstone{id: tg.ref, maxt: tg.maxt})
		}
		rec = appendTombstonesRecord(rec[:0], tombs)
		ticket, err = db.wal.Append(rec)
	}
	db.appendMu.RUnlock()
	if err == nil {
		err = db.wal.Wait(ticket)
	}
	if err != nil {
		return fmt.Errorf("log tombstones: %v: %w", err, model.ErrUnavailable)
	}
	return nil
}

// deleteUpTo removes the samples at or before maxt from memory and returns
// how many it removed. A chunk holding samples on both sides is re-encoded
// with the later ones and keeps its seq; if it was persisted, the caller
// trims the Badger copy the same way (deleteChunks), so the two stay equal.
// s.mu is held.
func (s *memSeries) deleteUpTo(maxt int64) int {
	removed := 0
	if i := sort.Search(len(s.ooo), func(i int) bool { return s.ooo[i].T > maxt }); i > 0 {
		removed += i
		s.ooo = slices.Clone(s.ooo[i:])
	}
	kept := s.chunks[:0]
	for _, c := range s.chunks {
		if c.mint > maxt {
			kept = append(kept, c)
			continue
		}
		n := c.chunk.NumSamples()
		var fresh *chunkenc.XORChunk
		var app chunkenc.Appender
		var mint int64
		if c.maxt > maxt {
			fresh, app, mint = trimChunk(c.chunk, maxt)
		}
		if fresh == nil || fresh.NumSamples() == 0 {
			removed += n
			if c == s.open {
				s.open, s.app = nil, nil
			}
			continue
		}
		left := fresh.NumSamples()
		removed += n - left
		if c.persisted >= n {
			c.persisted = left
		} else {
			c.persisted = 0
		}
		c.chunk, c.mint = fresh, mint
		if c == s.open {
			s.app = app
		} else {
			fresh.Compact()
		}
		kept = append(kept, c)
	}
	clear(s.chunks[len(kept):])
	s.chunks = kept
	slices.SortStableFunc(s.chunks, func(a, b *memChunk) int { return cmp.Compare(a.mint, b.mint) })
	if s.maxt <= maxt { // nothing in order is left
		s.maxt, s.lastV = math.MinInt64, 0
	}
	s.posted = nil // deleteChunks may remove postings; let the next flush write them again
	return removed
}

// daysUpTo appends the partitions of the samples at or before maxt in
// memory. s.mu is held.
func (s *memSeries) daysUpTo(maxt int64, dst []uint32) []uint32 {
	for _, c := range s.chunks {
		if c.mint <= maxt {
			dst = append(dst, partitionOf(c.mint)) // chunks never span partitions
		}
	}
	for _, smp := range s.ooo {
		if smp.T <= maxt {
			dst = append(dst, partitionOf(smp.T))
		}
	}
	return dst
}

// trimChunk returns a new chunk with the samples of c after maxt (c has at
// least one), an appender to it, and its first timestamp.
func trimChunk(c *chunkenc.XORChunk, maxt int64) (*chunkenc.XORChunk, chunkenc.Appender, int64) {
	fresh := chunkenc.NewXORChunk()
	app, _ := fresh.Appender()
	mint := int64(math.MinInt64)
	it := c.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		if t <= maxt {
			continue
		}
		if mint == math.MinInt64 {
			mint = t
		}
		app.Append(0, t, v)
	}
	return fresh, app, mint
}

// deleteChunks removes from Badger the samples at or before each target's
// maxt: chunks entirely before it are deleted, chunks straddling it are
// rewritten (same seq, the key's mint moves to the first sample kept), and
// the target's postings are removed from partitions left without its
// chunks. It sets hit on targets that lost samples, then syncs Badger.
// The caller holds db.flushMu.
func (db *DB) deleteChunks(targets []deleteTarget) error {
	slices.SortFunc(targets, func(a, b deleteTarget) int { return cmp.Compare(a.ref, b.ref) })
	last := int64(math.MinInt64)
	for _, tg := range targets {
		last = max(last, tg.maxt)
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	var wbErr error
	set := func(k, v []byte) {
		if wbErr == nil {
			wbErr = wb.Set(k, v)
		}
	}
	del := func(k []byte) {
		if wbErr == nil {
			wbErr = wb.Delete(k)
		}
	}
	var sb labels.ScratchBuilder
	err := db.bdb.View(func(txn *badger.Txn) error {
		for _, part := range db.partitionsIn(math.MinInt64, last) {
			start := partitionStart(part)
			it := txn.NewIterator(badger.IteratorOptions{Prefix: partPrefix(prefixChunks, TierRaw, part)})
			for i := range targets {
				tg := &targets[i]
				if start > tg.maxt {
					continue
				}
				removed, kept, err := db.trimSeriesChunks(it, part, tg, set, del)
				if err != nil {
					it.Close()
					return err
				}
				tg.hit = tg.hit || removed
				if removed {
					tg.days = append(tg.days, part)
				}
				if !removed || kept {
					continue
				}
				if tg.lset.IsEmpty() {
					if tg.lset, err = readLabels(txn, tg.ref, &sb); err != nil {
						it.Close()
						return err
					}
				}
				tg.lset.Range(func(l labels.Label) { del(postingKey(TierRaw, part, l.Name, l.Value, tg.ref)) })
			}
			it.Close()
		}
		return nil
	})
	if err == nil {
		err = wbErr
	}
	if err == nil {
		err = wb.Flush()
	}
	if err == nil {
		err = db.bdb.Sync()
	}
	return err
}

// trimSeriesChunks applies one target to its chunks in one partition. It
// reports whether any chunk was removed or rewritten and whether any chunk
// of the series is left in the partition.
func (db *DB) trimSeriesChunks(it *badger.Iterator, part uint32, tg *deleteTarget, set func(k, v []byte), del func(k []byte)) (removed, kept bool, err error) {
	prefix := chunkSeriesPrefix(TierRaw, part, tg.ref)
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		_, mint, seq, err := parseChunkKey(item.Key())
		if err != nil {
			return false, false, err
		}
		if mint > tg.maxt {
			return removed, true, nil
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return false, false, err
		}
		maxt, enc, data, err := parseChunkValue(v)
		if err == nil && enc != byte(model.EncXOR) {
			err = fmt.Errorf("encoding %d", enc)
		}
		if err != nil {
			return false, false, fmt.Errorf("chunk %x: %w", item.Key(), err)
		}
		del(item.KeyCopy(nil))
		removed = true
		if maxt <= tg.maxt {
			continue
		}
		xc, err := chunkFromBytes(data)
		if err != nil {
			return false, false, fmt.Errorf("chunk %x: %w", item.Key(), err)
		}
		fresh, _, nmint := trimChunk(xc, tg.maxt)
		if fresh.NumSamples() == 0 { // maxt in the value lied; nothing to keep
			continue
		}
		fresh.Compact()
		set(chunkKey(TierRaw, tg.ref, nmint, seq), chunkValue(maxt, enc, fresh.Bytes()))
		kept = true
	}
	return removed, kept, nil
}

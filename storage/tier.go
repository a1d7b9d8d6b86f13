package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// The downsampled tiers (docs/downsampling.md). The compactor writes one
// day of one tier at a time with a TierDayWriter (BeginTierDay, Add in
// batches, Commit; WriteTierDay does the three at once) and reads tiers
// back with TierSelect. A tier day exists for readers only while its
// progress key does: BeginTierDay removes the key first and Commit writes
// it last, so a crash leaves a day either complete or without progress,
// and days without progress are never read.

var (
	// ErrTierDayChanged is returned by TierSeriesSet.Err when a tier day it
	// was reading was rewritten or dropped meanwhile; select again.
	ErrTierDayChanged = errors.New("tier day rewritten or dropped during the read")
	// ErrDayInHead refuses to drop a raw day whose samples are still in
	// memory (the day is too recent, or the head is stalled).
	ErrDayInHead = errors.New("the head still holds samples of the day")
	// errTierWriterDone is returned by Add and Commit after Commit or Abort.
	errTierWriterDone = errors.New("tier day writer already committed or aborted")
)

// TierChunk is one stored chunk of a tier: Encoding says how to decode
// Data (model.EncXOR, or the compactor's aggregate encoding, which this
// package does not decode).
type TierChunk struct {
	Mint, Maxt int64
	Encoding   byte
	Data       []byte
}

// TierSeries is a series with its chunks in one tier.
type TierSeries struct {
	Labels labels.Labels
	Chunks []TierChunk
}

// DayOf returns the UTC day (days since the epoch) that holds t: the unit
// of raw partitions, tier days and cold-change marks.
func DayOf(t int64) int32 { return dayOfPart(partitionOf(t)) }

// DayStart returns the first millisecond of day.
func DayStart(day int32) int64 { return int64(day) * PartitionDuration }

func partOfDay(day int32) uint32 { return uint32(day) ^ (1 << 31) }
func dayOfPart(p uint32) int32   { return int32(p ^ (1 << 31)) }

// tierState is the DB's bookkeeping for tier days.
type tierState struct {
	mu     sync.Mutex // one tier write (BeginTierDay to Commit or Abort) or drop at a time (DropPrefix needs it); protects closed
	closed bool

	// gen moves for a tier day after its progress key is removed and
	// before its keys are dropped. A reader takes it before it reads the
	// progress keys and compares after reading a series: equal, the
	// series came from one complete version of each day it read.
	genMu sync.Mutex // protects gen
	gen   map[tierDay]uint64

	// testStopBeforeProgress, set by tests, makes TierDayWriter.Commit
	// (and so WriteTierDay) return before the progress key, releasing the
	// lock but leaving the chunks and postings, as a crash there would.
	testStopBeforeProgress bool
}

type tierDay struct {
	tier byte
	part uint32
}

func (ts *tierState) bump(tier byte, part uint32) {
	ts.genMu.Lock()
	defer ts.genMu.Unlock()
	if ts.gen == nil {
		ts.gen = map[tierDay]uint64{}
	}
	ts.gen[tierDay{tier, part}]++
}

// gens returns the generations of the tier's days in [lo, hi].
func (ts *tierState) gens(tier byte, lo, hi uint32) map[uint32]uint64 {
	ts.genMu.Lock()
	defer ts.genMu.Unlock()
	out := map[uint32]uint64{}
	for k, g := range ts.gen {
		if k.tier == tier && k.part >= lo && k.part <= hi {
			out[k.part] = g
		}
	}
	return out
}

// unchanged reports whether none of the days moved from gens.
func (ts *tierState) unchanged(tier byte, days []uint32, gens map[uint32]uint64) bool {
	ts.genMu.Lock()
	defer ts.genMu.Unlock()
	for _, p := range days {
		if ts.gen[tierDay{tier, p}] != gens[p] {
			return false
		}
	}
	return true
}

// lockTiers takes db.tiers.mu, unless the DB is closed.
func (db *DB) lockTiers() error {
	db.tiers.mu.Lock()
	if db.tiers.closed {
		db.tiers.mu.Unlock()
		return fmt.Errorf("storage is closed: %w", model.ErrUnavailable)
	}
	return nil
}

// closeTiers waits for a tier write or drop in progress and refuses later ones.
func (db *DB) closeTiers() {
	db.tiers.mu.Lock()
	db.tiers.closed = true
	db.tiers.mu.Unlock()
}

func checkTier(tier uint8) error {
	if tier != TierMinute && tier != TierHour {
		return fmt.Errorf("tier %d: downsampled tiers are %d and %d", tier, TierMinute, TierHour)
	}
	return nil
}

// WriteTierDay replaces one day of a downsampled tier (TierMinute or
// TierHour) with series, and then records progress for the day
// (TierProgress returns it). Chunks must lie within the day, end included:
// [DayStart(day), DayStart(day+1)]. A series is known by its labels: it
// gets the ref the DB has for them, or a new one. Series without chunks
// are left out; series with equal labels are one series.
//
// It is BeginTierDay, one Add and Commit, with the input checked before the
// old content is dropped: an invalid series leaves the day as it was. A
// crash at any point leaves the day either without progress key (and
// TierSelect skips it) or complete. On an error the day has no progress
// key; its partial content is dropped again on a best-effort basis, and in
// any case by the next write or drop of the day.
//
// Tier writes and drops run one at a time; they are safe concurrently with
// everything else. series and progress are not modified and may be reused
// once it returns. A whole day of series is in memory at once: the
// compactor streams with BeginTierDay instead.
func (db *DB) WriteTierDay(ctx context.Context, tier uint8, day int32, series []TierSeries, progress []byte) error {
	if err := checkTier(tier); err != nil {
		return err
	}
	if _, err := checkTierSeries(day, series); err != nil {
		return fmt.Errorf("write tier %d day %d: %w", tier, day, err)
	}
	w, err := db.BeginTierDay(ctx, tier, day)
	if err != nil {
		return err
	}
	if err := w.Add(series); err != nil {
		w.Abort()
		return err
	}
	return w.Commit(progress)
}

// TierDayWriter replaces one day of a downsampled tier in batches, so that
// the caller never holds the whole day: BeginTierDay, Add as often as
// needed, then Commit with the day's progress, or Abort. The day is
// invisible to TierSelect, TierDays and TierProgress from BeginTierDay
// until Commit returns nil, and a crash at any point leaves it either
// without progress key (to be redone) or complete.
//
// The DB's tier lock is held from BeginTierDay until Commit or Abort
// returns: other tier writes, DropDay and Close wait meanwhile, so finish
// or abort promptly and always call one of them (Abort in a defer is
// fine: it does nothing after Commit). A writer is not safe for
// concurrent use; it is safe concurrently with everything else on the DB,
// TierSelect included (of any tier: it does not take the tier lock).
// Flushes, Backfill and DeleteSeries wait while BeginTierDay drops the old
// content and while Add creates refs, not while it writes chunks.
type TierDayWriter struct {
	db   *DB
	ctx  context.Context
	tier byte
	day  int32
	part uint32
	err  error // the first error of Add: the writer can then only abort
	done bool  // Commit or Abort ran: the tier lock is released
}

// BeginTierDay starts replacing one day of a downsampled tier (TierMinute
// or TierHour): it takes the tier lock, removes the day's progress key
// (synced) and drops the day's chunks and postings, as WriteTierDay does
// first. It blocks while another tier write or drop runs. ctx is the
// write's: Add and Commit fail once it is done (like database/sql's
// BeginTx). The caller must end the writer with Commit or Abort; see
// TierDayWriter for the lock this holds.
func (db *DB) BeginTierDay(ctx context.Context, tier uint8, day int32) (*TierDayWriter, error) {
	if err := checkTier(tier); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := db.lockTiers(); err != nil {
		return nil, err
	}
	part := partOfDay(day)
	if err := db.clearTierDay(tier, part); err != nil {
		db.tiers.mu.Unlock()
		return nil, fmt.Errorf("write tier %d day %d: drop the old content: %w", tier, day, err)
	}
	return &TierDayWriter{db: db, ctx: ctx, tier: tier, day: day, part: part}, nil
}

// Add writes one batch of the day's series: chunks must lie within the day,
// end included ([DayStart(day), DayStart(day+1)]), labels must not be
// empty. A series is known by its labels: it gets the ref the DB has for
// them, or a new one. Series without chunks are left out. Series may come
// in any order across batches, and series with equal labels are one
// series, within a batch and across batches (a series written by an
// earlier Add has its labels ↔ ref keys in Badger, so a later one finds
// the same ref): their chunks are all kept, as one WriteTierDay of the
// batches put together would keep them.
//
// The batch is checked before anything of it is written. After an error
// (an invalid series, a done ctx, a failed write) the writer is spent:
// Add returns that error again, Commit returns it after aborting; call
// Abort. series and the chunk bytes are not modified and not retained once
// Add returns: the caller may reuse or drop them.
func (w *TierDayWriter) Add(series []TierSeries) error {
	if w.done {
		return fmt.Errorf("write tier %d day %d: %w", w.tier, w.day, errTierWriterDone)
	}
	if w.err != nil {
		return w.err
	}
	nChunks, err := checkTierSeries(w.day, series)
	if err == nil {
		err = w.ctx.Err()
	}
	if err == nil && nChunks > 0 {
		err = w.write(series, nChunks)
	}
	if err != nil {
		w.err = fmt.Errorf("write tier %d day %d: %w", w.tier, w.day, err)
		return w.err
	}
	return nil
}

func (w *TierDayWriter) write(series []TierSeries, nChunks int) error {
	db := w.db
	refs, err := db.knownTierRefs(series)
	if err != nil {
		return err
	}
	seq, err := db.prepareTierDay(series, refs, nChunks)
	if err != nil {
		return err
	}
	return db.writeTierData(w.ctx, w.tier, w.part, series, refs, seq)
}

// Commit makes the day visible: it writes progress as the day's progress
// key (TierProgress returns it), syncs Badger and releases the tier lock.
// It fails, after aborting, if an Add failed or ctx is done. On any error
// the day has no progress key and the lock is released; the partial
// content is dropped on a best-effort basis, and in any case by the next
// write or drop of the day. progress is not retained.
func (w *TierDayWriter) Commit(progress []byte) error {
	if w.done {
		return fmt.Errorf("write tier %d day %d: %w", w.tier, w.day, errTierWriterDone)
	}
	db := w.db
	if w.err == nil && w.ctx.Err() == nil && db.tiers.testStopBeforeProgress {
		w.release()
		return errTestStop // as a crash here would: the chunks stay
	}
	err := w.err
	if err == nil {
		err = w.ctx.Err()
		if err == nil {
			err = db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(progressKey(w.tier, w.part), progress) })
		}
		if err == nil {
			err = db.bdb.Sync()
		}
		if err != nil {
			err = fmt.Errorf("write tier %d day %d: %w", w.tier, w.day, err)
		}
	}
	if err != nil {
		w.Abort()
		return err
	}
	w.release()
	return nil
}

// Abort drops what the writer wrote (best effort: otherwise the next write
// or drop of the day does it; the day has no progress key either way) and
// releases the tier lock. It does nothing after Commit or a first Abort.
func (w *TierDayWriter) Abort() {
	if w.done {
		return
	}
	if err := w.db.clearTierDay(w.tier, w.part); err != nil {
		w.db.logger.Warn("dropping a partly written tier day failed; the next write or drop of the day does it", "tier", w.tier, "day", w.day, "err", err)
	}
	w.release()
}

func (w *TierDayWriter) release() {
	w.done = true
	w.db.tiers.mu.Unlock()
}

// checkTierSeries checks that series have labels and chunks within day, and
// counts the chunks.
func checkTierSeries(day int32, series []TierSeries) (int, error) {
	lo, hi := DayStart(day), DayStart(day)+PartitionDuration
	nChunks := 0
	for _, s := range series {
		if s.Labels.IsEmpty() {
			return 0, errors.New("a series without labels")
		}
		for _, c := range s.Chunks {
			if c.Mint > c.Maxt || c.Mint < lo || c.Maxt > hi {
				return 0, fmt.Errorf("chunk [%d, %d] of %s is not within the day [%d, %d]", c.Mint, c.Maxt, s.Labels, lo, hi)
			}
		}
		nChunks += len(s.Chunks)
	}
	return nChunks, nil
}

// knownTierRefs returns the refs of the series (with chunks) whose labels
// ↔ ref keys are in Badger; 0 for the others (refs start at 1). Those keys
// never change once written, so no lock is needed.
func (db *DB) knownTierRefs(series []TierSeries) ([]uint64, error) {
	refs := make([]uint64, len(series))
	var enc []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		for i, s := range series {
			if len(s.Chunks) == 0 {
				continue
			}
			if ms := db.head.get(s.Labels.Hash(), s.Labels); ms != nil {
				ms.mu.Lock()
				inBadger := ms.inBadger
				ms.mu.Unlock()
				if inBadger {
					refs[i] = ms.ref
					continue
				}
			}
			enc = model.AppendLabels(enc[:0], s.Labels)
			item, err := txn.Get(seriesKey(enc))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("look up series %s: %w", s.Labels, err)
			}
			err = item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("series key value of %d bytes", len(v))
				}
				refs[i] = binary.BigEndian.Uint64(v)
				return nil
			})
			if err != nil {
				return fmt.Errorf("look up series %s: %w", s.Labels, err)
			}
		}
		return nil
	})
	return refs, err
}

// prepareTierDay gives a ref to every series with chunks that has none in
// refs, and reserves nChunks seq numbers, returning the first. Under
// flushMu (the other writers of labels ↔ ref keys and of meta hold it), one
// batch writes the keys of series not in Badger yet and the counters
// nextid and nextseq, so a restart never hands those refs and seqs out
// again.
func (db *DB) prepareTierDay(series []TierSeries, refs []uint64, nChunks int) (uint64, error) {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	var reserved []string
	defer func() { db.releasePending(reserved) }() // once the keys are written
	var wbErr error
	set := func(k, v []byte) {
		if wbErr == nil {
			wbErr = wb.Set(k, v)
		}
	}
	for i, s := range series {
		if len(s.Chunks) == 0 || refs[i] != 0 {
			continue
		}
		// Unlike Backfill, the head's series limit does not apply: the
		// series is not added to the head.
		ref, origin, key, err := db.resolveRef(txn, s.Labels, false)
		write := origin == refHeadOnly || origin == refNew
		if err != nil {
			return 0, err
		}
		if key != "" {
			reserved = append(reserved, key)
		}
		if write {
			enc := model.AppendLabels(nil, s.Labels)
			set(seriesKey(enc), u64(ref))
			set(labelsKey(ref), enc)
		}
		refs[i] = ref
	}
	last := db.head.nextSeq.Add(uint64(nChunks))
	set(metaVersion, u64(FormatVersion))
	set(metaNextID, u64(db.head.nextRef.Load()))
	set(metaNextSeq, u64(db.head.nextSeq.Load()))
	if wbErr != nil {
		return 0, fmt.Errorf("stage series keys: %w", wbErr)
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("write series keys: %w", err)
	}
	return last - uint64(nChunks) + 1, nil
}

// writeTierData writes the chunks (seq numbers from seq on) and postings.
func (db *DB) writeTierData(ctx context.Context, tier byte, part uint32, series []TierSeries, refs []uint64, seq uint64) error {
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	var wbErr error
	set := func(k, v []byte) {
		if wbErr == nil {
			wbErr = wb.Set(k, v)
		}
	}
	for i, s := range series {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if len(s.Chunks) == 0 {
			continue
		}
		ref := refs[i]
		for _, c := range s.Chunks {
			set(tierChunkKey(tier, part, ref, c.Mint, seq), chunkValue(c.Maxt, c.Encoding, c.Data))
			seq++
		}
		s.Labels.Range(func(l labels.Label) { set(postingKey(tier, part, l.Name, l.Value, ref), nil) })
	}
	if wbErr != nil {
		return fmt.Errorf("stage chunks: %w", wbErr)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write chunks: %w", err)
	}
	return nil
}

// clearTierDay removes a tier day: its progress key first, synced, as
// DropPrefix is not atomic (a crash inside it must not leave a progress
// key over part of the day), then chunks, postings and progress by prefix.
// The caller holds db.tiers.mu.
func (db *DB) clearTierDay(tier byte, part uint32) error {
	pk := progressKey(tier, part)
	has, err := db.hasKeys(pk)
	if err != nil {
		return err
	}
	if has {
		if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Delete(pk) }); err != nil {
			return fmt.Errorf("delete progress: %w", err)
		}
		if err := db.bdb.Sync(); err != nil {
			return fmt.Errorf("sync badger: %w", err)
		}
	}
	db.tiers.bump(tier, part) // after the progress key is gone: see tierState.gen
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	return db.dropPrefixesLocked(partPrefix(prefixChunks, tier, part), partPrefix(prefixPostings, tier, part), pk)
}

// dropPrefixesLocked removes every key under the prefixes with Badger's
// DropPrefix and checks that none is left. Badger fails every other write
// while DropPrefix runs, so the writers are held off: flushes, Backfill
// and DeleteSeries by flushMu and tier writes by db.tiers.mu, which the
// caller holds, and the cold-mark persister by its lock.
func (db *DB) dropPrefixesLocked(prefixes ...[]byte) error {
	if has, err := db.hasKeys(prefixes...); err != nil || !has {
		return err
	}
	db.coldChanges.persistMu.Lock()
	defer db.coldChanges.persistMu.Unlock()
	if err := db.bdb.DropPrefix(prefixes...); err != nil {
		return fmt.Errorf("drop prefixes: %w", err)
	}
	if has, err := db.hasKeys(prefixes...); err != nil || has {
		return errors.Join(err, errors.New("keys left after DropPrefix"))
	}
	return nil
}

// hasKeys reports whether a live key has one of the prefixes.
func (db *DB) hasKeys(prefixes ...[]byte) (bool, error) {
	found := false
	err := db.bdb.View(func(txn *badger.Txn) error {
		for _, p := range prefixes {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			it.Rewind()
			found = it.Valid()
			it.Close()
			if found {
				return nil
			}
		}
		return nil
	})
	return found, err
}

// TierProgress returns the progress recorded by the last committed write
// of a tier day (TierDayWriter.Commit, WriteTierDay), and whether there is
// one.
func (db *DB) TierProgress(tier uint8, day int32) ([]byte, bool, error) {
	if err := checkTier(tier); err != nil {
		return nil, false, err
	}
	var v []byte
	found := false
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(progressKey(tier, partOfDay(day)))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("read progress of tier %d day %d: %w", tier, day, err)
	}
	return v, found, nil
}

// TierDays returns, ascending, the days of a tier that have a progress key
// or, for TierRaw, the raw partitions in Badger (as listed for queries: a
// partition emptied by deletions stays listed until DropDay).
func (db *DB) TierDays(tier uint8) ([]int32, error) {
	if tier == TierRaw {
		parts := db.parts.all()
		days := make([]int32, len(parts))
		for i, p := range parts {
			days[i] = dayOfPart(p)
		}
		return days, nil
	}
	if err := checkTier(tier); err != nil {
		return nil, err
	}
	var days []int32
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixProgress, tier}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 6 {
				return fmt.Errorf("malformed progress key %x", k)
			}
			days = append(days, dayOfPart(binary.BigEndian.Uint32(k[2:])))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list days of tier %d: %w", tier, err)
	}
	return days, nil
}

// DropDay removes one day of a tier with DropPrefix: chunks, postings and
// progress (progress first, see clearTierDay). For TierRaw it drops the raw
// chunks and postings of the day, and refuses (ErrDayInHead) while the
// head holds samples of it. Samples appended or backfilled into the day
// after it returns are kept as new data. DropPrefix rewrites the tables
// that hold the day, so the space comes back at once. Safe concurrently
// with everything; tier writes and drops run one at a time, flushes,
// Backfill and DeleteSeries wait for the drop.
func (db *DB) DropDay(ctx context.Context, tier uint8, day int32) error {
	if tier != TierRaw {
		if err := checkTier(tier); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := db.lockTiers(); err != nil {
		return err
	}
	defer db.tiers.mu.Unlock()
	part := partOfDay(day)
	if tier != TierRaw {
		if err := db.clearTierDay(tier, part); err != nil {
			return fmt.Errorf("drop tier %d day %d: %w", tier, day, err)
		}
		return nil
	}
	db.flushMu.Lock() // no flush or backfill moves data of the day into Badger meanwhile
	defer db.flushMu.Unlock()
	start := partitionStart(part)
	n := 0
	for _, s := range db.head.all() {
		if s.overlaps(start, start+PartitionDuration-1) {
			n++
		}
	}
	if n > 0 {
		return fmt.Errorf("drop raw day %d: %d series: %w", day, n, ErrDayInHead)
	}
	if err := db.dropPrefixesLocked(partPrefix(prefixChunks, TierRaw, part), partPrefix(prefixPostings, TierRaw, part)); err != nil {
		return fmt.Errorf("drop raw day %d: %w", day, err)
	}
	db.parts.mu.Lock()
	if i, found := slices.BinarySearch(db.parts.parts, part); found {
		db.parts.parts = slices.Delete(db.parts.parts, i, i+1)
	}
	db.parts.mu.Unlock()
	// A flush must write the day's postings again if data comes back to it.
	for _, s := range db.head.all() {
		s.mu.Lock()
		s.posted = slices.DeleteFunc(s.posted, func(p uint32) bool { return p == part })
		s.mu.Unlock()
	}
	return nil
}

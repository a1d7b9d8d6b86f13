package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// Per-day cold-change marks, for the compactor (docs/storage.md, "Cold
// changes").

// ColdChangesDay is ColdChanges for one day (DayOf): a mark that moves
// after every change ColdChanges counts that touched, or may have touched,
// samples of the day. It only grows, across restarts too, so the compactor
// can store it with a tier day and redo the day once it differs
// (docs/storage.md, "Cold changes").
func (db *DB) ColdChangesDay(day int32) uint64 { return db.coldChanges.day(partOfDay(day)) }

// coldHeadroom: when a mark would reach its persisted ceiling, the ceiling
// is raised this far ahead (one synced write); a crash moves the marks of
// the days whose ceiling is ahead to it.
const coldHeadroom = 1 << 16

// maxColdDaysPerMark: a change whose cold samples may span more days than
// this moves every day's mark instead.
const maxColdDaysPerMark = 31

// coldCounter is the global cold-change counter (ColdChanges) and the
// per-day marks (ColdChangesDay). A day's mark is all + days[part]. Once
// moved, a mark stays strictly below a persisted ceiling, and Open starts
// from the persisted ceilings: after a crash, the mark of every day that
// changed since the last clean start has moved past every value it had.
type coldCounter struct {
	n atomic.Uint64 // ColdChanges

	bdb    *badger.DB // set by Open
	logger *slog.Logger

	// persistMu serializes writing the ceilings and protects closed;
	// dropPrefixesLocked holds it so that no such write meets a DropPrefix.
	persistMu sync.Mutex
	closed    bool // close persisted the exact marks

	mu       sync.Mutex        // protects the fields below
	all      uint64            // moved by changes to unknown days: part of every day's mark
	days     map[uint32]uint64 // by raw partition
	ceilAll  uint64            // persisted; above all once it moved
	ceilDays map[uint32]uint64 // persisted; above days[p] once it moved
}

// Load returns the global counter.
func (c *coldCounter) Load() uint64 { return c.n.Load() }

func (c *coldCounter) day(part uint32) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all + c.days[part]
}

// markRange moves the marks of the days from from to to.
func (c *coldCounter) markRange(from, to int64) {
	lo, hi := partitionOf(from), partitionOf(max(from, to))
	if hi-lo >= maxColdDaysPerMark {
		c.mark(nil, true)
		return
	}
	parts := make([]uint32, 0, hi-lo+1)
	for i := range hi - lo + 1 {
		parts = append(parts, lo+i)
	}
	c.mark(parts, false)
}

// mark moves the marks of parts, or every day's if all, by one. The new
// values are persisted (synced) before they are returned by day, unless
// the ceilings already cover them. If persisting fails the marks move
// anyway (this process must see the change) and the error is logged.
func (c *coldCounter) mark(parts []uint32, all bool) {
	if len(parts) == 0 && !all {
		return
	}
	parts = slices.Compact(slices.Sorted(slices.Values(parts)))
	c.mu.Lock()
	if c.fits(parts, all) {
		c.apply(parts, all)
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()

	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	c.mu.Lock()
	if c.fits(parts, all) { // raised meanwhile
		c.apply(parts, all)
		c.mu.Unlock()
		return
	}
	ceilAll, ceilDays := c.ceilAll, maps.Clone(c.ceilDays)
	if ceilDays == nil {
		ceilDays = map[uint32]uint64{}
	}
	if all && c.all+1 >= ceilAll {
		ceilAll = c.all + 1 + coldHeadroom
	}
	for _, p := range parts {
		if c.days[p]+1 >= ceilDays[p] {
			ceilDays[p] = c.days[p] + 1 + coldHeadroom
		}
	}
	c.mu.Unlock()
	err := c.persist(ceilAll, ceilDays)
	c.mu.Lock()
	if err == nil {
		c.ceilAll, c.ceilDays = ceilAll, ceilDays
	}
	c.apply(parts, all)
	c.mu.Unlock()
	if err != nil && !c.closed {
		c.logger.Error("persisting cold-change marks failed; after a crash before the next success a day's mark may repeat a value", "err", err)
	}
}

// fits reports whether the moved marks stay below the ceilings. c.mu is
// held.
func (c *coldCounter) fits(parts []uint32, all bool) bool {
	if all && c.all+1 >= c.ceilAll {
		return false
	}
	for _, p := range parts {
		if c.days[p]+1 >= c.ceilDays[p] {
			return false
		}
	}
	return true
}

// apply moves the marks. c.mu is held.
func (c *coldCounter) apply(parts []uint32, all bool) {
	if all {
		c.all++
	}
	if c.days == nil {
		c.days = map[uint32]uint64{}
	}
	for _, p := range parts {
		c.days[p]++
	}
}

// persist writes ceilings to meta "colddays" and syncs. c.persistMu is held.
func (c *coldCounter) persist(all uint64, days map[uint32]uint64) error {
	if c.closed {
		return errors.New("storage is closed")
	}
	// uint64 all, then per day: uint32 part, uint64 mark (sorted by part).
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+12*len(days)), all)
	for _, p := range slices.Sorted(maps.Keys(days)) {
		v = binary.BigEndian.AppendUint32(v, p)
		v = binary.BigEndian.AppendUint64(v, days[p])
	}
	if err := c.bdb.Update(func(txn *badger.Txn) error { return txn.Set(metaColdDays, v) }); err != nil {
		return err
	}
	return c.bdb.Sync()
}

// load starts the marks from the persisted ceilings.
func (c *coldCounter) load() error {
	c.days, c.ceilDays = map[uint32]uint64{}, map[uint32]uint64{}
	return c.bdb.View(func(txn *badger.Txn) error {
		v, err := getMeta(txn, metaColdDays)
		if err != nil || v == nil {
			return err
		}
		if len(v) < 8 || (len(v)-8)%12 != 0 {
			return fmt.Errorf("meta colddays of %d bytes", len(v))
		}
		c.all = binary.BigEndian.Uint64(v)
		c.ceilAll = c.all
		for b := v[8:]; len(b) > 0; b = b[12:] {
			p, m := binary.BigEndian.Uint32(b), binary.BigEndian.Uint64(b[4:])
			c.days[p], c.ceilDays[p] = m, m
		}
		return nil
	})
}

// close persists the exact marks, so that a clean restart moves none; the
// DB is closing and no change is made after it.
func (c *coldCounter) close() error {
	c.persistMu.Lock()
	defer c.persistMu.Unlock()
	if c.closed {
		return nil
	}
	c.mu.Lock()
	all, days := c.all, maps.Clone(c.days)
	same := all == c.ceilAll && maps.Equal(days, c.ceilDays)
	c.mu.Unlock()
	var err error
	if !same {
		if err = c.persist(all, days); err == nil {
			c.mu.Lock()
			c.ceilAll, c.ceilDays = all, days
			c.mu.Unlock()
		}
	}
	c.closed = true
	if err != nil {
		return fmt.Errorf("persist cold-change marks: %w", err)
	}
	return nil
}

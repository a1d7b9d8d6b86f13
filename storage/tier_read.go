package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
)

// TierSelect returns the series of a downsampled tier that match ms, with
// their chunks overlapping [mint, maxt] (whole, as stored), from the days
// that had a progress key when it was called. Like Querier's Select, a
// selection without a narrowing matcher lists the series with a metric
// name.
func (db *DB) TierSelect(ctx context.Context, tier uint8, mint, maxt int64, ms ...*labels.Matcher) (*TierSeriesSet, error) {
	if err := checkTier(tier); err != nil {
		return nil, err
	}
	set := &TierSeriesSet{ctx: ctx, db: db, tier: tier, mint: mint, maxt: maxt}
	if mint > maxt {
		return set, nil
	}
	lo, hi := partitionOf(mint), partitionOf(maxt)
	if lo > 0 {
		lo-- // a day's chunks may end at the first instant of the next day
	}
	set.gens = db.tiers.gens(tier, lo, hi) // before reading progress: see tierState.gen
	var sb labels.ScratchBuilder
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixProgress, tier}})
		for it.Seek(progressKey(tier, lo)); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 6 {
				it.Close()
				return fmt.Errorf("malformed progress key %x", k)
			}
			part := binary.BigEndian.Uint32(k[2:])
			if part > hi {
				break
			}
			set.days = append(set.days, part)
		}
		it.Close()
		seen := map[uint64]struct{}{}
		for _, part := range set.days {
			if err := ctx.Err(); err != nil {
				return err
			}
			refs, err := selectRefs(&badgerPostings{txn: txn, tier: tier, part: part}, ms)
			if err != nil {
				return err
			}
			for _, ref := range refs {
				if _, ok := seen[ref]; ok {
					continue
				}
				seen[ref] = struct{}{}
				lset, err := readLabels(txn, ref, &sb)
				if err != nil {
					return err
				}
				if matchesAll(lset, ms) {
					set.list = append(set.list, seriesRef{ref: ref, lset: lset})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select tier %d: %w", tier, err)
	}
	sort.Slice(set.list, func(i, j int) bool { return labels.Compare(set.list[i].lset, set.list[j].lset) < 0 })
	return set, nil
}

// TierSeriesSet iterates over the series TierSelect found, sorted by
// labels, reading each one's chunks when Next reaches it; series without a
// chunk in range are skipped. If a day it reads is rewritten or dropped
// meanwhile, Next stops and Err returns ErrTierDayChanged: every series
// returned before came whole from one version of each day. Not safe for
// concurrent use; the returned series and their bytes belong to the caller.
type TierSeriesSet struct {
	ctx        context.Context
	db         *DB
	tier       byte
	mint, maxt int64
	days       []uint32          // partitions with progress at the selection, ascending
	gens       map[uint32]uint64 // their generations before the selection
	list       []seriesRef
	buf        []TierSeries // read, not returned yet
	batch      int          // series to read next (tierBatch)
	cur        TierSeries
	err        error
}

// The series of a TierSeriesSet are read in batches, every day of a batch
// with one iterator walking the batch's series in key order: where they
// are neighbours in the day's keys (a query over most series), the walk
// goes on with Next instead of a Seek per series and day, which cost more
// than reading the chunks. A batch's size follows the bytes per series
// seen so far, so that it holds about tierBatchBytes.
const (
	tierBatchFirst = 64
	tierBatchMax   = 1024
	tierBatchBytes = 8 << 20
)

// Next advances to the next series; false at the end or on an error.
func (s *TierSeriesSet) Next() bool {
	for s.err == nil && len(s.buf) == 0 && len(s.list) > 0 {
		if err := s.ctx.Err(); err != nil {
			s.err = err
			return false
		}
		n := min(len(s.list), max(s.batch, tierBatchFirst))
		batch := s.list[:n]
		s.list = s.list[n:]
		chks, size, err := s.db.tierChunksOf(s.tier, s.days, batch, s.mint, s.maxt)
		if err == nil && !s.db.tiers.unchanged(s.tier, s.days, s.gens) {
			err = ErrTierDayChanged
		}
		if err != nil {
			s.err = err
			return false
		}
		s.batch = int(min(tierBatchMax, tierBatchBytes*int64(n)/max(size, 1)))
		for i, sr := range batch {
			if len(chks[i]) > 0 {
				s.buf = append(s.buf, TierSeries{Labels: sr.lset, Chunks: chks[i]})
			}
		}
	}
	if s.err != nil || len(s.buf) == 0 {
		return false
	}
	s.cur = s.buf[0]
	s.buf[0] = TierSeries{}
	s.buf = s.buf[1:]
	return true
}

// At returns the current series.
func (s *TierSeriesSet) At() TierSeries { return s.cur }

// Err returns the error that stopped Next, if any.
func (s *TierSeriesSet) Err() error { return s.err }

// tierChunksOf reads the chunks of each series of batch overlapping
// [mint, maxt] in the given days, sorted by min time, and their bytes in
// all.
func (db *DB) tierChunksOf(tier byte, days []uint32, batch []seriesRef, mint, maxt int64) ([][]TierChunk, int64, error) {
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return batch[order[a]].ref < batch[order[b]].ref })
	out := make([][]TierChunk, len(batch))
	var size int64
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixChunks, tier}})
		defer it.Close()
		// The prefixes come in increasing order (day, then ref), and the
		// iterator only moves forward, by a Seek to an earlier prefix or
		// by Next: so when it is past a prefix's keys, that prefix has
		// none; when it is before them, it seeks.
		sought := false
		for _, part := range days {
			for _, i := range order {
				prefix := chunkSeriesPrefix(tier, part, batch[i].ref)
				if sought {
					if !it.Valid() {
						break // no keys left in the tier
					}
					k := it.Item().Key()
					c := bytes.Compare(k[:min(len(k), len(prefix))], prefix)
					if c > 0 {
						continue // no chunk of this series in this day
					}
					if c < 0 {
						it.Seek(prefix)
					}
				} else {
					it.Seek(prefix)
					sought = true
				}
				for ; it.ValidForPrefix(prefix); it.Next() {
					_, cmint, _, err := parseChunkKey(it.Item().Key())
					if err != nil {
						return err
					}
					if cmint > maxt {
						break
					}
					v, err := it.Item().ValueCopy(nil)
					if err != nil {
						return err
					}
					cmaxt, enc, data, err := parseChunkValue(v)
					if err != nil {
						return fmt.Errorf("chunk %x: %w", it.Item().Key(), err)
					}
					if cmaxt >= mint {
						out[i] = append(out[i], TierChunk{Mint: cmint, Maxt: cmaxt, Encoding: enc, Data: data})
						size += int64(len(v))
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read tier %d chunks: %w", tier, err)
	}
	return out, size, nil
}

package storage

import (
	"encoding/binary"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// partitionSet is the sorted list of raw partitions that hold chunks, so a
// query iterates only partitions that exist (a range of ±292 million years
// is a valid Prometheus query).
type partitionSet struct {
	mu    sync.RWMutex // protects parts
	parts []uint32
}

func (p *partitionSet) add(part uint32) {
	p.mu.RLock()
	_, found := slices.BinarySearch(p.parts, part)
	p.mu.RUnlock()
	if found {
		return
	}
	p.mu.Lock()
	if i, found := slices.BinarySearch(p.parts, part); !found {
		p.parts = slices.Insert(p.parts, i, part)
	}
	p.mu.Unlock()
}

func (p *partitionSet) in(mint, maxt int64) []uint32 {
	lo, hi := partitionOf(mint), partitionOf(maxt)
	p.mu.RLock()
	defer p.mu.RUnlock()
	var out []uint32
	for _, x := range p.parts {
		if x >= lo && x <= hi {
			out = append(out, x)
		}
	}
	return out
}

// all returns a copy of the partition list.
func (p *partitionSet) all() []uint32 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Clone(p.parts)
}

// partitionsIn returns the persisted partitions overlapping [mint, maxt].
func (db *DB) partitionsIn(mint, maxt int64) []uint32 { return db.parts.in(mint, maxt) }

// discoverPartitions finds the partitions present in Badger with one seek
// per partition.
func (db *DB) discoverPartitions() error {
	return db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixChunks, TierRaw}})
		defer it.Close()
		for it.Rewind(); it.Valid(); {
			k := it.Item().Key()
			if len(k) < 6 {
				it.Next()
				continue
			}
			part := binary.BigEndian.Uint32(k[2:6])
			db.parts.add(part)
			if part == ^uint32(0) {
				break
			}
			it.Seek(partPrefix(prefixChunks, TierRaw, part+1))
		}
		return nil
	})
}

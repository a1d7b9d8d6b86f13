package storage

import (
	"encoding/binary"

	"github.com/dgraph-io/badger/v4"
)

// badgerPostings reads the postings of one day partition of a tier (raw
// unless tier is set) inside a Badger read transaction.
type badgerPostings struct {
	txn  *badger.Txn
	tier byte // TierRaw unless set
	part uint32
}

var _ postingsSource = (*badgerPostings)(nil)

func (b *badgerPostings) exact(name, value string) ([]uint64, error) {
	prefix := postingValuePrefix(b.tier, b.part, name, value)
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var refs []uint64
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		refs = append(refs, binary.BigEndian.Uint64(k[len(k)-8:]))
	}
	return refs, nil
}

// forValues walks the distinct values of name, seeking past each value's
// postings instead of reading them unless asked to.
func (b *badgerPostings) forValues(name string, fn func(string, func() ([]uint64, error)) error) error {
	prefix := postingNamePrefix(b.tier, b.part, name)
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	it.Rewind()
	for it.Valid() {
		value, _, err := parsePostingValue(it.Item().Key()[len(prefix):])
		if err != nil {
			return err
		}
		if err := fn(value, func() ([]uint64, error) { return b.exact(name, value) }); err != nil {
			return err
		}
		it.Seek(prefixEnd(postingValuePrefix(b.tier, b.part, name, value)))
	}
	return nil
}

// names calls fn for each distinct label name in the partition.
func (b *badgerPostings) names(fn func(string)) error {
	prefix := partPrefix(prefixPostings, b.tier, b.part)
	it := b.txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	it.Rewind()
	for it.Valid() {
		name, _, err := readString(it.Item().Key()[len(prefix):])
		if err != nil {
			return err
		}
		fn(name)
		it.Seek(prefixEnd(postingNamePrefix(b.tier, b.part, name)))
	}
	return nil
}

// prefixEnd returns the smallest key greater than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

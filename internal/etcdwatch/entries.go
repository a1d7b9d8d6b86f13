package etcdwatch

import (
	"iter"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Entries is the decoded content of a prefix: one value per key. It is
// owned by one reader and not safe for concurrent use.
type Entries[E any] struct {
	decode func(key string, value []byte, modRev int64) E
	m      map[string]decoded[E]
}

type decoded[E any] struct {
	modRev int64
	v      E
}

// NewEntries returns empty Entries whose keys decode with decode.
func NewEntries[E any](decode func(key string, value []byte, modRev int64) E) *Entries[E] {
	return &Entries[E]{decode: decode, m: map[string]decoded[E]{}}
}

// Reset replaces the content with resp, a read of the whole prefix. Keys
// whose mod revision did not change keep their decoded value: they are not
// decoded again.
func (s *Entries[E]) Reset(resp *clientv3.GetResponse) {
	old := s.m
	s.m = make(map[string]decoded[E], len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if d, ok := old[k]; ok && d.modRev == kv.ModRevision {
			s.m[k] = d
			continue
		}
		s.m[k] = decoded[E]{modRev: kv.ModRevision, v: s.decode(k, kv.Value, kv.ModRevision)}
	}
}

// Apply applies watch events in order: a put decodes the key's new value,
// a delete removes the key.
func (s *Entries[E]) Apply(events []*clientv3.Event) {
	for _, ev := range events {
		k := string(ev.Kv.Key)
		switch ev.Type {
		case clientv3.EventTypePut:
			s.m[k] = decoded[E]{modRev: ev.Kv.ModRevision, v: s.decode(k, ev.Kv.Value, ev.Kv.ModRevision)}
		case clientv3.EventTypeDelete:
			delete(s.m, k)
		}
	}
}

// Len is the number of keys.
func (s *Entries[E]) Len() int { return len(s.m) }

// All yields every key with its decoded value, in no particular order.
func (s *Entries[E]) All() iter.Seq2[string, E] {
	return func(yield func(string, E) bool) {
		for k, d := range s.m {
			if !yield(k, d.v) {
				return
			}
		}
	}
}

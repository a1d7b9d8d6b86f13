package rules

import (
	"context"
	"iter"

	"github.com/vigil-tsdb/vigil/internal/etcdwatch"
)

// Watch delivers every stored group (a Snapshot) once the prefix has been
// read and again after every change, until ctx ends; then the channel is
// closed.
//
// It reads the prefix, then watches from that read's revision + 1; when the
// watch is compacted or lost it reads the prefix again and continues, so no
// change is missed. While etcd is unavailable nothing is delivered: the
// last snapshot stays in force, and reads are retried with backoff
// (RetryBackoff doubling up to MaxRetryBackoff). A slow receiver gets the
// newest snapshot, never a stale one (the channel holds at most one).
// Invalid keys and values are in Snapshot.Invalid, logged once per new
// error and counted; they never end the watch. Each call starts one
// goroutine, which ends with ctx.
func (s *Store) Watch(ctx context.Context) <-chan Snapshot {
	return etcdwatch.Watch(ctx, etcdwatch.Options[*entry, Snapshot]{
		Client:          s.client,
		Prefix:          s.cfg.Prefix,
		RequestTimeout:  s.cfg.RequestTimeout,
		RetryBackoff:    s.cfg.RetryBackoff,
		MaxRetryBackoff: s.cfg.MaxRetryBackoff,
		Load:            s.load,
		Decode:          s.decodeEntry,
		Snapshot:        snapshotOf,
		Invalid:         Snapshot.invalidKeys,
		Logger:          s.logger,
		Name:            "rule store",
		InvalidMsg:      "skipping invalid rule group",
		OnSnapshot:      s.metrics.observe,
		OnResync:        s.metrics.resyncs.Inc,
		OnError:         s.metrics.watchErrors.Inc,
	})
}

// invalidKeys yields the key and error of each invalid entry.
func (s Snapshot) invalidKeys() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for _, inv := range s.Invalid {
			if !yield(inv.Key, inv.Err) {
				return
			}
		}
	}
}

package collector

import (
	"context"
	"errors"
	"iter"
	"time"

	"github.com/vigil-tsdb/vigil/internal/etcdwatch"
)

// Watch delivers the complete registry (a Snapshot) once it has been read
// and again after every change, until ctx ends; then the channel is closed.
//
// It reads the prefix, then watches from that read's revision + 1; when the
// watch is compacted or lost (server cancel, no leader, closed channel) it
// reads the prefix again and continues, so no change is missed. While etcd is
// unavailable nothing is delivered: the last snapshot stays in force. A slow
// receiver gets the newest snapshot, never a stale one (the channel holds at
// most one). Invalid keys are skipped, logged once per new error and counted;
// they never end the watch. A probe reads the prefix's key count every
// RequestTimeout, so that an etcd that went away shows in
// vigil_collector_registry_reachable while the watch waits. Each call starts
// one goroutine (with the probe's) that ends with ctx.
func (r *Registry) Watch(ctx context.Context) <-chan Snapshot {
	return etcdwatch.Watch(ctx, etcdwatch.Options[*entry, Snapshot]{
		Client:          r.client,
		Prefix:          r.cfg.Prefix,
		RequestTimeout:  r.cfg.RequestTimeout,
		RetryBackoff:    r.cfg.RetryBackoff,
		MaxRetryBackoff: r.cfg.MaxRetryBackoff,
		Load:            r.load,
		Decode:          r.decodeEntry,
		Snapshot:        snapshotOf,
		Invalid:         Snapshot.invalidKeys,
		Logger:          r.logger,
		Name:            "target registry",
		InvalidMsg:      "skipping invalid target registry entry",
		OnSnapshot:      r.metrics.observe,
		OnResync:        r.metrics.resyncs.Inc,
		OnError:         r.metrics.watchErrors.Inc,
		Reachable:       r.metrics.setReachable,
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

// setReachable sets vigil_collector_registry_reachable: 1 while etcd
// answers the watch's reads and probes.
func (m *registryMetrics) setReachable(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.reachable.Set(v)
}

// errWatchClosed ends a watch whose channel the client closed (coord.go).
var errWatchClosed = errors.New("watch channel closed")

// sleepCtx waits d or until ctx ends; it reports whether it waited d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

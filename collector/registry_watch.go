package collector

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	errCompacted   = errors.New("watch revision compacted")
	errWatchClosed = errors.New("watch channel closed")
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
// they never end the watch. Each call starts one goroutine that ends with ctx.
func (r *Registry) Watch(ctx context.Context) <-chan Snapshot {
	out := make(chan Snapshot, 1)
	go func() {
		defer close(out)
		w := &watcher{r: r, out: out, st: newRegistryState(), logged: map[string]string{}}
		probed := make(chan struct{})
		go func() {
			defer close(probed)
			w.probeLoop(ctx)
		}()
		w.run(ctx)
		<-probed
	}()
	return out
}

// watcher is the state of one Watch goroutine; nothing in it is shared.
type watcher struct {
	r      *Registry
	out    chan Snapshot
	st     *registryState
	logged map[string]string // invalid key -> error last logged
	// unreachable is set while etcd fails reads; shared with probeLoop.
	unreachable atomic.Bool
}

func (w *watcher) run(ctx context.Context) {
	r := w.r
	backoff := r.cfg.RetryBackoff
	loaded := false
	for ctx.Err() == nil {
		if loaded {
			r.metrics.resyncs.Inc()
		}
		rev, err := r.load(ctx, w.st)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.metrics.watchErrors.Inc()
			w.setReachable(false)
			r.logger.Warn("target registry unavailable, keeping the last snapshot", "prefix", r.cfg.Prefix, "retry_in", backoff, "err", err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, r.cfg.MaxRetryBackoff)
			continue
		}
		if loaded {
			r.logger.Info("target registry re-read", "prefix", r.cfg.Prefix, "revision", rev, "keys", len(w.st.entries))
		}
		loaded = true
		w.setReachable(true)
		w.deliver(ctx, w.st.snapshot(rev))
		progressed, err := w.follow(ctx, rev)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = r.cfg.RetryBackoff
		}
		if errors.Is(err, errCompacted) {
			r.logger.Info("target registry watch compacted, re-reading", "prefix", r.cfg.Prefix, "err", err)
			continue // the re-read is the cure, no need to wait
		}
		r.metrics.watchErrors.Inc()
		r.logger.Warn("target registry watch lost, re-reading", "prefix", r.cfg.Prefix, "retry_in", backoff, "err", err)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, r.cfg.MaxRetryBackoff)
	}
}

// follow applies watch events from rev+1 on and delivers a snapshot after
// each response that changed something. It returns why the watch ended and
// whether any response arrived.
func (w *watcher) follow(ctx context.Context, rev int64) (progressed bool, err error) {
	r := w.r
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel() // releases the watcher's stream in the client
	wch := r.client.Watch(wctx, r.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for wr := range wch {
		if wr.CompactRevision != 0 {
			return progressed, errCompacted
		}
		if err := wr.Err(); err != nil {
			return progressed, err
		}
		progressed = true
		if len(wr.Events) == 0 {
			continue // progress notification or creation
		}
		for _, ev := range wr.Events {
			k := string(ev.Kv.Key)
			switch ev.Type {
			case clientv3.EventTypePut:
				w.st.entries[k] = r.decodeEntry(k, ev.Kv.Value, ev.Kv.ModRevision)
			case clientv3.EventTypeDelete:
				delete(w.st.entries, k)
			}
		}
		w.deliver(ctx, w.st.snapshot(wr.Header.Revision))
	}
	return progressed, errWatchClosed
}

// deliver updates metrics and logs, then hands s to the receiver, replacing
// a snapshot it has not taken yet.
func (w *watcher) deliver(ctx context.Context, s Snapshot) {
	w.r.metrics.observe(s)
	seen := make(map[string]bool, len(s.Invalid))
	for _, inv := range s.Invalid {
		seen[inv.Key] = true
		if w.logged[inv.Key] != inv.Err {
			w.logged[inv.Key] = inv.Err
			w.r.logger.Warn("skipping invalid target registry entry", "key", inv.Key, "err", inv.Err)
		}
	}
	for k := range w.logged {
		if !seen[k] {
			delete(w.logged, k)
		}
	}
	for {
		select {
		case w.out <- s:
			return
		case <-ctx.Done():
			return
		default:
		}
		select { // only this goroutine sends: after this there is room
		case <-w.out:
		default:
		}
	}
}

// probeLoop reads the key count of the prefix every RequestTimeout until
// ctx ends: a watch on an etcd that went away waits silently while the
// client reconnects, and the operator should still learn of it.
func (w *watcher) probeLoop(ctx context.Context) {
	r := w.r
	t := time.NewTicker(r.cfg.RequestTimeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		_, err := r.client.Get(pctx, r.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.metrics.watchErrors.Inc()
		}
		w.setReachable(err == nil)
	}
}

// setReachable records whether etcd answers, logging the transitions.
func (w *watcher) setReachable(up bool) {
	r := w.r
	switch {
	case up && w.unreachable.CompareAndSwap(true, false):
		r.logger.Info("etcd answers again", "prefix", r.cfg.Prefix)
	case !up && w.unreachable.CompareAndSwap(false, true):
		r.logger.Warn("etcd does not answer; the last target registry snapshot stays in force", "prefix", r.cfg.Prefix)
	}
	v := 0.0
	if up {
		v = 1
	}
	r.metrics.reachable.Set(v)
}

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

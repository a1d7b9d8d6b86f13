package rules

import (
	"context"
	"errors"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	errCompacted   = errors.New("watch revision compacted")
	errWatchClosed = errors.New("watch channel closed")
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
	out := make(chan Snapshot, 1)
	go func() {
		defer close(out)
		w := &watcher{s: s, out: out, st: newStoreState(), logged: map[string]string{}}
		w.run(ctx)
	}()
	return out
}

// watcher is the state of one Watch goroutine; nothing in it is shared.
type watcher struct {
	s      *Store
	out    chan Snapshot
	st     *storeState
	logged map[string]string // invalid key -> error last logged
}

func (w *watcher) run(ctx context.Context) {
	s := w.s
	backoff := s.cfg.RetryBackoff
	loaded := false
	for ctx.Err() == nil {
		if loaded {
			s.metrics.resyncs.Inc()
		}
		rev, err := s.load(ctx, w.st)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.metrics.watchErrors.Inc()
			s.logger.Warn("rule store unavailable, keeping the last snapshot", "prefix", s.cfg.Prefix, "retry_in", backoff, "err", err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, s.cfg.MaxRetryBackoff)
			continue
		}
		if loaded {
			s.logger.Info("rule store re-read", "prefix", s.cfg.Prefix, "revision", rev, "keys", len(w.st.entries))
		}
		loaded = true
		w.deliver(ctx, w.st.snapshot(rev))
		progressed, err := w.follow(ctx, rev)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = s.cfg.RetryBackoff
		}
		if errors.Is(err, errCompacted) {
			s.logger.Info("rule store watch compacted, re-reading", "prefix", s.cfg.Prefix, "err", err)
			continue // the re-read is the cure, no need to wait
		}
		s.metrics.watchErrors.Inc()
		s.logger.Warn("rule store watch lost, re-reading", "prefix", s.cfg.Prefix, "retry_in", backoff, "err", err)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, s.cfg.MaxRetryBackoff)
	}
}

// follow applies watch events from rev+1 on and delivers a snapshot after
// each response that changed something. It returns why the watch ended and
// whether any response arrived.
func (w *watcher) follow(ctx context.Context, rev int64) (progressed bool, err error) {
	s := w.s
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel() // releases the watcher's stream in the client
	wch := s.client.Watch(wctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
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
				w.st.entries[k] = s.decodeEntry(k, ev.Kv.Value, ev.Kv.ModRevision)
			case clientv3.EventTypeDelete:
				delete(w.st.entries, k)
			}
		}
		w.deliver(ctx, w.st.snapshot(wr.Header.Revision))
	}
	return progressed, errWatchClosed
}

// deliver updates metrics and logs, then hands snap to the receiver,
// replacing a snapshot it has not taken yet.
func (w *watcher) deliver(ctx context.Context, snap Snapshot) {
	w.s.metrics.observe(snap)
	seen := make(map[string]bool, len(snap.Invalid))
	for _, inv := range snap.Invalid {
		seen[inv.Key] = true
		if w.logged[inv.Key] != inv.Err {
			w.logged[inv.Key] = inv.Err
			w.s.logger.Warn("skipping invalid rule group", "key", inv.Key, "err", inv.Err)
		}
	}
	for k := range w.logged {
		if !seen[k] {
			delete(w.logged, k)
		}
	}
	for {
		select {
		case w.out <- snap:
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

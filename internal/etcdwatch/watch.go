package etcdwatch

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	errCompacted   = errors.New("watch revision compacted")
	errWatchClosed = errors.New("watch channel closed")
)

// Options configure one Watch of a prefix whose keys decode to E and
// whose snapshots are S. Client, Prefix, the durations, Load, Decode and
// Snapshot are required; every other field may be left zero.
type Options[E, S any] struct {
	Client *clientv3.Client
	Prefix string
	// RequestTimeout is the interval and the timeout of the probes of
	// Reachable. (Load applies its own timeout to reads.)
	RequestTimeout time.Duration
	// RetryBackoff is the wait after a failed read or a lost watch; it
	// doubles with each further failure up to MaxRetryBackoff, and starts
	// over once a watch has received a response.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration

	// Load reads the whole prefix into st (a Get with WithPrefix and a
	// timeout, then st.Reset) and returns the read's revision. Its error is
	// logged as it is.
	Load func(ctx context.Context, st *Entries[E]) (int64, error)
	// Decode decodes one key; an invalid key or value is an E too (that
	// Snapshot reports), never a reason to stop.
	Decode func(key string, value []byte, modRev int64) E
	// Snapshot builds what the receiver gets from st at revision rev. It
	// must not keep st, which changes after it returns.
	Snapshot func(st *Entries[E], rev int64) S
	// Invalid yields the keys a snapshot skipped, each with why; each is
	// logged (at Warn, as InvalidMsg) once per new error.
	Invalid func(S) iter.Seq2[string, string]

	// Logger receives the watch's logs; nil discards them.
	Logger *slog.Logger
	// Name says what the prefix holds in log messages ("rule store").
	Name string
	// InvalidMsg is the message of the log of an invalid key.
	InvalidMsg string

	// OnSnapshot is called with each snapshot before it is delivered.
	OnSnapshot func(S)
	// OnResync is called before each read of the prefix after the first.
	OnResync func()
	// OnError is called for each failed read, lost watch and failed probe.
	OnError func()
	// Reachable, when set, makes the watch probe etcd every RequestTimeout
	// (a count of the prefix's keys): a watch on an etcd that went away
	// waits silently while the client reconnects, and the operator should
	// still learn of it. It is called with whether etcd answered after each
	// read and each probe, from the watch's two goroutines, possibly at the
	// same time; the transitions are logged.
	Reachable func(up bool)
}

// Watch delivers a snapshot of the prefix once it has been read and again
// after every change, until ctx ends; then the channel is closed. The
// channel holds at most one snapshot: one the receiver has not taken yet
// is replaced by the newer one. Each call starts one goroutine (two with
// Reachable), which end with ctx.
func Watch[E, S any](ctx context.Context, o Options[E, S]) <-chan S {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	out := make(chan S, 1)
	go func() {
		defer close(out)
		w := &watcher[E, S]{o: o, out: out, st: NewEntries(o.Decode), logged: map[string]string{}}
		if o.Reachable == nil {
			w.run(ctx)
			return
		}
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

// watcher is the state of one Watch goroutine; only unreachable is shared
// (with probeLoop).
type watcher[E, S any] struct {
	o      Options[E, S]
	out    chan S
	st     *Entries[E]
	logged map[string]string // invalid key -> error last logged
	// unreachable is set while etcd fails reads or probes.
	unreachable atomic.Bool
}

func (w *watcher[E, S]) run(ctx context.Context) {
	o := &w.o
	backoff := o.RetryBackoff
	loaded := false
	for ctx.Err() == nil {
		if loaded {
			call(o.OnResync)
		}
		rev, err := o.Load(ctx, w.st)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			call(o.OnError)
			w.setReachable(false)
			o.Logger.Warn(o.Name+" unavailable, keeping the last snapshot", "prefix", o.Prefix, "retry_in", backoff, "err", err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, o.MaxRetryBackoff)
			continue
		}
		if loaded {
			o.Logger.Info(o.Name+" re-read", "prefix", o.Prefix, "revision", rev, "keys", w.st.Len())
		}
		loaded = true
		w.setReachable(true)
		w.deliver(ctx, o.Snapshot(w.st, rev))
		progressed, err := w.follow(ctx, rev)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			backoff = o.RetryBackoff
		}
		if errors.Is(err, errCompacted) {
			o.Logger.Info(o.Name+" watch compacted, re-reading", "prefix", o.Prefix, "err", err)
			continue // the re-read is the cure, no need to wait
		}
		call(o.OnError)
		o.Logger.Warn(o.Name+" watch lost, re-reading", "prefix", o.Prefix, "retry_in", backoff, "err", err)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, o.MaxRetryBackoff)
	}
}

// follow applies watch events from rev+1 on and delivers a snapshot after
// each response that changed something. It returns why the watch ended and
// whether any response arrived.
func (w *watcher[E, S]) follow(ctx context.Context, rev int64) (progressed bool, err error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel() // releases the watcher's stream in the client
	wch := w.o.Client.Watch(wctx, w.o.Prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
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
		w.st.Apply(wr.Events)
		w.deliver(ctx, w.o.Snapshot(w.st, wr.Header.Revision))
	}
	return progressed, errWatchClosed
}

// deliver calls OnSnapshot and logs new invalid keys, then hands s to the
// receiver, replacing a snapshot it has not taken yet.
func (w *watcher[E, S]) deliver(ctx context.Context, s S) {
	if w.o.OnSnapshot != nil {
		w.o.OnSnapshot(s)
	}
	if w.o.Invalid != nil {
		seen := map[string]bool{}
		for key, err := range w.o.Invalid(s) {
			seen[key] = true
			if w.logged[key] != err {
				w.logged[key] = err
				w.o.Logger.Warn(w.o.InvalidMsg, "key", key, "err", err)
			}
		}
		for k := range w.logged {
			if !seen[k] {
				delete(w.logged, k)
			}
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
// ctx ends.
func (w *watcher[E, S]) probeLoop(ctx context.Context) {
	o := &w.o
	t := time.NewTicker(o.RequestTimeout)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, o.RequestTimeout)
		_, err := o.Client.Get(pctx, o.Prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			call(o.OnError)
		}
		w.setReachable(err == nil)
	}
}

// setReachable records whether etcd answers, logging the transitions; it
// does nothing without Reachable.
func (w *watcher[E, S]) setReachable(up bool) {
	o := &w.o
	if o.Reachable == nil {
		return
	}
	switch {
	case up && w.unreachable.CompareAndSwap(true, false):
		o.Logger.Info("etcd answers again", "prefix", o.Prefix)
	case !up && w.unreachable.CompareAndSwap(false, true):
		o.Logger.Warn("etcd does not answer; the last "+o.Name+" snapshot stays in force", "prefix", o.Prefix)
	}
	o.Reachable(up)
}

func call(f func()) {
	if f != nil {
		f()
	}
}

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

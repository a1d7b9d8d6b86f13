package collector

import (
	"context"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// snapshotReader follows a Watch channel and checks what every snapshot
// must satisfy: strictly increasing revisions.
type snapshotReader struct {
	t     *testing.T
	ch    <-chan Snapshot
	last  Snapshot
	count int
	check func(Snapshot) // optional, run on every snapshot
}

func (sr *snapshotReader) waitFor(what string, timeout time.Duration, cond func(Snapshot) bool) time.Duration {
	sr.t.Helper()
	start := time.Now()
	deadline := time.After(timeout)
	for sr.count == 0 || !cond(sr.last) {
		select {
		case s, ok := <-sr.ch:
			if !ok {
				sr.t.Fatalf("%s: watch ended", what)
			}
			if sr.count > 0 && s.Revision <= sr.last.Revision {
				sr.t.Fatalf("snapshot revision %d after %d", s.Revision, sr.last.Revision)
			}
			if sr.check != nil {
				sr.check(s)
			}
			sr.last, sr.count = s, sr.count+1
		case <-deadline:
			sr.t.Fatalf("%s: not within %s; last snapshot %+v", what, timeout, sr.last)
		}
	}
	return time.Since(start)
}

func hasTargets(ids ...string) func(Snapshot) bool {
	return func(s Snapshot) bool { return slices.Equal(targetIDs(s), ids) }
}

func TestRegistryWatchOrder(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t, etcdEndpoint)
	r := testRegistry(t, c)
	if _, err := r.Put(ctx, Target{Job: "j", ID: "pre", Address: "h:1"}); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	txnKeys := []string{r.TargetKey("t", "1"), r.TargetKey("t", "2"), r.TargetKey("t", "3")}
	sr := &snapshotReader{t: t, ch: r.Watch(wctx), check: func(s Snapshot) {
		n := 0
		for _, tg := range s.Targets {
			if tg.Job == "t" {
				n++
			}
		}
		if n != 0 && n != 3 {
			t.Errorf("snapshot at %d holds %d of the 3 targets written in one transaction", s.Revision, n)
		}
	}}
	sr.waitFor("initial", 30*time.Second, hasTargets("j/pre"))

	steps := []struct {
		name string
		do   func() error
		want func(Snapshot) bool
	}{
		{"add a", func() error { _, err := r.Put(ctx, Target{Job: "j", ID: "a", Address: "h:2"}); return err }, hasTargets("j/a", "j/pre")},
		{"add b", func() error { _, err := r.Put(ctx, Target{Job: "j", ID: "b", Address: "h:3"}); return err }, hasTargets("j/a", "j/b", "j/pre")},
		{"change a", func() error {
			_, err := r.Put(ctx, Target{Job: "j", ID: "a", Address: "h:2", ScrapeConfig: ScrapeConfig{Interval: Duration(time.Minute)}})
			return err
		}, func(s Snapshot) bool {
			return hasTargets("j/a", "j/b", "j/pre")(s) && s.Targets[0].Interval == Duration(time.Minute)
		}},
		{"delete b", func() error { return r.Delete(ctx, "j", "b") }, hasTargets("j/a", "j/pre")},
		{"job defaults", func() error {
			return r.PutJob(ctx, Job{Name: "j", ScrapeConfig: ScrapeConfig{Labels: map[string]string{"env": "prod"}}})
		}, func(s Snapshot) bool {
			return hasTargets("j/a", "j/pre")(s) && s.Targets[1].Labels["env"] == "prod"
		}},
		{"transaction of three", func() error {
			var ops []clientv3.Op
			for _, k := range txnKeys {
				ops = append(ops, clientv3.OpPut(k, `{"address":"h:9"}`))
			}
			_, err := c.Txn(ctx).Then(ops...).Commit()
			return err
		}, hasTargets("j/a", "j/pre", "t/1", "t/2", "t/3")},
		{"delete all of t", func() error { _, err := c.Delete(ctx, r.cfg.Prefix+"targets/t/", clientv3.WithPrefix()); return err }, hasTargets("j/a", "j/pre")},
		{"delete a", func() error { return r.Delete(ctx, "j", "a") }, hasTargets("j/pre")},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		sr.waitFor(st.name, 30*time.Second, st.want)
	}
	cancel()
	for range sr.ch { // closed once the watch goroutine is done
	}
}

// TestRegistryWatchResync cuts the watcher's connection, changes the
// registry and compacts etcd past the watcher's revision while it is cut
// off, then lets it reconnect: it must re-read and deliver the full set.
// While cut off it keeps its last snapshot.
func TestRegistryWatchResync(t *testing.T) {
	ctx := testCtx(t)
	direct := newTestClient(t, etcdEndpoint)
	proxy := newTCPProxy(t, etcdEndpoint)
	r := testRegistry(t, newTestClient(t, proxy.addr()))
	w := testRegistry(t, direct) // same prefix, unproxied writer
	for _, id := range []string{"1", "2", "3"} {
		if _, err := w.Put(ctx, Target{Job: "j", ID: id, Address: "h:" + id}); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sr := &snapshotReader{t: t, ch: r.Watch(wctx)}
	sr.waitFor("initial", 30*time.Second, hasTargets("j/1", "j/2", "j/3"))
	before := sr.last.Revision

	proxy.setDown(true)
	if _, err := w.Put(ctx, Target{Job: "j", ID: "4", Address: "h:4"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(ctx, "j", "1"); err != nil {
		t.Fatal(err)
	}
	resp, err := w.client.Put(ctx, w.TargetKey("j", "2"), `{"address":"h:2","interval":"45s"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	// Unavailable: reads fail, the watcher delivers nothing new.
	lctx, lcancel := context.WithTimeout(ctx, time.Second)
	if _, err := r.List(lctx); err == nil {
		t.Fatal("List through a cut connection succeeded")
	}
	lcancel()
	select {
	case s := <-sr.ch:
		t.Fatalf("snapshot delivered while etcd was unreachable: %+v", s)
	default:
	}
	if sr.last.Revision != before {
		t.Fatal("snapshot changed while cut off")
	}
	// The watch itself waits silently; its probe says etcd is gone.
	down := eventually(t, 30*time.Second, "vigil_collector_registry_reachable 0 while cut off", func() bool {
		return metricValue(t, r.metrics.reachable) == 0
	})
	t.Logf("etcd reported unreachable %s after the cut (probe every %s)", down.Round(time.Millisecond), r.cfg.RequestTimeout)

	proxy.setDown(false)
	took := sr.waitFor("resync", 60*time.Second, func(s Snapshot) bool {
		return hasTargets("j/2", "j/3", "j/4")(s) && s.Targets[0].Interval == Duration(45*time.Second)
	})
	resyncs, errs := metricValue(t, r.metrics.resyncs), metricValue(t, r.metrics.watchErrors)
	t.Logf("recovered the full set %s after reconnecting (resyncs %v, watch errors %v)", took.Round(time.Millisecond), resyncs, errs)
	if resyncs < 1 {
		t.Fatalf("resyncs_total = %v, want a re-read after compaction", resyncs)
	}
	if up := metricValue(t, r.metrics.reachable); up != 1 {
		t.Fatalf("vigil_collector_registry_reachable = %v after the resync, want 1", up)
	}
	if sr.last.Revision < resp.Header.Revision {
		t.Fatalf("revision %d after resync, compacted at %d", sr.last.Revision, resp.Header.Revision)
	}

	// And the watch keeps working after the resync.
	if _, err := w.Put(ctx, Target{Job: "j", ID: "5", Address: "h:5"}); err != nil {
		t.Fatal(err)
	}
	sr.waitFor("after resync", 30*time.Second, hasTargets("j/2", "j/3", "j/4", "j/5"))
}

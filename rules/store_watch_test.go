package rules

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// next waits for a snapshot satisfying cond, skipping others.
func next(t *testing.T, w <-chan Snapshot, what string, cond func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s, ok := <-w:
			if !ok {
				t.Fatalf("%s: watch closed", what)
			}
			if cond(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("%s: no such snapshot within 30s", what)
		}
	}
}

func TestWatchDeliversChanges(t *testing.T) {
	ctx := testCtx(t)
	s, c := testStore(t)
	wctx, cancel := context.WithCancel(ctx)
	w := s.Watch(wctx)
	next(t, w, "empty store", func(s Snapshot) bool { return len(s.Groups) == 0 && s.Revision > 0 })

	if _, err := s.PutNamespace(ctx, "ns", readTestdata(t, "node.yml")); err != nil {
		t.Fatal(err)
	}
	snap := next(t, w, "upload", func(s Snapshot) bool { return len(s.Groups) == 2 })
	if !slices.Equal(groupNames(snap), []string{"ns/capacity", "ns/node"}) {
		t.Fatalf("after upload: %v", groupNames(snap))
	}
	// A hand-written bad value appears in Invalid, the groups stay.
	if _, err := c.Put(ctx, s.Key("ns", "bad"), "groups: [{name: bad, rules: [{record: r}]}]"); err != nil {
		t.Fatal(err)
	}
	snap = next(t, w, "invalid value", func(s Snapshot) bool { return len(s.Invalid) == 1 })
	if len(snap.Groups) != 2 || snap.Invalid[0].Group != "bad" || !strings.Contains(snap.Invalid[0].Err, "field 'expr' must be set") {
		t.Fatalf("with an invalid value: %v %+v", groupNames(snap), snap.Invalid)
	}
	// The replacement is one transaction: one snapshot without capacity
	// and with the changed node, never one in between.
	file := "groups:\n- name: node\n  rules: [{alert: InstanceDown, expr: up == 0, for: 1m}]\n"
	if _, err := s.PutNamespace(ctx, "ns", []byte(file)); err != nil {
		t.Fatal(err)
	}
	snap = next(t, w, "replacement", func(s Snapshot) bool { return len(s.Groups) != 2 || len(s.Invalid) == 0 })
	if !slices.Equal(groupNames(snap), []string{"ns/node"}) || len(snap.Invalid) != 0 || time.Duration(snap.Groups[0].RuleGroup.Rules[0].For) != time.Minute {
		t.Fatalf("after replacement: %v %+v", groupNames(snap), snap.Invalid)
	}
	if _, err := s.Delete(ctx, "ns", ""); err != nil {
		t.Fatal(err)
	}
	next(t, w, "delete", func(s Snapshot) bool { return len(s.Groups) == 0 })
	if got := metricValue(t, s.metrics.groups); got != 0 {
		t.Fatalf("vigil_rules_groups = %v after delete", got)
	}
	cancel()
	for range w {
	}
}

// TestWatchResyncsAfterCompaction cuts the watcher's connection, changes
// the store and compacts etcd past the watcher's revision while it is cut
// off, then lets it reconnect: it must re-read and deliver the final set,
// and deliver nothing while cut off.
func TestWatchResyncsAfterCompaction(t *testing.T) {
	ctx := testCtx(t)
	writer, direct := testStore(t)
	proxy := newTCPProxy(t, etcdEndpoint)
	watched, err := New(writer.cfg, newTestClient(t, proxy.addr()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.PutNamespace(ctx, "ns", readTestdata(t, "node.yml")); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := watched.Watch(wctx)
	first := next(t, w, "initial", func(s Snapshot) bool { return len(s.Groups) == 2 })

	proxy.setDown(true)
	var rev int64
	for i := range 5 {
		file := "groups:\n- name: node\n  rules: [{record: 'r" + strings.Repeat("x", i) + "', expr: up}]\n"
		res, err := writer.PutNamespace(ctx, "ns", []byte(file))
		if err != nil {
			t.Fatal(err)
		}
		rev = res.Revision
	}
	if _, err := direct.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-w:
		t.Fatalf("snapshot delivered while cut off: %v", groupNames(s))
	case <-time.After(300 * time.Millisecond):
	}

	proxy.setDown(false)
	last := next(t, w, "final state", func(s Snapshot) bool {
		return len(s.Groups) == 1 && s.Groups[0].RuleGroup.Rules[0].Record == "rxxxx"
	})
	if last.Revision < rev || last.Revision <= first.Revision {
		t.Fatalf("revision %d after resync, compacted at %d", last.Revision, rev)
	}
	if n := metricValue(t, watched.metrics.resyncs); n < 1 {
		t.Fatalf("vigil_rules_watch_resyncs_total = %v, want a re-read", n)
	}
	// And it keeps following.
	if _, err := writer.Delete(ctx, "ns", "node"); err != nil {
		t.Fatal(err)
	}
	next(t, w, "after resync", func(s Snapshot) bool { return len(s.Groups) == 0 })
	cancel()
	for range w {
	}
}

// Concurrent replacements of one namespace: the result is one of the files
// as a whole, never a mix.
func TestConcurrentReplace(t *testing.T) {
	ctx := testCtx(t)
	s, _ := testStore(t)
	files := []string{
		"groups: [{name: a1, rules: [{record: 'a:1', expr: up}]}, {name: a2, rules: [{record: 'a:2', expr: up}]}]",
		"groups: [{name: b1, rules: [{record: 'b:1', expr: up}]}, {name: b2, rules: [{record: 'b:2', expr: up}]}]",
		"groups: [{name: c1, rules: [{record: 'c:1', expr: up}]}]",
	}
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, len(files))
		for i, f := range files {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.PutNamespace(ctx, "ns", []byte(f))
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		snap, err := s.Get(ctx, "ns", "")
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(groupNames(snap), ",")
		if got != "ns/a1,ns/a2" && got != "ns/b1,ns/b2" && got != "ns/c1" {
			t.Fatalf("round %d: a mix of files: %s", round, got)
		}
	}
}

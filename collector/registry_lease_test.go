package collector

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The shortest TTL etcd grants with default election settings (it raises
// shorter ones): keeps the expiry tests short.
// testTTL is long enough that keep-alives (every TTL/3) survive a loaded
// 2-core machine: at 2 s one lease expired in a CI run beside other work.
const testTTL = 4 * time.Second

func present(t *testing.T, r *Registry, job, id string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := r.client.Get(ctx, r.TargetKey(job, id))
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.Kvs) == 1
}

func TestRegisterKeepAliveAndUnregister(t *testing.T) {
	ctx := testCtx(t)
	r := testRegistry(t, newTestClient(t, etcdEndpoint))
	unregister, err := r.Register(ctx, Target{Job: "svc", ID: "me", Address: "127.0.0.1:9009"}, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.List(ctx)
	if err != nil || len(s.Targets) != 1 || s.Targets[0].ID != "me" {
		t.Fatalf("after Register: %+v, %v", s, err)
	}
	// Kept alive past two TTLs (observed, bounded).
	for end := time.Now().Add(2 * testTTL); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if !present(t, r, "svc", "me") {
			t.Fatal("registration expired while kept alive")
		}
	}
	start := time.Now()
	if err := unregister(ctx); err != nil {
		t.Fatal(err)
	}
	if present(t, r, "svc", "me") {
		t.Fatal("target still present after unregister returned")
	}
	t.Logf("unregister removed the target in %s", time.Since(start).Round(time.Millisecond))
	if err := unregister(ctx); err != nil {
		t.Fatalf("second unregister: %v", err)
	}
}

// TestRegisterProcessDeath closes the registering client without revoking,
// as a killed process would: etcd must drop the target after the TTL.
func TestRegisterProcessDeath(t *testing.T) {
	ctx := testCtx(t)
	observer := testRegistry(t, newTestClient(t, etcdEndpoint))
	dying := newTestClient(t, etcdEndpoint)
	r := testRegistry(t, dying)
	unregister, err := r.Register(ctx, Target{Job: "svc", ID: "dies", Address: "127.0.0.1:9100"}, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sr := &snapshotReader{t: t, ch: observer.Watch(wctx)}
	sr.waitFor("registered", 30*time.Second, hasTargets("svc/dies"))

	dying.Close()
	start := time.Now()
	sr.waitFor("expired", 30*time.Second, hasTargets())
	took := time.Since(start)
	t.Logf("target gone %s after its client died (TTL %s)", took.Round(time.Millisecond), testTTL)
	if took < testTTL/2 {
		t.Fatalf("gone after %s, before the TTL could run out: not an expiry", took)
	}
	if err := unregister(ctx); err != nil { // the goroutine has ended on its own
		t.Fatalf("unregister after death: %v", err)
	}
}

func TestRegisterContextEnd(t *testing.T) {
	ctx := testCtx(t)
	r := testRegistry(t, newTestClient(t, etcdEndpoint))
	rctx, cancel := context.WithCancel(ctx)
	unregister, err := r.Register(rctx, Target{Job: "svc", ID: "ctx", Address: "127.0.0.1:9100"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	took := eventually(t, 10*time.Second, "revoked on context end", func() bool { return !present(t, r, "svc", "ctx") })
	t.Logf("gone %s after the context ended (TTL 30s: revoked, not expired)", took.Round(time.Millisecond))
	if err := unregister(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterStaticTarget(t *testing.T) {
	ctx := testCtx(t)
	r := testRegistry(t, newTestClient(t, etcdEndpoint))
	if _, err := r.Put(ctx, Target{Job: "svc", ID: "op", Address: "h:1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, Target{Job: "svc", ID: "op", Address: "h:2"}, testTTL); !errors.Is(err, ErrStaticTarget) {
		t.Fatalf("Register over a static target: %v, want ErrStaticTarget", err)
	}
	s, err := r.List(ctx)
	if err != nil || len(s.Targets) != 1 || s.Targets[0].Address != "h:1" {
		t.Fatalf("static target changed: %+v, %v", s, err)
	}
	if _, err := r.Register(ctx, Target{Job: "svc", Address: "h:1", ScrapeConfig: ScrapeConfig{Timeout: Duration(time.Hour)}}, testTTL); !errors.Is(err, ErrInvalidTarget) {
		t.Fatalf("Register of an invalid target: %v", err)
	}
}

// TestRegisterLeaseLost revokes the registration's lease behind its back
// (as an etcd outage longer than the TTL would expire it): the live process
// registers again under a new lease.
func TestRegisterLeaseLost(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t, etcdEndpoint)
	r := testRegistry(t, c)
	unregister, err := r.Register(ctx, Target{Job: "svc", ID: "re", Address: "127.0.0.1:9100"}, testTTL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unregister(ctx) }()
	key := r.TargetKey("svc", "re")
	resp, err := c.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("leased key: %+v, %v", resp, err)
	}
	old := clientv3.LeaseID(resp.Kvs[0].Lease)
	if _, err := c.Revoke(ctx, old); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 30*time.Second, "registered again", func() bool {
		resp, err := c.Get(ctx, key)
		return err == nil && len(resp.Kvs) == 1 && clientv3.LeaseID(resp.Kvs[0].Lease) != old
	})
	t.Logf("registered again under a new lease %s after the old one was revoked", took.Round(time.Millisecond))
	if err := unregister(ctx); err != nil {
		t.Fatal(err)
	}
	if present(t, r, "svc", "re") {
		t.Fatal("present after unregister")
	}
}

package collector

import (
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
)

// serveTargets serves r's vigil.v1.Targets on a loopback port and returns
// a client of it; both stop at the end of the test.
func serveTargets(t *testing.T, r *Registry) vigilv1.TargetsClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	vigilv1.RegisterTargetsServer(srv, NewTargetsServer(r))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); srv.Stop(); <-done })
	return vigilv1.NewTargetsClient(conn)
}

// wantCode fails unless err is a status with code and a message holding want.
func wantCode(t *testing.T, what string, err error, code codes.Code, want string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code || !strings.Contains(st.Message(), want) {
		t.Errorf("%s: %v, want %s saying %q", what, err, code, want)
	}
}

func TestTargetsServerRegisterChecks(t *testing.T) {
	ctx := testCtx(t)
	r := testRegistry(t, newTestClient(t, etcdEndpoint))
	tc := serveTargets(t, r)
	ok := func() *vigilv1.Target { return &vigilv1.Target{Job: "svc", Address: "127.0.0.1:9100"} }
	ttl := durationpb.New(5 * time.Second)
	for _, tc2 := range []struct {
		name string
		req  *vigilv1.RegisterRequest
		want string
	}{
		{"no target", &vigilv1.RegisterRequest{Ttl: ttl}, "target: missing"},
		{"no job", &vigilv1.RegisterRequest{Target: &vigilv1.Target{Address: "a:1"}, Ttl: ttl}, "job: missing"},
		{"no address", &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc"}, Ttl: ttl}, "address: is required"},
		{"bad port", &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "a:70000"}, Ttl: ttl}, "port must be 1-65535"},
		{"reserved label", &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "a:1", Labels: map[string]string{"__x": "1"}}, Ttl: ttl}, "labels:"},
		{"short interval", &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "a:1", Interval: durationpb.New(time.Millisecond)}, Ttl: ttl}, "interval:"},
		{"timeout over interval", &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "a:1", Interval: durationpb.New(time.Second), Timeout: durationpb.New(2 * time.Second)}, Ttl: ttl}, "timeout:"},
		{"retries", &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "a:1", Retries: new(int32(11))}, Ttl: ttl}, "retries:"},
		{"empty param", &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "a:1", Params: map[string]*vigilv1.ParamValues{"x": nil}}, Ttl: ttl}, "params: x: no values"},
		{"no ttl", &vigilv1.RegisterRequest{Target: ok()}, "ttl: missing"},
		{"ttl too short", &vigilv1.RegisterRequest{Target: ok(), Ttl: durationpb.New(4 * time.Second)}, "ttl: 4s: must be between 5s and 1h0m0s"},
		{"ttl too long", &vigilv1.RegisterRequest{Target: ok(), Ttl: durationpb.New(2 * time.Hour)}, "ttl: 2h0m0s"},
		{"ttl invalid", &vigilv1.RegisterRequest{Target: ok(), Ttl: &durationpb.Duration{Seconds: 5, Nanos: -1}}, "ttl:"},
	} {
		_, err := tc.Register(ctx, tc2.req)
		wantCode(t, tc2.name, err, codes.InvalidArgument, tc2.want)
	}
	if s, err := r.List(ctx); err != nil || len(s.Targets)+len(s.Invalid) != 0 {
		t.Fatalf("refused registrations wrote something: %+v, %v", s, err)
	}

	// A key an operator wrote is not taken over.
	if _, err := r.Put(ctx, Target{Job: "svc", Address: "127.0.0.1:9200"}); err != nil {
		t.Fatal(err)
	}
	_, err := tc.Register(ctx, &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "127.0.0.1:9200"}, Ttl: ttl})
	wantCode(t, "static key", err, codes.FailedPrecondition, "registered statically")
}

func TestTargetsServerLeaseLifecycle(t *testing.T) {
	ctx := testCtx(t)
	r := testRegistry(t, newTestClient(t, etcdEndpoint))
	tc := serveTargets(t, r)
	resp, err := tc.Register(ctx, &vigilv1.RegisterRequest{
		Target: &vigilv1.Target{Job: "svc", Address: "http://127.0.0.1:9300/m?x=1", Labels: map[string]string{"team": "a"}, Retries: new(int32(0)), HonorLabels: new(true)},
		Ttl:    durationpb.New(5 * time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantKey := r.TargetKey("svc", "127.0.0.1:9300%2Fm")
	if resp.Key != wantKey || resp.LeaseId == 0 || resp.Ttl.AsDuration() != 5*time.Second || len(resp.Secret) != 32 {
		t.Fatalf("register: %+v, want key %s, a 5s lease and a 128-bit secret", resp, wantKey)
	}
	s, err := r.List(ctx)
	if err != nil || len(s.Targets) != 1 {
		t.Fatalf("after register: %+v, %v", s, err)
	}
	got := s.Targets[0]
	if got.URL().String() != "http://127.0.0.1:9300/m?x=1" || got.Labels["team"] != "a" || *got.Retries != 0 || !*got.HonorLabels {
		t.Fatalf("stored target %+v (url %s)", got, got.URL())
	}
	time.Sleep(1500 * time.Millisecond)
	ka, err := tc.KeepAlive(ctx, &vigilv1.KeepAliveRequest{LeaseId: resp.LeaseId, Secret: resp.Secret})
	if err != nil || ka.Ttl.AsDuration() != 5*time.Second {
		t.Fatalf("keep alive: %+v, %v", ka, err)
	}
	ttl, err := r.client.TimeToLive(ctx, clientv3.LeaseID(resp.LeaseId))
	if err != nil || ttl.TTL < 4 {
		t.Fatalf("after keep alive the lease has %+v, %v; want about 5s left", ttl, err)
	}
	if _, err := tc.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: resp.LeaseId, Secret: resp.Secret}); err != nil {
		t.Fatal(err)
	}
	if present(t, r, "svc", "127.0.0.1:9300%2Fm") {
		t.Fatal("target present after Unregister returned")
	}
	_, err = tc.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: resp.LeaseId, Secret: resp.Secret})
	wantCode(t, "second unregister", err, codes.NotFound, "lease not found")
	_, err = tc.KeepAlive(ctx, &vigilv1.KeepAliveRequest{LeaseId: resp.LeaseId, Secret: resp.Secret})
	wantCode(t, "keep alive after unregister", err, codes.NotFound, "lease not found")

	// A lease left to expire: gone with its target, and NotFound even
	// with the right secret.
	resp, err = tc.Register(ctx, &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "expiring:1"}, Ttl: durationpb.New(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); present(t, r, "svc", "expiring:1"); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("target of a 5s lease still present after 15s")
		}
	}
	_, err = tc.KeepAlive(ctx, &vigilv1.KeepAliveRequest{LeaseId: resp.LeaseId, Secret: resp.Secret})
	wantCode(t, "keep alive after expiry", err, codes.NotFound, "lease not found")
}

// TestTargetsServerForeignLeases: KeepAlive and Unregister act only on
// leases Register granted, presented with their secret; every other lease
// (another subsystem's, a node's self-registration, a registration with
// the wrong secret) is NotFound and keeps its keys and its ttl.
func TestTargetsServerForeignLeases(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t, etcdEndpoint)
	r := testRegistry(t, c)
	tc := serveTargets(t, r)
	other := testRegistry(t, c)
	other.cfg.Prefix = strings.TrimSuffix(r.cfg.Prefix, "/") + "-other/"
	for _, tc2 := range []struct {
		name string
		keys []string
	}{
		{"ring member", []string{"/vigil/ring/member-1"}},
		{"job key under the prefix", []string{r.JobKey("svc")}},
		{"not a registry key under the prefix", []string{r.cfg.Prefix + "misc"}},
		{"target of another registry", []string{other.TargetKey("svc", "x:1")}},
		{"no keys", nil},
	} {
		g, err := c.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range tc2.keys {
			if _, err := c.Put(ctx, k, "v", clientv3.WithLease(g.ID)); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2100 * time.Millisecond) // so that a refresh would show
		_, err = tc.KeepAlive(ctx, &vigilv1.KeepAliveRequest{LeaseId: int64(g.ID)})
		wantCode(t, tc2.name+": keep alive", err, codes.NotFound, "lease not found")
		if ttl, err := c.TimeToLive(ctx, g.ID); err != nil || ttl.TTL > 58 {
			t.Errorf("%s: lease after keep alive: %+v, %v; want at most 58s left (not refreshed)", tc2.name, ttl, err)
		}
		_, err = tc.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: int64(g.ID)})
		wantCode(t, tc2.name+": unregister", err, codes.NotFound, "lease not found")
		ttl, err := c.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
		if err != nil || ttl.TTL <= 0 || ttl.TTL > 58 || len(ttl.Keys) != len(tc2.keys) {
			t.Errorf("%s: lease after the calls: %+v, %v; want alive, not refreshed, keys kept", tc2.name, ttl, err)
		}
		for _, k := range tc2.keys {
			if resp, err := c.Get(ctx, k); err != nil || len(resp.Kvs) != 1 {
				t.Errorf("%s: key %s gone: %v", tc2.name, k, err)
			}
		}
		_, _ = c.Revoke(ctx, g.ID)
	}
	_, err := tc.KeepAlive(ctx, &vigilv1.KeepAliveRequest{LeaseId: 0x7fff_0000_dead_beef})
	wantCode(t, "never granted", err, codes.NotFound, "lease not found")

	// A target key held by a lease the service did not grant: a node's
	// self-registration (Registry.Register).
	unregister, err := r.Register(ctx, Target{Job: "vigil", Address: "127.0.0.1:9009"}, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer unregister(ctx)
	self, err := c.Get(ctx, r.TargetKey("vigil", "127.0.0.1:9009"))
	if err != nil || len(self.Kvs) != 1 || self.Kvs[0].Lease == 0 {
		t.Fatalf("self-registration: %+v, %v", self, err)
	}
	_, err = tc.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: self.Kvs[0].Lease})
	wantCode(t, "self-registration: unregister", err, codes.NotFound, "lease not found")
	if !present(t, r, "vigil", "127.0.0.1:9009") {
		t.Error("self-registration: target gone after a refused Unregister")
	}

	// A registration presented with a wrong or no secret.
	resp, err := tc.Register(ctx, &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "guess:1"}, Ttl: durationpb.New(60 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // so that a refresh would show
	for _, secret := range []string{"", strings.Repeat("0", 32), resp.Secret[:31] + "x"} {
		_, err = tc.KeepAlive(ctx, &vigilv1.KeepAliveRequest{LeaseId: resp.LeaseId, Secret: secret})
		wantCode(t, "wrong secret: keep alive", err, codes.NotFound, "lease not found")
		_, err = tc.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: resp.LeaseId, Secret: secret})
		wantCode(t, "wrong secret: unregister", err, codes.NotFound, "lease not found")
	}
	if ttl, err := c.TimeToLive(ctx, clientv3.LeaseID(resp.LeaseId)); err != nil || ttl.TTL <= 0 || ttl.TTL > 58 {
		t.Errorf("wrong secret: lease %+v, %v; want alive and not refreshed", ttl, err)
	}
	if !present(t, r, "svc", "guess:1") {
		t.Error("wrong secret: target gone")
	}
	if _, err := tc.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: resp.LeaseId, Secret: resp.Secret}); err != nil {
		t.Errorf("the right secret: %v", err)
	}
}

// TestTargetsServerUnavailable: etcd that does not answer is Unavailable.
func TestTargetsServerUnavailable(t *testing.T) {
	ctx := testCtx(t)
	p := newTCPProxy(t, etcdEndpoint)
	r := testRegistry(t, newTestClient(t, p.addr()))
	r.cfg.RequestTimeout = time.Second
	tc := serveTargets(t, r)
	resp, err := tc.Register(ctx, &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "a:1"}, Ttl: durationpb.New(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	p.setDown(true)
	defer p.setDown(false)
	_, err = tc.Register(ctx, &vigilv1.RegisterRequest{Target: &vigilv1.Target{Job: "svc", Address: "b:1"}, Ttl: durationpb.New(5 * time.Second)})
	wantCode(t, "register", err, codes.Unavailable, "deadline exceeded")
	_, err = tc.KeepAlive(ctx, &vigilv1.KeepAliveRequest{LeaseId: resp.LeaseId, Secret: resp.Secret})
	wantCode(t, "keep alive", err, codes.Unavailable, "read lease")
	_, err = tc.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: resp.LeaseId, Secret: resp.Secret})
	wantCode(t, "unregister", err, codes.Unavailable, "read lease")
}

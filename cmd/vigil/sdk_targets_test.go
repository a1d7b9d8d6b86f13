package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
	"github.com/vigil-tsdb/vigil/sdk"
)

// startTargetsNode runs the single node with its gRPC API on grpcAddr, as
// startRun does, and also returns the client URL of its embedded etcd.
func startTargetsNode(t *testing.T, grpcAddr string) (base, etcdURL string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	args := []string{"-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", grpcAddr}
	go func() {
		done <- run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	urlRE := regexp.MustCompile(`Query API / Grafana data source:\s+(\S+)`)
	etcdRE := regexp.MustCompile(`etcd \(target registry\):\s+(\S+)`)
	sc := bufio.NewScanner(pr)
	for (base == "" || etcdURL == "") && sc.Scan() {
		if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
		}
		if m := etcdRE.FindStringSubmatch(sc.Text()); m != nil {
			etcdURL = m[1]
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" || etcdURL == "" {
		cancel()
		t.Fatalf("run printed no query or etcd URL: %v", <-done)
	}
	return base, etcdURL, func() error { cancel(); return <-done }
}

// exporter is a loopback /metrics endpoint that counts its scrapes.
type exporter struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newExporter(t *testing.T) *exporter {
	e := &exporter{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := e.hits.Add(1)
		fmt.Fprintf(w, "# TYPE sdk_exporter_scrapes_total counter\nsdk_exporter_scrapes_total %d\n", n)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *exporter) addr() string { return e.srv.Listener.Addr().String() }

// registryHas reports whether the registry's HTTP API lists job/id.
func registryHas(t *testing.T, base, job, id string) bool {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/registry/targets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Targets []struct{ Job, ID string }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, tg := range out.Data.Targets {
		if tg.Job == job && tg.ID == id {
			return true
		}
	}
	return false
}

// waitUntil polls cond every 100 ms until it holds or timeout passes and
// returns how long it took.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// notScraped fails if e is scraped again after a grace period for a
// scrape in flight.
func notScraped(t *testing.T, e *exporter, what string) {
	t.Helper()
	time.Sleep(1500 * time.Millisecond)
	before := e.hits.Load()
	time.Sleep(3 * time.Second) // three intervals
	if after := e.hits.Load(); after != before {
		t.Errorf("%s: still scraped (%d scrapes in 3s)", what, after-before)
	}
}

// cutProxy forwards loopback connections to target until cut, which
// closes them all and stops listening: a client behind it is partitioned
// from the server.
type cutProxy struct {
	l     net.Listener
	mu    sync.Mutex // protects conns
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); up.Close(); c.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
	t.Cleanup(p.cut)
	return p
}

func (p *cutProxy) cut() {
	p.l.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestSDKTargets registers scrape targets through the public gRPC API with
// the Go SDK into the real single node: the collector scrapes them while
// the SDK keeps their leases alive, they disappear at once on Close and
// after the ttl when keep-alives stop, bad input gets its code and field,
// and leases that are not registrations are neither refreshed nor revoked.
func TestSDKTargets(t *testing.T) {
	const ttl = 5 * time.Second
	grpcAddr := freeAddr(t)
	base, etcdURL, stop := startTargetsNode(t, grpcAddr)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	c, err := sdk.New(grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raw := vigilv1.NewTargetsClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	target := func(e *exporter, name string) sdk.Target {
		return sdk.Target{Job: "sdkreg", Address: e.addr(), Interval: time.Second, Labels: map[string]string{"case": name}}
	}

	t.Run("scraped, kept alive, closed", func(t *testing.T) {
		e := newExporter(t)
		reg, err := c.RegisterTarget(ctx, target(e, "kept"), ttl)
		if err != nil {
			t.Fatal(err)
		}
		if reg.TTL() != ttl || reg.LeaseID() == 0 || !strings.HasSuffix(reg.Key(), "/targets/sdkreg/"+e.addr()) {
			t.Fatalf("registration: key %q lease %d ttl %s", reg.Key(), reg.LeaseID(), reg.TTL())
		}
		waitQuery(t, base, `up{job="sdkreg",case="kept"}`, "1")
		// Past two ttls, the registration and the scrapes go on.
		hits := e.hits.Load()
		for end := time.Now().Add(2*ttl + time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
			if !registryHas(t, base, "sdkreg", e.addr()) || reg.Err() != nil {
				t.Fatalf("registration ended while kept alive: %v", reg.Err())
			}
		}
		if n := e.hits.Load() - hits; n < 8 {
			t.Errorf("%d scrapes in %s at a 1s interval", n, 2*ttl+time.Second)
		}
		waitQuery(t, base, `up{job="sdkreg",case="kept"}`, "1")
		start := time.Now()
		if err := reg.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if registryHas(t, base, "sdkreg", e.addr()) {
			t.Fatal("target still registered after Close returned")
		}
		t.Logf("Close removed the target in %s", time.Since(start).Round(time.Millisecond))
		select {
		case <-reg.Done():
		default:
			t.Error("Done not closed after Close")
		}
		if reg.Err() != nil || reg.Close(ctx) != nil {
			t.Errorf("after Close: Err %v, second Close %v", reg.Err(), reg.Close(ctx))
		}
		notScraped(t, e, "after Close")
		waitQuery(t, base, `up{job="sdkreg",case="kept"}`, "") // staleness marker
	})

	t.Run("expires when keep-alives stop", func(t *testing.T) {
		e := newExporter(t)
		rctx, rcancel := context.WithCancel(ctx)
		reg, err := c.RegisterTarget(rctx, target(e, "expiring"), ttl)
		if err != nil {
			t.Fatal(err)
		}
		waitQuery(t, base, `up{job="sdkreg",case="expiring"}`, "1")
		rcancel()
		stopped := time.Now()
		select {
		case <-reg.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after the context ended")
		}
		if !errors.Is(reg.Err(), context.Canceled) {
			t.Errorf("Err after the context ended: %v", reg.Err())
		}
		waitUntil(t, ttl+5*time.Second, "lease expiry", func() bool { return !registryHas(t, base, "sdkreg", e.addr()) })
		took := time.Since(stopped)
		// The last keep-alive was about ttl/3 before the stop (later on a
		// loaded machine): the target must outlive the stop by about 2/3
		// of the ttl.
		if took < 2*ttl/3-1500*time.Millisecond {
			t.Errorf("target gone %s after keep-alives stopped, before its lease could expire", took)
		}
		t.Logf("target gone %s after keep-alives stopped (ttl %s)", took.Round(time.Millisecond), ttl)
		notScraped(t, e, "after expiry")
		if err := reg.Close(ctx); err != nil {
			t.Errorf("Close after expiry: %v", err)
		}
	})

	t.Run("lost lease reported", func(t *testing.T) {
		e := newExporter(t)
		reg, err := c.RegisterTarget(ctx, target(e, "lost"), ttl)
		if err != nil {
			t.Fatal(err)
		}
		defer reg.Close(ctx)
		if _, err := etcd.Revoke(ctx, clientv3.LeaseID(reg.LeaseID())); err != nil {
			t.Fatal(err)
		}
		select {
		case <-reg.Done():
		case <-time.After(ttl):
			t.Fatal("a revoked lease was not reported within the ttl")
		}
		var se *sdk.Error
		if err := reg.Err(); !errors.Is(err, sdk.ErrLeaseLost) || !errors.As(err, &se) || se.Code != codes.NotFound {
			t.Errorf("Err after the lease was revoked: %v, want ErrLeaseLost with NotFound", err)
		}
	})

	t.Run("partitioned client", func(t *testing.T) {
		e := newExporter(t)
		p := newCutProxy(t, grpcAddr)
		pc, err := sdk.New(p.l.Addr().String(), sdk.WithBackoff(50*time.Millisecond, 500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		reg, err := pc.RegisterTarget(ctx, target(e, "partitioned"), ttl)
		if err != nil {
			t.Fatal(err)
		}
		waitQuery(t, base, `up{job="sdkreg",case="partitioned"}`, "1")
		p.cut()
		cut := time.Now()
		select {
		case <-reg.Done():
		case <-time.After(ttl + 3*time.Second):
			t.Fatal("keep-alives failing for longer than the ttl were not reported")
		}
		t.Logf("lease reported lost %s after the cut (ttl %s)", time.Since(cut).Round(time.Millisecond), ttl)
		var se *sdk.Error
		if err := reg.Err(); !errors.Is(err, sdk.ErrLeaseLost) || !strings.Contains(err.Error(), "no keep-alive succeeded for 5s") || !errors.As(err, &se) || !se.Retryable {
			t.Errorf("Err after the partition: %v, want ErrLeaseLost after retryable failures", err)
		}
		waitUntil(t, 3*time.Second, "lease expiry on the server", func() bool { return !registryHas(t, base, "sdkreg", e.addr()) })
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		if err := reg.Close(cctx); !errors.Is(err, sdk.ErrUnavailable) {
			t.Errorf("Close while partitioned: %v, want an unavailable error", err)
		}
	})

	t.Run("invalid input", func(t *testing.T) {
		e := newExporter(t)
		ok := target(e, "invalid")
		if resp, err := http.Post(base+"/api/v1/registry/targets", "application/json",
			strings.NewReader(`{"job":"sdkreg","address":"127.0.0.1:1","labels":{"case":"static"}}`)); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("static target: %v %v", resp, err)
		}
		for _, tc := range []struct {
			name   string
			target func(*sdk.Target)
			ttl    time.Duration
			code   codes.Code
			want   string
		}{
			{"no job", func(t *sdk.Target) { t.Job = "" }, ttl, codes.InvalidArgument, "job: missing"},
			{"no address", func(t *sdk.Target) { t.Address = "" }, ttl, codes.InvalidArgument, "address: is required"},
			{"bad address", func(t *sdk.Target) { t.Address = "ftp://x" }, ttl, codes.InvalidArgument, "address: scheme \"ftp\""},
			{"reserved label", func(t *sdk.Target) { t.Labels = map[string]string{"__meta": "x"} }, ttl, codes.InvalidArgument, "labels: \"__meta\""},
			{"job label", func(t *sdk.Target) { t.Labels = map[string]string{"job": "x"} }, ttl, codes.InvalidArgument, "labels: \"job\""},
			{"interval", func(t *sdk.Target) { t.Interval = 2 * time.Hour }, ttl, codes.InvalidArgument, "interval: 2h0m0s"},
			{"timeout", func(t *sdk.Target) { t.Timeout = 5 * time.Second }, ttl, codes.InvalidArgument, "timeout: 5s is longer than the interval"},
			{"retries", func(t *sdk.Target) { t.Retries = new(11) }, ttl, codes.InvalidArgument, "retries: 11"},
			{"inline secret path", func(t *sdk.Target) { t.BearerTokenRef = "../etc/passwd" }, ttl, codes.InvalidArgument, "bearer_token_ref:"},
			{"tls over http", func(t *sdk.Target) { t.TLS, t.Scheme = &sdk.TLSConfig{ServerName: "x"}, "http" }, ttl, codes.InvalidArgument, "tls: only with scheme https"},
			{"ttl too short", func(*sdk.Target) {}, time.Second, codes.InvalidArgument, "ttl: 1s: must be between 5s and 1h0m0s"},
			{"ttl too long", func(*sdk.Target) {}, 2 * time.Hour, codes.InvalidArgument, "ttl: 2h0m0s"},
			{"static key", func(t *sdk.Target) { t.Address = "127.0.0.1:1" }, ttl, codes.FailedPrecondition, "registered statically"},
		} {
			tg := ok
			tc.target(&tg)
			reg, err := c.RegisterTarget(ctx, tg, tc.ttl)
			var se *sdk.Error
			if reg != nil || !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(se.Message, tc.want) || se.Retryable || se.Attempts != 1 {
				t.Errorf("%s: %v, want %s saying %q", tc.name, err, tc.code, tc.want)
			}
			if tc.code == codes.InvalidArgument && !errors.Is(err, sdk.ErrInvalid) {
				t.Errorf("%s: %v is not ErrInvalid", tc.name, err)
			}
		}
		if registryHas(t, base, "sdkreg", e.addr()) {
			t.Error("a refused registration was written")
		}
		if !registryHas(t, base, "sdkreg", "127.0.0.1:1") {
			t.Error("the static target was taken over")
		}
	})

	t.Run("foreign lease", func(t *testing.T) {
		g, err := etcd.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		defer etcd.Revoke(context.Background(), g.ID)
		const key = "/vigil/ring/not-a-target"
		if _, err := etcd.Put(ctx, key, "member", clientv3.WithLease(g.ID)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2100 * time.Millisecond) // so that a refresh would show
		_, err = raw.KeepAlive(ctx, &vigilv1.KeepAliveRequest{LeaseId: int64(g.ID)})
		if st, _ := status.FromError(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), "lease not found") {
			t.Errorf("KeepAlive of a foreign lease: %v, want NotFound", err)
		}
		if ttl, err := etcd.TimeToLive(ctx, g.ID); err != nil || ttl.TTL > 58 {
			t.Errorf("foreign lease after KeepAlive: %+v, %v; want at most 58s left (not refreshed)", ttl, err)
		}
		_, err = raw.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: int64(g.ID)})
		if status.Code(err) != codes.NotFound {
			t.Errorf("Unregister of a foreign lease: %v, want NotFound", err)
		}
		resp, err := etcd.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "member" || resp.Kvs[0].Lease != int64(g.ID) {
			t.Errorf("foreign key after the calls: %+v, %v; want it untouched", resp, err)
		}
	})
}

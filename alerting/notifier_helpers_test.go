package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-tsdb/vigil/internal/etcdtest"
)

// fakeClock is a Clock that moves only when told.
type fakeClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newEtcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	return etcdtest.NewClient(t, etcdEndpoint(t))
}

// testPrefix is a key prefix of the test's own, new for each run (-count).
func testPrefix(t *testing.T) string {
	return fmt.Sprintf("/test/%s/%d/", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), time.Now().UnixNano())
}

func testNotifierConfig(prefix string) NotifierConfig {
	cfg := DefaultNotifierConfig()
	cfg.Prefix = prefix
	cfg.RequestTimeout = 5 * time.Second
	cfg.PollInterval = 50 * time.Millisecond
	return cfg
}

// newTestNotifier builds a notifier over the routing YAML.
func newTestNotifier(t *testing.T, cfg NotifierConfig, yml string, clock Clock, reg prometheus.Registerer) *Notifier {
	t.Helper()
	rc, err := ParseRoutingConfig([]byte(yml))
	if err != nil {
		t.Fatalf("routing config: %v\n%s", err, yml)
	}
	n, err := New(cfg, rc, newEtcdClient(t), clock, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// received is one request a recording endpoint accepted.
type received struct {
	At   time.Time // the notifier's clock when it arrived
	Body map[string]any
}

// endpoint is an HTTP endpoint that records the JSON bodies it gets; its
// answer is decided per request by status (200 by default).
type endpoint struct {
	srv   *httptest.Server
	clock Clock

	mu     sync.Mutex // protects got and status
	got    []received
	status func(n int) (int, string) // n: requests so far, 0-based → code, body
}

func newEndpoint(t *testing.T, clock Clock, okBody string) *endpoint {
	r := &endpoint{clock: clock}
	r.status = func(int) (int, string) { return 200, okBody }
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		r.mu.Lock()
		code, out := r.status(len(r.got))
		if code == 200 {
			r.got = append(r.got, received{At: r.clock.Now(), Body: body})
		}
		r.mu.Unlock()
		if code == 429 {
			w.Header().Set("Retry-After", "120")
		}
		w.WriteHeader(code)
		io.WriteString(w, out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *endpoint) setStatus(f func(n int) (int, string)) {
	r.mu.Lock()
	r.status = f
	r.mu.Unlock()
}

func (r *endpoint) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// webhookSummary is "status:alertcount" of a webhook body.
func webhookSummary(b map[string]any) string {
	alerts, _ := b["alerts"].([]any)
	status, _ := b["status"].(string)
	return fmt.Sprintf("%s:%d", status, len(alerts))
}

// step moves the clock, then flushes and delivers as Run would.
func step(t *testing.T, ctx context.Context, n *Notifier, c *fakeClock, d time.Duration) {
	t.Helper()
	c.Advance(d)
	if err := n.flush(ctx); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if err := n.deliver(ctx, true); err != nil {
		t.Fatalf("deliver: %v", err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// firingAlert is an alert as the ruler sends it each evaluation: EndsAt
// four minutes ahead (Prometheus' ValidUntil).
func firingAlert(now, since time.Time, kv ...string) Alert {
	a := Alert{Labels: KV{}, Annotations: KV{"summary": "s"}, StartsAt: since, EndsAt: now.Add(4 * time.Minute)}
	for i := 0; i+1 < len(kv); i += 2 {
		a.Labels[kv[i]] = kv[i+1]
	}
	return a
}

func resolvedAlert(since, ended time.Time, kv ...string) Alert {
	a := firingAlert(ended, since, kv...)
	a.EndsAt = ended
	return a
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func queueLen(t *testing.T, c *clientv3.Client, prefix string) int {
	t.Helper()
	resp, err := c.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return int(resp.Count)
}

// tcpProxy forwards loopback connections to etcd and can cut them all, to
// make etcd unreachable for one client.
type tcpProxy struct{ *etcdtest.Proxy }

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	return &tcpProxy{etcdtest.NewProxy(t, target)}
}

// setDown cuts every connection and refuses new ones until setDown(false).
func (p *tcpProxy) setDown(down bool) { p.SetDown(down) }

// newProxiedClient is an etcd client through p that reconnects quickly.
func newProxiedClient(t *testing.T, p *tcpProxy) *clientv3.Client {
	t.Helper()
	return etcdtest.NewClient(t, p.Addr())
}

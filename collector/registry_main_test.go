package collector

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/vigil-tsdb/vigil/internal/etcdtest"
)

// etcdEndpoint is the client URL of the package's embedded etcd.
var etcdEndpoint string

// TestMain runs one embedded etcd for the package's tests, stops it, then
// checks for leaked goroutines.
func TestMain(m *testing.M) {
	code := runWithEtcd(m)
	if code == 0 {
		if err := goleak.Find(etcdLeftovers...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// etcdLeftovers are goroutines of etcd's embedded server and client
// libraries that outlive Close by design (process-wide helpers).
var etcdLeftovers = etcdtest.LeakOptions()

func runWithEtcd(m *testing.M) int { return etcdtest.Run(m, &etcdEndpoint) }

// newTestClient returns an etcd client of endpoint, closed at the end of the
// test. Reconnects are capped at 500ms so that tests that cut the
// connection see it come back quickly.
func newTestClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	return etcdtest.NewClient(t, endpoint)
}

// testRegistry returns a registry under a prefix of its own.
func testRegistry(t *testing.T, c *clientv3.Client) *Registry {
	t.Helper()
	cfg := DefaultRegistryConfig()
	cfg.Prefix = "/test/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/"
	cfg.RequestTimeout = 5 * time.Second
	cfg.RetryBackoff = 50 * time.Millisecond
	cfg.MaxRetryBackoff = 500 * time.Millisecond
	r, err := NewRegistry(cfg, c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// tcpProxy forwards loopback connections to an etcd endpoint and can cut
// them all, to simulate a lost connection or an unreachable etcd.
type tcpProxy struct{ *etcdtest.Proxy }

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	return &tcpProxy{etcdtest.NewProxy(t, target)}
}

func (p *tcpProxy) addr() string { return p.Addr() }

// setDown cuts every connection and refuses new ones until setDown(false).
func (p *tcpProxy) setDown(down bool) { p.SetDown(down) }

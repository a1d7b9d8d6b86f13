package rules

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
		if err := goleak.Find(etcdtest.LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func runWithEtcd(m *testing.M) int { return etcdtest.Run(m, &etcdEndpoint) }

func newTestClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	return etcdtest.NewClient(t, endpoint)
}

// testStore returns a store under a prefix of its own, and its client.
func testStore(t *testing.T) (*Store, *clientv3.Client) {
	t.Helper()
	c := newTestClient(t, etcdEndpoint)
	cfg := DefaultConfig()
	cfg.Prefix = "/test/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/"
	cfg.RequestTimeout = 5 * time.Second
	cfg.RetryBackoff = 50 * time.Millisecond
	cfg.MaxRetryBackoff = 500 * time.Millisecond
	s, err := New(cfg, c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tcpProxy forwards loopback connections to an etcd endpoint and can cut
// them all, to simulate a lost connection.
type tcpProxy struct{ *etcdtest.Proxy }

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	return &tcpProxy{etcdtest.NewProxy(t, target)}
}

func (p *tcpProxy) addr() string { return p.Addr() }

// setDown cuts every connection and refuses new ones until setDown(false).
func (p *tcpProxy) setDown(down bool) { p.SetDown(down) }

package etcdtest

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// readyTimeout bounds the wait for a started etcd to serve.
const readyTimeout = 60 * time.Second

// Start starts a single-member etcd that keeps its data in dir and listens
// on free loopback ports, and waits until it serves (at most 60s). It
// returns the server and its client endpoint (host:port). The caller stops
// it with Stop and removes dir; on error nothing is left running.
func Start(dir string) (*embed.Etcd, string, error) {
	cfg := embed.NewConfig()
	cfg.Name = "etcdtest"
	cfg.Dir = dir
	cfg.LogLevel = "panic" // its shutdown logs "server closed" at error level
	cu, err := freeURL()
	if err != nil {
		return nil, "", err
	}
	pu, err := freeURL()
	if err != nil {
		return nil, "", err
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, e.Clients[0].Addr().String(), nil
	case err := <-e.Err():
		Stop(e)
		return nil, "", err
	case <-time.After(readyTimeout):
		Stop(e)
		return nil, "", fmt.Errorf("embedded etcd not ready after %s", readyTimeout)
	}
}

// Stop closes e and waits until its server has stopped.
func Stop(e *embed.Etcd) {
	e.Close()
	<-e.Server.StopNotify()
}

// Run is the body of a TestMain that gives the package's tests one etcd:
// it starts one in a temporary directory, sets *endpoint to its client
// endpoint, runs the tests, then stops etcd and removes the directory. It
// returns m.Run's exit code, or 1 (after printing why) when etcd did not
// start. A fuzz worker process (go test -fuzz starts several, each running
// TestMain) runs only the fuzz target and starts no etcd: several etcds
// starting at once on ports picked by listen-and-close could collide, and
// a worker that exits early fails the fuzz run.
func Run(m *testing.M, endpoint *string) int {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "vigil-etcdtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	e, ep, err := Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start embedded etcd:", err)
		return 1
	}
	defer Stop(e)
	*endpoint = ep
	return m.Run()
}

// LeakOptions are the goleak options for goroutines of etcd's embedded
// server and client libraries that outlive Close by design (process-wide
// helpers).
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		// lumberjack's mill routine of zap's file sinks, started once per process.
		goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"),
		// grpc's process-wide callback serializer used by the resolver.
		goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
	}
}

func freeURL() (*url.URL, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	return url.Parse("http://" + addr)
}

// NewClient returns a client of the etcd at endpoint, closed when the test
// ends. It logs nothing (its retries while a Proxy is down are expected)
// and its reconnects back off at most 500ms, so that a cut connection comes
// back quickly.
func NewClient(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

package alerting

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopEtcd()
	if code == 0 {
		// Idle keep-alive connections of the channels' HTTP clients end when
		// the test servers close; goleak's retries wait for that.
		if err := goleak.Find(
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			// Process-wide helpers of etcd's embedded server and client.
			goleak.IgnoreTopFunction("gopkg.in/natefinch/lumberjack%2ev2.(*Logger).millRun"),
			goleak.IgnoreAnyFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// childEtcdEnv passes the parent's etcd to a child process of a crash test.
const childEtcdEnv = "VIGIL_NOTIFIER_CHILD_ETCD"

// The package's embedded etcd, started by the first test that needs one
// (the channel tests and the fuzzers do not).
var (
	etcdOnce     sync.Once
	etcdServer   *embed.Etcd
	etcdDir      string
	etcdAddr     string
	etcdStartErr error
)

// etcdEndpoint returns the client address of the package's embedded etcd
// or, in a crash child, of its parent's.
func etcdEndpoint(t testing.TB) string {
	t.Helper()
	if ep := os.Getenv(childEtcdEnv); ep != "" {
		return ep
	}
	etcdOnce.Do(func() { etcdAddr, etcdStartErr = startEtcd() })
	if etcdStartErr != nil {
		t.Fatalf("embedded etcd: %v", etcdStartErr)
	}
	return etcdAddr
}

func startEtcd() (string, error) {
	dir, err := os.MkdirTemp("", "vigil-alerting-etcd-")
	if err != nil {
		return "", err
	}
	etcdDir = dir
	cfg := embed.NewConfig()
	cfg.Name = "alerting-test"
	cfg.Dir = dir
	cfg.LogLevel = "panic" // its shutdown logs "server closed" at error level
	cu, pu := freeURL(), freeURL()
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return "", err
	}
	etcdServer = e
	select {
	case <-e.Server.ReadyNotify():
		return e.Clients[0].Addr().String(), nil
	case err := <-e.Err():
		return "", err
	case <-time.After(60 * time.Second):
		return "", fmt.Errorf("not ready after 60s")
	}
}

func stopEtcd() {
	if etcdServer != nil {
		etcdServer.Close()
		<-etcdServer.Server.StopNotify()
	}
	if etcdDir != "" {
		os.RemoveAll(etcdDir)
	}
}

func freeURL() *url.URL {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return &url.URL{Scheme: "http", Host: l.Addr().String()}
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// testNotification is a firing group of two alerts of HighCPU, job=node.
func testNotification() *Notification {
	return &Notification{
		Receiver: "ops", Status: StatusFiring, GroupKey: `{}:{alertname="HighCPU", job="node"}`,
		ExternalURL:       "http://vigil.example:9009",
		GroupLabels:       KV{"alertname": "HighCPU", "job": "node"},
		CommonLabels:      KV{"alertname": "HighCPU", "job": "node", "severity": "page"},
		CommonAnnotations: KV{},
		Alerts: Alerts{
			{Status: StatusFiring, Labels: KV{"alertname": "HighCPU", "job": "node", "severity": "page", "instance": "a:9100"},
				Annotations: KV{"summary": "CPU above 90% on a:9100"}, StartsAt: t0,
				GeneratorURL: "http://vigil.example:9009/graph?g0.expr=up", Fingerprint: "1111111111111111"},
			{Status: StatusFiring, Labels: KV{"alertname": "HighCPU", "job": "node", "severity": "page", "instance": "b:9100"},
				Annotations: KV{"summary": "CPU above 90% on b:9100", "runbook": "https://runbooks.example/cpu"}, StartsAt: t0.Add(time.Minute),
				GeneratorURL: "http://vigil.example:9009/graph?g0.expr=up", Fingerprint: "2222222222222222"},
		},
	}
}

// resolvedNotification is testNotification after both alerts resolved.
func resolvedNotification() *Notification {
	n := testNotification()
	n.Status = StatusResolved
	for i := range n.Alerts {
		n.Alerts[i].Status = StatusResolved
		n.Alerts[i].EndsAt = t0.Add(10 * time.Minute)
	}
	return n
}

func asDeliveryError(t *testing.T, err error) *DeliveryError {
	t.Helper()
	if err == nil {
		t.Fatal("Send returned nil, want a DeliveryError")
	}
	de, ok := err.(*DeliveryError)
	if !ok {
		t.Fatalf("Send returned %T (%v), want *DeliveryError", err, err)
	}
	return de
}

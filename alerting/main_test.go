package alerting

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/goleak"

	"github.com/vigil-tsdb/vigil/internal/etcdtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopEtcd()
	if code == 0 {
		// Idle keep-alive connections of the channels' HTTP clients end when
		// the test servers close; goleak's retries wait for that.
		if err := goleak.Find(append(etcdtest.LeakOptions(),
			goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		)...); err != nil {
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
	e, endpoint, err := etcdtest.Start(dir)
	if err != nil {
		return "", err
	}
	etcdServer = e
	return endpoint, nil
}

func stopEtcd() {
	if etcdServer != nil {
		etcdtest.Stop(etcdServer)
	}
	if etcdDir != "" {
		os.RemoveAll(etcdDir)
	}
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

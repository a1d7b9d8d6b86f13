package alerting

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Idle keep-alive connections of the channels' HTTP clients end when
	// the test servers close; goleak's retries wait for that.
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"))
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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/sdk"
)

// alertingRig is the single node with a rule `up{job="e2e"} == 0` for 3 s
// evaluated every second, a notifier whose only receiver is a webhook,
// and a scrape target (registered through the SDK) that can go down.
type alertingRig struct {
	t        *testing.T
	args     []string
	grpcAddr string
	base     string
	stop     func() error
	down     atomic.Bool
	mu       sync.Mutex
	hooks    []hook
}

type hook struct {
	Status string
	Alerts []struct {
		Status string
		Labels map[string]string
	}
}

func newAlertingRig(t *testing.T, resendDelay time.Duration) *alertingRig {
	dir := t.TempDir()
	rig := &alertingRig{t: t}
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if rig.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "# TYPE e2e_value gauge\ne2e_value 1\n")
	}))
	t.Cleanup(exporter.Close)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var h hook
		if err := json.Unmarshal(b, &h); err != nil {
			t.Errorf("webhook body %q: %v", b, err)
		}
		rig.mu.Lock()
		rig.hooks = append(rig.hooks, h)
		rig.mu.Unlock()
	}))
	t.Cleanup(receiver.Close)

	cfgFile := filepath.Join(dir, "alerting.yml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s/hook
`, receiver.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	rig.grpcAddr = freeAddr(t)
	rig.args = []string{"-data.dir", filepath.Join(dir, "data"), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", rig.grpcAddr,
		"-self-scrape.interval", "0", "-alerting.config-file", cfgFile, "-ruler.resend-delay", resendDelay.String(), "-alerting.poll-interval", "200ms"}
	rig.base, rig.stop = startRun(t, rig.args...)
	t.Cleanup(func() {
		if err := rig.stop(); err != nil {
			t.Error(err)
		}
	})

	resp, err := http.Post(rig.base+"/api/v1/rules/config/brief", "application/yaml", strings.NewReader(`groups:
- name: availability
  interval: 1s
  rules:
  - alert: TargetDown
    expr: up{job="e2e"} == 0
    for: 3s
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} is down"
`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("rule upload: %s", resp.Status)
	}
	c, err := sdk.New(rig.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// The lease outlives a restart of the node (its etcd keeps it).
	reg, err := c.RegisterTarget(context.Background(), sdk.Target{Job: "e2e", Address: strings.TrimPrefix(exporter.URL, "http://"), Interval: time.Second}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close(context.Background()) })
	waitQuery(t, rig.base, `up{job="e2e"}`, "1")
	return rig
}

func (rig *alertingRig) received() []hook {
	rig.mu.Lock()
	defer rig.mu.Unlock()
	return append([]hook(nil), rig.hooks...)
}

func (rig *alertingRig) waitAlert(state string, within time.Duration) {
	rig.t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, a := range activeAlerts(rig.t, rig.base) {
			if a.Labels["alertname"] == "TargetDown" && a.State == state {
				return
			}
		}
		if time.Now().After(deadline) {
			rig.t.Fatalf("TargetDown not %s within %s: %+v", state, within, activeAlerts(rig.t, rig.base))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (rig *alertingRig) waitNotifications(n int, within time.Duration) {
	rig.t.Helper()
	waitFor(rig.t, within, fmt.Sprintf("%d notifications", n), func() error {
		if h := rig.received(); len(h) < n {
			return fmt.Errorf("%d notifications", len(h))
		}
		return nil
	})
}

// checkOneFiringOneResolved waits for anything late, then wants exactly
// one firing and then one resolved notification of TargetDown.
func (rig *alertingRig) checkOneFiringOneResolved() {
	rig.t.Helper()
	time.Sleep(3 * time.Second)
	h := rig.received()
	if len(h) != 2 || h[0].Status != "firing" || h[1].Status != "resolved" {
		rig.t.Fatalf("notifications %+v, want one firing, then one resolved", h)
	}
	for _, n := range h {
		if len(n.Alerts) != 1 || n.Alerts[0].Labels["alertname"] != "TargetDown" || n.Alerts[0].Labels["severity"] != "page" {
			rig.t.Errorf("notification %+v", n)
		}
	}
}

// TestAlertingEndToEnd is the brief's alert on the real single node, in
// real time with short durations: a scrape target registered through the
// SDK goes down, `up == 0` goes pending, fires after its `for` and is
// notified through the notifier's durable queue to a webhook; the target
// comes back, the alert resolves and one resolved notification follows.
// While firing, the ruler re-sends the alert every second: the receiver
// still gets exactly one firing and one resolved notification.
func TestAlertingEndToEnd(t *testing.T) {
	rig := newAlertingRig(t, time.Second)
	rig.down.Store(true)
	rig.waitAlert("pending", 20*time.Second)
	rig.waitAlert("firing", 20*time.Second)
	rig.waitNotifications(1, 20*time.Second)
	// Firing for 4 more seconds: the ruler re-sends every second, and the
	// notifier must not notify again.
	time.Sleep(4 * time.Second)
	rig.down.Store(false)
	rig.waitNotifications(2, 30*time.Second)
	rig.checkOneFiringOneResolved()

	// A silence through `vigil silences`: the next outage is not notified.
	var out bytes.Buffer
	if err := runSilences(context.Background(), []string{"add", "-url", rig.base, "-comment", "maintenance", "-created-by", "test", "-duration", "1h", `alertname="TargetDown"`}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out.String())
	out.Reset()
	if err := runSilences(context.Background(), []string{"ls", "-url", rig.base}, &out, io.Discard); err != nil || !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "active") {
		t.Fatalf("silences ls: %v\n%s", err, out.String())
	}
	rig.down.Store(true)
	rig.waitAlert("firing", 20*time.Second)
	time.Sleep(3 * time.Second) // group_wait 1 s, poll 200 ms: it would be here
	if h := rig.received(); len(h) != 2 {
		t.Fatalf("silenced outage notified: %+v", h)
	}
	for _, bad := range [][]string{
		{"add", "-url", rig.base, `alertname="X"`},                                   // no comment
		{"add", "-url", rig.base, "-comment", "c", "-created-by", "t", `alertname=`}, // bad matcher
		{"expire", "-url", rig.base, "no-such-silence"},                              // unknown
		{"add", "-url", "ftp://x", "-comment", "c", `a="b"`},                         // bad URL
	} {
		if err := runSilences(context.Background(), bad, io.Discard, io.Discard); err == nil {
			t.Errorf("vigil silences %q: no error", bad)
		}
	}
	if err := runSilences(context.Background(), []string{"expire", "-url", rig.base, id}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	rig.waitNotifications(3, 20*time.Second) // expired: the outage is notified now
	var groups struct {
		Status string
		Data   []json.RawMessage
	}
	getJSON(t, rig.base+"/api/v1/alerting/groups", &groups)
	if groups.Status != "success" {
		t.Errorf("/api/v1/alerting/groups: %+v", groups)
	}
}

// TestAlertingRestartWhileFiring restarts the node (ruler and notifier)
// while the alert fires and has been notified: the ruler restores it from
// ALERTS_FOR_STATE and sends it again, and the notifier, whose state is in
// etcd, does not notify it again. The resolution is notified once.
func TestAlertingRestartWhileFiring(t *testing.T) {
	// Resend every 2 s: an alert is valid for 4 resend delays (8 s), longer
	// than the restart, so the notifier does not take it for resolved in
	// between.
	rig := newAlertingRig(t, 2*time.Second)
	rig.down.Store(true)
	rig.waitAlert("firing", 30*time.Second)
	rig.waitNotifications(1, 20*time.Second)
	if err := rig.stop(); err != nil {
		t.Fatal(err)
	}
	rig.base, rig.stop = startRun(t, rig.args...)
	rig.waitAlert("firing", 30*time.Second)
	time.Sleep(3 * time.Second) // re-sent at least once since
	if h := rig.received(); len(h) != 1 {
		t.Fatalf("after the restart: %d notifications %+v, want still the one firing", len(h), h)
	}
	rig.down.Store(false)
	rig.waitNotifications(2, 30*time.Second)
	rig.checkOneFiringOneResolved()
}

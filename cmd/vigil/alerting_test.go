package main

import (
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

// TestAlertingEndToEnd is the brief's alert on the real single node, in
// real time with short durations: a scrape target registered through the
// SDK goes down, `up == 0` goes pending, fires after its `for` and is
// notified through the notifier's durable queue to a webhook; the target
// comes back, the alert resolves and one resolved notification follows.
// While firing, the ruler re-sends the alert every second: the receiver
// still gets exactly one firing and one resolved notification.
func TestAlertingEndToEnd(t *testing.T) {
	dir := t.TempDir()

	var down atomic.Bool
	exporter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "# TYPE e2e_value gauge\ne2e_value 1\n")
	}))
	defer exporter.Close()

	type hook struct {
		Status string
		Alerts []struct {
			Status string
			Labels map[string]string
		}
	}
	var mu sync.Mutex
	var hooks []hook
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var h hook
		if err := json.Unmarshal(b, &h); err != nil {
			t.Errorf("webhook body %q: %v", b, err)
		}
		mu.Lock()
		hooks = append(hooks, h)
		mu.Unlock()
	}))
	defer receiver.Close()
	received := func() []hook {
		mu.Lock()
		defer mu.Unlock()
		return append([]hook(nil), hooks...)
	}

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
	grpcAddr := freeAddr(t)
	base, stop := startRun(t, "-data.dir", filepath.Join(dir, "data"), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", grpcAddr,
		"-self-scrape.interval", "0", "-alerting.config-file", cfgFile, "-ruler.resend-delay", "1s", "-alerting.poll-interval", "200ms")
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()

	resp, err := http.Post(base+"/api/v1/rules/config/brief", "application/yaml", strings.NewReader(`groups:
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

	c, err := sdk.New(grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	reg, err := c.RegisterTarget(ctx, sdk.Target{Job: "e2e", Address: strings.TrimPrefix(exporter.URL, "http://"), Interval: time.Second}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close(ctx)
	waitQuery(t, base, `up{job="e2e"}`, "1")

	down.Store(true)
	waitAlert := func(state string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			for _, a := range activeAlerts(t, base) {
				if a.Labels["alertname"] == "TargetDown" && a.State == state {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("TargetDown not %s within %s: %+v", state, within, activeAlerts(t, base))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitAlert("pending", 20*time.Second)
	waitAlert("firing", 20*time.Second)
	waitFor(t, 20*time.Second, "the firing notification", func() error {
		if len(received()) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	// Firing for 4 more seconds: the ruler re-sends every second, and the
	// notifier must not notify again.
	time.Sleep(4 * time.Second)
	down.Store(false)
	waitFor(t, 30*time.Second, "the resolved notification", func() error {
		if h := received(); len(h) < 2 {
			return fmt.Errorf("%d notifications", len(h))
		}
		return nil
	})
	time.Sleep(3 * time.Second) // anything more would arrive now
	h := received()
	if len(h) != 2 || h[0].Status != "firing" || h[1].Status != "resolved" {
		t.Fatalf("notifications %+v, want one firing, then one resolved", h)
	}
	for _, n := range h {
		if len(n.Alerts) != 1 || n.Alerts[0].Labels["alertname"] != "TargetDown" || n.Alerts[0].Labels["severity"] != "page" {
			t.Errorf("notification %+v", n)
		}
	}
	var groups struct {
		Status string
		Data   []json.RawMessage
	}
	getJSON(t, base+"/api/v1/alerting/groups", &groups)
	if groups.Status != "success" {
		t.Errorf("/api/v1/alerting/groups: %+v", groups)
	}
}

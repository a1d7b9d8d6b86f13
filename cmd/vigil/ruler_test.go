package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rulerFile has a recording rule and an alert with a `for` of 20 s, both
// evaluated every second.
const rulerFile = `groups:
- name: ruler-test
  interval: 1s
  rules:
  - record: job:ruler_input:sum
    expr: sum by (job) (ruler_input)
  - alert: InputHigh
    expr: ruler_input > 10
    for: 20s
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} is at {{ $value }}"
`

type rulerAlert struct {
	Labels      map[string]string
	Annotations map[string]string
	State       string
	ActiveAt    time.Time
	Value       string
}

func activeAlerts(t *testing.T, base string) []rulerAlert {
	t.Helper()
	var out struct {
		Status string
		Data   struct{ Alerts []rulerAlert }
	}
	getJSON(t, base+"/api/v1/alerts", &out)
	if out.Status != "success" {
		t.Fatalf("/api/v1/alerts: %+v", out)
	}
	return out.Data.Alerts
}

// waitAlert polls /api/v1/alerts until InputHigh is in state.
func waitAlert(t *testing.T, base, state string, within time.Duration) rulerAlert {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, a := range activeAlerts(t, base) {
			if a.Labels["alertname"] == "InputHigh" && a.State == state {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("InputHigh not %s within %s: %+v", state, within, activeAlerts(t, base))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRuler runs rules uploaded through the rule store on the single
// node: the recording rule's output is written back and queryable, the
// alert goes pending then firing with its templated annotation, the
// ALERTS series is written, /api/v1/rules answers as Prometheus does, and
// a restart while the alert is pending keeps its `for` timer (restored
// from ALERTS_FOR_STATE, not restarted).
func TestRuler(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", "127.0.0.1:0", "-self-scrape.interval", "0"}
	base, stop := startRun(t, args...)
	var cur atomic.Value // the node's base URL, which changes on restart
	cur.Store(base)

	resp, err := http.Post(base+"/api/v1/rules/config/team-a", "application/yaml", strings.NewReader(rulerFile))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}

	// The input: two instances at 20, every 200 ms, until the test ends.
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 3000; i++ { // bounded: 10 minutes at most
			select {
			case <-quit:
				return
			case <-time.After(200 * time.Millisecond):
			}
			now := time.Now().UnixMilli()
			body := fmt.Sprintf("ruler_input{job=\"a\",instance=\"x\"} 20 %d\nruler_input{job=\"a\",instance=\"y\"} 20 %d\n", now, now)
			if resp, err := http.Post(cur.Load().(string)+"/api/v1/import/prometheus", "text/plain", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			} // failures during the restart are expected
		}
	})
	defer func() { close(quit); wg.Wait() }()

	waitQuery(t, base, `job:ruler_input:sum{job="a"}`, "40")
	pending := waitAlert(t, base, "pending", 20*time.Second)
	if pending.Labels["severity"] != "page" || pending.Labels["instance"] == "" || pending.Value != "2e+01" {
		t.Errorf("pending alert: %+v", pending)
	}

	// Restart while pending, 10 s into the 20 s `for`.
	time.Sleep(time.Until(pending.ActiveAt.Add(10 * time.Second)))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	base, stop = startRun(t, args...)
	cur.Store(base)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	restarted := time.Now()
	// The first evaluations after the restart see a new pending alert;
	// the restore (after the group's second evaluation) gives it back its
	// activeAt, moved by the time between the last ALERTS_FOR_STATE sample
	// and the restore (Prometheus' rule): the 10 s spent pending before
	// the restart count, so activeAt is about 10 - 3 s before the
	// restart. A reset would put it after the restart.
	var again rulerAlert
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		again = waitAlert(t, base, "pending", 15*time.Second)
		if again.ActiveAt.Before(restarted) || time.Now().After(deadline) {
			break
		}
	}
	if !again.ActiveAt.After(pending.ActiveAt) || !again.ActiveAt.Before(restarted.Add(-4*time.Second)) {
		t.Errorf("after the restart activeAt %s; before it %s, down %s, restarted %s: want restored (between the old activeAt and 4 s before the restart)",
			again.ActiveAt.Format(time.StampMilli), pending.ActiveAt.Format(time.StampMilli), down.Format(time.StampMilli),
			restarted.Format(time.StampMilli))
	}
	t.Logf("activeAt %s before the restart, %s after it (down %s, restarted %s)", pending.ActiveAt.Format(time.StampMilli),
		again.ActiveAt.Format(time.StampMilli), down.Format(time.StampMilli), restarted.Format(time.StampMilli))
	firing := waitAlert(t, base, "firing", 30*time.Second)
	if firing.Annotations["summary"] != firing.Labels["instance"]+" is at 20" {
		t.Errorf("annotation %q", firing.Annotations["summary"])
	}
	waitQuery(t, base, `count(ALERTS{alertname="InputHigh",alertstate="firing"})`, "2")

	var rulesOut struct {
		Status string
		Data   struct {
			Groups []struct {
				Name, File string
				Rules      []struct {
					Name, Type, Health string
					Alerts             []json.RawMessage
				}
			}
		}
	}
	getJSON(t, base+"/api/v1/rules", &rulesOut)
	if len(rulesOut.Data.Groups) != 1 || rulesOut.Data.Groups[0].File != "team-a" || len(rulesOut.Data.Groups[0].Rules) != 2 {
		t.Fatalf("/api/v1/rules: %+v", rulesOut)
	}
	for _, r := range rulesOut.Data.Groups[0].Rules {
		if r.Health != "ok" {
			t.Errorf("rule %s health %s", r.Name, r.Health)
		}
	}
	if rr := rulesOut.Data.Groups[0].Rules; rr[0].Type != "recording" || rr[1].Type != "alerting" || len(rr[1].Alerts) != 2 {
		t.Errorf("rules: %+v", rr)
	}
}

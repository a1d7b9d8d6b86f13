package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-tsdb/vigil/alerting"
	"github.com/vigil-tsdb/vigil/compactor"
	"github.com/vigil-tsdb/vigil/distributor"
	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/rules"
)

// fakeClock is the notifier's clock in TestAlertingBriefFakeClock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time  { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

// briefRule is the brief's example, as an operator would upload it.
const briefRule = `groups:
- name: availability
  interval: 15s
  rules:
  - alert: InstanceDown
    expr: up == 0
    for: 5m
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} of {{ $labels.job }} is down"
`

// TestAlertingBriefFakeClock is issue 7's first acceptance test: the
// brief's rule (`up == 0` for 5m, severity page) over a real scrape target
// that goes down and comes back, on a simulated clock that moves 15 s per
// step through 13 minutes. The path is the real one: the target answered
// over HTTP, `up` written through the distributor into an ingester's
// Badger storage, the rule (stored in etcd, evaluated by Prometheus' rule
// manager through the querier and the PromQL engine), the notifier with
// its state and queue in etcd, and three channels (webhook, DingTalk,
// WeCom) to endpoints that check their formats. Each channel must get
// exactly one firing and one resolved notification, the alert must be
// pending for 5 minutes first, and the ALERTS series must tell the same
// story.
func TestAlertingBriefFakeClock(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Storage, querier and a distributor in front of the ingester.
	st := newTierStack(t, filepath.Join(dir, "tsdb"), compactor.DefaultConfig(), true)
	defer st.cleanup()
	dist, err := distributor.New(distributor.DefaultConfig(), distributor.Single{Target: distributor.Target{Name: "local", Addr: "local", Healthy: true}},
		singleClient{st.clients[0]}, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}

	// etcd for the rule store and the notifier.
	ecfg := defaultEtcdConfig()
	ecfg.ListenClientURLs, ecfg.ListenPeerURLs = "http://127.0.0.1:0", "http://127.0.0.1:0"
	etcd, err := startEtcd(ctx, ecfg, dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + etcd.Clients[0].Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	// The scrape target and the channels' endpoints.
	var down atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "# TYPE node_load1 gauge\nnode_load1 0.5\n")
	}))
	defer target.Close()
	instance := strings.TrimPrefix(target.URL, "http://")
	var mu sync.Mutex
	got := map[string][]string{} // channel → statuses in order
	endpoint := func(name string, status func(body map[string]any) string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			var body map[string]any
			if err := json.Unmarshal(b, &body); err != nil {
				t.Errorf("%s: body %q: %v", name, b, err)
			}
			mu.Lock()
			got[name] = append(got[name], status(body))
			mu.Unlock()
			fmt.Fprint(w, `{"errcode":0,"errmsg":"ok"}`)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	webhook := endpoint("webhook", func(b map[string]any) string { return fmt.Sprint(b["status"]) })
	// DingTalk and WeCom carry the status in their markdown text.
	markdownStatus := func(b map[string]any) string {
		md, _ := b["markdown"].(map[string]any)
		text := fmt.Sprint(md["text"], md["content"], md["title"])
		switch {
		case strings.Contains(text, "RESOLVED"):
			return "resolved"
		case strings.Contains(text, "FIRING"):
			return "firing"
		}
		return "unknown: " + text
	}
	dingtalk := endpoint("dingtalk", markdownStatus)
	wecom := endpoint("wecom", markdownStatus)
	routing, err := alerting.ParseRoutingConfig([]byte(fmt.Sprintf(`route:
  receiver: oncall
  group_by: [alertname, job]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: oncall
    webhook_configs:
      - url: %s/hook
    dingtalk_configs:
      - webhook_url: %s/robot/send?access_token=tok
        secret: SECtest
    wecom_configs:
      - webhook_url: %s/cgi-bin/webhook/send?key=k
`, webhook.URL, dingtalk.URL, wecom.URL)))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{}
	start := time.Now().Add(-40 * time.Minute).Truncate(15 * time.Second) // inside the ingester's out-of-order window
	clock.Set(start)
	ncfg := alerting.DefaultNotifierConfig()
	notifier, err := alerting.New(ncfg, routing, cli, clock, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}

	// The rule, through the store.
	store, err := rules.New(rules.DefaultConfig(), cli, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutNamespace(ctx, "brief", []byte(briefRule)); err != nil {
		t.Fatal(err)
	}
	snap, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rcfg := rules.DefaultRulerConfig()
	rcfg.ExternalURL = "http://vigil.test"
	ruler, err := rules.NewRuler(rcfg, st.qbl, st.engine, dist, notifyFunc(notifier, rcfg.ExternalURL), logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ruler.Evaluator(snap)
	if err != nil {
		t.Fatal(err)
	}

	// 13 minutes in 15 s steps: up for 1 minute, down for 7, up again.
	var pendingAt, firingAt, resolvedAt time.Time
	for step := 0; step <= 52; step++ {
		now := start.Add(time.Duration(step) * 15 * time.Second)
		down.Store(now.Sub(start) >= time.Minute && now.Sub(start) < 8*time.Minute)
		up := 0.0
		if resp, err := http.Get(target.URL + "/metrics"); err == nil {
			if resp.StatusCode == http.StatusOK {
				up = 1
			}
			resp.Body.Close()
		}
		res, err := dist.Push(ctx, []model.Series{{
			Labels:  labels.FromStrings("__name__", "up", "job", "node", "instance", instance),
			Samples: []model.Sample{{T: now.UnixMilli(), V: up}},
		}})
		if err != nil || res.Stored != 1 {
			t.Fatalf("step %d: push up=%g: %+v, %v", step, up, res, err)
		}
		clock.Set(now)
		ev.EvalAt(ctx, now)
		state := "inactive"
		for _, g := range ev.Groups() {
			for _, r := range g.AlertingRules() {
				if h := r.Health(); h != "ok" {
					t.Fatalf("step %d: rule health %s: %v", step, h, r.LastError())
				}
				state = r.State().String()
			}
		}
		switch {
		case state == "pending" && pendingAt.IsZero():
			pendingAt = now
		case state == "firing" && firingAt.IsZero():
			firingAt = now
		case state == "inactive" && !firingAt.IsZero() && resolvedAt.IsZero():
			resolvedAt = now
		}
		if err := notifier.Step(ctx); err != nil {
			t.Fatalf("step %d: notifier: %v", step, err)
		}
	}
	t.Logf("down at +1m, up at +8m; pending at %s, firing at %s, resolved at %s (from the start)",
		pendingAt.Sub(start), firingAt.Sub(start), resolvedAt.Sub(start))
	if pendingAt.Sub(start) != time.Minute || firingAt.Sub(pendingAt) != 5*time.Minute || resolvedAt.Sub(start) != 8*time.Minute {
		t.Errorf("pending at +%s, firing at +%s, resolved at +%s; want +1m, +6m, +8m", pendingAt.Sub(start), firingAt.Sub(start), resolvedAt.Sub(start))
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ch := range []string{"webhook", "dingtalk", "wecom"} {
		if s := strings.Join(got[ch], ","); s != "firing,resolved" {
			t.Errorf("%s got %q, want exactly one firing and one resolved notification", ch, s)
		}
	}
	// The ALERTS series written back at the evaluations: pending from +1m,
	// firing from +6m, none after +8m.
	for _, tc := range []struct {
		at    time.Duration
		state string
	}{{2 * time.Minute, "pending"}, {7 * time.Minute, "firing"}} {
		q, err := st.engine.NewInstantQuery(ctx, st.qbl, nil, `ALERTS{alertname="InstanceDown",severity="page"}`, start.Add(tc.at))
		if err != nil {
			t.Fatal(err)
		}
		v, err := q.Exec(ctx).Vector()
		if err != nil || len(v) != 1 || v[0].Metric.Get("alertstate") != tc.state {
			t.Errorf("ALERTS at +%s: %v, %v; want one %s", tc.at, v, err, tc.state)
		}
		q.Close()
	}
}

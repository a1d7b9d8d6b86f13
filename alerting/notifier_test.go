package alerting

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// routingYAML: pages go to pager (webhook and DingTalk), the rest to ops
// (webhook); grouped by alertname.
func routingYAML(pagerURL, dingURL, opsURL string) string {
	return fmt.Sprintf(`
route:
  receiver: ops
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['severity="page"']
      receiver: pager
receivers:
  - name: pager
    webhook_configs: [{url: %q}]
    dingtalk_configs: [{access_token: ding-token, api_url: %q}]
  - name: ops
    webhook_configs: [{url: %q}]
`, pagerURL, dingURL, opsURL)
}

// TestNotifierGroupingAndResolve plays 4h20m of a ruler evaluating every
// minute on a fake clock: two paging alerts fire, then resolve at 1h; two
// warnings fire at 0 and 10m and stay. Each pager channel gets exactly one
// firing and one resolved notification; ops gets its first after
// group_wait, the second alert at the next group_interval tick, and a
// repeat after repeat_interval.
func TestNotifierGroupingAndResolve(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	pager := newEndpoint(t, clock, "")
	ding := newEndpoint(t, clock, `{"errcode":0,"errmsg":"ok"}`)
	ops := newEndpoint(t, clock, "")
	n := newTestNotifier(t, testNotifierConfig(testPrefix(t)), routingYAML(pager.srv.URL, ding.srv.URL, ops.srv.URL+"/ops"), clock, nil)

	for i := 0; i <= 4*120+40; i++ { // 30s steps up to 4h20m
		now := clock.Now()
		el := now.Sub(t0)
		if i%2 == 0 { // the ruler evaluates every minute
			var as []Alert
			for _, inst := range []string{"a", "b"} {
				switch {
				case el < time.Hour:
					as = append(as, firingAlert(now, t0, "alertname", "Down", "instance", inst, "severity", "page"))
				case el < time.Hour+15*time.Minute: // resolved alerts are resent for 15m
					as = append(as, resolvedAlert(t0, t0.Add(time.Hour), "alertname", "Down", "instance", inst, "severity", "page"))
				}
			}
			as = append(as, firingAlert(now, t0, "alertname", "Disk", "instance", "x"))
			if el >= 10*time.Minute {
				as = append(as, firingAlert(now, t0.Add(10*time.Minute), "alertname", "Disk", "instance", "y"))
			}
			n.Ingest(as)
		}
		step(t, ctx, n, clock, 0)
		clock.Advance(30 * time.Second)
	}

	check := func(name string, r *endpoint, want []string) {
		t.Helper()
		var got []string
		for _, rc := range r.received() {
			s := rc.At.Sub(t0).String()
			if b := rc.Body; b["msgtype"] != nil {
				s += " dingtalk"
			} else {
				s += " " + webhookSummary(b)
			}
			got = append(got, s)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s got %q, want %q", name, got, want)
		}
	}
	check("pager webhook", pager, []string{"30s firing:2", "1h0m30s resolved:2"})
	check("pager dingtalk", ding, []string{"30s dingtalk", "1h0m30s dingtalk"})
	check("ops webhook", ops, []string{"30s firing:1", "10m30s firing:2", "4h10m30s firing:2"})

	// The resolved notification carries the alerts' start and end.
	if got := pager.received(); len(got) == 2 {
		a := got[1].Body["alerts"].([]any)[0].(map[string]any)
		if a["startsAt"] != t0.Format(time.RFC3339) || a["endsAt"] != t0.Add(time.Hour).Format(time.RFC3339) || a["status"] != "resolved" {
			t.Errorf("resolved alert = %v", a)
		}
		if gk, _ := got[1].Body["groupKey"].(string); !strings.Contains(gk, `alertname="Down"`) {
			t.Errorf("groupKey %q", gk)
		}
	}
	// The pager group is gone, its state too; the ops group remains.
	if gs := n.Groups(); len(gs) != 1 || gs[0].Receiver != "ops" || len(gs[0].Notified) != 2 {
		t.Errorf("groups at the end: %+v", gs)
	}
	if c := queueLen(t, n.client, n.cfg.Prefix+"groups/"); c != 1 {
		t.Errorf("%d group states in etcd, want 1", c)
	}
	if c := queueLen(t, n.client, n.cfg.Prefix+"queue/"); c != 0 {
		t.Errorf("%d queue entries left", c)
	}
}

// TestNotifierRestartNoResend: a second notifier on the same etcd (a
// restart) gets the same alerts again and sends nothing more until they
// resolve; then exactly one resolved notification.
func TestNotifierRestartNoResend(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	hook := newEndpoint(t, clock, "")
	yml := fmt.Sprintf("route: {receiver: r, group_by: [alertname], group_wait: 30s, group_interval: 1m}\nreceivers: [{name: r, webhook_configs: [{url: %q}]}]\n", hook.srv.URL)
	cfg := testNotifierConfig(testPrefix(t))
	first := newTestNotifier(t, cfg, yml, clock, nil)
	first.Ingest([]Alert{firingAlert(t0, t0, "alertname", "Up", "job", "a")})
	step(t, ctx, first, clock, 30*time.Second)
	if got := len(hook.received()); got != 1 {
		t.Fatalf("%d notifications before the restart, want 1", got)
	}

	second := newTestNotifier(t, cfg, yml, clock, nil)
	for range 20 { // 20 minutes of evaluations on the new notifier
		second.Ingest([]Alert{firingAlert(clock.Now(), t0, "alertname", "Up", "job", "a")})
		step(t, ctx, second, clock, time.Minute)
	}
	if got := len(hook.received()); got != 1 {
		t.Fatalf("%d notifications after the restart, want still 1", got)
	}
	second.Ingest([]Alert{resolvedAlert(t0, clock.Now(), "alertname", "Up", "job", "a")})
	for range 5 {
		step(t, ctx, second, clock, time.Minute)
	}
	got := hook.received()
	if len(got) != 2 || webhookSummary(got[1].Body) != "resolved:1" {
		t.Fatalf("after resolving: %d notifications %v, want firing then resolved", len(got), got)
	}
	if c := queueLen(t, second.client, cfg.Prefix+"groups/"); c != 0 {
		t.Errorf("%d group states left after the resolution", c)
	}
}

// TestNotifierRetryFor5Minutes: a webhook answering 503 for 5 minutes
// (fake clock) gets the notification once it answers; every failure is
// counted. Then a 429 with Retry-After: 120 delays the next attempt by at
// least 2 minutes, and a 400 dead-letters at once; a dead letter retried
// through the API is delivered.
func TestNotifierRetryFor5Minutes(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	hook := newEndpoint(t, clock, "")
	hook.setStatus(func(int) (int, string) {
		if clock.Now().Before(t0.Add(5 * time.Minute)) {
			return 503, "down for maintenance"
		}
		return 200, ""
	})
	yml := fmt.Sprintf("route: {receiver: r, group_by: [alertname], group_wait: 0s, group_interval: 1h}\nreceivers: [{name: r, webhook_configs: [{url: %q}]}]\n", hook.srv.URL)
	reg := prometheus.NewRegistry()
	n := newTestNotifier(t, testNotifierConfig(testPrefix(t)), yml, clock, reg)
	n.Ingest([]Alert{firingAlert(t0, t0, "alertname", "A")})
	for i := 0; i < 15*60 && len(hook.received()) == 0; i++ {
		step(t, ctx, n, clock, time.Second)
	}
	got := hook.received()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	at := got[0].At.Sub(t0)
	failures := testutil.ToFloat64(n.metrics.failures.WithLabelValues("r", "webhook"))
	t.Logf("delivered after %s, %v failed attempts", at, failures)
	// Attempts at about 0, 1, 3, 7, 15, 31, 63, 127, 255 s (less jitter),
	// then the first after 300 s.
	if at < 5*time.Minute || at > 10*time.Minute || failures < 7 || failures > 12 {
		t.Errorf("delivered after %s with %v failures; want 5-10 min, 7-12 failures", at, failures)
	}
	if v := testutil.ToFloat64(n.metrics.notifications.WithLabelValues("r", "webhook", "delivered")); v != 1 {
		t.Errorf("delivered counter %v", v)
	}
	if v := testutil.ToFloat64(n.metrics.queueLength); v != 1 { // measured at the scan before the delivery
		t.Logf("queue length gauge %v", v)
	}

	// Retry-After.
	hook.setStatus(func(k int) (int, string) { return 429, "slow down" })
	n.Ingest([]Alert{firingAlert(clock.Now(), clock.Now(), "alertname", "B")})
	step(t, ctx, n, clock, 0)
	entries, err := n.readEntries(ctx, n.cfg.Prefix+"queue/")
	if err != nil || len(entries) != 1 {
		t.Fatalf("queue after a 429: %v %v", entries, err)
	}
	if d := entries[0].NextAttempt.Sub(clock.Now()); d < 120*time.Second || entries[0].Attempts != 1 || !strings.Contains(entries[0].LastError, "429") {
		t.Errorf("after a 429 with Retry-After 120: next attempt in %s, attempts %d, error %q", d, entries[0].Attempts, entries[0].LastError)
	}

	// Not retryable: dead at once.
	hook.setStatus(func(int) (int, string) { return 400, "bad payload" })
	step(t, ctx, n, clock, 121*time.Second)
	if v := testutil.ToFloat64(n.metrics.deadLetters.WithLabelValues("r", "webhook")); v != 1 {
		t.Errorf("dead letters counter %v, want 1", v)
	}
	dead, err := n.DeadLetters(ctx)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].DeadReason, "not retryable") || dead[0].Attempts != 2 {
		t.Fatalf("dead letters: %+v %v", dead, err)
	}
	if c := queueLen(t, n.client, n.cfg.Prefix+"queue/"); c != 0 {
		t.Errorf("%d entries left in the queue", c)
	}
	hook.setStatus(func(int) (int, string) { return 200, "" })
	if err := n.RetryDead(ctx, dead[0].ID); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, n, clock, 0)
	if got := hook.received(); len(got) != 2 || got[1].Body["groupLabels"].(map[string]any)["alertname"] != "B" {
		t.Errorf("after retrying the dead letter: %v", got)
	}
}

// TestNotifierSilenceAndInhibition: a page inhibits the warnings of its
// cluster only; a silence mutes what it matches only, and once expired
// the alert is notified at the next group_interval.
func TestNotifierSilenceAndInhibition(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	hook := newEndpoint(t, clock, "")
	yml := fmt.Sprintf(`
route: {receiver: r, group_by: [alertname, cluster], group_wait: 30s, group_interval: 5m}
inhibit_rules:
  - source_matchers: ['severity="page"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
receivers: [{name: r, webhook_configs: [{url: %q}]}]
`, hook.srv.URL)
	n := newTestNotifier(t, testNotifierConfig(testPrefix(t)), yml, clock, nil)
	if _, err := n.CreateSilence(ctx, Silence{Matchers: Matchers{`alertname=~"Fan|Noise"`}, EndsAt: t0.Add(20 * time.Minute), CreatedBy: "test", Comment: "known"}); err != nil {
		t.Fatal(err)
	}
	alerts := func() []Alert {
		now := clock.Now()
		return []Alert{
			firingAlert(now, t0, "alertname", "DBDown", "cluster", "c1", "severity", "page"),
			firingAlert(now, t0, "alertname", "DBSlow", "cluster", "c1", "severity", "warning"),
			firingAlert(now, t0, "alertname", "DBSlow", "cluster", "c2", "severity", "warning"),
			firingAlert(now, t0, "alertname", "Fan", "severity", "warning"),
		}
	}
	groupsAt := func() []string {
		var out []string
		for _, r := range hook.received() {
			gl := r.Body["groupLabels"].(map[string]any)
			out = append(out, fmt.Sprintf("%s %v/%v", r.At.Sub(t0), gl["alertname"], gl["cluster"]))
		}
		slices.Sort(out)
		return out
	}
	for range 60 { // 30 minutes
		n.Ingest(alerts())
		step(t, ctx, n, clock, 30*time.Second)
	}
	// The silence ended at 20m; the Fan group's ticks are at 30s + k·5m.
	want := []string{"20m30s Fan/<nil>", "30s DBDown/c1", "30s DBSlow/c2"}
	if got := groupsAt(); !slices.Equal(got, want) {
		t.Errorf("notified groups %q, want %q", got, want)
	}
}

func TestRoutingConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yml string
		want      []string
	}{
		{"unknown field", "route: {receiver: a, group_wiat: 1s}\nreceivers: [{name: a}]\n", []string{"line 1", "group_wiat"}},
		{"missing receiver", "route:\n  receiver: a\n  routes:\n    - receiver: nope\nreceivers: [{name: a}]\n", []string{"line 4: route.routes[0].receiver", `"nope" is not defined`}},
		{"bad matcher", "route:\n  receiver: a\n  routes:\n    - matchers: ['severity=page']\nreceivers: [{name: a}]\n", []string{"line 4: route.routes[0].matchers", "severity=page"}},
		{"root matchers", "route: {receiver: a, matchers: ['a=\"b\"']}\nreceivers: [{name: a}]\n", []string{"root route"}},
		{"no route", "receivers: [{name: a}]\n", []string{"missing route"}},
		{"bad inhibit", "route: {receiver: a}\ninhibit_rules:\n  - target_matchers: ['a=~\"(\"']\n    equal: ['1x']\nreceivers: [{name: a}]\n",
			[]string{"missing source_matchers", "line 3: inhibit_rules[0].target_matchers", "line 4: inhibit_rules[0].equal[0]"}},
		{"bad interval", "route: {receiver: a, group_interval: 0s}\nreceivers: [{name: a}]\n", []string{"group_interval must be positive"}},
		{"receiver error kept", "route: {receiver: a}\nreceivers: [{name: a, webhook_configs: [{url: 'ftp://x'}]}]\n", []string{"scheme must be http"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRoutingConfig([]byte(tc.yml))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRoutingMatch(t *testing.T) {
	rc, err := LoadRoutingFile("testdata/notifier.yml")
	if err != nil {
		t.Fatal(err)
	}
	root, _, err := rc.compile()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels KV
		want   []string // receiver:group key labels
	}{
		{"default", KV{"alertname": "X", "job": "j"}, []string{"ops:{alertname=\"X\", job=\"j\"}"}},
		{"page", KV{"alertname": "X", "severity": "page", "team": "db"}, []string{"pager:{alertname=\"X\"}", "db:{alertname=\"X\", team=\"db\"}"}},
		{"page not db", KV{"alertname": "X", "severity": "page", "team": "web"}, []string{"pager:{alertname=\"X\"}"}},
		{"regex and not", KV{"alertname": "X", "team": "db", "env": "prod"}, []string{"db:{alertname=\"X\", team=\"db\"}"}},
		{"not staging", KV{"alertname": "X", "team": "db", "env": "staging"}, []string{"ops:{alertname=\"X\"}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range root.match(tc.labels) {
				k := groupKey(r, r.groupLabels(tc.labels))
				got = append(got, r.opts.receiver+":"+k[strings.Index(k, "}:")+2:])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestNotifierHTTP drives the API: silences created, listed and expired,
// mistakes answered with what is wrong, groups and dead letters shown
// without the secrets of the endpoint.
func TestNotifierHTTP(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	hook := newEndpoint(t, clock, "")
	hook.setStatus(func(int) (int, string) { return 404, "no such hook" })
	yml := fmt.Sprintf("route: {receiver: r, group_by: [alertname], group_wait: 0s}\nreceivers: [{name: r, webhook_configs: [{url: %q}]}]\n", hook.srv.URL+"/hook?token=hook-secret-9")
	n := newTestNotifier(t, testNotifierConfig(testPrefix(t)), yml, clock, nil)
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	end := t0.Add(time.Hour).Format(time.RFC3339)
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"no matchers", "POST", "/api/v1/alerting/silences", `{"endsAt":"` + end + `","createdBy":"me"}`, 400, "no matchers"},
		{"bad matcher", "POST", "/api/v1/alerting/silences", `{"matchers":["a=b"],"endsAt":"` + end + `","createdBy":"me"}`, 400, `matcher \"a=b\"`},
		{"matches all", "POST", "/api/v1/alerting/silences", `{"matchers":["a=~\".*\""],"endsAt":"` + end + `","createdBy":"me"}`, 400, "every alert"},
		{"past", "POST", "/api/v1/alerting/silences", `{"matchers":["a=\"b\""],"startsAt":"2020-01-01T00:00:00Z","endsAt":"2020-01-02T00:00:00Z","createdBy":"me"}`, 400, "in the past"},
		{"unknown field", "POST", "/api/v1/alerting/silences", `{"matcher":["a=\"b\""]}`, 400, "unknown field"},
		{"no creator", "POST", "/api/v1/alerting/silences", `{"matchers":["a=\"b\""],"endsAt":"` + end + `"}`, 400, "createdBy"},
		{"expire unknown", "DELETE", "/api/v1/alerting/silences/nope", "", 404, `silence \"nope\": not found`},
		{"retry unknown", "POST", "/api/v1/alerting/dead/nope/retry", "", 404, "not found"},
	} {
		if code, body := do(tc.method, tc.path, tc.body); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d and %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	code, body := do("POST", "/api/v1/alerting/silences", `{"matchers":["alertname=\"Fan\""],"endsAt":"`+end+`","createdBy":"me","comment":"c"}`)
	var created struct{ Data struct{ ID string } }
	if err := json.Unmarshal([]byte(body), &created); code != 200 || err != nil || created.Data.ID == "" {
		t.Fatalf("create silence: %d %s", code, body)
	}
	if code, body := do("GET", "/api/v1/alerting/silences", ""); code != 200 || !strings.Contains(body, `"state":"active"`) || !strings.Contains(body, created.Data.ID) {
		t.Errorf("list silences: %d %s", code, body)
	}
	if code, body := do("DELETE", "/api/v1/alerting/silences/"+created.Data.ID, ""); code != 200 {
		t.Errorf("expire: %d %s", code, body)
	}
	if _, body := do("GET", "/api/v1/alerting/silences", ""); !strings.Contains(body, `"state":"expired"`) {
		t.Errorf("after expiring: %s", body)
	}

	n.Ingest([]Alert{firingAlert(t0, t0, "alertname", "Disk")})
	if _, body := do("GET", "/api/v1/alerting/groups", ""); !strings.Contains(body, `"alertname":"Disk"`) || !strings.Contains(body, `"receiver":"r"`) {
		t.Errorf("groups: %s", body)
	}
	step(t, ctx, n, clock, 0) // 404: not retryable, dead at once
	code, body = do("GET", "/api/v1/alerting/dead", "")
	if code != 200 || !strings.Contains(body, "status 404") || !strings.Contains(body, `"dead_reason":"not retryable`) || strings.Contains(body, "hook-secret-9") {
		t.Errorf("dead letters: %d %s", code, body)
	}
	var dead struct{ Data []QueueEntry }
	if err := json.Unmarshal([]byte(body), &dead); err != nil || len(dead.Data) != 1 {
		t.Fatalf("dead letters: %v %s", err, body)
	}
	hook.setStatus(func(int) (int, string) { return 200, "" })
	if code, body := do("POST", "/api/v1/alerting/dead/"+dead.Data[0].ID+"/retry", ""); code != 200 {
		t.Fatalf("retry: %d %s", code, body)
	}
	step(t, ctx, n, clock, 0)
	if got := hook.received(); len(got) != 1 {
		t.Errorf("%d deliveries after the retry, want 1", len(got))
	}
}

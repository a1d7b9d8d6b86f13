package alerting

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestNotifierGiveUp: an endpoint that always answers 503 is tried
// max-attempts times and then dead-lettered; an entry whose channel left
// the configuration (a restart with fewer channels) is dead-lettered with
// that reason instead of sent elsewhere.
func TestNotifierGiveUp(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	hook := newEndpoint(t, clock, "")
	hook.setStatus(func(int) (int, string) { return 503, "busy" })
	yml := fmt.Sprintf("route: {receiver: r, group_by: [alertname], group_wait: 0s}\nreceivers: [{name: r, webhook_configs: [{url: %q}, {url: %q}]}]\n", hook.srv.URL+"/a", hook.srv.URL+"/b")
	cfg := testNotifierConfig(testPrefix(t))
	cfg.MaxAttempts = 3
	reg := prometheus.NewRegistry()
	n := newTestNotifier(t, cfg, yml, clock, reg)
	n.Ingest([]Alert{firingAlert(t0, t0, "alertname", "A")})
	step(t, ctx, n, clock, 0)
	// Replace the notifier by one whose receiver kept the first webhook only.
	cfg.MaxAttempts = 3
	n2 := newTestNotifier(t, cfg, fmt.Sprintf("route: {receiver: r, group_by: [alertname], group_wait: 0s}\nreceivers: [{name: r, webhook_configs: [{url: %q}]}]\n", hook.srv.URL+"/a"), clock, nil)
	for range 20 {
		step(t, ctx, n2, clock, 10*time.Second)
	}
	dead, err := n2.DeadLetters(ctx)
	if err != nil || len(dead) != 2 {
		t.Fatalf("dead letters %v %v, want 2", dead, err)
	}
	reasons := dead[0].DeadReason + " | " + dead[1].DeadReason
	if !strings.Contains(reasons, "3 attempts, the last: webhook") || !strings.Contains(reasons, `receiver "r" has no webhook channel at index 1 any more`) {
		t.Errorf("dead reasons: %s", reasons)
	}
	if v := testutil.ToFloat64(n2.metrics.failures.WithLabelValues("r", "webhook")); v != 2 { // the first attempt was n's
		t.Errorf("failures counted by the second notifier: %v, want 2", v)
	}
	if c := queueLen(t, n2.client, cfg.Prefix+"queue/"); c != 0 {
		t.Errorf("%d entries left in the queue", c)
	}
}

// TestNotifierTruncatesLargeGroups: a group whose notification would not
// fit in one etcd transaction is enqueued with its first alerts and the
// rest counted in truncatedAlerts.
func TestNotifierTruncatesLargeGroups(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	hook := newEndpoint(t, clock, "")
	yml := fmt.Sprintf("route: {receiver: r, group_by: [alertname], group_wait: 0s}\nreceivers: [{name: r, webhook_configs: [{url: %q}]}]\n", hook.srv.URL)
	n := newTestNotifier(t, testNotifierConfig(testPrefix(t)), yml, clock, nil)
	var as []Alert
	for i := range 2000 {
		a := firingAlert(t0, t0, "alertname", "Big", "instance", fmt.Sprint(i))
		a.Annotations["description"] = strings.Repeat("x", 1000)
		as = append(as, a)
	}
	n.Ingest(as)
	step(t, ctx, n, clock, 0)
	got := hook.received()
	if len(got) != 1 {
		t.Fatalf("%d notifications, want 1", len(got))
	}
	alerts := len(got[0].Body["alerts"].([]any))
	trunc := int(got[0].Body["truncatedAlerts"].(float64))
	t.Logf("sent %d alerts, %d truncated", alerts, trunc)
	if alerts+trunc != 2000 || trunc == 0 || alerts < 300 {
		t.Errorf("sent %d alerts with %d truncated, want 2000 in all and at least 300 sent", alerts, trunc)
	}
	// Nothing new: no second notification.
	clock.Advance(10 * time.Minute)
	for i := range as {
		as[i].EndsAt = clock.Now().Add(4 * time.Minute)
	}
	n.Ingest(as)
	step(t, ctx, n, clock, 0)
	if len(hook.received()) != 1 {
		t.Errorf("notified again")
	}
}

// TestSilenceRetention: an expired silence is listed until the retention
// passed, then pruned from etcd.
func TestSilenceRetention(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	cfg := testNotifierConfig(testPrefix(t))
	cfg.SilenceRetention = time.Hour
	n := newTestNotifier(t, cfg, "route: {receiver: r}\nreceivers: [{name: r}]\n", clock, nil)
	keep, err := n.CreateSilence(ctx, Silence{Matchers: Matchers{`job="a"`}, EndsAt: t0.Add(3 * time.Hour), CreatedBy: "me"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := n.CreateSilence(ctx, Silence{Matchers: Matchers{`job="b"`}, EndsAt: t0.Add(3 * time.Hour), CreatedBy: "me"})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := n.ExpireSilence(ctx, gone); err != nil {
		t.Fatal(err)
	}
	step(t, ctx, n, clock, 30*time.Minute)
	if l, _ := n.ListSilences(ctx); len(l) != 2 || l[1].ID != gone || l[1].State(clock.Now()) != "expired" {
		t.Fatalf("before the retention: %+v", l)
	}
	step(t, ctx, n, clock, 31*time.Minute)
	if l, _ := n.ListSilences(ctx); len(l) != 1 || l[0].ID != keep {
		t.Fatalf("after the retention: %+v", l)
	}
	if c := queueLen(t, n.client, cfg.Prefix+"silences/"); c != 1 {
		t.Errorf("%d silences in etcd, want 1", c)
	}
}

// TestNotifierEtcdDown: while etcd is unreachable a due group cannot be
// written, so nothing is sent and the failure is counted; Ingest goes on.
// When etcd is back the notification is made and delivered once.
func TestNotifierEtcdDown(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	hook := newEndpoint(t, clock, "")
	proxy := newTCPProxy(t, etcdEndpoint(t))
	cfg := testNotifierConfig(testPrefix(t))
	cfg.RequestTimeout = 300 * time.Millisecond
	rc, err := ParseRoutingConfig(fmt.Appendf(nil, "route: {receiver: r, group_by: [alertname], group_wait: 30s}\nreceivers: [{name: r, webhook_configs: [{url: %q}]}]\n", hook.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, rc, newProxiedClient(t, proxy), clock, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	step(t, ctx, n, clock, 0) // reads the (empty) states

	proxy.setDown(true)
	n.Ingest([]Alert{firingAlert(t0, t0, "alertname", "A")})
	clock.Advance(30 * time.Second)
	for range 3 {
		if err := n.flush(ctx); err == nil {
			t.Fatal("flush succeeded with etcd unreachable")
		}
		n.Ingest([]Alert{firingAlert(clock.Now(), t0, "alertname", "A")})
		clock.Advance(time.Second)
	}
	if v := testutil.ToFloat64(n.metrics.stateErrors); v != 3 || len(hook.received()) != 0 {
		t.Fatalf("while etcd is down: %v etcd errors (want 3), %d deliveries (want 0)", v, len(hook.received()))
	}

	proxy.setDown(false)
	eventually(t, 20*time.Second, "delivered after etcd came back", func() bool {
		_ = n.flush(ctx)
		_ = n.deliver(ctx, true)
		return len(hook.received()) > 0
	})
	for range 5 {
		n.Ingest([]Alert{firingAlert(clock.Now(), t0, "alertname", "A")})
		step(t, ctx, n, clock, time.Minute)
	}
	if got := hook.received(); len(got) != 1 || webhookSummary(got[0].Body) != "firing:1" {
		t.Errorf("deliveries: %v, want one firing notification", got)
	}
}

// TestNotifierRouteChange: a state whose route changed (here: its
// matchers) is deleted when a notifier with the new tree starts, and the
// alert is notified again in its new group.
func TestNotifierRouteChange(t *testing.T) {
	ctx := testCtx(t)
	t0 := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	hook := newEndpoint(t, clock, "")
	yml := func(matcher string) string {
		return fmt.Sprintf("route: {receiver: r, group_by: [alertname], group_wait: 0s, routes: [{matchers: [%q], receiver: r}]}\nreceivers: [{name: r, webhook_configs: [{url: %q}]}]\n", matcher, hook.srv.URL)
	}
	cfg := testNotifierConfig(testPrefix(t))
	n := newTestNotifier(t, cfg, yml(`severity="page"`), clock, nil)
	n.Ingest([]Alert{firingAlert(t0, t0, "alertname", "A", "severity", "page")})
	step(t, ctx, n, clock, 0)
	n2 := newTestNotifier(t, cfg, yml(`severity=~"page|critical"`), clock, nil)
	n2.Ingest([]Alert{firingAlert(clock.Now(), t0, "alertname", "A", "severity", "page")})
	step(t, ctx, n2, clock, time.Second)
	got := hook.received()
	if len(got) != 2 {
		t.Fatalf("%d notifications, want 2 (one per route version)", len(got))
	}
	if gk, _ := got[1].Body["groupKey"].(string); !strings.Contains(gk, `severity=~"page|critical"`) {
		t.Errorf("second notification's group key %q", gk)
	}
	if c := queueLen(t, n2.client, cfg.Prefix+"groups/"); c != 1 {
		t.Errorf("%d group states, want 1 (the old one deleted)", c)
	}
}

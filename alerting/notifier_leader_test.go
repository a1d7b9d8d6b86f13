package alerting

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// oneWebhookYAML routes everything to one webhook, notified at once and
// re-checked every second.
func oneWebhookYAML(receiver, url string) string {
	return "route: {receiver: " + receiver + ", group_by: [alertname], group_wait: 0s, group_interval: 1s}\n" +
		"receivers: [{name: " + receiver + ", webhook_configs: [{url: '" + url + "', hmac_secret: hook-secret-9}]}]\n"
}

// member is one notifier of an election test: its own etcd client, its
// HTTP API and its Run.
type member struct {
	n      *Notifier
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

// storedWebhookSetup stores a one-webhook configuration under a new
// prefix, for notifiers that read it from etcd.
func storedWebhookSetup(t *testing.T) (context.Context, string, *endpoint, *clientv3.Client) {
	t.Helper()
	ctx := testCtx(t)
	prefix := testPrefix(t)
	ep := newEndpoint(t, realClock{}, "")
	c := newEtcdClient(t)
	if _, _, err := PutConfig(ctx, c, prefix, []byte(oneWebhookYAML("hook", ep.srv.URL))); err != nil {
		t.Fatal(err)
	}
	return ctx, prefix, ep, c
}

func startMember(t *testing.T, cfg NotifierConfig, client *clientv3.Client) *member {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg.AdvertiseURL = "http://" + srv.Listener.Addr().String()
	reg := prometheus.NewRegistry()
	n, err := New(cfg, nil, client, nil, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = n.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{n: n, reg: reg, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(m.done); n.Run(ctx) }()
	t.Cleanup(m.stop)
	return m
}

func (m *member) stop() {
	m.cancel()
	<-m.done
}

func leaders(ms ...*member) []int {
	var out []int
	for i, m := range ms {
		if m.n.Leading() {
			out = append(out, i)
		}
	}
	return out
}

func summaries(ep *endpoint) []string {
	var out []string
	for _, r := range ep.received() {
		out = append(out, webhookSummary(r.Body))
	}
	return out
}

// TestNotifierElection runs three notifiers on one prefix, the way three
// rulers' nodes do: one leads; alerts given to any of them (Notify) reach
// the leader, over HTTP for the others; a graceful stop of the leader and
// then a partition of the next one from etcd (its lease expires) each
// hand the lead over, and across both the webhook gets exactly one firing
// and one resolved notification.
func TestNotifierElection(t *testing.T) {
	ctx, prefix, ep, c := storedWebhookSetup(t)
	cfg := testNotifierConfig(prefix)
	cfg.LeaderLease = 2 * time.Second
	proxies := []*tcpProxy{newTCPProxy(t, etcdEndpoint(t)), newTCPProxy(t, etcdEndpoint(t)), newTCPProxy(t, etcdEndpoint(t))}
	ms := []*member{
		startMember(t, cfg, newProxiedClient(t, proxies[0])),
		startMember(t, cfg, newProxiedClient(t, proxies[1])),
		startMember(t, cfg, newProxiedClient(t, proxies[2])),
	}
	eventually(t, 10*time.Second, "one leader", func() bool { return len(leaders(ms...)) == 1 })
	lead := leaders(ms...)[0]
	leaderURL, err := ms[(lead+1)%3].n.Leader(ctx)
	if err != nil || leaderURL != ms[lead].n.cfg.AdvertiseURL {
		t.Fatalf("Leader() = %q, %v; want %q", leaderURL, err, ms[lead].n.cfg.AdvertiseURL)
	}
	since := time.Now()
	alert := func() []Alert { return []Alert{firingAlert(time.Now(), since, "alertname", "Down", "instance", "a")} }
	var live sync.Mutex // protects ms for the sender
	stopSending := make(chan struct{})
	sent := make(chan struct{})
	go func() { // every ruler sends the alert every 200ms
		defer close(sent)
		for {
			select {
			case <-stopSending:
				return
			case <-time.After(200 * time.Millisecond):
			}
			live.Lock()
			for _, m := range ms {
				m.n.Notify(alert())
			}
			live.Unlock()
		}
	}()
	eventually(t, 20*time.Second, "firing notification", func() bool { return len(ep.received()) > 0 })
	time.Sleep(2 * time.Second) // ten more sends from each
	if got := summaries(ep); !slices.Equal(got, []string{"firing:1"}) {
		t.Fatalf("webhook got %v, want one firing notification", got)
	}
	for i, m := range ms {
		if i == lead {
			continue
		}
		if sent := testutil.ToFloat64(m.n.metrics.forwarded.WithLabelValues("sent")); sent == 0 {
			t.Errorf("notifier %d forwarded no alert to the leader", i)
		}
	}

	// A graceful stop resigns: another takes over at once.
	stopped := time.Now()
	ms[lead].stop()
	live.Lock()
	ms = slices.Delete(slices.Clone(ms), lead, lead+1)
	live.Unlock()
	restProxies := slices.Delete(slices.Clone(proxies), lead, lead+1)
	eventually(t, 5*time.Second, "a new leader after the stop", func() bool { return len(leaders(ms...)) == 1 })
	t.Logf("lead handed over %v after a graceful stop", time.Since(stopped).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // sends to the new leader, which rebuilt the group from etcd
	if got := summaries(ep); !slices.Equal(got, []string{"firing:1"}) {
		t.Fatalf("after the hand-over the webhook got %v, want still one firing notification", got)
	}

	// A partition: the leader loses etcd; its lease expires and the other
	// takes over. The cut-off one stops leading by itself.
	lead = leaders(ms...)[0]
	other := 1 - lead
	cut := time.Now()
	restProxies[lead].setDown(true)
	eventually(t, 3*cfg.LeaderLease, "the other notifier leads", func() bool { return ms[other].n.Leading() })
	t.Logf("lead taken over %v after the leader lost etcd (lease %s)", time.Since(cut).Round(time.Millisecond), cfg.LeaderLease)
	eventually(t, 3*cfg.LeaderLease, "the cut-off notifier stops leading", func() bool { return !ms[lead].n.Leading() })
	time.Sleep(2 * time.Second)
	close(stopSending)
	<-sent
	// Resolved, sent by the leader's own ruler.
	ms[other].n.Notify([]Alert{resolvedAlert(since, time.Now(), "alertname", "Down", "instance", "a")})
	eventually(t, 10*time.Second, "resolved notification", func() bool { return len(ep.received()) >= 2 })
	time.Sleep(2 * time.Second)
	if got := summaries(ep); !slices.Equal(got, []string{"firing:1", "resolved:1"}) {
		t.Fatalf("webhook got %v, want exactly one firing and one resolved notification", got)
	}
	restProxies[lead].setDown(false)
	eventually(t, 15*time.Second, "the healed notifier campaigns again", func() bool {
		resp, err := c.Get(ctx, prefix+"leader/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 2
	})
	if ms[lead].n.Leading() || !ms[other].n.Leading() {
		t.Fatalf("after healing: the healed notifier leads %t, the other %t; want the lead to stay", ms[lead].n.Leading(), ms[other].n.Leading())
	}
}

// TestNotifierFenced: a notifier whose leader key is gone (its lease
// expired while it still believed it led) writes no state and no queue
// entry.
func TestNotifierFenced(t *testing.T) {
	ctx := testCtx(t)
	prefix := testPrefix(t)
	ep := newEndpoint(t, realClock{}, "")
	clock := &fakeClock{t: t0}
	n := newTestNotifier(t, testNotifierConfig(prefix), oneWebhookYAML("hook", ep.srv.URL), clock, nil)
	n.fence = &fence{key: prefix + "leader/gone", rev: 1}
	n.Ingest([]Alert{firingAlert(clock.Now(), clock.Now(), "alertname", "Down")})
	if err := n.flush(ctx); err == nil || !strings.Contains(err.Error(), "changed meanwhile") {
		t.Fatalf("flush without the leader key: %v, want a refused write", err)
	}
	c := newEtcdClient(t)
	if q, g := queueLen(t, c, prefix+"queue/"), queueLen(t, c, prefix+"groups/"); q != 0 || g != 0 {
		t.Fatalf("a fenced-off notifier wrote %d queue entries and %d states", q, g)
	}
	// With its fence held again, the same flush writes.
	n.fence = nil
	step(t, ctx, n, clock, time.Second)
	if got := summaries(ep); !slices.Equal(got, []string{"firing:1"}) {
		t.Fatalf("webhook got %v, want one firing notification", got)
	}
}

// TestNotifierTakeoverHoldsNotifiedAlerts: a notifier that takes over
// (here: starts) long after a group was notified does not report the
// group's alerts resolved because the end the ruler gave back then has
// passed; it holds them until the rulers send them again, and resolves
// them if they do not within ResolveTimeout.
func TestNotifierTakeoverHoldsNotifiedAlerts(t *testing.T) {
	ctx := testCtx(t)
	prefix := testPrefix(t)
	clock := &fakeClock{t: t0}
	ep := newEndpoint(t, clock, "")
	cfg := testNotifierConfig(prefix)
	first := newTestNotifier(t, cfg, oneWebhookYAML("hook", ep.srv.URL), clock, nil)
	first.Ingest([]Alert{firingAlert(clock.Now(), t0, "alertname", "Down")}) // ends at +4m
	step(t, ctx, first, clock, time.Second)
	if got := summaries(ep); !slices.Equal(got, []string{"firing:1"}) {
		t.Fatalf("webhook got %v, want one firing notification", got)
	}

	clock.Advance(10 * time.Minute)
	next := newTestNotifier(t, cfg, oneWebhookYAML("hook", ep.srv.URL), clock, nil)
	step(t, ctx, next, clock, time.Second)
	next.Ingest([]Alert{firingAlert(clock.Now(), t0, "alertname", "Down")}) // the ruler's resend
	step(t, ctx, next, clock, time.Second)
	if got := summaries(ep); !slices.Equal(got, []string{"firing:1"}) {
		t.Fatalf("after the takeover the webhook got %v, want still one firing notification", got)
	}
	for range 6 { // no resend for 6 minutes: it ends 4 minutes after the last one
		step(t, ctx, next, clock, time.Minute)
	}
	if got := summaries(ep); !slices.Equal(got, []string{"firing:1", "resolved:1"}) {
		t.Fatalf("webhook got %v, want one firing and one resolved notification", got)
	}

	// Without any resend after a takeover: resolved after ResolveTimeout.
	clock.Advance(time.Minute)
	third := newTestNotifier(t, cfg, oneWebhookYAML("hook", ep.srv.URL), clock, nil)
	third.Ingest([]Alert{firingAlert(clock.Now(), clock.Now(), "alertname", "Flap")})
	step(t, ctx, third, clock, time.Second)
	clock.Advance(20 * time.Minute)
	fourth := newTestNotifier(t, cfg, oneWebhookYAML("hook", ep.srv.URL), clock, nil)
	step(t, ctx, fourth, clock, time.Second)
	if got := summaries(ep); len(got) != 3 {
		t.Fatalf("webhook got %v, want Flap's firing notification and nothing more yet", got)
	}
	step(t, ctx, fourth, clock, cfg.ResolveTimeout)
	if got := summaries(ep); !slices.Equal(got[3:], []string{"resolved:1"}) {
		t.Fatalf("webhook got %v, want Flap resolved after ResolveTimeout without a resend", got)
	}
}

// TestNotifierForwardRefused: a batch the leader refuses (400) is dropped
// and counted, not retried for ever in front of the alerts behind it.
func TestNotifierForwardRefused(t *testing.T) {
	_, prefix, ep, _ := storedWebhookSetup(t)
	cfg := testNotifierConfig(prefix)
	ms := []*member{startMember(t, cfg, newEtcdClient(t)), startMember(t, cfg, newEtcdClient(t))}
	eventually(t, 10*time.Second, "one leader", func() bool { return len(leaders(ms...)) == 1 })
	follower := ms[1-leaders(ms...)[0]].n
	now := time.Now()
	follower.Notify([]Alert{firingAlert(now, now, "", "empty name")})
	eventually(t, 10*time.Second, "the refused batch dropped", func() bool {
		return testutil.ToFloat64(follower.metrics.forwarded.WithLabelValues("refused")) == 1
	})
	eventually(t, 10*time.Second, "a valid alert behind it notified", func() bool {
		follower.Notify([]Alert{firingAlert(time.Now(), now, "alertname", "Down")})
		return len(ep.received()) == 1
	})
}

// TestNotifierRebuildOrdering: alerts that arrive while the groups are
// being rebuilt (a takeover or a configuration change: regroup, then the
// states read at the next flush) keep their order: a resolve followed by
// a new firing stays firing; a resolve held in a group before the rebuild
// is not undone by the state; a resolve that arrived after a takeover
// survives a configuration change before the states are read.
func TestNotifierRebuildOrdering(t *testing.T) {
	ctx := testCtx(t)
	for _, tc := range []struct {
		name    string
		between func(n *Notifier, now time.Time) // after the firing notification
		want    []string
	}{
		{"resolved then firing again while rebuilding", func(n *Notifier, now time.Time) {
			regroup(n)
			n.Ingest([]Alert{resolvedAlert(t0, now, "alertname", "Down")})
			n.Ingest([]Alert{firingAlert(now, t0, "alertname", "Down")})
		}, []string{"firing:1"}},
		{"resolved in its group, then a rebuild", func(n *Notifier, now time.Time) {
			n.Ingest([]Alert{resolvedAlert(t0, now, "alertname", "Down")})
			regroup(n)
		}, []string{"firing:1", "resolved:1"}},
		{"takeover, resolved, then a configuration change", func(n *Notifier, now time.Time) {
			regroup(n)
			n.Ingest([]Alert{resolvedAlert(t0, now, "alertname", "Down")})
			rs, err := newRoutingState(n.routing().routing, nil)
			if err != nil {
				t.Fatal(err)
			}
			n.flushMu.Lock()
			n.setRouting(rs)
			n.flushMu.Unlock()
		}, []string{"firing:1", "resolved:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: t0}
			ep := newEndpoint(t, clock, "")
			n := newTestNotifier(t, testNotifierConfig(testPrefix(t)), oneWebhookYAML("hook", ep.srv.URL), clock, nil)
			n.Ingest([]Alert{firingAlert(clock.Now(), t0, "alertname", "Down")})
			step(t, ctx, n, clock, time.Second)
			tc.between(n, clock.Now())
			step(t, ctx, n, clock, time.Second)
			step(t, ctx, n, clock, time.Second)
			if got := summaries(ep); !slices.Equal(got, tc.want) {
				t.Fatalf("webhook got %v, want %v", got, tc.want)
			}
		})
	}
}

// regroup does what a takeover does to the groups.
func regroup(n *Notifier) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.regroup()
}

package alerting

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// api calls the notifier's HTTP API and decodes the envelope.
func api(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	var env map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatalf("%s %s: %d %q: %v", method, path, rec.Code, rec.Body.String(), err)
	}
	return rec.Code, env
}

// TestNotifierConfigReload: the configuration is the etcd key, uploaded
// through the API and applied by the running leader without a restart.
// Before any, alerts are dropped and counted; a new receiver at the same
// route gets the firing alert (once); an invalid value written around the
// API is refused and the previous configuration stays; GET shows the
// configuration with its secrets redacted.
func TestNotifierConfigReload(t *testing.T) {
	ctx := testCtx(t)
	prefix := testPrefix(t)
	a, b := newEndpoint(t, realClock{}, ""), newEndpoint(t, realClock{}, "")
	c := newEtcdClient(t)
	cfg := testNotifierConfig(prefix)
	m := startMember(t, cfg, c)
	eventually(t, 10*time.Second, "leading", m.n.Leading)
	h := m.n.Handler()

	since := time.Now()
	down := func() []Alert { return []Alert{firingAlert(time.Now(), since, "alertname", "Down", "instance", "x")} }
	m.n.Notify(down())
	eventually(t, 5*time.Second, "the alert dropped for want of a configuration", func() bool {
		return testutil.ToFloat64(m.n.metrics.dropped.WithLabelValues("no_config")) == 1
	})

	if code, env := api(t, h, http.MethodPut, "/api/v1/alerting/config", "route: {receiver: nope}\nreceivers: [{name: a}]\n"); code != 400 ||
		!strings.Contains(env["error"].(string), `line 1: route.receiver: receiver "nope" is not defined`) {
		t.Fatalf("PUT an invalid configuration: %d %v", code, env)
	}
	code, env := api(t, h, http.MethodPut, "/api/v1/alerting/config", oneWebhookYAML("a", a.srv.URL))
	if code != 200 || env["data"].(map[string]any)["changed"] != true {
		t.Fatalf("PUT configuration a: %d %v", code, env)
	}
	if code, env := api(t, h, http.MethodPut, "/api/v1/alerting/config", oneWebhookYAML("a", a.srv.URL)); code != 200 || env["data"].(map[string]any)["changed"] != false {
		t.Fatalf("PUT the same configuration again: %d %v", code, env)
	}
	keepSending := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			m.n.Notify(down())
		}
	}
	eventually(t, 10*time.Second, "firing notification through a", func() bool {
		m.n.Notify(down())
		return len(a.received()) > 0
	})
	keepSending(time.Second)
	if got := summaries(a); !slices.Equal(got, []string{"firing:1"}) {
		t.Fatalf("receiver a got %v, want one firing notification", got)
	}

	// The receiver changes at the same route: the group starts over there.
	if _, _, err := PutConfig(ctx, c, prefix, []byte(oneWebhookYAML("b", b.srv.URL))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "firing notification through b", func() bool {
		m.n.Notify(down())
		return len(b.received()) > 0
	})
	keepSending(time.Second)
	if ga, gb := summaries(a), summaries(b); !slices.Equal(ga, []string{"firing:1"}) || !slices.Equal(gb, []string{"firing:1"}) {
		t.Fatalf("after the change a got %v and b got %v, want one firing notification each", ga, gb)
	}

	// Written around the API: refused, b stays in force.
	if _, err := c.Put(ctx, ConfigKey(prefix), "route: [not, a, map]\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "invalid configuration noticed", func() bool {
		return testutil.ToFloat64(m.n.metrics.configOK) == 0
	})
	_, env = api(t, h, http.MethodGet, "/api/v1/alerting/config", "")
	if e, _ := env["data"].(map[string]any)["error"].(string); !strings.Contains(e, "line 1") {
		t.Fatalf("GET config of an invalid stored value: %v, want its error with a line", env)
	}
	m.n.Notify([]Alert{resolvedAlert(since, time.Now(), "alertname", "Down", "instance", "x")})
	eventually(t, 10*time.Second, "resolved notification through b", func() bool { return len(b.received()) == 2 })
	if got := summaries(b); !slices.Equal(got, []string{"firing:1", "resolved:1"}) {
		t.Fatalf("receiver b got %v", got)
	}

	if _, _, err := PutConfig(ctx, c, prefix, []byte(oneWebhookYAML("b", b.srv.URL))); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "valid configuration applied", func() bool {
		return testutil.ToFloat64(m.n.metrics.configOK) == 1
	})
	_, env = api(t, h, http.MethodGet, "/api/v1/alerting/config", "")
	y, _ := env["data"].(map[string]any)["yaml"].(string)
	if !strings.Contains(y, "<secret>") || strings.Contains(y, "hook-secret-9") {
		t.Fatalf("GET config shows:\n%s\nwant the hmac_secret redacted", y)
	}
	_, env = api(t, h, http.MethodGet, "/api/v1/alerting/status", "")
	if st := env["data"].(map[string]any); st["leading"] != true || st["leader"] != m.n.cfg.AdvertiseURL || st["configured"] != true {
		t.Fatalf("status: %v", st)
	}
}

// TestNotifierAlertsAPI: POST /api/v1/alerting/alerts refuses malformed
// bodies with the problem named, and a notifier that does not lead
// answers 503 so the sender asks etcd for the leader again.
func TestNotifierAlertsAPI(t *testing.T) {
	prefix := testPrefix(t)
	ep := newEndpoint(t, realClock{}, "")
	n := newTestNotifier(t, testNotifierConfig(prefix), oneWebhookYAML("hook", ep.srv.URL), nil, nil)
	h := n.Handler()
	for _, tc := range []struct{ body, want string }{
		{`{"labels":{"a":"b"}}`, "JSON array"},
		{`[{"labels":{}}]`, "alert 0: no labels"},
		{`[{"labels":{"a":"b"}},{"labels":{"":"b"}}]`, `alert 1: label name "" is not valid`},
		{`[{"labels":{"a":"b"},"status":"gone"}]`, `alert 0: status "gone"`},
		{`[{"labels":{"a":"b"},"colour":"red"}]`, `unknown field "colour"`},
		{`[{"labels":{"a":"b"}}] []`, "data after the array"},
		{`[{"labels":{"a":"b"},"startsAt":"yesterday"}]`, `parsing time "yesterday"`},
	} {
		code, env := api(t, h, http.MethodPost, "/api/v1/alerting/alerts", tc.body)
		if msg, _ := env["error"].(string); code != 400 || !strings.Contains(msg, tc.want) {
			t.Errorf("POST %s: %d %q, want 400 containing %q", tc.body, code, msg, tc.want)
		}
	}
	code, env := api(t, h, http.MethodPost, "/api/v1/alerting/alerts", `[{"labels":{"alertname":"Down"}}]`)
	if msg, _ := env["error"].(string); code != 503 || !strings.Contains(msg, "does not lead") {
		t.Errorf("POST to a notifier that does not lead: %d %q, want 503", code, msg)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/alerting/alerts", io.LimitReader(zeros{}, MaxAlertsBody+10)))
	if rec.Code != 413 || !strings.Contains(rec.Body.String(), "larger than") {
		t.Errorf("oversized body: %d %s", rec.Code, rec.Body.String())
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestNotifierCarryBounded: alerts waiting for a configuration are kept
// to the latest version of each, at most maxCarry, the oldest dropped
// and counted.
func TestNotifierCarryBounded(t *testing.T) {
	n, err := New(testNotifierConfig(testPrefix(t)), nil, newEtcdClient(t), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for range 3 { // the same alerts three times: compacted, not dropped
		n.Ingest([]Alert{firingAlert(now, now, "alertname", "Same")})
	}
	batch := make([]Alert, maxCarry)
	for i := range batch {
		batch[i] = firingAlert(now, now, "alertname", "Many", "i", strconv.Itoa(i))
	}
	n.Ingest(batch)
	n.mu.Lock()
	got, first := len(n.carry), n.carry[0].Alert.Labels["i"]
	n.mu.Unlock()
	if dropped := testutil.ToFloat64(n.metrics.dropped.WithLabelValues("carry_full")); got != maxCarry || dropped != 1 || first != "0" {
		t.Fatalf("carry %d (first i=%q), dropped %v; want %d, the oldest alert (Same) dropped", got, first, dropped, maxCarry)
	}
}

// TestPutConfigConcurrent: nodes started together with the same
// -alerting.config-file all succeed; one of them stores it.
func TestPutConfigConcurrent(t *testing.T) {
	ctx := testCtx(t)
	prefix := testPrefix(t)
	data := []byte(oneWebhookYAML("hook", "http://127.0.0.1:1/hook"))
	errs := make(chan error, 8)
	changed := make(chan bool, 8)
	for range 8 {
		c := newEtcdClient(t)
		go func() {
			_, ch, err := PutConfig(ctx, c, prefix, data)
			errs <- err
			changed <- ch
		}()
	}
	stored := 0
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("PutConfig: %v", err)
		}
		if <-changed {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("%d of 8 concurrent PutConfig calls stored the configuration, want 1", stored)
	}
}

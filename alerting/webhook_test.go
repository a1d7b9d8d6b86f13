package alerting

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an HTTP endpoint that records requests and answers with a
// scripted status, headers and body.
type recorder struct {
	mu       sync.Mutex
	requests []recorded
	answer   func(r *http.Request, body []byte) (int, http.Header, string)
}

type recorded struct {
	method, path string
	query        map[string][]string
	rawQuery     string
	header       http.Header
	body         []byte
}

func newRecorder(t *testing.T, answer func(r *http.Request, body []byte) (int, http.Header, string)) (*recorder, *httptest.Server) {
	rec := &recorder{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.requests = append(rec.requests, recorded{r.Method, r.URL.Path, r.URL.Query(), r.URL.RawQuery, r.Header.Clone(), body})
		rec.mu.Unlock()
		status, h, out := rec.answer(r, body)
		for k, vs := range h {
			w.Header()[k] = vs
		}
		w.WriteHeader(status)
		io.WriteString(w, out)
	}))
	t.Cleanup(srv.Close)
	return rec, srv
}

func (r *recorder) all() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.requests...)
}

func okAnswer(*http.Request, []byte) (int, http.Header, string) { return 200, nil, "" }

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestWebhookPayloadIsAlertmanagers(t *testing.T) {
	rec, srv := newRecorder(t, okAnswer)
	const secret = "hmac-key-7f3a"
	w, err := NewWebhook(&WebhookConfig{URL: URL(srv.URL + "/hook"), HMACSecret: secret, BearerToken: "tok-123"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(context.Background(), testNotification()); err != nil {
		t.Fatal(err)
	}
	reqs := rec.all()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != "POST" || r.path != "/hook" {
		t.Errorf("request %s %s, want POST /hook", r.method, r.path)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if a := r.header.Get("Authorization"); a != "Bearer tok-123" {
		t.Errorf("Authorization %q", a)
	}
	// The signature, computed here independently of SignBody.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(r.body)
	if got, want := r.header.Get("X-Vigil-Signature"), "sha256="+hex.EncodeToString(m.Sum(nil)); got != want {
		t.Errorf("X-Vigil-Signature %q, want %q", got, want)
	}

	// Field names as in Alertmanager's webhook documentation (version 4).
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	wantTop := []string{"alerts", "commonAnnotations", "commonLabels", "externalURL", "groupKey", "groupLabels", "receiver", "status", "truncatedAlerts", "version"}
	if got := keys(p); !reflect.DeepEqual(got, wantTop) {
		t.Errorf("top-level fields %v, want %v", got, wantTop)
	}
	if p["version"] != "4" || p["status"] != "firing" || p["receiver"] != "ops" || p["truncatedAlerts"] != 0.0 ||
		p["groupKey"] != `{}:{alertname="HighCPU", job="node"}` || p["externalURL"] != "http://vigil.example:9009" {
		t.Errorf("payload header fields: %v", p)
	}
	if gl := p["groupLabels"].(map[string]any); gl["alertname"] != "HighCPU" || gl["job"] != "node" || len(gl) != 2 {
		t.Errorf("groupLabels %v", gl)
	}
	alerts := p["alerts"].([]any)
	if len(alerts) != 2 {
		t.Fatalf("%d alerts", len(alerts))
	}
	a0 := alerts[0].(map[string]any)
	wantAlert := []string{"annotations", "endsAt", "fingerprint", "generatorURL", "labels", "startsAt", "status"}
	if got := keys(a0); !reflect.DeepEqual(got, wantAlert) {
		t.Errorf("alert fields %v, want %v", got, wantAlert)
	}
	if a0["startsAt"] != "2026-03-04T05:06:07Z" || a0["endsAt"] != "0001-01-01T00:00:00Z" || a0["fingerprint"] != "1111111111111111" ||
		a0["labels"].(map[string]any)["instance"] != "a:9100" || a0["status"] != "firing" {
		t.Errorf("alert 0: %v", a0)
	}
	// And it decodes into the exported type unchanged.
	var wm WebhookMessage
	if err := json.Unmarshal(r.body, &wm); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&wm, NewWebhookMessage(testNotification())) {
		t.Errorf("round trip differs:\n%+v\n%+v", wm, NewWebhookMessage(testNotification()))
	}
}

func TestWebhookMaxAlertsAndSendResolved(t *testing.T) {
	rec, srv := newRecorder(t, okAnswer)
	no := false
	w, err := NewWebhook(&WebhookConfig{URL: URL(srv.URL), MaxAlerts: 1, CommonConfig: CommonConfig{SendResolved: &no}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(context.Background(), resolvedNotification()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("send_resolved false: %d requests for a resolved notification, want 0", n)
	}
	n := testNotification()
	n.TruncatedAlerts = 3
	if err := w.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var m WebhookMessage
	if err := json.Unmarshal(rec.all()[0].body, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Alerts) != 1 || m.TruncatedAlerts != 4 || m.Alerts[0].Fingerprint != "1111111111111111" {
		t.Errorf("max_alerts 1: %d alerts, truncatedAlerts %d; want 1 and 4", len(m.Alerts), m.TruncatedAlerts)
	}
	if len(n.Alerts) != 2 || n.TruncatedAlerts != 3 {
		t.Error("Send modified the caller's notification")
	}
}

func TestHTTPFailuresClassified(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		retryable  bool
		retryAfter time.Duration // 0: none; -1: about 90s from an HTTP date
	}{
		{"500", 500, nil, "internal error", true, 0},
		{"503 with Retry-After seconds", 503, http.Header{"Retry-After": {"120"}}, "", true, 120 * time.Second},
		{"429 with Retry-After seconds", 429, http.Header{"Retry-After": {"7"}}, "slow down", true, 7 * time.Second},
		{"429 with Retry-After date", 429, http.Header{"Retry-After": {date}}, "", true, -1},
		{"408", 408, nil, "", true, 0},
		{"400", 400, nil, `{"error":"bad payload"}`, false, 0},
		{"401", 401, nil, "unauthorized", false, 0},
		{"redirect", 302, http.Header{"Location": {"http://elsewhere.example/?token=abc"}}, "", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newRecorder(t, func(*http.Request, []byte) (int, http.Header, string) { return tt.status, tt.header, tt.body })
			w, err := NewWebhook(&WebhookConfig{URL: URL(srv.URL + "/x?token=s3cr3t-query")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			de := asDeliveryError(t, w.Send(context.Background(), testNotification()))
			if de.Retryable != tt.retryable || de.Status != tt.status || de.Channel != "webhook" {
				t.Errorf("got %+v; want retryable %v status %d", de, tt.retryable, tt.status)
			}
			switch {
			case tt.retryAfter == -1:
				if de.RetryAfter < 80*time.Second || de.RetryAfter > 91*time.Second {
					t.Errorf("RetryAfter %s, want about 90s", de.RetryAfter)
				}
			case de.RetryAfter != tt.retryAfter:
				t.Errorf("RetryAfter %s, want %s", de.RetryAfter, tt.retryAfter)
			}
			msg := de.Error()
			if strings.Contains(msg, "s3cr3t-query") || strings.Contains(msg, "token=abc") {
				t.Errorf("error leaks a secret: %s", msg)
			}
			if !strings.Contains(msg, "webhook http://127.0.0.1") || !strings.Contains(msg, "token=<secret>") || (tt.body != "" && !strings.Contains(msg, tt.body)) {
				t.Errorf("error does not name channel, endpoint and reason: %s", msg)
			}
		})
	}
}

func TestHTTPUnreachableAndTimeout(t *testing.T) {
	// A listener that accepts and never answers: the channel's timeout.
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	w, err := NewWebhook(&WebhookConfig{URL: URL(srv.URL), CommonConfig: CommonConfig{Timeout: 200 * time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	de := asDeliveryError(t, w.Send(context.Background(), testNotification()))
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("Send took %s with a 200ms timeout", el)
	}
	if !de.Retryable || !strings.Contains(de.Error(), "deadline exceeded") {
		t.Errorf("timeout: %v (retryable %v)", de, de.Retryable)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	u := closed.URL
	closed.Close()
	w2, err := NewWebhook(&WebhookConfig{URL: URL(u)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	de = asDeliveryError(t, w2.Send(context.Background(), testNotification()))
	if !de.Retryable || !strings.Contains(de.Error(), "connection refused") {
		t.Errorf("refused: %v (retryable %v)", de, de.Retryable)
	}
}

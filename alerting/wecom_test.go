package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

func TestWeComRobotMarkdown(t *testing.T) {
	rec, srv := newRecorder(t, func(*http.Request, []byte) (int, http.Header, string) {
		return 200, nil, `{"errcode":0,"errmsg":"ok"}`
	})
	w, err := NewWeCom(&WeComConfig{APIURL: srv.URL + "/cgi-bin/webhook/send", Key: "robot-key-1", MentionedList: []string{"zhangsan"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := testNotification()
	n.Alerts[1].Labels["wecom_user_ids"] = "lisi"
	if err := w.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	if r.method != "POST" || r.path != "/cgi-bin/webhook/send" || r.rawQuery != "key=robot-key-1" {
		t.Errorf("request %s %s?%s", r.method, r.path, r.rawQuery)
	}
	// {"msgtype":"markdown","markdown":{"content":"..."}}, nothing else.
	var p map[string]map[string]string
	var top map[string]any
	if err := json.Unmarshal(r.body, &top); err != nil {
		t.Fatal(err)
	}
	if got := keys(top); !reflect.DeepEqual(got, []string{"markdown", "msgtype"}) || top["msgtype"] != "markdown" {
		t.Fatalf("fields %v in %s", got, r.body)
	}
	delete(top, "msgtype")
	b, _ := json.Marshal(top)
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	content := p["markdown"]["content"]
	if len(p["markdown"]) != 1 || !strings.HasPrefix(content, "### [FIRING:2] HighCPU (job=node)") || !strings.HasSuffix(content, "\n<@zhangsan><@lisi>") {
		t.Errorf("markdown %q", p["markdown"])
	}
}

func TestWeComRobotTextMentionsAndTruncation(t *testing.T) {
	rec, srv := newRecorder(t, func(*http.Request, []byte) (int, http.Header, string) {
		return 200, nil, `{"errcode":0,"errmsg":"ok"}`
	})
	w, err := NewWeCom(&WeComConfig{WebhookURL: URL(srv.URL + "/send?key=k2"), MessageType: "text",
		MentionedList: []string{"@all"}, MentionedMobileList: []string{"13800001111"},
		Message: `{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := testNotification()
	// 3-byte runes, so that 2048 bytes fall inside one of them.
	n.Alerts[0].Annotations["summary"] = strings.Repeat("告警", 1000)
	n.Alerts[0].Labels["wecom_mobiles"] = "13900002222"
	if err := w.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	if r.query["key"][0] != "k2" {
		t.Errorf("query %s", r.rawQuery)
	}
	var p struct {
		MsgType string `json:"msgtype"`
		Text    struct {
			Content             string   `json:"content"`
			MentionedList       []string `json:"mentioned_list"`
			MentionedMobileList []string `json:"mentioned_mobile_list"`
		} `json:"text"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.MsgType != "text" || !reflect.DeepEqual(p.Text.MentionedList, []string{"@all"}) ||
		!reflect.DeepEqual(p.Text.MentionedMobileList, []string{"13800001111", "13900002222"}) {
		t.Errorf("text message %+v", p)
	}
	if c := p.Text.Content; len(c) > 2048 || len(c) < 2040 || !utf8.ValidString(c) || !strings.HasSuffix(c, "…") {
		t.Errorf("content: %d bytes, valid UTF-8 %v, ends %q", len(c), utf8.ValidString(c), c[max(0, len(c)-8):])
	}
}

func TestWeComMarkdownLimit(t *testing.T) {
	rec, srv := newRecorder(t, func(*http.Request, []byte) (int, http.Header, string) {
		return 200, nil, `{"errcode":0,"errmsg":"ok"}`
	})
	w, err := NewWeCom(&WeComConfig{APIURL: srv.URL, Key: "k", MentionedList: []string{"u1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := testNotification()
	for i := range 200 { // far more than 4096 bytes of markdown
		n.Alerts = append(n.Alerts, Alert{Status: StatusFiring, Labels: KV{"alertname": "HighCPU", "instance": fmt.Sprintf("主机-%d", i)}, StartsAt: t0})
	}
	if err := w.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var p struct{ Markdown struct{ Content string } }
	if err := json.Unmarshal(rec.all()[0].body, &p); err != nil {
		t.Fatal(err)
	}
	c := p.Markdown.Content
	if len(c) > 4096 || len(c) < 4000 || !utf8.ValidString(c) || !strings.HasSuffix(c, "…\n<@u1>") {
		t.Errorf("markdown content %d bytes (limit 4096), valid %v, tail %q", len(c), utf8.ValidString(c), c[max(0, len(c)-20):])
	}
}

func TestWeComErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		retryable  bool
		retryAfter time.Duration
	}{
		{"freq limit", 200, `{"errcode":45009,"errmsg":"api freq out of limit"}`, true, time.Minute},
		{"busy", 200, `{"errcode":-1,"errmsg":"system busy"}`, true, 0},
		{"invalid key", 200, `{"errcode":93000,"errmsg":"invalid webhook url"}`, false, 0},
		{"5xx", 500, `oops`, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newRecorder(t, func(*http.Request, []byte) (int, http.Header, string) { return tt.status, nil, tt.body })
			w, err := NewWeCom(&WeComConfig{APIURL: srv.URL, Key: "key-do-not-leak"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			de := asDeliveryError(t, w.Send(context.Background(), testNotification()))
			if de.Retryable != tt.retryable || de.RetryAfter != tt.retryAfter {
				t.Errorf("got %+v", de)
			}
			if msg := de.Error(); strings.Contains(msg, "do-not-leak") || !strings.Contains(msg, "key=<secret>") {
				t.Errorf("error %s", msg)
			}
		})
	}
}

// weComAPI is a fake of the WeCom application API: gettoken hands out
// numbered tokens; message/send accepts only the current one and can be
// told to expire it.
type weComAPI struct {
	tokens    atomic.Int64 // tokens handed out
	expireNow atomic.Bool  // answer the next send with 42001
	sends     atomic.Int64
	bodies    chan []byte
}

func (a *weComAPI) answer(r *http.Request, body []byte) (int, http.Header, string) {
	switch r.URL.Path {
	case "/cgi-bin/gettoken":
		if r.URL.Query().Get("corpid") != "ww123" || r.URL.Query().Get("corpsecret") != "corp-secret-do-not-leak" {
			return 200, nil, `{"errcode":40001,"errmsg":"invalid credential"}`
		}
		n := a.tokens.Add(1)
		return 200, nil, fmt.Sprintf(`{"errcode":0,"errmsg":"ok","access_token":"token-%d","expires_in":7200}`, n)
	case "/cgi-bin/message/send":
		a.sends.Add(1)
		if r.URL.Query().Get("access_token") != fmt.Sprintf("token-%d", a.tokens.Load()) {
			return 200, nil, `{"errcode":40014,"errmsg":"invalid access_token"}`
		}
		if a.expireNow.CompareAndSwap(true, false) {
			return 200, nil, `{"errcode":42001,"errmsg":"access_token expired"}`
		}
		a.bodies <- body
		return 200, nil, `{"errcode":0,"errmsg":"ok","invaliduser":""}`
	}
	return 404, nil, "no such API"
}

func TestWeComAppTokenCacheAndRefresh(t *testing.T) {
	api := &weComAPI{bodies: make(chan []byte, 10)}
	_, srv := newRecorder(t, api.answer)
	w, err := NewWeComApp(&WeComAppConfig{APIURL: srv.URL + "/cgi-bin/", CorpID: "ww123", CorpSecret: "corp-secret-do-not-leak",
		AgentID: 1000002, ToUser: "zhangsan|lisi", ToParty: "2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	w.now = func() time.Time { return now }
	ctx := context.Background()

	for range 3 {
		if err := w.Send(ctx, testNotification()); err != nil {
			t.Fatal(err)
		}
	}
	if got := api.tokens.Load(); got != 1 {
		t.Errorf("3 sends fetched %d tokens, want 1 (cached)", got)
	}
	var m map[string]any
	if err := json.Unmarshal(<-api.bodies, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"agentid", "markdown", "msgtype", "toparty", "touser"}
	if got := keys(m); !reflect.DeepEqual(got, want) {
		t.Errorf("message/send fields %v, want %v", got, want)
	}
	if m["touser"] != "zhangsan|lisi" || m["toparty"] != "2" || m["msgtype"] != "markdown" || m["agentid"] != 1000002.0 ||
		!strings.HasPrefix(m["markdown"].(map[string]any)["content"].(string), "### [FIRING:2]") {
		t.Errorf("message/send body %v", m)
	}

	// The API says the token expired: one new token, the message resent once.
	api.expireNow.Store(true)
	sends := api.sends.Load()
	if err := w.Send(ctx, testNotification()); err != nil {
		t.Fatal(err)
	}
	if api.tokens.Load() != 2 || api.sends.Load()-sends != 2 {
		t.Errorf("after 42001: %d tokens, %d sends; want 2 and 2", api.tokens.Load(), api.sends.Load()-sends)
	}
	// expires_in passed (7200 s): a new token before sending.
	now = now.Add(2 * time.Hour)
	if err := w.Send(ctx, testNotification()); err != nil {
		t.Fatal(err)
	}
	if api.tokens.Load() != 3 {
		t.Errorf("after expiry: %d tokens, want 3", api.tokens.Load())
	}
	if len(api.bodies) != 2+1+1 {
		t.Errorf("%d messages accepted, want 4 more", len(api.bodies))
	}
}

func TestWeComAppBadSecret(t *testing.T) {
	api := &weComAPI{bodies: make(chan []byte, 1)}
	_, srv := newRecorder(t, api.answer)
	w, err := NewWeComApp(&WeComAppConfig{APIURL: srv.URL + "/cgi-bin", CorpID: "ww123", CorpSecret: "wrong-secret", AgentID: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	de := asDeliveryError(t, w.Send(context.Background(), testNotification()))
	if de.Retryable || de.Code != 40001 || strings.Contains(de.Error(), "wrong-secret") || !strings.Contains(de.Error(), "corpsecret=<secret>") {
		t.Errorf("got %v (%+v)", de, de)
	}
	if api.sends.Load() != 0 {
		t.Error("sent without a token")
	}
}

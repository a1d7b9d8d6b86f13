package alerting

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The documented algorithm (DingTalk custom robot, "安全设置 / 加签"):
//
//	string_to_sign = timestamp + "\n" + secret
//	sign = urlEncode(base64(HmacSHA256(key=secret, string_to_sign)))
//
// This vector was computed outside Go, with Python's hmac, base64 and
// urllib.parse.quote_plus as in DingTalk's Python sample.
const (
	vectorSecret    = "SEC0123456789abcdef"
	vectorTimestamp = int64(1700000000000)
	vectorSign      = "TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D" // URL-encoded, as on the wire
)

func TestDingTalkSignVector(t *testing.T) {
	if got := url.QueryEscape(DingTalkSign(vectorSecret, vectorTimestamp)); got != vectorSign {
		t.Fatalf("DingTalkSign = %s, want %s", got, vectorSign)
	}
}

// verifyDingTalkSign is what DingTalk does with a request: recompute the
// signature from the timestamp and the secret, here written out again
// rather than calling DingTalkSign.
func verifyDingTalkSign(rawQuery, secret string) (string, bool) {
	q, _ := url.ParseQuery(rawQuery)
	ts := q.Get("timestamp")
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "\n" + secret))
	want := base64.StdEncoding.EncodeToString(m.Sum(nil))
	return ts, q.Get("sign") == want
}

func TestDingTalkSignedMarkdownWithMentions(t *testing.T) {
	rec, srv := newRecorder(t, func(*http.Request, []byte) (int, http.Header, string) {
		return 200, nil, `{"errcode":0,"errmsg":"ok"}`
	})
	d, err := NewDingTalk(&DingTalkConfig{
		APIURL: srv.URL + "/robot/send", AccessToken: "tok-abc", Secret: vectorSecret,
		AtMobiles: []string{"13800000000"}, AtUserIDs: []string{"manager01"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.now = func() time.Time { return time.UnixMilli(vectorTimestamp) }
	n := testNotification()
	n.Alerts[0].Labels["dingtalk_mobiles"] = "13900000001, 13800000000"
	n.Alerts[1].Annotations["dingtalk_user_ids"] = "oncall7"
	if err := d.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	if r.path != "/robot/send" || r.query["access_token"][0] != "tok-abc" || r.query["timestamp"][0] != "1700000000000" {
		t.Errorf("query %s", r.rawQuery)
	}
	// The exact wire form of sign, from the test vector.
	if !strings.Contains(r.rawQuery, "sign="+vectorSign) {
		t.Errorf("raw query %s does not carry sign=%s", r.rawQuery, vectorSign)
	}
	if _, ok := verifyDingTalkSign(r.rawQuery, vectorSecret); !ok {
		t.Error("signature does not verify")
	}

	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p["msgtype"] != "markdown" {
		t.Errorf("msgtype %v", p["msgtype"])
	}
	md := p["markdown"].(map[string]any)
	if md["title"] != "[FIRING:2] HighCPU (job=node)" {
		t.Errorf("title %q", md["title"])
	}
	text := md["text"].(string)
	for _, want := range []string{"### [FIRING:2] HighCPU (job=node)", "CPU above 90% on a:9100", "instance=b:9100", "2026-03-04 05:06:07 UTC",
		"@13800000000 @13900000001 @manager01 @oncall7"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	at := p["at"].(map[string]any)
	if got := at["atMobiles"]; !reflect.DeepEqual(got, []any{"13800000000", "13900000001"}) {
		t.Errorf("atMobiles %v", got)
	}
	if got := at["atUserIds"]; !reflect.DeepEqual(got, []any{"manager01", "oncall7"}) {
		t.Errorf("atUserIds %v", got)
	}
	if at["isAtAll"] != false {
		t.Errorf("isAtAll %v", at["isAtAll"])
	}
}

func TestDingTalkWebhookURLAndSignNow(t *testing.T) {
	rec, srv := newRecorder(t, func(*http.Request, []byte) (int, http.Header, string) {
		return 200, nil, `{"errcode":0,"errmsg":"ok"}`
	})
	d, err := NewDingTalk(&DingTalkConfig{WebhookURL: URL(srv.URL + "/robot/send?access_token=tok-xyz"), Secret: "SECnow", AtAll: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().UnixMilli()
	if err := d.Send(context.Background(), testNotification()); err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	ts, ok := verifyDingTalkSign(r.rawQuery, "SECnow")
	if !ok || r.query["access_token"][0] != "tok-xyz" {
		t.Errorf("query %s: signature ok %v", r.rawQuery, ok)
	}
	if ms, _ := strconv.ParseInt(ts, 10, 64); ms < before || ms > time.Now().UnixMilli() {
		t.Errorf("timestamp %s is not the time of sending", ts)
	}
	if !strings.Contains(string(r.body), `"isAtAll":true`) {
		t.Errorf("body %s", r.body)
	}
}

func TestDingTalkErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		retryable  bool
		retryAfter time.Duration
		code       int
	}{
		{"rate limited", 200, nil, `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`, true, 10 * time.Minute, 130101},
		{"busy", 200, nil, `{"errcode":-1,"errmsg":"system busy"}`, true, 0, -1},
		{"bad sign", 200, nil, `{"errcode":310000,"errmsg":"sign not match"}`, false, 0, 310000},
		{"token", 200, nil, `{"errcode":300001,"errmsg":"token is not exist"}`, false, 0, 300001},
		{"throttle redirect", 302, http.Header{"Location": {"https://oapi.dingtalk.com/limit"}}, "", true, 10 * time.Minute, 0},
		{"5xx", 502, http.Header{"Retry-After": {"30"}}, "bad gateway", true, 30 * time.Second, 0},
		{"not json", 200, nil, "<html>proxy</html>", true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newRecorder(t, func(*http.Request, []byte) (int, http.Header, string) { return tt.status, tt.header, tt.body })
			d, err := NewDingTalk(&DingTalkConfig{APIURL: srv.URL, AccessToken: "tok-do-not-leak", Secret: "SECdo-not-leak"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			de := asDeliveryError(t, d.Send(context.Background(), testNotification()))
			if de.Retryable != tt.retryable || de.RetryAfter != tt.retryAfter || de.Code != tt.code || de.Status != tt.status {
				t.Errorf("got %+v", de)
			}
			msg := de.Error()
			if strings.Contains(msg, "do-not-leak") {
				t.Errorf("error leaks a secret: %s", msg)
			}
			if !strings.HasPrefix(msg, "dingtalk http://127.0.0.1") || !strings.Contains(msg, "access_token=<secret>") {
				t.Errorf("error does not name the endpoint: %s", msg)
			}
			if tt.code != 0 && !strings.Contains(msg, fmt.Sprintf("errcode %d", tt.code)) {
				t.Errorf("error lacks errcode: %s", msg)
			}
		})
	}
}

package alerting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// exampleSecrets are the secret values in testdata/receivers.yml.
var exampleSecrets = []string{"smtp-password-1", "ding-token-2", "SECding-secret-3", "wecom-robot-key-4",
	"wecom-corp-secret-5", "webhook-hmac-6", "webhook-bearer-7", "am-bearer-8"}

func loadExample(t *testing.T) *Config {
	t.Helper()
	cfg, err := LoadConfigFile("testdata/receivers.yml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestConfigExampleAndDefaults(t *testing.T) {
	cfg := loadExample(t)
	ops := cfg.Receiver("ops")
	if ops == nil || cfg.Receiver("quiet") == nil || cfg.Receiver("none") != nil {
		t.Fatal("receivers not found by name")
	}
	e := ops.EmailConfigs[0]
	if !*e.SendResolved || e.Timeout != 30*time.Second || e.StartTLS != "required" || *e.ImplicitTLS || e.Hello != "localhost" {
		t.Errorf("email defaults: %+v", e)
	}
	d := ops.DingTalkConfigs[0]
	if !*d.SendResolved || d.Timeout != defaultHTTPTimeout || d.UserIDsFrom != "dingtalk_user_ids" || d.APIURL != "" || d.Text != defaultMarkdown {
		t.Errorf("dingtalk defaults: %+v", d)
	}
	w := ops.WeComConfigs[0]
	if w.APIURL != DefaultWeComAPIURL || w.MessageType != "markdown" {
		t.Errorf("wecom defaults: %+v", w)
	}
	if a := ops.WeComAppConfigs[0]; a.ToUser != "" || a.ToParty != "2|3" || a.APIURL != DefaultWeComAppAPIURL {
		t.Errorf("wecom_app defaults: %+v", a)
	}
	if h := ops.WebhookConfigs[0]; h.Timeout != 5*time.Second || h.MaxAlerts != 50 {
		t.Errorf("webhook: %+v", h)
	}
	if q := cfg.Receiver("quiet").WebhookConfigs[0]; *q.SendResolved {
		t.Error("send_resolved: false was not kept")
	}
	chans, err := NewChannels(ops, nil)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range chans {
		kinds = append(kinds, c.Kind())
	}
	if got := strings.Join(kinds, ","); got != "email,dingtalk,wecom,wecom_app,webhook,alertmanager" {
		t.Errorf("channels %s", got)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"unknown field", "receivers:\n  - name: a\n    webhook_configs:\n      - url: http://x\n        sign_secret: s\n",
			[]string{"line 5", "field sign_secret not found"}},
		{"unknown top-level", "receivers: []\nroutes: []\n", []string{"line 2", "field routes not found"}},
		{"wrong type", "receivers:\n  - name: a\n    webhook_configs:\n      - url: http://x\n        max_alerts: many\n",
			[]string{"line 5", "cannot unmarshal !!str `many` into int"}},
		{"missing url and name", "receivers:\n  - webhook_configs:\n      - max_alerts: -1\n",
			[]string{"line 2: receivers[0].name: missing receiver name", "line 3: receivers[0].webhook_configs[0].url: missing URL",
				"line 3: receivers[0].webhook_configs[0].max_alerts: negative"}},
		{"duplicate receiver", "receivers:\n  - name: a\n  - name: a\n", []string{"line 3: receivers[1].name: receiver \"a\" defined twice"}},
		{"bad scheme", "receivers:\n  - name: a\n    alertmanager_configs:\n      - urls: [ftp://am:9093]\n",
			[]string{"line 4: receivers[0].alertmanager_configs[0].urls[0]", "scheme must be http or https"}},
		{"dingtalk both", "receivers:\n  - name: a\n    dingtalk_configs:\n      - webhook_url: https://oapi.dingtalk.com/robot/send?access_token=t\n        access_token: t\n",
			[]string{"line 4", "either webhook_url or access_token"}},
		{"dingtalk secret", "receivers:\n  - name: a\n    dingtalk_configs:\n      - access_token: t\n        secret: not-a-sec-value\n",
			[]string{"line 5: receivers[0].dingtalk_configs[0].secret", `starts with "SEC"`}},
		{"dingtalk template", "receivers:\n  - name: a\n    dingtalk_configs:\n      - access_token: t\n        text: '{{ .Nope }}'\n",
			[]string{"line 5: receivers[0].dingtalk_configs[0].text: template", "can't evaluate field Nope"}},
		{"template syntax", "receivers:\n  - name: a\n    email_configs:\n      - {to: [a@b.c], from: x@y.z, smarthost: 'h:25', subject: '{{ .Status '}\n",
			[]string{"line 4: receivers[0].email_configs[0].subject: template"}},
		{"html template function", "receivers:\n  - name: a\n    email_configs:\n      - {to: [a@b.c], from: x@y.z, smarthost: 'h:25', html: '{{ nosuch . }}'}\n",
			[]string{"email_configs[0].html: template", "function \"nosuch\" not defined"}},
		{"email", "receivers:\n  - name: a\n    email_configs:\n      - to: ['not an address']\n        smarthost: nohost\n        starttls: maybe\n        auth_password: p\n",
			[]string{"to[0]: invalid address", "from: missing from", "smarthost: smarthost \"nohost\"", "starttls: starttls \"maybe\"", "auth_username: auth_password set without"}},
		{"wecom markdown mobiles", "receivers:\n  - name: a\n    wecom_configs:\n      - key: k\n        mentioned_mobile_list: ['138']\n",
			[]string{"line 5", "use message_type: text"}},
		{"wecom app", "receivers:\n  - name: a\n    wecom_app_configs:\n      - message_type: card\n",
			[]string{"corp_id: missing", "corp_secret: missing", "agent_id: missing", "message_type \"card\""}},
		{"secret not quoted in errors", "receivers:\n  - name: a\n    webhook_configs:\n      - url: 'http://h/%zz?token=s3cr3t'\n",
			[]string{"invalid URL <secret>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error quotes a secret: %v", err)
			}
		})
	}
}

// TestSecretsNeverShown renders the example config and its channels every
// way a program might (YAML, JSON, fmt, slog) and looks for any secret.
func TestSecretsNeverShown(t *testing.T) {
	cfg := loadExample(t)
	var out bytes.Buffer
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(y)
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	chans, err := NewChannels(cfg.Receiver("ops"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{cfg, cfg.Receivers[0], *cfg.Receivers[0].DingTalkConfigs[0], cfg.Receivers[0].EmailConfigs[0], chans} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
	}
	for _, c := range chans {
		fmt.Fprintf(&out, "%v %+v %#v %s\n", c, c, c, c)
	}
	logger := slog.New(slog.NewJSONHandler(&out, nil))
	logger.Info("config", "cfg", cfg, "dingtalk", cfg.Receivers[0].DingTalkConfigs[0], "secret", cfg.Receivers[0].EmailConfigs[0].AuthPassword,
		"url", cfg.Receivers[0].DingTalkConfigs[0].WebhookURL, "channels", chans)
	text := slog.New(slog.NewTextHandler(&out, nil))
	text.Info("config", "cfg", cfg, "email", cfg.Receivers[0].EmailConfigs[0], "secret", cfg.Receivers[0].WebhookConfigs[0].HMACSecret)
	for _, c := range chans {
		text.Info("channel", "ch", c)
	}

	all := out.String()
	for _, s := range exampleSecrets {
		if strings.Contains(all, s) {
			i := strings.Index(all, s)
			t.Errorf("secret %q shown: ...%s...", s, all[max(0, i-120):min(len(all), i+40)])
		}
	}
	for _, want := range []string{"auth_password: <secret>", `"hmac_secret":"\u003csecret\u003e"`, "access_token=<secret>", "corp_secret: <secret>"} {
		if !strings.Contains(all, want) {
			t.Errorf("rendering lacks %q", want)
		}
	}
	// The values are still there for the channels to use.
	if string(cfg.Receivers[0].WebhookConfigs[0].HMACSecret) != "webhook-hmac-6" {
		t.Error("secret value lost")
	}
}

func TestConfigErrorsAreTyped(t *testing.T) {
	_, err := ParseConfig([]byte("receivers:\n  - name: ''\n"))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Path != "receivers[0].name" {
		t.Fatalf("got %#v", err)
	}
	if _, err := ParseConfig(nil); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

func TestTemplateFunctionsAndTitle(t *testing.T) {
	tmpl, err := parseText(`{{ template "vigil.title" . }}|{{ .CommonLabels.SortedPairs.Names | join "," }}|{{ "disk full" | title }}|` +
		`{{ toUpper "a" }}{{ toLower "B" }}|{{ reReplaceAll "(a+)" "<$1>" "baab" }}|{{ match "^High" .CommonLabels.alertname }}|` +
		`{{ (.CommonLabels.Remove (stringSlice "severity")).Values | join " " }}|{{ len .Alerts.Resolved }}`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tmpl.execute(testNotification())
	if err != nil {
		t.Fatal(err)
	}
	want := "[FIRING:2] HighCPU (job=node)|alertname,job,severity|Disk Full|Ab|b<aa>b|true|HighCPU node|0"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got, _ = tmpl.execute(resolvedNotification())
	if !strings.HasPrefix(got, "[RESOLVED] HighCPU (job=node)|") {
		t.Errorf("resolved title: %s", got)
	}
	if _, err := os.Stat("testdata/receivers.yml"); err != nil {
		t.Fatal(err)
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"fits", "abc", 3, "abc"},
		{"ascii", "abcdef", 4, "a…"},
		{"rune boundary", "告警告警", 8, "告…"}, // 3-byte runes: 8-3 = 5 bytes leave one rune
		{"tiny", "告警", 2, ""},
		{"zero", "abc", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncateUTF8(tt.in, tt.max, "…")
			if got != tt.want || len(got) > max(tt.max, 0) {
				t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

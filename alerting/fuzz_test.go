package alerting

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzReceiversConfig: ParseConfig never panics; what it accepts has named,
// unique receivers, marshals, and builds channels (validation and the
// constructors agree).
func FuzzReceiversConfig(f *testing.F) {
	example, err := os.ReadFile("testdata/receivers.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"",
		"receivers: []",
		"receivers:\n  - name: a\n    webhook_configs: [{url: 'http://x'}]\n",
		"receivers:\n  - name: a\n    webhook_configs: [{url: 'http://x', nope: 1}]\n",
		"receivers:\n  - name: a\n  - name: a\n",
		"receivers:\n  - name: d\n    dingtalk_configs: [{access_token: t, secret: SECx, text: '{{ .Status }}'}]\n",
		"receivers:\n  - name: w\n    wecom_configs: [{key: k, message_type: text, mentioned_mobile_list: ['@all']}]\n",
		"receivers:\n  - name: w\n    wecom_app_configs: [{corp_id: c, corp_secret: s, agent_id: 1, timeout: 3s}]\n",
		"receivers:\n  - name: e\n    email_configs: [{to: [a@b.c], from: x@y.z, smarthost: 'h:465', html: '{{ .Alerts }}'}]\n",
		"receivers:\n  - name: m\n    alertmanager_configs: [{urls: ['http://am:9093/prefix']}]\n",
		"receivers: &a [*a]",
		"receivers:\n  - ~\n",
		"receivers:\n  - name: a\n    webhook_configs: [~]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		cfg, err := ParseConfig(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		names := map[string]bool{}
		for _, r := range cfg.Receivers {
			if r == nil || r.Name == "" || names[r.Name] {
				t.Fatalf("accepted a nil, unnamed or duplicate receiver: %v", r)
			}
			names[r.Name] = true
			if _, err := NewChannels(r, nil); err != nil {
				t.Fatalf("valid config, but channels do not build: %v", err)
			}
		}
		if _, err := yaml.Marshal(cfg); err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config does not validate again: %v", err)
		}
	})
}

// FuzzRoutingConfig: ParseRoutingConfig never panics; what it accepts
// compiles, routes every alert to a defined receiver, and validates again.
func FuzzRoutingConfig(f *testing.F) {
	example, err := os.ReadFile("testdata/notifier.yml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	for _, s := range []string{
		"",
		"route: {receiver: a}\nreceivers: [{name: a}]\n",
		"route: {receiver: a, group_by: ['...'], routes: [{matchers: ['x=~\"a|b\"', 'y!=\"\"'], continue: true}, {receiver: a}]}\nreceivers: [{name: a}]\n",
		"route: {receiver: b}\nreceivers: [{name: a}]\n",
		"route: {receiver: a, routes: [~]}\nreceivers: [{name: a}]\n",
		"route: {receiver: a}\ninhibit_rules: [{source_matchers: ['a=\"1\"'], target_matchers: ['b!~\"2\"'], equal: [c]}]\nreceivers: [{name: a}]\n",
		"route: {receiver: a, matchers: ['a=']}\nreceivers: [{name: a}]\n",
		"route: &r {receiver: a, routes: [*r]}\nreceivers: [{name: a}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		cfg, err := ParseRoutingConfig(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		root, _, err := cfg.compile()
		if err != nil {
			t.Fatalf("accepted config does not compile: %v", err)
		}
		for _, r := range root.match(KV{"alertname": "x", "severity": "page"}) {
			if cfg.Receiver(r.opts.receiver) == nil {
				t.Fatalf("route %s sends to undefined receiver %q", r.id, r.opts.receiver)
			}
		}
		if _, err := yaml.Marshal(cfg); err != nil {
			t.Fatalf("marshal accepted config: %v", err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted config does not validate again: %v", err)
		}
	})
}

// FuzzDecodeAlerts: DecodeAlerts (POST /api/v1/alerting/alerts) never
// panics; what it accepts has labels with valid names, encodes again,
// and decodes to the same alerts.
func FuzzDecodeAlerts(f *testing.F) {
	for _, s := range []string{
		`[]`,
		`[{"labels":{"alertname":"Down","instance":"a:9100"},"annotations":{"summary":"s"},"status":"firing",` +
			`"startsAt":"2026-03-04T05:06:07Z","endsAt":"2026-03-04T05:10:07Z","generatorURL":"http://x/graph"}]`,
		`[{"labels":{"alertname":"Down"},"status":"resolved","endsAt":"2026-03-04T05:06:07.5+08:00"}]`,
		`[{"labels":{}}]`,
		`[{"labels":{"1":"x"}}]`,
		`[{"labels":{"a":"\ud800"}}]`,
		`[null]`,
		`null`,
		`[{"labels":{"a":"b"}}] x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := DecodeAlerts(data)
		if err != nil {
			return
		}
		for i, a := range alerts {
			if err := checkAlert(a); err != nil {
				t.Fatalf("accepted alert %d is invalid: %v", i, err)
			}
		}
		b, err := json.Marshal(alerts)
		if err != nil {
			t.Fatalf("accepted alerts do not encode: %v", err)
		}
		again, err := DecodeAlerts(b)
		if err != nil {
			t.Fatalf("re-encoded alerts refused: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(normalize(alerts), normalize(again)) {
			t.Fatalf("round trip changed the alerts:\n%+v\n%+v", alerts, again)
		}
	})
}

// normalize makes decoded alerts comparable: times in UTC, nil maps empty.
func normalize(as []Alert) []Alert {
	out := make([]Alert, len(as))
	for i, a := range as {
		a.StartsAt, a.EndsAt = a.StartsAt.UTC(), a.EndsAt.UTC()
		if a.Annotations == nil {
			a.Annotations = KV{}
		}
		out[i] = a
	}
	return out
}

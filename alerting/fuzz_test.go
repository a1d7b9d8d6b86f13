package alerting

import (
	"os"
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

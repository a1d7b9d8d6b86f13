package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRuleGroupValue feeds arbitrary etcd values to the decoder of stored
// groups: it must never panic, and what it accepts must encode to a value
// that decodes again and encodes to the same bytes (the encoding is
// canonical). Seeds: the testdata rule files and a few one-group values.
func FuzzRuleGroupValue(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n    for: 5m\n    labels: {severity: page}\n",
		"groups:\n- name: g\n  interval: 1m\n  query_offset: 30s\n  limit: 5\n  rules: [{record: 'a:b', expr: 'sum(rate(x[5m]))'}]\n",
		"groups:\n- name: g\n  rules: [{alert: A, expr: up, annotations: {d: '{{ $value | humanize }}'}}]\n",
		"groups: [{name: g, rules: []}]",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := DecodeGroupValue(b)
		if err != nil {
			return
		}
		enc, err := EncodeGroupValue(g)
		if err != nil {
			t.Fatalf("accepted group does not encode: %v (%+v)", err, g)
		}
		back, err := DecodeGroupValue(enc)
		if err != nil {
			t.Fatalf("encoded value %q does not decode: %v", enc, err)
		}
		again, err := EncodeGroupValue(back)
		if err != nil || string(again) != string(enc) {
			t.Fatalf("encoding is not canonical: %v\n%q\n%q", err, enc, again)
		}
		if back.Name != g.Name || len(back.Rules) != len(g.Rules) {
			t.Fatalf("round trip changed the group: %+v / %+v", g, back)
		}
	})
}

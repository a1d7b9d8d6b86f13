package rules

import (
	"errors"
	"strings"
	"testing"
)

// Bad files are refused with rulefmt's positions: line and column where
// rulefmt knows them, "line N" for YAML errors.
func TestParseFileRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string // substrings of the error
	}{
		{name: "YAML syntax", file: "bad_yaml.yml", want: []string{"bad_yaml.yml: yaml: line 3:", "did not find expected '-' indicator"}},
		{name: "bad PromQL", file: "bad_promql.yml", want: []string{"bad_promql.yml:5:15: group \"node\", rule 1, \"InstanceDown\": could not parse expression: 1:7: parse error"}},
		{name: "unknown field", file: "unknown_field.yml", want: []string{"line 6: field fore not found"}},
		{name: "duplicate group", file: "duplicate_group.yml", want: []string{"duplicate_group.yml:6:5: groupname: \"node\" is repeated in the same file"}},
		{name: "bad template", file: "bad_template.yml", want: []string{`annotation "summary"`, "unclosed action"}},
		{name: "missing expr", file: "no_expr.yml", want: []string{"no_expr.yml:4:9: group \"node\", rule 1, \"job:up:sum\": field 'expr' must be set in rule"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile(tc.file, readTestdata(t, tc.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%v is not ErrInvalid", err)
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != tc.file {
				t.Errorf("not a *FileError of %s: %#v", tc.file, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// Vigil's own checks on top of rulefmt: names usable in keys, one document.
func TestParseFileVigilChecks(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{name: "slash in a group name", body: "groups:\n- name: a/b\n  rules: [{record: r, expr: up}]\n", want: `2:9: group name "a/b": contains '/'`},
		{name: "group name too long", body: "groups:\n- name: " + strings.Repeat("g", MaxNameBytes+1) + "\n  rules: []\n", want: "over the limit of 200"},
		{name: "dot group", body: "groups:\n- name: ..\n  rules: []\n", want: `"." and ".." are not names`},
		{name: "two documents", body: "groups:\n- name: a\n  rules: []\n---\ngroups:\n- name: b\n  rules: []\n", want: "4:1: a second YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile("f.yml", []byte(tc.body))
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid with %q", err, tc.want)
			}
		})
	}
	// Spaces and non-ASCII are fine: keys escape them.
	if _, err := ParseFile("f.yml", []byte("groups:\n- name: équipe a\n  rules: [{record: r, expr: up}]\n")); err != nil {
		t.Fatal(err)
	}
}

func TestGroupValueRoundTrip(t *testing.T) {
	rgs, err := ParseFile("node.yml", readTestdata(t, "node.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rgs.Groups {
		v, err := EncodeGroupValue(g)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeGroupValue(v)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		again, _ := EncodeGroupValue(back)
		if string(again) != string(v) {
			t.Fatalf("round trip changed the value:\n%s\n%s", v, again)
		}
		if back.Name != g.Name || len(back.Rules) != len(g.Rules) || back.Rules[0].Expr != g.Rules[0].Expr {
			t.Fatalf("decoded %+v, want %+v", back, g)
		}
	}
	if _, err := DecodeGroupValue([]byte("groups: []\n")); err == nil || !strings.Contains(err.Error(), "0 groups, want exactly one") {
		t.Fatalf("an empty value: %v", err)
	}
	if _, err := DecodeGroupValue(make([]byte, MaxGroupBytes+1)); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("an oversized value: %v", err)
	}
}

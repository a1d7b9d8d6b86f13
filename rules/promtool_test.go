package rules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requirePromtool fails (not skips) without promtool: the interop test is
// part of the "done when".
func requirePromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found in PATH (%v): `make deps` installs the Debian package prometheus (make test runs deps first)", err)
	}
	return p
}

// promtoolCheck runs `promtool check rules file` and returns whether it
// passed and its output.
func promtoolCheck(t *testing.T, promtool, file string) (bool, string) {
	t.Helper()
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run promtool: %v", err)
	}
	return err == nil, string(out)
}

// TestPromtoolInterop: the rule files promtool (Debian's prometheus
// package) accepts, Vigil accepts and stores, and each stored value passes
// promtool again; the files promtool refuses, Vigil refuses, at the same
// line and column where both give one.
func TestPromtoolInterop(t *testing.T) {
	promtool := requirePromtool(t)
	ctx := testCtx(t)
	s, _ := testStore(t)
	for _, tc := range []struct {
		file string
		ok   bool
		pos  string // a position both report
	}{
		{file: "node.yml", ok: true}, // the brief's example rule
		{file: "recording.yml", ok: true},
		{file: "bad_yaml.yml", pos: "line 3"},
		{file: "bad_promql.yml", pos: "5:15"},
		{file: "unknown_field.yml", pos: "line 6"},
		{file: "duplicate_group.yml", pos: "6:5"},
		{file: "bad_template.yml"},
		{file: "no_expr.yml"},
		{file: "bad_for.yml"}, // neither gives a position: the duration decoder drops it
		{file: "both_alert_record.yml"},
		{file: "bad_record_name.yml"}, // a UTF-8 name: Vigil stores legacy names only
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			ptOK, ptOut := promtoolCheck(t, promtool, path)
			if ptOK != tc.ok {
				t.Fatalf("promtool check rules: passed=%v, want %v:\n%s", ptOK, tc.ok, ptOut)
			}
			_, perr := ParseFile(path, readTestdata(t, tc.file))
			_, serr := s.PutNamespace(ctx, strings.TrimSuffix(tc.file, ".yml"), readTestdata(t, tc.file))
			if !tc.ok {
				if perr == nil || !errors.Is(serr, ErrInvalid) {
					t.Fatalf("promtool refuses, Vigil: check %v, upload %v\npromtool:\n%s", perr, serr, ptOut)
				}
				if tc.pos != "" && (!strings.Contains(ptOut, tc.pos) || !strings.Contains(perr.Error(), tc.pos)) {
					t.Fatalf("position %q: promtool %q, Vigil %q", tc.pos, ptOut, perr)
				}
				return
			}
			if perr != nil || serr != nil {
				t.Fatalf("promtool accepts, Vigil: check %v, upload %v", perr, serr)
			}
			snap, err := s.Get(ctx, strings.TrimSuffix(tc.file, ".yml"), "")
			if err != nil || len(snap.Groups) == 0 {
				t.Fatalf("stored: %+v %v", snap, err)
			}
			for _, g := range snap.Groups {
				f := filepath.Join(t.TempDir(), "value.yml")
				if err := os.WriteFile(f, g.Value, 0o644); err != nil {
					t.Fatal(err)
				}
				if ok, out := promtoolCheck(t, promtool, f); !ok {
					t.Fatalf("stored value of %s/%s refused by promtool:\n%s\n%s", g.Namespace, g.RuleGroup.Name, g.Value, out)
				}
			}
		})
	}
}

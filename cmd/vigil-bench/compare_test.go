package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompareAgainstRealSystems runs the whole compare against the Debian
// VictoriaMetrics and Prometheus with a tiny load: processes, readiness,
// push, checks, queries, flush, stop, du and the report.
func TestCompareAgainstRealSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real servers")
	}
	for _, b := range []string{"victoria-metrics", "prometheus"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (make deps)", b)
		}
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"compare", "-systems", "vm,prom", "-series", "1000", "-samples", "30",
		"-runs", "3", "-warmups", "1", "-quiet-wait", "0", "-tmp", tmp}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("compare: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	if strings.Contains(out, "Problems found") {
		t.Fatalf("compare found problems:\n%s", out)
	}
	for _, want := range []string{
		"| `count(node_load1)` (10 hosts written) | skipped | 10 | 10 | — | — |",
		"| node_load1 samples stored (300 written) | skipped | 300 | 300 | — | — |",
		"Machine: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// Every measured cell of the two systems is a number.
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| figure") && !strings.HasPrefix(line, "| ---") {
			cells := strings.Split(line, " | ")
			if len(cells) != 6 || cells[2] == "—" || cells[3] == "—" || strings.Contains(line, "error") {
				t.Errorf("row not measured on both: %s", line)
			}
		}
	}
	// The temp dirs are gone.
	left, _ := filepath.Glob(filepath.Join(tmp, "vigil-bench-*"))
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Fatal(err)
	}
}

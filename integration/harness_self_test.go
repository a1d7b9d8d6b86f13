package integration

import (
	"context"
	"testing"
)

// TestHarnessKillRestart checks the process helpers crash tests rely on,
// with node_exporter standing in for vigil: SIGKILL stops it at once, and
// restart brings it back on the same address.
func TestHarnessKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Debian's node_exporter; skipped with -short")
	}
	ne := startNodeExporter(t, "--collector.disable-defaults", "--collector.loadavg")
	probe := httpProbe(ne.URL() + "/metrics")
	firstPid := ne.cmd.Process.Pid

	ne.kill9()
	if ne.running() {
		t.Fatal("running after kill9")
	}
	if err := probe(context.Background()); err == nil {
		t.Fatal("still serving after kill9")
	}

	ne.restart()
	if ne.cmd.Process.Pid == firstPid {
		t.Fatalf("restart kept pid %d", firstPid)
	}
	if err := probe(context.Background()); err != nil {
		t.Fatalf("not serving after restart: %v", err)
	}
	if !ne.logContains("=== harness") || !ne.logContains("Listening on") {
		t.Errorf("log %s lacks the start markers or node_exporter's own output", ne.logPath)
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestActiveIngesters(t *testing.T) {
	tests := []struct {
		name    string
		ring    string
		want    string
		wantErr bool
	}{
		{name: "three active in three zones, front ignored",
			ring: `{"local":"front","members":[
				{"name":"front","roles":["distributor","querier"],"state":"active","healthy":true,"zone":""},
				{"name":"ingester-2","roles":["ingester"],"state":"active","healthy":true,"zone":"zone-2"},
				{"name":"ingester-1","roles":["ingester"],"state":"active","healthy":true,"zone":"zone-1"},
				{"name":"ingester-3","roles":["ingester"],"state":"active","healthy":true,"zone":"zone-3"}]}`,
			want: "ingester-1 (zone-1),ingester-2 (zone-2),ingester-3 (zone-3)"},
		{name: "joining, leaving and dead ones do not count",
			ring: `{"members":[
				{"name":"a","roles":["ingester"],"state":"joining","healthy":true,"zone":"z1"},
				{"name":"b","roles":["ingester"],"state":"active","healthy":false,"zone":"z2"},
				{"name":"c","roles":["ingester"],"state":"leaving","healthy":true,"zone":"z3"},
				{"name":"d","roles":["ingester"],"state":"active","healthy":true,"zone":"z4"}]}`,
			want: "d (z4)"},
		{name: "two in one zone",
			ring: `{"members":[
				{"name":"a","roles":["ingester"],"state":"active","healthy":true,"zone":"z1"},
				{"name":"b","roles":["ingester"],"state":"active","healthy":true,"zone":"z1"}]}`,
			wantErr: true},
		{name: "no members yet", ring: `{"members":null}`, want: ""},
		{name: "html, not json", ring: `<!DOCTYPE html>`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := activeIngesters([]byte(tc.ring))
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && strings.Join(got, ",") != tc.want {
				t.Fatalf("got %q, want %q", strings.Join(got, ","), tc.want)
			}
		})
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := freePorts(12)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || p > 65535 || seen[p] {
			t.Fatalf("bad or repeated port %d in %v", p, ports)
		}
		seen[p] = true
	}
	if len(ports) != 12 {
		t.Fatalf("%d ports, want 12", len(ports))
	}
}

func TestClusterArgs(t *testing.T) {
	ing := clusterArgs(clusterNode{name: "ingester-2", target: "ingester", zone: "zone-2",
		httpPort: 1, grpcPort: 2, gossPort: 3, dir: "/d/ingester-2"}, []string{"127.0.0.1:3", "127.0.0.1:6"})
	front := clusterArgs(clusterNode{name: "front", target: "distributor,querier",
		httpPort: 7, grpcPort: 8, gossPort: 9, dir: "/d/front"}, []string{"127.0.0.1:3", "127.0.0.1:6"})
	for _, want := range []string{"-target=ingester", "-memberlist.node-name=ingester-2", "-memberlist.bind-port=3",
		"-memberlist.join=127.0.0.1:3,127.0.0.1:6", "-ring.zone=zone-2", "-data.dir=/d/ingester-2",
		"-http.listen-address=127.0.0.1:1", "-grpc.listen-address=127.0.0.1:2", "-self-scrape.interval=0"} {
		if !containsArg(ing, want) {
			t.Errorf("ingester args %q lack %s", ing, want)
		}
	}
	if !containsArg(front, "-target=distributor,querier") || containsArg(front, "-ring.zone=") {
		t.Errorf("front args %q", front)
	}
}

func containsArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// children lists the pids whose parent is this process.
func children(t *testing.T) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	me := os.Getpid()
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == me {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, pid)
		}
	}
	return out
}

// TestClusterThatNeverGetsReady starts the cluster from binaries that
// exit at once or never serve: compare must say so in the report, kill
// what it started within the start timeout and leave no process behind.
func TestClusterThatNeverGetsReady(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	falseBin, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false binary")
	}
	// Ignores its arguments and sleeps: up, but never ready.
	sleeper := filepath.Join(t.TempDir(), "sleeper")
	if err := os.WriteFile(sleeper, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, bin, want string
	}{
		{name: "exits at once", bin: falseBin, want: "exited before the cluster was ready"},
		{name: "never ready", bin: sleeper, want: "wait for the cluster: context deadline exceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var stdout, stderr bytes.Buffer
			began := time.Now()
			err = run(ctx, []string{"compare", "-systems", "cluster", "-vigil", tc.bin, "-series", "100", "-samples", "2",
				"-quiet-wait", "0", "-start-timeout", "2s", "-tmp", t.TempDir()}, &stdout, &stderr)
			if err != nil {
				t.Fatalf("compare: %v\n%s", err, stderr.String())
			}
			if took := time.Since(began); took > 20*time.Second {
				t.Errorf("took %v with a 2s start timeout", took)
			}
			out := stdout.String()
			if !strings.Contains(out, "1. Vigil cluster: ") || !strings.Contains(out, tc.want) {
				t.Fatalf("report does not say %q:\n%s\n%s", tc.want, out, stderr.String())
			}
			if left := children(t); len(left) > 0 {
				t.Fatalf("processes left behind: %v", left)
			}
		})
	}
}

// TestCompareVigilAndCluster runs compare on single-node Vigil and the
// three-ingester cluster with a tiny load, from a vigil binary built for
// the test (or VIGIL_BIN): start-up, readiness of the ring, push through
// the front, checks, queries, stop, du, the report with the cluster
// columns and ratio; and nothing left running or on disk.
func TestCompareVigilAndCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds vigil and starts five processes")
	}
	vigil := os.Getenv("VIGIL_BIN")
	if vigil == "" {
		goTool, err := exec.LookPath("go")
		if err != nil {
			t.Skip("no go tool to build vigil")
		}
		vigil = filepath.Join(t.TempDir(), "vigil")
		if out, err := exec.Command(goTool, "build", "-o", vigil, "github.com/vigil-tsdb/vigil/cmd/vigil").CombinedOutput(); err != nil {
			t.Fatalf("build vigil: %v\n%s", err, out)
		}
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"compare", "-systems", "vigil,cluster", "-vigil", vigil, "-series", "1000", "-samples", "30",
		"-runs", "3", "-warmups", "1", "-quiet-wait", "0", "-tmp", tmp}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("compare: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"| figure | Vigil | VictoriaMetrics | Prometheus | Vigil cluster | Vigil/VM | Vigil/Prom | cluster/Vigil |",
		"| `count(node_load1)` (10 hosts written) | 10 | skipped | skipped | 10 | — | — | 1.00× |",
		"| node_load1 samples stored (300 written) | 300 | skipped | skipped | 300 | — | — | 1.00× |",
		"cluster ingest (3 ingesters, RF 3) vs single-node Vigil: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr.String(), "the front sees 3 active ingesters") {
		t.Errorf("no readiness line in the progress output:\n%s", stderr.String())
	}
	// Every row is measured on both, and the cluster's ratio is there.
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| figure") || strings.HasPrefix(line, "| ---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		// The noise row has no ratio when single-node Vigil's figure is 0.
		noRatio := cells[7] == "—" && !(strings.Contains(line, "(noise)") && cells[1] == "0")
		if len(cells) != 8 || cells[1] == "—" || cells[4] == "—" || noRatio || strings.Contains(line, "error") {
			t.Errorf("row not measured on both: %s", line)
		}
	}
	// The only problem a clean run reports is the cluster's unflushed WAL.
	for _, line := range strings.Split(out, "\n") {
		if len(line) > 2 && line[0] >= '1' && line[0] <= '9' && strings.Contains(line, ". ") && !strings.Contains(line, "on disk are WAL") {
			t.Errorf("unexpected problem: %s", line)
		}
	}
	if left := children(t); len(left) > 0 {
		t.Fatalf("processes left behind: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "vigil-bench-*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// FuzzActiveIngesters feeds arbitrary /ring answers to the parser: it
// must not panic, and what it accepts has one ingester per zone.
func FuzzActiveIngesters(f *testing.F) {
	f.Add([]byte(`{"members":[{"name":"a","roles":["ingester"],"state":"active","healthy":true,"zone":"z1"}]}`))
	f.Add([]byte(`{"members":[{"name":"a","roles":["ingester"],"state":"active","healthy":true,"zone":"z1"},` +
		`{"name":"b","roles":["ingester"],"state":"active","healthy":true,"zone":"z1"}]}`))
	f.Add([]byte(`{"members":[{"name":"f","roles":["distributor","querier"],"state":"active","healthy":true}]}`))
	f.Add([]byte(`{"members":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := activeIngesters(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, g := range got {
			if seen[g] {
				t.Fatalf("%q listed twice in %q", g, got)
			}
			seen[g] = true
		}
	})
}

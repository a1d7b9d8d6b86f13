package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/loadgen"
)

// testVigilBinary builds cmd/vigil into the test's temp dir (or takes
// VIGIL_BIN).
func testVigilBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and starts vigil")
	}
	if p := os.Getenv("VIGIL_BIN"); p != "" {
		return p
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build vigil")
	}
	bin := filepath.Join(t.TempDir(), "vigil")
	if out, err := exec.Command(goTool, "build", "-o", bin, "github.com/vigil-tsdb/vigil/cmd/vigil").CombinedOutput(); err != nil {
		t.Fatalf("build vigil: %v\n%s", err, out)
	}
	return bin
}

// testVigil is a single-node vigil started for a test on free loopback
// ports, stopped by pid at the end of the test.
type testVigil struct {
	srv  *server
	url  string
	grpc string
}

func startTestVigil(t *testing.T, bin string) *testVigil {
	t.Helper()
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	url := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	srv, err := startServer("vigil", bin, []string{"-data.dir", filepath.Join(dir, "data"),
		"-http.listen-address", fmt.Sprintf("127.0.0.1:%d", ports[0]), "-grpc.listen-address", grpcAddr,
		"-self-scrape.interval", "2s"}, filepath.Join(dir, "vigil.log"), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.stop(30 * time.Second); err != nil {
			t.Errorf("stop vigil: %v; log: %s", err, srv.logTail(10))
		}
	})
	if err := srv.waitReady(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	return &testVigil{srv: srv, url: url, grpc: grpcAddr}
}

// registryTargets lists the targets of job in Vigil's registry.
func registryTargets(t *testing.T, url, job string) []string {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/registry/targets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Targets []struct {
				Job     string `json:"job"`
				Address string `json:"address"`
			} `json:"targets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tg := range r.Data.Targets {
		if tg.Job == job {
			out = append(out, tg.Address)
		}
	}
	return out
}

// checkPNG decodes a plot and checks it is a real picture: large enough,
// with more than a few colours (axes, text, several curves).
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 200 || fi.Size() < 5_000 {
		t.Errorf("%s: %dx%d, %d bytes: too small", path, b.Dx(), b.Dy(), fi.Size())
	}
	colours := map[[4]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 8 {
		t.Errorf("%s: only %d colours: an empty plot?", path, len(colours))
	}
}

// TestLiveMixedAgainstVigil runs `vigil-bench mixed` for 15 s against a
// real single node: remote write with churn and late samples, exporters
// registered through the registry API and scraped by Vigil's collector,
// the query mix; then the report directory, the PNGs, summary.json with
// 0 lost samples, and the exporters gone from the registry.
func TestLiveMixedAgainstVigil(t *testing.T) {
	v := startTestVigil(t, testVigilBinary(t))
	out := filepath.Join(t.TempDir(), "report")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"mixed", "-url", v.url, "-grpc", v.grpc, "-duration", "15s", "-series", "1000", "-interval", "1s",
		"-churn", "1200", "-ooo-fraction", "0.05", "-verify-fraction", "0.05",
		"-exporters", "4", "-series-per-exporter", "80", "-scrape-interval", "1s", "-qps", "8", "-sample-every", "1s",
		"-out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("mixed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "mixed: PASS") {
		t.Errorf("no PASS verdict:\n%s", stdout.String())
	}
	// Not a terminal: plain progress lines.
	if lines := strings.Count(stderr.String(), "% "); lines < 3 || strings.Contains(stderr.String(), "\r") {
		t.Errorf("progress: %d plain lines, want ≥ 3 and no carriage returns:\n%s", lines, stderr.String())
	}

	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"**Result: PASS**", "## Configuration", "## Figures", "## Query latency by kind",
		"## Verification: PASS", "![ingest](ingest.png)", "| range_1h |", "| label_values |"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
	for _, f := range []string{"ingest.png", "query_latency.png", "server_rss.png", "server_cpu.png"} {
		checkPNG(t, filepath.Join(out, f))
	}

	var s liveSummary
	js, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(js, &s); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if !s.Passed || len(s.Failures) > 0 {
		t.Errorf("summary: passed %v, failures %q", s.Passed, s.Failures)
	}
	if s.Push == nil || s.Push.Acked < 10_000 || s.Push.Failed != 0 || s.Push.Late == 0 || s.Push.Churned == 0 {
		t.Errorf("push summary %+v", s.Push)
	}
	vr := s.Verification
	if vr == nil || vr.Missing != 0 || vr.Different != 0 || vr.Samples == 0 || vr.Found != vr.Samples || vr.Series < 50 {
		t.Errorf("verification %+v", vr)
	}
	if s.Scrape == nil || s.Scrape.Scrapes < 4 || s.Scrape.Samples == 0 {
		t.Errorf("scrape summary %+v", s.Scrape)
	} else if pv := s.Scrape.Verification; pv == nil || pv.Failed() || pv.SeriesStored < s.Scrape.Series || pv.AlwaysUp != 4 {
		t.Errorf("pull path verification %+v (served %d)", pv, s.Scrape.Series)
	}
	if s.Push != nil && (s.Push.NotSent != 0 || s.Push.BehindGroups != 0) {
		t.Errorf("push did not sustain the load: %+v", s.Push)
	}
	if s.Query == nil || s.Query.Finished < 50 || s.Query.Errors != 0 || len(s.Query.Kinds) != len(loadgen.QueryMix()) || s.Query.All.P99ms <= 0 {
		t.Errorf("query summary %+v", s.Query)
	}
	if s.Server.MetricsReads < 10 || s.Server.RSSBytesMax < 1<<20 || s.Server.StoredSamples < float64(s.Push.Acked) {
		t.Errorf("server summary %+v (push acked %d)", s.Server, s.Push.Acked)
	}
	if len(s.Timeline) < 10 {
		t.Errorf("%d timeline points", len(s.Timeline))
	}
	// plan reads the figures the run measured.
	pi, err := parsePlanInput(js)
	if err != nil {
		t.Fatalf("plan_input: %v", err)
	}
	if pi.SamplesPerSecondPerCore == nil || *pi.SamplesPerSecondPerCore <= 0 || pi.RF == nil || *pi.RF != 1 ||
		pi.RemoteWriteBytesPerSample == nil || *pi.RemoteWriteBytesPerSample <= 0 || *pi.RemoteWriteBytesPerSample > 100 {
		t.Errorf("plan_input %+v", pi)
	}
	if left := registryTargets(t, v.url, "vigil-bench-scrape"); len(left) > 0 {
		t.Errorf("exporters left in the registry: %v", left)
	}
	// The exporters stop only once the collector has let them go.
	if log, err := os.ReadFile(v.srv.logPath); err != nil {
		t.Fatal(err)
	} else {
		for _, line := range bytes.Split(log, []byte("\n")) {
			if bytes.Contains(line, []byte("scrape failed")) && bytes.Contains(line, []byte("job=vigil-bench-scrape")) {
				t.Errorf("the collector failed scraping an exporter: %s", line)
			}
		}
	}

	// The same Vigil over the SDK, bounded by count: -max-samples stops
	// the push, -max-queries the queries.
	t.Run("sdk push and count bounds", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "report")
		var stdout, stderr bytes.Buffer
		began := time.Now()
		err := run(ctx, []string{"run", "push", "-url", v.url, "-grpc", v.grpc, "-protocol", "sdk", "-duration", "5s",
			"-series", "300", "-interval", "500ms", "-max-samples", "1500", "-ooo-fraction", "0.1", "-ooo-max-delay", "2",
			"-verify-fraction", "0.1", "-out", out}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("push: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		if took := time.Since(began); took > 30*time.Second {
			t.Errorf("a 5 s run took %v", took)
		}
		var s liveSummary
		js, _ := os.ReadFile(filepath.Join(out, "summary.json"))
		if err := json.Unmarshal(js, &s); err != nil {
			t.Fatal(err)
		}
		if s.Push.Sent > 1500 || s.Push.Acked == 0 || s.Push.Acked != s.Push.Sent || s.Verification.Missing != 0 || s.Verification.Found == 0 {
			t.Errorf("push %+v, verification %+v", s.Push, s.Verification)
		}

		var qout bytes.Buffer
		err = run(ctx, []string{"query", "-url", v.url, "-duration", "5s", "-qps", "20", "-max-queries", "7", "-out", filepath.Join(t.TempDir(), "q")}, &qout, io.Discard)
		if err != nil {
			t.Fatalf("query: %v\n%s", err, qout.String())
		}
		if !strings.Contains(qout.String(), "query: PASS") {
			t.Errorf("query run: %s", qout.String())
		}
	})
}

// TestLiveVerificationDetectsLoss pushes live into one Vigil and verifies
// the acknowledged samples against a second, fresh Vigil that never got
// them (every sample missing), and against the first with one expected
// value changed (one sample different): both fail, and the report says so.
func TestLiveVerificationDetectsLoss(t *testing.T) {
	bin := testVigilBinary(t)
	a := startTestVigil(t, bin)
	b := startTestVigil(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := loadgen.DefaultLiveConfig()
	cfg.Mode, cfg.URL, cfg.Duration = loadgen.ModePush, a.url, 3*time.Second
	cfg.Push.Series, cfg.Push.Interval, cfg.VerifyFraction = 200, 500*time.Millisecond, 0.05
	res, err := loadgen.RunLive(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verify == nil || res.Verify.Failed() || res.Verify.Found == 0 || len(res.Checked) < 10 {
		t.Fatalf("run against a: %+v, %d series", res.Verify, len(res.Checked))
	}

	lost := loadgen.Verify(ctx, b.url, res.Checked)
	if !lost.Failed() || lost.Missing != lost.Samples || lost.Found != 0 || len(lost.Problems) == 0 ||
		!strings.Contains(lost.Problems[0], "series missing") {
		t.Errorf("against a fresh vigil: %+v", lost)
	}
	res.Verify = &lost
	dir := filepath.Join(t.TempDir(), "report")
	if _, err := writeLiveReport(dir, res, nil); err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	for _, want := range []string{"**Result: FAIL**", "## Verification: FAIL", "series missing", fmt.Sprintf("verification: %d missing", lost.Samples)} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	// The pull path checked against the fresh Vigil: none of the
	// exporters' series, no up.
	pull := loadgen.VerifyPull(ctx, http.DefaultClient, b.url, "vigil-bench-scrape", 2, 100, time.Now(), time.Minute)
	if !pull.Failed() || pull.SeriesStored != 0 || pull.AlwaysUp != 0 || pull.Error != "" {
		t.Errorf("pull verification against a fresh vigil: %+v", pull)
	}

	// One expected value changed: Vigil holds the original.
	changed := *res.Checked[0]
	changed.Samples = map[int64]float64{}
	var ts int64
	for k, v := range res.Checked[0].Samples {
		changed.Samples[k] = v
		ts = k
	}
	changed.Samples[ts] += 1
	diff := loadgen.Verify(ctx, a.url, []*loadgen.AckedSeries{&changed})
	if diff.Different != 1 || diff.Missing != 0 || !diff.Failed() {
		t.Errorf("changed value: %+v", diff)
	}
}

// TestLiveRefusesNonLoopback: no request leaves for a target that is not
// loopback unless -allow-remote is given.
func TestLiveRefusesNonLoopback(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "private address", args: []string{"mixed", "-url", "http://10.1.2.3:9009"}},
		{name: "scrape against a remote vigil, allowed or not", args: []string{"scrape", "-url", "http://10.1.2.3:9009", "-allow-remote"}},
		{name: "host name", args: []string{"run", "query", "-url", "http://vigil.example:9009"}},
		{name: "sdk address", args: []string{"run", "push", "-url", "http://127.0.0.1:9", "-protocol", "sdk", "-grpc", "192.168.1.1:9095"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A cancelled context: had the network been tried first, the
			// error would be the cancellation, whatever the clock.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := run(ctx, append(tc.args, "-out", t.TempDir()), io.Discard, io.Discard)
			if !errors.Is(err, loadgen.ErrNotLoopback) {
				t.Fatalf("error %v, want ErrNotLoopback (and no network attempt)", err)
			}
		})
	}
}

func TestLiveCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "no mode", args: []string{"run"}, want: "name a mode"},
		{name: "unknown mode", args: []string{"run", "soak"}, want: `mode "soak"`},
		{name: "too long", args: []string{"mixed", "-duration", "25h"}, want: "duration 25h0m0s"},
		{name: "no duration", args: []string{"mixed", "-duration", "0s"}, want: "duration 0s"},
		{name: "too many exporters", args: []string{"scrape", "-exporters", "10001"}, want: "exporters 10001"},
		{name: "late beyond the window", args: []string{"run", "push", "-ooo-fraction", "0.1", "-interval", "30m"}, want: "out-of-order window"},
		{name: "stray argument", args: []string{"mixed", "extra"}, want: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestLiveKilledTesterLeavesNoTargets: `vigil-bench scrape` killed with
// SIGKILL (no chance to unregister) leaves its exporters in the registry
// only until their leases end.
func TestLiveKilledTesterLeavesNoTargets(t *testing.T) {
	v := startTestVigil(t, testVigilBinary(t))
	const job = "vigil-bench-killed"
	cmd := exec.Command(os.Args[0], "-test.run=^TestLiveKilledTesterHelper$")
	cmd.Env = append(os.Environ(), "VIGIL_BENCH_HELPER_ARGS="+strings.Join([]string{"scrape", "-url", v.url, "-grpc", v.grpc,
		"-duration", "2m", "-exporters", "3", "-series-per-exporter", "10", "-scrape-interval", "1s", "-job", job, "-lease-ttl", "5s",
		"-out", filepath.Join(t.TempDir(), "report")}, "\n"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for len(registryTargets(t, v.url, job)) < 3 {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the exporters were not registered within 30 s:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	for len(registryTargets(t, v.url, job)) > 0 {
		if time.Since(began) > 30*time.Second {
			t.Fatalf("targets still registered 30 s after the tester was killed (lease 5 s): %v", registryTargets(t, v.url, job))
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("targets gone %v after the kill", time.Since(began).Round(100*time.Millisecond))
}

// TestLiveKilledTesterHelper is the process TestLiveKilledTesterLeavesNoTargets
// kills: it runs vigil-bench with the arguments in its environment.
func TestLiveKilledTesterHelper(t *testing.T) {
	args := os.Getenv("VIGIL_BENCH_HELPER_ARGS")
	if args == "" {
		t.Skip("run by TestLiveKilledTesterLeavesNoTargets")
	}
	_ = run(context.Background(), strings.Split(args, "\n"), io.Discard, os.Stderr)
}

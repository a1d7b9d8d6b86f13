package integration

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// vigilPackage is what TestMain builds; VIGIL_BIN names a prebuilt binary
// to use instead (handy when iterating on a test, not on vigil).
const vigilPackage = "github.com/vigil-tsdb/vigil/cmd/vigil"

const (
	// vigilReadyTimeout bounds start-up including WAL replay after a
	// restart; it only costs time when vigil fails to come up.
	vigilReadyTimeout = 90 * time.Second
	// debianReadyTimeout bounds start-up of Prometheus, node_exporter and
	// VictoriaMetrics.
	debianReadyTimeout = 30 * time.Second
	// stopGrace is how long SIGTERM may take (vigil flushes its head to
	// disk) before the harness sends SIGKILL and reports it.
	stopGrace = 30 * time.Second
	// logTailBytes is how much of a process log is copied into the test
	// log when the test fails.
	logTailBytes = 64 << 10
)

// httpClient is shared by every helper so that TestMain can close its idle
// connections before checking for leaked goroutines.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// vigilBuild holds the result of building the vigil binary once per test
// binary run. TestMain builds it eagerly (except under -short); a test that
// needs it first waits for the same sync.Once.
var vigilBuild struct {
	once sync.Once
	dir  string // temporary directory owned by TestMain
	path string
	err  error
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "vigil-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: create build directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	vigilBuild.dir = dir
	if !testing.Short() {
		// A build error is reported by every test that needs vigil, so that
		// tests that do not need it still run.
		vigilBuild.once.Do(buildVigil)
	}
	code := m.Run()
	httpClient.CloseIdleConnections()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "integration: leaked goroutines: %v\n", err)
			return 1
		}
	}
	return code
}

// buildVigil builds cmd/vigil without the race detector: the test binary
// has it, and a race-instrumented server would make timings meaningless.
func buildVigil() {
	if p := os.Getenv("VIGIL_BIN"); p != "" {
		vigilBuild.path = p
		return
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		vigilBuild.err = fmt.Errorf("find the go tool to build vigil: %w", err)
		return
	}
	out := filepath.Join(vigilBuild.dir, "vigil")
	began := time.Now()
	cmd := exec.Command(goTool, "build", "-o", out, vigilPackage)
	output, err := cmd.CombinedOutput()
	if err != nil {
		vigilBuild.err = fmt.Errorf("go build %s: %w\n%s", vigilPackage, err, output)
		return
	}
	vigilBuild.path = out
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "integration: built vigil in %v\n", time.Since(began).Round(time.Millisecond))
	}
}

func vigilBinary(t testing.TB) string {
	t.Helper()
	vigilBuild.once.Do(buildVigil)
	if vigilBuild.err != nil {
		t.Fatalf("vigil binary unavailable: %v", vigilBuild.err)
	}
	return vigilBuild.path
}

// requireDebianBinary returns the path of a binary from a Debian package.
// A missing binary fails the test: interop tests must not pass by not
// running.
func requireDebianBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH (%v): `make deps` installs the Debian package %s (make test runs deps first)", name, err, pkg)
	}
	return p
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// Another process may still take one before ours binds it, so the start
// helpers retry with new ports when a bind fails.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free loopback port: %v", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// proc is one external process started by a test. Its stdout and stderr
// are appended to a log file, copied into the test log when the test fails.
// Methods are called from the test goroutine; mu guards what the waiting
// goroutine writes.
type proc struct {
	t       testing.TB
	name    string // for messages: "vigil", "prometheus", ...
	path    string
	args    []string
	addr    string // main HTTP address, host:port
	logPath string
	// probe reports nil once the process serves requests.
	probe        func(ctx context.Context) error
	readyTimeout time.Duration
	// cleanTerm says SIGTERM must end the process with exit status 0.
	cleanTerm bool

	cmd  *exec.Cmd
	done chan struct{} // closed when the waiting goroutine saw the exit

	mu         sync.Mutex // protects the fields below
	waitErr    error      // cmd.Wait's result once done is closed
	expectExit bool       // a test or the harness asked it to exit
}

// URL is the process' HTTP base URL, without a trailing slash.
func (p *proc) URL() string { return "http://" + p.addr }

// start launches the process and waits until probe succeeds, the process
// exits, or readyTimeout passes.
func (p *proc) start() error {
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s log: %w", p.name, err)
	}
	fmt.Fprintf(logf, "=== harness %s: %s %s\n", time.Now().Format(time.RFC3339Nano), p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	p.mu.Lock()
	p.waitErr, p.expectExit = nil, false
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return p.waitReady()
}

func (p *proc) waitReady() error {
	began := time.Now()
	deadline := began.Add(p.readyTimeout)
	for {
		if !p.running() {
			return fmt.Errorf("%s exited before it was ready: %v", p.name, p.exitErr())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := p.probe(ctx)
		cancel()
		if err == nil {
			p.t.Logf("%s (pid %d) ready on %s after %v", p.name, p.cmd.Process.Pid, p.addr, time.Since(began).Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w", p.name, p.readyTimeout, err)
		}
		select {
		case <-p.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// stop sends SIGTERM, waits up to stopGrace, then sends SIGKILL. It
// returns nil only for exit status 0 after SIGTERM.
func (p *proc) stop() error {
	if !p.running() {
		return fmt.Errorf("%s is not running (exit: %v)", p.name, p.exitErr())
	}
	p.mu.Lock()
	p.expectExit = true
	p.mu.Unlock()
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("send SIGTERM to %s (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		p.t.Logf("%s (pid %d) stopped by SIGTERM in %v: %v", p.name, p.cmd.Process.Pid, time.Since(began).Round(time.Millisecond), exitStatus(p.exitErr()))
		return p.exitErr()
	case <-time.After(stopGrace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) still running %v after SIGTERM; sent SIGKILL", p.name, p.cmd.Process.Pid, stopGrace)
}

// kill9 sends SIGKILL and waits for the exit: a crash, no flush.
func (p *proc) kill9() {
	p.t.Helper()
	if !p.running() {
		p.t.Fatalf("kill -9 %s: not running (exit: %v)", p.name, p.exitErr())
	}
	p.mu.Lock()
	p.expectExit = true
	p.mu.Unlock()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatalf("send SIGKILL to %s (pid %d): %v", p.name, p.cmd.Process.Pid, err)
	}
	<-p.done
	p.t.Logf("%s (pid %d) killed with SIGKILL", p.name, p.cmd.Process.Pid)
}

// restart stops the process gracefully if it runs (failing the test if a
// process that must exit 0 on SIGTERM does not), then starts it again with
// the same arguments, ports and data directory and waits until it is
// ready. After kill9 it is the crash-recovery start.
func (p *proc) restart() {
	p.t.Helper()
	if p.running() {
		if err := p.stop(); err != nil && p.cleanTerm {
			p.t.Fatalf("stop %s for restart: %v", p.name, err)
		}
	}
	if err := p.start(); err != nil {
		p.dumpLog()
		p.t.Fatalf("restart %s: %v", p.name, err)
	}
}

// cleanup stops the process if it still runs, reports an exit nobody asked
// for, and copies the log into the test log if the test failed.
func (p *proc) cleanup() {
	p.mu.Lock()
	unexpected := p.done != nil && !p.expectExit
	p.mu.Unlock()
	switch {
	case p.running():
		if err := p.stop(); err != nil && p.cleanTerm {
			p.t.Errorf("%s did not shut down cleanly on SIGTERM: %v", p.name, err)
		}
	case unexpected:
		p.t.Errorf("%s exited during the test without being asked to: %v", p.name, p.exitErr())
	}
	if p.t.Failed() {
		p.dumpLog()
	}
}

func (p *proc) dumpLog() {
	f, err := os.Open(p.logPath)
	if err != nil {
		p.t.Logf("%s log unavailable: %v", p.name, err)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		p.t.Logf("%s log unavailable: %v", p.name, err)
		return
	}
	note := ""
	if info.Size() > logTailBytes {
		if _, err := f.Seek(-logTailBytes, io.SeekEnd); err == nil {
			note = fmt.Sprintf(", last %d of %d bytes", logTailBytes, info.Size())
		}
	}
	b, _ := io.ReadAll(f)
	p.t.Logf("----- %s log (%s%s) -----\n%s----- end of %s log -----", p.name, p.logPath, note, b, p.name)
}

func (p *proc) logContains(s string) bool {
	b, err := os.ReadFile(p.logPath)
	return err == nil && bytes.Contains(b, []byte(s))
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// launch starts the process that mk describes on nports fresh loopback
// ports, retrying with new ports when a port was taken in between. It
// registers the cleanup and fails the test if the process does not come up.
func launch(t testing.TB, nports int, mk func(ports []int) *proc) *proc {
	t.Helper()
	const attempts = 3
	for attempt := 1; ; attempt++ {
		p := mk(freePorts(t, nports))
		err := p.start()
		if err == nil {
			t.Cleanup(p.cleanup)
			return p
		}
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if attempt < attempts && p.logContains("address already in use") {
			t.Logf("%s: a port was taken before it bound it; retrying with new ports", p.name)
			continue
		}
		p.dumpLog()
		t.Fatalf("%v", err)
	}
}

// httpProbe returns a probe that wants 200 from GET url.
func httpProbe(url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
		}
		return nil
	}
}

// vigilProc is a single-node vigil started by startVigil.
type vigilProc struct {
	*proc
	GRPCAddr string // host:port of the gRPC listener
	DataDir  string
}

// startVigil starts the vigil binary on fresh loopback ports with a new
// data directory and self-scrape off, waits for /-/ready and stops it when
// the test ends (failing the test if SIGTERM does not end it with status
// 0). args are appended after the harness' flags, so they may override
// them.
func startVigil(t testing.TB, args ...string) *vigilProc {
	t.Helper()
	bin := vigilBinary(t)
	dataDir := t.TempDir()
	logDir := t.TempDir()
	v := &vigilProc{DataDir: dataDir}
	v.proc = launch(t, 2, func(ports []int) *proc {
		v.GRPCAddr = loopback(ports[1])
		return &proc{
			t:    t,
			name: "vigil",
			path: bin,
			args: append([]string{
				"-data.dir", dataDir,
				"-http.listen-address", loopback(ports[0]),
				"-grpc.listen-address", v.GRPCAddr,
				"-self-scrape.interval=0",
			}, args...),
			addr:         loopback(ports[0]),
			logPath:      filepath.Join(logDir, "vigil.log"),
			probe:        httpProbe("http://" + loopback(ports[0]) + "/-/ready"),
			readyTimeout: vigilReadyTimeout,
			cleanTerm:    true,
		}
	})
	return v
}

// startNodeExporter starts Debian's prometheus-node-exporter on a fresh
// loopback port; args are its collector flags.
func startNodeExporter(t testing.TB, args ...string) *proc {
	t.Helper()
	bin := requireDebianBinary(t, "prometheus-node-exporter", "prometheus-node-exporter")
	logDir := t.TempDir()
	return launch(t, 1, func(ports []int) *proc {
		return &proc{
			t:            t,
			name:         "node_exporter",
			path:         bin,
			args:         append([]string{"--web.listen-address=" + loopback(ports[0])}, args...),
			addr:         loopback(ports[0]),
			logPath:      filepath.Join(logDir, "node_exporter.log"),
			probe:        httpProbe("http://" + loopback(ports[0]) + "/metrics"),
			readyTimeout: debianReadyTimeout,
		}
	})
}

// startPrometheus starts Debian's Prometheus (2.42) with a fresh TSDB
// directory. config returns the YAML configuration given Prometheus' own
// listen address (for self-scraping); args are extra flags.
func startPrometheus(t testing.TB, config func(self string) string, args ...string) *proc {
	t.Helper()
	bin := requireDebianBinary(t, "prometheus", "prometheus")
	dir := t.TempDir()
	return launch(t, 1, func(ports []int) *proc {
		self := loopback(ports[0])
		cfgPath := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(cfgPath, []byte(config(self)), 0o644); err != nil {
			t.Fatalf("write prometheus config: %v", err)
		}
		return &proc{
			t:    t,
			name: "prometheus",
			path: bin,
			args: append([]string{
				"--config.file=" + cfgPath,
				"--storage.tsdb.path=" + filepath.Join(dir, "data"),
				"--web.listen-address=" + self,
			}, args...),
			addr:         self,
			logPath:      filepath.Join(dir, "prometheus.log"),
			probe:        httpProbe("http://" + self + "/-/ready"),
			readyTimeout: debianReadyTimeout,
			cleanTerm:    true,
		}
	})
}

// startVictoriaMetrics starts Debian's single-node VictoriaMetrics with a
// fresh data directory, with its query-latency offset and response cache
// off so that just-written data is visible at once.
func startVictoriaMetrics(t testing.TB, args ...string) *proc {
	t.Helper()
	bin := requireDebianBinary(t, "victoria-metrics", "victoria-metrics")
	dir := t.TempDir()
	return launch(t, 1, func(ports []int) *proc {
		return &proc{
			t:    t,
			name: "victoria-metrics",
			path: bin,
			args: append([]string{
				"-storageDataPath=" + filepath.Join(dir, "data"),
				"-httpListenAddr=" + loopback(ports[0]),
				"-search.latencyOffset=0s",
				"-search.disableCache",
			}, args...),
			addr:         loopback(ports[0]),
			logPath:      filepath.Join(dir, "victoria-metrics.log"),
			probe:        httpProbe("http://" + loopback(ports[0]) + "/health"),
			readyTimeout: debianReadyTimeout,
			cleanTerm:    true,
		}
	})
}

// eventually calls check every interval until it returns nil, failing the
// test with check's last error when timeout passes. It returns how long it
// took.
func eventually(t testing.TB, timeout, interval time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		err := check()
		if err == nil {
			return time.Since(began)
		}
		if time.Since(began) > timeout {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

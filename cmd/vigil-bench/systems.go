package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-tsdb/vigil/loadgen"
)

// system is one database under test and how to drive it.
type system struct {
	key  string // flag value: vigil, vm, prom
	name string // column title
	path string // binary

	// args is the command line for a data dir (and a scratch dir for
	// config files), an HTTP port and a second port (gRPC) if needed.
	args func(dataDir, workDir string, httpPort, grpcPort int) ([]string, error)
	// start starts the system in dir and waits until it is ready; nil
	// means one process from args (startSingle).
	start func(ctx context.Context, cfg *compareConfig, s *system, dir string, stderr io.Writer) (*deployment, error)
	// afterPush makes ingested data queryable; nil if it already is.
	afterPush func(ctx context.Context, s *server) error
	// beforeStop brings the on-disk data to its settled size; nil if
	// stopping the process does that.
	beforeStop func(ctx context.Context, s *server, res loadgen.Result) error
	// version describes the binary at path; versionText is what it said
	// when compare started.
	version     func(path string) string
	versionText string
	// diskNote says what the disk figure includes.
	diskNote string
	// caches are subdirectories of the data dir holding only regenerable
	// caches, reported apart from the data.
	caches []string
	// walDirs are subdirectories of the data dirs holding a WAL; when
	// they hold more than 1 % of the disk figure a note says how much.
	walDirs []string
}

func vigilSystem(path string) *system {
	return &system{
		key: "vigil", name: "Vigil", path: path,
		args: func(data, work string, httpPort, grpcPort int) ([]string, error) {
			return []string{
				"-data.dir", data,
				"-http.listen-address", fmt.Sprintf("127.0.0.1:%d", httpPort),
				"-grpc.listen-address", fmt.Sprintf("127.0.0.1:%d", grpcPort),
				"-self-scrape.interval=0",
				// The single node's embedded etcd (the target registry)
				// keeps its data outside the measured data dir: its
				// preallocated WAL segment is not series data.
				"-etcd.data-dir", filepath.Join(work, "etcd"),
			}, nil
		},
		version:  goBinaryVersion,
		diskNote: "data dir after SIGTERM (Vigil flushes its head on SIGTERM)",
	}
}

func victoriaMetricsSystem(path string) *system {
	return &system{
		key: "vm", name: "VictoriaMetrics", path: path,
		args: func(data, _ string, httpPort, _ int) ([]string, error) {
			return []string{
				"-storageDataPath", data,
				"-httpListenAddr", fmt.Sprintf("127.0.0.1:%d", httpPort),
				// Queries are evaluated just after the newest sample; by
				// default VictoriaMetrics hides the last minute of data
				// from queries that close to the wall clock.
				"-search.latencyOffset=0s",
			}, nil
		},
		afterPush: func(ctx context.Context, s *server) error {
			// Rows are buffered for up to a second before they are
			// searchable; force_flush makes them so now.
			return httpGetOK(ctx, s.baseURL+"/internal/force_flush")
		},
		beforeStop: vmSettle,
		version:    func(path string) string { return debianVersion("victoria-metrics", path, "-version") },
		diskNote: "storageDataPath after force_flush, force_merge of the loaded months, merges settled, SIGTERM; " +
			"its cache/ directory (caches saved at shutdown, rebuilt if deleted) is counted in the whole-dir figures only",
		caches: []string{"cache"},
	}
}

func prometheusSystem(path string) *system {
	return &system{
		key: "prom", name: "Prometheus", path: path,
		args: func(data, work string, httpPort, _ int) ([]string, error) {
			cfg := filepath.Join(work, "prometheus.yml")
			// No scrape jobs: Prometheus only receives remote write.
			if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 15s\n"), 0o644); err != nil {
				return nil, fmt.Errorf("write prometheus config: %w", err)
			}
			return []string{
				"--config.file", cfg,
				"--storage.tsdb.path", data,
				"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", httpPort),
				"--web.enable-remote-write-receiver",
			}, nil
		},
		version:  func(path string) string { return debianVersion("prometheus", path, "--version") },
		diskNote: "storage.tsdb.path after SIGTERM: WAL + memory-mapped head chunks, no block is cut for less than 2–3 h of data",
	}
}

// vmSettle forces VictoriaMetrics to write and merge everything the load
// produced: force_flush, force_merge of every month partition the data
// touches, then waits until no merge has run for a few seconds.
func vmSettle(ctx context.Context, s *server, res loadgen.Result) error {
	if err := httpGetOK(ctx, s.baseURL+"/internal/force_flush"); err != nil {
		return err
	}
	for _, p := range monthPartitions(res.First, res.Last) {
		if err := httpGetOK(ctx, s.baseURL+"/internal/force_merge?partition_prefix="+p); err != nil {
			return err
		}
	}
	const (
		poll    = 500 * time.Millisecond
		quiet   = 6 // consecutive idle polls
		timeout = 15 * time.Minute
	)
	deadline := time.Now().Add(timeout)
	idle := 0
	for idle < quiet {
		if time.Now().After(deadline) {
			return fmt.Errorf("victoriametrics merges still running after %v", timeout)
		}
		active, err := vmActiveMerges(ctx, s.baseURL)
		if err != nil {
			return err
		}
		if active == 0 {
			idle++
		} else {
			idle = 0
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	return nil
}

// vmActiveMerges sums vm_active_merges and vm_active_force_merges from
// VictoriaMetrics' /metrics.
func vmActiveMerges(ctx context.Context, base string) (float64, error) {
	body, err := httpGet(ctx, base+"/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "vm_active_merges") && !strings.HasPrefix(line, "vm_active_force_merges") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("parse %q: %w", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("no vm_active_merges in %s/metrics", base)
	}
	return sum, nil
}

// monthPartitions lists VictoriaMetrics' partition names (YYYY_MM, UTC)
// from first to last.
func monthPartitions(first, last time.Time) []string {
	var out []string
	m := time.Date(first.UTC().Year(), first.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	for !m.After(last.UTC()) {
		out = append(out, m.Format("2006_01"))
		m = m.AddDate(0, 1, 0)
	}
	return out
}

func httpGet(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	// A few calls per run: no connection reuse, nothing left open.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get %s: HTTP %d: %.200s", url, resp.StatusCode, body)
	}
	return body, nil
}

func httpGetOK(ctx context.Context, url string) error {
	_, err := httpGet(ctx, url)
	return err
}

// goBinaryVersion describes a Go binary from its build info.
func goBinaryVersion(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	if fi, err := os.Stat(path); err == nil {
		v += ", built " + fi.ModTime().UTC().Format("2006-01-02 15:04 MST")
	}
	return v + ", " + bi.GoVersion
}

// debianVersion is the Debian package's version, or what the binary says
// when the package is not installed (a binary from elsewhere).
func debianVersion(pkg, path, versionFlag string) string {
	if owner, err := exec.Command("dpkg-query", "-S", path).Output(); err == nil && strings.HasPrefix(string(owner), pkg+":") {
		if v, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output(); err == nil && len(v) > 0 {
			return "Debian package " + pkg + " " + strings.TrimSpace(string(v))
		}
	}
	if line := firstLine(path, versionFlag); line != "" {
		return line
	}
	return "unknown"
}

// firstLine runs path with arg and returns the first line of its output.
func firstLine(path string, arg string) string {
	out, _ := exec.Command(path, arg).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

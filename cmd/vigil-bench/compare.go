package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vigil-tsdb/vigil/loadgen"
)

// compareConfig is the compare subcommand's configuration.
type compareConfig struct {
	load         loadgen.Config
	small        bool
	systems      []string
	vigilPath    string
	vmPath       string
	promPath     string
	warmups      int
	runs         int
	keep         bool
	tmpDir       string
	startTimeout time.Duration
	stopTimeout  time.Duration
	quietWait    time.Duration
	loadAvg      string // when the run started
}

// measurement is what compare found for one system. Fields are zero when
// the step that measures them did not run; err says why.
type measurement struct {
	sys     *system
	skipped bool
	err     error    // the step that stopped this system's run
	notes   []string // problems that did not stop the run

	push       loadgen.Result
	cpuSeconds float64       // server CPU during the push
	clientCPU  float64       // vigil-bench's own CPU during the push
	otherCPU   float64       // fraction of all CPUs other processes used during the push
	totalCPU   float64       // server CPU over its life except checks and queries
	peakRSS    int64         // VmHWM after ingest and queries
	diskBytes  int64         // the whole data dir
	cacheBytes int64         // of which regenerable caches
	stopTime   time.Duration // flush (VM: flush + merge) and exit

	countLoad1  float64 // count(node_load1)
	storedLoad1 float64 // sum(count_over_time(node_load1[whole load]))
	queries     []queryResult

	ingested     bool // push, cpuSeconds are set
	haveCount    bool
	haveStored   bool
	haveDisk     bool // diskBytes, stopTime are set
	haveTotalCPU bool
	haveOtherCPU bool
}

func (m *measurement) note(format string, args ...any) {
	m.notes = append(m.notes, fmt.Sprintf(format, args...))
}

func parseCompareFlags(args []string, stderr io.Writer) (*compareConfig, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &compareConfig{load: loadgen.DefaultConfig()}
	cfg.load.RegisterFlags(fs)
	fs.BoolVar(&cfg.small, "small", false, "small load: 10k series (100 hosts) × the default samples, about a minute and a half for all four systems; -series still overrides")
	systems := fs.String("systems", "vigil,vm,prom,cluster", "systems to run, comma-separated, of vigil, vm, prom, cluster (a Vigil cluster of 3 ingesters with RF 3 and a distributor+querier front, all on this machine)")
	cluster := fs.Bool("cluster", true, "run the Vigil cluster when -systems lists it; -cluster=false leaves it out")
	fs.StringVar(&cfg.vigilPath, "vigil", "", "vigil binary (default: vigil next to vigil-bench)")
	fs.StringVar(&cfg.vmPath, "victoria-metrics", "victoria-metrics", "VictoriaMetrics binary")
	fs.StringVar(&cfg.promPath, "prometheus", "prometheus", "Prometheus binary")
	fs.IntVar(&cfg.warmups, "warmups", 2, "unmeasured runs of each query")
	fs.IntVar(&cfg.runs, "runs", 20, "measured runs of each query (the median is reported)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep data dirs and logs")
	fs.StringVar(&cfg.tmpDir, "tmp", "", "parent directory for data dirs (default: the system temp dir)")
	fs.DurationVar(&cfg.startTimeout, "start-timeout", time.Minute, "how long a server may take to become ready")
	fs.DurationVar(&cfg.stopTimeout, "stop-timeout", 5*time.Minute, "how long a server may take to exit after SIGTERM")
	fs.DurationVar(&cfg.quietWait, "quiet-wait", 2*time.Minute, "before each push, wait up to this long for other processes to use < 25% of the CPUs (0: don't wait)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.small {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["series"] {
			cfg.load.Series = 10_000
		}
	}
	if err := cfg.load.Validate(); err != nil {
		return nil, err
	}
	if cfg.runs <= 0 || cfg.warmups < 0 {
		return nil, errors.New("runs must be positive and warmups not negative")
	}
	seen := map[string]bool{}
	for _, s := range strings.Split(*systems, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "vigil", "vm", "prom", "cluster":
		default:
			return nil, fmt.Errorf("unknown system %q (want vigil, vm, prom, cluster)", s)
		}
		if seen[s] {
			return nil, fmt.Errorf("system %q listed twice", s)
		}
		seen[s] = true
		if s == "cluster" && !*cluster {
			continue
		}
		cfg.systems = append(cfg.systems, s)
	}
	if len(cfg.systems) == 0 {
		return nil, errors.New("no system to run")
	}
	if cfg.vigilPath == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own path: %w", err)
		}
		cfg.vigilPath = filepath.Join(filepath.Dir(exe), "vigil")
	}
	return cfg, nil
}

// runCompare runs the same load against each system in turn and prints the
// report to stdout.
func runCompare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseCompareFlags(args, stderr)
	if err != nil {
		return err
	}
	// In the order they run: the cluster right after the single node, so
	// that their ratio is least affected by whatever else the machine does
	// meanwhile.
	all := []*system{
		vigilSystem(cfg.vigilPath),
		vigilClusterSystem(cfg.vigilPath),
		victoriaMetricsSystem(cfg.vmPath),
		prometheusSystem(cfg.promPath),
	}
	selected := map[string]bool{}
	for _, s := range cfg.systems {
		selected[s] = true
	}
	// Check every binary before spending minutes on the first system.
	for _, s := range all {
		if !selected[s.key] {
			continue
		}
		p, err := exec.LookPath(s.path)
		if err != nil {
			return fmt.Errorf("%s binary %q: %w (build it, pass its path, or leave it out with -systems)", s.name, s.path, err)
		}
		s.path = p
		// Now, not at the end: the binary may be rebuilt meanwhile.
		s.versionText = s.version(p)
	}

	root, err := os.MkdirTemp(cfg.tmpDir, "vigil-bench-")
	if err != nil {
		return fmt.Errorf("create temp dir: %w", err)
	}
	if cfg.keep {
		fmt.Fprintf(stderr, "keeping data dirs and logs in %s\n", root)
	} else {
		defer os.RemoveAll(root)
	}

	began := time.Now()
	cfg.loadAvg = loadAverage()
	var results []*measurement
	for _, s := range all {
		m := &measurement{sys: s}
		results = append(results, m)
		if !selected[s.key] {
			m.skipped = true
			continue
		}
		if ctx.Err() != nil {
			m.err = ctx.Err()
			continue
		}
		fmt.Fprintf(stderr, "== %s: %s series × %d samples (%s samples)\n", s.name,
			loadgen.Human(float64(cfg.load.Series)), cfg.load.Samples, loadgen.Human(float64(cfg.load.TotalSamples())))
		runSystem(ctx, cfg, s, filepath.Join(root, s.key), m, stderr)
		if m.err != nil {
			fmt.Fprintf(stderr, "== %s: %v\n", s.name, m.err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("compare interrupted: %w", err)
	}
	crossCheck(results)
	var report bytes.Buffer
	writeReport(&report, cfg, results, time.Since(began))
	// Clean up before printing: a closed stdout (| head) kills the
	// process with SIGPIPE on the write.
	if !cfg.keep {
		if err := os.RemoveAll(root); err != nil {
			fmt.Fprintf(stderr, "remove %s: %v\n", root, err)
		}
	}
	if _, err := stdout.Write(report.Bytes()); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// runSystem measures one system; every failure is recorded in m. Every
// process of the system is stopped (or killed) before it returns.
func runSystem(ctx context.Context, cfg *compareConfig, s *system, dir string, m *measurement, stderr io.Writer) {
	start := s.start
	if start == nil {
		start = startSingle
	}
	d, err := start(ctx, cfg, s, dir, stderr)
	if err != nil {
		m.err = err
		return
	}
	defer d.kill()
	base := d.front.baseURL

	// Ingest, when the machine is quiet enough.
	if cfg.quietWait > 0 {
		busy, err := waitQuiet(ctx, cfg.quietWait, quietBusy, stderr)
		if err != nil {
			m.err = err
			return
		}
		if busy >= quietBusy {
			m.note("other processes still used %.0f%% of the CPUs after waiting %v for them to calm down", 100*busy, cfg.quietWait)
		}
	}
	cpu0, err := d.cpuSeconds()
	if err != nil {
		m.err = err
		return
	}
	self0 := selfCPUSeconds()
	machine0, machineErr0 := machineCPUSeconds()
	res, err := loadgen.Push(ctx, cfg.load, base+"/api/v1/write", stderr)
	m.clientCPU = selfCPUSeconds() - self0
	machine1, machineErr1 := machineCPUSeconds()
	m.push = res
	if err != nil {
		m.err = fmt.Errorf("ingest: %w; server log: %s", err, d.logTail(3))
		return
	}
	cpu1, err := d.cpuSeconds()
	if err != nil {
		m.err = err
		return
	}
	m.cpuSeconds = cpu1 - cpu0
	if machineErr0 == nil && machineErr1 == nil && res.Duration > 0 {
		// CPU that neither the server nor the load generator used: other
		// work on the machine, which skews this system's figures.
		other := (machine1 - machine0) - m.cpuSeconds - m.clientCPU
		m.otherCPU = max(other, 0) / res.Duration.Seconds() / float64(runtime.NumCPU())
		m.haveOtherCPU = true
	}
	m.ingested = true

	if s.afterPush != nil {
		if err := s.afterPush(ctx, d.front); err != nil {
			m.err = fmt.Errorf("make data visible: %w", err)
			return
		}
	}

	// Checks and queries, just after the newest sample and off the sample
	// grid, so that left-open (Prometheus 3) and left-closed (2.x) range
	// selectors see the same samples.
	at := res.Last.Add(cfg.load.Interval / 2)
	queryCPU0, err := d.cpuSeconds()
	if err != nil {
		m.err = err
		return
	}
	api := newAPIClient(base)
	defer api.close()
	if v, err := api.instantScalar(ctx, "count(node_load1)", at); err != nil {
		m.note("count(node_load1): %v", err)
	} else {
		m.countLoad1, m.haveCount = v, true
		if int(v) != res.Hosts {
			m.note("count(node_load1) = %v, but %d hosts were written", v, res.Hosts)
		}
	}
	whole := time.Duration(cfg.load.Samples) * cfg.load.Interval
	storedExpr := fmt.Sprintf("sum(count_over_time(node_load1[%s]))", promDuration(whole))
	if v, err := api.instantScalar(ctx, storedExpr, at); err != nil {
		m.note("%s: %v", storedExpr, err)
	} else {
		m.storedLoad1, m.haveStored = v, true
		if want := float64(res.Hosts * cfg.load.Samples); v != want {
			m.note("%s = %v, want %v: %.2f%% of node_load1's samples are missing", storedExpr, v, want, 100*(want-v)/want)
		}
	}
	for _, q := range dashboardQueries(at, res.Hosts) {
		r := api.measureQuery(ctx, q, cfg.warmups, cfg.runs)
		if r.err == nil && r.series != q.wantSeries {
			m.note("%s returned %d series, want %d", q.label, r.series, q.wantSeries)
		}
		m.queries = append(m.queries, r)
	}
	if ctx.Err() != nil {
		m.err = ctx.Err()
		return
	}
	queryCPU1, err := d.cpuSeconds()
	if err != nil {
		m.err = err
		return
	}
	if rss, err := d.peakRSS(); err != nil {
		m.note("peak RSS: %v", err)
	} else {
		m.peakRSS = rss
	}

	// Settle on disk and stop.
	stopBegan := time.Now()
	if s.beforeStop != nil {
		fmt.Fprintf(stderr, "   settling %s on disk\n", s.name)
		if err := s.beforeStop(ctx, d.front, res); err != nil {
			m.err = fmt.Errorf("settle on disk: %w", err)
			return
		}
	}
	if err := d.shutdown(cfg.stopTimeout); err != nil {
		m.err = fmt.Errorf("stop: %w", err)
		return
	}
	m.stopTime = time.Since(stopBegan)
	if total, ok := d.exitedCPU(); ok {
		// Everything but the checks and queries: start-up, ingest, work
		// left after the push was acknowledged (merges, compaction) and
		// the final flush.
		m.totalCPU = total - (queryCPU1 - queryCPU0)
		m.haveTotalCPU = true
	}
	du, cache, err := d.diskUsage(s.caches)
	if err != nil {
		m.err = err
		return
	}
	m.diskBytes, m.cacheBytes, m.haveDisk = du, cache, true
	if len(s.walDirs) > 0 {
		if _, wal, err := d.diskUsage(s.walDirs); err != nil {
			m.note("WAL size: %v", err)
		} else if wal*100 > du {
			m.note("%.1f MiB of the %.1f MiB on disk are WAL (%.2f bytes per sample)", float64(wal)/(1<<20), float64(du)/(1<<20), float64(wal)/float64(res.Samples))
		}
	}
	fmt.Fprintf(stderr, "   %s: %s samples/s, %.1f CPU s per M samples, %.2f bytes/sample on disk\n", s.name,
		loadgen.Human(res.SamplesPerSecond()), m.cpuSeconds/(float64(res.Samples)/1e6), float64(du-cache)/float64(res.Samples))
}

// crossCheck notes where systems that ran disagree on count(node_load1).
func crossCheck(results []*measurement) {
	var ref *measurement
	for _, m := range results {
		if !m.haveCount {
			continue
		}
		if ref == nil {
			ref = m
			continue
		}
		if m.countLoad1 != ref.countLoad1 {
			m.note("count(node_load1) = %v here but %v on %s", m.countLoad1, ref.countLoad1, ref.sys.name)
		}
	}
}

// quietBusy is the share of all CPUs other processes may use when a push
// starts.
const quietBusy = 0.25

// waitQuiet waits until the machine's busy CPU, measured over 2 s windows,
// is below threshold (a fraction of all CPUs), or maxWait has passed, and
// returns the last measurement. It runs while the started server idles, so
// the busy time is other processes'.
func waitQuiet(ctx context.Context, maxWait time.Duration, threshold float64, stderr io.Writer) (float64, error) {
	const window = 2 * time.Second
	deadline := time.Now().Add(maxWait)
	said := false
	for {
		c0, err := machineCPUSeconds()
		if err != nil {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(window):
		}
		c1, err := machineCPUSeconds()
		if err != nil {
			return 0, err
		}
		busy := (c1 - c0) / window.Seconds() / float64(runtime.NumCPU())
		if busy < threshold || time.Now().After(deadline) {
			if said {
				fmt.Fprintf(stderr, "   other processes now use %.0f%% of the CPUs; starting\n", 100*busy)
			}
			return busy, nil
		}
		if !said {
			fmt.Fprintf(stderr, "   other processes use %.0f%% of the CPUs; waiting up to %v for them to calm down\n", 100*busy, maxWait)
			said = true
		}
	}
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/vigil-tsdb/vigil/loadgen"
)

// row is one figure of the report.
type row struct {
	label string
	// value returns the figure for one system; ok is false when it was not
	// measured.
	value  func(m *measurement) (v float64, ok bool)
	format string // for the value
	// failed reports a measured failure to show instead of the value.
	failed func(m *measurement) error
	// unflushed marks figures taken after the stop, which differs for the
	// cluster: its ingesters are killed without a flush, so its ratio to
	// single-node Vigil would compare WAL with flushed chunks.
	unflushed bool
}

func reportRows(cfg *compareConfig, hosts int) []row {
	perM := func(m *measurement) float64 { return float64(m.push.Samples) / 1e6 }
	rows := []row{
		{label: "ingest, samples/s (higher is better)", format: "%.0f",
			value: func(m *measurement) (float64, bool) { return m.push.SamplesPerSecond(), m.ingested }},
		{label: "push wall time, s", format: "%.1f",
			value: func(m *measurement) (float64, bool) { return m.push.Duration.Seconds(), m.ingested }},
		{label: "server CPU during ingest, s per 1 M samples", format: "%.2f",
			value: func(m *measurement) (float64, bool) { return m.cpuSeconds / perM(m), m.ingested && m.push.Samples > 0 }},
		{label: "server CPU from start to exit, without the queries, s per 1 M samples", format: "%.2f",
			value: func(m *measurement) (float64, bool) {
				return m.totalCPU / perM(m), m.haveTotalCPU && m.push.Samples > 0
			}},
		{label: "load generator CPU during ingest, s per 1 M samples", format: "%.2f",
			value: func(m *measurement) (float64, bool) { return m.clientCPU / perM(m), m.ingested && m.push.Samples > 0 }},
		{label: "other processes on the machine during ingest, % of all CPUs (noise)", format: "%.0f",
			value: func(m *measurement) (float64, bool) { return 100 * m.otherCPU, m.haveOtherCPU }},
		{label: "peak RSS (VmHWM) after ingest and queries, MiB", format: "%.0f",
			value: func(m *measurement) (float64, bool) { return float64(m.peakRSS) / (1 << 20), m.peakRSS > 0 }},
		{label: "disk after flush, whole data dir, MiB", format: "%.1f", unflushed: true,
			value: func(m *measurement) (float64, bool) { return float64(m.diskBytes) / (1 << 20), m.haveDisk }},
		{label: "disk, bytes per sample, whole data dir", format: "%.3f", unflushed: true,
			value: func(m *measurement) (float64, bool) {
				return float64(m.diskBytes) / float64(m.push.Samples), m.haveDisk && m.push.Samples > 0
			}},
		{label: "disk, bytes per sample, without regenerable caches", format: "%.3f", unflushed: true,
			value: func(m *measurement) (float64, bool) {
				return float64(m.diskBytes-m.cacheBytes) / float64(m.push.Samples), m.haveDisk && m.push.Samples > 0
			}},
		{label: "flush and stop, s", format: "%.1f", unflushed: true,
			value: func(m *measurement) (float64, bool) { return m.stopTime.Seconds(), m.haveDisk }},
		{label: fmt.Sprintf("`count(node_load1)` (%d hosts written)", hosts), format: "%.0f",
			value: func(m *measurement) (float64, bool) { return m.countLoad1, m.haveCount }},
		{label: fmt.Sprintf("node_load1 samples stored (%d written)", hosts*cfg.load.Samples), format: "%.0f",
			value: func(m *measurement) (float64, bool) { return m.storedLoad1, m.haveStored }},
	}
	for i, q := range dashboardQueries(time.Time{}, hosts) {
		rows = append(rows, row{
			label: "median latency, ms: " + q.label, format: "%.2f",
			value: func(m *measurement) (float64, bool) {
				if i >= len(m.queries) || m.queries[i].err != nil {
					return 0, false
				}
				return float64(m.queries[i].median) / float64(time.Millisecond), true
			},
			failed: func(m *measurement) error {
				if i < len(m.queries) {
					return m.queries[i].err
				}
				return nil
			},
		})
	}
	return rows
}

// writeReport prints the Markdown report: the table, the notes, the
// command, the machine and the versions.
func writeReport(w io.Writer, cfg *compareConfig, results []*measurement, took time.Duration) {
	hosts := cfg.load.Hosts()
	byKey := map[string]*measurement{}
	for _, m := range results {
		byKey[m.sys.key] = m
	}
	fmt.Fprintf(w, "## vigil-bench compare, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Load: %s series (%d hosts × %d node_exporter-shaped series) × %d samples at %v = %s samples, "+
		"%d senders in lockstep, requests of one sample from each of ≤ %d series, seed %d. Query medians over %d runs after %d warm-ups.\n\n",
		loadgen.Human(float64(cfg.load.Series)), hosts, loadgen.SeriesPerHost, cfg.load.Samples, cfg.load.Interval,
		loadgen.Human(float64(cfg.load.TotalSamples())), cfg.load.Concurrency, cfg.load.BatchSize, cfg.load.Seed, cfg.runs, cfg.warmups)

	// Footnotes: numbered per system problem.
	var foot []string
	footFor := map[string][]int{}
	for _, m := range results {
		if m.err != nil {
			foot = append(foot, fmt.Sprintf("%s: %v", m.sys.name, m.err))
			footFor[m.sys.key] = append(footFor[m.sys.key], len(foot))
		}
		for _, n := range m.notes {
			foot = append(foot, fmt.Sprintf("%s: %s", m.sys.name, n))
			footFor[m.sys.key] = append(footFor[m.sys.key], len(foot))
		}
	}

	// The cluster's columns only when it ran or failed, so that a run
	// without it reads as before.
	cols := []string{"vigil", "vm", "prom"}
	ratios := [][2]string{{"vigil", "vm"}, {"vigil", "prom"}}
	header := "| figure | Vigil | VictoriaMetrics | Prometheus |"
	ratioHeader := " Vigil/VM | Vigil/Prom |"
	if c := byKey["cluster"]; c != nil && !c.skipped {
		cols = append(cols, "cluster")
		ratios = append(ratios, [2]string{"cluster", "vigil"})
		header += " Vigil cluster |"
		ratioHeader += " cluster/Vigil |"
	}
	fmt.Fprintln(w, header+ratioHeader)
	fmt.Fprintln(w, "| --- |"+strings.Repeat(" ---: |", len(cols)+len(ratios)))
	for _, r := range reportRows(cfg, hosts) {
		cells := []string{r.label}
		vals := map[string]float64{}
		for _, key := range cols {
			m := byKey[key]
			switch v, ok := r.value(m); {
			case m.skipped:
				cells = append(cells, "skipped")
			case ok:
				vals[key] = v
				cells = append(cells, fmt.Sprintf(r.format, v))
			case r.failed != nil && r.failed(m) != nil:
				cells = append(cells, "error: "+shorten(r.failed(m).Error(), 60))
			default:
				cells = append(cells, "—")
			}
		}
		for _, q := range ratios {
			a, okA := vals[q[0]]
			b, okB := vals[q[1]]
			switch {
			case r.unflushed && q[0] == "cluster":
				cells = append(cells, "not flushed")
			case okA && okB && b != 0:
				cells = append(cells, fmt.Sprintf("%.2f×", a/b))
			default:
				cells = append(cells, "—")
			}
		}
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	fmt.Fprintln(w)
	if len(foot) > 0 {
		fmt.Fprintln(w, "Problems found:")
		fmt.Fprintln(w)
		for i, f := range foot {
			fmt.Fprintf(w, "%d. %s\n", i+1, f)
		}
		fmt.Fprintln(w)
	}
	writeTargets(w, byKey)

	fmt.Fprintln(w, "How each figure is taken:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "- ingest: wall clock of the whole push, first request to last acknowledgement, "+
		"with the load generator on the same cores (its own CPU is in the table).")
	fmt.Fprintln(w, "- CPU during ingest: utime+stime of the server process from /proc/<pid>/stat, just before and just after the push. "+
		"From start to exit: the exited process' rusage minus what the checks and queries used, so it includes "+
		"work done after the push was acknowledged (merges, the final flush).")
	fmt.Fprintln(w, "- queries: evaluated at the newest sample + interval/2; every answer must be non-empty.")
	for _, m := range results {
		if !m.skipped {
			fmt.Fprintf(w, "- disk, %s: %s.\n", m.sys.name, m.sys.diskNote)
		}
	}
	if c := byKey["cluster"]; c != nil && !c.skipped {
		fmt.Fprintf(w, "- Vigil cluster: %d × `vigil -target=ingester` (one zone each; RF 3, so each stores every series) and one "+
			"`-target=distributor,querier` front that takes the push and the queries, all on this machine, repair off "+
			"(`-ingester.repair-interval=%v`). CPU is summed over the %d processes, RSS is the sum of each one's peak. "+
			"Flush and stop: SIGTERM to the front until it exits, then SIGKILL to the ingesters (a SIGTERMed ingester "+
			"would try a hand-off that cannot complete here), so no head is flushed and its disk and stop figures have no "+
			"ratio to single-node Vigil; CPU from start to exit lacks that flush too.\n",
			clusterIngesters, clusterRepairInterval, clusterIngesters+1)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Command:")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "    %s\n\n", shellQuote(os.Args))
	fmt.Fprintf(w, "Machine: %s, %d CPUs, %s memory, kernel %s; load average %s at the start. Whole run took %s.\n\n",
		cpuModel(), runtime.NumCPU(), memTotal(), kernel(), cfg.loadAvg, took.Round(time.Second))
	fmt.Fprintln(w, "Versions:")
	fmt.Fprintln(w)
	for _, m := range results {
		if !m.skipped {
			fmt.Fprintf(w, "- %s: %s (%s)\n", m.sys.name, m.sys.versionText, m.sys.path)
		}
	}
	fmt.Fprintf(w, "- vigil-bench: %s\n", runtime.Version())
}

// writeTargets compares Vigil's figures with the project's targets.
func writeTargets(w io.Writer, byKey map[string]*measurement) {
	v, vm, prom, cluster := byKey["vigil"], byKey["vm"], byKey["prom"], byKey["cluster"]
	type target struct {
		what string
		got  float64
		want string
		met  bool
	}
	var ts []target
	ratio := func(a, b float64) float64 { return a / b }
	if v.ingested && vm.ingested {
		r := ratio(v.push.SamplesPerSecond(), vm.push.SamplesPerSecond())
		ts = append(ts, target{"ingest vs VictoriaMetrics", r, "≥ 0.50×", r >= 0.5})
	}
	if v.ingested && prom.ingested {
		r := ratio(v.push.SamplesPerSecond(), prom.push.SamplesPerSecond())
		ts = append(ts, target{"ingest vs Prometheus", r, "≥ 1.00×", r >= 1})
		r = ratio(v.cpuSeconds/float64(v.push.Samples), prom.cpuSeconds/float64(prom.push.Samples))
		ts = append(ts, target{"CPU per sample vs Prometheus", r, "≤ 1.00×", r <= 1})
	}
	if v.haveDisk && prom.haveDisk {
		r := ratio(float64(v.diskBytes)/float64(v.push.Samples), float64(prom.diskBytes)/float64(prom.push.Samples))
		ts = append(ts, target{"bytes per sample vs Prometheus", r, "≤ 1.00×", r <= 1})
	}
	if cluster != nil && v.ingested && cluster.ingested {
		r := ratio(cluster.push.SamplesPerSecond(), v.push.SamplesPerSecond())
		ts = append(ts, target{fmt.Sprintf("cluster ingest (%d ingesters, RF 3) vs single-node Vigil", clusterIngesters), r, "≥ 0.33×", r >= 0.33})
	}
	if len(ts) == 0 {
		return
	}
	fmt.Fprintln(w, "Against this stage's targets:")
	fmt.Fprintln(w)
	for _, t := range ts {
		verdict := "met"
		if !t.met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "- %s: %.2f× (target %s): %s\n", t.what, t.got, t.want, verdict)
	}
	fmt.Fprintln(w)
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// shellQuote renders args as a shell command line.
func shellQuote(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=,:", r))
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	b, err := parseStatusKB(f, "MemTotal")
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
}

// loadAverage is the 1, 5 and 15 minute load averages: other work on the
// machine skews every figure.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

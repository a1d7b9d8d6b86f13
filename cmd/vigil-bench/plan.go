package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// plan turns measured per-core, per-series and per-sample figures into the
// size of a cluster for a fleet: node counts, RAM, disk per retention tier
// and network. It measures nothing itself: the figures come from
// docs/benchmarks.md (defaultPlanFigures) or from a JSON file written by a
// capacity run (-from, see plan_input.go and docs/capacity.md).

// planConfig is what the operator asks for.
type planConfig struct {
	hosts          int
	seriesPerHost  int
	interval       time.Duration
	retention      []tierRetention // raw first, then 1m, then 1h, those enabled
	rf             int
	from           string  // plan input file; empty: the defaults
	headroom       float64 // share of every node's cores, RAM and disk kept free
	coresPerNode   int
	ramPerNodeGiB  float64
	netPerNodeGbit float64
}

// tierRetention is one tier of --retention.
type tierRetention struct {
	tier   string        // "raw", "1m" or "1h"
	keep   time.Duration // how long the tier is kept
	window time.Duration // the tier's window; 0 for raw
}

func defaultPlanConfig() planConfig {
	ret, err := parseRetention("7d:raw,30d:1m,365d:1h")
	if err != nil {
		panic(err) // a constant
	}
	return planConfig{
		hosts: 100_000, seriesPerHost: 1_000, interval: 10 * time.Second,
		retention: ret, rf: 3, headroom: 0.5, coresPerNode: 16, ramPerNodeGiB: 64, netPerNodeGbit: 10,
	}
}

func (c *planConfig) registerFlags(f *flag.FlagSet) {
	f.IntVar(&c.hosts, "hosts", c.hosts, "hosts in the fleet")
	f.IntVar(&c.seriesPerHost, "series-per-host", c.seriesPerHost, "active series per host (node_exporter + middleware + application)")
	f.DurationVar(&c.interval, "interval", c.interval, "scrape or push interval of every series")
	f.Func("retention", "retention per tier, `DUR:TIER,...` with TIER raw, 1m or 1h and DUR like 7d or 36h (default 7d:raw,30d:1m,365d:1h)", func(s string) error {
		r, err := parseRetention(s)
		if err != nil {
			return err
		}
		c.retention = r
		return nil
	})
	f.IntVar(&c.rf, "rf", c.rf, "replication factor (-distributor.replication-factor)")
	f.StringVar(&c.from, "from", c.from, "JSON file with measured figures (a plan_input object, docs/capacity.md); figures it lacks come from the defaults")
	f.Float64Var(&c.headroom, "headroom", c.headroom, "share of each node's cores, RAM, network and disk to keep free, in [0, 1): 0.5 plans nodes at most half busy")
	f.IntVar(&c.coresPerNode, "cores-per-node", c.coresPerNode, "CPU cores per node")
	f.Float64Var(&c.ramPerNodeGiB, "ram-per-node", c.ramPerNodeGiB, "RAM per node, GiB")
	f.Float64Var(&c.netPerNodeGbit, "net-per-node", c.netPerNodeGbit, "network bandwidth per node and direction, Gbit/s")
}

// maxPlanSeries bounds the fleet, far above any real one, so that node
// counts stay well inside an int.
const maxPlanSeries = 1e12

// validate names the flag of the first invalid value.
func (c *planConfig) validate() error {
	switch {
	case c.hosts <= 0:
		return fmt.Errorf("--hosts %d: must be positive", c.hosts)
	case c.seriesPerHost <= 0:
		return fmt.Errorf("--series-per-host %d: must be positive", c.seriesPerHost)
	case float64(c.hosts)*float64(c.seriesPerHost) > maxPlanSeries:
		return fmt.Errorf("--hosts %d × --series-per-host %d: more than %g series, beyond what this model was made for", c.hosts, c.seriesPerHost, maxPlanSeries)
	case c.interval < time.Millisecond:
		return fmt.Errorf("--interval %v: must be at least 1ms", c.interval)
	case c.rf <= 0:
		return fmt.Errorf("--rf %d: must be positive", c.rf)
	case math.IsNaN(c.headroom) || c.headroom < 0 || c.headroom >= 1:
		return fmt.Errorf("--headroom %v: must be at least 0 and below 1 (the share of each node kept free)", c.headroom)
	case c.coresPerNode <= 0:
		return fmt.Errorf("--cores-per-node %d: must be positive", c.coresPerNode)
	case math.IsNaN(c.ramPerNodeGiB) || math.IsInf(c.ramPerNodeGiB, 0) || c.ramPerNodeGiB <= 0:
		return fmt.Errorf("--ram-per-node %v: must be a positive number of GiB", c.ramPerNodeGiB)
	case math.IsNaN(c.netPerNodeGbit) || math.IsInf(c.netPerNodeGbit, 0) || c.netPerNodeGbit <= 0:
		return fmt.Errorf("--net-per-node %v: must be a positive number of Gbit/s", c.netPerNodeGbit)
	case len(c.retention) == 0:
		return errors.New("--retention: empty")
	}
	return nil
}

// parseRetention parses --retention: comma-separated DUR:TIER pairs, raw
// required, each tier at most once, and each coarser tier kept at least as
// long as the finer ones (the compactor's rule, docs/downsampling.md). The
// result is ordered raw, 1m, 1h.
func parseRetention(s string) ([]tierRetention, error) {
	windows := map[string]time.Duration{"raw": 0, "1m": time.Minute, "1h": time.Hour}
	order := map[string]int{"raw": 0, "1m": 1, "1h": 2}
	var set [3]*tierRetention
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		dur, tier, ok := strings.Cut(part, ":")
		if !ok || dur == "" || tier == "" {
			return nil, fmt.Errorf("--retention %q: %q is not DURATION:TIER (e.g. 7d:raw)", s, part)
		}
		w, known := windows[tier]
		if !known {
			return nil, fmt.Errorf("--retention %q: unknown tier %q (want raw, 1m or 1h)", s, tier)
		}
		d, err := parseDays(dur)
		if err != nil {
			return nil, fmt.Errorf("--retention %q: tier %s: %w", s, tier, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("--retention %q: tier %s: retention %s must be positive (leave the tier out to disable it)", s, tier, dur)
		}
		if set[order[tier]] != nil {
			return nil, fmt.Errorf("--retention %q: tier %s given twice", s, tier)
		}
		set[order[tier]] = &tierRetention{tier: tier, keep: d, window: w}
	}
	if set[0] == nil {
		return nil, fmt.Errorf("--retention %q: no raw tier (raw samples are always kept for some time, e.g. 7d:raw)", s)
	}
	var out []tierRetention
	for _, t := range set {
		if t == nil {
			continue
		}
		if n := len(out); n > 0 && t.keep < out[n-1].keep {
			return nil, fmt.Errorf("--retention %q: tier %s kept %s, shorter than tier %s (%s): a coarser tier must be kept at least as long",
				s, t.tier, fmtDays(t.keep), out[n-1].tier, fmtDays(out[n-1].keep))
		}
		out = append(out, *t)
	}
	return out, nil
}

// parseDays parses 7d, 1.5d, or anything time.ParseDuration takes (36h).
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		f, err := strconv.ParseFloat(n, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f > 100*365 {
			return 0, fmt.Errorf("bad duration %q (want e.g. 7d or 36h)", s)
		}
		return time.Duration(f * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (want e.g. 7d or 36h)", s)
	}
	return d, nil
}

func fmtDays(d time.Duration) string {
	days := d.Hours() / 24
	if days == math.Trunc(days) {
		return fmt.Sprintf("%.0f d", days)
	}
	return fmt.Sprintf("%.3g d", days)
}

// The model.

// planResult is the computed size. Rates are per second; bytes are bytes.
type planResult struct {
	series        float64 // active series (one copy)
	clientSPS     float64 // samples/s the clients send
	storedSPS     float64 // samples/s the ingesters store: clientSPS × RF
	ingesterCores float64 // cores busy with ingest, all ingesters
	distCores     float64 // cores busy, all distributors
	usableCores   float64 // per node, after headroom
	usableRAM     float64 // bytes per node, after headroom
	usableNet     float64 // bytes/s per node and direction, after headroom

	ingestersByCPU, ingestersByRAM, ingestersByNet int
	ingesters                                      int // the largest of the above and RF, rounded up to a multiple of RF
	distributorsByCPU, distributorsByNet           int
	distributors                                   int // the largest of the above and 2
	queriers                                       int

	headRAM float64 // ingester RSS, all ingesters

	tiers    []tierDisk
	walBytes float64 // all ingesters
	disk     float64 // all tiers and the WAL, all ingesters

	remoteWriteIn float64 // bytes/s into the distributors if every sample arrives by remote write
	pushIn        float64 // bytes/s into the distributors if every sample arrives from collectors (gRPC)
	replication   float64 // bytes/s from the distributors to the ingesters
}

// tierDisk is the disk one tier needs, all replicas.
type tierDisk struct {
	tierRetention
	days         float64 // days of data on disk at most: retention + the day partition being filled
	units        float64 // samples or windows on disk, all replicas
	bytesPerUnit float64
	bytes        float64
}

// Retention drops whole UTC days once they ended longer ago than the
// retention (docs/downsampling.md, Compactor 4), so just before a drop a
// tier holds its retention plus one day.
const partitionDays = 1

// computePlan is the arithmetic, kept apart from flags and printing so that
// the tests can check it against a hand computation.
func computePlan(c planConfig, f planFigures) planResult {
	var r planResult
	r.series = float64(c.hosts) * float64(c.seriesPerHost)
	r.clientSPS = r.series / c.interval.Seconds()
	rf := float64(c.rf)
	r.storedSPS = r.clientSPS * rf

	ingCPU, distCPU := f.cpuPerSample(c.rf)
	r.ingesterCores = r.storedSPS * ingCPU
	r.distCores = r.clientSPS * distCPU
	free := 1 - c.headroom
	r.usableCores = float64(c.coresPerNode) * free
	r.usableRAM = c.ramPerNodeGiB * (1 << 30) * free
	r.usableNet = c.netPerNodeGbit * 1e9 / 8 * free

	r.remoteWriteIn = r.clientSPS * f.remoteWriteBytesPerSample.v
	r.pushIn = r.clientSPS * f.pushBytesPerSample.v
	r.replication = r.storedSPS * f.pushBytesPerSample.v

	r.headRAM = r.series * rf * f.rssBytesPerSeries.v
	r.ingestersByCPU = ceilInt(r.ingesterCores / r.usableCores)
	r.ingestersByRAM = ceilInt(r.headRAM / r.usableRAM)
	r.ingestersByNet = ceilInt(r.replication / r.usableNet)
	n := max(r.ingestersByCPU, r.ingestersByRAM, r.ingestersByNet, c.rf)
	// One zone per replica, the same number of ingesters in each
	// (docs/cluster.md: replicas span min(RF, zones) zones).
	r.ingesters = (n + c.rf - 1) / c.rf * c.rf
	// A distributor receives its share of the clients' samples (by
	// remote write or, larger, by the collectors' gRPC pushes) and sends RF
	// times as many to the ingesters; a link carries both directions at
	// once, so the larger of the two counts.
	r.distributorsByCPU = ceilInt(r.distCores / r.usableCores)
	r.distributorsByNet = ceilInt(max(r.remoteWriteIn, r.pushIn, r.replication) / r.usableNet)
	// Two of each stateless role, so that one can fail or restart.
	r.distributors = max(2, r.distributorsByCPU, r.distributorsByNet)
	r.queriers = 2

	for _, t := range c.retention {
		td := tierDisk{tierRetention: t, days: t.keep.Hours()/24 + partitionDays}
		secs := td.days * 86400
		switch t.tier {
		case "raw":
			td.units = r.storedSPS * secs
			td.bytesPerUnit = f.bytesPerSample.v
		case "1m":
			td.units = r.series * rf * secs / 60
			td.bytesPerUnit = f.bytesPerWindow1m.v
		case "1h":
			td.units = r.series * rf * secs / 3600
			td.bytesPerUnit = f.bytesPerWindow1h.v
		}
		td.bytes = td.units * td.bytesPerUnit
		r.disk += td.bytes
		r.tiers = append(r.tiers, td)
	}
	r.walBytes = r.storedSPS * f.walSeconds * f.walBytesPerSample.v
	r.disk += r.walBytes
	return r
}

func ceilInt(x float64) int {
	if x <= 0 {
		return 0
	}
	return int(math.Ceil(x - 1e-9)) // 74.0000000001 from float noise is 74
}

// runPlan is `vigil-bench plan`.
func runPlan(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := defaultPlanConfig()
	cfg.registerFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: vigil-bench plan [--hosts N --series-per-host S --interval 10s --retention 7d:raw,30d:1m,365d:1h --rf 3] [--from summary.json] [--headroom 0.5] [--cores-per-node N --ram-per-node GiB --net-per-node Gbit/s]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("plan: unexpected arguments %q", fs.Args())
	}
	if err := cfg.validate(); err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	figs := defaultPlanFigures()
	if cfg.from != "" {
		in, err := readPlanInput(cfg.from)
		if err != nil {
			return fmt.Errorf("plan: --from %s: %w", cfg.from, err)
		}
		figs = in.apply(figs, cfg.from)
	}
	writePlan(stdout, cfg, figs, computePlan(cfg, figs), args)
	return nil
}

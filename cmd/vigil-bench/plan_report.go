package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

// writePlan prints the plan as Markdown: the fleet, the size table, the
// figures used with their sources, and what the model leaves out.
func writePlan(w io.Writer, c planConfig, f planFigures, r planResult, args []string) {
	fmt.Fprintf(w, "## vigil-bench plan\n\n")
	fmt.Fprintf(w, "Command: `vigil-bench plan%s`\n\n", quoteArgs(args))
	var tiers []string
	for _, t := range c.retention {
		name := t.tier
		if t.window > 0 {
			name += " windows"
		}
		tiers = append(tiers, fmt.Sprintf("%s %s", name, fmtDays(t.keep)))
	}
	fmt.Fprintf(w, "Fleet: %s hosts × %s series = **%s active series**, one sample per series every %v: "+
		"**%s samples/s** from the clients, **%s samples/s stored** with RF %d. Retention: %s. "+
		"Nodes of %d cores, %s GiB and %s Gbit/s; %.0f %% of each node's cores, RAM, network and disk kept free (--headroom %g).\n\n",
		group(c.hosts), group(c.seriesPerHost), si(r.series), c.interval,
		si(r.clientSPS), si(r.storedSPS), c.rf, strings.Join(tiers, ", "),
		c.coresPerNode, trimFloat(c.ramPerNodeGiB), trimFloat(c.netPerNodeGbit), 100*c.headroom, c.headroom)

	ingCPU, distCPU := f.cpuPerSample(c.rf)
	rf := float64(c.rf)
	copies := r.series * rf
	fmt.Fprintln(w, "| what | size | computed as |")
	fmt.Fprintln(w, "| --- | ---: | --- |")
	row := func(what, size, how string) { fmt.Fprintf(w, "| %s | %s | %s |\n", what, size, how) }
	row("**ingesters**", fmt.Sprintf("**%d**", r.ingesters),
		fmt.Sprintf("the largest of: by CPU %d, by RAM %d, by network %d, RF %d; rounded up to a multiple of RF (one zone per replica, equal zones)",
			r.ingestersByCPU, r.ingestersByRAM, r.ingestersByNet, c.rf))
	row("ingester cores busy, all", fmt.Sprintf("%.1f", r.ingesterCores),
		fmt.Sprintf("%s samples/s stored ÷ %s samples/s per core; %.1f usable cores per node", si(r.storedSPS), si(1/ingCPU), r.usableCores))
	row("ingester RAM (RSS), all", gib(r.headRAM),
		fmt.Sprintf("%s series copies × %s per copy; %s usable per node", si(copies), kib(f.rssBytesPerSeries.v), gib(r.usableRAM)))
	row("ingester RAM (RSS), each", gib(r.headRAM/float64(r.ingesters)),
		fmt.Sprintf("%.0f %% of a node's RAM", 100*r.headRAM/float64(r.ingesters)/(c.ramPerNodeGiB*(1<<30))))
	row("**distributors**", fmt.Sprintf("**%d**", r.distributors),
		fmt.Sprintf("the largest of: by CPU %d (%.1f cores busy: %s samples/s ÷ %s samples/s per core at RF %d), by network %d (%s in the busier direction, %s usable per node), 2",
			r.distributorsByCPU, r.distCores, si(r.clientSPS), si(1/distCPU), c.rf, r.distributorsByNet, netRate(max(r.remoteWriteIn, r.pushIn, r.replication)), netRate(r.usableNet)))
	row("**queriers**", fmt.Sprintf("**%d**", r.queriers), "not sized: query load is not modelled; 2 so that one can fail")
	for _, t := range r.tiers {
		what := "disk, raw samples"
		how := fmt.Sprintf("%s samples/s stored × %s d × %s B per sample", si(r.storedSPS), trimFloat(t.days), trimFloat(t.bytesPerUnit))
		if t.window > 0 {
			what = fmt.Sprintf("disk, %s tier", t.tier)
			how = fmt.Sprintf("%s series copies × %s windows per day × %s d × %s B per window",
				si(copies), group(int(math.Round(86400/t.window.Seconds()))), trimFloat(t.days), trimFloat(t.bytesPerUnit))
		}
		row(what, dec(t.bytes, "B"), how+fmt.Sprintf(" (retention %s + the day being filled)", fmtDays(t.keep)))
	}
	row("disk, WAL", dec(r.walBytes, "B"), fmt.Sprintf("%s samples/s stored × %.0f s between head flushes × %s B per sample",
		si(r.storedSPS), f.walSeconds, trimFloat(f.walBytesPerSample.v)))
	row("**disk, all**", "**"+dec(r.disk, "B")+"**", "the rows above, every replica")
	row("disk, each ingester", dec(r.disk/float64(r.ingesters), "B"),
		fmt.Sprintf("provision %s with %.0f %% free", dec(r.disk/float64(r.ingesters)/(1-c.headroom), "B"), 100*c.headroom))
	row("network in, remote write", netRate(r.remoteWriteIn),
		fmt.Sprintf("%s samples/s × %s B per sample (snappy); each distributor %s", si(r.clientSPS), trimFloat(f.remoteWriteBytesPerSample.v), netRate(r.remoteWriteIn/float64(r.distributors))))
	row("network in, or from Vigil's collectors (gRPC)", netRate(r.pushIn),
		fmt.Sprintf("%s samples/s × %s B per sample (uncompressed protobuf); each distributor %s", si(r.clientSPS), trimFloat(f.pushBytesPerSample.v), netRate(r.pushIn/float64(r.distributors))))
	row("network, distributors → ingesters", netRate(r.replication),
		fmt.Sprintf("%s samples/s × RF %d × %s B per sample; each distributor sends %s, each ingester receives %s",
			si(r.clientSPS), c.rf, trimFloat(f.pushBytesPerSample.v), netRate(r.replication/float64(r.distributors)), netRate(r.replication/float64(r.ingesters))))

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Figures used:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| figure | value | source |")
	fmt.Fprintln(w, "| --- | ---: | --- |")
	fig := func(name, val, src string) { fmt.Fprintf(w, "| %s | %s | %s |\n", name, val, src) }
	fig("ingester: samples stored per second per core", si(1/f.ingesterCPU.v), f.ingesterCPU.source)
	fig(fmt.Sprintf("distributor: client samples per second per core at RF %d", c.rf), si(1/distCPU),
		fmt.Sprintf("%.3g CPU µs per sample + %.3g per replica; %s", 1e6*f.distFixedCPU.v, 1e6*f.distReplicaCPU.v, f.distFixedCPU.source))
	fig("ingester RSS per series copy", kib(f.rssBytesPerSeries.v), f.rssBytesPerSeries.source)
	fig("raw bytes per sample on disk", trimFloat(f.bytesPerSample.v), f.bytesPerSample.source)
	fig("bytes per 1 m window on disk", trimFloat(f.bytesPerWindow1m.v), f.bytesPerWindow1m.source)
	fig("bytes per 1 h window on disk", trimFloat(f.bytesPerWindow1h.v), f.bytesPerWindow1h.source)
	fig("WAL bytes per sample", trimFloat(f.walBytesPerSample.v), f.walBytesPerSample.source)
	fig("remote-write bytes per sample", trimFloat(f.remoteWriteBytesPerSample.v), f.remoteWriteBytesPerSample.source)
	fig("gRPC push bytes per sample", trimFloat(f.pushBytesPerSample.v), f.pushBytesPerSample.source)

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Not in this model (docs/capacity.md, \"Where the estimate is weakest\"): query load (queriers and the ingesters' "+
		"share of it), compaction and repair (their CPU and transient memory, and the copying after a node or zone comes back), "+
		"series churn, the collectors and their scrape traffic, etcd, and network framing (HTTP/2, TCP/IP: a few per cent).")
}

// si prints x with 3 significant digits and k, M, G or T.
func si(x float64) string {
	for _, u := range []struct {
		f float64
		s string
	}{{1e12, " T"}, {1e9, " G"}, {1e6, " M"}, {1e3, " k"}} {
		if math.Abs(x) >= u.f*0.9995 {
			return sig3(x/u.f) + u.s
		}
	}
	return sig3(x)
}

// dec prints a byte count or rate with decimal units (kB, MB, GB, TB, PB).
func dec(x float64, unit string) string {
	for _, u := range []struct {
		f float64
		s string
	}{{1e15, " P"}, {1e12, " T"}, {1e9, " G"}, {1e6, " M"}, {1e3, " k"}} {
		if math.Abs(x) >= u.f*0.9995 {
			return sig3(x/u.f) + u.s + unit
		}
	}
	return sig3(x) + " " + unit
}

// netRate prints bytes per second as bytes and bits per second.
func netRate(bps float64) string {
	return dec(bps, "B/s") + " (" + dec(8*bps, "bit/s") + ")"
}

func gib(x float64) string {
	if x >= 1024*(1<<30)*0.9995 {
		return sig3(x/(1<<40)) + " TiB"
	}
	return sig3(x/(1<<30)) + " GiB"
}

func kib(x float64) string { return sig3(x/1024) + " KiB" }

// sig3 prints x with 3 significant digits, no exponent, no trailing zeros.
func sig3(x float64) string {
	a := math.Abs(x)
	var s string
	switch {
	case a >= 99.95:
		s = fmt.Sprintf("%.0f", x)
	case a >= 9.995:
		s = fmt.Sprintf("%.1f", x)
	case a >= 0.9995:
		s = fmt.Sprintf("%.2f", x)
	default:
		s = fmt.Sprintf("%.3g", x)
	}
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// trimFloat prints a figure as given, up to 4 significant digits.
func trimFloat(x float64) string {
	return fmt.Sprintf("%.4g", x)
}

// group prints n with thousands separators.
func group(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + group(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func quoteArgs(args []string) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t'\"`|\\$") {
			fmt.Fprintf(&b, "%q", a)
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

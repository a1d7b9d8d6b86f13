package loadgen

import "fmt"

// kind says how a series' value evolves from one sample to the next.
type kind uint8

const (
	// counter: starts at rate × host uptime and grows by rate × interval,
	// jittered, every sample (or, with pStep < 1, by a small integer now and
	// then, like error and drop counters).
	counter kind = iota
	// gauge: starts uniformly in [lo, hi] and random-walks inside it.
	gauge
	// constant: drawn once in [lo, hi] (or fixed when lo == hi).
	constant
	// clock: seconds since the epoch at the sample's timestamp plus a
	// sub-millisecond offset (node_time_seconds).
	clock
	// bootTime: the host's boot time in seconds, constant.
	bootTime
)

// template is one series of a host. The catalog holds a host's series in a
// fixed order, so series i of the whole load is catalog[i%len(catalog)] of
// host i/len(catalog).
type template struct {
	name   string
	labels []string // extra label name/value pairs besides instance and job
	kind   kind
	// counter: per-second rate drawn per series in [lo, hi].
	// gauge, constant: value range.
	lo, hi float64
	// gauge: the largest step as a fraction of hi-lo.
	walk float64
	// counter, gauge: probability that a sample differs from the previous
	// one; 0 means always.
	pStep float64
	// values are multiples of quantum (0.01 for CPU seconds, 4096 for page
	// sized byte counts, 1 for packet counts); 0 means no rounding.
	quantum float64
}

const (
	gib = 1 << 30
	mib = 1 << 20
)

// cpuModes are node_exporter's modes with per-CPU busy fractions (rates of
// node_cpu_seconds_total in seconds per second).
var cpuModes = []struct {
	mode   string
	lo, hi float64
}{
	{"idle", 0.45, 0.95},
	{"user", 0.02, 0.35},
	{"system", 0.01, 0.10},
	{"iowait", 0, 0.05},
	{"irq", 0, 0.005},
	{"softirq", 0, 0.02},
	{"nice", 0, 0.01},
	{"steal", 0, 0.01},
}

// mounts are the filesystems every synthetic host has.
var mounts = []struct{ device, fstype, mountpoint string }{
	{"/dev/sda1", "ext4", "/"},
	{"/dev/sda2", "ext4", "/boot"},
	{"/dev/sdb1", "xfs", "/var/lib"},
}

var (
	netDevices  = []string{"eth0", "lo"}
	diskDevices = []string{"sda", "sdb"}
)

const cpusPerHost = 2

// catalog is the series of one host, modelled on node_exporter 1.x on a
// small two-CPU Linux VM. Its length is SeriesPerHost.
var catalog = buildCatalog()

// SeriesPerHost is the number of series each synthetic host exports.
var SeriesPerHost = len(catalog)

func buildCatalog() []template {
	var c []template
	add := func(t template) { c = append(c, t) }

	for cpu := 0; cpu < cpusPerHost; cpu++ {
		for _, m := range cpuModes {
			add(template{name: "node_cpu_seconds_total", labels: []string{"cpu", fmt.Sprint(cpu), "mode", m.mode},
				kind: counter, lo: m.lo, hi: m.hi, quantum: 0.01})
		}
	}

	// Memory: totals are constant, the rest wander in page-sized steps.
	page := 4096.0
	add(template{name: "node_memory_MemTotal_bytes", kind: constant, lo: 16 * gib, hi: 16 * gib})
	add(template{name: "node_memory_SwapTotal_bytes", kind: constant, lo: 2 * gib, hi: 2 * gib})
	for _, g := range []struct {
		name   string
		lo, hi float64
		walk   float64
	}{
		{"node_memory_MemFree_bytes", 0.5 * gib, 6 * gib, 0.01},
		{"node_memory_MemAvailable_bytes", 4 * gib, 12 * gib, 0.01},
		{"node_memory_Buffers_bytes", 100 * mib, 600 * mib, 0.005},
		{"node_memory_Cached_bytes", 2 * gib, 8 * gib, 0.005},
		{"node_memory_Active_bytes", 2 * gib, 8 * gib, 0.01},
		{"node_memory_Inactive_bytes", 1 * gib, 5 * gib, 0.01},
		{"node_memory_SwapFree_bytes", 1.5 * gib, 2 * gib, 0.001},
		{"node_memory_Dirty_bytes", 0, 64 * mib, 0.1},
		{"node_memory_Slab_bytes", 200 * mib, 800 * mib, 0.002},
		{"node_memory_Shmem_bytes", 10 * mib, 300 * mib, 0.002},
		{"node_memory_Mapped_bytes", 200 * mib, 1 * gib, 0.005},
		{"node_memory_PageTables_bytes", 10 * mib, 80 * mib, 0.005},
	} {
		add(template{name: g.name, kind: gauge, lo: g.lo, hi: g.hi, walk: g.walk, quantum: page})
	}

	for i, m := range mounts {
		l := []string{"device", m.device, "fstype", m.fstype, "mountpoint", m.mountpoint}
		size := []float64{50 * gib, 1 * gib, 200 * gib}[i]
		files := []float64{3276800, 65536, 13107200}[i]
		add(template{name: "node_filesystem_size_bytes", labels: l, kind: constant, lo: size, hi: size})
		add(template{name: "node_filesystem_avail_bytes", labels: l, kind: gauge, lo: 0.2 * size, hi: 0.8 * size, walk: 0.0005, pStep: 0.6, quantum: page})
		add(template{name: "node_filesystem_free_bytes", labels: l, kind: gauge, lo: 0.25 * size, hi: 0.85 * size, walk: 0.0005, pStep: 0.6, quantum: page})
		add(template{name: "node_filesystem_files", labels: l, kind: constant, lo: files, hi: files})
		add(template{name: "node_filesystem_files_free", labels: l, kind: gauge, lo: 0.5 * files, hi: 0.95 * files, walk: 0.0001, pStep: 0.3, quantum: 1})
		add(template{name: "node_filesystem_readonly", labels: l, kind: constant})
	}

	for _, dev := range netDevices {
		l := []string{"device", dev}
		scale := 1.0
		if dev == "lo" {
			scale = 0.1
		}
		add(template{name: "node_network_receive_bytes_total", labels: l, kind: counter, lo: 2e3 * scale, hi: 5e6 * scale, quantum: 1})
		add(template{name: "node_network_transmit_bytes_total", labels: l, kind: counter, lo: 2e3 * scale, hi: 3e6 * scale, quantum: 1})
		add(template{name: "node_network_receive_packets_total", labels: l, kind: counter, lo: 10 * scale, hi: 5e3 * scale, quantum: 1})
		add(template{name: "node_network_transmit_packets_total", labels: l, kind: counter, lo: 10 * scale, hi: 4e3 * scale, quantum: 1})
		add(template{name: "node_network_receive_errs_total", labels: l, kind: counter, hi: 3, pStep: 0.01, quantum: 1})
		add(template{name: "node_network_transmit_errs_total", labels: l, kind: counter, hi: 2, pStep: 0.005, quantum: 1})
		add(template{name: "node_network_receive_drop_total", labels: l, kind: counter, hi: 5, pStep: 0.02, quantum: 1})
		add(template{name: "node_network_transmit_drop_total", labels: l, kind: counter, hi: 2, pStep: 0.005, quantum: 1})
	}

	for _, dev := range diskDevices {
		l := []string{"device", dev}
		add(template{name: "node_disk_reads_completed_total", labels: l, kind: counter, lo: 0.5, hi: 200, quantum: 1})
		add(template{name: "node_disk_writes_completed_total", labels: l, kind: counter, lo: 2, hi: 400, quantum: 1})
		add(template{name: "node_disk_read_bytes_total", labels: l, kind: counter, lo: 4e3, hi: 8e6, quantum: 512})
		add(template{name: "node_disk_written_bytes_total", labels: l, kind: counter, lo: 2e4, hi: 2e7, quantum: 512})
		add(template{name: "node_disk_io_time_seconds_total", labels: l, kind: counter, lo: 0.001, hi: 0.3, quantum: 0.001})
		add(template{name: "node_disk_read_time_seconds_total", labels: l, kind: counter, lo: 0.0005, hi: 0.2, quantum: 0.001})
		add(template{name: "node_disk_write_time_seconds_total", labels: l, kind: counter, lo: 0.001, hi: 0.5, quantum: 0.001})
		add(template{name: "node_disk_io_now", labels: l, kind: gauge, lo: 0, hi: 8, walk: 0.25, pStep: 0.3, quantum: 1})
	}

	add(template{name: "node_load1", kind: gauge, lo: 0, hi: 4, walk: 0.05, quantum: 0.01})
	add(template{name: "node_load5", kind: gauge, lo: 0, hi: 3, walk: 0.02, quantum: 0.01})
	add(template{name: "node_load15", kind: gauge, lo: 0, hi: 2.5, walk: 0.01, quantum: 0.01})

	add(template{name: "node_context_switches_total", kind: counter, lo: 500, hi: 2e4, quantum: 1})
	add(template{name: "node_intr_total", kind: counter, lo: 300, hi: 1.5e4, quantum: 1})
	add(template{name: "node_forks_total", kind: counter, lo: 0.1, hi: 30, quantum: 1})
	add(template{name: "node_procs_running", kind: gauge, lo: 1, hi: 6, walk: 0.3, quantum: 1})
	add(template{name: "node_procs_blocked", kind: gauge, lo: 0, hi: 2, walk: 0.5, pStep: 0.1, quantum: 1})
	add(template{name: "node_boot_time_seconds", kind: bootTime})
	add(template{name: "node_time_seconds", kind: clock})
	add(template{name: "node_entropy_available_bits", kind: constant, lo: 256, hi: 256})
	add(template{name: "node_filefd_allocated", kind: gauge, lo: 800, hi: 4000, walk: 0.01, quantum: 1})
	add(template{name: "node_filefd_maximum", kind: constant, lo: 9223372036854775807, hi: 9223372036854775807})
	add(template{name: "node_netstat_Tcp_CurrEstab", kind: gauge, lo: 2, hi: 300, walk: 0.02, quantum: 1})
	add(template{name: "node_sockstat_TCP_inuse", kind: gauge, lo: 5, hi: 400, walk: 0.02, quantum: 1})
	add(template{name: "node_vmstat_pgfault", kind: counter, lo: 100, hi: 2e4, quantum: 1})
	add(template{name: "node_vmstat_pgmajfault", kind: counter, hi: 3, pStep: 0.05, quantum: 1})
	add(template{name: "node_uname_info", labels: []string{
		"domainname", "(none)", "machine", "x86_64", "nodename", "", // nodename is filled with the host name
		"release", "6.1.0-28-amd64", "sysname", "Linux", "version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
	}, kind: constant, lo: 1, hi: 1})
	add(template{name: "node_timex_offset_seconds", kind: gauge, lo: -0.002, hi: 0.002, walk: 0.05, quantum: 1e-6})
	add(template{name: "node_textfile_scrape_error", kind: constant})
	return c
}

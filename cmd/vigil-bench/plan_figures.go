package main

import "fmt"

// figure is one measured figure and where it came from.
type figure struct {
	v      float64
	source string
}

// planFigures are the figures plan multiplies. CPU figures are seconds of
// CPU per sample; sizes are bytes.
type planFigures struct {
	// ingesterCPU is an ingester's CPU per sample it stores (one replica).
	ingesterCPU figure
	// distFixedCPU is a distributor's CPU per sample it receives, whatever
	// the RF (decode, validate, route); distReplicaCPU is its CPU per
	// sample and replica (encode and send the push to one ingester). They
	// share one source.
	distFixedCPU, distReplicaCPU figure
	// rssBytesPerSeries is an ingester's RSS per series copy at steady
	// state, without the process' fixed part (a few hundred MB, left to the
	// headroom).
	rssBytesPerSeries figure
	// bytesPerSample is raw data on disk per sample and replica, after the
	// head was flushed to Badger.
	bytesPerSample figure
	// bytesPerWindow1m and bytesPerWindow1h are one series' window of the
	// 1 m and 1 h tiers on disk, per replica.
	bytesPerWindow1m, bytesPerWindow1h figure
	// walBytesPerSample is the WAL per sample and replica; the WAL holds
	// walSeconds of samples (it is truncated once the head is flushed).
	walBytesPerSample figure
	walSeconds        float64
	// remoteWriteBytesPerSample is a remote-write 1.0 body (protobuf,
	// snappy) per sample; pushBytesPerSample the gRPC push that collectors
	// send to distributors and distributors to ingesters (uncompressed
	// protobuf), per sample and replica.
	remoteWriteBytesPerSample, pushBytesPerSample figure
}

// CPU shares of the single node by role, from the CPU profile in
// docs/benchmarks.md ("What limits Vigil…", lines 444-453; 14:55+ code,
// 100 k series, 541 k samples/s): per client sample the distributor side
// does remote-write decode 14.8 %, validation 5.5 % and the rest of the
// distributor 15.9 − 5.5 − 7.9 = 2.5 %; per replica it encodes the push
// (`FromSeries`, 7.9 %); per stored sample an ingester does storage Append
// 29.5 %, ToSeries 8.7 % and the gRPC unmarshal 8.1 %. The garbage
// collector (15 %) and the 8 % the table does not name are spread over the
// three in proportion, which the ratios below do by leaving them out.
const (
	shareDistFixed   = 14.8 + 5.5 + 2.5 // 22.8
	shareDistReplica = 7.9
	shareIngester    = 29.5 + 8.7 + 8.1 // 46.3
)

// splitCPU splits cpu, the CPU seconds per client sample of a whole
// deployment (every process summed) measured at replication factor rf,
// into an ingester's CPU per stored sample and a distributor's fixed and
// per-replica CPU per client sample, in the profile's proportions:
// cpu = k·(fixed + rf·replica + rf·ingester).
func splitCPU(cpu float64, rf int) (ingester, distFixed, distReplica float64) {
	k := cpu / (shareDistFixed + float64(rf)*(shareDistReplica+shareIngester))
	return k * shareIngester, k * shareDistFixed, k * shareDistReplica
}

// splitDistributorCPU splits a distributor's CPU per client sample,
// measured at replication factor rf, into its fixed and per-replica parts
// in the profile's proportions.
func splitDistributorCPU(cpu float64, rf int) (fixed, replica float64) {
	k := cpu / (shareDistFixed + float64(rf)*shareDistReplica)
	return k * shareDistFixed, k * shareDistReplica
}

// cpuPerSample is an ingester's CPU per stored sample and a distributor's
// CPU per client sample at replication factor rf.
func (f planFigures) cpuPerSample(rf int) (ingester, distributor float64) {
	return f.ingesterCPU.v, f.distFixedCPU.v + float64(rf)*f.distReplicaCPU.v
}

// defaultPlanFigures are the figures measured so far, with where each came
// from. Line numbers are those of docs/benchmarks.md and
// docs/downsampling.md at the time of writing (2026-12-07); docs/capacity.md
// repeats the derivations.
func defaultPlanFigures() planFigures {
	var f planFigures

	// CPU: the 3-ingester RF 3 cluster on a quiet machine, the follow-up run
	// reported at 2026-11-23 17:28 UTC (docs/benchmarks.md lines 76-81):
	// 187,661 samples/s and 9.96 CPU s per million client samples, the four
	// processes (3 ingesters, 1 distributor+querier front) summed, all on
	// the same 2 cores. The split between front and ingesters was not
	// measured (line 121-122): splitCPU uses the profile's shares.
	const clusterCPUPerM, clusterRF = 9.96, 3
	ing, fixed, rep := splitCPU(clusterCPUPerM/1e6, clusterRF)
	cpuSrc := fmt.Sprintf("docs/benchmarks.md, cluster follow-up run 2026-11-23 17:28 UTC (quiet, 2 shared cores, 3 ingesters + 1 front): %.2f CPU s per M client samples at RF %d, split by the profile's role shares (lines 444-453)", clusterCPUPerM, clusterRF)
	f.ingesterCPU = figure{ing, cpuSrc}
	f.distFixedCPU = figure{fixed, cpuSrc}
	f.distReplicaCPU = figure{rep, cpuSrc}

	// RSS: measured for this plan (docs/capacity.md, "RSS per series"):
	// three fresh single nodes (the 2026-12-07 build), one push each at a
	// 10 s interval, then VmHWM (peak RSS) in kB. 100 k series × 60
	// samples: 462,224; 400 k × 60: 1,209,276; 100 k × 360: 812,300. The
	// first two give the cost of a series with 10 minutes of samples and a
	// fixed part (the process, Badger's memtables, buffers); the third, less
	// that fixed part, a series with an hour of samples, which is what the
	// head keeps at 10 s (closed chunks stay until they end an
	// -storage.out-of-order-window, 1 h, before the newest sample;
	// docs/storage.md, Flush 5). The compare runs' figures (8.27 KiB per
	// copy: the 17:28 cluster's 2424 MiB over 4 processes ÷ 300 k copies,
	// docs/benchmarks.md line 82) include each process' fixed part divided
	// by only 100 k series.
	const hwm60k, hwm400k60, hwm100k360 = 462_224 * 1024.0, 1_209_276 * 1024.0, 812_300 * 1024.0
	per60 := (hwm400k60 - hwm60k) / 300_000
	fixedRSS := hwm60k - 100_000*per60
	f.rssBytesPerSeries = figure{(hwm100k360 - fixedRSS) / 100_000,
		fmt.Sprintf("single node, 2026-12-07 01:01-01:06 UTC (docs/capacity.md): peak RSS after 100 k and 400 k series × 60 samples at 10 s (%.0f B per series, %.0f MB fixed) and 100 k × 360 samples (1 h, what the head keeps): (VmHWM − fixed) ÷ series", per60, fixedRSS/1e6)}

	// Raw bytes on disk: single-node Vigil after its shutdown flush, the
	// latest default run (2026-11-23 17:20 UTC, line 48: 3.272 bytes per
	// sample, whole data dir, node_exporter-shaped load). The cluster's own
	// figure is WAL only (it is killed, not flushed; lines 134-141).
	f.bytesPerSample = figure{3.272, "docs/benchmarks.md, run 2026-11-23 17:20 UTC, single node after its flush, whole data dir (line 48)"}

	// WAL: the cluster's unflushed data dirs, ≈ 12.1 bytes per sample per
	// copy (line 139); the WAL is truncated at every head flush,
	// -storage.flush-interval 5m by default (line 138).
	f.walBytesPerSample = figure{12.1, "docs/benchmarks.md, run 2026-11-23 17:20 UTC, cluster WAL per copy (line 139)"}
	f.walSeconds = 300

	// Tiers: `make bench-downsample BENCH_SERIES=100 BENCH_INTERVAL=10s`,
	// run for this plan on 2026-12-07 00:57 UTC (docs/capacity.md has the
	// output): 100 counters every 10 s for 31 days, compacted to both
	// tiers. Aggregate chunk bytes before Badger's zstd: 93,201,946 for
	// 4,464,000 1 m windows (20.9 B), 2,398,860 for 74,400 1 h windows
	// (32.2 B); the closed data dir grew by 78.5 MB with both tiers. The
	// growth is shared between the tiers in proportion to their chunk
	// bytes: zstd kept 82 % of them. (At a 60 s scrape it kept 39 %,
	// docs/benchmarks.md lines 338-343: a 1 m window of one sample repeats
	// one value in five columns, which zstd removes; at 10 s it does not.)
	const (
		chunk1m, windows1m = 93_201_946, 4_464_000
		chunk1h, windows1h = 2_398_860, 74_400
		tierDiskGrowth     = 78.5e6
	)
	kept := tierDiskGrowth / (chunk1m + chunk1h)
	tierSrc := "`make bench-downsample BENCH_SERIES=100 BENCH_INTERVAL=10s`, 2026-12-07 00:57 UTC (docs/capacity.md): counters at 10 s, "
	f.bytesPerWindow1m = figure{kept * chunk1m / windows1m, tierSrc + fmt.Sprintf("%.1f B per window before zstd × %.2f (data dir growth ÷ chunk bytes)", float64(chunk1m)/windows1m, kept)}
	f.bytesPerWindow1h = figure{kept * chunk1h / windows1h, tierSrc + fmt.Sprintf("%.1f B per window before zstd × %.2f", float64(chunk1h)/windows1h, kept)}

	// Network: loadgen's node_exporter-shaped series (100 per host), one
	// sample per series per request as a client that keeps up sends them,
	// 2,000 samples per request (Prometheus' default max_samples_per_send).
	// TestPlanNetworkFigures measures both on every test run and fails
	// when these drift by more than 3 %.
	f.remoteWriteBytesPerSample = figure{17.8, "TestPlanNetworkFigures (plan_test.go): loadgen.Push's bodies, node_exporter-shaped series, 2,000 samples per request"}
	f.pushBytesPerSample = figure{104.2, "TestPlanNetworkFigures (plan_test.go): ingesterpb.PushRequest of the same series, one sample each"}
	return f
}

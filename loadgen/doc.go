// Package loadgen generates synthetic, node_exporter-shaped metrics and
// pushes them to a Prometheus remote-write 1.0 endpoint, for capacity tests
// (cmd/vigil-bench) against Vigil, VictoriaMetrics and Prometheus alike.
//
// A Generator makes SeriesPerHost (100) series per host, modelled on
// node_exporter on a two-CPU Linux VM: node_cpu_seconds_total{cpu,mode},
// node_memory_*_bytes, node_filesystem_*{device,fstype,mountpoint},
// node_network_*_total{device}, node_disk_*{device}, node_load1/5/15 and a
// dozen more, all with instance="host-<n>:9100" and job="node". Counters
// grow by jittered per-series rates (CPU seconds in 0.01 s steps, bytes and
// packets in integers, error counters now and then), gauges random-walk
// within a range (memory in 4 KiB pages, load with two decimals), a few
// values are constant, and node_time_seconds tracks the timestamp. Values
// are deterministic given the seed; timestamps are exact multiples of the
// interval from the start (no scrape jitter).
//
// Push sends Config.Series × Config.Samples samples ending at Config.End
// (default now), in time order, as snappy-compressed prompb.WriteRequests
// from Config.Concurrency senders, each owning a share of the series, and
// returns a Result (samples acknowledged, wall time, retries, errors).
//
// RunLive (live*.go, scrape.go, query.go, verify.go) is the live capacity
// test behind `vigil-bench run`: a LiveConfig picks the engines (push at
// real time over remote write or the SDK, with churn and out-of-order
// samples; synthetic Exporters registered in Vigil's target registry
// under leases; a dashboard query mix at a rate), every one bounded by a
// duration and a count and refusing non-loopback targets unless allowed.
// It samples Vigil's /metrics into Points while it runs, records the
// acknowledged samples of a random subset of the pushed series (Recorder)
// and reads them back afterwards (Verify), then checks the exporters'
// series (VerifyPull). It returns a LiveResult, whose Failures is the
// run's one verdict; the report is cmd/vigil-bench's.
//
// In the data flow it stands outside Vigil, where Prometheus or an agent
// would: it talks to Vigil's public endpoints only (remote write, the
// gRPC write and target APIs through package sdk, the query and targets
// APIs, /metrics).
package loadgen

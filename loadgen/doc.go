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
// In the data flow it stands outside Vigil, where Prometheus or an agent
// would: it talks to the HTTP remote-write endpoint only.
package loadgen

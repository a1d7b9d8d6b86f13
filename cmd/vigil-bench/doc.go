// Command vigil-bench is Vigil's capacity tester.
//
//	vigil-bench push -url http://127.0.0.1:9009/api/v1/write [-series N -samples R -concurrency C ...]
//	vigil-bench compare [-small] [-series N -samples R -concurrency C] [-systems vigil,vm,prom,cluster] [-cluster=false]
//	vigil-bench run push|scrape|query|mixed -url http://127.0.0.1:9009 [-duration 2m] [-out DIR] [...]
//	vigil-bench mixed|scrape|query [...]   (short for run mixed|scrape|query)
//	vigil-bench plan [--hosts N --series-per-host S --interval 10s --retention 7d:raw,30d:1m,365d:1h --rf 3] [--from summary.json]
//
// push sends a synthetic node_exporter-shaped load (package loadgen) to one
// remote-write endpoint and prints what it achieved.
//
// compare starts Vigil (bin/vigil next to vigil-bench, or -vigil),
// VictoriaMetrics and Prometheus one after the other on free 127.0.0.1
// ports, each with a fresh data directory, pushes the same load to each,
// and measures ingest rate, server CPU per sample, peak RSS, bytes per
// sample on disk after a flush and the median latency of five dashboard
// queries, then prints one Markdown table with Vigil's ratios to the
// others.
//
// The "cluster" system (on by default; -cluster=false leaves it out) is
// Vigil as a cluster on the same machine: three `vigil -target=ingester`
// processes in three zones and one `-target=distributor,querier` front,
// with gossip on 127.0.0.1. compare waits until the front's /ring shows
// the three ingesters active, pushes the same load to the front, sums CPU
// and RSS over the four processes and disk over the ingesters' data dirs,
// and reports the cluster's ratio to single-node Vigil. It stops the
// front with SIGTERM and kills the ingesters (see stopCluster for why).
//
// run puts live load on a running Vigil for -duration (package loadgen's
// RunLive): push (series sampled at real time over remote write or the Go
// SDK, with churn and late samples), scrape (synthetic exporters on
// 127.0.0.1 registered under leases through the SDK, scraped by its
// collectors, removed at the end), query (a dashboard mix at -qps) or
// mixed (all three). It draws a progress bar on a terminal and plain
// lines elsewhere, samples Vigil's /metrics every -sample-every, then
// reads back every acknowledged sample of a random -verify-fraction of the
// pushed series and checks that Vigil holds the exporters' series. The report directory (-out) gets report.md, summary.json
// (with plan's plan_input) and PNG plots (liveplot.go, gonum/plot): ingest
// rate, query latency percentiles, Vigil's RSS and CPU. README.md's
// "Capacity tester" documents the files and fields. The exit status is
// non-zero for any lost or different sample, failed request or query.
// Targets must be loopback addresses unless -allow-remote is given; push
// keeps the backfill meaning above.
//
// plan measures nothing: it multiplies measured figures (CPU per sample
// of ingesters and distributors, RSS per series, bytes per sample and per
// tier window on disk, bytes per sample on the wire) into the size of a
// cluster for a fleet: ingester, distributor and querier counts, RAM, disk
// per retention tier and network, printed as Markdown with every figure's
// source. The figures default to docs/benchmarks.md's (defaultPlanFigures);
// --from reads a "plan_input" object from a capacity run's JSON summary
// instead. docs/capacity.md shows it for the brief's fleet.
//
// Every process it starts is stopped or killed by pid before it exits, on
// error and on Ctrl-C too, and its temporary directories are removed
// (unless -keep).
package main

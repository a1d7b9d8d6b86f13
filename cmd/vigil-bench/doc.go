// Command vigil-bench is Vigil's capacity tester.
//
//	vigil-bench push -url http://127.0.0.1:9009/api/v1/write [-series N -samples R -concurrency C ...]
//	vigil-bench compare [-small] [-series N -samples R -concurrency C] [-systems vigil,vm,prom,cluster] [-cluster=false]
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
// Every process it starts is stopped or killed by pid before it exits, on
// error and on Ctrl-C too, and its temporary directories are removed
// (unless -keep).
package main

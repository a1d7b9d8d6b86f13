// Command vigil-bench is Vigil's capacity tester.
//
//	vigil-bench push -url http://127.0.0.1:9009/api/v1/write [-series N -samples R -concurrency C ...]
//	vigil-bench compare [-small] [-series N -samples R -concurrency C] [-systems vigil,vm,prom]
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
// others. Every process it starts is stopped or killed by pid before it
// exits, on error and on Ctrl-C too, and its temporary directories are
// removed (unless -keep).
package main

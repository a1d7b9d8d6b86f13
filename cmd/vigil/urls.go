package main

import (
	"fmt"
	"io"
	"strings"
)

// printURLs prints where the node serves what, once it is ready.
func (n *node) printURLs(w io.Writer) {
	if !n.cluster && n.roles["ingester"] {
		fmt.Fprintf(w, `Vigil is running (single node, data in %s).
  Query API / Grafana data source:  %s   (try %s/api/v1/query?query=up)
  Prometheus remote write:          %s/api/v1/write
  Metrics:                          %s/metrics
  Scrape targets:                   %s/targets   (add: %s/api/v1/registry/targets, docs/targets.md)
  etcd (target registry):           %s
`, n.cfg.DataDir, n.httpURL, n.httpURL, n.httpURL, n.httpURL, n.httpURL, n.httpURL, n.registryEndpoints())
		if n.ruler != nil {
			endpoints := n.cfg.Etcd.Endpoints
			if endpoints == "" {
				endpoints = n.etcdURL()
			}
			fmt.Fprintf(w, "  Rules and alerts:                 %s/api/v1/rules   (vigil rules upload -etcd.endpoints=%s ...)\n", n.httpURL, endpoints)
		}
		if n.notifier != nil {
			fmt.Fprintf(w, "  Notifier:                         %s/api/v1/alerting/status   (vigil alerting config upload FILE)\n", n.httpURL)
		}
		n.printGRPC(w)
		fmt.Fprintln(w, "Stop with Ctrl-C (SIGTERM flushes to disk).")
		return
	}
	fmt.Fprintf(w, "Vigil is running (target %s).\n", n.cfg.Target)
	if n.roles["querier"] {
		fmt.Fprintf(w, "  Query API / Grafana data source:  %s\n", n.httpURL)
	}
	if n.roles["distributor"] {
		fmt.Fprintf(w, "  Prometheus remote write:          %s/api/v1/write\n", n.httpURL)
	}
	n.printGRPC(w)
	if n.ring != nil {
		fmt.Fprintf(w, "  Ring:                             %s/ring\n", n.httpURL)
	}
	if n.manager != nil {
		fmt.Fprintf(w, "  Scrape targets:                   %s/targets\n", n.httpURL)
	}
	if n.ruler != nil {
		fmt.Fprintf(w, "  Rules and alerts (ruler):         %s/api/v1/rules\n", n.httpURL)
	}
	if n.notifier != nil {
		fmt.Fprintf(w, "  Notifier (vigil alerting):        %s/api/v1/alerting/status\n", n.httpURL)
	}
	if n.etcd != nil {
		fmt.Fprintf(w, "  etcd:                             %s\n", n.etcdURL())
	}
	fmt.Fprintf(w, "  Metrics:                          %s/metrics\n", n.httpURL)
}

// printGRPC prints the address of the public gRPC API (docs/sdk.md) with
// the services this node serves, and that of the internal RPCs.
func (n *node) printGRPC(w io.Writer) {
	if n.grpcLn == nil {
		return
	}
	var svcs []string
	if n.roles["distributor"] {
		svcs = append(svcs, "Write")
	}
	if n.roles["querier"] {
		svcs = append(svcs, "Query")
	}
	if n.registry != nil {
		svcs = append(svcs, "Targets")
	}
	internal := loopbackHost(n.grpcLn.Addr())
	if len(svcs) == 0 {
		fmt.Fprintf(w, "  gRPC (internal APIs):             %s\n", internal)
		return
	}
	label := "Go SDK, gRPC (vigil.v1 " + strings.Join(svcs, ", ") + "):"
	if n.publicLn == nil {
		fmt.Fprintf(w, "  %s %s   (also the internal APIs; docs/sdk.md)\n", label, internal)
		return
	}
	how := "plaintext"
	if n.cfg.SDK.TLSCertFile != "" {
		how = "TLS"
	}
	if n.cfg.SDK.BearerTokenFile != "" {
		how += ", bearer tokens"
	}
	fmt.Fprintf(w, "  %s %s   (%s; docs/sdk.md)\n", label, loopbackHost(n.publicLn.Addr()), how)
	fmt.Fprintf(w, "  gRPC (internal APIs):             %s\n", internal)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-tsdb/vigil/collector"
)

const targetsUsage = `Usage: vigil targets <command> [flags] [arguments]

Manage the scrape targets in etcd (docs/targets.md).

Commands:
  ls                          list targets (and invalid entries)
  add -job=J [flags] ADDR...  add or replace targets (host:port or http[s]:// URLs)
  rm -job=J ADDR|ID...        remove targets
  import [-skip-unsupported] [-dry-run] prometheus.yml
                              import the static_configs and file_sd_configs of a
                              Prometheus configuration: one job value per
                              scrape_config, its targets

Common flags (before or after the command):
  -etcd.endpoints   comma-separated etcd client URLs (default http://127.0.0.1:2379)
  -targets.prefix   key prefix of the registry (default /vigil/targets/)
`

// runTargets is `vigil targets ...`.
func runTargets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, args, err := subcommand("targets", targetsUsage, args, stderr)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("vigil targets "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoints := fs.String("etcd.endpoints", "http://127.0.0.1:2379", "comma-separated etcd client URLs")
	rcfg := collector.DefaultRegistryConfig()
	rcfg.RegisterFlags(fs)
	var job, interval, timeout, scheme, path string
	var labels multiFlag
	var skipUnsupported, dryRun, asJSON bool
	switch cmd {
	case "ls":
		fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	case "add":
		fs.StringVar(&job, "job", "", "job of the targets (required)")
		fs.StringVar(&interval, "interval", "", "scrape interval (default: the job's, else 15s)")
		fs.StringVar(&timeout, "timeout", "", "scrape timeout (default: the job's, else min(10s, interval))")
		fs.StringVar(&scheme, "scheme", "", "http or https (default: the job's, else http)")
		fs.StringVar(&path, "metrics-path", "", "metrics path (default: the job's, else /metrics)")
		fs.Var(&labels, "label", "extra label name=value (repeatable)")
	case "rm":
		fs.StringVar(&job, "job", "", "job of the targets (required)")
	case "import":
		fs.BoolVar(&skipUnsupported, "skip-unsupported", false, "skip scrape_config fields Vigil does not translate (relabelling, other service discovery) instead of failing")
		fs.BoolVar(&dryRun, "dry-run", false, "print what would be written, write nothing")
	default:
		fmt.Fprint(stderr, targetsUsage)
		return fmt.Errorf("targets: unknown command %q", cmd)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := rcfg.Validate(); err != nil {
		return err
	}
	if cmd == "import" && dryRun {
		return importTargets(ctx, nil, fs.Args(), skipUnsupported, stdout, stderr)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client for %s: %w", *endpoints, err)
	}
	defer cli.Close()
	reg, err := collector.NewRegistry(rcfg, cli, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	switch cmd {
	case "ls":
		return listTargets(ctx, reg, asJSON, stdout)
	case "add":
		if job == "" || fs.NArg() == 0 {
			return errors.New("targets add: -job and at least one address are needed")
		}
		base := collector.Target{Job: job}
		if interval != "" {
			d, err := time.ParseDuration(interval)
			if err != nil {
				return fmt.Errorf("-interval %q: %w", interval, err)
			}
			base.Interval = collector.Duration(d)
		}
		if timeout != "" {
			d, err := time.ParseDuration(timeout)
			if err != nil {
				return fmt.Errorf("-timeout %q: %w", timeout, err)
			}
			base.Timeout = collector.Duration(d)
		}
		base.Scheme, base.MetricsPath = scheme, path
		if len(labels) > 0 {
			base.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return fmt.Errorf("-label %q: want name=value", l)
				}
				base.Labels[k] = v
			}
		}
		for _, addr := range fs.Args() {
			t := base
			t.Address = addr
			key, err := reg.Put(ctx, t)
			if err != nil {
				return fmt.Errorf("add %s: %w", addr, err)
			}
			fmt.Fprintf(stdout, "added %s\n", key)
		}
		return nil
	case "rm":
		if job == "" || fs.NArg() == 0 {
			return errors.New("targets rm: -job and at least one address or id are needed")
		}
		for _, a := range fs.Args() {
			id := a
			if t, err := collector.DecodeTarget(mustJSON(map[string]string{"address": a})); err == nil {
				id = collector.DefaultID(t) // an address: the id tools derive from it
			}
			if err := reg.Delete(ctx, job, id); err != nil {
				return fmt.Errorf("remove %s: %w", a, err)
			}
			fmt.Fprintf(stdout, "removed %s\n", reg.TargetKey(job, id))
		}
		return nil
	default: // import
		return importTargets(ctx, reg, fs.Args(), skipUnsupported, stdout, stderr)
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func listTargets(ctx context.Context, reg *collector.Registry, asJSON bool, stdout io.Writer) error {
	snap, err := reg.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(snap)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tID\tURL\tINTERVAL\tTIMEOUT\tLABELS")
	for _, t := range snap.Targets {
		var ls []string
		for k, v := range t.Labels {
			ls = append(ls, k+"="+v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Job, t.ID, t.URL(), t.Interval, t.Timeout, strings.Join(slices.Sorted(slices.Values(ls)), ","))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, inv := range snap.Invalid {
		fmt.Fprintf(stdout, "invalid: %s: %s\n", inv.Key, inv.Err)
	}
	return nil
}

func importTargets(ctx context.Context, reg *collector.Registry, files []string, skip bool, stdout, stderr io.Writer) error {
	if len(files) != 1 {
		return errors.New("targets import: one Prometheus configuration file is needed")
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return err
	}
	im, err := collector.ImportPrometheus(b, collector.ImportOptions{BaseDir: filepath.Dir(files[0]), SkipUnsupported: skip})
	if err != nil {
		return fmt.Errorf("import %s: %w", files[0], err)
	}
	for _, w := range im.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if reg == nil { // dry run
		for _, j := range im.Jobs {
			v, _ := collector.EncodeJob(j)
			fmt.Fprintf(stdout, "job %s: %s\n", j.Name, v)
		}
		for _, t := range im.Targets {
			v, _ := collector.EncodeTarget(t)
			fmt.Fprintf(stdout, "target %s/%s: %s\n", t.Job, collector.DefaultID(t), v)
		}
		return nil
	}
	for _, j := range im.Jobs {
		if err := reg.PutJob(ctx, j); err != nil {
			return fmt.Errorf("job %s: %w", j.Name, err)
		}
	}
	for _, t := range im.Targets {
		if _, err := reg.Put(ctx, t); err != nil {
			return fmt.Errorf("target %s of job %s: %w", t.Address, t.Job, err)
		}
	}
	fmt.Fprintf(stdout, "imported %d jobs and %d targets from %s\n", len(im.Jobs), len(im.Targets), files[0])
	return nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

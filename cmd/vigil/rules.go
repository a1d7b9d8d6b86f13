package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/rulefmt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-tsdb/vigil/rules"
)

const rulesUsage = `Usage: vigil rules <command> [flags] [arguments]

Manage Prometheus rule files in etcd (docs/alerting.md "Rule storage").
A namespace holds the groups of one upload; names may not contain '/'.

Commands:
  upload -namespace NS FILE...  replace namespace NS with the groups of the
                                FILEs, in one transaction: groups NS had that
                                the files do not are deleted
  ls [NS]                       list namespaces and groups (and invalid values)
  rm NS [GROUP]                 remove a namespace, or one group of it
  check FILE...                 check rule files offline (no etcd), with the
                                checks of upload (promtool check rules and
                                Vigil's names)

Common flags (after the command, before or after the arguments):
  -etcd.endpoints   comma-separated etcd client URLs (default http://127.0.0.1:2379)
  -rules.prefix     key prefix of the rule store (default /vigil/rules/)

Errors name the file, line and column as Prometheus' rulefmt reports them.
Exit status: 0 on success, 1 on any error (a refused file, a missing
namespace, etcd unreachable).
`

// runRules is `vigil rules ...`.
func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd, args, err := subcommand("rules", rulesUsage, args, stderr)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("vigil rules "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, rulesUsage) }
	endpoints := fs.String("etcd.endpoints", "http://127.0.0.1:2379", "comma-separated etcd client URLs")
	cfg := rules.DefaultConfig()
	cfg.RegisterFlags(fs)
	var namespace string
	var minArgs, maxArgs int
	switch cmd {
	case "upload":
		fs.StringVar(&namespace, "namespace", "", "namespace to replace (required)")
		minArgs, maxArgs = 1, -1
	case "ls":
		minArgs, maxArgs = 0, 1
	case "rm":
		minArgs, maxArgs = 1, 2
	case "check":
		minArgs, maxArgs = 1, -1
	default:
		fmt.Fprint(stderr, rulesUsage)
		return fmt.Errorf("rules: unknown command %q", cmd)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < minArgs || (maxArgs >= 0 && len(pos) > maxArgs) {
		fmt.Fprint(stderr, rulesUsage)
		return fmt.Errorf("rules %s: wrong number of arguments (%d)", cmd, len(pos))
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cmd == "check" {
		return checkRuleFiles(pos, stdout, stderr)
	}
	if cmd == "upload" && namespace == "" {
		return errors.New("rules upload: -namespace is needed")
	}
	var groups []rulefmt.RuleGroup
	if cmd == "upload" { // refuse bad files before connecting
		if groups, err = parseRuleFiles(pos); err != nil {
			return err
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client for %s: %w", *endpoints, err)
	}
	defer cli.Close()
	store, err := rules.New(cfg, cli, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), prometheus.NewRegistry())
	if err != nil {
		return err
	}
	switch cmd {
	case "upload":
		res, err := store.ReplaceNamespace(ctx, namespace, groups)
		if err != nil {
			return fmt.Errorf("upload to namespace %q: %w", namespace, err)
		}
		fmt.Fprintf(stdout, "namespace %q: %d groups written, %d unchanged, %d deleted\n", namespace, len(res.Written), len(res.Unchanged), len(res.Deleted))
		for _, g := range res.Deleted {
			fmt.Fprintf(stdout, "deleted %s\n", store.Key(namespace, g))
		}
		return nil
	case "ls":
		return listRules(ctx, store, pos, stdout)
	default: // rm
		group := ""
		if len(pos) == 2 {
			group = pos[1]
		}
		n, err := store.Delete(ctx, pos[0], group)
		if err != nil {
			return fmt.Errorf("rm: %w", err)
		}
		fmt.Fprintf(stdout, "removed %d groups\n", n)
		return nil
	}
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, which it returns.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil // everything after -- is positional
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// parseRuleFiles parses every file (all errors of all files, each with
// file:line:col) and merges their groups; a group name may appear once.
func parseRuleFiles(files []string) ([]rulefmt.RuleGroup, error) {
	var groups []rulefmt.RuleGroup
	var errs []error
	from := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rgs, err := rules.ParseFile(f, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, g := range rgs.Groups {
			if prev, dup := from[g.Name]; dup {
				errs = append(errs, fmt.Errorf("%s: group %q is also in %s: a namespace holds one group of a name", f, g.Name, prev))
				continue
			}
			from[g.Name] = f
			groups = append(groups, g)
		}
	}
	return groups, errors.Join(errs...)
}

func checkRuleFiles(files []string, stdout, stderr io.Writer) error {
	failed := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			var rgs *rulefmt.RuleGroups
			if rgs, err = rules.ParseFile(f, b); err == nil {
				n := 0
				for _, g := range rgs.Groups {
					n += len(g.Rules)
				}
				fmt.Fprintf(stdout, "%s: SUCCESS: %d groups, %d rules\n", f, len(rgs.Groups), n)
				continue
			}
		}
		failed++
		fmt.Fprintf(stderr, "%s: FAILED:\n%v\n", f, err)
	}
	if failed > 0 {
		return fmt.Errorf("rules check: %d of %d files failed", failed, len(files))
	}
	return nil
}

func listRules(ctx context.Context, store *rules.Store, pos []string, stdout io.Writer) error {
	var snap rules.Snapshot
	var err error
	if len(pos) == 1 {
		snap, err = store.Get(ctx, pos[0], "")
	} else {
		snap, err = store.List(ctx)
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tGROUP\tINTERVAL\tALERTS\tRECORDS")
	for _, g := range snap.Groups {
		alerts, records := 0, 0
		for _, r := range g.RuleGroup.Rules {
			if r.Alert != "" {
				alerts++
			} else {
				records++
			}
		}
		interval := "default"
		if g.RuleGroup.Interval != 0 {
			interval = g.RuleGroup.Interval.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", g.Namespace, g.RuleGroup.Name, interval, alerts, records)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, inv := range snap.Invalid {
		fmt.Fprintf(stdout, "invalid: %s: %s\n", inv.Key, strings.ReplaceAll(inv.Err, "\n", "; "))
	}
	return nil
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-tsdb/vigil/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "vigil-bench:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  vigil-bench push -url URL [flags]       push a synthetic load to one remote-write endpoint
  vigil-bench compare [-small] [flags]    compare Vigil, a 3-ingester Vigil cluster, VictoriaMetrics and Prometheus on the same load
  vigil-bench run push|scrape|query|mixed -url http://127.0.0.1:9009 [-duration 2m] [flags]
                                          live load against a running Vigil, with verification and a report directory
  vigil-bench mixed|scrape|query [flags]  short for "run mixed|scrape|query"
  vigil-bench plan [--hosts N --series-per-host S --interval 10s --retention 7d:raw,30d:1m,365d:1h --rf 3] [--from summary.json]
                                          size a cluster (nodes, RAM, disk per tier, network) from measured figures
Run "vigil-bench <command> -h" for the flags.`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "push":
		return runPush(ctx, args[1:], stdout, stderr)
	case "compare":
		return runCompare(ctx, args[1:], stdout, stderr)
	case "run":
		return runLive(ctx, "", args[1:], stdout, stderr)
	case "mixed", "scrape", "query":
		return runLive(ctx, args[0], args[1:], stdout, stderr)
	case "plan":
		return runPlan(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := loadgen.DefaultConfig()
	cfg.RegisterFlags(fs)
	url := fs.String("url", "", "remote-write endpoint, e.g. http://127.0.0.1:9009/api/v1/write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		return errors.New("push: -url is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("push: unexpected arguments %q", fs.Args())
	}
	res, err := loadgen.Push(ctx, cfg, *url, stderr)
	fmt.Fprintf(stdout, "pushed %d samples (%d series, %d hosts, %s .. %s) in %d requests (%s compressed) in %.2fs: %.0f samples/s, %d retries, %d errors\n",
		res.Samples, res.Series, res.Hosts, res.First.UTC().Format("15:04:05"), res.Last.UTC().Format("15:04:05"),
		res.Requests, humanBytes(res.Bytes), res.Duration.Seconds(), res.SamplesPerSecond(), res.Retries, res.Errors)
	return err
}

func humanBytes(n int64) string {
	return loadgen.Human(float64(n)) + "B"
}

// Command vigil-adapter serves Vigil's series to the Kubernetes
// HorizontalPodAutoscaler as custom.metrics.k8s.io (v1beta2, v1beta1) and
// external.metrics.k8s.io (v1beta1), an aggregated API server behind
// kube-aggregator (docs/kubernetes.md). It is a binary of its own so that
// the Kubernetes API server libraries stay out of cmd/vigil.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/vigil-tsdb/vigil/adapter"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The API server libraries log through klog: the same format on stderr.
	// Set here, once: klog is process-wide and its goroutines read it.
	klog.SetSlogLogger(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vigil-adapter:", err)
		os.Exit(1)
	}
}

type config struct {
	vigilURL        string
	vigilTimeout    time.Duration
	rulesFile       string
	refreshInterval time.Duration
	discoveryWindow time.Duration
	maxAge          time.Duration
	discoveryLimit  int
	logLevel        string
}

func (c *config) registerFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.vigilURL, "vigil-url", "http://localhost:9009", "Vigil's HTTP API (a querier or the single node)")
	fs.DurationVar(&c.vigilTimeout, "vigil-timeout", 10*time.Second, "timeout of one request to Vigil")
	fs.StringVar(&c.rulesFile, "config", "", "rules file (docs/kubernetes.md, Rules); empty: the default naming scheme only")
	fs.DurationVar(&c.refreshInterval, "refresh-interval", time.Minute, "how often the list of custom metrics is rediscovered")
	fs.DurationVar(&c.discoveryWindow, "discovery-window", 10*time.Minute, "a series is discovered if it has a sample this recent")
	fs.DurationVar(&c.maxAge, "max-age", 5*time.Minute, "a value whose newest sample is older is an error, not a value")
	fs.IntVar(&c.discoveryLimit, "discovery-limit", 10000, "at most this many metric names per discovery query; more are cut and logged")
	fs.StringVar(&c.logLevel, "log.level", "info", "debug, info, warn or error")
}

func (c *config) validate() error {
	var errs []error
	if c.vigilTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--vigil-timeout %v: must be positive", c.vigilTimeout))
	}
	if c.refreshInterval < time.Second {
		errs = append(errs, fmt.Errorf("--refresh-interval %v: must be at least 1s", c.refreshInterval))
	}
	if c.discoveryWindow <= 0 {
		errs = append(errs, fmt.Errorf("--discovery-window %v: must be positive", c.discoveryWindow))
	}
	if c.maxAge <= 0 {
		errs = append(errs, fmt.Errorf("--max-age %v: must be positive", c.maxAge))
	}
	if c.discoveryLimit <= 0 {
		errs = append(errs, fmt.Errorf("--discovery-limit %d: must be positive", c.discoveryLimit))
	}
	return errors.Join(errs...)
}

// run parses args, loads the rules and serves until ctx is done. Logs go
// to stderr.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("vigil-adapter", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	cfg.registerFlags(fs)
	so := adapter.NewServerOptions()
	so.SecureServing.BindPort = 6443
	so.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		return fmt.Errorf("--log.level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var rules *adapter.Config
	if cfg.rulesFile != "" {
		var err error
		if rules, err = adapter.LoadConfig(cfg.rulesFile); err != nil {
			return err
		}
	}
	client, err := adapter.NewClient(cfg.vigilURL, cfg.vigilTimeout, nil)
	if err != nil {
		return err
	}
	p := adapter.NewProvider(rules, client, adapter.Options{
		RefreshInterval: cfg.refreshInterval, DiscoveryWindow: cfg.discoveryWindow, MaxAge: cfg.maxAge,
		DiscoveryLimit: cfg.discoveryLimit,
	}, logger)
	if so.SkipDelegatedAuth {
		logger.Warn("--insecure-skip-delegated-auth: serving every request without authentication or authorization")
	}
	srv, err := adapter.NewServer("vigil-adapter", so, p)
	if err != nil {
		return err
	}
	logger.Info("vigil-adapter serving", "secure_port", so.SecureServing.BindPort, "vigil", cfg.vigilURL, "rules", cfg.rulesFile)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Run(ctx) })
	g.Go(func() error { return srv.Run(ctx) })
	return g.Wait()
}

// Command vigil runs Vigil. With no arguments it is a complete single-node
// system: storage, ingester, distributor, querier and the HTTP API in one
// process, scraping its own /metrics into itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/vigil-tsdb/vigil/api"
	"github.com/vigil-tsdb/vigil/distributor"
	"github.com/vigil-tsdb/vigil/ingester"
	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/querier"
	"github.com/vigil-tsdb/vigil/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(1)
	}
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// run starts every role and blocks until ctx is done or a role fails, then
// shuts down in order: stop taking requests, then flush and close storage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, flags, err := parseConfigFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	start := time.Now()
	db, err := storage.Open(cfg.Storage, logger.With("component", "storage"), reg)
	if err != nil {
		return err
	}
	defer func() {
		if err := db.Close(); err != nil {
			logger.Error("closing storage", "err", err)
		}
	}()
	ing, err := ingester.New(cfg.Ingester, db, logger.With("component", "ingester"), reg)
	if err != nil {
		return err
	}

	grpcLn, err := net.Listen("tcp", cfg.GRPCListenAddress)
	if err != nil {
		return fmt.Errorf("listen on gRPC address %s: %w", cfg.GRPCListenAddress, err)
	}
	grpcSrv := grpc.NewServer(ingesterpb.ServerOptions()...)
	ingesterpb.RegisterIngesterServer(grpcSrv, ing)

	// The single node uses its ingester through gRPC on loopback: the same
	// path a cluster's distributors and queriers take.
	conn, err := ingesterpb.Dial(loopbackHost(grpcLn.Addr()))
	if err != nil {
		grpcLn.Close()
		return err
	}
	defer conn.Close()
	dist, err := distributor.New(cfg.Distributor, conn, logger.With("component", "distributor"), reg)
	if err != nil {
		return err
	}
	clients := []ingesterpb.IngesterClient{conn}
	qbl := querier.New(func() []ingesterpb.IngesterClient { return clients }, logger.With("component", "querier"))
	engine := querier.NewEngine(cfg.Querier, logger.With("component", "query-engine"), reg)

	ready := &readiness{notReady: errors.New("starting")}
	httpAPI, err := api.New(cfg.API, dist, qbl, engine, qbl, ready.check, reg, logger.With("component", "api"), reg)
	if err != nil {
		return err
	}
	httpAPI.SetStatusSources(func() string {
		b, err := yaml.Marshal(cfg)
		if err != nil {
			return "# " + err.Error()
		}
		return string(b)
	}, flags)
	httpLn, err := net.Listen("tcp", cfg.HTTPListenAddress)
	if err != nil {
		grpcLn.Close()
		return fmt.Errorf("listen on HTTP address %s: %w", cfg.HTTPListenAddress, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", httpAPI.Handler())
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	httpSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return db.Run(gctx) })
	g.Go(func() error {
		if err := grpcSrv.Serve(grpcLn); err != nil {
			return fmt.Errorf("gRPC server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server: %w", err)
		}
		return nil
	})
	httpURL := "http://" + loopbackHost(httpLn.Addr())
	if cfg.SelfScrapeInterval > 0 {
		s := newSelfScraper(httpURL+"/metrics", loopbackHost(httpLn.Addr()), cfg.SelfScrapeInterval, dist, logger.With("component", "self-scrape"))
		g.Go(func() error { return s.run(gctx) })
	}
	g.Go(func() error {
		<-gctx.Done()
		ready.set(errors.New("shutting down"))
		logger.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		herr := httpSrv.Shutdown(sctx)
		stopped := make(chan struct{})
		go func() { grpcSrv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-sctx.Done():
			grpcSrv.Stop()
		}
		return herr
	})

	ready.set(nil)
	logger.Info("vigil is ready", "startup", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stdout, `Vigil is running (single node, data in %s).
  Query API / Grafana data source:  %s   (try %s/api/v1/query?query=up)
  Prometheus remote write:          %s/api/v1/write
  Metrics:                          %s/metrics
  gRPC (ingester API):              %s
Stop with Ctrl-C (SIGTERM flushes to disk).
`, cfg.DataDir, httpURL, httpURL, httpURL, httpURL, loopbackHost(grpcLn.Addr()))
	return g.Wait()
}

// readiness is what /-/ready reports: nil once every role is serving.
type readiness struct {
	mu       sync.Mutex // protects notReady
	notReady error
}

func (r *readiness) set(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notReady = err
}

func (r *readiness) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.notReady
}

// loopbackHost turns a listener address into one a local client can dial.
func loopbackHost(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Command vigil runs Vigil. With no arguments it is a complete single-node
// system: storage, ingester, distributor, querier, collector, an embedded
// etcd for the target registry and the HTTP API in one process, scraping
// its own /metrics into itself.
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
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	promstorage "github.com/prometheus/prometheus/storage"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/vigil-tsdb/vigil/alerting"
	"github.com/vigil-tsdb/vigil/api"
	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
	"github.com/vigil-tsdb/vigil/collector"
	"github.com/vigil-tsdb/vigil/compactor"
	"github.com/vigil-tsdb/vigil/distributor"
	"github.com/vigil-tsdb/vigil/ingester"
	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model/downsample"
	"github.com/vigil-tsdb/vigil/querier"
	"github.com/vigil-tsdb/vigil/ring"
	"github.com/vigil-tsdb/vigil/rules"
	"github.com/vigil-tsdb/vigil/storage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runFn := run
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "targets" {
		runFn, args = runTargets, args[1:]
	}
	if len(args) > 0 && args[0] == "rules" {
		runFn, args = runRules, args[1:]
	}
	if len(args) > 0 && args[0] == "silences" {
		runFn, args = runSilences, args[1:]
	}
	if len(args) > 0 && args[0] == "alerting" {
		runFn, args = runAlerting, args[1:]
	}
	if err := runFn(ctx, args, os.Stdout, os.Stderr); err != nil {
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

// run starts the roles of cfg.Target and blocks until ctx is done or a
// role fails, then shuts down in order: hand off (a leaving ingester),
// stop taking requests, leave the ring, flush and close storage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, flags, err := parseConfigFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	roles := cfg.nodeRoles()
	cluster := cfg.clusterMode()
	start := time.Now()
	// SIGHUP re-reads the public API's tokens and certificate. Caught from
	// the start to after the last flush: its default action would kill the
	// process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	n := &node{cfg: cfg, roles: roles, cluster: cluster, logger: logger, reg: reg}
	defer n.close()
	if err := n.start(ctx, flags); err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	n.serve(g, gctx)
	g.Go(func() error {
		for {
			select {
			case <-hup:
				if n.public != nil {
					n.public.reload()
				}
			case <-gctx.Done():
				return nil
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		return n.shutdown()
	})
	if err := n.becomeReady(gctx); err != nil {
		// Surface the failure through the group: stop everything.
		g.Go(func() error { return err })
	} else {
		logger.Info("vigil is ready", "target", cfg.Target, "startup", time.Since(start).Round(time.Millisecond))
		n.printURLs(stdout)
	}
	return g.Wait()
}

// node is one vigil process: the roles it runs and their servers.
type node struct {
	cfg     Config
	roles   map[string]bool
	cluster bool
	logger  *slog.Logger
	reg     *prometheus.Registry
	ready   readiness

	etcd       *embeddedEtcd
	etcdClient *clientv3.Client
	ring       *ring.Cluster
	ringStop   context.CancelFunc
	ringDone   chan error
	db         *storage.DB
	ing        *ingester.Ingester
	repairer   *ingester.Repairer
	compactor  *compactor.Compactor
	pool       *ingesterpb.Pool
	local      *ingesterpb.Conn // single node: the loopback client of its own ingester
	dist       *distributor.Distributor
	router     *distributor.RingRouter
	grpcLn     net.Listener
	grpcSrv    *grpc.Server
	public     *publicAPI   // what the public gRPC API's services share
	publicLn   net.Listener // -sdk.listen-address, when set
	publicSrv  *grpc.Server // the server of the public API: its own, or grpcSrv
	writeSrv   *distributor.WriteServer
	httpLn     net.Listener
	httpSrv    *http.Server
	httpURL    string
	registry   *collector.Registry
	ruleStore  *rules.Store
	ruler      *rules.Ruler
	rulerStop  context.CancelFunc // stops runRuler (shutdown)
	notifier   *alerting.Notifier
	// notifierStop stops the notifier (shutdown, after the ruler, whose
	// last alerts it forwards); notifierDone is closed when it returned.
	notifierStop context.CancelFunc
	notifierDone chan struct{}
	manager      *collector.Manager
	batcher      *collector.Batcher
	distSink     *distributorSink
	collStop     context.CancelFunc
	collDone     chan error
	// announcedHTTP is the HTTP address in the ring (cluster mode).
	announcedHTTP string
}

func (n *node) start(ctx context.Context, flags map[string]string) error {
	cfg, logger, reg := n.cfg, n.logger, n.reg
	n.ready.set(errors.New("starting"))
	if n.roles["etcd"] {
		ec := cfg.Etcd
		if !n.cluster && ec.ListenClientURLs == defaultEtcdConfig().ListenClientURLs && ec.ListenPeerURLs == defaultEtcdConfig().ListenPeerURLs {
			// The single node's etcd is its own: free loopback ports, so
			// it never clashes with an etcd already on 2379 (the URL is
			// printed at start).
			ec.ListenClientURLs, ec.ListenPeerURLs = "http://127.0.0.1:0", "http://127.0.0.1:0"
		}
		e, err := startEtcd(ctx, ec, cfg.DataDir, logger.With("component", "etcd"))
		if err != nil {
			return err
		}
		n.etcd = e
	}
	var err error
	if n.roles["ingester"] || n.roles["distributor"] || n.roles["querier"] || n.roles["collector"] {
		if n.grpcLn, err = net.Listen("tcp", cfg.GRPCListenAddress); err != nil {
			return fmt.Errorf("listen on gRPC address %s: %w", cfg.GRPCListenAddress, err)
		}
		if n.public, err = newPublicAPI(cfg.SDK, logger.With("component", "sdk-api"), reg); err != nil {
			return err
		}
		if cfg.SDK.ListenAddress == "" {
			n.grpcSrv = grpc.NewServer(n.public.serverOptions(false, n.roles)...)
			n.publicSrv = n.grpcSrv
		} else {
			n.grpcSrv = grpc.NewServer(ingesterpb.ServerOptions()...)
			if n.publicLn, err = net.Listen("tcp", cfg.SDK.ListenAddress); err != nil {
				return fmt.Errorf("listen on public gRPC address %s: %w", cfg.SDK.ListenAddress, err)
			}
			n.publicSrv = grpc.NewServer(n.public.serverOptions(cfg.SDK.TLSCertFile != "", n.roles)...)
		}
	}
	if n.httpLn, err = net.Listen("tcp", cfg.HTTPListenAddress); err != nil {
		return fmt.Errorf("listen on HTTP address %s: %w", cfg.HTTPListenAddress, err)
	}
	n.httpURL = "http://" + loopbackHost(n.httpLn.Addr())
	if n.cluster {
		rc := cfg.Ring
		rc.Roles = nil
		for _, r := range []string{"ingester", "distributor", "querier", "collector", "ruler"} {
			if n.roles[r] {
				rc.Roles = append(rc.Roles, r)
			}
		}
		if rc.GRPCAddr == "" && n.grpcLn != nil {
			rc.GRPCAddr = announceAddr(n.grpcLn.Addr(), rc.AdvertiseAddr)
		}
		if rc.HTTPAddr == "" {
			rc.HTTPAddr = announceAddr(n.httpLn.Addr(), rc.AdvertiseAddr)
		}
		switch {
		case n.roles["ingester"]: // joining until it serves (becomeReady)
		case n.roles["collector"] || n.roles["ruler"]: // joining until it has joined the ring (becomeReady)
			rc.InitialState = ring.StateJoining.String()
		default:
			rc.InitialState = ring.StateActive.String()
		}
		n.announcedHTTP = rc.HTTPAddr
		if n.ring, err = ring.New(rc, logger, reg); err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		n.ringStop, n.ringDone = cancel, make(chan error, 1)
		go func() { n.ringDone <- n.ring.Run(rctx) }()
		n.pool = ingesterpb.NewPool()
	}
	if n.roles["ingester"] {
		if n.db, err = storage.Open(cfg.Storage, logger.With("component", "storage"), reg); err != nil {
			return err
		}
		icfg := cfg.Ingester
		if n.cluster {
			icfg.Partitions = cfg.Ring.Partitions
		}
		if n.ing, err = ingester.New(icfg, n.db, logger.With("component", "ingester"), reg); err != nil {
			return err
		}
		if n.compactor, err = compactor.New(cfg.Compactor, n.db, logger.With("component", "compactor"), reg); err != nil {
			return err
		}
		db := n.db
		n.ing.SetTierReader(func(ctx context.Context, tier uint8, mint, maxt int64, ms ...*labels.Matcher) ([]downsample.Series, error) {
			return compactor.Windows(ctx, db, tier, mint, maxt, ms...)
		})
		ingesterpb.RegisterIngesterServer(n.grpcSrv, n.ing)
		if n.cluster {
			n.repairer = ingester.NewRepairer(n.ing, cfg.Distributor.ReplicationFactor, n.ring, cfg.Ring.NodeName,
				n.pool.Get, logger.With("component", "repair"), reg)
			n.ring.AddStatus("repair", func() any { return n.repairer.Status() })
		}
	}
	if !n.cluster && n.roles["ingester"] {
		// The single node uses its ingester through gRPC on loopback: the
		// same path a cluster's distributors and queriers take.
		if n.local, err = ingesterpb.Dial(loopbackHost(n.grpcLn.Addr())); err != nil {
			return err
		}
	}
	var pusher api.Pusher
	if n.roles["distributor"] {
		var router distributor.Router = distributor.Single{Target: distributor.Target{Name: "local", Addr: loopbackHost(n.grpcLn.Addr()), Healthy: true}}
		var clients distributor.Clients = singleClient{n.local}
		if n.cluster {
			n.router = distributor.NewRingRouter(n.ring, cfg.Distributor.ReplicationFactor)
			router, clients = n.router, n.pool
		}
		if n.dist, err = distributor.New(cfg.Distributor, router, clients, logger.With("component", "distributor"), reg); err != nil {
			return err
		}
		pusher = n.dist
		ingesterpb.RegisterDistributorServer(n.grpcSrv, distributor.NewGRPC(n.dist))
		n.writeSrv = distributor.NewWriteServer(n.dist, cfg.SDK.StreamMaxDuration)
		vigilv1.RegisterWriteServer(n.publicSrv, n.writeSrv) // the public API (docs/sdk.md)
	}
	var qbl *querier.Queryable
	var queryable promstorage.Queryable
	var engine promql.QueryEngine
	var status api.StatusReader
	if n.roles["querier"] {
		qcfg := cfg.Querier
		qcfg.Retention = querier.Retention{Raw: cfg.Compactor.RetentionRaw, Minute: cfg.Compactor.RetentionMinute, Hour: cfg.Compactor.RetentionHour}
		if qbl, err = querier.New(qcfg, n.ingesters, logger.With("component", "querier"), reg); err != nil {
			return err
		}
		queryable, status = qbl, qbl
		engine = querier.NewEngine(cfg.Querier, logger.With("component", "query-engine"), reg)
	}
	mux := http.NewServeMux()
	if pusher != nil || queryable != nil || !n.cluster {
		httpAPI, err := api.New(cfg.API, pusher, queryable, engine, status, n.readyCheck, reg, logger.With("component", "api"), reg)
		if err != nil {
			return err
		}
		if qbl != nil {
			httpAPI.SetResolutions(qbl)
			vigilv1.RegisterQueryServer(n.publicSrv, api.NewQueryServer(httpAPI)) // the public API (docs/sdk.md)
		}
		httpAPI.SetStatusSources(func() string {
			b, err := yaml.Marshal(cfg)
			if err != nil {
				return "# " + err.Error()
			}
			return string(b)
		}, flags)
		mux.Handle("/", httpAPI.Handler())
	} else {
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Vigil is healthy.") })
		mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
			if err := n.readyCheck(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "Vigil is ready.")
		})
	}
	if n.ring != nil {
		mux.Handle("/ring", n.ring)
	}
	if err := n.mountRegistry(mux); err != nil {
		return err
	}
	if n.roles["collector"] {
		if err := n.startCollector(mux); err != nil {
			return err
		}
	}
	if err := n.startNotifier(ctx, mux); err != nil {
		return err
	}
	if err := n.startRuler(mux, queryable, engine); err != nil {
		return err
	}
	if n.ing != nil {
		mux.Handle("/ingester/digest", n.ing.DigestHandler())
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	n.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// readyCheck is /-/ready: the roles serve, and a cluster distributor can
// place series (enough active ingesters for the replication factor).
func (n *node) readyCheck() error {
	if err := n.ready.check(); err != nil {
		return err
	}
	if n.router != nil {
		if err := n.router.Ready(); err != nil {
			return fmt.Errorf("distributor cannot place writes: %w", err)
		}
	}
	return nil
}

// mountRegistry serves the target registry API when the node knows an
// etcd (-etcd.endpoints, or its own with the etcd role).
func (n *node) mountRegistry(mux *http.ServeMux) error {
	endpoints := n.cfg.Etcd.Endpoints
	if endpoints == "" && n.etcd != nil {
		endpoints = n.etcdURL()
	}
	if endpoints == "" {
		return nil
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("etcd client for %s: %w", endpoints, err)
	}
	n.etcdClient = cli
	reg, err := collector.NewRegistry(n.cfg.Targets, cli, n.logger.With("component", "registry"), n.reg)
	if err != nil {
		return err
	}
	n.registry = reg
	mux.Handle("/api/v1/registry/", reg.Handler())
	// The rule store (docs/alerting.md); /api/v1/rules itself stays free
	// for the ruler's evaluation state.
	ruleStore, err := rules.New(n.cfg.Rules, cli, n.logger.With("component", "rules"), n.reg)
	if err != nil {
		return err
	}
	n.ruleStore = ruleStore
	mux.Handle("/api/v1/rules/config", ruleStore.Handler())
	mux.Handle("/api/v1/rules/config/", ruleStore.Handler())
	if n.publicSrv != nil {
		vigilv1.RegisterTargetsServer(n.publicSrv, collector.NewTargetsServer(reg)) // the public API (docs/sdk.md)
	}
	return nil
}

// etcdURL is the client URL of the embedded etcd: the advertised one, or
// the address it listens on.
func (n *node) etcdURL() string {
	if n.cfg.Etcd.AdvertiseClientURLs != "" {
		return n.cfg.Etcd.AdvertiseClientURLs
	}
	return "http://" + n.etcd.Clients[0].Addr().String()
}

// ingesters is what the querier reads from: the local ingester, or every
// ring member with the ingester role that has not left.
func (n *node) ingesters() ([]querier.Ingester, querier.Replication) {
	if !n.cluster {
		return []querier.Ingester{{Name: "local", Client: n.local, Healthy: true}}, querier.Replication{Factor: 1, Quorum: 1}
	}
	rf := n.cfg.Distributor.ReplicationFactor
	members := n.ring.Members(ring.RoleIngester)
	out := make([]querier.Ingester, 0, len(members))
	for _, m := range members {
		ing := querier.Ingester{Name: m.Name, Healthy: m.Healthy}
		if c, err := n.pool.Get(m.GRPCAddr); err == nil {
			ing.Client = c
		} else {
			ing.Healthy = false
		}
		out = append(out, ing)
	}
	return out, querier.Replication{Factor: rf, Quorum: rf/2 + 1}
}

// serve starts the servers and background work in g.
func (n *node) serve(g *errgroup.Group, ctx context.Context) {
	if n.db != nil {
		g.Go(func() error { return n.db.Run(ctx) })
	}
	if n.grpcLn != nil {
		srv := n.grpcSrv
		g.Go(func() error {
			if err := srv.Serve(n.grpcLn); err != nil {
				return fmt.Errorf("gRPC server: %w", err)
			}
			return nil
		})
	}
	if n.publicLn != nil {
		srv := n.publicSrv
		g.Go(func() error {
			if err := srv.Serve(n.publicLn); err != nil {
				return fmt.Errorf("public gRPC server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := n.httpSrv.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server: %w", err)
		}
		return nil
	})
	if n.router != nil {
		g.Go(func() error { return n.router.Run(ctx) })
	}
	if n.repairer != nil {
		g.Go(func() error { return n.repairer.Run(ctx) })
	}
	if n.compactor != nil {
		g.Go(func() error { return n.compactor.Run(ctx) })
	}
	if n.pool != nil {
		g.Go(func() error { n.retainConns(ctx); return nil })
	}
	if n.manager != nil {
		g.Go(func() error { return n.runCollector(ctx) })
	}
	if n.ruler != nil {
		// Not stopped with ctx: shutdown stops it, after the hand-over of
		// its groups (a cluster ruler evaluates them until others took them).
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		n.rulerStop = cancel
		g.Go(func() error { n.runRuler(rctx); return nil })
	}
	if n.notifier != nil {
		// Not stopped with ctx either: shutdown stops it after the ruler.
		nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		n.notifierStop, n.notifierDone = cancel, make(chan struct{})
		g.Go(func() error {
			defer close(n.notifierDone)
			if err := n.notifier.Run(nctx); err != nil && nctx.Err() == nil {
				return fmt.Errorf("notifier: %w", err)
			}
			return nil
		})
	}
	if n.registry != nil && n.cfg.SelfScrapeInterval > 0 {
		g.Go(func() error { return n.selfRegister(ctx) })
	}
	if n.etcd != nil {
		g.Go(func() error {
			select {
			case err := <-n.etcd.Err():
				return fmt.Errorf("embedded etcd: %w", err)
			case <-ctx.Done():
				return nil
			}
		})
	}
	if n.ringDone != nil {
		g.Go(func() error {
			select {
			case err := <-n.ringDone:
				n.ringDone <- err // for shutdown
				if err != nil && ctx.Err() == nil {
					return fmt.Errorf("ring: %w", err)
				}
				return nil
			case <-ctx.Done():
				return nil
			}
		})
	}
}

// retainConns follows the ring: it closes connections to ingesters that
// left, and makes those to ingesters seen alive again reconnect at once.
func (n *node) retainConns(ctx context.Context) {
	changes := n.ring.Subscribe()
	healthy := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				return
			}
			keep := map[string]bool{}
			for _, m := range n.ring.Members(ring.RoleIngester) {
				keep[m.GRPCAddr] = true
				if m.Healthy && !healthy[m.Name] {
					n.pool.ResetBackoff(m.GRPCAddr)
				}
				healthy[m.Name] = m.Healthy
			}
			n.pool.Retain(keep)
		}
	}
}

// becomeReady turns a cluster ingester active once it serves, and a
// collector once it has joined the ring (so that it does not claim every
// target while it knows no other collector).
func (n *node) becomeReady(ctx context.Context) error {
	if n.ring != nil && (n.roles["ingester"] || n.roles["collector"] || n.roles["ruler"]) {
		if n.roles["collector"] || n.roles["ruler"] {
			select {
			case <-n.ring.Joined():
			case <-ctx.Done():
				return nil
			}
		}
		if err := n.ring.SetState(ring.StateActive); err != nil {
			return fmt.Errorf("announce active: %w", err)
		}
	}
	n.ready.set(nil)
	return nil
}

// shutdown runs when the process is asked to stop (or a role failed): a
// cluster ingester announces leaving and hands its data off while still
// serving, then the servers stop and the node leaves the ring.
func (n *node) shutdown() error {
	n.ready.set(errors.New("shutting down"))
	n.logger.Info("shutting down")
	var errs []error
	if n.manager != nil {
		if err := n.shutdownCollector(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.rulerStop != nil {
		if err := n.shutdownRuler(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.notifierStop != nil {
		// Resigns the lead, if it has it: another notifier leads at once.
		n.notifierStop()
		<-n.notifierDone
		n.notifierStop = nil
	}
	if n.repairer != nil {
		if err := n.ring.SetState(ring.StateLeaving); err != nil {
			errs = append(errs, fmt.Errorf("announce leaving: %w", err))
		} else {
			n.logger.Info("announced leaving; waiting for writes to move", "wait", n.cfg.Ingester.LeaveWait)
			time.Sleep(n.cfg.Ingester.LeaveWait)
			hctx, cancel := context.WithTimeout(context.Background(), n.cfg.Ingester.HandoffTimeout)
			if err := n.repairer.Handoff(hctx); err != nil {
				// Not at full replication without this node: take the
				// partitions back and stop without leaving, so the ring
				// keeps it as a dead owner (reads count it as missing)
				// until it is restarted or forgotten.
				errs = append(errs, fmt.Errorf("hand-off: %w (the data stays in %s; the node stays in the ring as dead until restarted or forgotten)", err, n.cfg.DataDir))
				if err := n.ring.SetState(ring.StateActive); err != nil {
					n.logger.Warn("take partitions back", "err", err)
				}
				n.ring.Close()
			}
			cancel()
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.httpSrv.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	if n.writeSrv != nil {
		n.writeSrv.Drain() // open SDK streams end now, to be sent again elsewhere
	}
	servers := []*grpc.Server{n.grpcSrv}
	if n.publicSrv != n.grpcSrv {
		servers = append([]*grpc.Server{n.publicSrv}, servers...) // the public API stops first
	}
	for _, srv := range servers {
		if srv == nil {
			continue
		}
		gctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // each server its own budget
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-gctx.Done():
			srv.Stop()
		}
		cancel()
	}
	if n.ringStop != nil {
		n.ringStop()
		if err := <-n.ringDone; err != nil {
			errs = append(errs, fmt.Errorf("leave ring: %w", err))
		}
		n.ringStop = nil
	}
	return errors.Join(errs...)
}

// close releases what start acquired, whether or not serving began.
func (n *node) close() {
	if n.rulerStop != nil {
		n.rulerStop()
	}
	if n.notifierStop != nil {
		n.notifierStop()
	}
	if n.ringStop != nil {
		n.ringStop()
		<-n.ringDone
	}
	if n.grpcLn != nil {
		n.grpcLn.Close()
	}
	if n.publicLn != nil {
		n.publicLn.Close()
	}
	if n.httpLn != nil {
		n.httpLn.Close()
	}
	if n.local != nil {
		n.local.Close()
	}
	if n.pool != nil {
		n.pool.Close()
	}
	if n.collStop != nil { // start failed after the collector began
		n.collStop()
		<-n.collDone
	}
	if n.batcher != nil {
		n.batcher.Close()
	}
	if n.distSink != nil {
		n.distSink.Close()
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			n.logger.Error("closing storage", "err", err)
		}
	}
	if n.etcdClient != nil {
		n.etcdClient.Close()
	}
	if n.etcd != nil {
		n.etcd.Close()
	}
}

// singleClient is the single node's only ingester.
type singleClient struct{ c ingesterpb.IngesterClient }

func (s singleClient) Get(string) (ingesterpb.IngesterClient, error) { return s.c, nil }

// announceAddr is the address other nodes use for a listener: its own
// host, or when that is unspecified the advertise address, else the
// host name.
func announceAddr(a net.Addr, advertise string) string {
	if advertise == "" {
		advertise, _ = os.Hostname()
	}
	return withHost(a, advertise)
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
func loopbackHost(a net.Addr) string { return withHost(a, "localhost") }

// withHost is a listener's address with host in place of its IP when
// that is unspecified (a listener on all interfaces).
func withHost(a net.Addr, host string) string {
	h, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(h); ip != nil && !ip.IsUnspecified() {
		host = h
	}
	return net.JoinHostPort(host, port)
}

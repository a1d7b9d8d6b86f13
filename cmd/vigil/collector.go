package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-tsdb/vigil/collector"
	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/ring"
)

// CollectorConfig configures the collector role (-target=collector, and
// the single node): ownership, scraping, batching and the spool.
type CollectorConfig struct {
	Manager collector.ManagerConfig `yaml:"manager"`
	Scrape  collector.ScraperConfig `yaml:"scrape"`
	Batch   collector.BatcherConfig `yaml:"batch"`
	// Distributors are gRPC addresses to push to; empty: the healthy
	// distributors of the ring (the single node: its own).
	Distributors string `yaml:"distributors"`
}

func defaultCollectorConfig() CollectorConfig {
	c := CollectorConfig{
		Manager: collector.DefaultManagerConfig(),
		Scrape:  collector.DefaultScraperConfig(),
		Batch:   collector.DefaultBatcherConfig(),
	}
	c.Batch.Spool.Dir = "" // <data.dir>/collector/spool unless set
	return c
}

// RegisterFlags adds the -collector.* flags.
func (c *CollectorConfig) RegisterFlags(f *flag.FlagSet) {
	c.Manager.RegisterFlags(f)
	c.Scrape.RegisterFlags(f)
	c.Batch.RegisterFlags(f)
	f.StringVar(&c.Distributors, "collector.distributors", c.Distributors, "comma-separated gRPC addresses of distributors the collector pushes to (default: the healthy distributors of the ring; the single node: its own)")
}

// Validate reports the first problem.
func (c CollectorConfig) Validate() error {
	return errors.Join(c.Manager.Validate(), c.Scrape.Validate(), c.Batch.Validate())
}

// selfRegisterTTL is the lease of a node's own /metrics target: how long
// the target outlives a node that died.
const selfRegisterTTL = 30 * time.Second

// startCollector creates the collector role: manager, batcher and the
// push path, and mounts /targets.
func (n *node) startCollector(mux *http.ServeMux) error {
	if n.registry == nil {
		return errors.New("the collector role needs the target registry: set -etcd.endpoints (or run the etcd role in the same process)")
	}
	cfg := n.cfg.Collector
	name := n.cfg.Ring.NodeName
	var members collector.Membership
	var changes <-chan struct{}
	var addrs func() []string
	if static := splitList(cfg.Distributors); len(static) > 0 {
		addrs = func() []string { return static }
	}
	if n.cluster {
		members, changes = collector.RingMembership(n.ring), n.ring.Subscribe()
		if addrs == nil {
			addrs = func() []string { return distributorAddrs(n.ring) }
		}
	} else {
		members = collector.StaticMembership{Names: []string{name}, URLs: map[string]string{name: n.httpURL}}
		if addrs == nil {
			local := loopbackHost(n.grpcLn.Addr())
			addrs = func() []string { return []string{local} }
		}
	}
	n.distSink = &distributorSink{addrs: addrs, conns: map[string]*ingesterpb.Conn{}}
	logger := n.logger.With("component", "collector")
	var err error
	if n.batcher, err = collector.NewBatcher(cfg.Batch, n.distSink, logger, n.reg); err != nil {
		return err
	}
	if n.manager, err = collector.NewManager(cfg.Manager, name, n.registry, n.etcdClient, members, changes, cfg.Scrape, n.batcher, logger, n.reg); err != nil {
		return err
	}
	h := collector.TargetsHandler(name, n.manager.Targets)
	mux.Handle("/targets", h)
	mux.Handle("/api/v1/targets", h)
	return nil
}

// runCollector runs the manager until shutdownCollector stops it; it is
// not tied to ctx, so that a graceful stop can hand targets over first.
func (n *node) runCollector(ctx context.Context) error {
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.collStop, n.collDone = cancel, make(chan error, 1)
	go func() { n.collDone <- n.manager.Run(mctx) }()
	select {
	case err := <-n.collDone:
		n.collDone <- err // for shutdownCollector
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("collector: %w", err)
		}
		return nil
	case <-ctx.Done():
		return nil
	}
}

// shutdownCollector hands the targets over (cluster: after announcing
// leaving), stops the manager and flushes the batcher to the distributors
// or the spool.
func (n *node) shutdownCollector() error {
	var errs []error
	if n.cluster {
		if err := n.ring.SetState(ring.StateLeaving); err != nil {
			errs = append(errs, fmt.Errorf("announce leaving: %w", err))
		} else {
			timeout := n.cfg.Collector.Manager.HandoverOverlap + 2*time.Minute
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			began := time.Now()
			if err := n.manager.Leave(ctx); err != nil {
				errs = append(errs, err)
			} else {
				n.logger.Info("targets handed over", "took", time.Since(began).Round(time.Millisecond))
			}
			cancel()
		}
	}
	if n.collStop != nil {
		n.collStop()
		if err := <-n.collDone; err != nil {
			errs = append(errs, err)
		}
		n.collStop = nil
	}
	if err := n.batcher.Close(); err != nil {
		errs = append(errs, fmt.Errorf("flush scraped samples: %w", err))
	}
	return errors.Join(errs...)
}

// selfRegister registers the node's own /metrics as a target of job
// "vigil" under a lease, retrying while etcd is unavailable, until ctx
// ends (which revokes the lease).
func (n *node) selfRegister(ctx context.Context) error {
	t := collector.Target{Job: "vigil", Address: n.selfAddress()}
	t.Interval = collector.Duration(n.cfg.SelfScrapeInterval)
	backoff := time.Second
	for {
		unregister, err := n.registry.Register(ctx, t, selfRegisterTTL)
		if err == nil {
			n.logger.Info("registered own /metrics as a scrape target", "job", t.Job, "address", t.Address, "interval", n.cfg.SelfScrapeInterval)
			<-ctx.Done()
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := unregister(uctx); err != nil {
				n.logger.Warn("unregister own /metrics", "err", err)
			}
			return nil
		}
		if errors.Is(err, collector.ErrInvalidTarget) || errors.Is(err, collector.ErrStaticTarget) {
			return fmt.Errorf("register own /metrics: %w", err)
		}
		n.logger.Warn("register own /metrics as a scrape target; retrying", "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// selfAddress is the address collectors scrape this node's /metrics at.
func (n *node) selfAddress() string {
	switch {
	case n.cluster:
		return n.announcedHTTP
	case !n.roles["ingester"]: // an etcd-only node serves a cluster
		return announceAddr(n.httpLn.Addr(), n.cfg.Ring.AdvertiseAddr)
	}
	return loopbackHost(n.httpLn.Addr())
}

// distributorAddrs lists the gRPC addresses of the active, healthy
// distributors of the ring.
func distributorAddrs(r ring.Ring) []string {
	var out []string
	for _, m := range r.Members(ring.RoleDistributor) {
		if m.Healthy && m.State == ring.StateActive && m.GRPCAddr != "" {
			out = append(out, m.GRPCAddr)
		}
	}
	return out
}

// distributorSink pushes the collector's batches to distributors over
// gRPC, spreading them round-robin; a distributor that is unavailable is
// skipped for the next one once per push (the batcher spools what fails).
type distributorSink struct {
	addrs func() []string
	next  atomic.Uint64

	mu    sync.Mutex // protects conns
	conns map[string]*ingesterpb.Conn
}

var _ collector.Sink = (*distributorSink)(nil)

// Push sends batch; the batcher keeps no reference to it after the call.
func (d *distributorSink) Push(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	addrs := d.addrs()
	if len(addrs) == 0 {
		return model.PushResult{}, fmt.Errorf("%w: no healthy distributor in the ring", model.ErrUnavailable)
	}
	req := ingesterpb.FromSeries(batch)
	start := d.next.Add(1)
	var err error
	for i := range min(2, len(addrs)) {
		addr := addrs[(start+uint64(i))%uint64(len(addrs))]
		var c *ingesterpb.Conn
		if c, err = d.conn(addr); err != nil {
			continue
		}
		resp, perr := c.Distributor().Push(ctx, req)
		if perr == nil {
			return ingesterpb.ToResult(resp), nil
		}
		if err = ingesterpb.FromStatus(perr); !errors.Is(err, model.ErrUnavailable) || ctx.Err() != nil {
			break
		}
		err = fmt.Errorf("distributor %s: %w", addr, err)
	}
	return model.PushResult{}, err
}

func (d *distributorSink) conn(addr string) (*ingesterpb.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.conns[addr]; ok {
		return c, nil
	}
	c, err := ingesterpb.Dial(addr)
	if err != nil {
		return nil, err
	}
	d.conns[addr] = c
	return c, nil
}

// Close closes the connections.
func (d *distributorSink) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for a, c := range d.conns {
		c.Close()
		delete(d.conns, a)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// registryEndpoints names the etcd of the target registry for the banner.
func (n *node) registryEndpoints() string {
	switch {
	case n.cfg.Etcd.Endpoints != "":
		return n.cfg.Etcd.Endpoints
	case n.etcd != nil:
		return n.etcdURL() + "   (vigil targets -etcd.endpoints=" + n.etcdURL() + " ...)"
	}
	return "none"
}

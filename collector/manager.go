package collector

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ManagerConfig configures a Manager (flags -collector.*).
type ManagerConfig struct {
	Epsilon            float64       `yaml:"epsilon"`
	HandoverOverlap    time.Duration `yaml:"handover_overlap"`
	Settle             time.Duration `yaml:"settle"`
	LoadReportInterval time.Duration `yaml:"load_report_interval"`
	LoadReportTTL      time.Duration `yaml:"load_report_ttl"`
	CoordPrefix        string        `yaml:"coordination_prefix"`
}

// DefaultManagerConfig returns a complete, working configuration.
func DefaultManagerConfig() ManagerConfig {
	return ManagerConfig{
		Epsilon:            DefaultEpsilon,
		HandoverOverlap:    5 * time.Second,
		Settle:             500 * time.Millisecond,
		LoadReportInterval: 10 * time.Second,
		LoadReportTTL:      5 * time.Minute,
		CoordPrefix:        "/vigil/collectors/",
	}
}

// RegisterFlags adds the -collector.* flags of the manager.
func (c *ManagerConfig) RegisterFlags(f *flag.FlagSet) {
	f.Float64Var(&c.Epsilon, "collector.epsilon", c.Epsilon, "sharding tolerance ε: no collector carries more than (1+ε) × the mean series load (docs/collector.md)")
	f.DurationVar(&c.HandoverOverlap, "collector.handover-overlap", c.HandoverOverlap, "how long a collector keeps scraping a target it lost, so that the new owner has started (make-before-break)")
	f.DurationVar(&c.Settle, "collector.settle", c.Settle, "wait after a change of targets, members or loads before ownership is recomputed (changes within it are batched)")
	f.DurationVar(&c.LoadReportInterval, "collector.load-report-interval", c.LoadReportInterval, "how often a collector publishes the series count of its targets to etcd when they changed")
	f.DurationVar(&c.LoadReportTTL, "collector.load-report-ttl", c.LoadReportTTL, "lease of a collector's load report: how long it outlives the collector")
	f.StringVar(&c.CoordPrefix, "collector.etcd-prefix", c.CoordPrefix, "etcd key prefix of the collectors' load reports and assignment record (outside -targets.prefix)")
}

// Validate reports the first invalid field.
func (c ManagerConfig) Validate() error {
	switch {
	case c.Epsilon <= 0 || math.IsNaN(c.Epsilon) || math.IsInf(c.Epsilon, 0):
		return errors.New("collector.epsilon must be a positive number")
	case c.HandoverOverlap < 0:
		return errors.New("collector.handover-overlap must not be negative")
	case c.Settle <= 0:
		return errors.New("collector.settle must be positive")
	case c.LoadReportInterval <= 0:
		return errors.New("collector.load-report-interval must be positive")
	case c.LoadReportTTL < 2*c.LoadReportInterval || c.LoadReportTTL < 5*time.Second:
		return errors.New("collector.load-report-ttl must be at least 5s and twice collector.load-report-interval")
	case len(c.CoordPrefix) < 2 || c.CoordPrefix[0] != '/' || c.CoordPrefix[len(c.CoordPrefix)-1] != '/':
		return fmt.Errorf("collector.etcd-prefix %q: must start and end with /", c.CoordPrefix)
	}
	return nil
}

// Membership is the collector ring as the manager needs it.
type Membership interface {
	// Collectors returns the names of the collectors that may own
	// targets: active and healthy. The caller owns the slice.
	Collectors() []string
	// URL returns a collector's HTTP base URL, "" when unknown.
	URL(name string) string
}

// Loop states as /targets shows them.
const (
	stateScraping  = "scraping"
	stateHandover  = "handing over"
	stateStopping  = "stopping"
	stateReconfigd = "stopping (reconfigured)"
)

// loop is one Scraper run by the manager.
type loop struct {
	key    string
	target Target
	s      *Scraper
	state  string
	last   int64 // handing over: the last slot it scrapes
}

// Manager owns the scrape loops of one collector: it follows the registry,
// the collector ring and the coordination keys, computes ownership with
// Assign and starts and hands over Scrapers (docs/collector.md, "Ownership
// and handover"). Run does the work; Targets and Leave are safe to call
// concurrently with it.
type Manager struct {
	cfg       ManagerConfig
	name      string
	registry  *Registry
	members   Membership
	changes   <-chan struct{}
	scrapeCfg ScraperConfig
	sink      Sink
	smetrics  *ScrapeMetrics
	metrics   *managerMetrics
	logger    *slog.Logger
	coord     *coordinator

	leaveReq chan chan struct{} // Leave -> Run

	// Writes to etcd happen in their own goroutine (writeLoop), so that an
	// unavailable etcd never holds up scraping, handover or a Leave.
	writeKick     chan struct{} // cap 1
	wmu           sync.Mutex    // protects the fields below
	pendingReport *loadReport
	pendingRecord *assignmentRecord
	pendingRev    int64
	reported      map[string]int // last load report written
	reportedAt    time.Time

	mu       sync.Mutex // protects the fields below
	active   map[string]*loop
	draining []*loop
	snap     *Snapshot
	owners   map[string]string
	leaving  bool
}

// NewManager returns a manager for the collector called name. client is the
// etcd of the coordination keys (usually the registry's); changes receives
// a value when the membership may have changed; sink takes the samples.
func NewManager(cfg ManagerConfig, name string, registry *Registry, client *clientv3.Client, members Membership, changes <-chan struct{},
	scrapeCfg ScraperConfig, sink Sink, logger *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := scrapeCfg.Validate(); err != nil {
		return nil, err
	}
	if name == "" || registry == nil || client == nil || members == nil || sink == nil {
		return nil, errors.New("collector manager: name, registry, etcd client, membership and sink are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sm, err := NewScrapeMetrics(reg)
	if err != nil {
		return nil, err
	}
	mm, err := newManagerMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg: cfg, name: name, registry: registry, members: members, changes: changes,
		scrapeCfg: scrapeCfg, sink: sink, smetrics: sm, metrics: mm, logger: logger,
		leaveReq:  make(chan chan struct{}),
		writeKick: make(chan struct{}, 1),
		active:    map[string]*loop{},
	}
	m.coord = &coordinator{client: client, prefix: cfg.CoordPrefix, name: name, ttl: cfg.LoadReportTTL,
		logger: logger, onErr: mm.coordErrors.Inc}
	return m, nil
}

// Run follows the registry, membership and coordination state until ctx
// ends. On return every scrape loop has stopped; loops that were still
// running were abandoned without staleness markers (the process stops, and
// its targets may live on elsewhere).
func (m *Manager) Run(ctx context.Context) error {
	loopCtx, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopLoops()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.writeLoop(loopCtx)
	}()
	snaps := m.registry.Watch(ctx)
	coords := m.coord.watch(ctx, m.registry.cfg.RetryBackoff, m.registry.cfg.MaxRetryBackoff)
	done := make(chan *loop, 16)
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	report := time.NewTicker(m.cfg.LoadReportInterval)
	defer report.Stop()

	var (
		coord     coordState
		haveCoord bool
		dirty     bool
		leaveDone chan struct{}
	)
	markDirty := func() {
		if !dirty {
			dirty = true
			settle.Reset(m.cfg.Settle)
		}
	}
	start := func(l *loop, from int64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.s.Run(loopCtx, from, math.MaxInt64); err != nil {
				m.logger.Warn("scrape loop ended", "target", l.key, "err", err)
			}
			select {
			case done <- l:
			case <-ctx.Done():
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case s, ok := <-snaps:
			if !ok {
				return nil
			}
			m.mu.Lock()
			m.snap = &s
			m.mu.Unlock()
			markDirty()
		case st, ok := <-coords:
			if !ok {
				return nil
			}
			coord, haveCoord = st, true
			markDirty()
		case <-m.changes:
			markDirty()
		case l := <-done:
			m.mu.Lock()
			m.draining = slices.DeleteFunc(m.draining, func(x *loop) bool { return x == l })
			if m.active[l.key] == l { // ended by itself (ctx) while active
				delete(m.active, l.key)
			}
			m.mu.Unlock()
			m.metrics.loops.Set(float64(m.loopCount()))
			markDirty()
		case ch := <-m.leaveReq:
			m.mu.Lock()
			m.leaving = true
			m.mu.Unlock()
			leaveDone = ch
			markDirty()
		case <-settle.C:
			dirty = false
			m.mu.Lock()
			haveSnap := m.snap != nil
			m.mu.Unlock()
			if !haveSnap || !haveCoord {
				break // nothing known to own yet
			}
			m.reconcile(coord, start)
		case <-report.C:
			m.reportLoads()
		}
		if leaveDone != nil && m.loopCount() == 0 {
			close(leaveDone)
			leaveDone = nil
		}
	}
}

// Leave hands every target over and returns once no scrape loop runs (or
// ctx ends). The caller must have taken the collector out of the
// membership first (ring state leaving), so that the others take over.
func (m *Manager) Leave(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case m.leaveReq <- ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hand over targets: %w (%d scrape loops still running)", ctx.Err(), m.loopCount())
	}
}

func (m *Manager) loopCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.active) + len(m.draining)
}

// reconcile computes ownership and starts, hands over or stops loops.
func (m *Manager) reconcile(coord coordState, start func(*loop, int64)) {
	began := time.Now()
	m.mu.Lock()
	snap, leaving := m.snap, m.leaving
	m.mu.Unlock()

	members := m.members.Collectors()
	if leaving {
		members = slices.DeleteFunc(members, func(c string) bool { return c == m.name })
	}
	keys := make([]string, len(snap.Targets))
	byKey := make(map[string]Target, len(snap.Targets))
	loads := coord.loads()
	tl := make([]TargetLoad, len(snap.Targets))
	for i, t := range snap.Targets {
		k := t.Job + "/" + t.ID
		keys[i], byKey[k] = k, t
		tl[i] = TargetLoad{ID: k, Series: loads[k]}
	}
	owners, stats := AssignStats(members, tl, coord.Record.prev(keys), m.cfg.Epsilon)
	m.metrics.observe(stats, time.Since(began))

	nowMs := time.Now().UnixMilli()
	var in, out, stopped int
	m.mu.Lock()
	m.owners = owners
	for _, k := range keys {
		t := byKey[k]
		l := m.active[k]
		if l != nil && !reflect.DeepEqual(l.target, t) {
			l.s.Stop(false)
			l.state = stateReconfigd
			m.draining = append(m.draining, l)
			delete(m.active, k)
			l = nil
		}
		own := owners[k] == m.name
		switch {
		case own && l == nil:
			if m.startLocked(k, t, nowMs, start) {
				in++
			}
		case !own && l != nil:
			l.last = l.s.Slots().At(nowMs + m.cfg.HandoverOverlap.Milliseconds())
			l.s.StopAfter(l.last)
			l.state = stateHandover
			m.draining = append(m.draining, l)
			delete(m.active, k)
			out++
		}
	}
	for k, l := range m.active {
		if _, ok := byKey[k]; !ok {
			l.s.Stop(true)
			l.state = stateStopping
			m.draining = append(m.draining, l)
			delete(m.active, k)
			stopped++
		}
	}
	n := len(m.active) + len(m.draining)
	m.mu.Unlock()
	m.metrics.loops.Set(float64(n))
	m.metrics.handovers.WithLabelValues("in").Add(float64(in))
	m.metrics.handovers.WithLabelValues("out").Add(float64(out))
	if in+out+stopped > 0 {
		m.logger.Info("ownership changed", "collectors", len(members), "targets", len(keys), "started", in, "handing_over", out, "removed", stopped,
			"max_load", stats.MaxLoad, "mean_load", int64(stats.Mean), "limit", stats.Limit, "took", time.Since(began).Round(time.Millisecond))
	}
	if stats.OverLimit {
		m.logger.Warn("no assignment within the series cap was found", "max_load", stats.MaxLoad, "limit", stats.Limit)
	}

	// The leader (first active collector by name) records the assignment,
	// so that every collector uses it as the previous one.
	if !leaving && len(members) > 0 && slices.Min(members) == m.name && !coord.Record.sameAssignment(members, owners) {
		m.wmu.Lock()
		m.pendingRecord, m.pendingRev = newRecord(m.name, members, owners, time.Now()), coord.RecordRev
		m.wmu.Unlock()
		m.kickWriter()
	}
}

func (m *Manager) kickWriter() {
	select {
	case m.writeKick <- struct{}{}:
	default:
	}
}

// writeLoop writes the newest pending load report and assignment record
// to etcd until ctx ends. A failed write is logged and counted; the
// report is tried again at the next load-report tick, the record at the
// next reconcile that still finds it different.
func (m *Manager) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.writeKick:
		}
		m.wmu.Lock()
		rep, rec, rev := m.pendingReport, m.pendingRecord, m.pendingRev
		m.pendingReport, m.pendingRecord = nil, nil
		m.wmu.Unlock()
		if rep != nil {
			if err := m.coord.report(ctx, *rep); err != nil {
				if ctx.Err() != nil {
					return
				}
				m.metrics.coordErrors.Inc()
				m.logger.Warn("publish the load report", "err", err)
			} else {
				m.metrics.reports.Inc()
				m.wmu.Lock()
				m.reported, m.reportedAt = rep.Series, time.Now()
				m.wmu.Unlock()
			}
		}
		if rec != nil {
			ok, err := m.coord.publish(ctx, rec, rev)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				m.metrics.coordErrors.Inc()
				m.logger.Warn("record the assignment", "err", err)
			case ok:
				m.metrics.recordWrites.Inc()
			}
		}
	}
}

// startLocked starts a scraper of t from the current slot, or after the
// last slot of a loop of the same target that is still handing over. A
// target whose final stop is still running is started when it is done.
func (m *Manager) startLocked(key string, t Target, nowMs int64, start func(*loop, int64)) bool {
	clock := SlotClockOf(t)
	from := clock.At(nowMs)
	for _, d := range m.draining {
		if d.key != key {
			continue
		}
		if d.state != stateHandover || !reflect.DeepEqual(d.target, t) {
			return false // wait for its Done (markers, or another configuration)
		}
		from = max(from, d.last+1) // the old loop scrapes through d.last
	}
	s, err := NewScraper(m.scrapeCfg, t, m.sink, m.smetrics, m.logger.With("target", key))
	if err != nil {
		m.logger.Error("cannot scrape target", "target", key, "err", err)
		return false
	}
	l := &loop{key: key, target: t, s: s, state: stateScraping}
	m.active[key] = l
	start(l, from)
	return true
}

// reportLoads queues the series counts of this collector's targets for
// writing when they changed by more than 10% (or targets came or went)
// since the last report written, and otherwise every TTL/3 to keep the
// report alive.
func (m *Manager) reportLoads() {
	cur := map[string]int{}
	m.mu.Lock()
	for k, l := range m.active {
		if st := l.s.Status(); st.Health != HealthUnknown {
			cur[k] = st.Series
		}
	}
	m.mu.Unlock()
	m.wmu.Lock()
	due := loadsChanged(m.reported, cur) || time.Since(m.reportedAt) >= m.cfg.LoadReportTTL/3
	if due {
		m.pendingReport = &loadReport{Collector: m.name, Time: time.Now().UTC(), Series: cur}
	}
	m.wmu.Unlock()
	if due {
		m.kickWriter()
	}
}

// loadsChanged reports whether cur differs from last by a target or by
// more than 10% of a count.
func loadsChanged(last, cur map[string]int) bool {
	if last == nil || len(last) != len(cur) {
		return true
	}
	for k, n := range cur {
		o, ok := last[k]
		if !ok || math.Abs(float64(n-o)) > 0.1*float64(max(o, 1)) {
			return true
		}
	}
	return false
}

// Targets lists every registry target with its owner and, for targets
// scraped here, the local scraper's state (for /targets).
func (m *Manager) Targets() []TargetInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snap == nil {
		return nil
	}
	local := map[string]*loop{}
	for _, d := range m.draining {
		local[d.key] = d
	}
	for k, l := range m.active {
		local[k] = l
	}
	out := make([]TargetInfo, 0, len(m.snap.Targets))
	for _, t := range m.snap.Targets {
		k := t.Job + "/" + t.ID
		ti := TargetInfo{Key: k, Target: t, Owner: m.owners[k]}
		if ti.Owner != "" {
			ti.OwnerURL = m.members.URL(ti.Owner)
		}
		if l := local[k]; l != nil {
			st := l.s.Status()
			ti.State, ti.Local = l.state, &st
		}
		out = append(out, ti)
	}
	return out
}

package rules

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-tsdb/vigil/model"
)

// RulerConfig configures rule evaluation (docs/alerting.md "Evaluation").
type RulerConfig struct {
	// EvaluationInterval is the interval of groups that set none.
	EvaluationInterval time.Duration `yaml:"evaluation_interval"`
	// OutageTolerance is how old the last ALERTS_FOR_STATE sample may be
	// for a restart to restore an alert's `for` state from it.
	OutageTolerance time.Duration `yaml:"outage_tolerance"`
	// ResendDelay is how often a firing alert is handed to the notifier
	// again.
	ResendDelay time.Duration `yaml:"resend_delay"`
	// ExternalURL is the base of alerts' generator URLs.
	ExternalURL string `yaml:"external_url"`
	// HandoverOverlap is how long a ruler keeps evaluating a group it lost
	// to another ruler after it saw the change (docs/alerting.md,
	// "Sharding and hand-over").
	HandoverOverlap time.Duration `yaml:"handover_overlap"`
	// GatherTimeout bounds how long /api/v1/rules and /api/v1/alerts wait
	// for each ruler in a cluster (Gather).
	GatherTimeout time.Duration `yaml:"gather_timeout"`
}

// DefaultRulerConfig is Prometheus' defaults.
func DefaultRulerConfig() RulerConfig {
	return RulerConfig{EvaluationInterval: time.Minute, OutageTolerance: time.Hour, ResendDelay: time.Minute, HandoverOverlap: 5 * time.Second,
		GatherTimeout: 10 * time.Second}
}

// RegisterFlags adds the -ruler.* flags.
func (c *RulerConfig) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.EvaluationInterval, "ruler.evaluation-interval", c.EvaluationInterval, "evaluation interval of rule groups that set none")
	f.DurationVar(&c.OutageTolerance, "ruler.outage-tolerance", c.OutageTolerance, "an alert's `for` state is restored after a restart if its last ALERTS_FOR_STATE sample is at most this old")
	f.DurationVar(&c.ResendDelay, "ruler.resend-delay", c.ResendDelay, "how often a firing alert is sent to the notifier again")
	f.DurationVar(&c.HandoverOverlap, "ruler.handover-overlap", c.HandoverOverlap, "in a cluster, how long a ruler keeps evaluating a rule group another ruler took over after it saw the change (make-before-break)")
	f.DurationVar(&c.GatherTimeout, "ruler.gather-timeout", c.GatherTimeout, "in a cluster, how long /api/v1/rules and /api/v1/alerts wait for each ruler's answer")
	f.StringVar(&c.ExternalURL, "ruler.external-url", c.ExternalURL, "base URL of alerts' generator links (default: the node's HTTP URL)")
}

// Validate reports the first problem.
func (c RulerConfig) Validate() error {
	switch {
	case c.EvaluationInterval < time.Second:
		return errors.New("ruler.evaluation-interval must be at least 1s")
	case c.OutageTolerance <= 0:
		return errors.New("ruler.outage-tolerance must be positive")
	case c.ResendDelay <= 0:
		return errors.New("ruler.resend-delay must be positive")
	case c.HandoverOverlap < 0:
		return errors.New("ruler.handover-overlap must not be negative")
	case c.GatherTimeout <= 0:
		return errors.New("ruler.gather-timeout must be positive")
	}
	if c.ExternalURL != "" {
		if _, err := url.Parse(c.ExternalURL); err != nil {
			return fmt.Errorf("ruler.external-url: %w", err)
		}
	}
	return nil
}

// Pusher writes samples; the distributor is one. A push is acknowledged
// only when stored at quorum.
type Pusher interface {
	Push(ctx context.Context, batch []model.Series) (model.PushResult, error)
}

// Ruler evaluates the stored rule groups with Prometheus' rule manager:
// expressions run on the querier (queryable and engine), recording rules'
// results and the ALERTS and ALERTS_FOR_STATE series go back through the
// distributor (push), and alerts go to notify. Alerts' `for` state
// survives a restart through ALERTS_FOR_STATE, which Prometheus' manager
// writes and reads back, here from Vigil's own replicated storage.
type Ruler struct {
	cfg    RulerConfig
	logger *slog.Logger
	mgr    *promrules.Manager
	parser parser.Parser

	// applyMu serializes Apply and Resync: each computes the groups to
	// evaluate and hands them to the manager, whose Update calls Load.
	applyMu sync.Mutex
	mu      sync.Mutex                     // protects the fields below
	applied map[string][]rulefmt.RuleGroup // namespace → groups, what Load serves
	own     ownership                      // which groups of the snapshot are evaluated here
	now     func() time.Time               // the clock of hand-overs (tests set a fake one)

	owned prometheus.Gauge
	moves *prometheus.CounterVec
}

// NewRuler returns a Ruler that evaluates nothing until Apply. notify may
// be nil (alerts are then only in /api/v1/alerts and the ALERTS series).
func NewRuler(cfg RulerConfig, queryable storage.Queryable, engine promql.QueryEngine, push Pusher, notify promrules.NotifyFunc,
	logger *slog.Logger, reg prometheus.Registerer,
) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var ext *url.URL
	if cfg.ExternalURL != "" {
		ext, _ = url.Parse(cfg.ExternalURL)
	}
	if notify == nil {
		notify = func(context.Context, string, ...*promrules.Alert) {}
	}
	r := &Ruler{cfg: cfg, logger: logger, parser: parser.NewParser(parser.Options{}), applied: map[string][]rulefmt.RuleGroup{},
		own: newOwnership(cfg.HandoverOverlap), now: time.Now,
		owned: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_ruler_groups",
			Help: "Rule groups this ruler owns (a group it lost and still evaluates during the hand-over overlap is not counted)."}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_ruler_group_moves_total",
			Help: "Rule groups this ruler gained (in) or lost (out) on a ring change."}, []string{"direction"})}
	r.moves.WithLabelValues("in")
	r.moves.WithLabelValues("out")
	reg.MustRegister(r.owned, r.moves)
	r.mgr = promrules.NewManager(&promrules.ManagerOptions{
		ExternalURL: ext,
		QueryFunc:   promrules.EngineQueryFunc(engine, queryable),
		NotifyFunc:  notify,
		Context:     context.Background(),
		Appendable:  pushAppendable{push: push, dropStale: r.handedOver},
		Queryable:   queryable,
		Logger:      logger,
		Registerer:  reg,
		// `for` continues where it was after a restart: no grace period
		// is added, the time no ruler evaluated does not count.
		OutageTolerance:      cfg.OutageTolerance,
		ForGracePeriod:       0,
		ResendDelay:          cfg.ResendDelay,
		GroupLoader:          r,
		RestoreNewRuleGroups: true,
		Parser:               r.parser,
	})
	return r, nil
}

// Run evaluates until ctx ends.
func (r *Ruler) Run(ctx context.Context) {
	go func() { <-ctx.Done(); r.mgr.Stop() }()
	r.mgr.Run()
}

// Apply makes the groups of snap the ones evaluated (those this ruler
// owns, with an ownership set, and those it is handing over). Groups whose
// definition did not change keep their state; the others start afresh
// (their alerts restored from ALERTS_FOR_STATE).
func (r *Ruler) Apply(snap Snapshot) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	r.own.setGroups(snap.Groups)
	r.mu.Unlock()
	if _, err := r.updateLocked(true); err != nil {
		return fmt.Errorf("apply rule groups (revision %d): %w", snap.Revision, err)
	}
	return nil
}

// updateLocked recomputes the groups to evaluate and hands them to the
// manager, unless force is false and they did not change (a ring change
// that moved nothing here). It returns when the next hand-over ends (zero
// when none is under way). Called with applyMu held.
func (r *Ruler) updateLocked(force bool) (time.Time, error) {
	r.mu.Lock()
	ch := r.own.compute(r.now())
	r.owned.Set(float64(ch.owned))
	r.moves.WithLabelValues("in").Add(float64(len(ch.gained)))
	r.moves.WithLabelValues("out").Add(float64(len(ch.lost)))
	if len(ch.gained)+len(ch.lost)+len(ch.released) > 0 {
		r.logger.Info("rule group ownership changed", "owned", ch.owned, "gained", ch.gained, "lost", ch.lost, "released", ch.released)
	}
	if ch.same && !force {
		r.mu.Unlock()
		return ch.next, nil
	}
	byNS := map[string][]rulefmt.RuleGroup{}
	for _, g := range ch.evaluate {
		byNS[g.Namespace] = append(byNS[g.Namespace], g.RuleGroup)
	}
	r.applied = byNS
	r.mu.Unlock()
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces)
	if err := r.mgr.Update(r.cfg.EvaluationInterval, namespaces, labels.EmptyLabels(), r.cfg.ExternalURL, nil); err != nil {
		r.mu.Lock()
		r.own.evaluated = nil // not in force: the next compute must update
		r.mu.Unlock()
		return ch.next, err
	}
	return ch.next, nil
}

// Load implements promrules.GroupLoader: the groups of one namespace as
// applied (a namespace is what a rule file is to Prometheus).
func (r *Ruler) Load(namespace string, _ bool, _ pmodel.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &rulefmt.RuleGroups{Groups: r.applied[namespace]}, nil
}

// Parse implements promrules.GroupLoader.
func (r *Ruler) Parse(query string) (parser.Expr, error) { return r.parser.ParseExpr(query) }

// Groups returns the groups being evaluated, with their rules' state.
func (r *Ruler) Groups() []*promrules.Group { return r.mgr.RuleGroups() }

// AlertingRules returns every alerting rule being evaluated.
func (r *Ruler) AlertingRules() []*promrules.AlertingRule { return r.mgr.AlertingRules() }

// Evaluator evaluates the groups of one snapshot at times the caller
// chooses, outside the manager's schedule: a simulated clock for tests and
// dry runs. It shares the Ruler's queryable, engine, pusher and notify
// function; alerts are sent (by the resend rules) at those times too.
type Evaluator struct {
	groups   []*promrules.Group
	restored bool
}

// Evaluator loads the groups of snap without starting them.
func (r *Ruler) Evaluator(snap Snapshot) (*Evaluator, error) {
	byNS := map[string][]rulefmt.RuleGroup{}
	for _, g := range snap.Groups {
		byNS[g.Namespace] = append(byNS[g.Namespace], g.RuleGroup)
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces)
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	r.mu.Lock()
	r.applied = byNS
	r.mu.Unlock()
	groups, errs := r.mgr.LoadGroups(r.cfg.EvaluationInterval, labels.EmptyLabels(), r.cfg.ExternalURL, nil, false, namespaces...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("load rule groups: %w", errors.Join(errs...))
	}
	e := &Evaluator{}
	for _, g := range groups {
		e.groups = append(e.groups, g)
	}
	slices.SortFunc(e.groups, func(a, b *promrules.Group) int { return strings.Compare(a.File()+"/"+a.Name(), b.File()+"/"+b.Name()) })
	return e, nil
}

// EvalAt evaluates every group at ts, in order. After the first
// evaluation it restores alerts' `for` state from ALERTS_FOR_STATE, as the
// manager does when a group starts (the manager waits for a second
// evaluation); until then no ALERTS or ALERTS_FOR_STATE samples are
// written, as in Prometheus.
func (e *Evaluator) EvalAt(ctx context.Context, ts time.Time) {
	for _, g := range e.groups {
		g.Eval(ctx, ts)
		if !e.restored {
			g.RestoreForState(ts)
		}
	}
	e.restored = true
}

// Groups are the evaluator's groups, with their rules' state.
func (e *Evaluator) Groups() []*promrules.Group { return e.groups }

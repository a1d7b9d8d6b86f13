package alerting

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonmodel "github.com/prometheus/common/model"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	// ErrInvalidSilence wraps every validation error of CreateSilence.
	ErrInvalidSilence = errors.New("invalid silence")
	// ErrNotFound is returned for a silence or dead letter that does not exist.
	ErrNotFound = errors.New("not found")
)

// Clock tells the notifier the time; tests inject a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// NotifierConfig configures the notifier (flags -alerting.*). The routing
// tree and receivers are a RoutingConfig, loaded from a file.
type NotifierConfig struct {
	Prefix         string        `yaml:"prefix"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// PollInterval is how often groups are checked for a due flush, silences
	// re-read and the queue scanned for due entries.
	PollInterval time.Duration `yaml:"poll_interval"`
	MaxAttempts  int           `yaml:"max_attempts"`
	MaxAge       time.Duration `yaml:"max_age"`
	MinBackoff   time.Duration `yaml:"min_backoff"`
	MaxBackoff   time.Duration `yaml:"max_backoff"`
	// ResolveTimeout ends a firing alert that came without EndsAt and was
	// not sent again for this long (Alertmanager's resolve_timeout).
	ResolveTimeout   time.Duration `yaml:"resolve_timeout"`
	SilenceRetention time.Duration `yaml:"silence_retention"`
	ExternalURL      string        `yaml:"external_url"`
	// LeaderLease is the etcd lease of the leading notifier: after a
	// crash, another takes over within it.
	LeaderLease time.Duration `yaml:"leader_lease"`
	// AdvertiseURL is the base URL (http://host:port) at which the other
	// nodes' rulers reach this notifier's Handler while it leads; cmd sets
	// it to the node's HTTP URL.
	AdvertiseURL string `yaml:"advertise_url"`
}

// DefaultNotifierConfig returns a complete, working configuration.
func DefaultNotifierConfig() NotifierConfig {
	return NotifierConfig{
		Prefix:           "/vigil/alerting/",
		RequestTimeout:   10 * time.Second,
		PollInterval:     time.Second,
		MaxAttempts:      20,
		MaxAge:           24 * time.Hour,
		MinBackoff:       time.Second,
		MaxBackoff:       5 * time.Minute,
		ResolveTimeout:   5 * time.Minute,
		SilenceRetention: 5 * 24 * time.Hour,
		LeaderLease:      10 * time.Second,
	}
}

// RegisterFlags adds the -alerting.* flags, with the current values as defaults.
func (c *NotifierConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Prefix, "alerting.prefix", c.Prefix, "etcd key prefix of the notifier's state, queue and silences (docs/alerting.md)")
	f.DurationVar(&c.RequestTimeout, "alerting.request-timeout", c.RequestTimeout, "timeout of one etcd request of the notifier")
	f.DurationVar(&c.PollInterval, "alerting.poll-interval", c.PollInterval, "how often groups are flushed when due and the queue is scanned")
	f.IntVar(&c.MaxAttempts, "alerting.max-attempts", c.MaxAttempts, "delivery attempts of a notification before it is dead-lettered")
	f.DurationVar(&c.MaxAge, "alerting.max-age", c.MaxAge, "age at which an undelivered notification is dead-lettered")
	f.DurationVar(&c.MinBackoff, "alerting.min-backoff", c.MinBackoff, "first wait before retrying a failed delivery")
	f.DurationVar(&c.MaxBackoff, "alerting.max-backoff", c.MaxBackoff, "longest wait between delivery attempts")
	f.DurationVar(&c.ResolveTimeout, "alerting.resolve-timeout", c.ResolveTimeout, "a firing alert without an end that is not sent again for this long is resolved")
	f.DurationVar(&c.SilenceRetention, "alerting.silence-retention", c.SilenceRetention, "how long expired silences are kept")
	f.StringVar(&c.ExternalURL, "alerting.external-url", c.ExternalURL, "URL of Vigil put in notifications (externalURL)")
	f.DurationVar(&c.LeaderLease, "alerting.leader-lease", c.LeaderLease, "etcd lease of the leading notifier: after a crash another takes over within it (whole seconds, at least 2s)")
}

// Validate reports the first invalid field.
func (c NotifierConfig) Validate() error {
	switch {
	case !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("alerting.prefix %q: must start and end with /", c.Prefix)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("alerting.request-timeout must be positive")
	case c.PollInterval <= 0:
		return fmt.Errorf("alerting.poll-interval must be positive")
	case c.MaxAttempts <= 0:
		return fmt.Errorf("alerting.max-attempts must be positive")
	case c.MaxAge <= 0:
		return fmt.Errorf("alerting.max-age must be positive")
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("alerting.min-backoff must be positive and at most alerting.max-backoff")
	case c.ResolveTimeout <= 0:
		return fmt.Errorf("alerting.resolve-timeout must be positive")
	case c.SilenceRetention < 0:
		return fmt.Errorf("alerting.silence-retention must not be negative")
	case c.LeaderLease < 2*time.Second || c.LeaderLease%time.Second != 0:
		return fmt.Errorf("alerting.leader-lease %s: must be whole seconds, at least 2s (an etcd lease)", c.LeaderLease)
	}
	return nil
}

// chanInfo describes one channel of a receiver, by its index in
// NewChannels' order.
type chanInfo struct {
	ch           Channel
	kind         string
	sendResolved bool
}

// Notifier routes, groups, silences and inhibits alerts, and delivers the
// notifications through a durable queue in etcd (docs/alerting.md,
// "Notifier"). Ingest and Notify are safe for concurrent use and do no
// I/O; Run elects one leader among the notifiers of a prefix and, while
// it leads, does the flushing and the delivering.
type Notifier struct {
	cfg      NotifierConfig
	static   bool // the routing was given to New; else it is read from etcd
	client   *clientv3.Client
	clock    Clock
	logger   *slog.Logger
	metrics  *notifierMetrics
	fwd      *forwarder
	electing atomic.Bool // Run was called: Notify forwards unless this one leads

	flushMu      sync.Mutex // serializes flush passes and configuration changes
	badConfigRev int64      // the invalid stored configuration last logged (flushMu)

	mu             sync.Mutex    // protects the fields below
	rs             *routingState // the configuration in force; nil: none yet
	groups         map[string]*aggrGroup
	silences       map[string]*Silence   // last read from etcd, plus local writes
	loaded         bool                  // group states read from etcd
	carry          []alertEntry          // alerts held before a reload or without a configuration, oldest first (loadStates)
	late           map[string]alertEntry // fingerprint → resolved while the states were not read, unless it fired again (loadStates)
	fence          *fence                // the leader key this notifier holds; nil when not leading
	accepting      bool                  // leading and not stopping: alerts are taken (ingestIfLeading)
	warnedNoConfig bool                  // the drop for want of a configuration was logged

	deliverMu sync.Mutex // serializes queue scans (deliver)

	laneMu sync.Mutex      // protects busy
	busy   map[string]bool // delivery lanes (receiver/channel) in flight
	lanes  sync.WaitGroup  // delivery goroutines
	wake   chan struct{}   // a notification was enqueued
}

// routingState is a configuration in force: the routing tree compiled and
// the receivers' channels built.
type routingState struct {
	routing  *RoutingConfig
	root     *compiledRoute
	inhibit  []compiledInhibit
	channels map[string][]chanInfo // receiver → channels, NewChannels' order
	rev      int64                 // mod revision of the etcd key it came from; 0 for a static one
}

func newRoutingState(routing *RoutingConfig, logger *slog.Logger) (*routingState, error) {
	root, inh, err := routing.compile()
	if err != nil {
		return nil, fmt.Errorf("notifier config: %w", err)
	}
	rs := &routingState{routing: routing, root: root, inhibit: inh, channels: map[string][]chanInfo{}}
	for _, r := range routing.Receivers {
		chs, err := NewChannels(r, logger)
		if err != nil {
			return nil, err
		}
		infos := make([]chanInfo, len(chs))
		sr := sendResolvedFlags(r)
		for i, ch := range chs {
			infos[i] = chanInfo{ch: ch, kind: ch.Kind(), sendResolved: sr[i]}
		}
		rs.channels[r.Name] = infos
	}
	return rs, nil
}

// New returns a notifier. routing, when not nil, must be validated
// (ParseRoutingConfig) and is the configuration for good; nil means the
// configuration is the etcd key <prefix>config (PutConfig), read again at
// every pass while the notifier leads. client stays owned by the caller
// and must outlive Run. clock nil means the real clock.
func New(cfg NotifierConfig, routing *RoutingConfig, client *clientv3.Client, clock Clock, logger *slog.Logger, reg prometheus.Registerer) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if routing != nil && routing.Route == nil {
		return nil, fmt.Errorf("notifier: routing configuration without a route")
	}
	if client == nil {
		return nil, fmt.Errorf("notifier: no etcd client")
	}
	if clock == nil {
		clock = realClock{}
	}
	logger = orDiscard(logger)
	n := &Notifier{
		cfg: cfg, static: routing != nil, client: client, clock: clock, logger: logger,
		groups: map[string]*aggrGroup{}, silences: map[string]*Silence{},
		busy: map[string]bool{}, wake: make(chan struct{}, 1),
	}
	if routing != nil {
		rs, err := newRoutingState(routing, logger)
		if err != nil {
			return nil, err
		}
		n.rs = rs
	}
	var err error
	if n.metrics, err = newNotifierMetrics(reg); err != nil {
		return nil, err
	}
	n.fwd = newForwarder(n)
	return n, nil
}

// routing returns the configuration in force, nil if there is none.
func (n *Notifier) routing() *routingState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rs
}

// sendResolvedFlags lists send_resolved of a receiver's configs in
// NewChannels' order.
func sendResolvedFlags(r *Receiver) []bool {
	var out []bool
	for _, c := range r.EmailConfigs {
		out = append(out, c.sendResolved())
	}
	for _, c := range r.DingTalkConfigs {
		out = append(out, c.sendResolved())
	}
	for _, c := range r.WeComConfigs {
		out = append(out, c.sendResolved())
	}
	for _, c := range r.WeComAppConfigs {
		out = append(out, c.sendResolved())
	}
	for _, c := range r.WebhookConfigs {
		out = append(out, c.sendResolved())
	}
	for _, c := range r.AlertmanagerConfigs {
		out = append(out, c.sendResolved())
	}
	return out
}

// poll flushes due groups and delivers due queue entries every
// PollInterval (and at once after an enqueue) until ctx is done.
func (n *Notifier) poll(ctx context.Context) {
	t := time.NewTicker(n.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := n.flush(ctx); err != nil && ctx.Err() == nil {
			n.logger.Warn("notifier flush", "err", err)
		}
		if err := n.deliver(ctx, false); err != nil && ctx.Err() == nil {
			n.logger.Warn("notifier queue scan", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.wake:
		}
	}
}

// Fingerprint is the alert identity: the hash of its labels, as
// Alertmanager computes it (16 hex digits).
func Fingerprint(kv KV) string {
	ls := make(commonmodel.LabelSet, len(kv))
	for k, v := range kv {
		ls[commonmodel.LabelName(k)] = commonmodel.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// Ingest takes the ruler's alerts, with Prometheus' NotifyFunc semantics:
// every evaluation (or resend) brings the firing alerts, with StartsAt and
// an EndsAt in the future or zero, and the resolved ones, with EndsAt at or
// before now (or Status "resolved"). Alerts are keyed by their labels'
// fingerprint; each goes to the aggregation groups of the routes it
// matches. Without a configuration they wait for one until the next pass
// (dropped, counted, if none is stored). It does no I/O and does not keep
// the slice. Rulers call Notify, which brings the alerts to the leading
// notifier.
func (n *Notifier) Ingest(alerts []Alert) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ingestLocked(alerts)
}

// ingestIfLeading is Ingest if this notifier leads now; checked and done
// under one lock, so alerts cannot land in a notifier that just lost the
// lead.
func (n *Notifier) ingestIfLeading(alerts []Alert) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.accepting {
		return false
	}
	n.ingestLocked(alerts)
	return true
}

// maxCarry bounds the alerts that wait for the groups to be loaded (etcd
// unreachable at a takeover, for instance).
const maxCarry = 50000

func (n *Notifier) ingestLocked(alerts []Alert) {
	now := n.clock.Now()
	for _, a := range alerts {
		if len(a.Labels) == 0 {
			continue
		}
		a.Labels = copyKV(a.Labels)
		a.Annotations = copyKV(a.Annotations)
		a.Fingerprint = Fingerprint(a.Labels)
		e := alertEntry{Alert: a}
		switch {
		case a.Status == StatusResolved && (a.EndsAt.IsZero() || a.EndsAt.After(now)):
			e.Alert.EndsAt, e.Expires = now, now
		case a.EndsAt.IsZero():
			e.Expires = now.Add(n.cfg.ResolveTimeout)
		default:
			e.Expires = a.EndsAt
		}
		if n.rs == nil {
			n.carry = append(n.carry, e)
			continue
		}
		if !n.loaded {
			n.noteLate(e, now)
		}
		n.place(e, now, true)
	}
	n.carry = n.bounded(n.carry)
	n.metrics.groups.Set(float64(len(n.groups)))
}

// noteLate records an alert that arrives while the groups' states are
// not read: a resolved one is placed again after them, when its group
// exists (loadStates); a firing one cancels that. Called with n.mu held.
func (n *Notifier) noteLate(e alertEntry, now time.Time) {
	fp := e.Alert.Fingerprint
	if e.Expires.After(now) {
		delete(n.late, fp)
		return
	}
	if _, ok := n.late[fp]; !ok && len(n.late) >= maxCarry {
		n.metrics.dropped.WithLabelValues("carry_full").Inc()
		return
	}
	if n.late == nil {
		n.late = map[string]alertEntry{}
	}
	n.late[fp] = e
}

// bounded keeps at most maxCarry of the alerts waiting in es: the latest
// version of each, the oldest alerts dropped (counted) beyond that.
func (n *Notifier) bounded(es []alertEntry) []alertEntry {
	if len(es) <= maxCarry {
		return es
	}
	seen := map[string]bool{}
	kept := es[:0:0]
	for i := len(es) - 1; i >= 0; i-- {
		if fp := es[i].Alert.Fingerprint; !seen[fp] {
			seen[fp] = true
			kept = append(kept, es[i])
		}
	}
	slices.Reverse(kept)
	if over := len(kept) - maxCarry; over > 0 {
		n.metrics.dropped.WithLabelValues("carry_full").Add(float64(over))
		kept = kept[over:]
	}
	return kept
}

// place puts an alert into the groups of the routes it matches; a group
// that holds the alert already keeps it unless overwrite. Called with
// n.mu held and n.rs set.
func (n *Notifier) place(e alertEntry, now time.Time, overwrite bool) {
	resolved := !e.Expires.After(now)
	for _, r := range n.rs.root.match(e.Alert.Labels) {
		gl := r.groupLabels(e.Alert.Labels)
		key := groupKey(r, gl)
		g := n.groups[key]
		if g == nil {
			if resolved {
				// Nothing was notified of an alert no group holds
				// (its group's state was loaded into n.groups).
				continue
			}
			g = newGroup(key, r, gl, now)
			n.groups[key] = g
		}
		if _, ok := g.alerts[e.Alert.Fingerprint]; ok && !overwrite {
			continue
		}
		g.merge(e)
	}
}

func copyKV(kv KV) KV {
	out := make(KV, len(kv))
	for k, v := range kv {
		out[k] = v
	}
	return out
}

// alertEntry is an alert as a group holds it: resolved once Expires is not
// after now.
type alertEntry struct {
	Alert   Alert     `json:"alert"`
	Expires time.Time `json:"expires"`
}

// aggrGroup is one aggregation group: a route and the values of its
// group_by labels.
type aggrGroup struct {
	key       string
	route     *compiledRoute
	labels    KV
	alerts    map[string]alertEntry // fingerprint → latest
	nextFlush time.Time

	// The notification state, as in etcd.
	notified     map[string]bool // fingerprints of the firing alerts last notified
	lastNotified time.Time
	stateRev     int64 // mod revision of the state key, 0 if there is none
}

func newGroup(key string, r *compiledRoute, gl KV, now time.Time) *aggrGroup {
	return &aggrGroup{key: key, route: r, labels: gl, alerts: map[string]alertEntry{},
		notified: map[string]bool{}, nextFlush: now.Add(r.opts.groupWait)}
}

// merge records a new version of an alert: a firing alert keeps the
// earliest StartsAt it had.
func (g *aggrGroup) merge(e alertEntry) {
	if old, ok := g.alerts[e.Alert.Fingerprint]; ok && !old.Alert.StartsAt.IsZero() &&
		(e.Alert.StartsAt.IsZero() || old.Alert.StartsAt.Before(e.Alert.StartsAt)) {
		e.Alert.StartsAt = old.Alert.StartsAt
	}
	g.alerts[e.Alert.Fingerprint] = e
}

// muted reports whether an alert is silenced or inhibited by one of the
// firing alerts (fingerprint → labels).
func (n *Notifier) muted(a Alert, now time.Time, firing map[string]KV) bool {
	for _, s := range n.silences {
		if s.active(now) && matchAll(s.parsed, a.Labels) {
			return true
		}
	}
	for _, r := range n.rs.inhibit {
		if !matchAll(r.target, a.Labels) {
			continue
		}
		for fp, src := range firing {
			if fp != a.Fingerprint && matchAll(r.source, src) && equalLabels(r.equal, src, a.Labels) {
				return true
			}
		}
	}
	return false
}

func equalLabels(names []string, a, b KV) bool {
	for _, l := range names {
		if a[l] != b[l] {
			return false
		}
	}
	return true
}

// Step does one pass of what Run does every PollInterval, at the Clock's
// time: flush the groups that are due, then deliver the due queue entries
// and wait for those deliveries. For simulations and tests that drive a
// fake Clock instead of calling Run.
func (n *Notifier) Step(ctx context.Context) error {
	if err := n.flush(ctx); err != nil {
		return err
	}
	return n.deliver(ctx, true)
}

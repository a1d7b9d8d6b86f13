package alerting

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
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
// "Notifier"). Ingest is safe for concurrent use and does no I/O; Run
// does the flushing and the delivering.
type Notifier struct {
	cfg      NotifierConfig
	routing  *RoutingConfig
	root     *compiledRoute
	inhibit  []compiledInhibit
	channels map[string][]chanInfo // receiver → channels, NewChannels' order
	client   *clientv3.Client
	clock    Clock
	logger   *slog.Logger
	metrics  *notifierMetrics

	flushMu sync.Mutex // serializes flush passes

	mu       sync.Mutex // protects the fields below
	groups   map[string]*aggrGroup
	silences map[string]*Silence // last read from etcd, plus local writes
	loaded   bool                // group states read from etcd

	deliverMu sync.Mutex // serializes queue scans (deliver)

	laneMu sync.Mutex      // protects busy
	busy   map[string]bool // delivery lanes (receiver/channel) in flight
	lanes  sync.WaitGroup  // delivery goroutines
	wake   chan struct{}   // a notification was enqueued
}

// New returns a notifier. routing must be validated (ParseRoutingConfig);
// client stays owned by the caller and must outlive Run. clock nil means
// the real clock.
func New(cfg NotifierConfig, routing *RoutingConfig, client *clientv3.Client, clock Clock, logger *slog.Logger, reg prometheus.Registerer) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if routing == nil || routing.Route == nil {
		return nil, fmt.Errorf("notifier: no routing configuration")
	}
	if client == nil {
		return nil, fmt.Errorf("notifier: no etcd client")
	}
	if clock == nil {
		clock = realClock{}
	}
	logger = orDiscard(logger)
	root, inh, err := routing.compile()
	if err != nil {
		return nil, fmt.Errorf("notifier config: %w", err)
	}
	n := &Notifier{
		cfg: cfg, routing: routing, root: root, inhibit: inh, client: client, clock: clock, logger: logger,
		channels: map[string][]chanInfo{}, groups: map[string]*aggrGroup{}, silences: map[string]*Silence{},
		busy: map[string]bool{}, wake: make(chan struct{}, 1),
	}
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
		n.channels[r.Name] = infos
	}
	if n.metrics, err = newNotifierMetrics(reg); err != nil {
		return nil, err
	}
	return n, nil
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

// Run flushes due groups and delivers due queue entries every
// PollInterval (and at once after an enqueue), until ctx is done; then it
// waits for deliveries in flight (cancelled with ctx) and returns nil.
func (n *Notifier) Run(ctx context.Context) error {
	defer n.lanes.Wait()
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
			return nil
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
// matches. It does no I/O and does not keep the slice.
func (n *Notifier) Ingest(alerts []Alert) {
	now := n.clock.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
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
		resolved := !e.Expires.After(now)
		for _, r := range n.root.match(a.Labels) {
			gl := r.groupLabels(a.Labels)
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
			g.merge(e)
		}
	}
	n.metrics.groups.Set(float64(len(n.groups)))
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
	for _, r := range n.inhibit {
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

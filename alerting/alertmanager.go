package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Alertmanager pushes alerts to Alertmanagers through API v2, as
// Prometheus does: POST <url>/api/v2/alerts with the alerts of the
// notification. Alertmanager then groups, silences and routes them itself.
//
// Like Prometheus, Send succeeds when at least one Alertmanager accepted
// the alerts (members of an HA cluster share notification state); the
// others' failures are logged. It fails only when none accepted.
type Alertmanager struct {
	cfg    AlertmanagerConfig
	http   *httpClient
	logger *slog.Logger
}

var _ Channel = (*Alertmanager)(nil)

// NewAlertmanager builds an Alertmanager push channel.
func NewAlertmanager(cfg *AlertmanagerConfig, logger *slog.Logger) (*Alertmanager, error) {
	c := *cfg
	c.CommonConfig.defaults(true, defaultHTTPTimeout)
	if err := validateOne(&c, (*AlertmanagerConfig).check); err != nil {
		return nil, err
	}
	return &Alertmanager{cfg: c, http: newHTTPClient("alertmanager"), logger: orDiscard(logger)}, nil
}

func (a *Alertmanager) Kind() string { return "alertmanager" }

// Format prints the channel with its URLs redacted, whatever the verb.
func (a *Alertmanager) Format(f fmt.State, _ rune) {
	us := make([]string, len(a.cfg.URLs))
	for i, u := range a.cfg.URLs {
		us[i] = u.String()
	}
	fmt.Fprintf(f, "alertmanager(%s)", strings.Join(us, ", "))
}

// PostableAlert is one alert of Alertmanager's API v2 POST /api/v2/alerts.
// Times are RFC 3339 strings, left out when unknown: Alertmanager then
// starts the alert now and ends it after its resolve_timeout.
type PostableAlert struct {
	Labels       KV     `json:"labels"`
	Annotations  KV     `json:"annotations,omitempty"`
	StartsAt     string `json:"startsAt,omitempty"`
	EndsAt       string `json:"endsAt,omitempty"`
	GeneratorURL string `json:"generatorURL,omitempty"`
}

// NewPostableAlerts converts the alerts of a notification.
func NewPostableAlerts(n *Notification) []PostableAlert {
	out := make([]PostableAlert, len(n.Alerts))
	for i, al := range n.Alerts {
		out[i] = PostableAlert{Labels: nonNil(al.Labels), Annotations: al.Annotations, GeneratorURL: al.GeneratorURL,
			StartsAt: rfc3339(al.StartsAt), EndsAt: rfc3339(al.EndsAt)}
	}
	return out
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func (a *Alertmanager) Send(ctx context.Context, n *Notification) error {
	if n = filterResolved(n, a.cfg.sendResolved()); n == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	alerts := NewPostableAlerts(n)
	var failures []*DeliveryError
	accepted := 0
	for _, base := range a.cfg.URLs {
		if err := a.post(ctx, string(base), alerts); err != nil {
			failures = append(failures, err.(*DeliveryError))
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return mergeFailures(a.Kind(), failures)
	}
	for _, f := range failures {
		a.logger.Warn("an Alertmanager did not accept alerts that another one accepted", "err", f)
	}
	return nil
}

// post sends the alerts to one Alertmanager; the error is a *DeliveryError.
func (a *Alertmanager) post(ctx context.Context, base string, alerts []PostableAlert) error {
	u := strings.TrimSuffix(base, "/") + "/api/v2/alerts"
	h := http.Header{"User-Agent": {userAgent}}
	if a.cfg.BearerToken != "" {
		h.Set("Authorization", "Bearer "+string(a.cfg.BearerToken))
	}
	res, _, err := a.http.postJSON(ctx, u, h, alerts)
	if err != nil {
		return err
	}
	return a.http.checkStatus(u, res)
}

// mergeFailures makes one error of every Alertmanager's: retryable if any
// is, after the longest delay asked for.
func mergeFailures(kind string, fs []*DeliveryError) error {
	if len(fs) == 1 {
		return fs[0]
	}
	m := &DeliveryError{Channel: kind}
	var eps, msgs []string
	for _, f := range fs {
		eps = append(eps, f.Endpoint)
		msgs = append(msgs, f.Error())
		if f.Retryable {
			m.Retryable = true
			m.RetryAfter = max(m.RetryAfter, f.RetryAfter)
		}
		if m.Status == 0 {
			m.Status = f.Status
		}
	}
	m.Endpoint = strings.Join(eps, ", ")
	m.Message = "no Alertmanager accepted the alerts: " + strings.Join(msgs, "; ")
	return m
}

package alerting

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Alert statuses, as in Alertmanager's data model.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Notification is one message for one receiver: a group of alerts, in
// Alertmanager's webhook data model (the same fields, so that a template
// written for Alertmanager reads the same data here, and the same JSON
// names: the notifier's queue and API store and show it so).
//
// A Channel does not modify a Notification and does not keep it after Send
// returns; the caller may reuse it afterwards. Status is StatusFiring when at
// least one alert is firing, else StatusResolved.
type Notification struct {
	Receiver          string `json:"receiver"`
	Status            string `json:"status"`
	GroupKey          string `json:"groupKey"`
	ExternalURL       string `json:"externalURL"`
	GroupLabels       KV     `json:"groupLabels"`
	CommonLabels      KV     `json:"commonLabels"`
	CommonAnnotations KV     `json:"commonAnnotations"`
	Alerts            Alerts `json:"alerts"`
	// TruncatedAlerts counts alerts of the group left out of Alerts by the
	// caller; a channel with max_alerts adds the ones it leaves out.
	TruncatedAlerts int `json:"truncatedAlerts"`
}

// Alert is one alert of a Notification.
type Alert struct {
	Status       string    `json:"status"`
	Labels       KV        `json:"labels"`
	Annotations  KV        `json:"annotations"`
	StartsAt     time.Time `json:"startsAt"`
	EndsAt       time.Time `json:"endsAt"` // zero while firing with no known end
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

// Alerts is a list of alerts; templates use .Alerts.Firing and
// .Alerts.Resolved as in Alertmanager.
type Alerts []Alert

// Firing returns the firing alerts, in order.
func (as Alerts) Firing() Alerts { return as.withStatus(StatusFiring) }

// Resolved returns the resolved alerts, in order.
func (as Alerts) Resolved() Alerts { return as.withStatus(StatusResolved) }

func (as Alerts) withStatus(s string) Alerts {
	out := Alerts{}
	for _, a := range as {
		if a.Status == s {
			out = append(out, a)
		}
	}
	return out
}

// KV is a set of labels or annotations. Its methods are those of
// Alertmanager's template.KV, so templates can say .CommonLabels.SortedPairs.
type KV map[string]string

// Pair is one name and value of a KV.
type Pair struct{ Name, Value string }

// Pairs is a sorted list of pairs.
type Pairs []Pair

// Names returns the names of the pairs, in order.
func (ps Pairs) Names() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// Values returns the values of the pairs, in order.
func (ps Pairs) Values() []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Value
	}
	return out
}

// String renders the pairs as "a=1, b=2".
func (ps Pairs) String() string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.Name + "=" + p.Value
	}
	return strings.Join(parts, ", ")
}

// SortedPairs returns the pairs sorted by name, with "alertname" first as
// Alertmanager does.
func (kv KV) SortedPairs() Pairs {
	ps := make(Pairs, 0, len(kv))
	for k, v := range kv {
		ps = append(ps, Pair{k, v})
	}
	sort.Slice(ps, func(i, j int) bool {
		if (ps[i].Name == "alertname") != (ps[j].Name == "alertname") {
			return ps[i].Name == "alertname"
		}
		return ps[i].Name < ps[j].Name
	})
	return ps
}

// Names returns the sorted names.
func (kv KV) Names() []string { return kv.SortedPairs().Names() }

// Values returns the values sorted by name.
func (kv KV) Values() []string { return kv.SortedPairs().Values() }

// Remove returns a copy of kv without the given names.
func (kv KV) Remove(names []string) KV {
	out := make(KV, len(kv))
	for k, v := range kv {
		out[k] = v
	}
	for _, n := range names {
		delete(out, n)
	}
	return out
}

// Channel delivers notifications to one endpoint (one *_configs entry of a
// receiver).
//
// Send blocks until the endpoint accepted or refused the notification, the
// channel's own timeout passed, or ctx is done. It returns nil only when the
// endpoint accepted it (HTTP 2xx and, for DingTalk and WeCom, errcode 0;
// SMTP 250 after DATA). Any other outcome is a *DeliveryError (errors.As),
// which says whether a retry can help and when. A channel whose
// send_resolved is false returns nil without sending when n holds only
// resolved alerts. Send may be called from several goroutines at once.
type Channel interface {
	// Kind is "email", "dingtalk", "wecom", "wecom_app", "webhook" or
	// "alertmanager".
	Kind() string
	Send(ctx context.Context, n *Notification) error
}

// DeliveryError is a failed Send. Its text names the channel, the endpoint
// with secrets redacted, and the reason; it never holds a secret.
type DeliveryError struct {
	Channel  string // Kind of the channel
	Endpoint string // URL or SMTP host, secrets replaced by <secret>
	// Retryable says whether sending the same notification again can succeed:
	// network errors, timeouts, HTTP 408/429/5xx, SMTP 4xx and the
	// endpoints' rate-limit and busy codes are; other refusals are not.
	Retryable bool
	// RetryAfter is the earliest useful retry the endpoint asked for
	// (Retry-After, or the documented rate-limit window); 0 if it said none.
	RetryAfter time.Duration
	Status     int    // HTTP status or SMTP reply code; 0 if none came back
	Code       int    // DingTalk or WeCom errcode; 0 if none
	Message    string // the reason: body excerpt, errmsg or SMTP reply
	Err        error  // the cause, if any (network error, timeout)
}

func (e *DeliveryError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: ", e.Channel, e.Endpoint)
	var parts []string
	if e.Status != 0 {
		parts = append(parts, fmt.Sprintf("status %d", e.Status))
	}
	if e.Code != 0 {
		parts = append(parts, fmt.Sprintf("errcode %d", e.Code))
	}
	if e.Message != "" {
		parts = append(parts, e.Message)
	}
	if e.Err != nil {
		parts = append(parts, e.Err.Error())
	}
	b.WriteString(strings.Join(parts, ": "))
	if e.Retryable {
		b.WriteString(" (retryable")
		if e.RetryAfter > 0 {
			fmt.Fprintf(&b, " after %s", e.RetryAfter)
		}
		b.WriteString(")")
	}
	return b.String()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is a DeliveryError worth retrying, and the
// delay the endpoint asked for. Errors that are not DeliveryErrors are
// treated as retryable (a bug or a cancelled context is not the endpoint's
// verdict).
func IsRetryable(err error) (bool, time.Duration) {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Retryable, de.RetryAfter
	}
	return err != nil, 0
}

// filterResolved returns n without its resolved alerts when sendResolved is
// false, and nil when nothing is left to send.
func filterResolved(n *Notification, sendResolved bool) *Notification {
	if sendResolved {
		return n
	}
	firing := n.Alerts.Firing()
	if len(firing) == 0 {
		return nil
	}
	if len(firing) == len(n.Alerts) {
		return n
	}
	c := *n
	c.Alerts = firing
	c.Status = StatusFiring
	return &c
}

// truncateAlerts returns n with at most max alerts (0: no limit), adding the
// ones left out to TruncatedAlerts.
func truncateAlerts(n *Notification, max int) *Notification {
	if max <= 0 || len(n.Alerts) <= max {
		return n
	}
	c := *n
	c.Alerts = n.Alerts[:max:max]
	c.TruncatedAlerts += len(n.Alerts) - max
	return &c
}

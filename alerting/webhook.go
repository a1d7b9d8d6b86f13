package alerting

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// SignatureHeader carries the webhook body's HMAC when hmac_secret is set.
const SignatureHeader = "X-Vigil-Signature"

// WebhookMessage is the body a webhook receives: Alertmanager's webhook
// payload, version "4", with the same JSON field names.
type WebhookMessage struct {
	Version           string         `json:"version"`
	GroupKey          string         `json:"groupKey"`
	TruncatedAlerts   int            `json:"truncatedAlerts"`
	Status            string         `json:"status"`
	Receiver          string         `json:"receiver"`
	GroupLabels       KV             `json:"groupLabels"`
	CommonLabels      KV             `json:"commonLabels"`
	CommonAnnotations KV             `json:"commonAnnotations"`
	ExternalURL       string         `json:"externalURL"`
	Alerts            []WebhookAlert `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string    `json:"status"`
	Labels       KV        `json:"labels"`
	Annotations  KV        `json:"annotations"`
	StartsAt     time.Time `json:"startsAt"`
	EndsAt       time.Time `json:"endsAt"`
	GeneratorURL string    `json:"generatorURL"`
	Fingerprint  string    `json:"fingerprint"`
}

// NewWebhookMessage converts a notification to the webhook payload.
func NewWebhookMessage(n *Notification) *WebhookMessage {
	m := &WebhookMessage{
		Version: "4", GroupKey: n.GroupKey, TruncatedAlerts: n.TruncatedAlerts, Status: n.Status,
		Receiver: n.Receiver, GroupLabels: nonNil(n.GroupLabels), CommonLabels: nonNil(n.CommonLabels),
		CommonAnnotations: nonNil(n.CommonAnnotations), ExternalURL: n.ExternalURL,
		Alerts: make([]WebhookAlert, len(n.Alerts)),
	}
	for i, a := range n.Alerts {
		m.Alerts[i] = WebhookAlert{Status: a.Status, Labels: nonNil(a.Labels), Annotations: nonNil(a.Annotations),
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint}
	}
	return m
}

// Webhook posts Alertmanager's webhook JSON to a URL.
type Webhook struct {
	cfg    WebhookConfig
	http   *httpClient
	logger *slog.Logger
}

var _ Channel = (*Webhook)(nil)

// NewWebhook builds a webhook channel from a validated config.
func NewWebhook(cfg *WebhookConfig, logger *slog.Logger) (*Webhook, error) {
	c := *cfg
	c.CommonConfig.defaults(true, defaultHTTPTimeout)
	if err := validateOne(&c, (*WebhookConfig).check); err != nil {
		return nil, err
	}
	return &Webhook{cfg: c, http: newHTTPClient("webhook"), logger: orDiscard(logger)}, nil
}

func (w *Webhook) Kind() string { return "webhook" }

// Format prints the channel with its URL redacted, whatever the verb.
func (w *Webhook) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "webhook(%s)", w.cfg.URL) }

func (w *Webhook) Send(ctx context.Context, n *Notification) error {
	if n = filterResolved(n, w.cfg.sendResolved()); n == nil {
		return nil
	}
	n = truncateAlerts(n, w.cfg.MaxAlerts)
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	body, err := jsonBody(NewWebhookMessage(n))
	if err != nil {
		return &DeliveryError{Channel: w.Kind(), Endpoint: w.cfg.URL.String(), Message: "encode payload", Err: err}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	if w.cfg.BearerToken != "" {
		h.Set("Authorization", "Bearer "+string(w.cfg.BearerToken))
	}
	if w.cfg.HMACSecret != "" {
		h.Set(SignatureHeader, "sha256="+SignBody(string(w.cfg.HMACSecret), body))
	}
	res, err := w.http.do(ctx, http.MethodPost, string(w.cfg.URL), h, body)
	if err != nil {
		return err
	}
	return w.http.checkStatus(string(w.cfg.URL), res)
}

// SignBody is the hex HMAC-SHA256 of body with secret: what
// X-Vigil-Signature carries after "sha256=". A receiver verifies it with
// hmac.Equal over the raw body.
func SignBody(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

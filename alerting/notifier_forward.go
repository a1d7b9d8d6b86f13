package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Forwarding bounds: alerts waiting on a node without the lead, and one
// request to the leader.
const (
	forwardCapacity = 10000
	forwardBatch    = 1000
	// MaxAlertsBody bounds POST /api/v1/alerting/alerts.
	MaxAlertsBody = 16 << 20
)

// Notify is the ruler's way in: on the leading notifier it is Ingest; on
// any other it queues the alerts (at most 10,000, the oldest dropped
// first) for Run to send to the leader's POST /api/v1/alerting/alerts.
// Alerts not delivered to a leader within ResolveTimeout are dropped
// (counted): the ruler sends firing alerts again every resend delay, and
// resolved ones for 15 minutes. A notifier driven by Step rather than Run
// takes part in no election and ingests them itself. It does no I/O and
// does not keep the slice.
func (n *Notifier) Notify(alerts []Alert) {
	if len(alerts) == 0 {
		return
	}
	if !n.electing.Load() {
		n.Ingest(alerts)
		return
	}
	if n.ingestIfLeading(alerts) {
		return
	}
	n.fwd.add(alerts, n.clock.Now())
}

type waitingAlert struct {
	Alert
	queued time.Time
}

// forwarder holds the alerts a node without the lead sends to the leader.
type forwarder struct {
	n    *Notifier
	http *http.Client

	mu    sync.Mutex // protects queue
	queue []waitingAlert
	wake  chan struct{}
}

func newForwarder(n *Notifier) *forwarder {
	return &forwarder{n: n, http: &http.Client{Timeout: n.cfg.RequestTimeout}, wake: make(chan struct{}, 1)}
}

func (f *forwarder) add(alerts []Alert, now time.Time) {
	f.mu.Lock()
	for _, a := range alerts {
		a.Labels, a.Annotations = copyKV(a.Labels), copyKV(a.Annotations)
		f.queue = append(f.queue, waitingAlert{a, now})
	}
	if over := len(f.queue) - forwardCapacity; over > 0 {
		f.n.metrics.dropped.WithLabelValues("forward_queue_full").Add(float64(over))
		f.queue = append(f.queue[:0], f.queue[over:]...)
	}
	f.n.metrics.forwardQueue.Set(float64(len(f.queue)))
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// take removes up to forwardBatch alerts, dropping expired ones.
func (f *forwarder) take(now time.Time) []waitingAlert {
	f.mu.Lock()
	defer f.mu.Unlock()
	expired := 0
	for expired < len(f.queue) && now.Sub(f.queue[expired].queued) > f.n.cfg.ResolveTimeout {
		expired++
	}
	if expired > 0 {
		f.n.metrics.dropped.WithLabelValues("forward_expired").Add(float64(expired))
		f.n.logger.Warn("alerts not handed to a leading notifier in time, dropped (the ruler sends them again)", "alerts", expired)
	}
	k := min(len(f.queue)-expired, forwardBatch)
	batch := append([]waitingAlert(nil), f.queue[expired:expired+k]...)
	f.queue = append(f.queue[:0], f.queue[expired+k:]...)
	f.n.metrics.forwardQueue.Set(float64(len(f.queue)))
	return batch
}

// putBack returns a batch that could not be sent to the queue's front.
func (f *forwarder) putBack(batch []waitingAlert) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queue = append(batch, f.queue...)
	if over := len(f.queue) - forwardCapacity; over > 0 {
		f.n.metrics.dropped.WithLabelValues("forward_queue_full").Add(float64(over))
		f.queue = f.queue[over:]
	}
	f.n.metrics.forwardQueue.Set(float64(len(f.queue)))
}

// run sends queued alerts until ctx is done; a failed send is retried
// with backoff (new alerts do not cut it short), asking etcd for the
// leader again. A batch the leader refuses as invalid (400, 413) is
// dropped and counted: sending it again would be refused again. Other
// answers (a proxy's 401, 404 or 429 too) are retried.
func (f *forwarder) run(ctx context.Context) {
	backoff := time.Duration(0)
	var retryAt time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		case <-time.After(f.n.cfg.PollInterval):
		}
		if time.Now().Before(retryAt) {
			continue
		}
		for ctx.Err() == nil {
			batch := f.take(f.n.clock.Now())
			if len(batch) == 0 {
				backoff = 0
				break
			}
			err := f.send(ctx, batch)
			var refused *refusedError
			switch {
			case err == nil:
				backoff = 0
				continue
			case errors.As(err, &refused):
				f.n.metrics.forwarded.WithLabelValues("refused").Add(float64(len(batch)))
				f.n.logger.Error("the leading notifier refused forwarded alerts; dropped", "alerts", len(batch), "err", err)
				continue
			}
			f.putBack(batch)
			f.n.metrics.forwarded.WithLabelValues("failed").Add(float64(len(batch)))
			backoff = min(max(2*backoff, f.n.cfg.MinBackoff/2), 5*time.Second)
			retryAt = time.Now().Add(backoff)
			if ctx.Err() == nil {
				f.n.logger.Warn("alerts not handed to the leading notifier; will retry", "alerts", len(batch), "retry_in", backoff, "err", err)
			}
			break
		}
	}
}

// refusedError is a leader's 4xx: the batch is not valid.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func (f *forwarder) send(ctx context.Context, batch []waitingAlert) error {
	alerts := make([]Alert, len(batch))
	for i, w := range batch {
		alerts[i] = w.Alert
	}
	if f.n.ingestIfLeading(alerts) { // it became the leader meanwhile
		return nil
	}
	leader, err := f.n.Leader(ctx)
	if err != nil {
		return err
	}
	if leader == "" {
		return fmt.Errorf("no notifier leads prefix %s", f.n.cfg.Prefix)
	}
	body, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(leader, "/")+"/api/v1/alerting/alerts", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("leader %q: %w", leader, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.http.Do(req)
	if err != nil {
		return fmt.Errorf("send alerts to leader %s: %w", leader, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge {
		return &refusedError{fmt.Sprintf("send alerts to leader %s: %s: %s", leader, resp.Status, bytes.TrimSpace(msg))}
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("send alerts to leader %s: %s: %s", leader, resp.Status, bytes.TrimSpace(msg))
	}
	f.n.metrics.forwarded.WithLabelValues("sent").Add(float64(len(batch)))
	return nil
}

// DecodeAlerts decodes the body of POST /api/v1/alerting/alerts: a JSON
// array of alerts (the Alert fields; fingerprint is ignored and computed
// again). Every alert needs labels; names are non-empty UTF-8 (PromQL's
// label_replace can make any UTF-8 name, and a rule's alert carries it);
// names, values, annotations and the generator URL must be UTF-8; status
// is empty, "firing" or "resolved". The error names the first offending
// alert by index.
func DecodeAlerts(body []byte) ([]Alert, error) {
	var alerts []Alert
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&alerts); err != nil {
		return nil, fmt.Errorf("decode alerts (a JSON array of alerts): %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode alerts: data after the array")
	}
	for i, a := range alerts {
		if err := checkAlert(a); err != nil {
			return nil, fmt.Errorf("alert %d: %w", i, err)
		}
	}
	return alerts, nil
}

func checkAlert(a Alert) error {
	if len(a.Labels) == 0 {
		return fmt.Errorf("no labels")
	}
	if a.Status != "" && a.Status != StatusFiring && a.Status != StatusResolved {
		return fmt.Errorf("status %q: want %q or %q", a.Status, StatusFiring, StatusResolved)
	}
	for k, v := range a.Labels {
		if k == "" || !utf8.ValidString(k) {
			return fmt.Errorf("label name %q is not valid (empty or not UTF-8)", k)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("label %s: value is not valid UTF-8", k)
		}
	}
	for k, v := range a.Annotations {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("annotation %q: not valid UTF-8", k)
		}
	}
	if !utf8.ValidString(a.GeneratorURL) {
		return fmt.Errorf("generatorURL is not valid UTF-8")
	}
	return nil
}

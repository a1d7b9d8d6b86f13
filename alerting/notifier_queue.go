package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// QueueEntry is one notification for one channel, in etcd under
// <prefix>queue/<receiver>/<id> until the channel accepted it, then
// deleted; under <prefix>dead/<receiver>/<id> once given up. It names the
// channel by its index in the receiver's configuration (NewChannels'
// order) and holds no secret: the channel is built from the configuration
// in force at delivery.
type QueueEntry struct {
	ID           string        `json:"id"`
	Receiver     string        `json:"receiver"`
	Channel      int           `json:"channel"` // index in NewChannels' order
	Kind         string        `json:"kind"`    // the channel's Kind when enqueued
	Notification *Notification `json:"notification"`
	Attempts     int           `json:"attempts"`
	NextAttempt  time.Time     `json:"next_attempt"`
	CreatedAt    time.Time     `json:"created_at"`
	LastError    string        `json:"last_error,omitempty"`
	DeadAt       time.Time     `json:"dead_at,omitzero"`
	DeadReason   string        `json:"dead_reason,omitempty"`

	key    string // etcd key, set when read
	modRev int64
}

func (e *QueueEntry) lane() string { return fmt.Sprintf("%s/%d", e.Receiver, e.Channel) }

// readEntries returns the entries under prefix, in key order.
func (n *Notifier) readEntries(ctx context.Context, prefix string) ([]*QueueEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := n.client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", prefix, err)
	}
	out := make([]*QueueEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		e := &QueueEntry{}
		if err := json.Unmarshal(kv.Value, e); err != nil || e.Notification == nil {
			n.logger.Warn("skipping invalid queue entry", "key", string(kv.Key), "err", err)
			continue
		}
		e.key, e.modRev = string(kv.Key), kv.ModRevision
		out = append(out, e)
	}
	return out, nil
}

// deliver scans the queue and starts one goroutine per lane (receiver and
// channel) that has a due entry and none in flight. Each lane sends its due
// entries in order and stops at the first failure, so a channel that fails
// is retried with its backoff and the entries behind wait. With wait, it
// returns after those lanes finished (tests).
func (n *Notifier) deliver(ctx context.Context, wait bool) error {
	if n.routing() == nil {
		return nil // no configuration yet: the entries wait for one
	}
	n.deliverMu.Lock()
	defer n.deliverMu.Unlock()
	// Lanes in flight now are skipped even if they end during the read
	// below: the entries read may predate their deletes. Lanes idle now
	// have finished their writes before the read.
	n.laneMu.Lock()
	inFlight := maps.Clone(n.busy)
	n.laneMu.Unlock()
	entries, err := n.readEntries(ctx, n.cfg.Prefix+"queue/")
	if err != nil {
		return err
	}
	n.metrics.queueLength.Set(float64(len(entries)))
	now := n.clock.Now()
	lanes := map[string][]*QueueEntry{}
	var order []string
	for _, e := range entries {
		l := e.lane()
		if _, ok := lanes[l]; !ok {
			order = append(order, l)
		}
		lanes[l] = append(lanes[l], e)
	}
	var started sync.WaitGroup
	for _, l := range order {
		es := lanes[l]
		if es[0].NextAttempt.After(now) {
			continue
		}
		if inFlight[l] {
			continue
		}
		n.laneMu.Lock()
		n.busy[l] = true
		n.laneMu.Unlock()
		n.lanes.Add(1)
		started.Add(1)
		go func() {
			defer n.lanes.Done()
			defer started.Done()
			defer func() {
				n.laneMu.Lock()
				delete(n.busy, l)
				n.laneMu.Unlock()
			}()
			n.runLane(ctx, es)
		}()
	}
	if wait {
		started.Wait()
	}
	return nil
}

// runLane delivers the due entries of one lane in order.
func (n *Notifier) runLane(ctx context.Context, es []*QueueEntry) {
	for _, e := range es {
		if ctx.Err() != nil || e.NextAttempt.After(n.clock.Now()) {
			return
		}
		if !n.deliverOne(ctx, e) {
			return
		}
	}
}

// deliverOne sends one entry and records the outcome; it returns whether
// the lane may go on.
func (n *Notifier) deliverOne(ctx context.Context, e *QueueEntry) bool {
	rs := n.routing()
	if rs == nil {
		return false // no configuration: the entry waits for one
	}
	chs := rs.channels[e.Receiver]
	if e.Channel < 0 || e.Channel >= len(chs) || chs[e.Channel].kind != e.Kind {
		n.bury(ctx, e, fmt.Sprintf("receiver %q has no %s channel at index %d any more", e.Receiver, e.Kind, e.Channel))
		return true
	}
	err := chs[e.Channel].ch.Send(ctx, e.Notification)
	if err != nil && ctx.Err() != nil {
		return false // shutting down: not the endpoint's verdict
	}
	now := n.clock.Now()
	if err == nil {
		tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		resp, derr := n.client.Txn(tctx).If(n.fenced(clientv3.Compare(clientv3.ModRevision(e.key), "=", e.modRev))...).
			Then(clientv3.OpDelete(e.key)).Commit()
		cancel()
		n.metrics.notifications.WithLabelValues(e.Receiver, e.Kind, "delivered").Inc()
		switch {
		case derr != nil:
			// Delivered, but the entry stays: it will be sent again (the one
			// duplicate the design allows).
			n.logger.Warn("delivered but could not delete queue entry", "key", e.key, "err", derr)
			n.metrics.stateErrors.Inc()
		case !resp.Succeeded:
			n.logger.Warn("queue entry changed while being delivered", "key", e.key)
		}
		return true
	}
	n.metrics.failures.WithLabelValues(e.Receiver, e.Kind).Inc()
	retryable, after := IsRetryable(err)
	e.Attempts++
	e.LastError = err.Error()
	switch {
	case !retryable:
		n.bury(ctx, e, "not retryable: "+err.Error())
		return true
	case e.Attempts >= n.cfg.MaxAttempts:
		n.bury(ctx, e, fmt.Sprintf("%d attempts, the last: %v", e.Attempts, err))
		return true
	case !now.Before(e.CreatedAt.Add(n.cfg.MaxAge)):
		n.bury(ctx, e, fmt.Sprintf("undelivered for %s, the last error: %v", now.Sub(e.CreatedAt).Round(time.Second), err))
		return true
	}
	n.metrics.notifications.WithLabelValues(e.Receiver, e.Kind, "retry").Inc()
	e.NextAttempt = now.Add(max(n.backoff(e.Attempts), after))
	n.logger.Info("delivery failed, will retry", "receiver", e.Receiver, "channel", e.Kind,
		"attempts", e.Attempts, "next_attempt", e.NextAttempt, "err", err)
	if err := n.rewrite(ctx, e, clientv3.OpPut(e.key, mustJSON(e))); err != nil {
		n.logger.Warn("record failed delivery", "key", e.key, "err", err)
	}
	return false
}

// backoff is the wait after the attempts-th failure: MinBackoff doubled
// per attempt up to MaxBackoff, less up to 20% of jitter.
func (n *Notifier) backoff(attempts int) time.Duration {
	d := n.cfg.MinBackoff
	for i := 1; i < attempts && d < n.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, n.cfg.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// bury moves an entry to the dead letters.
func (n *Notifier) bury(ctx context.Context, e *QueueEntry, reason string) {
	e.DeadAt, e.DeadReason = n.clock.Now(), reason
	n.metrics.notifications.WithLabelValues(e.Receiver, e.Kind, "dead").Inc()
	n.metrics.deadLetters.WithLabelValues(e.Receiver, e.Kind).Inc()
	n.logger.Warn("notification dead-lettered", "receiver", e.Receiver, "channel", e.Kind, "reason", reason)
	if err := n.rewrite(ctx, e, clientv3.OpDelete(e.key), clientv3.OpPut(n.deadKey(e.Receiver, e.ID), mustJSON(e))); err != nil {
		n.logger.Warn("dead-letter queue entry", "key", e.key, "err", err)
	}
}

// rewrite applies ops if the entry did not change since it was read.
func (n *Notifier) rewrite(ctx context.Context, e *QueueEntry, ops ...clientv3.Op) error {
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.RequestTimeout)
	defer cancel()
	resp, err := n.client.Txn(tctx).If(n.fenced(clientv3.Compare(clientv3.ModRevision(e.key), "=", e.modRev))...).Then(ops...).Commit()
	if err != nil {
		n.metrics.stateErrors.Inc()
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("queue entry %s changed meanwhile", e.key)
	}
	e.modRev = resp.Header.Revision
	return nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", v, err)) // only plain data types reach here
	}
	return string(b)
}

// DeadLetters lists the dead letters, oldest first.
func (n *Notifier) DeadLetters(ctx context.Context) ([]*QueueEntry, error) {
	return n.readEntries(ctx, n.cfg.Prefix+"dead/")
}

// RetryDead moves a dead letter back to the queue, due now, with its
// attempts reset.
func (n *Notifier) RetryDead(ctx context.Context, id string) error {
	if id == "" || strings.Contains(id, "/") {
		return fmt.Errorf("dead letter %q: %w", id, ErrNotFound)
	}
	dead, err := n.DeadLetters(ctx)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(dead, func(e *QueueEntry) bool { return e.ID == id })
	if i < 0 {
		return fmt.Errorf("dead letter %q: %w", id, ErrNotFound)
	}
	e := dead[i]
	now := n.clock.Now()
	e.Attempts, e.NextAttempt, e.CreatedAt, e.DeadAt, e.DeadReason = 0, now, now, time.Time{}, ""
	tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := n.client.Txn(tctx).If(clientv3.Compare(clientv3.ModRevision(e.key), "=", e.modRev)).
		Then(clientv3.OpDelete(e.key), clientv3.OpPut(n.queueKey(e.Receiver, e.ID), mustJSON(e))).Commit()
	if err != nil {
		return fmt.Errorf("retry dead letter %q: %w", id, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("retry dead letter %q: %w (retried or removed meanwhile)", id, ErrNotFound)
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
	return nil
}

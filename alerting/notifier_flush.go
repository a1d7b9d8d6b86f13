package alerting

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// groupState is the notification state of one group in etcd,
// <prefix>groups/<hash of the group key>.
type groupState struct {
	Version      int          `json:"version"`
	Key          string       `json:"key"`
	Route        string       `json:"route"`
	Receiver     string       `json:"receiver"`
	Labels       KV           `json:"labels"`
	LastNotified time.Time    `json:"last_notified"`
	Alerts       []alertEntry `json:"alerts"` // the firing alerts last notified
}

func (n *Notifier) groupStateKey(groupKey string) string {
	h := sha256.Sum256([]byte(groupKey))
	return n.cfg.Prefix + "groups/" + hex.EncodeToString(h[:12])
}

func (n *Notifier) queueKey(receiver, id string) string {
	return n.cfg.Prefix + "queue/" + url.PathEscape(receiver) + "/" + id
}

func (n *Notifier) deadKey(receiver, id string) string {
	return n.cfg.Prefix + "dead/" + url.PathEscape(receiver) + "/" + id
}

// newEntryID is time-ordered (entries of a lane are delivered in key order)
// and unique across notifiers.
func newEntryID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%016x-%s", now.UnixNano(), hex.EncodeToString(b[:]))
}

// loadStates reads the groups' notification states into n.groups, once.
// A state whose route no longer exists or changed its matchers is
// deleted: its group cannot be rebuilt, and its alerts start over in
// their new route's group.
func (n *Notifier) loadStates(ctx context.Context) error {
	n.mu.Lock()
	loaded, rs := n.loaded, n.rs
	n.mu.Unlock()
	if loaded || rs == nil {
		return nil
	}
	gctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := n.client.Get(gctx, n.cfg.Prefix+"groups/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("read notification states: %w", err)
	}
	routes := map[string]*compiledRoute{}
	var walk func(r *compiledRoute)
	walk = func(r *compiledRoute) {
		routes[r.id] = r
		for _, c := range r.children {
			walk(c)
		}
	}
	walk(rs.root)
	type keyRev struct {
		key string
		rev int64
	}
	var stale []keyRev
	defer func() {
		for _, kr := range stale {
			tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
			_, err := n.client.Txn(tctx).If(n.fenced(clientv3.Compare(clientv3.ModRevision(kr.key), "=", kr.rev))...).
				Then(clientv3.OpDelete(kr.key)).Commit()
			cancel()
			if err != nil {
				n.logger.Warn("delete stale notification state", "key", kr.key, "err", err)
			}
		}
	}()
	now := n.clock.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, kv := range resp.Kvs {
		var st groupState
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			n.logger.Warn("skipping invalid notification state", "key", string(kv.Key), "err", err)
			continue
		}
		r := routes[st.Route]
		if r == nil || groupKey(r, st.Labels) != st.Key || st.Receiver != r.opts.receiver {
			n.logger.Info("notification state of a route that changed, deleted", "group", st.Key)
			stale = append(stale, keyRev{string(kv.Key), kv.ModRevision})
			continue
		}
		g := n.groups[st.Key]
		if g == nil {
			g = newGroup(st.Key, r, st.Labels, st.LastNotified)
			n.groups[st.Key] = g
		}
		g.stateRev, g.lastNotified = kv.ModRevision, st.LastNotified
		g.nextFlush = st.LastNotified.Add(r.opts.groupInterval)
		for _, e := range st.Alerts {
			g.notified[e.Alert.Fingerprint] = true
			if _, ok := g.alerts[e.Alert.Fingerprint]; !ok {
				// The end the ruler gave when it was notified has passed
				// if that was long ago; the rulers send it again within
				// their resend delay, firing or resolved. Until then, or
				// ResolveTimeout, it is held firing, not resolved because
				// this notifier just started leading.
				e.Expires = later(e.Expires, now.Add(n.cfg.ResolveTimeout))
				g.alerts[e.Alert.Fingerprint] = e
			}
		}
	}
	// Alerts held before a change of configuration or leader go to their
	// groups under the routes in force, the latest version of each, unless
	// a newer one arrived since; then those resolved meanwhile, which
	// needed their group's state.
	for i := len(n.carry) - 1; i >= 0; i-- {
		n.place(n.carry[i], now, false)
	}
	for _, e := range n.late {
		n.place(e, now, true)
	}
	n.carry, n.late = nil, nil
	n.loaded = true
	n.metrics.groups.Set(float64(len(n.groups)))
	return nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// flushPlan is what one flush of a group writes.
type flushPlan struct {
	g            *aggrGroup
	notification *Notification // nil: nothing to send
	state        *groupState   // nil: delete the state
	drop         []string      // resolved fingerprints to forget after the write
	deleteGroup  bool
	now          time.Time
}

// flush checks every group whose flush time came and, for each that must
// notify, writes its new state and its queue entries in one etcd
// transaction. Tests call it after moving the fake clock.
func (n *Notifier) flush(ctx context.Context) error {
	n.flushMu.Lock()
	defer n.flushMu.Unlock()
	if !n.static {
		if err := n.refreshConfig(ctx); err != nil {
			// The configuration in force, if any, stays.
			n.logger.Warn("notifier: read configuration", "err", err)
		}
	}
	if n.routing() == nil {
		return nil // nothing to route with yet
	}
	if err := n.loadStates(ctx); err != nil {
		return err
	}
	if err := n.refreshSilences(ctx); err != nil {
		// The silences last read stay in force.
		n.logger.Warn("notifier: read silences", "err", err)
	}
	now := n.clock.Now()
	n.mu.Lock()
	firing := map[string]KV{}
	for _, g := range n.groups {
		for fp, e := range g.alerts {
			if e.Expires.After(now) {
				firing[fp] = e.Alert.Labels
			}
		}
	}
	var plans []*flushPlan
	for _, g := range n.groups {
		if g.nextFlush.After(now) {
			continue
		}
		if p := n.plan(g, now, firing); p != nil {
			plans = append(plans, p)
		}
		g.nextFlush = now.Add(g.route.opts.groupInterval)
	}
	n.mu.Unlock()

	var errs []error
	for _, p := range plans {
		if err := n.commit(ctx, p); err != nil {
			errs = append(errs, err)
			n.metrics.stateErrors.Inc()
			n.mu.Lock()
			p.g.nextFlush = now // try again at the next pass
			n.mu.Unlock()
		}
	}
	n.mu.Lock()
	n.metrics.groups.Set(float64(len(n.groups)))
	n.mu.Unlock()
	return errors.Join(errs...)
}

// plan decides what a due group sends (Alertmanager's rules): a
// notification when a firing alert is not in the last one, when an alert
// of the last one resolved, or when repeat_interval passed. Muted alerts
// are left out; a notified alert that got muted is neither resolved nor
// notified again. Called with n.mu held.
func (n *Notifier) plan(g *aggrGroup, now time.Time, firing map[string]KV) *flushPlan {
	var fire, resolved, mutedNotified []alertEntry
	var drop []string
	newFiring := false
	for fp, e := range g.alerts {
		a := e.Alert
		if !e.Expires.After(now) {
			drop = append(drop, fp)
			if g.notified[fp] {
				a.Status = StatusResolved
				if a.EndsAt.IsZero() || a.EndsAt.After(e.Expires) {
					a.EndsAt = e.Expires
				}
				resolved = append(resolved, alertEntry{Alert: a, Expires: e.Expires})
			}
			continue
		}
		a.Status = StatusFiring
		if n.muted(a, now, firing) {
			if g.notified[fp] {
				mutedNotified = append(mutedNotified, e)
			}
			continue
		}
		fire = append(fire, alertEntry{Alert: a, Expires: e.Expires})
		if !g.notified[fp] {
			newFiring = true
		}
	}
	repeat := len(fire) > 0 && !now.Before(g.lastNotified.Add(g.route.opts.repeatInterval))
	send := newFiring || len(resolved) > 0 || repeat
	empty := len(g.alerts) == len(drop)
	if !send {
		if len(drop) == 0 {
			return nil
		}
		// Only resolved alerts that were never notified: forget them.
		return &flushPlan{g: g, drop: drop, deleteGroup: empty, now: now}
	}
	p := &flushPlan{g: g, drop: drop, deleteGroup: empty, now: now}
	byStart := func(a, b alertEntry) int {
		if c := a.Alert.StartsAt.Compare(b.Alert.StartsAt); c != 0 {
			return c
		}
		return strings.Compare(a.Alert.Fingerprint, b.Alert.Fingerprint)
	}
	slices.SortFunc(fire, byStart)
	slices.SortFunc(resolved, byStart)
	all := append(slices.Clone(fire), resolved...) // firing first: a truncation keeps them
	alerts := make(Alerts, len(all))
	for i, e := range all {
		alerts[i] = e.Alert
	}
	p.notification = n.notification(g, alerts)
	if kept := append(fire, mutedNotified...); len(kept) > 0 {
		// The state keeps what a restart needs to resolve them: labels,
		// times, source. Annotations come back with the ruler's next send;
		// leaving them out keeps a large group's state small.
		for i := range kept {
			kept[i].Alert.Annotations = nil
		}
		p.state = &groupState{Version: 1, Key: g.key, Route: g.route.id, Receiver: g.route.opts.receiver,
			Labels: g.labels, LastNotified: now, Alerts: kept}
	}
	return p
}

// notification builds the message of a group, Alertmanager's webhook model.
func (n *Notifier) notification(g *aggrGroup, alerts Alerts) *Notification {
	nt := &Notification{
		Receiver: g.route.opts.receiver, Status: StatusResolved, GroupKey: g.key,
		ExternalURL: n.cfg.ExternalURL, GroupLabels: copyKV(g.labels),
		CommonLabels: KV{}, CommonAnnotations: KV{}, Alerts: alerts,
	}
	if len(alerts.Firing()) > 0 {
		nt.Status = StatusFiring
	}
	for i, a := range alerts {
		if i == 0 {
			nt.CommonLabels, nt.CommonAnnotations = copyKV(a.Labels), copyKV(a.Annotations)
			continue
		}
		for k, v := range nt.CommonLabels {
			if a.Labels[k] != v {
				delete(nt.CommonLabels, k)
			}
		}
		for k, v := range nt.CommonAnnotations {
			if a.Annotations[k] != v {
				delete(nt.CommonAnnotations, k)
			}
		}
	}
	return nt
}

// commit writes a plan: the group's state (put, or delete when nothing
// firing was notified) and one queue entry per channel, in one
// transaction guarded by the state's mod revision. Then it applies the
// plan in memory.
func (n *Notifier) commit(ctx context.Context, p *flushPlan) error {
	g := p.g
	key := n.groupStateKey(g.key)
	var ops []clientv3.Op
	size := 0
	if p.notification != nil {
		if p.state != nil {
			b, err := json.Marshal(p.state)
			if err != nil {
				return fmt.Errorf("encode state of group %s: %w", g.key, err)
			}
			ops = append(ops, clientv3.OpPut(key, string(b)))
			size += len(b)
		} else if g.stateRev != 0 {
			ops = append(ops, clientv3.OpDelete(key))
		}
		entries, err := n.queueOps(p.notification, p.now, maxTxnBytes-size)
		if err != nil {
			return err
		}
		ops = append(ops, entries...)
	} else if p.deleteGroup && g.stateRev != 0 {
		ops = append(ops, clientv3.OpDelete(key))
	}
	var newRev int64
	if len(ops) > 0 {
		cmps := n.fenced(clientv3.Compare(clientv3.ModRevision(key), "=", g.stateRev))
		tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		resp, err := n.client.Txn(tctx).If(cmps...).Then(ops...).Else(clientv3.OpGet(key)).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("write notification of group %s: %w", g.key, err)
		}
		if !resp.Succeeded {
			// Another notifier wrote this group, or this one lost the lead:
			// take the state and decide again at the next pass.
			n.mu.Lock()
			defer n.mu.Unlock()
			g.stateRev, g.nextFlush = 0, p.now
			clear(g.notified)
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				var st groupState
				if json.Unmarshal(kvs[0].Value, &st) == nil {
					g.stateRev, g.lastNotified = kvs[0].ModRevision, st.LastNotified
					for _, e := range st.Alerts {
						g.notified[e.Alert.Fingerprint] = true
					}
				}
			}
			return fmt.Errorf("write notification of group %s: its state changed meanwhile", g.key)
		}
		newRev = resp.Header.Revision
		if p.notification != nil {
			select {
			case n.wake <- struct{}{}:
			default:
			}
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p.notification != nil {
		g.lastNotified = p.now
		clear(g.notified)
		if p.state != nil {
			for _, e := range p.state.Alerts {
				g.notified[e.Alert.Fingerprint] = true
			}
			g.stateRev = newRev
		} else {
			g.stateRev = 0
		}
	} else if p.deleteGroup {
		g.stateRev = 0
	}
	for _, fp := range p.drop {
		// Only if it was not refreshed meanwhile.
		if e, ok := g.alerts[fp]; ok && !e.Expires.After(p.now) {
			delete(g.alerts, fp)
		}
	}
	if len(g.alerts) == 0 && g.stateRev == 0 && n.groups[g.key] == g {
		delete(n.groups, g.key)
	}
	return nil
}

// maxTxnBytes keeps a flush's transaction under etcd's default request
// limit (--max-request-bytes, 1.5 MiB) with room for keys and framing.
const maxTxnBytes = 1 << 20

// queueOps returns the puts of one queue entry per channel of the
// notification's receiver; channels with send_resolved false get none for
// a notification of resolved alerts only. budget is the bytes the entries
// may take together: a notification too large for it is cut to its first
// alerts (firing ones sort first by start time), the rest counted in
// TruncatedAlerts, as a channel's max_alerts does.
func (n *Notifier) queueOps(nt *Notification, now time.Time, budget int) ([]clientv3.Op, error) {
	chans := n.routing().channels[nt.Receiver]
	var infos []int
	for i, ci := range chans {
		if nt.Status == StatusResolved && !ci.sendResolved {
			continue
		}
		infos = append(infos, i)
	}
	if len(infos) == 0 {
		return nil, nil
	}
	per := budget / len(infos)
	for {
		var ops []clientv3.Op
		fits, keep := true, 0
		for _, i := range infos {
			ci := chans[i]
			e := QueueEntry{ID: newEntryID(now), Receiver: nt.Receiver, Channel: i, Kind: ci.kind,
				Notification: nt, NextAttempt: now, CreatedAt: now}
			b, err := json.Marshal(e)
			if err != nil {
				return nil, fmt.Errorf("encode queue entry of %s: %w", nt.GroupKey, err)
			}
			if len(b) > per && len(nt.Alerts) > 1 {
				// Keep the share of alerts that fits, with a margin.
				keep = min(len(nt.Alerts)-1, max(1, int(int64(len(nt.Alerts))*int64(per)/int64(len(b))*9/10)))
				fits = false
				break
			}
			ops = append(ops, clientv3.OpPut(n.queueKey(nt.Receiver, e.ID), string(b)))
		}
		if fits {
			for _, i := range infos {
				n.metrics.enqueued.WithLabelValues(nt.Receiver, chans[i].kind).Inc()
			}
			return ops, nil
		}
		c := *nt
		c.Alerts = nt.Alerts[:keep:keep]
		c.TruncatedAlerts += len(nt.Alerts) - keep
		nt = &c
	}
}

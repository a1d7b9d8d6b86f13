package alerting

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// fence is the leader key a notifier holds: every write it makes as the
// leader is conditional on that key still being its own, so a notifier
// that lost the lead (its lease expired while it was cut off) cannot
// write states or queue entries any more.
type fence struct {
	key string
	rev int64 // create revision of key
}

// leaderPrefix is the prefix of the election's keys, <prefix>leader/
// (etcd's election recipe adds the "/" to the name it is given).
func (n *Notifier) leaderPrefix() string { return n.cfg.Prefix + "leader/" }

// Run takes part in the election of the prefix's leading notifier until
// ctx is done. While this notifier leads, it reads the configuration (when
// it comes from etcd), rebuilds the groups from their states in etcd,
// flushes and delivers; when it stops leading (its lease lost) it drops
// the groups, waits for its deliveries and campaigns again. Alerts that
// Notify cannot hand to a local leader are forwarded to the leader over
// HTTP meanwhile. Run returns nil after ctx is done and the lead is given
// up (the lease revoked, so another notifier takes over at once).
func (n *Notifier) Run(ctx context.Context) error {
	n.electing.Store(true)
	fwdDone := make(chan struct{})
	go func() { defer close(fwdDone); n.fwd.run(ctx) }()
	defer func() { <-fwdDone }()
	// Retries are capped at the lease: a notifier that could lead should
	// not sleep much longer than a crashed leader's lease.
	backoff := min(n.cfg.MinBackoff, n.cfg.LeaderLease)
	for ctx.Err() == nil {
		err := n.lead(ctx)
		if ctx.Err() != nil {
			break
		}
		if err == nil { // it led and lost the lease: campaign again at once
			backoff = min(n.cfg.MinBackoff, n.cfg.LeaderLease)
			continue
		}
		n.logger.Warn("notifier election", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, n.cfg.LeaderLease)
	}
	return nil
}

// lead campaigns, and leads until the lease is lost or ctx is done. It
// returns within RequestTimeout of ctx's end even while etcd is
// unreachable.
func (n *Notifier) lead(ctx context.Context) error {
	sess, err := concurrency.NewSession(n.client, concurrency.WithTTL(int(n.cfg.LeaderLease/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("create leader lease: %w", err)
	}
	defer func() {
		// Revoking the lease deletes this notifier's key under the
		// election prefix (leader or candidate): the next candidate leads
		// at once.
		sess.Orphan()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.RequestTimeout)
		defer cancel()
		if _, err := n.client.Revoke(rctx, sess.Lease()); err != nil && ctx.Err() != nil {
			n.logger.Warn("revoke the notifier's leader lease; it expires by itself", "err", err, "lease", n.cfg.LeaderLease)
		}
	}()
	el := concurrency.NewElection(sess, strings.TrimSuffix(n.leaderPrefix(), "/"))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel() // the lease is gone: stop campaigning or leading
		case <-cctx.Done():
		}
	}()
	won := make(chan error, 1)
	// Campaign cleans up after a cancel with the client's own context,
	// which waits for an unreachable etcd: it is not waited for then (the
	// revoke above removes its key).
	go func() { won <- el.Campaign(cctx, n.cfg.AdvertiseURL) }()
	select {
	case err := <-won:
		if err != nil {
			if cctx.Err() != nil {
				if ctx.Err() == nil {
					return fmt.Errorf("leader lease lost while campaigning")
				}
				return nil
			}
			return fmt.Errorf("campaign: %w", err)
		}
	case <-cctx.Done():
		if ctx.Err() == nil {
			return fmt.Errorf("leader lease lost while campaigning")
		}
		return nil
	}
	n.takeLead(&fence{key: el.Key(), rev: el.Rev()})
	n.logger.Info("leading the notifiers", "prefix", n.cfg.Prefix, "key", el.Key())
	if n.routing() == nil && !n.static {
		n.logger.Info("no notifier configuration applied yet; it is read at every pass", "key", ConfigKey(n.cfg.Prefix))
	}
	n.poll(cctx)
	n.mu.Lock()
	n.accepting = false // what arrives now would be dropped with the groups
	n.mu.Unlock()
	n.lanes.Wait() // deliveries in flight end with cctx
	n.dropLead()
	if ctx.Err() == nil {
		n.logger.Warn("lost the notifiers' lead (etcd lease expired); campaigning again", "prefix", n.cfg.Prefix)
	}
	return nil
}

// takeLead starts leading: the groups start over from their states in
// etcd, with the alerts this notifier was given before (regroup).
func (n *Notifier) takeLead(f *fence) {
	n.flushMu.Lock()
	defer n.flushMu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fence, n.accepting = f, true
	n.regroup()
	n.metrics.leader.Set(1)
	n.metrics.leaderChanges.Inc()
}

// dropLead stops leading: the groups are forgotten (the next leader
// rebuilds them from etcd).
func (n *Notifier) dropLead() {
	n.flushMu.Lock()
	defer n.flushMu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fence, n.accepting = nil, false
	n.groups, n.carry, n.late, n.loaded = map[string]*aggrGroup{}, nil, nil, false
	n.metrics.leader.Set(0)
	n.metrics.groups.Set(0)
}

// Leading reports whether this notifier leads its prefix now (and is
// not stopping).
func (n *Notifier) Leading() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.accepting
}

// fenced returns the comparisons that make a write conditional on this
// notifier still leading: none when it does not run an election (Step).
func (n *Notifier) fenced(cmps ...clientv3.Cmp) []clientv3.Cmp {
	n.mu.Lock()
	f := n.fence
	n.mu.Unlock()
	if f == nil {
		return cmps
	}
	return append(cmps, clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev))
}

// Leader returns the base URL of the leading notifier of the prefix, ""
// when there is none.
func (n *Notifier) Leader(ctx context.Context) (string, error) {
	tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := n.client.Get(tctx, n.leaderPrefix(), clientv3.WithFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("read the notifiers' leader: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

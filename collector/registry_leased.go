package collector

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Bounds of a lease whose keep-alives a remote client sends
// (RegisterLease, the vigil.v1.Targets service).
const (
	// MinLeaseTTL leaves a client room for a retry or two between
	// keep-alives sent every ttl/3.
	MinLeaseTTL = 5 * time.Second
	// MaxLeaseTTL bounds how long a target outlives a client that died.
	MaxLeaseTTL = time.Hour
)

// RegisterLease validates t as Put does and writes it under its ordinary
// key attached to a new etcd lease of ttl (MinLeaseTTL to MaxLeaseTTL,
// rounded up to whole seconds). Unlike Register it starts nothing: the
// caller keeps the lease alive with KeepAliveLease and ends it with
// RevokeLease. A key that exists without a lease is not taken over
// (ErrStaticTarget); one held by another lease is. It returns the lease,
// the key and the granted ttl.
func (r *Registry) RegisterLease(ctx context.Context, t Target, ttl time.Duration) (clientv3.LeaseID, string, time.Duration, error) {
	if ttl < MinLeaseTTL || ttl > MaxLeaseTTL {
		return 0, "", 0, fmt.Errorf("%w: ttl: %s: must be between %s and %s", ErrInvalidTarget, ttl, MinLeaseTTL, MaxLeaseTTL)
	}
	secs := int64(math.Ceil(ttl.Seconds()))
	key, val, err := r.prepare(ctx, t)
	if err != nil {
		return 0, "", 0, err
	}
	lease, err := r.putLeased(ctx, key, val, secs)
	if err != nil {
		return 0, "", 0, err
	}
	return lease, key, time.Duration(secs) * time.Second, nil
}

// KeepAliveLease renews a lease that holds a target of this registry and
// returns its time to live from now. Any other lease (expired, revoked,
// never granted, or holding only keys that are not targets under this
// registry's prefix, such as a ring member's) is ErrLeaseNotFound and is
// not renewed.
func (r *Registry) KeepAliveLease(ctx context.Context, id clientv3.LeaseID) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if err := r.checkLease(ctx, id); err != nil {
		return 0, err
	}
	resp, err := r.client.KeepAliveOnce(ctx, id)
	if err != nil {
		return 0, r.leaseError(ctx, id, "keep lease alive", err)
	}
	return time.Duration(resp.TTL) * time.Second, nil
}

// RevokeLease revokes a lease that holds a target of this registry: the
// target disappears at once. Other leases are ErrLeaseNotFound, as for
// KeepAliveLease, and are not revoked.
func (r *Registry) RevokeLease(ctx context.Context, id clientv3.LeaseID) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if err := r.checkLease(ctx, id); err != nil {
		return err
	}
	if _, err := r.client.Revoke(ctx, id); err != nil {
		return r.leaseError(ctx, id, "revoke lease", err)
	}
	return nil
}

// checkLease returns nil if lease id is alive and holds at least one
// target key under the prefix. The answer for a foreign lease is the same
// as for a missing one, so that callers learn nothing about other leases.
func (r *Registry) checkLease(ctx context.Context, id clientv3.LeaseID) error {
	resp, err := r.client.TimeToLive(ctx, id, clientv3.WithAttachedKeys())
	if err != nil {
		return fmt.Errorf("read lease %d: %w", int64(id), err)
	}
	if resp.TTL > 0 {
		for _, k := range resp.Keys {
			if !strings.HasPrefix(string(k), r.cfg.Prefix) {
				continue
			}
			if kind, _, _, err := r.parseKey(string(k)); err == nil && kind == keyTarget {
				return nil
			}
		}
	}
	return fmt.Errorf("lease %d: %w (expired, revoked, or holding no target of this registry)", int64(id), ErrLeaseNotFound)
}

// leaseError tells a lease that ended between checkLease and the call
// (ErrLeaseNotFound) from an etcd failure.
func (r *Registry) leaseError(ctx context.Context, id clientv3.LeaseID, what string, err error) error {
	if resp, terr := r.client.TimeToLive(ctx, id); terr == nil && resp.TTL <= 0 {
		return fmt.Errorf("lease %d: %w (it ended)", int64(id), ErrLeaseNotFound)
	}
	return fmt.Errorf("%s %d: %w", what, int64(id), err)
}

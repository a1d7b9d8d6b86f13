package collector

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
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
// RevokeLease, presenting the returned secret. A key that exists without
// a lease is not taken over (ErrStaticTarget); one held by another lease
// is. It returns the lease, the key, the secret and the granted ttl.
//
// The secret's SHA-256 is kept under the lease at leaseKey(lease), outside
// the registry's prefix, in the same transaction as the target: etcd
// lease ids are sequential, so the id alone would let anyone renew or
// revoke another client's registration or a node's self-registration.
func (r *Registry) RegisterLease(ctx context.Context, t Target, ttl time.Duration) (clientv3.LeaseID, string, string, time.Duration, error) {
	if ttl < MinLeaseTTL || ttl > MaxLeaseTTL {
		return 0, "", "", 0, fmt.Errorf("%w: ttl: %s: must be between %s and %s", ErrInvalidTarget, ttl, MinLeaseTTL, MaxLeaseTTL)
	}
	secs := int64(math.Ceil(ttl.Seconds()))
	key, val, err := r.prepare(ctx, t)
	if err != nil {
		return 0, "", "", 0, err
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return 0, "", "", 0, fmt.Errorf("registration secret: %w", err)
	}
	secret := hex.EncodeToString(b)
	lease, err := r.putLeased(ctx, key, val, secs, func(id clientv3.LeaseID) []clientv3.Op {
		return []clientv3.Op{clientv3.OpPut(r.leaseKey(id), secretHash(secret), clientv3.WithLease(id))}
	})
	if err != nil {
		return 0, "", "", 0, err
	}
	return lease, key, secret, time.Duration(secs) * time.Second, nil
}

// leaseKey is where a registration's secret hash lives: next to the
// registry's prefix, not under it, so watchers of the registry never see
// it ("/vigil/targets/" → "/vigil/targets-leases/<id>").
func (r *Registry) leaseKey(id clientv3.LeaseID) string {
	return strings.TrimSuffix(r.cfg.Prefix, "/") + "-leases/" + strconv.FormatInt(int64(id), 16)
}

func secretHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// KeepAliveLease renews a lease that RegisterLease granted with this
// secret and returns its time to live from now. Any other lease (expired,
// revoked, never granted, another subsystem's, or presented with the
// wrong secret) is ErrLeaseNotFound and is not renewed.
func (r *Registry) KeepAliveLease(ctx context.Context, id clientv3.LeaseID, secret string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if err := r.checkLease(ctx, id, secret); err != nil {
		return 0, err
	}
	resp, err := r.client.KeepAliveOnce(ctx, id)
	if err != nil {
		return 0, r.leaseError(ctx, id, "keep lease alive", err)
	}
	return time.Duration(resp.TTL) * time.Second, nil
}

// RevokeLease revokes a lease that RegisterLease granted with this
// secret: the target disappears at once. Other leases are
// ErrLeaseNotFound, as for KeepAliveLease, and are not revoked.
func (r *Registry) RevokeLease(ctx context.Context, id clientv3.LeaseID, secret string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if err := r.checkLease(ctx, id, secret); err != nil {
		return err
	}
	if _, err := r.client.Revoke(ctx, id); err != nil {
		return r.leaseError(ctx, id, "revoke lease", err)
	}
	return nil
}

// checkLease returns nil if lease id is alive and its secret is secret:
// its lease key exists, is attached to id (so the lease lives) and holds
// the secret's hash. Every other case gets the same answer, so that
// callers learn nothing about other leases.
func (r *Registry) checkLease(ctx context.Context, id clientv3.LeaseID, secret string) error {
	resp, err := r.client.Get(ctx, r.leaseKey(id))
	if err != nil {
		return fmt.Errorf("read lease %d: %w", int64(id), err)
	}
	if len(resp.Kvs) == 1 && clientv3.LeaseID(resp.Kvs[0].Lease) == id &&
		subtle.ConstantTimeCompare(resp.Kvs[0].Value, []byte(secretHash(secret))) == 1 {
		return nil
	}
	return fmt.Errorf("lease %d: %w (expired, revoked, not a registration, or the wrong secret)", int64(id), ErrLeaseNotFound)
}

// leaseError tells a lease that ended between checkLease and the call
// (ErrLeaseNotFound) from an etcd failure.
func (r *Registry) leaseError(ctx context.Context, id clientv3.LeaseID, what string, err error) error {
	if resp, terr := r.client.TimeToLive(ctx, id); terr == nil && resp.TTL <= 0 {
		return fmt.Errorf("lease %d: %w (it ended)", int64(id), ErrLeaseNotFound)
	}
	return fmt.Errorf("%s %d: %w", what, int64(id), err)
}

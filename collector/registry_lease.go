package collector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Register writes t under its ordinary key attached to an etcd lease of ttl
// and keeps the lease alive, so the target disappears when this process
// dies (after ttl) or when unregister is called or ctx ends (at once: the
// lease is revoked). If the lease is lost while the process lives (etcd
// unavailable for longer than ttl, lease revoked elsewhere) the target is
// written again under a new lease, with backoff. A key that exists without
// a lease is an operator's and is not taken over: ErrStaticTarget.
//
// Register starts one goroutine; unregister stops it, waits for it and
// returns the revoke's error. unregister is safe to call more than once.
func (r *Registry) Register(ctx context.Context, t Target, ttl time.Duration) (unregister func(context.Context) error, err error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("%w: lease ttl %s must be positive", ErrInvalidTarget, ttl)
	}
	secs := int64(math.Ceil(ttl.Seconds()))
	key, val, err := r.prepare(ctx, t)
	if err != nil {
		return nil, err
	}
	lease, err := r.putLeased(ctx, key, val, secs, nil)
	if err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var revokeErr error
	go func() {
		defer close(done)
		revokeErr = r.keepRegistered(kctx, key, val, secs, lease)
	}()
	var once sync.Once
	return func(wctx context.Context) error {
		once.Do(cancel)
		select {
		case <-done:
			return revokeErr
		case <-wctx.Done():
			return fmt.Errorf("unregister %s: %w", key, wctx.Err())
		}
	}, nil
}

// putLeased grants a lease and writes key under it unless key is static,
// with the operations extra returns for the lease in the same transaction.
func (r *Registry) putLeased(ctx context.Context, key, val string, secs int64, extra func(clientv3.LeaseID) []clientv3.Op) (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	g, err := r.client.Grant(ctx, secs)
	if err != nil {
		return 0, fmt.Errorf("grant lease for %s: %w", key, err)
	}
	resp, err := r.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(key), ">", 0), clientv3.Compare(clientv3.LeaseValue(key), "=", 0)).
		Else(append([]clientv3.Op{clientv3.OpPut(key, val, clientv3.WithLease(g.ID))}, extraOps(extra, g.ID)...)...).
		Commit()
	if err == nil && resp.Succeeded {
		err = fmt.Errorf("register %s: %w", key, ErrStaticTarget)
	} else if err != nil {
		err = fmt.Errorf("put leased target %s: %w", key, err)
	}
	if err != nil {
		_, _ = r.client.Revoke(ctx, g.ID) // best effort; it expires anyway
		return 0, err
	}
	return g.ID, nil
}

func extraOps(extra func(clientv3.LeaseID) []clientv3.Op, id clientv3.LeaseID) []clientv3.Op {
	if extra == nil {
		return nil
	}
	return extra(id)
}

// keepRegistered keeps key alive until ctx ends, then revokes its lease.
func (r *Registry) keepRegistered(ctx context.Context, key, val string, secs int64, lease clientv3.LeaseID) error {
	backoff := r.cfg.RetryBackoff
	for {
		ch, err := r.client.KeepAlive(ctx, lease)
		if err == nil {
			for range ch { // closed when the lease is lost, ctx ends or the client closes
			}
		}
		if ctx.Err() != nil {
			break
		}
		if r.client.Ctx().Err() != nil {
			return nil // client closed: nothing left to revoke with; the lease expires
		}
		r.logger.Warn("registration lease lost, registering again", "key", key, "err", err)
		for {
			if !sleepCtx(ctx, backoff) {
				return nil // the old lease is gone, nothing to revoke
			}
			backoff = min(2*backoff, r.cfg.MaxRetryBackoff)
			lease, err = r.putLeased(ctx, key, val, secs, nil)
			if err == nil {
				backoff = r.cfg.RetryBackoff
				break
			}
			if errors.Is(err, ErrStaticTarget) {
				r.logger.Error("target was written statically, stopping self-registration", "key", key)
				return err
			}
			if ctx.Err() != nil || r.client.Ctx().Err() != nil {
				return nil
			}
			r.logger.Warn("registering again failed", "key", key, "retry_in", backoff, "err", err)
		}
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.RequestTimeout)
	defer cancel()
	if _, err := r.client.Revoke(rctx, lease); err != nil {
		return fmt.Errorf("revoke registration lease of %s: %w", key, err)
	}
	return nil
}

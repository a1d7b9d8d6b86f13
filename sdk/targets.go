package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
)

// ErrLeaseLost is the cause (errors.Is) of Registration.Err when the
// registration ended without Close: the server no longer knows the lease
// (it expired or was revoked), or no keep-alive succeeded for a whole ttl.
var ErrLeaseLost = errors.New("vigil sdk: registration lease lost")

// Target is a scrape target to register: the fields of the target
// registry's value (docs/targets.md "Target values"). A zero field is
// unset and takes the job's default, then the built-in one.
type Target struct {
	Job            string              // required
	ID             string              // the id within the job; "" derives it from Address and MetricsPath
	Address        string              // host:port or http[s]://host[:port][/path][?query]; required
	Scheme         string              // "http" or "https"
	MetricsPath    string              // starts with /, no ? or # (use Params)
	Params         map[string][]string // URL query parameters of the scrape
	Interval       time.Duration       // 1 s to 1 h
	Timeout        time.Duration       // 100 ms to the interval
	Retries        *int                // 0 to 10
	Labels         map[string]string   // no job, no names starting with __
	HonorLabels    *bool               // keep the target's labels on a clash
	BasicAuth      *BasicAuth          // not together with BearerTokenRef
	BearerTokenRef string              // name of a secret in the collectors' secrets directory
	TLS            *TLSConfig          // only with Scheme "https"
}

// BasicAuth names the password secret of a target; the username is not a
// secret.
type BasicAuth struct {
	Username    string
	PasswordRef string // name of a secret in the collectors' secrets directory
}

// TLSConfig names the secrets of an https scrape.
type TLSConfig struct {
	CARef, CertRef, KeyRef string // names of secrets; CertRef and KeyRef go together
	ServerName             string
	InsecureSkipVerify     bool
}

// Registration is a target registered under a lease that it keeps alive
// in the background, sending a keep-alive every ttl/3 (each retried by the
// client's rules until the lease would have expired). It ends when Close
// is called (the target disappears at once), when the context given to
// RegisterTarget ends (keep-alives stop; the target disappears after the
// ttl), or when the lease is lost (ErrLeaseLost). Its methods are safe for
// concurrent use.
type Registration struct {
	c      *Client
	tc     vigilv1.TargetsClient
	key    string
	lease  int64
	secret string // the server's proof that the lease is ours
	ttl    time.Duration
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the keep-alives stop
	err    error         // why they stopped; written before done is closed

	closeOnce sync.Once
	closeErr  error // Close's result; written inside closeOnce
}

// errClosing is the cancel cause of the keep-alive loop when Close stops it.
var errClosing = errors.New("registration closed")

// RegisterTarget writes t into the target registry under a lease of ttl
// (5 s to 1 h, rounded up to whole seconds by the server) and keeps the
// lease alive until Close or until ctx ends: ctx bounds the registration,
// not only this call, so give it one that lives as long as the target
// should. The server validates t as the registry's HTTP API does: a bad
// field is an *Error with code InvalidArgument naming it (ErrInvalid), a
// key an operator wrote without a lease FailedPrecondition. A retried
// Register that the server had already carried out takes the key over
// under the new lease; the first lease then holds nothing and expires.
func (c *Client) RegisterTarget(ctx context.Context, t Target, ttl time.Duration) (*Registration, error) {
	tc := vigilv1.NewTargetsClient(c.conn)
	req := &vigilv1.RegisterRequest{Target: toProtoTarget(t), Ttl: durationpb.New(ttl)}
	var resp *vigilv1.RegisterResponse
	var sent time.Time // of the attempt that succeeded: the lease is no older
	err := c.retry(ctx, "register target", func(ctx context.Context) (err error) {
		sent = time.Now()
		resp, err = tc.Register(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	if granted := resp.GetTtl().AsDuration(); granted > 0 {
		ttl = granted
	}
	kctx, cancel := context.WithCancelCause(ctx)
	r := &Registration{c: c, tc: tc, key: resp.GetKey(), lease: resp.GetLeaseId(), secret: resp.GetSecret(), ttl: ttl, cancel: cancel, done: make(chan struct{})}
	go r.keepAlive(kctx, sent)
	return r, nil
}

// Key is the target's etcd key (<prefix>targets/<job>/<id>).
func (r *Registration) Key() string { return r.key }

// LeaseID is the etcd lease the target is attached to.
func (r *Registration) LeaseID() int64 { return r.lease }

// TTL is the lease's time to live as the server granted it.
func (r *Registration) TTL() time.Duration { return r.ttl }

// Done is closed when the registration stops keeping its lease alive:
// after Close, when RegisterTarget's context ends, or when the lease is
// lost. Err then says which.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Err is nil while the registration is alive and after Close; after the
// context ended it is the context's error; after a lost lease it wraps
// ErrLeaseLost and the last keep-alive's *Error. It does not block.
func (r *Registration) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Close stops the keep-alives and unregisters the target (its lease is
// revoked, so it disappears at once), retrying by the client's rules
// within ctx. A lease the server no longer knows is not an error: the
// target is gone. Later calls return the first call's result.
func (r *Registration) Close(ctx context.Context) error {
	r.closeOnce.Do(func() {
		r.cancel(errClosing)
		<-r.done // prompt: the loop's calls use the cancelled context
		err := r.c.retry(ctx, "unregister target", func(ctx context.Context) error {
			_, err := r.tc.Unregister(ctx, &vigilv1.UnregisterRequest{LeaseId: r.lease, Secret: r.secret})
			return err
		})
		var e *Error
		if errors.As(err, &e) && e.Code == codes.NotFound {
			err = nil
		}
		r.closeErr = err
	})
	return r.closeErr
}

// keepAlive renews the lease every ttl/3 until ctx ends or the lease is
// lost. lastOK is when the lease was last known to be renewed (a time
// before the server renewed it, so it errs on the early side).
func (r *Registration) keepAlive(ctx context.Context, lastOK time.Time) {
	defer close(r.done)
	every := r.ttl / 3
	timer := time.NewTimer(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); !errors.Is(cause, errClosing) {
				r.err = cause
			}
			return
		case <-r.c.closing:
			r.err = ErrClientClosed
			return
		case <-timer.C:
		}
		start := time.Now()
		// Retried until the lease would have expired; each attempt gets
		// a third of the ttl, so that a hung call is retried in time.
		kctx, cancel := context.WithDeadline(ctx, lastOK.Add(r.ttl))
		err := r.c.retry(kctx, "keep alive", func(ctx context.Context) error {
			actx, acancel := context.WithTimeout(ctx, every)
			defer acancel()
			_, err := r.tc.KeepAlive(actx, &vigilv1.KeepAliveRequest{LeaseId: r.lease, Secret: r.secret})
			return err
		})
		cancel()
		var e *Error
		switch {
		case err == nil:
			lastOK = start
			timer.Reset(every)
		case ctx.Err() != nil:
			timer.Reset(0) // the select above reports why
		case errors.As(err, &e) && e.Code == codes.NotFound:
			r.err = fmt.Errorf("%w: %s (lease %d): %w", ErrLeaseLost, r.key, r.lease, err)
			return
		case !time.Now().Before(lastOK.Add(r.ttl)):
			r.err = fmt.Errorf("%w: %s (lease %d): no keep-alive succeeded for %s: %w", ErrLeaseLost, r.key, r.lease, r.ttl, err)
			return
		default: // out of retries, or not retryable, with time left: try again soon
			timer.Reset(min(time.Second, time.Until(lastOK.Add(r.ttl))))
		}
	}
}

func toProtoTarget(t Target) *vigilv1.Target {
	p := &vigilv1.Target{
		Job: t.Job, Id: t.ID, Address: t.Address, Scheme: t.Scheme, MetricsPath: t.MetricsPath,
		Labels: t.Labels, BearerTokenRef: t.BearerTokenRef,
	}
	if t.Interval != 0 {
		p.Interval = durationpb.New(t.Interval)
	}
	if t.Timeout != 0 {
		p.Timeout = durationpb.New(t.Timeout)
	}
	if t.Retries != nil {
		n := int32(min(max(*t.Retries, -1), 1<<20)) // out of range stays out of range
		p.Retries = &n
	}
	if t.HonorLabels != nil {
		b := *t.HonorLabels
		p.HonorLabels = &b
	}
	if len(t.Params) > 0 {
		p.Params = make(map[string]*vigilv1.ParamValues, len(t.Params))
		for k, vs := range t.Params {
			p.Params[k] = &vigilv1.ParamValues{Values: vs}
		}
	}
	if a := t.BasicAuth; a != nil {
		p.BasicAuth = &vigilv1.BasicAuth{Username: a.Username, PasswordRef: a.PasswordRef}
	}
	if x := t.TLS; x != nil {
		p.Tls = &vigilv1.TLSConfig{CaRef: x.CARef, CertRef: x.CertRef, KeyRef: x.KeyRef, ServerName: x.ServerName, InsecureSkipVerify: x.InsecureSkipVerify}
	}
	return p
}

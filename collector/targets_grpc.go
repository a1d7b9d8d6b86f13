package collector

import (
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
)

// TargetsServer serves the public vigil.v1.Targets service (docs/sdk.md
// "Targets") over a Registry: targets registered under leases that the
// client keeps alive, with the validation of the registry's HTTP API.
// Its methods are safe for concurrent use and start no goroutine.
type TargetsServer struct {
	vigilv1.UnimplementedTargetsServer
	r *Registry
}

var _ vigilv1.TargetsServer = (*TargetsServer)(nil)

// NewTargetsServer returns the vigil.v1.Targets service of r.
func NewTargetsServer(r *Registry) *TargetsServer { return &TargetsServer{r: r} }

// Register implements vigilv1.TargetsServer.
func (s *TargetsServer) Register(ctx context.Context, req *vigilv1.RegisterRequest) (*vigilv1.RegisterResponse, error) {
	t, err := fromProtoTarget(req.GetTarget())
	if err != nil {
		return nil, targetsStatus(ctx, err)
	}
	if req.GetTtl() == nil {
		return nil, targetsStatus(ctx, fmt.Errorf("%w: ttl: missing (%s to %s)", ErrInvalidTarget, MinLeaseTTL, MaxLeaseTTL))
	}
	if err := req.GetTtl().CheckValid(); err != nil {
		return nil, targetsStatus(ctx, fmt.Errorf("%w: ttl: %w", ErrInvalidTarget, err))
	}
	lease, key, secret, ttl, err := s.r.RegisterLease(ctx, t, req.GetTtl().AsDuration())
	if err != nil {
		return nil, targetsStatus(ctx, err)
	}
	return &vigilv1.RegisterResponse{LeaseId: int64(lease), Key: key, Ttl: durationpb.New(ttl), Secret: secret}, nil
}

// KeepAlive implements vigilv1.TargetsServer.
func (s *TargetsServer) KeepAlive(ctx context.Context, req *vigilv1.KeepAliveRequest) (*vigilv1.KeepAliveResponse, error) {
	ttl, err := s.r.KeepAliveLease(ctx, clientv3.LeaseID(req.GetLeaseId()), req.GetSecret())
	if err != nil {
		return nil, targetsStatus(ctx, err)
	}
	return &vigilv1.KeepAliveResponse{Ttl: durationpb.New(ttl)}, nil
}

// Unregister implements vigilv1.TargetsServer.
func (s *TargetsServer) Unregister(ctx context.Context, req *vigilv1.UnregisterRequest) (*vigilv1.UnregisterResponse, error) {
	if err := s.r.RevokeLease(ctx, clientv3.LeaseID(req.GetLeaseId()), req.GetSecret()); err != nil {
		return nil, targetsStatus(ctx, err)
	}
	return &vigilv1.UnregisterResponse{}, nil
}

// targetsStatus maps a registry error to its gRPC status, as
// writeRegistryError maps it to HTTP: a refused value is InvalidArgument,
// a static key FailedPrecondition, a lease that is not a registration
// NotFound, and an etcd failure Unavailable.
func targetsStatus(ctx context.Context, err error) error {
	code := codes.Unavailable
	switch {
	case errors.Is(err, ErrInvalidTarget):
		code = codes.InvalidArgument
	case errors.Is(err, ErrStaticTarget):
		code = codes.FailedPrecondition
	case errors.Is(err, ErrLeaseNotFound):
		code = codes.NotFound
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	return status.Error(code, err.Error())
}

// fromProtoTarget converts a target as the registry's HTTP API decodes a
// value: the job is required; every other check is the registry's.
func fromProtoTarget(p *vigilv1.Target) (Target, error) {
	if p == nil {
		return Target{}, fmt.Errorf("%w: target: missing", ErrInvalidTarget)
	}
	if p.GetJob() == "" {
		return Target{}, fmt.Errorf("%w: job: missing (the target must name its job)", ErrInvalidTarget)
	}
	t := Target{Job: p.GetJob(), ID: p.GetId(), Address: p.GetAddress()}
	c := &t.ScrapeConfig
	c.Scheme, c.MetricsPath, c.BearerTokenRef = p.GetScheme(), p.GetMetricsPath(), p.GetBearerTokenRef()
	for name, d := range map[string]*durationpb.Duration{"interval": p.GetInterval(), "timeout": p.GetTimeout()} {
		if d == nil {
			continue
		}
		if err := d.CheckValid(); err != nil {
			return Target{}, fmt.Errorf("%w: %s: %w", ErrInvalidTarget, name, err)
		}
		v := Duration(d.AsDuration()) // zero is unset, as in a stored value
		if name == "interval" {
			c.Interval = v
		} else {
			c.Timeout = v
		}
	}
	if p.Retries != nil {
		c.Retries = ptr(int(p.GetRetries()))
	}
	if p.HonorLabels != nil {
		c.HonorLabels = ptr(p.GetHonorLabels())
	}
	if len(p.GetParams()) > 0 {
		c.Params = make(map[string][]string, len(p.GetParams()))
		for k, v := range p.GetParams() {
			c.Params[k] = v.GetValues()
		}
	}
	if len(p.GetLabels()) > 0 {
		c.Labels = p.GetLabels()
	}
	if b := p.GetBasicAuth(); b != nil {
		c.BasicAuth = &BasicAuth{Username: b.GetUsername(), PasswordRef: b.GetPasswordRef()}
	}
	if x := p.GetTls(); x != nil {
		c.TLS = &TLSConfig{CARef: x.GetCaRef(), CertRef: x.GetCertRef(), KeyRef: x.GetKeyRef(), ServerName: x.GetServerName(), InsecureSkipVerify: x.GetInsecureSkipVerify()}
	}
	return t, nil
}

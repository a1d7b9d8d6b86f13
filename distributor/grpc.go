package distributor

import (
	"context"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
)

// GRPC serves the Distributor gRPC service (Push) over a Distributor:
// the gRPC write path, with the HTTP endpoints' validation and quorum.
type GRPC struct {
	ingesterpb.UnimplementedDistributorServer
	d *Distributor
}

// NewGRPC returns the gRPC service of d.
func NewGRPC(d *Distributor) *GRPC { return &GRPC{d: d} }

// Push implements ingesterpb.DistributorServer.
func (g *GRPC) Push(ctx context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	batch, err := ingesterpb.ToSeries(req)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	res, err := g.d.Push(ctx, batch)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	return ingesterpb.FromResult(res), nil
}

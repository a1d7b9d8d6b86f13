package distributor

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/vigil-tsdb/vigil/ring"
)

// RingRouter places series on the ingester ring: the replica set of a
// series is the owners of its key's partition (ring.PartitionOwners). The
// table of every partition's replicas is rebuilt on each ring change, so
// Route costs one hash and a slice index.
type RingRouter struct {
	ring  ring.Ring
	rf    int
	table atomic.Pointer[routeTable]
}

type routeTable struct {
	replicas [][]Target // by partition
	err      error      // why the ring cannot place series (too few ingesters)
}

// NewRingRouter returns a router over r with replication factor rf. Run
// keeps it current.
func NewRingRouter(r ring.Ring, rf int) *RingRouter {
	rr := &RingRouter{ring: r, rf: rf}
	rr.rebuild()
	return rr
}

// Run rebuilds the table on every ring change until ctx ends.
func (r *RingRouter) Run(ctx context.Context) error {
	changes := r.ring.Subscribe()
	r.rebuild() // changes before Subscribe
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-changes:
			if !ok {
				return nil
			}
			r.rebuild()
		}
	}
}

func (r *RingRouter) rebuild() {
	t := &routeTable{replicas: make([][]Target, r.ring.Partitions())}
	for p := range t.replicas {
		owners, err := r.ring.PartitionOwners(ring.RoleIngester, p, r.rf)
		if err != nil {
			t.err = fmt.Errorf("replication factor %d: %w", r.rf, err)
			t.replicas = nil
			break
		}
		ts := make([]Target, len(owners))
		for i, m := range owners {
			ts[i] = Target{Name: m.Name, Addr: m.GRPCAddr, Healthy: m.Healthy}
		}
		t.replicas[p] = ts
	}
	r.table.Store(t)
}

// Route implements Router.
func (r *RingRouter) Route(key []byte) ([]Target, error) {
	t := r.table.Load()
	if t.err != nil {
		return nil, t.err
	}
	return t.replicas[r.ring.Partition(key)], nil
}

// Quorum implements Router: a majority of the replication factor.
func (r *RingRouter) Quorum() int { return r.rf/2 + 1 }

// Ready reports why series cannot be placed now (too few active
// ingesters), or nil.
func (r *RingRouter) Ready() error { return r.table.Load().err }

// Package distributor is where every write enters the cluster's data path:
// it checks request limits, validates each series and sample against
// model.Limits (invalid ones are refused and reported, the rest kept), and
// sends the batch to the ingester that owns it. In single-node Vigil that is
// the one local ingester, over the same gRPC API a cluster uses.
package distributor

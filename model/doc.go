// Package model holds the types every layer of Vigil shares: series and
// samples (labels are Prometheus' labels.Labels), per-request push results,
// the validation limits applied at every write boundary, and the error
// classes that the HTTP and gRPC boundaries map to status codes.
//
// It imports no other Vigil package; everything else may import it.
package model

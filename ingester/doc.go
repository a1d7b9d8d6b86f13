// Package ingester serves one node's storage over gRPC (ingesterpb): Push
// appends batches, Select streams chunks, and Series, LabelNames,
// LabelValues and Stats answer index queries. It trusts its callers
// (distributors) to have validated labels; storage applies the limits that
// only it can (out-of-order window, series limit).
package ingester

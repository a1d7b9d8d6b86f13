// Package querier answers reads: a Prometheus storage.Queryable that fans
// each Select out to the ingesters over gRPC and merges what they return
// (identical timestamps deduplicated), and the PromQL engine that runs over
// it for the HTTP API and, later, the ruler and the Kubernetes adapter.
package querier

// Package adapter serves Vigil's series to the Kubernetes
// HorizontalPodAutoscaler through the Custom Metrics API
// (custom.metrics.k8s.io v1beta2, v1beta1) and the External Metrics API
// (external.metrics.k8s.io v1beta1), as an aggregated API server built on
// sigs.k8s.io/custom-metrics-apiserver.
//
// Client talks to Vigil's HTTP query API; Provider discovers metrics
// (the default naming scheme and the Rules of a Config), turns the HPA's
// selectors into PromQL matchers, runs the queries and refuses values
// whose newest sample is older than the maximum age; Server wires the
// provider into the library's API server with its secure serving and
// delegated authentication and authorization. cmd/vigil-adapter holds the
// flags. The package imports nothing of Vigil: it is a client of the
// query API (docs/kubernetes.md).
package adapter

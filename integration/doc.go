// Package integration holds Vigil's black-box tests: they build the vigil
// binary, run it as a separate process on loopback ports with a temporary
// data directory, and talk to it only through its public HTTP and gRPC APIs
// and its exported metrics, next to real third-party processes from Debian
// (Prometheus, node_exporter, VictoriaMetrics) where users have them.
//
// The package has no non-test code. The shared harness lives in
// harness_test.go (building vigil once in TestMain, starting, stopping,
// SIGKILLing and restarting processes, capturing their logs into the test
// log on failure) and promapi_test.go (a small Prometheus HTTP API client
// and an exact comparison of query results). Tests that need a Debian binary
// fail, rather than skip, when it is missing: `make deps` installs them and
// `make test` runs deps first. Under -short, the long-running tests skip.
//
// VIGIL_BIN=/path/to/vigil runs the tests against a prebuilt binary instead
// of building cmd/vigil.
package integration

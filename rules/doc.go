// Package rules holds Prometheus rule files for Vigil's ruler. This part is
// the rule storage (docs/alerting.md "Rule storage"): rule groups in etcd,
// one key per group under a namespace, checked at upload with Prometheus'
// own rulefmt and PromQL parser, served over HTTP (/api/v1/rules/config)
// and read as complete snapshots by Watch.
//
// Main types: Store (etcd reads and writes, Watch, Handler), Snapshot (every
// group at one revision, with the invalid values apart), FileError (a rule
// file that does not pass the checks, with line and column).
//
// Data flow: `vigil rules upload` or POST /api/v1/rules/config/{namespace}
// → Store → etcd → Watch → the ruler (built later), which evaluates the
// groups it owns. The package imports no other Vigil package.
package rules

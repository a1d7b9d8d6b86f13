// Package rules holds Prometheus rule files for Vigil's ruler and evaluates
// them. The rule storage (docs/alerting.md "Rule storage"): rule groups in
// etcd, one key per group under a namespace, checked at upload with
// Prometheus' own rulefmt and PromQL parser, served over HTTP
// (/api/v1/rules/config) and read as complete snapshots by Watch. The
// ruler (sections "Evaluation" and "Sharding and hand-over"): Prometheus'
// rule manager over an injected Queryable and Pusher, evaluating the
// groups it owns on the ruler ring, with a make-before-break hand-over.
//
// Main types: Store (etcd reads and writes, Watch, Handler), Snapshot (every
// group at one revision, with the invalid values apart), FileError (a rule
// file that does not pass the checks, with line and column), Ruler
// (Apply a snapshot, SetOwnership and Follow a ring), Evaluator.
//
// Data flow: `vigil rules upload` or POST /api/v1/rules/config/{namespace}
// → Store → etcd → Watch → Ruler.Apply, which evaluates the groups it owns
// (ring.Rendezvous among the active rulers). Besides model, the package
// imports only ring, for that owner function.
package rules

// Package etcdwatch keeps a reader's decoded copy of an etcd key prefix
// current and hands it on as complete snapshots. It is the watch loop of
// the rule store (rules) and of the target registry (collector).
//
// Watch reads the prefix, then watches it from that read's revision + 1;
// when the watch is compacted or lost (server cancel, no leader, closed
// channel) it reads the prefix again and continues, so no change is missed.
// While etcd fails, nothing is delivered (the last snapshot stays in force)
// and reads are retried after a backoff that doubles up to a cap. A slow
// receiver gets the newest snapshot, never a stale one. Entries holds the
// decoded keys; each key is decoded once per mod revision.
//
// What differs between users is a parameter (Options): how a key decodes,
// how a snapshot is built, the names in log messages and the metric hooks.
// The package imports no package of the project.
package etcdwatch

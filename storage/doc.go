// Package storage is the storage engine of one ingester: a write-ahead log
// with group commit, an in-memory head of Gorilla (XOR) chunks with label
// postings, and Badger holding persisted chunks and the label index, keyed
// by time partition. It exposes an appender (DB.Append) and Prometheus'
// Queryable and ChunkQueryable.
//
// Data flow: Append validates timestamps against the out-of-order window,
// appends to the head and logs the accepted samples to the WAL, waiting for
// the fsync that covers them. Flush (periodic, and on Close) rolls the WAL,
// writes every chunk version not yet in Badger, syncs Badger, removes the
// old WAL segments and evicts chunks that can no longer change. On Open the
// head is restored from Badger's recent chunks and the WAL is replayed.
//
// For repair and hand-off between replicas: SeriesDigests summarises the
// samples of every series in a range (SampleDigest defines the sum),
// SeriesSamples reads one series, Backfill stores samples of any age (old
// ones as closed chunks written straight to Badger) and DeleteSeries
// removes samples durably, through WAL tombstones.
//
// docs/storage.md describes the on-disk formats and recovery; keys.go and
// walrecord.go implement them.
package storage

package storage

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type walMetrics struct {
	fsyncs        prometheus.Counter
	bytes         prometheus.Counter
	writeDuration prometheus.Histogram
	truncations   prometheus.Counter
	segment       prometheus.Gauge
}

type dbMetrics struct {
	wal              *walMetrics
	samplesAppended  prometheus.Counter
	outOfOrder       prometheus.Counter
	duplicates       prometheus.Counter
	rejected         *prometheus.CounterVec
	seriesCreated    prometheus.Counter
	seriesRemoved    prometheus.Counter
	chunksCut        prometheus.Counter
	flushes          prometheus.Counter
	flushFailures    prometheus.Counter
	flushDuration    prometheus.Histogram
	chunksPersisted  prometheus.Counter
	bytesPersisted   prometheus.Counter
	replayDuration   prometheus.Gauge
	replayedRecords  prometheus.Counter
	lastFlushSuccess prometheus.Gauge
	backfilled       *prometheus.CounterVec
	backfillChunks   prometheus.Counter
	deletedSeries    prometheus.Counter
}

func newDBMetrics(reg prometheus.Registerer) *dbMetrics {
	f := promauto.With(reg)
	return &dbMetrics{
		wal: &walMetrics{
			fsyncs:        f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_wal_fsyncs_total", Help: "WAL fsync calls (one per group commit)."}),
			bytes:         f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_wal_written_bytes_total", Help: "Bytes written to the WAL."}),
			writeDuration: f.NewHistogram(prometheus.HistogramOpts{Name: "vigil_storage_wal_write_duration_seconds", Help: "Duration of one WAL group write (write + fsync).", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}),
			truncations:   f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_wal_truncations_total", Help: "WAL truncations after a flush."}),
			segment:       f.NewGauge(prometheus.GaugeOpts{Name: "vigil_storage_wal_segment_current", Help: "Number of the WAL segment being written."}),
		},
		samplesAppended:  f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_samples_appended_total", Help: "Samples stored."}),
		outOfOrder:       f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_out_of_order_samples_total", Help: "Samples stored that were older than their series' newest sample."}),
		duplicates:       f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_duplicate_samples_total", Help: "Exact duplicate samples dropped."}),
		rejected:         f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_storage_rejected_samples_total", Help: "Samples refused by storage, by reason."}, []string{"reason"}),
		seriesCreated:    f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_series_created_total", Help: "Series added to the head."}),
		seriesRemoved:    f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_series_removed_total", Help: "Idle series removed from the head after their chunks were persisted."}),
		chunksCut:        f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_chunks_created_total", Help: "Head chunks created."}),
		flushes:          f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_flushes_total", Help: "Flushes of the head to Badger."}),
		flushFailures:    f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_flush_failures_total", Help: "Flushes that failed (the WAL is kept)."}),
		flushDuration:    f.NewHistogram(prometheus.HistogramOpts{Name: "vigil_storage_flush_duration_seconds", Help: "Duration of a head flush.", Buckets: prometheus.ExponentialBuckets(0.01, 3, 9)}),
		chunksPersisted:  f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_chunks_persisted_total", Help: "Chunk versions written to Badger."}),
		bytesPersisted:   f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_persisted_chunk_bytes_total", Help: "Chunk bytes written to Badger."}),
		replayDuration:   f.NewGauge(prometheus.GaugeOpts{Name: "vigil_storage_wal_replay_duration_seconds", Help: "Time the last start spent loading the head and replaying the WAL."}),
		replayedRecords:  f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_wal_replayed_records_total", Help: "WAL records replayed at start."}),
		lastFlushSuccess: f.NewGauge(prometheus.GaugeOpts{Name: "vigil_storage_last_flush_success_timestamp_seconds", Help: "Time of the last successful flush."}),
		backfilled:       f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_storage_backfilled_samples_total", Help: "Samples stored by Backfill, by path: head (inside the out-of-order window, through the WAL) or chunks (older, written to Badger as closed chunks)."}, []string{"path"}),
		backfillChunks:   f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_backfilled_chunks_total", Help: "Chunks Backfill wrote to Badger."}),
		deletedSeries:    f.NewCounter(prometheus.CounterOpts{Name: "vigil_storage_deleted_series_total", Help: "Series that lost samples to DeleteSeries (counting deletions completed from WAL tombstones at start)."}),
	}
}

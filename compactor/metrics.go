package compactor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the compactor's vigil_compactor_* metrics. The tier label is
// "raw", "1m" or "1h".
type metrics struct {
	daysCompacted *prometheus.CounterVec
	series        *prometheus.CounterVec
	windows       *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	daysDropped   *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	errors        *prometheus.CounterVec
	passes        prometheus.Counter
	passDuration  prometheus.Histogram
	lastSuccess   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		daysCompacted: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compactor_days_compacted_total", Help: "Tier days written (first compaction or redone after a change), by tier."}, []string{"tier"}),
		series:        f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compactor_series_written_total", Help: "Series written into tier days, by tier."}, []string{"tier"}),
		windows:       f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compactor_windows_written_total", Help: "Aggregate windows written into tier days, by tier."}, []string{"tier"}),
		bytes:         f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compactor_written_bytes_total", Help: "Aggregate chunk bytes written into tier days (before Badger's compression), by tier."}, []string{"tier"}),
		daysDropped:   f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compactor_days_dropped_total", Help: "Days removed by retention, by tier."}, []string{"tier"}),
		lag:           f.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_compactor_lag_seconds", Help: "Pass time minus the end of the newest day the tier holds, by tier; includes the settle delay."}, []string{"tier"}),
		errors:        f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_compactor_errors_total", Help: "Failed operations (the pass goes on with the next day), by operation: compact, drop, list."}, []string{"op"}),
		passes:        f.NewCounter(prometheus.CounterOpts{Name: "vigil_compactor_passes_total", Help: "Compaction and retention passes run."}),
		passDuration:  f.NewHistogram(prometheus.HistogramOpts{Name: "vigil_compactor_pass_duration_seconds", Help: "Duration of one compaction and retention pass.", Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)}),
		lastSuccess:   f.NewGauge(prometheus.GaugeOpts{Name: "vigil_compactor_last_success_timestamp_seconds", Help: "Wall-clock time of the end of the last pass without errors."}),
	}
	for _, t := range []string{tierNames[1], tierNames[2]} {
		m.daysCompacted.WithLabelValues(t)
		m.series.WithLabelValues(t)
		m.windows.WithLabelValues(t)
		m.bytes.WithLabelValues(t)
	}
	for _, t := range tierNames {
		m.daysDropped.WithLabelValues(t)
	}
	for _, op := range []string{"compact", "drop", "list"} {
		m.errors.WithLabelValues(op)
	}
	return m
}

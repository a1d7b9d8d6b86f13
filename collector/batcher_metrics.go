package collector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// batcherMetrics are the vigil_collector_batcher_* metrics of one Batcher.
type batcherMetrics struct {
	flushes          *prometheus.CounterVec
	sent             prometheus.Counter
	spooled          prometheus.Counter
	rejected         *prometheus.CounterVec
	downstreamErrors *prometheus.CounterVec
	queue            prometheus.Gauge
}

func newBatcherMetrics() *batcherMetrics {
	m := &batcherMetrics{
		flushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_collector_batcher_flushes_total",
			Help: "Batches sealed for sending, by reason (size, interval, flush, close).",
		}, []string{"reason"}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_batcher_sent_samples_total",
			Help: "Samples the downstream acknowledged directly (replayed ones are in vigil_collector_spool_replayed_samples_total).",
		}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_batcher_spooled_samples_total",
			Help: "Samples written to the spool.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_collector_batcher_rejected_samples_total",
			Help: "Samples the downstream refused, by reason: whole batches (bad_data, too_large) or single samples.",
		}, []string{"reason"}),
		downstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_collector_batcher_downstream_errors_total",
			Help: "Failed pushes to the downstream, direct and replayed, by class (retryable, refused).",
		}, []string{"class"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_collector_batcher_queue_samples",
			Help: "Samples held in memory: filling, waiting and in-flight batches.",
		}),
	}
	for _, r := range []string{flushSize, flushInterval, flushFlush, flushClose} {
		m.flushes.WithLabelValues(r)
	}
	for _, c := range []pushClass{classRetryable, classRefused} {
		m.downstreamErrors.WithLabelValues(string(c))
	}
	return m
}

func (m *batcherMetrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.flushes, m.sent, m.spooled, m.rejected, m.downstreamErrors, m.queue}
}

// register adds the metrics to reg (if not nil), all or none.
func (m *batcherMetrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for i, c := range m.all() {
		if err := reg.Register(c); err != nil {
			for _, r := range m.all()[:i] {
				reg.Unregister(r)
			}
			return fmt.Errorf("register batcher metrics: %w", err)
		}
	}
	return nil
}

func (m *batcherMetrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.all() {
		reg.Unregister(c)
	}
}

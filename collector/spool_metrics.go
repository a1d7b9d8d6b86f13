package collector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// spoolMetrics are the vigil_collector_spool_* metrics of one spool.
type spoolMetrics struct {
	dropped  *prometheus.CounterVec
	replayed prometheus.Counter
	corrupt  prometheus.Counter
	gauges   []prometheus.Collector // read s
}

// newSpoolMetrics creates the metrics of s; register adds them to a
// registry once the spool opened.
func newSpoolMetrics(s *spool) *spoolMetrics {
	m := &spoolMetrics{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_collector_spool_dropped_samples_total",
			Help: "Samples dropped from the spool or not spooled, by reason (max_bytes, max_age, refused, corrupt, write_error).",
		}, []string{"reason"}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_spool_replayed_samples_total",
			Help: "Spooled samples the downstream acknowledged.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_spool_corrupt_frames_total",
			Help: "Corrupt regions of spool segments skipped (their samples are lost).",
		}),
	}
	for _, r := range []string{dropMaxBytes, dropMaxAge, dropRefused, dropCorrupt, dropWriteError} {
		m.dropped.WithLabelValues(r)
	}
	m.gauges = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_collector_spool_bytes",
			Help: "Bytes of spooled batches not yet acknowledged by the downstream.",
		}, func() float64 { _, b, _ := s.stats(); return float64(b) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_collector_spool_batches",
			Help: "Batches in the spool.",
		}, func() float64 { n, _, _ := s.stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_collector_spool_oldest_age_seconds",
			Help: "Time since the oldest batch in the spool was spooled; 0 when the spool is empty.",
		}, func() float64 { _, _, a := s.stats(); return a.Seconds() }),
	}
	return m
}

func (m *spoolMetrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	all := append(m.gauges, m.dropped, m.replayed, m.corrupt)
	for i, c := range all {
		if err := reg.Register(c); err != nil {
			for _, r := range all[:i] {
				reg.Unregister(r)
			}
			return fmt.Errorf("register spool metrics: %w", err)
		}
	}
	return nil
}

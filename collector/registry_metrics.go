package collector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// registryMetrics are updated by every watcher of one Registry: the gauges
// show the latest snapshot any of them delivered.
type registryMetrics struct {
	targets     *prometheus.GaugeVec
	invalid     prometheus.Gauge
	resyncs     prometheus.Counter
	watchErrors prometheus.Counter
	reachable   prometheus.Gauge
}

func newRegistryMetrics(reg prometheus.Registerer) (*registryMetrics, error) {
	m := &registryMetrics{
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_collector_registry_targets",
			Help: "Valid targets per job in the latest registry snapshot.",
		}, []string{"job"}),
		invalid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_collector_registry_invalid_targets",
			Help: "Registry keys skipped in the latest snapshot because their key or value is invalid.",
		}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_registry_resyncs_total",
			Help: "Full re-reads of the registry after the first (compaction, lost watch, etcd errors).",
		}),
		watchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_registry_watch_errors_total",
			Help: "Failed registry reads, watch errors and failed probes of a watch (etcd not answering).",
		}),
		reachable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_collector_registry_reachable",
			Help: "1 while etcd answers the registry watch and its probes (every -targets.request-timeout), 0 while it does not and the last snapshot stays in force.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.targets, m.invalid, m.resyncs, m.watchErrors, m.reachable} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register target registry metrics: %w", err)
			}
		}
	}
	return m, nil
}

// observe sets the gauges from a snapshot.
func (m *registryMetrics) observe(s Snapshot) {
	perJob := map[string]int{}
	for _, t := range s.Targets {
		perJob[t.Job]++
	}
	m.targets.Reset()
	for job, n := range perJob {
		m.targets.WithLabelValues(job).Set(float64(n))
	}
	m.invalid.Set(float64(len(s.Invalid)))
}

package rules

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// storeMetrics are shared by every List and watcher of one Store: the
// gauges show the latest complete snapshot any of them read.
type storeMetrics struct {
	groups      prometheus.Gauge
	invalid     prometheus.Gauge
	ops         *prometheus.CounterVec
	resyncs     prometheus.Counter
	watchErrors prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) (*storeMetrics, error) {
	m := &storeMetrics{
		groups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_groups",
			Help: "Valid rule groups in the latest complete read of the rule store.",
		}),
		invalid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_invalid_groups",
			Help: "Keys of the rule store skipped in the latest complete read because their key or value is invalid.",
		}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_rules_store_operations_total",
			Help: "Rule store operations by operation and result (success, invalid, not_found, conflict, error).",
		}, []string{"operation", "result"}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_rules_watch_resyncs_total",
			Help: "Full re-reads of the rule store by watchers after the first (compaction, lost watch, etcd errors).",
		}),
		watchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_rules_watch_errors_total",
			Help: "Failed reads and lost watches of the rule store watchers.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.groups, m.invalid, m.ops, m.resyncs, m.watchErrors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register rule store metrics: %w", err)
			}
		}
	}
	return m, nil
}

// op counts one operation by the class of its error.
func (m *storeMetrics) op(name string, err error) {
	result := "success"
	switch {
	case err == nil:
	case errors.Is(err, ErrInvalid):
		result = "invalid"
	case errors.Is(err, ErrNotFound):
		result = "not_found"
	case errors.Is(err, ErrConflict):
		result = "conflict"
	default:
		result = "error"
	}
	m.ops.WithLabelValues(name, result).Inc()
}

// observe sets the gauges from a complete snapshot.
func (m *storeMetrics) observe(s Snapshot) {
	m.groups.Set(float64(len(s.Groups)))
	m.invalid.Set(float64(len(s.Invalid)))
}

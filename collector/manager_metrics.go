package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// managerMetrics are the vigil_collector_* metrics of ownership.
type managerMetrics struct {
	loops        prometheus.Gauge
	members      prometheus.Gauge
	targets      prometheus.Gauge
	maxLoad      prometheus.Gauge
	meanLoad     prometheus.Gauge
	limit        prometheus.Gauge
	overLimit    prometheus.Gauge
	assignTime   prometheus.Histogram
	handovers    *prometheus.CounterVec
	reports      prometheus.Counter
	recordWrites prometheus.Counter
	coordErrors  prometheus.Counter
}

func newManagerMetrics(reg prometheus.Registerer) (*managerMetrics, error) {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &managerMetrics{
		loops:     g("vigil_collector_loops", "Scrape loops of this collector, including those handing over or stopping."),
		members:   g("vigil_collector_members", "Active, healthy collectors in the last ownership computation."),
		targets:   g("vigil_collector_assignment_targets", "Targets in the registry at the last ownership computation."),
		maxLoad:   g("vigil_collector_assignment_max_load_series", "Largest series load of a shared collector in the last assignment."),
		meanLoad:  g("vigil_collector_assignment_mean_load_series", "Mean series load of the shared collectors in the last assignment."),
		limit:     g("vigil_collector_assignment_limit_series", "Series cap enforced in the last assignment: (1+ε) × mean unless proven infeasible."),
		overLimit: g("vigil_collector_assignment_over_limit", "1 when the last assignment could not keep every collector within the limit."),
		assignTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_collector_assignment_duration_seconds",
			Help:    "Time to compute ownership.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
		handovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_collector_handovers_total",
			Help: "Targets taken over (in) and handed over (out) by this collector.",
		}, []string{"direction"}),
		reports:      c("vigil_collector_load_reports_total", "Load reports written to etcd."),
		recordWrites: c("vigil_collector_assignment_records_total", "Assignment records written to etcd (as leader)."),
		coordErrors:  c("vigil_collector_coordination_errors_total", "Failed reads, writes and invalid values of the coordination keys in etcd."),
	}
	for _, col := range []prometheus.Collector{m.loops, m.members, m.targets, m.maxLoad, m.meanLoad, m.limit, m.overLimit,
		m.assignTime, m.handovers, m.reports, m.recordWrites, m.coordErrors} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	m.handovers.WithLabelValues("in")
	m.handovers.WithLabelValues("out")
	return m, nil
}

func (m *managerMetrics) observe(st ShardStats, took time.Duration) {
	m.members.Set(float64(st.Collectors))
	m.targets.Set(float64(st.Targets))
	m.maxLoad.Set(float64(st.MaxLoad))
	m.meanLoad.Set(st.Mean)
	m.limit.Set(float64(st.Limit))
	over := 0.0
	if st.OverLimit {
		over = 1
	}
	m.overLimit.Set(over)
	m.assignTime.Observe(took.Seconds())
}

package ring

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	members         *prometheus.GaugeVec
	dead            *prometheus.GaugeVec
	partitionsOwned *prometheus.GaugeVec
	changes         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_ring_members",
			Help: "Members known to this node, by role and announced state (dead members included).",
		}, []string{"role", "state"}),
		dead: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_ring_members_dead",
			Help: "Members declared dead by the failure detector and not yet forgotten, by role.",
		}, []string{"role"}),
		partitionsOwned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_ring_partitions_owned",
			Help: "Ring partitions owned by this node, by role.",
		}, []string{"role"}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ring_changes_total",
			Help: "Changes of the member table (joins, state changes, failures, leaves, forgets).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.members, m.dead, m.partitionsOwned, m.changes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register ring metrics: %w", err)
			}
		}
	}
	return m, nil
}

// update sets the gauges from a new snapshot; local is this node's name.
func (m *metrics) update(s *snapshot, local string) {
	m.changes.Inc()
	for _, role := range AllRoles {
		counts := map[State]int{}
		dead := 0
		for _, mem := range s.members {
			if !mem.Roles.Has(role) {
				continue
			}
			counts[mem.State]++
			if !mem.Healthy {
				dead++
			}
		}
		for _, st := range AllStates {
			m.members.WithLabelValues(role.String(), st.String()).Set(float64(counts[st]))
		}
		m.dead.WithLabelValues(role.String()).Set(float64(dead))
		owned := 0
		if r := s.rings[role]; r != nil {
			owned = r.partitions[local]
		}
		m.partitionsOwned.WithLabelValues(role.String()).Set(float64(owned))
	}
}

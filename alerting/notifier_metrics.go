package alerting

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type notifierMetrics struct {
	notifications *prometheus.CounterVec // receiver, channel, result
	failures      *prometheus.CounterVec // receiver, channel
	deadLetters   *prometheus.CounterVec // receiver, channel
	enqueued      *prometheus.CounterVec // receiver, channel
	queueLength   prometheus.Gauge
	groups        prometheus.Gauge
	stateErrors   prometheus.Counter
	dropped       *prometheus.CounterVec // reason
	leader        prometheus.Gauge
	leaderChanges prometheus.Counter
	configOK      prometheus.Gauge
	configTime    prometheus.Gauge
	forwarded     *prometheus.CounterVec // result
	forwardQueue  prometheus.Gauge
}

func newNotifierMetrics(reg prometheus.Registerer) (*notifierMetrics, error) {
	m := &notifierMetrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alerting_notifications_total",
			Help: "Delivery attempts of queued notifications by outcome: delivered, retry (failed, will be retried), dead (given up).",
		}, []string{"receiver", "channel", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alerting_delivery_failures_total",
			Help: "Sends that a channel did not accept (each failed attempt).",
		}, []string{"receiver", "channel"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alerting_dead_letters_total",
			Help: "Notifications moved to the dead letters (not retryable, too many attempts or too old).",
		}, []string{"receiver", "channel"}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alerting_enqueued_total",
			Help: "Notifications written to the durable queue, one per channel.",
		}, []string{"receiver", "channel"}),
		queueLength: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerting_queue_length",
			Help: "Entries in the durable queue at the last scan.",
		}),
		groups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerting_groups",
			Help: "Aggregation groups held by the notifier.",
		}),
		stateErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_alerting_etcd_errors_total",
			Help: "Failed etcd writes of notification state and queue entries (retried).",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alerting_alerts_dropped_total",
			Help: "Alerts not routed: no_config (the leader has no configuration), carry_full (too many waiting while the groups were rebuilt), forward_queue_full, forward_expired (not handed to a leader in time; the ruler sends them again).",
		}, []string{"reason"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerting_leader",
			Help: "1 while this notifier leads its prefix (flushes groups and delivers), else 0.",
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_alerting_leader_terms_total",
			Help: "Times this notifier became the leader.",
		}),
		configOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerting_config_last_reload_successful",
			Help: "Whether the last stored notifier configuration read was valid and applied (1) or refused (0).",
		}),
		configTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerting_config_last_reload_success_timestamp_seconds",
			Help: "Time the notifier configuration was last applied.",
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alerting_forwarded_alerts_total",
			Help: "Alerts of this node's ruler sent to the leading notifier on another node: sent, refused (4xx, dropped), or failed (attempts, retried).",
		}, []string{"result"}),
		forwardQueue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_alerting_forward_queue_length",
			Help: "Alerts waiting to be sent to the leading notifier.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.notifications, m.failures, m.deadLetters, m.enqueued, m.queueLength, m.groups, m.stateErrors,
			m.dropped, m.leader, m.leaderChanges, m.configOK, m.configTime, m.forwarded, m.forwardQueue} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register notifier metrics: %w", err)
			}
		}
	}
	return m, nil
}

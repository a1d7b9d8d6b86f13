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
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.notifications, m.failures, m.deadLetters, m.enqueued, m.queueLength, m.groups, m.stateErrors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register notifier metrics: %w", err)
			}
		}
	}
	return m, nil
}

package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-tsdb/vigil/model"
)

// Protocol label values of vigil_api_received_samples_total.
const (
	protoRemoteWrite = "remote_write"
	protoText        = "prometheus_text"
	protoInflux      = "influx_line"
)

// Reason label values of vigil_api_rejected_samples_total for whole
// requests refused after decoding; per-sample reasons are model.Reason.
const (
	reasonTooLarge    = "request_too_large"
	reasonOverloaded  = "overloaded"
	reasonUnavailable = "unavailable"
	reasonInvalid     = "invalid_request"
	reasonUnlisted    = "unlisted" // rejected samples a Pusher did not count by reason
)

type metrics struct {
	requests *prometheus.CounterVec   // handler, code
	duration *prometheus.HistogramVec // handler
	received *prometheus.CounterVec   // protocol
	rejected *prometheus.CounterVec   // reason

	writesInFlight prometheus.Gauge
	writesQueued   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_api_requests_total",
			Help: "HTTP requests served by the API, by handler and status code.",
		}, []string{"handler", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_api_request_duration_seconds",
			Help:    "Time to serve an HTTP API request, by handler.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"handler"}),
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_api_received_samples_total",
			Help: "Samples decoded from push requests, by protocol, before validation.",
		}, []string{"protocol"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_api_rejected_samples_total",
			Help: "Decoded samples that were not stored, by reason.",
		}, []string{"reason"}),
		writesInFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_api_write_requests_in_flight",
			Help: "Push requests holding a write slot.",
		}),
		writesQueued: f.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_api_write_requests_queued",
			Help: "Push requests waiting for a write slot.",
		}),
	}
}

// instrument wraps h with the request counter and duration histogram for
// the given handler label.
func (m *metrics) instrument(handler string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"handler": handler}
	return promhttp.InstrumentHandlerDuration(m.duration.MustCurryWith(labels),
		promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(labels), h))
}

// countRejected counts the rejected samples of res by reason.
func (m *metrics) countRejected(res model.PushResult) {
	counted := 0
	for reason, n := range res.ByReason {
		m.rejected.WithLabelValues(string(reason)).Add(float64(n))
		counted += n
	}
	if rest := res.RejectedSamples - counted; rest > 0 { // a Pusher that fills only the total
		m.rejected.WithLabelValues(reasonUnlisted).Add(float64(rest))
	}
}

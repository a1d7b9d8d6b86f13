package collector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// ScrapeMetrics are the vigil_collector_scrape_* metrics, shared by every
// Scraper of a collector: create them once with NewScrapeMetrics. Per-target
// detail is in Scraper.Status, not in labels.
type ScrapeMetrics struct {
	scrapes      *prometheus.CounterVec // {result}
	duration     prometheus.Histogram
	samples      prometheus.Counter
	bodyBytes    prometheus.Counter
	retries      prometheus.Counter
	staleMarkers prometheus.Counter
	duplicates   prometheus.Counter
	histograms   prometheus.Counter
	pushFailures prometheus.Counter
	loops        prometheus.Gauge
}

// NewScrapeMetrics creates the metrics and registers them on reg (nil: not
// registered).
func NewScrapeMetrics(reg prometheus.Registerer) (*ScrapeMetrics, error) {
	m := &ScrapeMetrics{
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_collector_scrape_total",
			Help: "Scrape slots by result: success, timeout, http_error, body_limit, sample_limit, invalid, secret, missed.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_collector_scrape_duration_seconds",
			Help:    "Time to scrape one slot, retries and parsing included, push excluded.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_scrape_samples_total",
			Help: "Scraped samples pushed (synthetic series and staleness markers not counted).",
		}),
		bodyBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_scrape_body_bytes_total",
			Help: "Uncompressed bytes of scrape bodies read.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_scrape_retries_total",
			Help: "Scrape attempts after the first one of a slot.",
		}),
		staleMarkers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_scrape_stale_markers_total",
			Help: "Staleness markers written for vanished series and stopped targets.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_scrape_duplicate_samples_total",
			Help: "Samples dropped because their series appeared twice in one scrape.",
		}),
		histograms: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_scrape_native_histograms_dropped_total",
			Help: "Native histogram samples dropped: the storage has no histogram type.",
		}),
		pushFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_collector_scrape_push_failures_total",
			Help: "Scrape batches the sink refused with an error.",
		}),
		loops: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_collector_scrape_loops",
			Help: "Scrapers running.",
		}),
	}
	for _, r := range allResults {
		m.scrapes.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.scrapes, m.duration, m.samples, m.bodyBytes, m.retries,
			m.staleMarkers, m.duplicates, m.histograms, m.pushFailures, m.loops} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register scrape metrics: %w", err)
			}
		}
	}
	return m, nil
}

package sdk

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns the Writer's metrics for a Prometheus registry:
//
//	vigil_sdk_writer_samples_added_total          samples given to Add
//	vigil_sdk_writer_samples_total{result}        stored, duplicate, rejected, failed
//	vigil_sdk_writer_buffered_samples             added and not yet finished (bounded by MaxBufferedSamples)
//	vigil_sdk_writer_batches_total{result}        ok, failed
//	vigil_sdk_writer_add_blocked_seconds_total    time Add waited for buffer space (backpressure)
//	vigil_sdk_writer_batch_duration_seconds       time to write one batch, retries included
//
// Every metric carries writer="<WriterOptions.Name>", so that the
// collectors of several Writers can share a registry.
func (w *Writer) Collector() prometheus.Collector { return (*writerCollector)(w) }

type writerCollector Writer

// writerDescs are a Writer's metric descriptions, with its name as a
// constant label (so that several Writers' collectors can share a
// registry).
type writerDescs struct {
	added, samples, buffered, batches, blocked *prometheus.Desc
}

func newWriterDescs(name string) writerDescs {
	l := prometheus.Labels{"writer": name}
	return writerDescs{
		added:    prometheus.NewDesc("vigil_sdk_writer_samples_added_total", "Samples given to the Writer's Add.", nil, l),
		samples:  prometheus.NewDesc("vigil_sdk_writer_samples_total", "Samples the Writer finished, by result: stored, duplicate (already stored), rejected (refused by the server one by one), failed (their batch failed after retries).", []string{"result"}, l),
		buffered: prometheus.NewDesc("vigil_sdk_writer_buffered_samples", "Samples added and not yet finished; Add blocks at MaxBufferedSamples.", nil, l),
		batches:  prometheus.NewDesc("vigil_sdk_writer_batches_total", "Batches the Writer finished, by result: ok or failed.", []string{"result"}, l),
		blocked:  prometheus.NewDesc("vigil_sdk_writer_add_blocked_seconds_total", "Time Add waited for buffer space (backpressure).", nil, l),
	}
}

func (c *writerCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.descs
	for _, desc := range []*prometheus.Desc{d.added, d.samples, d.buffered, d.batches, d.blocked} {
		ch <- desc
	}
	c.batchDuration.Describe(ch)
}

func (c *writerCollector) Collect(ch chan<- prometheus.Metric) {
	w := (*Writer)(c)
	s, d := w.Stats(), c.descs
	counter := func(desc *prometheus.Desc, v float64, lvs ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, lvs...)
	}
	counter(d.added, float64(s.Added))
	counter(d.samples, float64(s.Stored), "stored")
	counter(d.samples, float64(s.Duplicates), "duplicate")
	counter(d.samples, float64(s.Rejected), "rejected")
	counter(d.samples, float64(s.Failed), "failed")
	counter(d.batches, float64(s.Batches-s.FailedBatches), "ok")
	counter(d.batches, float64(s.FailedBatches), "failed")
	counter(d.blocked, s.Blocked.Seconds())
	ch <- prometheus.MustNewConstMetric(d.buffered, prometheus.GaugeValue, float64(s.Buffered))
	c.batchDuration.Collect(ch)
}

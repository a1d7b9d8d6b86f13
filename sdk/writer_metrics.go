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

var (
	writerAddedDesc    = prometheus.NewDesc("vigil_sdk_writer_samples_added_total", "Samples given to the Writer's Add.", []string{"writer"}, nil)
	writerSamplesDesc  = prometheus.NewDesc("vigil_sdk_writer_samples_total", "Samples the Writer finished, by result: stored, duplicate (already stored), rejected (refused by the server one by one), failed (their batch failed after retries).", []string{"writer", "result"}, nil)
	writerBufferedDesc = prometheus.NewDesc("vigil_sdk_writer_buffered_samples", "Samples added and not yet finished; Add blocks at MaxBufferedSamples.", []string{"writer"}, nil)
	writerBatchesDesc  = prometheus.NewDesc("vigil_sdk_writer_batches_total", "Batches the Writer finished, by result: ok or failed.", []string{"writer", "result"}, nil)
	writerBlockedDesc  = prometheus.NewDesc("vigil_sdk_writer_add_blocked_seconds_total", "Time Add waited for buffer space (backpressure).", []string{"writer"}, nil)
)

func (c *writerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{writerAddedDesc, writerSamplesDesc, writerBufferedDesc, writerBatchesDesc, writerBlockedDesc} {
		ch <- d
	}
	c.batchDuration.Describe(ch)
}

func (c *writerCollector) Collect(ch chan<- prometheus.Metric) {
	w := (*Writer)(c)
	s := w.Stats()
	name := w.opts.Name
	counter := func(d *prometheus.Desc, v float64, lvs ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{name}, lvs...)...)
	}
	counter(writerAddedDesc, float64(s.Added))
	counter(writerSamplesDesc, float64(s.Stored), "stored")
	counter(writerSamplesDesc, float64(s.Duplicates), "duplicate")
	counter(writerSamplesDesc, float64(s.Rejected), "rejected")
	counter(writerSamplesDesc, float64(s.Failed), "failed")
	counter(writerBatchesDesc, float64(s.Batches-s.FailedBatches), "ok")
	counter(writerBatchesDesc, float64(s.FailedBatches), "failed")
	counter(writerBlockedDesc, s.Blocked.Seconds())
	ch <- prometheus.MustNewConstMetric(writerBufferedDesc, prometheus.GaugeValue, float64(s.Buffered), name)
	c.batchDuration.Collect(ch)
}

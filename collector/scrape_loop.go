package collector

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/vigil-tsdb/vigil/model"
)

// Results of one slot, the values of vigil_collector_scrape_total{result}.
const (
	resultSuccess     = "success"
	resultTimeout     = "timeout"
	resultHTTP        = "http_error"   // connection, TLS or HTTP status error
	resultBodyLimit   = "body_limit"   // ErrBodySizeLimit
	resultSampleLimit = "sample_limit" // ErrSampleLimit
	resultInvalid     = "invalid"      // unparsable body, unknown content type, invalid series
	resultSecret      = "secret"       // a referenced secret could not be read
	resultMissed      = "missed"       // the slot passed before its scrape could begin
)

var allResults = []string{resultSuccess, resultTimeout, resultHTTP, resultBodyLimit, resultSampleLimit, resultInvalid, resultSecret, resultMissed}

// resultOf classifies the error of a scrape, for the metric.
func resultOf(err error) string {
	var se *secretError
	switch {
	case err == nil:
		return resultSuccess
	case errors.Is(err, ErrScrapeTimeout):
		return resultTimeout
	case errors.Is(err, ErrBodySizeLimit):
		return resultBodyLimit
	case errors.Is(err, ErrSampleLimit):
		return resultSampleLimit
	case errors.Is(err, errInvalidExposition):
		return resultInvalid
	case errors.As(err, &se):
		return resultSecret
	}
	return resultHTTP
}

// scrapeSlot scrapes slot k once (with retries until the slot ends), pushes
// the batch and updates status and metrics. If ctx ends during the scrape,
// nothing is pushed and the state is left as it was.
func (s *Scraper) scrapeSlot(ctx context.Context, k int64) {
	slotMs := s.clock.Start(k)
	began := time.Now()
	fr := s.fetcher.fetch(ctx, time.UnixMilli(slotMs+s.clock.Interval))
	if ctx.Err() != nil {
		return
	}
	ts := slotMs
	if s.cfg.UseScrapeTime {
		ts = fr.start.UnixMilli()
	}
	var (
		res scrapeResult
		err = fr.err
	)
	if err == nil {
		res, err = s.series.apply(fr.body, fr.contentType, ts)
	} else {
		res = s.series.failed(ts)
	}
	dur := time.Since(began)
	up := 0.0
	if err == nil {
		up = 1
	}
	batch := s.report.append(res.series, ts, s.cfg.ReportPostRelabeling, [5]float64{
		up, dur.Seconds(), float64(res.scraped), float64(res.postRelabel), float64(res.added),
	})
	s.scraped, s.lastSlot = true, k

	result := resultOf(err)
	m := s.metrics
	m.scrapes.WithLabelValues(result).Inc()
	m.duration.Observe(dur.Seconds())
	m.samples.Add(float64(res.stored))
	m.staleMarkers.Add(float64(res.stale))
	m.duplicates.Add(float64(res.dupes))
	m.histograms.Add(float64(res.histograms))

	_, perr := s.sink.Push(ctx, batch)
	if perr != nil && ctx.Err() == nil {
		m.pushFailures.Inc()
		s.logger.Warn("push of scraped samples failed", "slot", k, "samples", len(batch), "err", perr)
	}

	s.mu.Lock()
	was := s.status.Health
	st := &s.status
	st.LastScrape, st.LastSlot, st.LastSlotTime = began, k, time.UnixMilli(slotMs)
	st.LastDuration, st.Series = dur, res.stored
	st.LastError, st.PushError = errString(err), errString(perr)
	st.Health = HealthUp
	if err != nil {
		st.Health = HealthDown
	}
	s.mu.Unlock()

	switch {
	case err != nil && was != HealthDown:
		s.logger.Warn("scrape failed", "slot", k, "result", result, "attempts", fr.attempts, "err", err)
	case err != nil:
		s.logger.Debug("scrape failed", "slot", k, "result", result, "attempts", fr.attempts, "err", err)
	case was == HealthDown:
		s.logger.Info("scrape succeeded again", "slot", k)
	}
}

// Synthetic series, in the order they are written.
var reportNames = [5]string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added"}

const reportPostRelabeling = 3 // index in reportNames

// reportLabels are the label sets of the synthetic series of one target:
// the target labels and the name (target labels always win, as in
// Prometheus, whatever honor_labels says).
type reportLabels [5]labels.Labels

func newReportLabels(tl labels.Labels) reportLabels {
	var r reportLabels
	for i, name := range reportNames {
		b := labels.NewBuilder(tl)
		b.Set(model.MetricNameLabel, name)
		r[i] = b.Labels()
	}
	return r
}

// append adds the synthetic series with values v (ordered as reportNames)
// at ts to batch.
func (r *reportLabels) append(batch []model.Series, ts int64, postRelabel bool, v [5]float64) []model.Series {
	samples := make([]model.Sample, len(r))
	for i, ls := range r {
		if i == reportPostRelabeling && !postRelabel {
			continue
		}
		samples[i] = model.Sample{T: ts, V: v[i]}
		batch = append(batch, model.Series{Labels: ls, Samples: samples[i : i+1 : i+1]})
	}
	return batch
}

// appendStale adds staleness markers of the synthetic series at ts.
func (r *reportLabels) appendStale(batch []model.Series, ts int64, postRelabel bool) []model.Series {
	stale := math.Float64frombits(value.StaleNaN)
	return r.append(batch, ts, postRelabel, [5]float64{stale, stale, stale, stale, stale})
}

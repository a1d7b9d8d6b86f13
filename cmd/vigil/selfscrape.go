package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/api"
	"github.com/vigil-tsdb/vigil/model"
)

// selfScraper scrapes Vigil's own /metrics over HTTP and writes the samples
// through the distributor, with job="vigil" and the synthetic series
// Prometheus adds (up, scrape_duration_seconds, scrape_samples_scraped), so
// a fresh single node has data to query. The collectors replace it with
// the general scrape path.
type selfScraper struct {
	url      string
	labels   labels.Labels
	interval time.Duration
	pusher   api.Pusher
	client   *http.Client
	logger   *slog.Logger
}

func newSelfScraper(url, instance string, interval time.Duration, p api.Pusher, logger *slog.Logger) *selfScraper {
	return &selfScraper{
		url: url, labels: labels.FromStrings("job", "vigil", "instance", instance),
		interval: interval, pusher: p, logger: logger,
		client: &http.Client{Timeout: interval},
	}
}

func (s *selfScraper) run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.scrapeOnce(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *selfScraper) scrapeOnce(ctx context.Context) {
	start := time.Now()
	ts := start.UnixMilli()
	series, err := s.scrape(ctx, ts)
	up := 1.0
	if err != nil {
		up = 0
		if ctx.Err() == nil {
			s.logger.Warn("self-scrape failed", "url", s.url, "err", err)
		}
	}
	synth := func(name string, v float64) model.Series {
		b := labels.NewBuilder(s.labels)
		b.Set(model.MetricNameLabel, name)
		return model.Series{Labels: b.Labels(), Samples: []model.Sample{{T: ts, V: v}}}
	}
	series = append(series,
		synth("up", up),
		synth("scrape_duration_seconds", time.Since(start).Seconds()),
		synth("scrape_samples_scraped", float64(len(series))),
	)
	res, err := s.pusher.Push(ctx, series)
	if err != nil && ctx.Err() == nil {
		s.logger.Warn("self-scrape write failed", "err", err)
	} else if res.RejectedSamples > 0 {
		s.logger.Debug("self-scrape samples refused", "count", res.RejectedSamples, "first", res.Rejections[0].Message)
	}
}

func (s *selfScraper) scrape(ctx context.Context, ts int64) ([]model.Series, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	return api.ParseText(body, resp.Header.Get("Content-Type"), ts, s.labels)
}

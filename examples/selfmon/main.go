// Command selfmon is a small program that instruments itself with the
// Prometheus client library and writes its own metrics to Vigil through
// the Go SDK (package sdk), instead of being scraped: the pattern for
// batch jobs, short-lived programs and hosts that no collector reaches.
//
//	go run ./examples/selfmon -addr localhost:9095 -interval 10s
//
// Every interval it gathers its registry (Go runtime, process, its own
// counters and histogram, and the SDK Writer's metrics), turns each metric
// into series the way a scrape would (histograms into _bucket{le}, _sum
// and _count; summaries into quantiles, _sum and _count), labels them
// job and instance, adds them to an sdk.Writer and flushes it. Then, in
// Vigil: rate(selfmon_pushes_total[1m]), go_goroutines{job="selfmon"}.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-tsdb/vigil/sdk"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "selfmon:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("selfmon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "localhost:9095", "Vigil's gRPC address (or a comma-separated list of them)")
	interval := fs.Duration("interval", 10*time.Second, "how often to write the metrics")
	duration := fs.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	job := fs.String("job", "selfmon", "job label of the series")
	tokenFile := fs.String("token-file", "", "file holding a bearer token for a Vigil started with -sdk.bearer-token-file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *interval < 100*time.Millisecond {
		return errors.New("-interval must be at least 100ms")
	}
	host, _ := os.Hostname()
	instance := host + ":" + strconv.Itoa(os.Getpid())
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	var opts []sdk.Option
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("-token-file: %w", err)
		}
		opts = append(opts, sdk.WithBearerToken(string(bytes.TrimSpace(b))))
	}
	c, err := sdk.New(*addr, opts...)
	if err != nil {
		return err
	}
	defer c.Close()
	w := c.NewWriter(sdk.WriterOptions{Name: "selfmon", OnRejected: func(r sdk.WriteResult) {
		logger.Warn("Vigil refused samples", "by_reason", r.RejectedByReason, "examples", r.Rejections)
	}})

	// The program's own instrumentation.
	reg := prometheus.NewRegistry()
	pushes := prometheus.NewCounter(prometheus.CounterOpts{Name: "selfmon_pushes_total", Help: "Pushes of this program's metrics that Vigil stored."})
	failures := prometheus.NewCounter(prometheus.CounterOpts{Name: "selfmon_push_failures_total", Help: "Pushes that failed after the SDK's retries."})
	took := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "selfmon_push_duration_seconds", Help: "Time to gather, add and flush one push.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), pushes, failures, took, w.Collector())

	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	logger.Info("writing own metrics to Vigil", "addr", *addr, "interval", *interval, "job", *job, "instance", instance)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		start := time.Now()
		n, err := push(ctx, w, reg, *job, instance, start.UnixMilli())
		took.Observe(time.Since(start).Seconds())
		switch {
		case err == nil:
			pushes.Inc()
			logger.Debug("pushed", "series", n)
		case ctx.Err() != nil:
		default:
			failures.Inc()
			logger.Error("push failed", "err", err)
		}
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return w.Close(cctx)
		case <-tick.C:
		}
	}
}

// push adds every series of the registry at t to w and flushes it.
func push(ctx context.Context, w *sdk.Writer, g prometheus.Gatherer, job, instance string, t int64) (int, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range flatten(mfs) {
		labels := append(s.labels, sdk.Label{Name: "job", Value: job}, sdk.Label{Name: "instance", Value: instance})
		if err := w.Add(ctx, labels, t, s.value); err != nil {
			return n, err
		}
		n++
	}
	return n, w.Flush(ctx)
}

type point struct {
	labels []sdk.Label
	value  float64
}

// flatten turns metric families into series as a scrape of the text
// format would.
func flatten(mfs []*dto.MetricFamily) []point {
	var out []point
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			base := []sdk.Label{}
			for _, l := range m.GetLabel() {
				base = append(base, sdk.Label{Name: l.GetName(), Value: l.GetValue()})
			}
			with := func(suffix string, v float64, extra ...sdk.Label) {
				ls := append(append([]sdk.Label{{Name: "__name__", Value: name + suffix}}, base...), extra...)
				out = append(out, point{ls, v})
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				with("", m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				with("", m.GetGauge().GetValue())
			case dto.MetricType_UNTYPED:
				with("", m.GetUntyped().GetValue())
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, b := range h.GetBucket() {
					inf = math.IsInf(b.GetUpperBound(), 1)
					with("_bucket", float64(b.GetCumulativeCount()), sdk.Label{Name: "le", Value: formatFloat(b.GetUpperBound())})
				}
				if !inf {
					with("_bucket", float64(h.GetSampleCount()), sdk.Label{Name: "le", Value: "+Inf"})
				}
				with("_sum", h.GetSampleSum())
				with("_count", float64(h.GetSampleCount()))
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.GetQuantile() {
					// A quantile with no observations is NaN, which Vigil
					// refuses by default (-limits.reject-nan-inf): left out.
					if !math.IsNaN(q.GetValue()) {
						with("", q.GetValue(), sdk.Label{Name: "quantile", Value: formatFloat(q.GetQuantile())})
					}
				}
				with("_sum", s.GetSampleSum())
				with("_count", float64(s.GetSampleCount()))
			}
		}
	}
	return out
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

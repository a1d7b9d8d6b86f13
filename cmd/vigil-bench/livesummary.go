package main

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/vigil-tsdb/vigil/loadgen"
)

// liveSummary is summary.json: the machine-readable result of a live run.
// README.md ("Capacity tester") documents every field.
type liveSummary struct {
	Mode            string             `json:"mode"`
	Passed          bool               `json:"passed"`
	Failures        []string           `json:"failures"`
	Started         time.Time          `json:"started"`
	DurationSeconds float64            `json:"duration_seconds"`
	Config          liveSummaryConfig  `json:"config"`
	Push            *pushSummary       `json:"push,omitempty"`
	Scrape          *scrapeSummary     `json:"scrape,omitempty"`
	Query           *querySummary      `json:"query,omitempty"`
	Server          serverSummary      `json:"server"`
	Verification    *verifySummary     `json:"verification,omitempty"`
	Machine         liveSummaryMachine `json:"machine"`
	Timeline        []liveSummaryPoint `json:"timeline"`
	Files           []string           `json:"files"`
	// PlanInput carries the figures `vigil-bench plan --from` reads
	// (docs/capacity.md); nil when the run measured none of them.
	PlanInput *livePlanInput `json:"plan_input,omitempty"`
	// PlanInputNotes says which plan figures were left out, and why.
	PlanInputNotes []string `json:"plan_input_notes,omitempty"`
}

// Conditions for plan_input (README.md, docs/capacity.md): a figure per
// sample or per series is only as good as the load behind it.
const (
	// planMaxStoredGap is how far stored samples may be from received
	// ones (a share of received): further apart, the node is a cluster
	// front, or it dropped or was still catching up.
	planMaxStoredGap = 0.05
	// planMinStoredPerSecond is the least ingest rate: below it Vigil's
	// fixed work (self-scrape, flush timers, GC) dominates its CPU.
	planMinStoredPerSecond = 1000
)

// livePlanInput is the part of plan's input format (plan_input.go) that a
// live run against a single node measures.
type livePlanInput struct {
	Version                   int      `json:"version"`
	Source                    string   `json:"source"`
	SamplesPerSecondPerCore   *float64 `json:"samples_per_second_per_core,omitempty"`
	RF                        *int     `json:"rf,omitempty"`
	RSSBytesPerSeries         *float64 `json:"rss_bytes_per_series,omitempty"`
	RemoteWriteBytesPerSample *float64 `json:"remote_write_bytes_per_sample,omitempty"`
}

type liveSummaryConfig struct {
	URL               string  `json:"url"`
	GRPC              string  `json:"grpc,omitempty"`
	DurationSeconds   float64 `json:"duration_seconds"`
	Seed              int64   `json:"seed"`
	Protocol          string  `json:"protocol,omitempty"`
	Series            int     `json:"series,omitempty"`
	IntervalSeconds   float64 `json:"interval_seconds,omitempty"`
	Concurrency       int     `json:"concurrency,omitempty"`
	BatchSize         int     `json:"batch_size,omitempty"`
	ChurnPerMinute    float64 `json:"churn_per_minute"`
	OOOFraction       float64 `json:"ooo_fraction"`
	Exporters         int     `json:"exporters,omitempty"`
	SeriesPerExporter int     `json:"series_per_exporter,omitempty"`
	ScrapeInterval    float64 `json:"scrape_interval_seconds,omitempty"`
	QPS               float64 `json:"qps,omitempty"`
	VerifyFraction    float64 `json:"verify_fraction"`
	SampleEvery       float64 `json:"sample_every_seconds"`
}

type pushSummary struct {
	Bytes          int64    `json:"remote_write_bytes"`
	Sent           int64    `json:"sent_samples"`
	Acked          int64    `json:"acked_samples"`
	Failed         int64    `json:"failed_samples"`
	Rejected       int64    `json:"rejected_samples"`
	Late           int64    `json:"late_samples"`
	Churned        int64    `json:"churned_series"`
	Requests       int64    `json:"requests"`
	Retries        int64    `json:"retries"`
	Errors         int64    `json:"errors"`
	BehindGroups   int64    `json:"behind_groups"`
	NotSent        int64    `json:"not_sent_samples"`
	LateDropped    int64    `json:"late_dropped_samples"`
	AckedPerSecond float64  `json:"acked_per_second"`
	ErrorMessages  []string `json:"error_messages"`
}

type scrapeSummary struct {
	Exporters        int     `json:"exporters"`
	Series           int64   `json:"series"`
	SizeMin          int     `json:"size_min"`
	SizeMedian       int     `json:"size_median"`
	SizeMax          int     `json:"size_max"`
	Scrapes          int64   `json:"scrapes"`
	Samples          int64   `json:"samples"`
	SamplesPerSecond float64 `json:"samples_per_second"`
	Refused          int64   `json:"refused_scrapes"`
	UnregisterError  string  `json:"unregister_error,omitempty"`
	// Verification is the check that Vigil holds the exporters' series
	// and saw every exporter up; nil when it was not made.
	Verification *loadgen.PullVerifyResult `json:"verification,omitempty"`
}

type latencySummary struct {
	Count  int     `json:"count"`
	Errors int     `json:"errors"`
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
}

type querySummary struct {
	Sent          int64                     `json:"sent"`
	Finished      int64                     `json:"finished"`
	Errors        int64                     `json:"errors"`
	Skipped       int64                     `json:"skipped"`
	AchievedQPS   float64                   `json:"achieved_qps"`
	All           latencySummary            `json:"all"`
	Kinds         map[string]latencySummary `json:"kinds"`
	ErrorMessages []string                  `json:"error_messages"`
}

type serverSummary struct {
	MetricsReads         int     `json:"metrics_reads"`
	MetricsReadErrors    int     `json:"metrics_read_errors"`
	StoredSamples        float64 `json:"stored_samples"`
	StoredPerSecond      float64 `json:"stored_per_second"`
	ReceivedSamples      float64 `json:"received_samples"`
	RSSBytesMax          float64 `json:"rss_bytes_max"`
	RSSBytesLast         float64 `json:"rss_bytes_last"`
	CPUSeconds           float64 `json:"cpu_seconds"`
	CPUCoresAvg          float64 `json:"cpu_cores_avg"`
	CPUCoresMax          float64 `json:"cpu_cores_max"`
	CPUSecondsPerMillion float64 `json:"cpu_seconds_per_million_samples"`
	// SeriesCreated is the growth of vigil_storage_series_created_total
	// over the run; nil when /metrics lacks it.
	SeriesCreated *float64 `json:"series_created,omitempty"`
}

type verifySummary struct {
	loadgen.VerifyResult
	RecordedSamples int64   `json:"recorded_samples"`
	DurationSeconds float64 `json:"duration_seconds"`
}

type liveSummaryMachine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// liveSummaryPoint is one window of the timeline: rates over the window
// that ends at elapsed_seconds.
type liveSummaryPoint struct {
	Elapsed         float64 `json:"elapsed_seconds"`
	PushAckedPerSec float64 `json:"push_acked_per_second"`
	ScrapedPerSec   float64 `json:"scraped_per_second"`
	StoredPerSec    float64 `json:"server_stored_per_second"`
	RSSBytes        float64 `json:"server_rss_bytes"`
	CPUCores        float64 `json:"server_cpu_cores"`
	QueryP50ms      float64 `json:"query_p50_ms"`
	QueryP90ms      float64 `json:"query_p90_ms"`
	QueryP99ms      float64 `json:"query_p99_ms"`
	Queries         int     `json:"queries"`
	Server          bool    `json:"server"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latencies(evs []loadgen.QueryEvent) latencySummary {
	var ds []time.Duration
	s := latencySummary{Count: len(evs)}
	for _, e := range evs {
		if e.Err {
			s.Errors++
			continue
		}
		ds = append(ds, e.Latency)
	}
	s.P50ms, s.P90ms, s.P99ms = ms(loadgen.Percentile(ds, 0.5)), ms(loadgen.Percentile(ds, 0.9)), ms(loadgen.Percentile(ds, 0.99))
	s.MaxMs = ms(loadgen.Percentile(ds, 1))
	return s
}

// summarize turns a run into its summary; runErr is the run's own error.
func summarize(res *loadgen.LiveResult, runErr error) *liveSummary {
	cfg := res.Config
	s := &liveSummary{
		Mode: cfg.Mode, Failures: []string{}, Started: res.Started.UTC(), DurationSeconds: res.Elapsed.Seconds(),
		Config: liveSummaryConfig{URL: cfg.URL, DurationSeconds: cfg.Duration.Seconds(), Seed: cfg.Seed,
			ChurnPerMinute: cfg.Push.Churn, OOOFraction: cfg.Push.OOOFraction, VerifyFraction: cfg.VerifyFraction, SampleEvery: cfg.SampleEvery.Seconds()},
		Machine: liveSummaryMachine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH},
	}
	secs := max(res.Elapsed.Seconds(), 1e-9)
	if p := res.Push; p != nil {
		s.Config.Protocol, s.Config.Series, s.Config.IntervalSeconds = cfg.Push.Protocol, cfg.Push.Series, cfg.Push.Interval.Seconds()
		s.Config.Concurrency, s.Config.BatchSize = cfg.Push.Concurrency, cfg.Push.BatchSize
		if cfg.Push.Protocol == loadgen.ProtocolSDK {
			s.Config.GRPC = cfg.GRPCAddr()
		}
		s.Push = &pushSummary{Sent: p.Sent.Load(), Acked: p.Acked.Load(), Failed: p.Failed.Load(), Rejected: p.Rejected.Load(),
			Late: p.Late.Load(), Churned: p.Churned.Load(), Requests: p.Requests.Load(), Retries: p.Retries.Load(),
			Errors: p.Errors.Load(), Bytes: p.Bytes.Load(), BehindGroups: p.Behind.Load(), NotSent: p.NotSent.Load(), LateDropped: p.LateDropped.Load(),
			AckedPerSecond: float64(p.Acked.Load()) / secs, ErrorMessages: append([]string{}, p.ErrorMessages()...)}
	}
	if sc := res.Scrape; sc != nil {
		s.Config.GRPC = cfg.GRPCAddr() // the targets' leases
		s.Config.Exporters, s.Config.SeriesPerExporter, s.Config.ScrapeInterval = cfg.Scrape.Exporters, cfg.Scrape.SeriesPerExporter, cfg.Scrape.Interval.Seconds()
		sizes := append([]int(nil), sc.Sizes...)
		sort.Ints(sizes)
		s.Scrape = &scrapeSummary{Exporters: sc.Exporters, Series: sc.Series, Scrapes: sc.Scrapes.Load(), Samples: sc.Samples.Load(),
			SamplesPerSecond: float64(sc.Samples.Load()) / secs, Refused: sc.Refused.Load()}
		if len(sizes) > 0 {
			s.Scrape.SizeMin, s.Scrape.SizeMedian, s.Scrape.SizeMax = sizes[0], sizes[len(sizes)/2], sizes[len(sizes)-1]
		}
		if res.ScrapeStop != nil {
			s.Scrape.UnregisterError = res.ScrapeStop.Error()
		}
		if pv := res.PullVerify; pv != nil {
			c := *pv
			c.Down = append([]string{}, pv.Down...)
			s.Scrape.Verification = &c
		}
	}
	if q := res.Query; q != nil {
		s.Config.QPS = cfg.Query.QPS
		evs := q.Events()
		byKind := map[string][]loadgen.QueryEvent{}
		for _, e := range evs {
			byKind[e.Kind] = append(byKind[e.Kind], e)
		}
		s.Query = &querySummary{Sent: q.Sent.Load(), Finished: q.Done.Load(), Errors: q.Errors.Load(), Skipped: q.Skipped.Load(),
			AchievedQPS: float64(q.Done.Load()) / secs, All: latencies(evs), Kinds: map[string]latencySummary{}, ErrorMessages: append([]string{}, q.ErrorMessages()...)}
		for k, e := range byKind {
			s.Query.Kinds[k] = latencies(e)
		}
	}
	s.Server = serverFigures(res)
	if v := res.Verify; v != nil {
		vr := *v
		vr.Problems = append([]string{}, v.Problems...)
		s.Verification = &verifySummary{VerifyResult: vr, RecordedSamples: res.Recorded, DurationSeconds: res.VerifyDuration.Seconds()}
	}
	// One verdict: the same function decides the exit status.
	s.Failures = res.Failures(runErr)
	s.Passed = res.Passed(runErr)
	s.Timeline = timeline(res)
	s.PlanInput, s.PlanInputNotes = planInputOf(s, res)
	return s
}

// planInputOf derives plan's figures from a push or mixed run whose
// /metrics came from one process that both receives and stores (a single
// node): CPU per sample (queries and scrapes included, so conservative),
// the RSS grown during the run over the series created in it, and
// remote-write bytes per sample. It returns nil, with the reason in the
// notes, for a run that is not such a measurement: no push, a cluster
// front (stores nothing), stored samples more than planMaxStoredGap from
// received ones, or under planMinStoredPerSecond. RSS per series needs a
// run of at least the out-of-order window (the head holds that much of
// every series at steady state, docs/capacity.md) and the series counter.
func planInputOf(s *liveSummary, res *loadgen.LiveResult) (*livePlanInput, []string) {
	sv := s.Server
	switch {
	case s.Push == nil:
		return nil, []string{"no plan_input: only a push or mixed run measures ingest"}
	case sv.StoredSamples <= 0 || sv.ReceivedSamples <= 0:
		return nil, []string{"no plan_input: Vigil's /metrics shows no samples both received and stored (a cluster front, or nothing arrived)"}
	case math.Abs(sv.StoredSamples-sv.ReceivedSamples) > planMaxStoredGap*sv.ReceivedSamples:
		return nil, []string{fmt.Sprintf("no plan_input: %.0f samples stored against %.0f received, more than %.0f %% apart", sv.StoredSamples, sv.ReceivedSamples, 100*planMaxStoredGap)}
	case sv.StoredPerSecond < planMinStoredPerSecond:
		return nil, []string{fmt.Sprintf("no plan_input: %.0f samples/s stored, under %d/s, where Vigil's fixed work dominates", sv.StoredPerSecond, planMinStoredPerSecond)}
	}
	var notes []string
	pi := &livePlanInput{Version: 1, Source: fmt.Sprintf("vigil-bench %s against the single node at %s, %s, %.0f s, %d CPUs",
		s.Mode, s.Config.URL, s.Started.Format("2006-01-02 15:04 MST"), s.DurationSeconds, s.Machine.CPUs)}
	if sv.CPUSecondsPerMillion > 0 {
		v, rf := 1e6/sv.CPUSecondsPerMillion, 1
		pi.SamplesPerSecondPerCore, pi.RF = &v, &rf
	}
	steady := res.Config.Push.OOOWindow
	var idle float64
	for _, p := range res.Points {
		if p.Server {
			idle = p.ServerRSS
			break
		}
	}
	switch grown := sv.RSSBytesMax - idle; {
	case sv.SeriesCreated == nil:
		notes = append(notes, "no rss_bytes_per_series: Vigil's /metrics lacks "+loadgen.MetricSeriesCreated)
	case res.Elapsed < steady:
		notes = append(notes, fmt.Sprintf("no rss_bytes_per_series: the run lasted %.0f s, less than the out-of-order window %v the head must fill to reach steady state", res.Elapsed.Seconds(), steady))
	case *sv.SeriesCreated <= 0 || grown <= 0:
		notes = append(notes, "no rss_bytes_per_series: no series created or no RSS growth during the run")
	default:
		v := grown / *sv.SeriesCreated
		pi.RSSBytesPerSeries = &v
	}
	if s.Push.Bytes > 0 && s.Push.Acked > 0 {
		v := float64(s.Push.Bytes) / float64(s.Push.Acked)
		pi.RemoteWriteBytesPerSample = &v
	}
	if pi.SamplesPerSecondPerCore == nil && pi.RSSBytesPerSeries == nil && pi.RemoteWriteBytesPerSample == nil {
		return nil, append(notes, "no plan_input: no figure measured")
	}
	return pi, notes
}

func serverFigures(res *loadgen.LiveResult) serverSummary {
	var out serverSummary
	out.MetricsReadErrors = res.MetricsErrs
	var first, last *loadgen.Point
	for i := range res.Points {
		p := &res.Points[i]
		if !p.Server {
			continue
		}
		out.MetricsReads++
		if first == nil {
			first = p
		}
		last = p
		out.RSSBytesMax = math.Max(out.RSSBytesMax, p.ServerRSS)
	}
	if first == nil || last == first {
		return out
	}
	dt := (last.Elapsed - first.Elapsed).Seconds()
	out.StoredSamples = last.ServerStored - first.ServerStored
	out.ReceivedSamples = last.ServerReceived - first.ServerReceived
	out.StoredPerSecond = out.StoredSamples / dt
	out.RSSBytesLast = last.ServerRSS
	out.CPUSeconds = last.ServerCPU - first.ServerCPU
	if first.HasSeries && last.HasSeries {
		v := last.ServerSeries - first.ServerSeries
		out.SeriesCreated = &v
	}
	out.CPUCoresAvg = out.CPUSeconds / dt
	if out.StoredSamples > 0 {
		out.CPUSecondsPerMillion = out.CPUSeconds / (out.StoredSamples / 1e6)
	}
	for _, pt := range timeline(res) {
		out.CPUCoresMax = math.Max(out.CPUCoresMax, pt.CPUCores)
	}
	return out
}

// timeline turns the cumulative points into per-window rates and the
// query latency percentiles of each window.
func timeline(res *loadgen.LiveResult) []liveSummaryPoint {
	var evs []loadgen.QueryEvent
	if res.Query != nil {
		evs = res.Query.Events()
		sort.Slice(evs, func(a, b int) bool { return evs[a].At.Before(evs[b].At) })
	}
	var out []liveSummaryPoint
	j := 0
	for i := 1; i < len(res.Points); i++ {
		a, b := res.Points[i-1], res.Points[i]
		dt := (b.Elapsed - a.Elapsed).Seconds()
		if dt <= 0 {
			continue
		}
		pt := liveSummaryPoint{Elapsed: b.Elapsed.Seconds(),
			PushAckedPerSec: float64(b.PushAcked-a.PushAcked) / dt,
			ScrapedPerSec:   float64(b.ScrapeSamples-a.ScrapeSamples) / dt,
			Server:          a.Server && b.Server,
		}
		if pt.Server {
			pt.StoredPerSec = math.Max(b.ServerStored-a.ServerStored, 0) / dt
			pt.CPUCores = math.Max(b.ServerCPU-a.ServerCPU, 0) / dt
			pt.RSSBytes = b.ServerRSS
		}
		end := res.Started.Add(b.Elapsed)
		var ds []time.Duration
		for ; j < len(evs) && !evs[j].At.After(end); j++ {
			if !evs[j].Err {
				ds = append(ds, evs[j].Latency)
			}
		}
		pt.Queries = len(ds)
		pt.QueryP50ms, pt.QueryP90ms, pt.QueryP99ms = ms(loadgen.Percentile(ds, 0.5)), ms(loadgen.Percentile(ds, 0.9)), ms(loadgen.Percentile(ds, 0.99))
		out = append(out, pt)
	}
	return out
}

// headline is the one-line verdict.
func (s *liveSummary) headline() string {
	var parts []string
	if s.Passed {
		parts = append(parts, "PASS")
	} else {
		parts = append(parts, "FAIL ("+strings.Join(s.Failures, "; ")+")")
	}
	if s.Push != nil {
		parts = append(parts, fmt.Sprintf("push %.0f samples/s acknowledged", s.Push.AckedPerSecond))
	}
	if s.Scrape != nil {
		parts = append(parts, fmt.Sprintf("scrape %.0f samples/s from %d exporters", s.Scrape.SamplesPerSecond, s.Scrape.Exporters))
	}
	if s.Query != nil {
		parts = append(parts, fmt.Sprintf("query %.1f/s, p99 %.1f ms", s.Query.AchievedQPS, s.Query.All.P99ms))
	}
	if v := s.Verification; v != nil {
		parts = append(parts, fmt.Sprintf("verified %d/%d samples of %d series", v.Found, v.Samples, v.Series))
	}
	return strings.Join(parts, ", ")
}

package main

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/loadgen"
)

// syntheticRun is a 20 s push-and-query run with three /metrics readings
// 10 s apart and known query latencies.
func syntheticRun() *loadgen.LiveResult {
	started := time.Date(2026, 12, 7, 2, 0, 0, 0, time.UTC)
	cfg := loadgen.DefaultLiveConfig()
	cfg.Mode, cfg.URL, cfg.Duration, cfg.Push.OOOWindow = loadgen.ModeMixed, "http://127.0.0.1:9009", 20*time.Second, 10*time.Second
	res := &loadgen.LiveResult{Config: cfg, Started: started, Elapsed: 20 * time.Second,
		Push: &loadgen.LivePushStats{}, Query: &loadgen.QueryStats{}, Verify: &loadgen.VerifyResult{Series: 1, Samples: 10, Found: 10}}
	res.Push.Sent.Store(100_000)
	res.Push.Acked.Store(100_000)
	res.Push.Bytes.Store(1_500_000)
	res.Points = []loadgen.Point{
		{Elapsed: 0, Server: true, ServerRSS: 100e6, ServerCPU: 10, ServerSeries: 50, HasSeries: true},
		{Elapsed: 10 * time.Second, PushAcked: 50_000, Server: true, ServerStored: 50_000, ServerReceived: 50_000, ServerRSS: 150e6, ServerCPU: 12, ServerSeries: 1050, HasSeries: true},
		{Elapsed: 20 * time.Second, PushAcked: 100_000, Server: true, ServerStored: 100_000, ServerReceived: 101_000, ServerRSS: 140e6, ServerCPU: 15, ServerSeries: 2050, HasSeries: true},
	}
	// Window 1: 1..100 ms; window 2: 7 ms and an error.
	for i := 1; i <= 100; i++ {
		res.Query.AddEvent(loadgen.QueryEvent{At: started.Add(time.Second), Kind: "rate", Latency: time.Duration(i) * time.Millisecond})
	}
	res.Query.AddEvent(loadgen.QueryEvent{At: started.Add(15 * time.Second), Kind: "topk", Latency: 7 * time.Millisecond})
	res.Query.AddEvent(loadgen.QueryEvent{At: started.Add(15 * time.Second), Kind: "topk", Latency: time.Second, Err: true})
	return res
}

// TestSummaryArithmetic: the summary's rates, cores, percentiles and
// plan figures from synthetic points.
func TestSummaryArithmetic(t *testing.T) {
	s := summarize(syntheticRun(), nil)
	if s.PlanInput == nil || len(s.Timeline) != 2 {
		t.Fatalf("plan_input %+v, %d timeline points, notes %q", s.PlanInput, len(s.Timeline), s.PlanInputNotes)
	}
	deref := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{name: "push acked per second", got: s.Push.AckedPerSecond, want: 5000},
		{name: "stored samples", got: s.Server.StoredSamples, want: 100_000},
		{name: "stored per second", got: s.Server.StoredPerSecond, want: 5000},
		{name: "received samples", got: s.Server.ReceivedSamples, want: 101_000},
		{name: "cpu seconds", got: s.Server.CPUSeconds, want: 5},
		{name: "cpu cores average", got: s.Server.CPUCoresAvg, want: 0.25},
		{name: "cpu cores max (second window)", got: s.Server.CPUCoresMax, want: 0.3},
		{name: "cpu seconds per million", got: s.Server.CPUSecondsPerMillion, want: 50},
		{name: "rss max", got: s.Server.RSSBytesMax, want: 150e6},
		{name: "rss last", got: s.Server.RSSBytesLast, want: 140e6},
		{name: "series created", got: deref(s.Server.SeriesCreated), want: 2000},
		{name: "timeline acked rate", got: s.Timeline[0].PushAckedPerSec, want: 5000},
		{name: "timeline cores, window 1", got: s.Timeline[0].CPUCores, want: 0.2},
		{name: "timeline p99, window 1", got: s.Timeline[0].QueryP99ms, want: 99},
		{name: "timeline p50, window 1", got: s.Timeline[0].QueryP50ms, want: 50},
		{name: "timeline p99, window 2 (errors left out)", got: s.Timeline[1].QueryP99ms, want: 7},
		{name: "query p99, all", got: s.Query.All.P99ms, want: 99},
		{name: "query errors, topk", got: float64(s.Query.Kinds["topk"].Errors), want: 1},
		{name: "plan samples per second per core", got: deref(s.PlanInput.SamplesPerSecondPerCore), want: 20_000},
		{name: "plan rss per series: growth over series created", got: deref(s.PlanInput.RSSBytesPerSeries), want: 50e6 / 2000},
		{name: "plan remote-write bytes per sample", got: deref(s.PlanInput.RemoteWriteBytesPerSample), want: 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if math.Abs(tc.got-tc.want) > 1e-9*math.Max(1, math.Abs(tc.want)) {
				t.Errorf("%v, want %v", tc.got, tc.want)
			}
		})
	}
}

// TestPlanInputConditions: plan_input only for a push run that stored
// what it received at a real rate; RSS per series only after the head's
// steady state and with the series counter.
func TestPlanInputConditions(t *testing.T) {
	tests := []struct {
		name   string
		change func(*loadgen.LiveResult)
		none   bool   // no plan_input at all
		noRSS  bool   // plan_input without rss_bytes_per_series
		note   string // in the notes
	}{
		{name: "measured", change: func(*loadgen.LiveResult) {}},
		{name: "query only", change: func(r *loadgen.LiveResult) { r.Push, r.Verify = nil, nil }, none: true, note: "only a push or mixed run"},
		{name: "stored far from received", change: func(r *loadgen.LiveResult) { r.Points[2].ServerReceived = 120_000 }, none: true, note: "more than 5 % apart"},
		{name: "a cluster front", change: func(r *loadgen.LiveResult) {
			for i := range r.Points {
				r.Points[i].ServerStored = 0
			}
		}, none: true, note: "no samples both received and stored"},
		{name: "too light a load", change: func(r *loadgen.LiveResult) {
			r.Points[1].ServerStored, r.Points[1].ServerReceived = 5_000, 5_000
			r.Points[2].ServerStored, r.Points[2].ServerReceived = 10_000, 10_000
		}, none: true, note: "under 1000/s"},
		{name: "shorter than the out-of-order window", change: func(r *loadgen.LiveResult) { r.Config.Push.OOOWindow = time.Hour }, noRSS: true, note: "steady state"},
		{name: "no series counter", change: func(r *loadgen.LiveResult) {
			for i := range r.Points {
				r.Points[i].HasSeries = false
			}
		}, noRSS: true, note: "lacks vigil_storage_series_created_total"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := syntheticRun()
			tc.change(res)
			s := summarize(res, nil)
			notes := strings.Join(s.PlanInputNotes, "; ")
			switch {
			case tc.none != (s.PlanInput == nil):
				t.Fatalf("plan_input %+v, want none %v (notes %q)", s.PlanInput, tc.none, notes)
			case !tc.none && tc.noRSS != (s.PlanInput.RSSBytesPerSeries == nil):
				t.Fatalf("rss_bytes_per_series %v, want none %v (notes %q)", s.PlanInput.RSSBytesPerSeries, tc.noRSS, notes)
			case !strings.Contains(notes, tc.note):
				t.Fatalf("notes %q, want %q", notes, tc.note)
			}
		})
	}
}

// TestOneVerdict: the summary's verdict is LiveResult's, the exit status
// follows it, and both include the scrape and the run error.
func TestOneVerdict(t *testing.T) {
	tests := []struct {
		name   string
		change func(*loadgen.LiveResult)
		runErr error
		pass   bool
	}{
		{name: "clean", change: func(*loadgen.LiveResult) {}, pass: true},
		{name: "no exporter scraped", change: func(r *loadgen.LiveResult) { r.Scrape = &loadgen.ScrapeStats{Exporters: 3} }},
		{name: "run error", change: func(*loadgen.LiveResult) {}, runErr: errors.New("vigil unreachable")},
		{name: "nothing verified", change: func(r *loadgen.LiveResult) { r.Verify = &loadgen.VerifyResult{} }},
		{name: "query ticks skipped", change: func(r *loadgen.LiveResult) { r.Query.Skipped.Store(2) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := syntheticRun()
			res.Query.Errors.Store(0) // the synthetic run's one failed query aside
			tc.change(res)
			s := summarize(res, tc.runErr)
			if s.Passed != tc.pass || res.Passed(tc.runErr) != tc.pass || !reflect.DeepEqual(s.Failures, res.Failures(tc.runErr)) {
				t.Fatalf("summary passed %v (%q), result passed %v (%q), want %v",
					s.Passed, s.Failures, res.Passed(tc.runErr), res.Failures(tc.runErr), tc.pass)
			}
		})
	}
}

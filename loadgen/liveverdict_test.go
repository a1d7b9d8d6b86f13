package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLiveFailures: the one verdict (Failures, Passed) on synthetic
// results, each case failing for one reason only.
func TestLiveFailures(t *testing.T) {
	verified := &VerifyResult{Series: 3, Samples: 30, Found: 30}
	push := func(f func(*LivePushStats)) *LivePushStats {
		p := &LivePushStats{}
		p.Sent.Store(100)
		p.Acked.Store(100)
		if f != nil {
			f(p)
		}
		return p
	}
	scraped := func() *ScrapeStats {
		s := &ScrapeStats{Exporters: 2, Series: 20}
		s.Scrapes.Store(10)
		return s
	}
	query := func(errs, skipped int64) *QueryStats {
		q := &QueryStats{}
		q.Sent.Store(10)
		q.Done.Store(10)
		q.Errors.Store(errs)
		q.Skipped.Store(skipped)
		return q
	}
	tests := []struct {
		name   string
		res    LiveResult
		runErr error
		want   string // a failure containing it; "" for a pass
	}{
		{name: "push verified", res: LiveResult{Push: push(nil), Verify: verified}},
		{name: "push verified nothing", res: LiveResult{Push: push(nil), Verify: &VerifyResult{}}, want: "no acknowledged sample was checked"},
		{name: "push without verification", res: LiveResult{Config: LiveConfig{NoVerify: true}, Push: push(nil)}, want: "UNVERIFIED"},
		{name: "push interrupted before verification", res: LiveResult{Push: push(nil)}, want: "not run"},
		{name: "loss", res: LiveResult{Push: push(nil), Verify: &VerifyResult{Series: 1, Samples: 3, Found: 2, Missing: 1}}, want: "1 missing"},
		{name: "failed requests", res: LiveResult{Push: push(func(p *LivePushStats) { p.Failed.Store(5) }), Verify: verified}, want: "5 samples not acknowledged"},
		{name: "refused samples", res: LiveResult{Push: push(func(p *LivePushStats) { p.Rejected.Store(2) }), Verify: verified}, want: "refused 2"},
		{name: "push behind", res: LiveResult{Push: push(func(p *LivePushStats) { p.Behind.Store(1) }), Verify: verified}, want: "did not sustain"},
		{name: "samples not sent", res: LiveResult{Push: push(func(p *LivePushStats) { p.NotSent.Store(7) }), Verify: verified}, want: "7 samples due in the run not sent"},
		{name: "scraped", res: LiveResult{Scrape: scraped(), PullVerify: &PullVerifyResult{Exporters: 2, SeriesServed: 20, SeriesStored: 20, AlwaysUp: 2}}},
		{name: "no exporter scraped", res: LiveResult{Scrape: &ScrapeStats{Exporters: 2}}, want: "no exporter was scraped"},
		{name: "unregistration failed", res: LiveResult{Scrape: scraped(), ScrapeStop: errors.New("HTTP 500")}, want: "HTTP 500"},
		{name: "pull series missing", res: LiveResult{Scrape: scraped(), PullVerify: &PullVerifyResult{Exporters: 2, SeriesServed: 20, SeriesStored: 19, AlwaysUp: 2}}, want: "19 of the 20 series"},
		{name: "exporter down", res: LiveResult{Scrape: scraped(), PullVerify: &PullVerifyResult{Exporters: 2, SeriesServed: 20, SeriesStored: 20, AlwaysUp: 1}}, want: "1 of 2 exporters up"},
		{name: "queries", res: LiveResult{Query: query(0, 0)}},
		{name: "query errors", res: LiveResult{Query: query(3, 0)}, want: "3 queries failed"},
		{name: "query ticks skipped", res: LiveResult{Query: query(0, 4)}, want: "4 ticks skipped"},
		{name: "run error", res: LiveResult{Query: query(0, 0)}, runErr: errors.New("vigil went away"), want: "run: vigil went away"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.res.Failures(tc.runErr)
			if tc.res.Passed(tc.runErr) != (len(got) == 0) {
				t.Fatalf("Passed %v disagrees with failures %q", tc.res.Passed(tc.runErr), got)
			}
			if tc.want == "" {
				if len(got) > 0 {
					t.Fatalf("failures %q, want a pass", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], tc.want) {
				t.Fatalf("failures %q, want one containing %q", got, tc.want)
			}
		})
	}
}

// fakeVigil answers /metrics and delays every remote write by delay.
type fakeVigil struct {
	delay  atomic.Int64 // nanoseconds
	writes atomic.Int64
}

func (f *fakeVigil) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/metrics":
		fmt.Fprintln(w, "process_resident_memory_bytes 1e+06")
	case "/api/v1/write":
		time.Sleep(time.Duration(f.delay.Load()))
		f.writes.Add(1)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// TestLiveSlowPushNotFailed: a request in flight at the end of the run
// that succeeds late is acknowledged, not failed; the groups whose turn
// came after the deadline are not sent and counted as not sent, and the
// run did not sustain the load.
func TestLiveSlowPushNotFailed(t *testing.T) {
	f := &fakeVigil{}
	f.delay.Store(int64(3 * time.Second))
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := DefaultLiveConfig()
	cfg.Mode, cfg.URL, cfg.Duration, cfg.NoVerify, cfg.SampleEvery = ModePush, srv.URL, time.Second, true, 200*time.Millisecond
	cfg.Push.Series, cfg.Push.Interval, cfg.Push.Concurrency, cfg.Push.MaxRetries = 10, 500*time.Millisecond, 1, 0
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := RunLive(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Push
	if p.Acked.Load() != 10 || p.Failed.Load() != 0 || p.NotSent.Load() != 10 || p.Sent.Load() != 10 {
		t.Errorf("acked %d failed %d not sent %d sent %d; want 10, 0, 10, 10", p.Acked.Load(), p.Failed.Load(), p.NotSent.Load(), p.Sent.Load())
	}
	fs := res.Failures(nil)
	if res.Passed(nil) || !strings.Contains(strings.Join(fs, "; "), "did not sustain the load") {
		t.Errorf("failures %q", fs)
	}
}

// TestLiveDrainCountsDropped: late samples still held when the drain's
// time runs out are counted as dropped and not sent.
func TestLiveDrainCountsDropped(t *testing.T) {
	f := &fakeVigil{}
	f.delay.Store(int64(time.Second)) // beyond the request timeout
	srv := httptest.NewServer(f)
	defer srv.Close()
	cfg := DefaultLiveConfig()
	cfg.Mode, cfg.URL, cfg.Duration = ModePush, srv.URL, time.Second
	cfg.Push.Series, cfg.Push.MaxRetries, cfg.Push.RequestTimeout = 10, 0, 300*time.Millisecond
	ps := &LivePushStats{}
	lp := newLivePush(cfg, time.Now(), ps, NewRecorder())
	late := func(slots ...int) (out []livePushSample) {
		for _, i := range slots {
			out = append(out, livePushSample{slot: i, labels: lp.base[i], s: lp.gen.Next(i), late: true})
		}
		return out
	}
	s := &liveSender{lp: lp, pending: map[int][]livePushSample{5: late(0, 1, 2), 6: late(3, 4, 5, 6)},
		rw: &sender{cfg: Config{RequestTimeout: cfg.Push.RequestTimeout}, url: srv.URL + "/api/v1/write", client: newHTTPClient(0, nil, false), stats: &stats{}}}
	if err := s.drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The first held group times out (failed); the drain's time is then
	// over and the second is dropped.
	if ps.Failed.Load() != 3 || ps.LateDropped.Load() != 4 || ps.NotSent.Load() != 4 || len(s.pending) != 0 {
		t.Fatalf("failed %d, late dropped %d, not sent %d, %d still held; want 3, 4, 4, 0",
			ps.Failed.Load(), ps.LateDropped.Load(), ps.NotSent.Load(), len(s.pending))
	}
}

// TestRedirectToRemoteRefused: a loopback Vigil that redirects elsewhere
// does not take the tester off loopback.
func TestRedirectToRemoteRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://192.0.2.1:9"+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s := &AckedSeries{Labels: map[string]string{"__name__": "x"}, Samples: map[int64]float64{1000: 1}}
	v := Verify(ctx, srv.URL, []*AckedSeries{s})
	if v.QueryErrors != 1 || len(v.Problems) == 0 || !strings.Contains(v.Problems[0], "not a loopback address") {
		t.Errorf("verify through a redirect: %+v", v)
	}
	c := newHTTPClient(time.Second, nil, false)
	_, err := c.Get(srv.URL + "/metrics")
	if !errors.Is(err, ErrNotLoopback) {
		t.Errorf("get through a redirect: %v, want ErrNotLoopback", err)
	}
}

// TestWaitUnscrapedAsksEveryCollector: the wait reads the cluster-wide
// target list (scope=all), not only the answering node's.
func TestWaitUnscrapedAsksEveryCollector(t *testing.T) {
	var all, local atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("scope") != "all" {
			local.Add(1)
			fmt.Fprint(w, `{"status":"success","data":{"activeTargets":[]}}`)
			return
		}
		// Another collector still scrapes the job for three answers.
		if all.Add(1) <= 3 {
			fmt.Fprint(w, `{"status":"success","data":{"activeTargets":[{"scrapePool":"j"}]}}`)
			return
		}
		fmt.Fprint(w, `{"status":"success","data":{"activeTargets":[]}}`)
	}))
	defer srv.Close()
	cfg := DefaultLiveConfig()
	cfg.URL, cfg.Scrape.Interval = srv.URL, time.Second
	s := newScrapeRun(cfg, &ScrapeStats{})
	s.waitUnscraped(context.Background())
	if all.Load() != 4 || local.Load() != 0 {
		t.Errorf("%d cluster-wide and %d local reads, want 4 and 0", all.Load(), local.Load())
	}
}

// TestQueryLatencyFromTick: a query's latency counts from the tick it was
// due at, so a client that got to it late does not hide the wait.
func TestQueryLatencyFromTick(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{}}`)
	}))
	defer srv.Close()
	cfg := DefaultLiveConfig()
	cfg.Mode, cfg.URL, cfg.Query.MaxQueries = ModeQuery, srv.URL, 1
	ticks := make(chan time.Time, 1)
	due := time.Now().Add(-500 * time.Millisecond) // the tester fell behind by 500 ms
	ticks <- due
	stats := &QueryStats{}
	queryTicks(context.Background(), cfg, time.Now().Add(10*time.Second), stats, ticks)
	evs := stats.Events()
	if len(evs) != 1 || evs[0].Err {
		t.Fatalf("events %+v", evs)
	}
	if evs[0].Latency < 500*time.Millisecond || evs[0].Latency != evs[0].At.Sub(due) {
		t.Errorf("latency %v, want the time since the tick (≥ 500 ms)", evs[0].Latency)
	}
}

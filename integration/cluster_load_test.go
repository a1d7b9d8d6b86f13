package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// loadConfig bounds a load generator.
type loadConfig struct {
	series     int           // series per batch, one sample each (< 1000)
	interval   time.Duration // between batch starts, at most
	duration   time.Duration // stop starting batches after this long
	maxBatches int
	attempts   int // per batch; 503, 429 and transport errors are retried
}

func defaultLoad(d time.Duration) loadConfig {
	return loadConfig{series: 200, interval: 25 * time.Millisecond, duration: d, maxBatches: 4000, attempts: 8}
}

// batch is one remote-write request of the load: every series gets one
// sample at ts, series s of batch idx the value idx*1000+s.
type batch struct {
	idx      int
	ts       int64
	acked    bool // a 2xx answer
	attempts int
	status   int // last answer's HTTP status; 0 for a transport error
	latency  time.Duration
}

func loadValue(idx, series int) float64 { return float64(idx*1000 + series) }

// loadGen remote-writes batches at increasing timestamps to one
// distributor from one goroutine, and records which were acknowledged.
type loadGen struct {
	cfg  loadConfig
	base string // distributor URL
	run  string // value of the run label, unique per test
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex  // protects the fields below
	batches  []batch     // finished batches in timestamp order
	statuses map[int]int // answers to every attempt by status (0: transport error)
	began    time.Time
	ended    time.Time
}

// startLoad starts writing to the distributor at base. The test must call
// wait (or finish) before it ends.
func startLoad(t *testing.T, base, run string, cfg loadConfig) *loadGen {
	g := &loadGen{cfg: cfg, base: base, run: run, stop: make(chan struct{}), done: make(chan struct{}), statuses: map[int]int{}, began: time.Now()}
	go g.loop()
	t.Cleanup(g.finish)
	return g
}

func (g *loadGen) selector() string { return fmt.Sprintf(`cluster_load{run=%q}`, g.run) }

// finish stops starting batches and waits for the one in flight.
func (g *loadGen) finish() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
}

// wait waits until the generator ends by itself (duration or count).
func (g *loadGen) wait() { <-g.done }

func (g *loadGen) loop() {
	defer close(g.done)
	defer func() {
		g.mu.Lock()
		g.ended = time.Now()
		g.mu.Unlock()
	}()
	deadline := g.began.Add(g.cfg.duration)
	next := time.Now()
	var lastTs int64
	for idx := 0; idx < g.cfg.maxBatches && time.Now().Before(deadline); idx++ {
		select {
		case <-g.stop:
			return
		case <-time.After(time.Until(next)):
		}
		next = next.Add(g.cfg.interval)
		ts := max(time.Now().UnixMilli(), lastTs+1)
		lastTs = ts
		body := g.body(idx, ts)
		b := batch{idx: idx, ts: ts}
		began := time.Now()
		for b.attempts < g.cfg.attempts {
			b.attempts++
			status, retryAfter, err := postRemoteWrite(g.base, body)
			if err != nil {
				status = 0
			}
			wait, _ := strconv.Atoi(retryAfter)
			g.mu.Lock()
			g.statuses[status]++
			g.mu.Unlock()
			b.status = status
			if status/100 == 2 {
				b.acked = true
				break
			}
			if status != 0 && status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests {
				break // not retryable: 4xx is the test's bug, 500 is vigil's
			}
			if b.attempts < g.cfg.attempts {
				time.Sleep(min(max(time.Duration(wait)*time.Second, 100*time.Millisecond), 2*time.Second))
			}
		}
		b.latency = time.Since(began)
		g.mu.Lock()
		g.batches = append(g.batches, b)
		g.mu.Unlock()
		if now := time.Now(); next.Before(now) {
			next = now // no burst after a slow request
		}
	}
}

// body encodes batch idx at ts as a remote-write request body.
func (g *loadGen) body(idx int, ts int64) []byte {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, g.cfg.series)}
	for s := range req.Timeseries {
		req.Timeseries[s] = prompb.TimeSeries{
			Labels:  []prompb.Label{{Name: "__name__", Value: "cluster_load"}, {Name: "run", Value: g.run}, {Name: "series", Value: fmt.Sprintf("s%03d", s)}},
			Samples: []prompb.Sample{{Timestamp: ts, Value: loadValue(idx, s)}},
		}
	}
	raw, err := req.Marshal()
	if err != nil {
		panic(err) // a prompb bug, not a test outcome
	}
	return snappy.Encode(nil, raw)
}

// postRemoteWrite sends one snappy-compressed remote-write body and returns
// the status and the Retry-After header.
func postRemoteWrite(base string, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}

// snapshot returns the batches finished so far.
func (g *loadGen) snapshot() []batch {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.batches)
}

// loadStats summarizes a finished load.
type loadStats struct {
	batches, acked, unacked int
	retried                 int // batches acknowledged after more than one attempt
	statuses                map[int]int
	first, last             int64 // timestamps of the first and last batch
	p50, p99, max           time.Duration
	rate                    float64 // acknowledged samples per second
}

func (g *loadGen) stats() loadStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := loadStats{batches: len(g.batches), statuses: maps.Clone(g.statuses)}
	var lat []time.Duration
	for _, b := range g.batches {
		if b.acked {
			st.acked++
			lat = append(lat, b.latency)
			if b.attempts > 1 {
				st.retried++
			}
		} else {
			st.unacked++
		}
	}
	if len(g.batches) > 0 {
		st.first, st.last = g.batches[0].ts, g.batches[len(g.batches)-1].ts
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		st.p50, st.p99, st.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	if end := g.ended; !end.IsZero() {
		st.rate = float64(st.acked*g.cfg.series) / end.Sub(g.began).Seconds()
	}
	return st
}

func (st loadStats) String() string {
	return fmt.Sprintf("%d batches: %d acknowledged (%d after a retry), %d not; answers by status %v; acknowledged latency p50 %v p99 %v max %v; %.0f samples/s",
		st.batches, st.acked, st.retried, st.unacked, st.statuses, st.p50.Round(time.Millisecond), st.p99.Round(time.Millisecond), st.max.Round(time.Millisecond), st.rate)
}

// readCheck is the outcome of reading batches back.
type readCheck struct {
	checked int      // acknowledged samples looked for
	lost    int      // acknowledged samples missing
	wrong   int      // samples with another value than written, at an unknown timestamp, or twice
	notes   []string // the first few problems
}

func (r *readCheck) note(format string, args ...any) {
	if len(r.notes) < 8 {
		r.notes = append(r.notes, fmt.Sprintf(format, args...))
	}
}

func (r readCheck) String() string {
	return fmt.Sprintf("%d acknowledged samples checked, %d lost, %d wrong %q", r.checked, r.lost, r.wrong, r.notes)
}

// readBatches reads batches (consecutive, in timestamp order) raw through
// one range-selector query at the newest one's timestamp, and checks that
// every acknowledged sample is there with its value and nothing else is.
// A query error, or warnings (an incomplete answer), is an error.
func readBatches(ctx context.Context, q promAPI, g *loadGen, batches []batch) (readCheck, error) {
	var rc readCheck
	if len(batches) == 0 {
		return rc, nil
	}
	from, to := batches[0].ts-1, batches[len(batches)-1].ts
	res, err := q.instant(ctx, fmt.Sprintf("%s[%dms]", g.selector(), to-from), time.UnixMilli(to))
	if err != nil {
		return rc, err
	}
	if len(res.Warnings) > 0 {
		return rc, fmt.Errorf("answer with warnings %q", res.Warnings)
	}
	byTs := make(map[int64]batch, len(batches))
	for _, b := range batches {
		byTs[b.ts] = b
	}
	got := make([]map[int64]bool, g.cfg.series)
	for _, s := range res.Series {
		name := s.Labels.Get("series")
		var si int
		if _, err := fmt.Sscanf(name, "s%03d", &si); err != nil || si < 0 || si >= g.cfg.series || got[si] != nil {
			rc.wrong += len(s.Points)
			rc.note("unexpected series %s", s.Labels)
			continue
		}
		got[si] = map[int64]bool{}
		for _, p := range s.Points {
			b, ok := byTs[p.T]
			switch {
			case !ok:
				rc.wrong++
				rc.note("%s: sample at %d, a timestamp no batch of this range used", name, p.T)
			case got[si][p.T]:
				rc.wrong++
				rc.note("%s: two samples at %d", name, p.T)
			case p.V != loadValue(b.idx, si):
				rc.wrong++
				rc.note("%s at %d: value %v, wrote %v", name, p.T, p.V, loadValue(b.idx, si))
			}
			got[si][p.T] = true
		}
	}
	for _, b := range batches {
		if !b.acked {
			continue
		}
		for si := range g.cfg.series {
			rc.checked++
			if !got[si][b.ts] {
				rc.lost++
				rc.note("acknowledged sample s%03d at %d (batch %d) missing", si, b.ts, b.idx)
			}
		}
	}
	return rc, nil
}

// verifyAll reads every batch back in chunks and fails the test if an
// acknowledged sample is lost or a sample is wrong.
func verifyAll(t *testing.T, q promAPI, g *loadGen, what string) {
	t.Helper()
	const chunk = 100
	batches := g.snapshot()
	var total readCheck
	began := time.Now()
	for i := 0; i < len(batches); i += chunk {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		qBegan := time.Now()
		rc, err := readBatches(ctx, q, g, batches[i:min(i+chunk, len(batches))])
		cancel()
		if took := time.Since(qBegan); took > 2*time.Second {
			t.Logf("%s: reading batches %d.. took %v", what, i, took.Round(time.Millisecond))
		}
		if err != nil {
			t.Fatalf("%s: read back batches %d..: %v", what, i, err)
		}
		total.checked += rc.checked
		total.lost += rc.lost
		total.wrong += rc.wrong
		for _, n := range rc.notes {
			total.note("%s", n)
		}
	}
	t.Logf("%s: read back in %v: %s", what, time.Since(began).Round(time.Millisecond), total)
	if total.checked == 0 {
		t.Fatalf("%s: no acknowledged sample to check", what)
	}
	if total.lost > 0 || total.wrong > 0 {
		t.Fatalf("%s: %d of %d acknowledged samples lost, %d wrong: %q", what, total.lost, total.checked, total.wrong, total.notes)
	}
}

// duringChecker queries while the load runs: each query covers the newest
// batches acknowledged before it was issued and must answer without error
// or warnings and contain every acknowledged sample of its range.
type duringChecker struct {
	q    promAPI
	g    *loadGen
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex // protects the fields below
	queries  int
	failures []string
	slowest  time.Duration
}

// startDuring queries through q every interval until stopped.
func startDuring(t *testing.T, q promAPI, g *loadGen, interval time.Duration) *duringChecker {
	d := &duringChecker{q: q, g: g, stop: make(chan struct{}), done: make(chan struct{})}
	go d.loop(interval)
	t.Cleanup(d.finish)
	return d
}

func (d *duringChecker) finish() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	<-d.done
}

func (d *duringChecker) loop(interval time.Duration) {
	defer close(d.done)
	const window = 40 // batches per query
	for {
		select {
		case <-d.stop:
			return
		case <-time.After(interval):
		}
		batches := d.g.snapshot()
		end := len(batches)
		for end > 0 && !batches[end-1].acked {
			end--
		}
		if end == 0 {
			continue
		}
		batches = batches[max(0, end-window):end]
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		began := time.Now()
		rc, err := readBatches(ctx, d.q, d.g, batches)
		took := time.Since(began)
		cancel()
		d.mu.Lock()
		d.queries++
		d.slowest = max(d.slowest, took)
		at := time.Since(d.g.began).Round(100 * time.Millisecond)
		switch {
		case err != nil:
			d.failures = append(d.failures, fmt.Sprintf("at +%v: %v", at, err))
		case rc.lost > 0 || rc.wrong > 0:
			d.failures = append(d.failures, fmt.Sprintf("at +%v: %s", at, rc))
		}
		d.mu.Unlock()
	}
}

// check stops the checker and fails the test if a query failed.
func (d *duringChecker) check(t *testing.T, what string) {
	t.Helper()
	d.finish()
	d.mu.Lock()
	defer d.mu.Unlock()
	t.Logf("%s: %d queries during the load, %d failed, slowest %v", what, d.queries, len(d.failures), d.slowest.Round(time.Millisecond))
	if d.queries == 0 {
		t.Errorf("%s: no query ran during the load", what)
	}
	if len(d.failures) > 0 {
		t.Errorf("%s: %d of %d queries during the load were not complete; first: %q", what, len(d.failures), d.queries, d.failures[:min(5, len(d.failures))])
	}
}

// TestLoadCheckerSingleNode checks the load generator and the read-back
// checks the cluster tests rely on, against a single node: a clean load
// reads back complete, and the checks do notice a sample that is missing,
// one that has another value, and an answer with warnings.
func TestLoadCheckerSingleNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts vigil; skipped with -short")
	}
	v := startVigil(t)
	q := promAPI{name: "vigil", base: v.URL()}
	cfg := defaultLoad(3 * time.Second)
	cfg.maxBatches = 60
	g := startLoad(t, v.URL(), "checker", cfg)
	d := startDuring(t, q, g, 200*time.Millisecond)
	g.wait()
	d.check(t, "single node")
	st := g.stats()
	t.Logf("load: %s", st)
	if st.acked != 60 || st.unacked != 0 {
		t.Fatalf("%d batches acknowledged, %d not; want 60, 0", st.acked, st.unacked)
	}
	verifyAll(t, q, g, "single node")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	batches := g.snapshot()
	// A batch claimed acknowledged that was never written: lost.
	ghost := batches[len(batches)-1]
	ghost.idx, ghost.ts = ghost.idx+1, ghost.ts+1
	rc, err := readBatches(ctx, q, g, append(slices.Clone(batches[len(batches)-5:]), ghost))
	if err != nil {
		t.Fatal(err)
	}
	if rc.lost != cfg.series || rc.wrong != 0 {
		t.Errorf("never-written batch: %s; want %d lost, 0 wrong", rc, cfg.series)
	}
	// A sample with another value than the batch wrote: wrong.
	status, _, err := postRemoteWrite(v.URL(), g.body(ghost.idx+7, ghost.ts+5))
	if err != nil || status/100 != 2 {
		t.Fatalf("write the odd batch: %d %v", status, err)
	}
	odd := batch{idx: ghost.idx + 1, ts: ghost.ts + 5, acked: true}
	rc, err = readBatches(ctx, q, g, []batch{odd})
	if err != nil {
		t.Fatal(err)
	}
	if rc.wrong != cfg.series || rc.lost != 0 {
		t.Errorf("batch read back with other values: %s; want %d wrong, 0 lost", rc, cfg.series)
	}
	// Samples at a timestamp no batch of the range used: wrong; batches
	// never acknowledged are not looked for.
	rc, err = readBatches(ctx, q, g, []batch{{idx: odd.idx, ts: odd.ts - 1}, {idx: odd.idx + 1, ts: odd.ts + 1}})
	if err != nil {
		t.Fatal(err)
	}
	if rc.wrong != cfg.series || rc.checked != 0 {
		t.Errorf("samples at a timestamp of no batch: %s; want %d wrong, 0 checked", rc, cfg.series)
	}
}

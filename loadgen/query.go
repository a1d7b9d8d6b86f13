package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// QueryKind is one kind of dashboard query of the mix.
type QueryKind struct {
	Name   string // report key
	Weight int    // share of the mix
	// build returns the request path and parameters at time now.
	build func(now time.Time) (string, url.Values)
}

// QueryMix is the dashboard-like mix the query engine draws from.
func QueryMix() []QueryKind {
	instant := func(expr string) func(time.Time) (string, url.Values) {
		return func(now time.Time) (string, url.Values) {
			return "/api/v1/query", url.Values{"query": {expr}, "time": {promTime(now)}}
		}
	}
	return []QueryKind{
		{Name: "rate", Weight: 3, build: instant(`sum(rate(node_cpu_seconds_total{mode!="idle"}[5m]))`)},
		{Name: "sum_by", Weight: 2, build: instant(`sum by (instance)(rate(node_network_receive_bytes_total[5m]))`)},
		{Name: "topk", Weight: 2, build: instant(`topk(5, node_memory_MemAvailable_bytes)`)},
		{Name: "histogram_quantile", Weight: 1, build: instant(`histogram_quantile(0.99, sum by (le)(rate(vigil_storage_wal_write_duration_seconds_bucket[5m])))`)},
		{Name: "range_1h", Weight: 1, build: func(now time.Time) (string, url.Values) {
			return "/api/v1/query_range", url.Values{"query": {`sum by (mode)(rate(node_cpu_seconds_total[5m]))`},
				"start": {promTime(now.Add(-time.Hour))}, "end": {promTime(now)}, "step": {"60"}}
		}},
		{Name: "label_values", Weight: 1, build: func(now time.Time) (string, url.Values) {
			return "/api/v1/label/instance/values", url.Values{"start": {promTime(now.Add(-time.Hour))}, "end": {promTime(now)}}
		}},
	}
}

// promTime formats t as the API's seconds with milliseconds.
func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// QueryEvent is one finished query.
type QueryEvent struct {
	At      time.Time // when it finished
	Kind    string
	Latency time.Duration
	Err     bool
}

// QueryStats collects the query engine's events; read while it runs.
type QueryStats struct {
	Sent    atomic.Int64
	Done    atomic.Int64 // finished, with or without error
	Errors  atomic.Int64
	Skipped atomic.Int64 // ticks with every query slot busy: the server fell behind the rate

	mu     sync.Mutex
	events []QueryEvent // guarded by mu
	errors []string     // first few; guarded by mu
}

func (s *QueryStats) add(ev QueryEvent, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Done.Add(1)
	s.events = append(s.events, ev)
	if err != nil && len(s.errors) < 10 {
		s.errors = append(s.errors, err.Error())
	}
}

// AddEvent records a finished query as the engine does (for reports
// built from recorded or synthetic runs).
func (s *QueryStats) AddEvent(ev QueryEvent) {
	var err error
	if ev.Err {
		s.Errors.Add(1)
		err = fmt.Errorf("%s: failed", ev.Kind)
	}
	s.Sent.Add(1)
	s.add(ev, err)
}

// Events returns a copy of the events so far.
func (s *QueryStats) Events() []QueryEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]QueryEvent(nil), s.events...)
}

// ErrorMessages returns the first errors seen.
func (s *QueryStats) ErrorMessages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errors...)
}

// Percentile returns the p-quantile (0..1) of ds by nearest rank; 0 for
// none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	i := int(p*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// runQueries sends the mix at QPS until the deadline, MaxQueries or ctx,
// with at most Concurrency in flight; it waits for those in flight.
func runQueries(ctx context.Context, cfg LiveConfig, deadline time.Time, stats *QueryStats) {
	t := time.NewTicker(time.Duration(float64(time.Second) / cfg.Query.QPS))
	defer t.Stop()
	queryTicks(ctx, cfg, deadline, stats, t.C)
}

// queryTicks sends one query of the mix per tick received (a tick's value
// is the time the query was due), as runQueries describes.
func queryTicks(ctx context.Context, cfg LiveConfig, deadline time.Time, stats *QueryStats, ticks <-chan time.Time) {
	q := cfg.Query
	maxQ := cfg.queryBound()
	client := newHTTPClient(q.Timeout, &http.Transport{MaxIdleConnsPerHost: q.Concurrency}, cfg.AllowRemote)
	defer client.CloseIdleConnections()
	mix := QueryMix()
	var wheel []int // kind indexes by weight
	for i, k := range mix {
		for range k.Weight {
			wheel = append(wheel, i)
		}
	}
	base := strings.TrimRight(cfg.URL, "/")
	slots := make(chan struct{}, q.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	dl := time.NewTimer(time.Until(deadline))
	defer dl.Stop()
	var tick time.Time
	for n := int64(0); n < maxQ; {
		select {
		case <-ctx.Done():
			return
		case <-dl.C:
			return
		case tick = <-ticks:
		}
		select {
		case slots <- struct{}{}:
		default:
			stats.Skipped.Add(1)
			continue
		}
		kind := mix[wheel[int(n)%len(wheel)]]
		n++
		stats.Sent.Add(1)
		wg.Add(1)
		scheduled := tick
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			path, params := kind.build(scheduled)
			err := getAPI(ctx, client, base+path+"?"+params.Encode())
			// Latency counts from the tick the query was due at, not from
			// when its goroutine got to send it: a client that falls
			// behind must not hide the delay (coordinated omission).
			now := time.Now()
			ev := QueryEvent{At: now, Kind: kind.Name, Latency: now.Sub(scheduled), Err: err != nil}
			if err != nil {
				stats.Errors.Add(1)
				err = fmt.Errorf("%s: %w", kind.Name, err)
			}
			stats.add(ev, err)
		}()
	}
}

// getAPI performs a GET and checks the answer is a Prometheus API success.
func getAPI(ctx context.Context, client *http.Client, u string) error {
	body, err := httpGet(ctx, client, u)
	if err != nil {
		return err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if r.Status != "success" {
		return fmt.Errorf("api error: %s", r.Error)
	}
	return nil
}

// httpGet returns a 200 answer's body; any other status is an error with
// the start of the body.
func httpGet(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, body)
	}
	return body, nil
}

// Describe is the kind's query as the report shows it.
func (k QueryKind) Describe() string {
	path, params := k.build(time.Unix(0, 0))
	q := params.Get("query")
	switch {
	case q == "":
		return "GET " + path + " (last hour)"
	case strings.HasSuffix(path, "query_range"):
		return q + " over the last hour, step 60s"
	}
	return q
}

package loadgen

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is a remote-write endpoint that checks headers and order and
// counts what it accepted. reply picks the status of the n-th request
// (0-based); nil means 204.
type receiver struct {
	reply func(n int64) (status int, retryAfter string)

	calls atomic.Int64
	mu    sync.Mutex
	// guarded by mu:
	samples int64
	last    map[string]int64 // series → last timestamp accepted
	maxTS   int64
	minTS   int64
	bad     []string
}

func newReceiver(t *testing.T, reply func(n int64) (int, string)) (*receiver, *httptest.Server) {
	r := &receiver{reply: reply, last: map[string]int64{}, minTS: 1<<63 - 1}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) fail(msg string) {
	r.mu.Lock()
	r.bad = append(r.bad, msg)
	r.mu.Unlock()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	n := r.calls.Add(1) - 1
	for h, want := range map[string]string{
		"Content-Encoding":                  "snappy",
		"Content-Type":                      "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
	} {
		if got := req.Header.Get(h); got != want {
			r.fail(h + ": " + got)
		}
	}
	if req.Method != http.MethodPost || req.URL.Path != "/api/v1/write" {
		r.fail("bad request line " + req.Method + " " + req.URL.Path)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		r.fail(err.Error())
		return
	}
	if r.reply != nil {
		if status, ra := r.reply(n); status/100 != 2 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			http.Error(w, "synthetic failure", status)
			return
		}
	}
	wr, err := decode(body)
	if err != nil {
		r.fail(err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	seenMax := r.maxTS
	for _, ts := range wr.Timeseries {
		key := labelString(ts.Labels)
		for _, s := range ts.Samples {
			if prev, ok := r.last[key]; ok && s.Timestamp <= prev {
				r.bad = append(r.bad, "out of order: "+key)
			}
			// Lockstep: nothing older than the newest sample of an
			// earlier request.
			if s.Timestamp < seenMax {
				r.bad = append(r.bad, "older than the current round: "+key)
			}
			if len(ts.Samples) != 1 {
				r.bad = append(r.bad, "more than one sample of "+key)
			}
			r.last[key] = s.Timestamp
			r.minTS = min(r.minTS, s.Timestamp)
			r.maxTS = max(r.maxTS, s.Timestamp)
			r.samples++
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func testConfig() Config {
	c := DefaultConfig()
	c.Series, c.Samples, c.BatchSize, c.Concurrency = 1234, 7, 500, 3
	c.End = testStart
	return c
}

func TestPushDeliversEverything(t *testing.T) {
	tests := []struct {
		name   string
		series int
		batch  int
		conc   int
	}{
		{name: "several requests per sender and round", series: 1234, batch: 100, conc: 3},
		{name: "share smaller than a batch", series: 1234, batch: 5000, conc: 3},
		{name: "more senders than series", series: 2, batch: 10, conc: 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, srv := newReceiver(t, nil)
			cfg := testConfig()
			cfg.Series, cfg.BatchSize, cfg.Concurrency = tc.series, tc.batch, tc.conc
			var progress safeBuffer
			res, err := Push(context.Background(), cfg, srv.URL+"/api/v1/write", &progress)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(cfg.Series * cfg.Samples)
			if res.Samples != want || r.samples != want {
				t.Fatalf("result %d samples, receiver %d, want %d", res.Samples, r.samples, want)
			}
			if len(r.last) != cfg.Series {
				t.Fatalf("receiver saw %d series, want %d", len(r.last), cfg.Series)
			}
			if len(r.bad) > 0 {
				t.Fatalf("receiver complaints: %v", r.bad[:min(5, len(r.bad))])
			}
			if res.Requests != r.calls.Load() || res.Retries != 0 || res.Errors != 0 {
				t.Fatalf("result %+v, receiver calls %d", res, r.calls.Load())
			}
			// The last sample is one interval before End, the first
			// Samples intervals before it.
			if got, want := r.maxTS, testStart.Add(-cfg.Interval).UnixMilli(); got != want {
				t.Fatalf("last timestamp %d, want %d", got, want)
			}
			if got, want := r.minTS, testStart.Add(-time.Duration(cfg.Samples)*cfg.Interval).UnixMilli(); got != want {
				t.Fatalf("first timestamp %d, want %d", got, want)
			}
			if !res.Last.Equal(time.UnixMilli(r.maxTS)) || !res.First.Equal(time.UnixMilli(r.minTS)) {
				t.Fatalf("result range %v..%v does not match sent data", res.First, res.Last)
			}
			if progress.Len() == 0 {
				t.Fatal("no progress line written")
			}
		})
	}
}

func TestPushRetries(t *testing.T) {
	tests := []struct {
		name        string
		reply       func(n int64) (int, string)
		maxRetries  int
		wantErr     int // HTTP status in the error; 0 for success
		wantCalls   int64
		wantRetries int64
	}{
		{
			name: "retry 503 then succeed",
			reply: func(n int64) (int, string) {
				if n < 2 {
					return http.StatusServiceUnavailable, ""
				}
				return http.StatusNoContent, ""
			},
			maxRetries: 5, wantCalls: 3, wantRetries: 2,
		},
		{
			name: "retry 429 honouring Retry-After",
			reply: func(n int64) (int, string) {
				if n == 0 {
					return http.StatusTooManyRequests, "1"
				}
				return http.StatusNoContent, ""
			},
			maxRetries: 5, wantCalls: 2, wantRetries: 1,
		},
		{
			name:       "no retry on 400",
			reply:      func(int64) (int, string) { return http.StatusBadRequest, "" },
			maxRetries: 5, wantErr: http.StatusBadRequest, wantCalls: 1,
		},
		{
			name:       "retries are bounded",
			reply:      func(int64) (int, string) { return http.StatusInternalServerError, "" },
			maxRetries: 2, wantErr: http.StatusInternalServerError, wantCalls: 3, wantRetries: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, srv := newReceiver(t, tc.reply)
			cfg := testConfig()
			// One sender, one request: the call count is exact.
			cfg.Series, cfg.Samples, cfg.BatchSize, cfg.Concurrency = 10, 1, 100, 1
			cfg.MaxRetries = tc.maxRetries
			began := time.Now()
			res, err := Push(context.Background(), cfg, srv.URL+"/api/v1/write", nil)
			if got := r.calls.Load(); got != tc.wantCalls {
				t.Fatalf("%d calls, want %d", got, tc.wantCalls)
			}
			if res.Retries != tc.wantRetries {
				t.Fatalf("%d retries, want %d", res.Retries, tc.wantRetries)
			}
			if tc.wantErr == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if res.Samples != 10 || r.samples != 10 {
					t.Fatalf("result %d, receiver %d samples, want 10", res.Samples, r.samples)
				}
				if tc.wantRetries > 0 && res.Errors != tc.wantRetries {
					t.Fatalf("%d errors, want %d", res.Errors, tc.wantRetries)
				}
				if tc.name == "retry 429 honouring Retry-After" && time.Since(began) < time.Second {
					t.Fatalf("retried after %v, before Retry-After", time.Since(began))
				}
				return
			}
			var he *HTTPError
			if !errors.As(err, &he) || he.StatusCode != tc.wantErr {
				t.Fatalf("error %v, want HTTP %d", err, tc.wantErr)
			}
			if res.Samples != 0 {
				t.Fatalf("%d samples acknowledged, want 0", res.Samples)
			}
		})
	}
}

func TestPushStopsOnCancel(t *testing.T) {
	_, srv := newReceiver(t, func(int64) (int, string) { return http.StatusServiceUnavailable, "" })
	cfg := testConfig()
	cfg.MaxRetries = 1000
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began := time.Now()
	_, err := Push(ctx, cfg, srv.URL+"/api/v1/write", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want deadline exceeded", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("push took %v to notice cancellation", d)
	}
}

func TestPushRejectsBadConfig(t *testing.T) {
	cfg := testConfig()
	cfg.Concurrency = 0
	if _, err := Push(context.Background(), cfg, "http://127.0.0.1:1/api/v1/write", nil); err == nil {
		t.Fatal("no error for concurrency 0")
	}
}

func TestHuman(t *testing.T) {
	tests := []struct {
		name string
		n    float64
		want string
	}{
		{name: "small", n: 7, want: "7.00"},
		{name: "thousands", n: 12345, want: "12.3k"},
		{name: "millions", n: 36e6, want: "36.0M"},
		{name: "hundreds of millions", n: 123.4e6, want: "123M"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Human(tc.n); got != tc.want {
				t.Fatalf("Human(%v) = %q, want %q", tc.n, got, tc.want)
			}
		})
	}
}

// safeBuffer is a bytes.Buffer safe for the reporter goroutine.
type safeBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *safeBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.b)
}

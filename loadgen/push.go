package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/sync/errgroup"
)

// Result is what one Push did.
type Result struct {
	Series   int
	Hosts    int
	Samples  int64 // samples in acknowledged requests
	Requests int64 // acknowledged requests
	Bytes    int64 // compressed body bytes of acknowledged requests
	Retries  int64 // attempts repeated after a retryable failure
	Errors   int64 // failed attempts, retried or not
	// Duration is the wall-clock time from the first request to the last
	// acknowledgement (or the failure).
	Duration time.Duration
	// First and Last are the timestamps of the first and last sample of
	// every series.
	First, Last time.Time
}

// SamplesPerSecond is the acknowledged samples over Duration.
func (r Result) SamplesPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Samples) / r.Duration.Seconds()
}

// HTTPError is a response that is not retried (4xx other than 429), or the
// last response when the retries ran out.
type HTTPError struct {
	StatusCode int
	Body       string // the first few hundred bytes
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("remote write: HTTP %d: %s", e.StatusCode, e.Body)
}

// Push generates cfg's load and sends it to url (a remote-write 1.0
// endpoint such as http://host:port/api/v1/write), writing a progress line
// to progress (nil: none) while it runs.
//
// The series are split into Concurrency contiguous shares, one sender each,
// so that every series' samples are sent in time order, one request after
// the previous was acknowledged, as Prometheus' remote-write shards do. A
// request holds one sample of each of up to BatchSize series (the shape of
// a remote-write client that keeps up: several samples of one series per
// request would make per-series costs look smaller than they are). The
// senders move in lockstep: all of them finish round k (sample k of every
// series) before any starts round k+1. Requests answered 5xx or 429 (or
// failing in transport) are retried up to MaxRetries times with backoff,
// honouring Retry-After; any other 4xx fails the push at once. On failure
// Push returns what was acknowledged so far together with the error.
func Push(ctx context.Context, cfg Config, url string, progress io.Writer) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, fmt.Errorf("validate config: %w", err)
	}
	end := cfg.End
	if end.IsZero() {
		end = time.Now()
	}
	end = end.Truncate(time.Millisecond)
	start := end.Add(-time.Duration(cfg.Samples) * cfg.Interval)
	gen := NewGenerator(cfg.Series, cfg.Seed, start, cfg.Interval)

	senders := min(cfg.Concurrency, cfg.Series)

	transport := &http.Transport{
		Proxy:               nil, // loopback targets: never through a proxy
		MaxIdleConnsPerHost: senders,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	st := &stats{}
	rep := newReporter(progress, cfg.TotalSamples(), st)
	began := time.Now()
	rep.start(began)

	bar := newBarrier(senders)
	g, gctx := errgroup.WithContext(ctx)
	for w := 0; w < senders; w++ {
		s := &sender{
			cfg:    cfg,
			url:    url,
			client: client,
			gen:    gen,
			stats:  st,
			lo:     w * cfg.Series / senders,
			hi:     (w + 1) * cfg.Series / senders,
		}
		g.Go(func() error { return s.run(gctx, bar) })
	}
	err := g.Wait()
	dur := time.Since(began)
	rep.stop(dur)

	res := Result{
		Series:   cfg.Series,
		Hosts:    gen.Hosts(),
		Samples:  st.samples.Load(),
		Requests: st.requests.Load(),
		Bytes:    st.bytes.Load(),
		Retries:  st.retries.Load(),
		Errors:   st.errors.Load(),
		Duration: dur,
		First:    start,
		Last:     end.Add(-cfg.Interval),
	}
	if err != nil {
		return res, fmt.Errorf("push to %s: %w", url, err)
	}
	return res, nil
}

// stats are the counters the senders update and the reporter reads.
type stats struct {
	samples, requests, bytes, retries, errors atomic.Int64
}

type sender struct {
	cfg    Config
	url    string
	client *http.Client
	gen    *Generator
	stats  *stats
	lo, hi int // the series this sender owns: [lo, hi)
	enc    encoder
}

func (s *sender) run(ctx context.Context, bar *barrier) error {
	for round := 0; round < s.cfg.Samples; round++ {
		for i := s.lo; i < s.hi; i += s.cfg.BatchSize {
			j := min(i+s.cfg.BatchSize, s.hi)
			body, n, err := s.enc.encode(s.gen, i, j)
			if err != nil {
				return err
			}
			if err := s.send(ctx, body, n); err != nil {
				return err
			}
		}
		if err := bar.wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
	maxErrorBody = 512
)

// send posts one request, retrying what may succeed later.
func (s *sender) send(ctx context.Context, body []byte, samples int) error {
	backoff := firstBackoff
	for attempt := 0; ; attempt++ {
		status, retryAfter, err := s.post(ctx, body)
		if err == nil {
			s.stats.samples.Add(int64(samples))
			s.stats.requests.Add(1)
			s.stats.bytes.Add(int64(len(body)))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.stats.errors.Add(1)
		retryable := status == 0 || status >= 500 || status == http.StatusTooManyRequests
		if !retryable {
			return err
		}
		if attempt >= s.cfg.MaxRetries {
			return fmt.Errorf("give up after %d attempts: %w", attempt+1, err)
		}
		s.stats.retries.Add(1)
		wait := backoff
		if retryAfter > 0 {
			wait = min(retryAfter, maxBackoff)
		}
		backoff = min(2*backoff, maxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// post makes one attempt. status is 0 for transport errors; err is nil only
// for a 2xx answer.
func (s *sender) post(ctx context.Context, body []byte) (status int, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "vigil-loadgen/1")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("send request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Drain so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, 0, nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if secs, perr := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); perr == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	return resp.StatusCode, retryAfter, &HTTPError{StatusCode: resp.StatusCode, Body: strings.TrimSpace(string(msg))}
}

// encoder builds and encodes requests, reusing its buffers. The returned
// body is valid until the next call.
type encoder struct {
	req     prompb.WriteRequest
	samples []prompb.Sample
	raw     []byte
	comp    []byte
}

// encode advances series [lo, hi) by one sample each and returns the
// snappy-compressed WriteRequest holding them and its sample count.
func (e *encoder) encode(gen *Generator, lo, hi int) ([]byte, int, error) {
	n := hi - lo
	if cap(e.samples) < n {
		e.samples = make([]prompb.Sample, n)
	}
	e.samples = e.samples[:n]
	ts := e.req.Timeseries[:0]
	for i := lo; i < hi; i++ {
		ss := e.samples[i-lo : i-lo+1 : i-lo+1]
		ss[0] = gen.Next(i)
		ts = append(ts, prompb.TimeSeries{Labels: gen.Labels(i), Samples: ss})
	}
	e.req.Timeseries = ts
	size := e.req.Size()
	if cap(e.raw) < size {
		e.raw = make([]byte, size)
	}
	raw := e.raw[:size]
	m, err := e.req.MarshalToSizedBuffer(raw)
	if err != nil {
		return nil, 0, fmt.Errorf("marshal write request: %w", err)
	}
	raw = raw[size-m:]
	if need := snappy.MaxEncodedLen(len(raw)); cap(e.comp) < need {
		e.comp = make([]byte, need)
	}
	e.comp = snappy.Encode(e.comp[:cap(e.comp)], raw)
	return e.comp, n, nil
}

// barrier lets n goroutines wait for each other, repeatedly.
type barrier struct {
	mu      sync.Mutex
	n       int           // parties
	waiting int           // arrived in the current generation; guarded by mu
	ch      chan struct{} // closed when the current generation is complete; guarded by mu
}

func newBarrier(n int) *barrier { return &barrier{n: n, ch: make(chan struct{})} }

// wait blocks until all n parties called wait, or ctx is done.
func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.waiting++
	if b.waiting == b.n {
		close(b.ch)
		b.ch = make(chan struct{})
		b.waiting = 0
		b.mu.Unlock()
		return nil
	}
	ch := b.ch
	b.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

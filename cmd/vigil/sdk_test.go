package main

import (
	"context"
	"errors"
	"iter"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-tsdb/vigil/sdk"
)

// freeAddr returns a loopback address nothing listens on (for now).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startSDKNode runs the single node with its gRPC API on grpcAddr.
func startSDKNode(t *testing.T, grpcAddr string) (base string, stop func() error) {
	t.Helper()
	return startRun(t, "-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", grpcAddr)
}

// waitQuery polls an instant query until it answers want.
func waitQuery(t *testing.T, base, q, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := query(t, base, q)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %q, want %q", q, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSDKWrite writes through the public gRPC API with the Go SDK into the
// real single node and reads the samples back through PromQL: a round
// trip, idempotent retries, each class of bad input, and a stream of
// 1,000,000 samples, every one verified.
func TestSDKWrite(t *testing.T) {
	grpcAddr := freeAddr(t)
	base, stop := startSDKNode(t, grpcAddr)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	c, err := sdk.New(grpcAddr, sdk.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	now := time.Now().UnixMilli()

	t.Run("round trip", func(t *testing.T) {
		series := []sdk.Series{
			{Labels: sdk.Labels("job", "a", "__name__", "sdk_up"), Samples: []sdk.Sample{{T: now - 2000, V: 1}, {T: now - 1000, V: 0}}},
			{Labels: sdk.Labels("__name__", "sdk_up", "job", "b"), Samples: []sdk.Sample{{T: now, V: 1}}},
		}
		res, err := c.Write(ctx, series)
		if err != nil || res.Stored != 3 || res.Rejected != 0 {
			t.Fatalf("write: %+v, %v", res, err)
		}
		waitQuery(t, base, `sum(count_over_time(sdk_up[1m]))`, "3")
		waitQuery(t, base, `sum(sum_over_time(sdk_up{job="a"}[1m])) + 10 * sum(sum_over_time(sdk_up{job="b"}[1m]))`, "11")
		// Sent again: idempotent, every sample a duplicate.
		if res, err = c.Write(ctx, series); err != nil || res.Stored != 0 || res.Duplicates != 3 {
			t.Fatalf("second write: %+v, %v", res, err)
		}
	})

	t.Run("invalid input", func(t *testing.T) {
		ok := sdk.Sample{T: now, V: 1}
		for _, tc := range []struct {
			name   string
			series []sdk.Series
			want   string
		}{
			{"no labels", []sdk.Series{{Samples: []sdk.Sample{ok}}}, "series[0]: no labels"},
			{"no samples", []sdk.Series{{Labels: sdk.Labels("__name__", "x")}}, "series[0]: no samples"},
			{"a label twice", []sdk.Series{{Labels: sdk.Labels("__name__", "x"), Samples: []sdk.Sample{ok}}, {Labels: sdk.Labels("__name__", "x", "a", "1", "a", "2"), Samples: []sdk.Sample{ok}}}, `series[1]: label name "a" appears twice`},
		} {
			_, err := c.Write(ctx, tc.series)
			var e *sdk.Error
			if !errors.As(err, &e) || !errors.Is(err, sdk.ErrInvalid) || errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(e.Message, tc.want) {
				t.Errorf("%s: error %v, want an invalid-request error saying %q", tc.name, err, tc.want)
			}
		}
		// Refused one by one: the rest is stored, the result says why.
		for _, tc := range []struct {
			name   string
			series sdk.Series
			reason string
		}{
			{"bad label name", sdk.Series{Labels: sdk.Labels("__name__", "x", "0bad", "v"), Samples: []sdk.Sample{ok}}, "invalid"},
			{"too old", sdk.Series{Labels: sdk.Labels("__name__", "x", "case", "old"), Samples: []sdk.Sample{{T: now - 30*24*3_600_000, V: 1}}}, "too_old"},
		} {
			good := sdk.Series{Labels: sdk.Labels("__name__", "sdk_good", "case", tc.name), Samples: []sdk.Sample{ok}}
			res, err := c.Write(ctx, []sdk.Series{good, tc.series})
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
				continue
			}
			if res.Stored != 1 || res.Rejected != 1 || len(res.Rejections) != 1 || !strings.Contains(res.Rejections[0].Reason, tc.reason) {
				t.Errorf("%s: %+v, want 1 stored and 1 rejected for %q", tc.name, res, tc.reason)
			}
		}
	})

	t.Run("stream", func(t *testing.T) {
		const batches, seriesPer, samplesPer = 100, 200, 50 // 1,000,000 samples
		// 30 minutes back: well inside the out-of-order window (1 h) for
		// the whole stream, which takes ~10 s under the race detector.
		start := now - 1_800_000
		var all iter.Seq[[]sdk.Series] = func(yield func([]sdk.Series) bool) {
			for b := range batches {
				batch := make([]sdk.Series, seriesPer)
				for s := range batch {
					id := b*seriesPer + s
					smps := make([]sdk.Sample, samplesPer)
					for i := range smps {
						smps[i] = sdk.Sample{T: start + int64(i)*15_000, V: float64(id*samplesPer + i)}
					}
					batch[s] = sdk.Series{Labels: sdk.Labels("__name__", "sdk_stream", "id", strconv.Itoa(id)), Samples: smps}
				}
				if !yield(batch) {
					return
				}
			}
		}
		res, err := c.WriteStream(ctx, all)
		if err != nil || res.Stored != batches*seriesPer*samplesPer {
			t.Fatalf("write stream: %+v, %v", res, err)
		}
		// Every series has its 50 samples, and the values sum to
		// 0 + 1 + … + 999,999: none lost, none changed.
		waitQuery(t, base, `count(count_over_time(sdk_stream[2h]) == 50)`, strconv.Itoa(batches*seriesPer))
		waitQuery(t, base, `sum(sum_over_time(sdk_stream[2h]))`, strconv.Itoa((batches*seriesPer*samplesPer-1)*batches*seriesPer*samplesPer/2))
	})
}

// TestSDKRetries starts the client before the node listens: the first
// attempts fail with Unavailable and the retries reach it; without
// retries the same failure is returned at once, classified.
func TestSDKRetries(t *testing.T) {
	grpcAddr := freeAddr(t)
	c0, err := sdk.New(grpcAddr, sdk.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c0.Close()
	one := []sdk.Series{{Labels: sdk.Labels("__name__", "sdk_retry"), Samples: []sdk.Sample{{T: time.Now().UnixMilli(), V: 1}}}}
	_, err = c0.Write(context.Background(), one)
	var e *sdk.Error
	if !errors.As(err, &e) || !errors.Is(err, sdk.ErrUnavailable) || e.Attempts != 1 {
		t.Fatalf("error %v, want Unavailable after one attempt", err)
	}

	c, err := sdk.New(grpcAddr, sdk.WithBackoff(50*time.Millisecond, 200*time.Millisecond), sdk.WithMaxRetries(300))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type written struct {
		res sdk.WriteResult
		err error
	}
	ch := make(chan written, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() {
		res, err := c.Write(ctx, one)
		ch <- written{res, err}
	}()
	time.Sleep(500 * time.Millisecond) // the client is retrying meanwhile
	base, stop := startSDKNode(t, grpcAddr)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	w := <-ch
	if w.err != nil || w.res.Stored != 1 {
		t.Fatalf("write: %+v, %v", w.res, w.err)
	}
	waitQuery(t, base, `count_over_time(sdk_retry[1m])`, "1")
}

// TestSDKWriter: the batching Writer delivers every sample added from
// several goroutines, sends a partial batch after FlushInterval, reports
// refused samples, returns a failed batch's error from Flush, and blocks
// Add when its buffer is full (a server that never answers).
func TestSDKWriter(t *testing.T) {
	grpcAddr := freeAddr(t)
	base, stop := startSDKNode(t, grpcAddr)
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	c, err := sdk.New(grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now().UnixMilli()

	t.Run("delivers everything", func(t *testing.T) {
		var rejected atomic.Int64
		w := c.NewWriter(sdk.WriterOptions{MaxBatchSamples: 1000, FlushInterval: 50 * time.Millisecond, MaxBufferedSamples: 3000,
			OnRejected: func(r sdk.WriteResult) { rejected.Add(r.Rejected) }, Name: "deliver"})
		reg := prometheus.NewRegistry()
		reg.MustRegister(w.Collector())
		// A second Writer's metrics go to the same registry.
		other := c.NewWriter(sdk.WriterOptions{Name: "other"})
		defer other.Close(ctx)
		reg.MustRegister(other.Collector())
		const goroutines, seriesPer, samplesPer = 4, 50, 100 // 20,000 samples
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range samplesPer {
					for s := range seriesPer {
						id := g*seriesPer + s
						if err := w.Add(ctx, sdk.Labels("__name__", "sdk_writer", "id", strconv.Itoa(id)), now-3_600_000+int64(i)*15_000, float64(i)); err != nil {
							t.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		st := w.Stats()
		if st.Added != 20_000 || st.Stored != 20_000 || st.Failed != 0 || st.Buffered != 0 || st.Batches < 20 || rejected.Load() != 0 {
			t.Fatalf("stats %+v, %d rejected", st, rejected.Load())
		}
		for _, m := range []struct {
			name  string
			label string
			want  float64
		}{
			{"vigil_sdk_writer_samples_added_total", "", 20_000},
			{"vigil_sdk_writer_samples_total", "stored", 20_000},
			{"vigil_sdk_writer_samples_total", "failed", 0},
			{"vigil_sdk_writer_buffered_samples", "", 0},
			{"vigil_sdk_writer_batches_total", "ok", float64(st.Batches)},
			{"vigil_sdk_writer_batch_duration_seconds", "", float64(st.Batches)}, // the histogram's count
		} {
			if got := gatherValue(t, reg, m.name, "deliver", m.label); got != m.want {
				t.Errorf("%s{writer=\"deliver\",result=%q} = %g, want %g", m.name, m.label, got, m.want)
			}
		}
		if err := w.Add(ctx, sdk.Labels("__name__", "x"), now, 1); !errors.Is(err, sdk.ErrClosed) {
			t.Fatalf("Add after Close: %v", err)
		}
		waitQuery(t, base, `count(count_over_time(sdk_writer[2h]) == 100)`, "200")
		waitQuery(t, base, `sum(sum_over_time(sdk_writer[2h]))`, strconv.Itoa(200*99*100/2))
	})

	t.Run("flush interval and rejections", func(t *testing.T) {
		rejected := make(chan sdk.WriteResult, 1)
		w := c.NewWriter(sdk.WriterOptions{FlushInterval: 100 * time.Millisecond, OnRejected: func(r sdk.WriteResult) { rejected <- r }})
		defer w.Close(ctx)
		if err := w.Add(ctx, sdk.Labels("__name__", "sdk_interval"), now, 7); err != nil {
			t.Fatal(err)
		}
		waitQuery(t, base, `sum_over_time(sdk_interval[1m])`, "7") // no Flush: the interval sent it
		if err := w.Add(ctx, sdk.Labels("__name__", "sdk_interval", "case", "old"), now-30*24*3_600_000, 1); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-rejected:
			if r.Rejected != 1 || len(r.Rejections) != 1 || r.Rejections[0].Reason != "too_old" {
				t.Fatalf("rejection %+v", r)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("OnRejected not called")
		}
	})

	t.Run("failed batch", func(t *testing.T) {
		dead, err := sdk.New(freeAddr(t), sdk.WithMaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		defer dead.Close()
		w := dead.NewWriter(sdk.WriterOptions{})
		for i := range 10 {
			if err := w.Add(ctx, sdk.Labels("__name__", "x"), now+int64(i), 1); err != nil {
				t.Fatal(err)
			}
		}
		err = w.Flush(ctx)
		if !errors.Is(err, sdk.ErrUnavailable) || !strings.Contains(err.Error(), "10 samples in 1 batches not written") || w.Err() == nil {
			t.Fatalf("flush: %v; Err %v", err, w.Err())
		}
		if err := w.Close(ctx); err != nil {
			t.Fatalf("close after the failure was reported: %v", err)
		}
	})

	t.Run("backpressure", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			var held []net.Conn
			defer func() {
				for _, c := range held {
					c.Close()
				}
			}()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held = append(held, c)
			}
		}()
		hung, err := sdk.New(ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer hung.Close()
		w := hung.NewWriter(sdk.WriterOptions{MaxBatchSamples: 10, MaxBufferedSamples: 20, FlushInterval: 10 * time.Millisecond})
		for i := range 20 {
			if err := w.Add(ctx, sdk.Labels("__name__", "x"), now+int64(i), 1); err != nil {
				t.Fatal(err)
			}
		}
		short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancelShort()
		before := time.Now()
		if err := w.Add(short, sdk.Labels("__name__", "x"), now+20, 1); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "buffer full") {
			t.Fatalf("Add with a full buffer: %v", err)
		}
		if st := w.Stats(); st.Buffered != 20 || st.Blocked <= 0 || st.Blocked > time.Since(before) {
			t.Fatalf("full buffer: stats %+v, want 20 buffered and Add blocked for at most the %s it took", st, time.Since(before))
		}
		closeCtx, cancelClose := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancelClose()
		start := time.Now()
		err = w.Close(closeCtx)
		if err == nil || !strings.Contains(err.Error(), "20 samples in 2 batches not written") || time.Since(start) > 10*time.Second {
			t.Fatalf("close: %v after %s", err, time.Since(start))
		}
		if st := w.Stats(); st.Buffered != 0 || st.Failed != 20 || st.FailedBatches != 2 {
			t.Fatalf("after close: stats %+v", st)
		}
	})
}

// gatherValue returns the value (a histogram's count) of the metric with
// labels writer and, if not empty, result.
func gatherValue(t *testing.T, g prometheus.Gatherer, name, writer, result string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["writer"] != writer || labels["result"] != result {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	t.Fatalf("no metric %s{writer=%q,result=%q}", name, writer, result)
	return 0
}

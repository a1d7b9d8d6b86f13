package collector

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// faultSink is a downstream that can be switched between accepting and
// failing (a fault injector): failing pushes store nothing.
type faultSink struct {
	mu       sync.Mutex // protects everything below
	err      error      // returned while set
	hang     bool       // Push waits for its context: a black-holed downstream
	gate     chan struct{}
	result   func([]model.Series) model.PushResult
	got      []model.Series // accepted series, in arrival order
	calls    int
	accepted int
}

func (f *faultSink) set(err error, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.hang = err, hang
}

func (f *faultSink) Push(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	f.mu.Lock()
	f.calls++
	err, hang, gate, result := f.err, f.hang, f.gate, f.result
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return model.PushResult{}, ctx.Err()
		}
	}
	if hang {
		<-ctx.Done()
		return model.PushResult{}, ctx.Err()
	}
	if err != nil {
		return model.PushResult{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.accepted++
	f.got = append(f.got, batch...)
	if result != nil {
		return result(batch), nil
	}
	return model.PushResult{Stored: model.CountSamples(batch)}, nil
}

func (f *faultSink) snapshot() (got []model.Series, calls, accepted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]model.Series(nil), f.got...), f.calls, f.accepted
}

func testBatcherConfig(dir string) BatcherConfig {
	cfg := DefaultBatcherConfig()
	cfg.MaxBatchSamples = 60
	cfg.FlushInterval = 10 * time.Millisecond
	cfg.QueueSamples = 600
	cfg.Concurrency = 1
	cfg.PushTimeout = 10 * time.Second
	cfg.ReplayBackoff = 10 * time.Millisecond
	cfg.MaxReplayBackoff = 100 * time.Millisecond
	cfg.Spool = testSpoolConfig(dir)
	return cfg
}

func newTestBatcher(t *testing.T, cfg BatcherConfig, sink Sink) (*Batcher, *spoolLog) {
	t.Helper()
	logger, log := newSpoolLog()
	b, err := NewBatcher(cfg, sink, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, log
}

// writerBatch is batch n of writer w: three series whose value is n.
func writerBatch(w, n int) []model.Series {
	batch := make([]model.Series, 3)
	for i := range batch {
		batch[i] = model.Series{
			Labels:  labels.FromStrings("__name__", "batcher_test", "i", strconv.Itoa(i), "w", strconv.Itoa(w)),
			Samples: []model.Sample{{T: int64(n), V: float64(n)}},
		}
	}
	return batch
}

// writers push writerBatch(w, 0), (w, 1), ... one after another per writer
// and record what was acknowledged.
type writers struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	acked map[int][]int // writer → acknowledged batch numbers
}

func startWriters(t *testing.T, b *Batcher, k int) *writers {
	ws := &writers{stop: make(chan struct{}), acked: map[int][]int{}}
	for w := range k {
		ws.wg.Add(1)
		go func() {
			defer ws.wg.Done()
			for n := 0; n < 100_000; n++ {
				select {
				case <-ws.stop:
					return
				case <-time.After(time.Millisecond):
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := b.Push(ctx, writerBatch(w, n))
				cancel()
				if err != nil {
					t.Errorf("writer %d batch %d: %v", w, n, err)
					return
				}
				ws.mu.Lock()
				ws.acked[w] = append(ws.acked[w], n)
				ws.mu.Unlock()
			}
		}()
	}
	return ws
}

func (ws *writers) count() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n := 0
	for _, a := range ws.acked {
		n += len(a)
	}
	return n
}

func (ws *writers) halt() {
	close(ws.stop)
	ws.wg.Wait()
}

// checkDelivery checks that every acknowledged batch arrived (exactly once
// if once) and that each writer's batches arrived in the order written.
// It returns the number of samples delivered.
func checkDelivery(t *testing.T, got []model.Series, acked map[int][]int, once bool) int {
	t.Helper()
	copies := map[[2]int]int{}
	last := map[int]int{}
	samples := 0
	for _, s := range got {
		w, _ := strconv.Atoi(s.Labels.Get("w"))
		n := int(s.Samples[0].V)
		samples += len(s.Samples)
		copies[[2]int{w, n}]++
		if prev, ok := last[w]; ok && n < prev {
			t.Fatalf("writer %d: batch %d arrived after batch %d", w, n, prev)
		}
		last[w] = n
	}
	for w, ns := range acked {
		for _, n := range ns {
			c := copies[[2]int{w, n}]
			if c < 3 || (once && c != 3) {
				t.Fatalf("writer %d batch %d: %d of 3 series delivered", w, n, c)
			}
		}
	}
	return samples
}

func TestBatcherOutageAndRecovery(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		hang        bool
		concurrency int
	}{
		{name: "unavailable", err: fmt.Errorf("distributor: %w", model.ErrUnavailable), concurrency: 1},
		{name: "overloaded", err: model.ErrOverloaded, concurrency: 1},
		{name: "deadline (black hole)", hang: true, concurrency: 1},
		{name: "unknown error", err: errors.New("connection reset by peer"), concurrency: 1},
		{name: "unavailable, 4 in flight", err: model.ErrUnavailable, concurrency: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testBatcherConfig(t.TempDir())
			cfg.Concurrency = tc.concurrency
			cfg.PushTimeout = 200 * time.Millisecond
			sink := &faultSink{}
			b, log := newTestBatcher(t, cfg, sink)
			ws := startWriters(t, b, 4)

			eventually(t, 10*time.Second, "first deliveries", func() bool { _, _, a := sink.snapshot(); return a >= 5 })
			sink.set(tc.err, tc.hang)
			time.Sleep(50 * time.Millisecond) // pushes already past the switch finish
			_, _, before := sink.snapshot()
			ackedBefore := ws.count()
			eventually(t, 10*time.Second, "batches spooled", func() bool { n, _, _ := b.spool.stats(); return n >= 20 })
			if _, _, a := sink.snapshot(); a != before {
				t.Fatalf("the failing downstream accepted %d pushes", a-before)
			}
			if ws.count() <= ackedBefore+10 {
				t.Fatalf("only %d pushes acknowledged during the outage", ws.count()-ackedBefore)
			}

			sink.set(nil, false)
			eventually(t, 20*time.Second, "spool replayed", b.spool.empty)
			time.Sleep(50 * time.Millisecond)
			ws.halt()
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			got, _, _ := sink.snapshot()
			delivered := checkDelivery(t, got, ws.acked, true)

			m := b.metrics
			sent, spooled := valueOf(t, m.sent), valueOf(t, m.spooled)
			replayed := valueOf(t, b.spool.metrics.replayed)
			if spooled == 0 || replayed != spooled || int(sent+replayed) != delivered {
				t.Fatalf("sent %v + replayed %v (spooled %v) != delivered %d", sent, replayed, spooled, delivered)
			}
			if valueOf(t, m.downstreamErrors.WithLabelValues("retryable")) == 0 || valueOf(t, m.queue) != 0 {
				t.Fatal("retryable errors not counted or queue not empty")
			}
			for _, want := range []string{"downstream unavailable; spooling", "spool replayed; sending batches directly again"} {
				if !strings.Contains(log.String(), want) {
					t.Fatalf("log lacks %q:\n%s", want, log)
				}
			}
			t.Logf("%d pushes acknowledged, %v samples spooled and replayed, %v sent directly", ws.count(), spooled, sent)
		})
	}
}

func TestBatcherRestartReplays(t *testing.T) {
	dir := t.TempDir()
	cfg := testBatcherConfig(dir)
	down := &faultSink{err: model.ErrUnavailable}
	b1, _ := newTestBatcher(t, cfg, down)
	ctx := testCtx(t)
	for n := range 30 {
		if _, err := b1.Push(ctx, writerBatch(0, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b1.Push(ctx, writerBatch(0, 99)); !errors.Is(err, ErrBatcherClosed) {
		t.Fatalf("Push after Close: %v", err)
	}
	if len(segmentFiles(t, dir)) == 0 {
		t.Fatal("nothing spooled")
	}

	// The next Batcher on the directory replays, and batches pushed while
	// it does go behind the spooled ones.
	gate := make(chan struct{})
	up := &faultSink{gate: gate}
	b2, _ := newTestBatcher(t, cfg, up)
	for n := 30; n < 40; n++ {
		if _, err := b2.Push(ctx, writerBatch(0, n)); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	eventually(t, 10*time.Second, "spool replayed", b2.spool.empty)
	if err := b2.Close(); err != nil {
		t.Fatal(err)
	}
	got, _, _ := up.snapshot()
	checkDelivery(t, got, map[int][]int{0: seq(0, 40)}, true)
	if len(got) != 40*3 {
		t.Fatalf("%d series delivered, want 120", len(got))
	}
	if files := segmentFiles(t, dir); len(files) != 0 {
		t.Fatalf("segments left after replay: %v", files)
	}
}

func TestBatcherBackpressure(t *testing.T) {
	cfg := testBatcherConfig(t.TempDir())
	cfg.MaxBatchSamples = 30
	cfg.QueueSamples = 60
	gate := make(chan struct{})
	sink := &faultSink{gate: gate}
	b, _ := newTestBatcher(t, cfg, sink)
	ctx := testCtx(t)

	errs := make(chan error, 20)
	for w := range 20 { // 60 samples: fills the queue exactly
		go func() { _, err := b.Push(ctx, writerBatch(w, 0)); errs <- err }()
	}
	eventually(t, 5*time.Second, "queue full", func() bool { return valueOf(t, b.metrics.queue) == 60 })
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := b.Push(short, writerBatch(99, 0)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Push into a full queue: %v", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Fatalf("Push into a full queue returned after %s without blocking", waited)
	}
	if q := valueOf(t, b.metrics.queue); q != 60 {
		t.Fatalf("queue %v after a refused push, want 60", q)
	}
	close(gate)
	for range 20 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Push(ctx, writerBatch(99, 1)); err != nil {
		t.Fatal(err)
	}
	// A push larger than the whole queue still goes through, alone.
	big := nodeBatch(100, 5)
	if _, err := b.Push(ctx, big); err != nil {
		t.Fatal(err)
	}
	got, _, _ := sink.snapshot()
	if len(got) != 20*3+3+100 {
		t.Fatalf("%d series delivered", len(got))
	}
}

func TestBatcherFlushReasons(t *testing.T) {
	cfg := testBatcherConfig(t.TempDir())
	cfg.MaxBatchSamples = 30
	cfg.FlushInterval = 150 * time.Millisecond
	sink := &faultSink{}
	b, _ := newTestBatcher(t, cfg, sink)
	ctx := testCtx(t)
	flushes := func(r string) float64 { return valueOf(t, b.metrics.flushes.WithLabelValues(r)) }

	// Size: 45 series of one sample in one push make one full batch and
	// one that waits for the interval.
	start := time.Now()
	if _, err := b.Push(ctx, nodeBatch(45, 1)); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if flushes(flushSize) != 1 || flushes(flushInterval) != 1 {
		t.Fatalf("flushes size %v interval %v, want 1 and 1", flushes(flushSize), flushes(flushInterval))
	}
	if took < cfg.FlushInterval || took > 2*time.Second {
		t.Fatalf("a part-filled batch was sent after %s, interval %s", took, cfg.FlushInterval)
	}
	t.Logf("push of a part-filled batch returned after %s (interval %s)", took, cfg.FlushInterval)

	// Flush sends at once.
	done := make(chan error, 1)
	go func() { _, err := b.Push(ctx, writerBatch(0, 1)); done <- err }()
	eventually(t, 5*time.Second, "queued", func() bool { return valueOf(t, b.metrics.queue) == 3 })
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if flushes(flushFlush) != 1 || flushes(flushInterval) != 1 {
		t.Fatalf("flushes flush %v interval %v, want 1 and 1", flushes(flushFlush), flushes(flushInterval))
	}

	// Close sends what is left and says so.
	go func() { _, err := b.Push(ctx, writerBatch(0, 2)); done <- err }()
	eventually(t, 5*time.Second, "queued", func() bool { return valueOf(t, b.metrics.queue) == 3 })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if flushes(flushClose) != 1 {
		t.Fatalf("close flushes %v", flushes(flushClose))
	}
	if err := b.Flush(ctx); !errors.Is(err, ErrBatcherClosed) {
		t.Fatalf("Flush after Close: %v", err)
	}
	got, _, _ := sink.snapshot()
	if len(got) != 45+3+3 {
		t.Fatalf("%d series delivered, want 51", len(got))
	}
}

func TestBatcherMergesConcurrentPushes(t *testing.T) {
	cfg := testBatcherConfig(t.TempDir())
	cfg.MaxBatchSamples = 10_000
	cfg.QueueSamples = 10_000
	cfg.FlushInterval = 200 * time.Millisecond
	sink := &faultSink{}
	b, _ := newTestBatcher(t, cfg, sink)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for w := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.Push(ctx, writerBatch(w, 0)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, calls, _ := sink.snapshot()
	if len(got) != 600 {
		t.Fatalf("%d series delivered", len(got))
	}
	if calls > 4 {
		t.Fatalf("200 concurrent pushes became %d downstream calls; they should merge", calls)
	}
	t.Logf("200 concurrent pushes → %d downstream calls", calls)
}

func TestBatcherRefusals(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		result     func([]model.Series) model.PushResult
		wantErr    error
		wantReason string
		wantCount  float64
	}{
		{name: "bad data", err: model.BadData("request", errors.New("garbled")), wantErr: model.ErrBadData, wantReason: "bad_data", wantCount: 3},
		{name: "too large", err: fmt.Errorf("limit: %w", model.ErrTooLarge), wantErr: model.ErrTooLarge, wantReason: "too_large", wantCount: 3},
		{name: "per-sample rejections", result: func(b []model.Series) model.PushResult {
			var r model.PushResult
			r.Stored = 1
			r.Reject(2, model.Rejection{Reason: model.ReasonTooOld, Series: b[0].Labels.String(), Message: "too old"})
			return r
		}, wantReason: string(model.ReasonTooOld), wantCount: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &faultSink{err: tc.err, result: tc.result}
			b, log := newTestBatcher(t, testBatcherConfig(t.TempDir()), sink)
			_, err := b.Push(testCtx(t), writerBatch(0, 0))
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.wantErr == nil && err != nil {
				t.Fatalf("Push: %v, want %v", err, tc.wantErr)
			}
			if got := valueOf(t, b.metrics.rejected.WithLabelValues(tc.wantReason)); got != tc.wantCount {
				t.Fatalf("rejected{%s} = %v, want %v", tc.wantReason, got, tc.wantCount)
			}
			if !b.spool.empty() || valueOf(t, b.metrics.spooled) != 0 {
				t.Fatal("a refused batch was spooled")
			}
			if !strings.Contains(log.String(), "downstream re") {
				t.Fatalf("refusal not logged:\n%s", log)
			}
		})
	}
}

func TestBatcherReplayRefused(t *testing.T) {
	sink := &faultSink{err: model.ErrUnavailable}
	b, _ := newTestBatcher(t, testBatcherConfig(t.TempDir()), sink)
	ctx := testCtx(t)
	for n := range 3 {
		if _, err := b.Push(ctx, writerBatch(0, n)); err != nil {
			t.Fatal(err)
		}
	}
	sink.set(model.BadData("request", errors.New("refused on replay")), false)
	eventually(t, 10*time.Second, "spool emptied", b.spool.empty)
	if v := valueOf(t, b.spool.metrics.dropped.WithLabelValues(dropRefused)); v != 9 {
		t.Fatalf("dropped refused %v, want 9", v)
	}
}

// TestBatcherReplayCorrupt damages a spooled frame before it is replayed:
// it is skipped and counted, its neighbours are delivered.
func TestBatcherReplayCorrupt(t *testing.T) {
	dir := t.TempDir()
	cfg := testBatcherConfig(dir)
	cfg.Spool.SegmentBytes = 1 << 20
	sink := &faultSink{err: model.ErrUnavailable}
	b, _ := newTestBatcher(t, cfg, sink)
	ctx := testCtx(t)
	for n := range 3 {
		if _, err := b.Push(ctx, writerBatch(0, n)); err != nil {
			t.Fatal(err)
		}
	}
	es := b.spool.oldest(1000, 10)
	if len(es) != 3 {
		t.Fatalf("%d batches spooled, want 3", len(es))
	}
	damage(t, segmentPath(dir, es[1].seg), es[1].off+es[1].size-3, 0x5a)
	sink.set(nil, false)
	eventually(t, 10*time.Second, "spool replayed", b.spool.empty)
	got, _, _ := sink.snapshot()
	checkDelivery(t, got, map[int][]int{0: {0, 2}}, true)
	if len(got) != 6 {
		t.Fatalf("%d series delivered, want 6", len(got))
	}
	if v := valueOf(t, b.spool.metrics.dropped.WithLabelValues(dropCorrupt)); v != 3 {
		t.Fatalf("dropped corrupt %v, want 3", v)
	}
}

func TestBatcherSpoolLimits(t *testing.T) {
	frame := realFrame(t, writerBatch(0, 0))
	t.Run("max bytes", func(t *testing.T) {
		cfg := testBatcherConfig(t.TempDir())
		cfg.Spool.MaxBytes = int64(len(frame))*5 + int64(len(frame))/2
		cfg.Spool.SegmentBytes = int64(len(frame)) * 2
		sink := &faultSink{err: model.ErrUnavailable}
		b, log := newTestBatcher(t, cfg, sink)
		ctx := testCtx(t)
		for n := range 20 {
			if _, err := b.Push(ctx, writerBatch(0, n)); err != nil {
				t.Fatal(err)
			}
		}
		sink.set(nil, false)
		eventually(t, 10*time.Second, "spool replayed", b.spool.empty)
		got, _, _ := sink.snapshot()
		checkDelivery(t, got, map[int][]int{0: seq(15, 20)}, true)
		if len(got) != 5*3 {
			t.Fatalf("%d series delivered, want the newest 5 batches", len(got))
		}
		if v := valueOf(t, b.spool.metrics.dropped.WithLabelValues(dropMaxBytes)); v != 15*3 {
			t.Fatalf("dropped %v samples, want 45", v)
		}
		if !strings.Contains(log.String(), "reason=max_bytes") {
			t.Fatalf("log:\n%s", log)
		}
	})
	t.Run("max age", func(t *testing.T) {
		cfg := testBatcherConfig(t.TempDir())
		cfg.Spool.MaxAge = 300 * time.Millisecond
		sink := &faultSink{err: model.ErrUnavailable}
		b, log := newTestBatcher(t, cfg, sink)
		ctx := testCtx(t)
		for n := range 5 {
			if _, err := b.Push(ctx, writerBatch(0, n)); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 5*time.Second, "old batches dropped", b.spool.empty)
		if _, err := b.Push(ctx, writerBatch(0, 5)); err != nil {
			t.Fatal(err)
		}
		sink.set(nil, false)
		eventually(t, 10*time.Second, "spool replayed", b.spool.empty)
		got, _, _ := sink.snapshot()
		checkDelivery(t, got, map[int][]int{0: {5}}, true)
		if len(got) != 3 {
			t.Fatalf("%d series delivered, want only the last batch", len(got))
		}
		if v := valueOf(t, b.spool.metrics.dropped.WithLabelValues(dropMaxAge)); v != 15 {
			t.Fatalf("dropped %v samples, want 15", v)
		}
		if !strings.Contains(log.String(), "reason=max_age") {
			t.Fatalf("log:\n%s", log)
		}
	})
}

func TestNewBatcherErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewBatcher(testBatcherConfig(file), &faultSink{}, nil, reg); err == nil {
		t.Fatal("NewBatcher on a file as spool dir succeeded")
	}
	if _, err := NewBatcher(testBatcherConfig(t.TempDir()), nil, nil, reg); err == nil {
		t.Fatal("NewBatcher without a downstream succeeded")
	}
	// The failures left nothing registered.
	b, err := NewBatcher(testBatcherConfig(t.TempDir()), &faultSink{}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := NewBatcher(testBatcherConfig(t.TempDir()), &faultSink{}, nil, reg); err == nil {
		t.Fatal("a second Batcher registered the same metrics")
	}
}

func TestBatcherConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*BatcherConfig)
		want   string
	}{
		{name: "default", change: func(*BatcherConfig) {}},
		{name: "zero batch", change: func(c *BatcherConfig) { c.MaxBatchSamples = 0 }, want: "max-samples"},
		{name: "queue below batch", change: func(c *BatcherConfig) { c.QueueSamples = c.MaxBatchSamples - 1 }, want: "queue-samples"},
		{name: "no concurrency", change: func(c *BatcherConfig) { c.Concurrency = 0 }, want: "concurrency"},
		{name: "backoff cap below start", change: func(c *BatcherConfig) { c.MaxReplayBackoff = c.ReplayBackoff / 2 }, want: "replay-backoff"},
		{name: "no spool dir", change: func(c *BatcherConfig) { c.Spool.Dir = "" }, want: "spool.dir"},
		{name: "segment over max", change: func(c *BatcherConfig) { c.Spool.SegmentBytes = c.Spool.MaxBytes + 1 }, want: "segment-bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultBatcherConfig()
			tc.change(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// WriterOptions configures a Writer; zero fields take the defaults.
type WriterOptions struct {
	// MaxBatchSamples sends a batch when it holds this many samples
	// (default 10,000).
	MaxBatchSamples int
	// FlushInterval sends a batch this long after its first sample
	// (default 1 s).
	FlushInterval time.Duration
	// MaxBufferedSamples bounds the samples added and not yet stored or
	// failed; Add blocks while it is reached (default 1,000,000).
	MaxBufferedSamples int
	// Concurrency is how many batches are sent at once (default 2).
	Concurrency int
	// OnRejected, if set, is called with the result of every batch of
	// which the server refused samples (too old, conflicting, bad
	// labels). They are not retried: the server refused them for a
	// reason. It is called from the Writer's goroutines.
	OnRejected func(WriteResult)
	// Name is the writer label of the Writer's metrics (Collector).
	Name string
}

// ErrClosed is returned by Add after Close.
var ErrClosed = errors.New("vigil sdk: writer closed")

// Writer batches samples and sends them in the background. Memory is
// bounded (MaxBufferedSamples) and Add blocks rather than queueing
// without end. A batch that fails after the Client's retries is never
// dropped silently: Flush, Close and Err return its error. Safe for
// concurrent use.
type Writer struct {
	c    *Client
	opts WriterOptions
	sem  *semaphore.Weighted // one unit per buffered sample

	ctx    context.Context // of the sends; cancelled when Close gives up
	cancel context.CancelFunc
	queue  chan *batch
	wg     sync.WaitGroup // senders and the timer

	mu       sync.Mutex
	cur      *batch
	seq      int          // of the last batch sealed
	inFlight map[int]bool // sealed batches not finished
	failures []failure    // not reported by a Flush yet
	firstErr error        // the first failure ever (Err)
	closed   bool
	changed  chan struct{} // closed and replaced when a batch finishes
	stats    WriterStats

	batchDuration prometheus.Histogram // of Collector
	descs         writerDescs
}

// WriterStats counts what a Writer did.
type WriterStats struct {
	Added, Stored, Duplicates, Rejected, Failed int64 // samples
	// Buffered is the samples added and not yet finished.
	Buffered               int64
	Batches, FailedBatches int64
	// Blocked is the time Add waited for buffer space (backpressure).
	Blocked time.Duration
}

type batch struct {
	seq     int
	series  []Series
	index   map[string]int // series key → position in series
	samples int
	first   time.Time
}

type failure struct {
	seq     int
	samples int
	err     error
}

// NewWriter returns a Writer sending through c.
func (c *Client) NewWriter(opts WriterOptions) *Writer {
	if opts.MaxBatchSamples <= 0 {
		opts.MaxBatchSamples = 10_000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.MaxBufferedSamples <= 0 {
		opts.MaxBufferedSamples = 1_000_000
	}
	opts.MaxBufferedSamples = max(opts.MaxBufferedSamples, opts.MaxBatchSamples)
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{
		c: c, opts: opts, sem: semaphore.NewWeighted(int64(opts.MaxBufferedSamples)),
		ctx: ctx, cancel: cancel, queue: make(chan *batch, opts.Concurrency),
		inFlight: map[int]bool{}, changed: make(chan struct{}), descs: newWriterDescs(opts.Name),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "vigil_sdk_writer_batch_duration_seconds",
			Help:        "Time to write one batch, retries included.",
			Buckets:     prometheus.ExponentialBuckets(0.001, 4, 9),
			ConstLabels: prometheus.Labels{"writer": opts.Name},
		}),
	}
	for range opts.Concurrency {
		w.wg.Go(w.send)
	}
	w.wg.Go(w.tick)
	return w
}

// Add buffers one sample of the series with the given labels. It blocks
// while MaxBufferedSamples are buffered, until a batch finishes or ctx
// ends (then it returns ctx's error and the sample is not added).
func (w *Writer) Add(ctx context.Context, labels []Label, t int64, v float64) error {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	var blocked time.Duration
	if !w.sem.TryAcquire(1) {
		start := time.Now()
		err := w.sem.Acquire(ctx, 1)
		blocked = time.Since(start)
		if err != nil {
			w.mu.Lock()
			w.stats.Blocked += blocked
			w.mu.Unlock()
			return fmt.Errorf("vigil sdk: writer buffer full (%d samples): %w", w.opts.MaxBufferedSamples, err)
		}
	}
	w.mu.Lock()
	w.stats.Blocked += blocked
	if w.closed {
		w.mu.Unlock()
		w.sem.Release(1)
		return ErrClosed
	}
	if w.cur == nil {
		w.cur = &batch{index: map[string]int{}, first: time.Now()}
	}
	b := w.cur
	key := seriesKey(labels)
	i, ok := b.index[key]
	if !ok {
		i = len(b.series)
		b.index[key] = i
		b.series = append(b.series, Series{Labels: append([]Label(nil), labels...)})
	}
	b.series[i].Samples = append(b.series[i].Samples, Sample{T: t, V: v})
	b.samples++
	w.stats.Added++
	w.stats.Buffered++
	var full *batch
	if b.samples >= w.opts.MaxBatchSamples {
		full = w.sealLocked()
	}
	w.mu.Unlock()
	if full != nil {
		w.dispatch(ctx, full)
	}
	return nil
}

// dispatch queues b for the senders. If ctx ends first, a goroutine
// queues it, or fails it when the Writer stops: a sealed batch is always
// accounted for.
func (w *Writer) dispatch(ctx context.Context, b *batch) {
	select {
	case w.queue <- b:
		return
	case <-ctx.Done():
	}
	go func() {
		select {
		case w.queue <- b:
		case <-w.ctx.Done():
			w.finish(b, WriteResult{}, w.ctx.Err())
		}
	}()
}

// seriesKey identifies a label set within a batch (labels in the order
// given: the same series added with its labels in another order is sent
// twice in one batch, which the server merges).
func seriesKey(labels []Label) string {
	var sb strings.Builder
	for _, l := range labels {
		sb.WriteString(l.Name)
		sb.WriteByte(0xff)
		sb.WriteString(l.Value)
		sb.WriteByte(0xff)
	}
	return sb.String()
}

// sealLocked takes the current batch for sending; w.mu is held.
func (w *Writer) sealLocked() *batch {
	b := w.cur
	w.cur = nil
	w.seq++
	b.seq = w.seq
	w.inFlight[b.seq] = true
	return b
}

// tick sends the current batch FlushInterval after its first sample.
func (w *Writer) tick() {
	t := time.NewTicker(max(w.opts.FlushInterval/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		var due *batch
		if w.cur != nil && time.Since(w.cur.first) >= w.opts.FlushInterval {
			due = w.sealLocked()
		}
		w.mu.Unlock()
		if due != nil {
			w.dispatch(w.ctx, due)
		}
	}
}

// send writes queued batches until the Writer stops.
func (w *Writer) send() {
	for {
		select {
		case <-w.ctx.Done():
			return
		case b := <-w.queue:
			start := time.Now()
			res, err := w.c.Write(w.ctx, b.series)
			w.batchDuration.Observe(time.Since(start).Seconds())
			w.finish(b, res, err)
		}
	}
}

// finish records a batch's outcome and frees its buffer space.
func (w *Writer) finish(b *batch, res WriteResult, err error) {
	w.mu.Lock()
	delete(w.inFlight, b.seq)
	w.stats.Batches++
	w.stats.Buffered -= int64(b.samples)
	if err != nil {
		w.stats.FailedBatches++
		w.stats.Failed += int64(b.samples)
		w.failures = append(w.failures, failure{seq: b.seq, samples: b.samples, err: err})
		if w.firstErr == nil {
			w.firstErr = err
		}
	} else {
		w.stats.Stored += res.Stored
		w.stats.Duplicates += res.Duplicates
		w.stats.Rejected += res.Rejected
	}
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	w.sem.Release(int64(b.samples))
	if err == nil && res.Rejected > 0 && w.opts.OnRejected != nil {
		w.opts.OnRejected(res)
	}
}

// Flush sends what is buffered and waits until every sample added before
// the call is stored or refused by the server. It returns the failures of
// batches sealed up to then that no earlier Flush returned, or ctx's
// error if it ends first (the samples are still being sent).
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	var b *batch
	if w.cur != nil {
		b = w.sealLocked()
	}
	upTo := w.seq
	w.mu.Unlock()
	if b != nil {
		w.dispatch(ctx, b)
	}
	for {
		w.mu.Lock()
		done := true
		for seq := range w.inFlight {
			if seq <= upTo {
				done = false
				break
			}
		}
		if done {
			err := w.takeFailuresLocked(upTo)
			w.mu.Unlock()
			return err
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("vigil sdk: flush: %w", ctx.Err())
		}
	}
}

// takeFailuresLocked returns (and forgets) the failures of batches up to
// seq: the first one's error, with the count of samples lost in all.
func (w *Writer) takeFailuresLocked(upTo int) error {
	var (
		first   error
		batches int
		samples int
		keep    []failure
	)
	for _, f := range w.failures {
		if f.seq > upTo {
			keep = append(keep, f)
			continue
		}
		if first == nil {
			first = f.err
		}
		batches++
		samples += f.samples
	}
	w.failures = keep
	if first == nil {
		return nil
	}
	return fmt.Errorf("vigil sdk: %d samples in %d batches not written: %w", samples, batches, first)
}

// Close flushes, then stops the Writer; Add returns ErrClosed from then
// on. If ctx ends first, what is still in flight is cancelled and Close
// returns the error with what was lost.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.closed = true
	w.mu.Unlock()
	err := w.Flush(ctx)
	w.cancel()
	w.wg.Wait()
	for { // batches no sender took: failed
		select {
		case b := <-w.queue:
			w.finish(b, WriteResult{}, w.ctx.Err())
			continue
		default:
		}
		break
	}
	if err != nil {
		w.mu.Lock()
		lost := w.takeFailuresLocked(w.seq)
		w.mu.Unlock()
		return errors.Join(err, lost)
	}
	return nil
}

// Err returns the first batch failure of the Writer's life, or nil.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstErr
}

// Stats returns what the Writer did so far.
func (w *Writer) Stats() WriterStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

package collector

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-tsdb/vigil/model"
)

// ErrBatcherClosed is returned by Push and Flush after Close.
var ErrBatcherClosed = errors.New("batcher closed")

// BatcherConfig configures a Batcher (flags -collector.batch.* and
// -collector.spool.*).
type BatcherConfig struct {
	MaxBatchSamples  int           `yaml:"max_batch_samples"`
	FlushInterval    time.Duration `yaml:"flush_interval"`
	QueueSamples     int           `yaml:"queue_samples"`
	Concurrency      int           `yaml:"concurrency"`
	PushTimeout      time.Duration `yaml:"push_timeout"`
	ReplayBackoff    time.Duration `yaml:"replay_backoff"`
	MaxReplayBackoff time.Duration `yaml:"max_replay_backoff"`
	Spool            SpoolConfig   `yaml:"spool"`
}

// DefaultBatcherConfig returns a complete, working configuration.
func DefaultBatcherConfig() BatcherConfig {
	return BatcherConfig{
		MaxBatchSamples:  10_000,
		FlushInterval:    100 * time.Millisecond,
		QueueSamples:     100_000,
		Concurrency:      4,
		PushTimeout:      5 * time.Second,
		ReplayBackoff:    100 * time.Millisecond,
		MaxReplayBackoff: 10 * time.Second,
		Spool:            DefaultSpoolConfig(),
	}
}

// RegisterFlags adds the -collector.batch.* and -collector.spool.* flags,
// with the current values as defaults.
func (c *BatcherConfig) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxBatchSamples, "collector.batch.max-samples", c.MaxBatchSamples, "samples at which a batch is sent to the distributors")
	f.DurationVar(&c.FlushInterval, "collector.batch.flush-interval", c.FlushInterval, "longest time a sample waits in a batch that is not full")
	f.IntVar(&c.QueueSamples, "collector.batch.queue-samples", c.QueueSamples, "samples kept in memory at most (filling, waiting and in-flight batches); Push blocks beyond")
	f.IntVar(&c.Concurrency, "collector.batch.concurrency", c.Concurrency, "batches in flight to the distributors at once")
	f.DurationVar(&c.PushTimeout, "collector.batch.push-timeout", c.PushTimeout, "timeout of one push to the distributors; a batch that times out is spooled")
	f.DurationVar(&c.ReplayBackoff, "collector.spool.replay-backoff", c.ReplayBackoff, "first wait before probing the distributors again with the oldest spooled batch")
	f.DurationVar(&c.MaxReplayBackoff, "collector.spool.max-replay-backoff", c.MaxReplayBackoff, "longest wait between probes while the distributors fail")
	c.Spool.RegisterFlags(f)
}

// Validate reports the first invalid field.
func (c BatcherConfig) Validate() error {
	switch {
	case c.MaxBatchSamples <= 0:
		return errors.New("collector.batch.max-samples must be positive")
	case c.FlushInterval <= 0:
		return errors.New("collector.batch.flush-interval must be positive")
	case c.QueueSamples < c.MaxBatchSamples:
		return errors.New("collector.batch.queue-samples must be at least collector.batch.max-samples")
	case c.Concurrency < 1:
		return errors.New("collector.batch.concurrency must be at least 1")
	case c.PushTimeout <= 0:
		return errors.New("collector.batch.push-timeout must be positive")
	case c.ReplayBackoff <= 0 || c.MaxReplayBackoff < c.ReplayBackoff:
		return errors.New("collector.spool.replay-backoff must be positive and at most collector.spool.max-replay-backoff")
	}
	return c.Spool.Validate()
}

// Flush reasons (vigil_collector_batcher_flushes_total{reason}).
const (
	flushSize     = "size"
	flushInterval = "interval"
	flushFlush    = "flush"
	flushClose    = "close"
)

// Batcher merges the batches of many scrape loops and sends them to a
// downstream Sink; what the downstream cannot take for now goes to an
// on-disk spool and is replayed in order (docs/collector.md, "Batching and
// the spool"). It is a Sink itself; all methods are safe for concurrent
// use. NewBatcher starts its goroutines, Close stops them.
type Batcher struct {
	cfg        BatcherConfig
	downstream Sink
	logger     *slog.Logger
	metrics    *batcherMetrics
	spool      *spool
	rejectLog  rateLimitedLog

	mu          sync.Mutex    // protects everything below
	cur         *pendingBatch // filling, never nil
	gen         uint64        // incremented on every seal; identifies cur for its timer
	timer       *time.Timer
	queued      int             // samples in cur, sealed and in flight
	space       chan struct{}   // closed and replaced when queued shrinks or on Close
	sealed      []*pendingBatch // waiting for dispatch, in seal order
	outstanding []*pendingBatch // sealed and not committed, in seal order
	closed      bool

	kick    chan struct{}      // cap 1: sealed grew or closed was set
	slots   chan struct{}      // cap Concurrency: a token per batch between dispatch and commit
	commitQ chan *pendingBatch // dispatched batches, in seal order

	pipeline   sync.WaitGroup // dispatcher, committer and senders
	replayer   sync.WaitGroup
	stopReplay context.CancelFunc
	closeOnce  sync.Once
	closeErr   error
}

var _ Sink = (*Batcher)(nil)

// batch is a sealed or filling batch.
type pendingBatch struct {
	series  []model.Series
	samples int
	waiters []*pushWaiter

	toSpool bool             // routed to the spool at dispatch
	result  chan pushOutcome // from the sender, cap 1
	done    chan struct{}    // closed once committed; err is set before
	err     error
}

type pushOutcome struct {
	res model.PushResult
	err error
}

// waiter is one Push call; its samples may span several batches.
type pushWaiter struct {
	parts int   // batches not yet committed; protected by Batcher.mu
	err   error // first error of its batches; read after done is closed
	done  chan struct{}
}

// NewBatcher opens the spool in cfg.Spool.Dir (replaying what an earlier
// Batcher left there) and starts sending to downstream, which must be safe
// for concurrent use; it is called with at most Concurrency batches at
// once, plus one replayed batch.
func NewBatcher(cfg BatcherConfig, downstream Sink, logger *slog.Logger, reg prometheus.Registerer) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if downstream == nil {
		return nil, errors.New("batcher: no downstream sink")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := newBatcherMetrics()
	if err := m.register(reg); err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg.Spool, logger, reg, time.Now)
	if err != nil {
		m.unregister(reg)
		return nil, err
	}
	b := &Batcher{
		cfg:        cfg,
		downstream: downstream,
		logger:     logger,
		metrics:    m,
		spool:      sp,
		rejectLog:  rateLimitedLog{every: 10 * time.Second},
		cur:        &pendingBatch{},
		space:      make(chan struct{}),
		kick:       make(chan struct{}, 1),
		slots:      make(chan struct{}, cfg.Concurrency),
		commitQ:    make(chan *pendingBatch, cfg.Concurrency),
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stopReplay = cancel
	b.pipeline.Add(2)
	go b.dispatch()
	go b.commit()
	b.replayer.Add(1)
	go b.replay(ctx)
	return b, nil
}

// Push queues batch and returns once every sample of it was acknowledged
// by the downstream or written to the spool and fsynced. It blocks while
// the in-memory queue is full. It returns a zero PushResult: what the
// downstream made of merged batches is in the metrics and the log. Errors:
// ErrBatcherClosed; the downstream's refusal (errors.Is model.ErrBadData or
// model.ErrTooLarge); a spool failure (the samples are lost); ctx's error,
// in which case the batch may still be delivered. The Batcher keeps
// references to the Labels and Samples of batch until they are delivered
// or spooled, which may be after Push returned on ctx: callers must not
// modify them after the call.
func (b *Batcher) Push(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	n := model.CountSamples(batch)
	if n == 0 {
		return model.PushResult{}, nil
	}
	b.mu.Lock()
	for !b.closed && b.queued > 0 && b.queued+n > b.cfg.QueueSamples {
		space := b.space
		b.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return model.PushResult{}, fmt.Errorf("wait for room in the batcher queue: %w", ctx.Err())
		}
		b.mu.Lock()
	}
	if b.closed {
		b.mu.Unlock()
		return model.PushResult{}, ErrBatcherClosed
	}
	w := &pushWaiter{done: make(chan struct{})}
	b.queued += n
	b.metrics.queue.Set(float64(b.queued))
	for _, s := range batch {
		if len(s.Samples) == 0 {
			continue
		}
		if b.cur.samples > 0 && b.cur.samples+len(s.Samples) > b.cfg.MaxBatchSamples {
			b.sealLocked(flushSize)
		}
		if len(b.cur.waiters) == 0 || b.cur.waiters[len(b.cur.waiters)-1] != w {
			b.cur.waiters = append(b.cur.waiters, w)
			w.parts++
		}
		if b.cur.samples == 0 {
			gen := b.gen
			b.timer = time.AfterFunc(b.cfg.FlushInterval, func() { b.onTimer(gen) })
		}
		b.cur.series = append(b.cur.series, s)
		b.cur.samples += len(s.Samples)
		if b.cur.samples >= b.cfg.MaxBatchSamples {
			b.sealLocked(flushSize)
		}
	}
	b.mu.Unlock()
	select {
	case <-w.done:
		return model.PushResult{}, w.err
	case <-ctx.Done():
		return model.PushResult{}, fmt.Errorf("wait for the batch to be sent or spooled: %w", ctx.Err())
	}
}

func (b *Batcher) onTimer(gen uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen == gen {
		b.sealLocked(flushInterval)
	}
}

// sealLocked hands the filling batch, if it has samples, to the dispatcher.
func (b *Batcher) sealLocked(reason string) {
	if b.cur.samples == 0 {
		return
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	bt := b.cur
	bt.done = make(chan struct{})
	b.cur = &pendingBatch{}
	b.gen++
	b.sealed = append(b.sealed, bt)
	b.outstanding = append(b.outstanding, bt)
	b.metrics.flushes.WithLabelValues(reason).Inc()
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// dispatch starts the sealed batches in order: to the spool while it holds
// anything (so that it keeps seal order), to the downstream otherwise.
func (b *Batcher) dispatch() {
	defer b.pipeline.Done()
	defer close(b.commitQ)
	for {
		b.mu.Lock()
		for len(b.sealed) == 0 && !b.closed {
			b.mu.Unlock()
			<-b.kick
			b.mu.Lock()
		}
		if len(b.sealed) == 0 {
			b.mu.Unlock()
			return
		}
		bt := b.sealed[0]
		b.sealed[0] = nil
		b.sealed = b.sealed[1:]
		b.mu.Unlock()

		// The token is returned after the commit: with Concurrency 1 the
		// next batch is routed only once this one is delivered or spooled.
		b.slots <- struct{}{}
		if !b.spool.empty() {
			bt.toSpool = true
		} else {
			bt.result = make(chan pushOutcome, 1)
			b.pipeline.Add(1)
			go b.send(bt)
		}
		b.commitQ <- bt
	}
}

func (b *Batcher) send(bt *pendingBatch) {
	defer b.pipeline.Done()
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PushTimeout)
	defer cancel()
	res, err := b.downstream.Push(ctx, bt.series)
	bt.result <- pushOutcome{res, err}
}

// commit settles the dispatched batches in seal order. Batches routed to
// the spool that are ready together are spooled with one fsync.
func (b *Batcher) commit() {
	defer b.pipeline.Done()
	var next *pendingBatch
	for {
		bt := next
		next = nil
		if bt == nil {
			var ok bool
			if bt, ok = <-b.commitQ; !ok {
				return
			}
		}
		if !bt.toSpool {
			b.commitSent(bt)
			continue
		}
		group := []*pendingBatch{bt}
	gather:
		for {
			select {
			case nx, ok := <-b.commitQ:
				if !ok {
					break gather
				}
				if !nx.toSpool {
					next = nx
					break gather
				}
				group = append(group, nx)
			default:
				break gather
			}
		}
		errs := b.spoolBatches(group)
		for i, g := range group {
			b.finish(g, errs[i])
		}
	}
}

// commitSent settles a batch sent to the downstream.
func (b *Batcher) commitSent(bt *pendingBatch) {
	out := <-bt.result
	var err error
	switch classifyPush(out.err) {
	case classDelivered:
		b.metrics.sent.Add(float64(bt.samples))
		b.noteResult(out.res, bt.samples)
	case classRefused:
		b.noteRefusal(out.err, bt.samples)
		err = fmt.Errorf("downstream refused a batch of %d samples: %w", bt.samples, out.err)
	case classRetryable:
		b.metrics.downstreamErrors.WithLabelValues(string(classRetryable)).Inc()
		if b.spool.empty() {
			b.logger.Warn("downstream unavailable; spooling batches to disk until it accepts again", "err", out.err)
		}
		err = b.spoolBatches([]*pendingBatch{bt})[0]
	}
	b.finish(bt, err)
}

// spoolBatches writes batches to the spool; an error means that batch's
// samples are lost.
func (b *Batcher) spoolBatches(bts []*pendingBatch) []error {
	series := make([][]model.Series, len(bts))
	for i, bt := range bts {
		series[i] = bt.series
	}
	errs := b.spool.append(series...)
	for i, bt := range bts {
		if errs[i] != nil {
			b.logger.Error("cannot spool batch; its samples are lost", "samples", bt.samples, "err", errs[i])
			errs[i] = fmt.Errorf("spool a batch of %d samples (lost): %w", bt.samples, errs[i])
			continue
		}
		b.metrics.spooled.Add(float64(bt.samples))
	}
	return errs
}

// finish acknowledges bt's callers, frees its room in the queue and
// returns its dispatch token.
func (b *Batcher) finish(bt *pendingBatch, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	bt.err = err
	for _, w := range bt.waiters {
		if err != nil && w.err == nil {
			w.err = err
		}
		if w.parts--; w.parts == 0 {
			close(w.done)
		}
	}
	bt.series, bt.waiters = nil, nil
	b.queued -= bt.samples
	b.metrics.queue.Set(float64(b.queued))
	close(b.space)
	b.space = make(chan struct{})
	if len(b.outstanding) > 0 && b.outstanding[0] == bt {
		b.outstanding[0] = nil
		b.outstanding = b.outstanding[1:]
	}
	close(bt.done)
	<-b.slots
}

// Flush seals the filling batch and waits until every batch sealed so far
// was delivered, spooled or refused. It returns the errors of those that
// were neither delivered nor spooled, or ctx's error.
func (b *Batcher) Flush(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrBatcherClosed
	}
	b.sealLocked(flushFlush)
	pending := append([]*pendingBatch(nil), b.outstanding...)
	b.mu.Unlock()
	return waitBatches(ctx, pending)
}

func waitBatches(ctx context.Context, pending []*pendingBatch) error {
	var errs []error
	for _, bt := range pending {
		select {
		case <-bt.done:
			if bt.err != nil {
				errs = append(errs, bt.err)
			}
		case <-ctx.Done():
			return fmt.Errorf("flush batches: %w", ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// Close seals the filling batch, waits until every batch is delivered,
// spooled or refused (in-flight pushes end within PushTimeout), stops the
// replayer and closes the spool. Later Pushes fail with ErrBatcherClosed.
// It returns the errors of batches that were neither delivered nor spooled
// and of closing the spool. Safe to call twice.
func (b *Batcher) Close() error {
	b.closeOnce.Do(func() {
		b.mu.Lock()
		b.sealLocked(flushClose)
		b.closed = true
		pending := append([]*pendingBatch(nil), b.outstanding...)
		close(b.space)
		b.space = make(chan struct{})
		b.mu.Unlock()
		select {
		case b.kick <- struct{}{}:
		default:
		}
		err := waitBatches(context.Background(), pending)
		b.pipeline.Wait()
		b.stopReplay()
		b.replayer.Wait()
		b.closeErr = errors.Join(err, b.spool.close())
	})
	return b.closeErr
}

// Run blocks until ctx is done, then closes the Batcher.
func (b *Batcher) Run(ctx context.Context) error {
	<-ctx.Done()
	return b.Close()
}

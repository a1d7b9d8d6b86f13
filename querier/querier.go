package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
)

// Config configures the engine and the fan-out.
type Config struct {
	Timeout       time.Duration `yaml:"timeout"`
	MaxSamples    int           `yaml:"max_samples"`
	LookbackDelta time.Duration `yaml:"lookback_delta"`
	// IngesterTimeout bounds one call to one ingester.
	IngesterTimeout time.Duration `yaml:"ingester_timeout"`
	// HedgeAfter: an ingester that keeps a query waiting this long is
	// given up on, if the answer stays complete without it.
	HedgeAfter time.Duration `yaml:"hedge_after"`
	// AllowPartial answers with a warning instead of an error when more
	// ingesters failed than the replication tolerates.
	AllowPartial bool `yaml:"allow_partial"`
	// Retention of the tiers, for the choice of resolution; set from the
	// compactor's retention flags.
	Retention Retention `yaml:"-"`
}

// DefaultConfig returns Prometheus' defaults.
func DefaultConfig() Config {
	return Config{Timeout: 2 * time.Minute, MaxSamples: 50_000_000, LookbackDelta: 5 * time.Minute,
		IngesterTimeout: 30 * time.Second, HedgeAfter: time.Second}
}

// RegisterFlags adds the query flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "query.timeout", c.Timeout, "maximum time a query may take")
	f.IntVar(&c.MaxSamples, "query.max-samples", c.MaxSamples, "samples one query may load into memory at most")
	f.DurationVar(&c.LookbackDelta, "query.lookback-delta", c.LookbackDelta, "how far back an instant selector looks for a sample")
	f.DurationVar(&c.IngesterTimeout, "querier.ingester-timeout", c.IngesterTimeout, "timeout of one call to one ingester")
	f.DurationVar(&c.HedgeAfter, "querier.hedge-after", c.HedgeAfter, "stop waiting for an ingester silent this long when the answer is complete without it (cluster mode)")
	f.BoolVar(&c.AllowPartial, "querier.allow-partial", c.AllowPartial, "when more ingesters fail than replication tolerates, answer with a warning instead of failing (cluster mode)")
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.Timeout <= 0 || c.MaxSamples <= 0 || c.LookbackDelta <= 0 || c.IngesterTimeout <= 0 || c.HedgeAfter <= 0 {
		return errors.New("querier: timeout, max_samples, lookback_delta, ingester_timeout and hedge_after must be positive")
	}
	return nil
}

// NewEngine returns the PromQL engine Vigil runs queries with.
func NewEngine(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:                   logger,
		Reg:                      reg,
		MaxSamples:               cfg.MaxSamples,
		Timeout:                  cfg.Timeout,
		LookbackDelta:            cfg.LookbackDelta,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		EnableDelayedNameRemoval: false,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		Parser:                   parser.NewParser(parser.Options{}),
	})
}

// Ingester is one ingester a query may read from.
type Ingester struct {
	Name    string
	Client  ingesterpb.IngesterClient
	Healthy bool // false: known down, counted as failed without a call
}

// Replication says how many copies of each series exist and how many
// ingesters acknowledged each write; Factor-Quorum ingesters may fail with
// every answer still complete.
type Replication struct{ Factor, Quorum int }

// Ingesters returns every ingester that may hold data and the replication.
// The caller must not modify the returned slice.
type Ingesters func() ([]Ingester, Replication)

// Queryable fans reads out to every ingester and merges the replicas.
type Queryable struct {
	cfg       Config
	ingesters Ingesters
	logger    *slog.Logger
	metrics   *metrics
}

var _ storage.Queryable = (*Queryable)(nil)

// New returns a Queryable over the ingesters.
func New(cfg Config, ingesters Ingesters, logger *slog.Logger, reg prometheus.Registerer) (*Queryable, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Queryable{cfg: cfg, ingesters: ingesters, logger: logger, metrics: m}, nil
}

// Querier implements storage.Queryable.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	ings, repl := q.ingesters()
	return &querier{q: q, ings: ings, repl: repl, mint: mint, maxt: maxt}, nil
}

// TSDBStatus asks every ingester for its cardinality and adds them up. In
// a cluster every series is counted once per replica, so the sums are
// divided by the replication factor (an estimate: exact when every series
// is at full replication and every ingester answered).
func (q *Queryable) TSDBStatus(ctx context.Context, limit int) (model.TSDBStatus, error) {
	ings, repl := q.ingesters()
	qq := &querier{q: q, ings: ings, repl: repl}
	resps, _, err := gather(ctx, qq, qq.newFanout(), func(ctx context.Context, c ingesterpb.IngesterClient) (*ingesterpb.StatsResponse, error) {
		r, err := c.Stats(ctx, &ingesterpb.StatsRequest{Limit: int64(limit)})
		return r, ingesterpb.FromStatus(err)
	})
	var st model.TSDBStatus
	if err != nil {
		return st, err
	}
	for _, r := range resps {
		st.NumSeries += r.NumSeries
		st.NumLabelPairs += r.NumLabelPairs
		if st.MinTime == 0 || r.MinTimeMs < st.MinTime {
			st.MinTime = r.MinTimeMs
		}
		st.MaxTime = max(st.MaxTime, r.MaxTimeMs)
		st.SeriesCountByMetricName = addCounts(st.SeriesCountByMetricName, r.SeriesCountByMetricName, 0)
		st.LabelValueCountByLabelName = addCounts(st.LabelValueCountByLabelName, r.LabelValueCountByLabelName, 0)
		st.MemoryInBytesByLabelName = addCounts(st.MemoryInBytesByLabelName, r.MemoryInBytesByLabelName, 0)
		st.SeriesCountByLabelValuePair = addCounts(st.SeriesCountByLabelValuePair, r.SeriesCountByLabelValuePair, 0)
	}
	if f := uint64(qq.repl.Factor); f > 1 {
		st.NumSeries /= f
		st.NumLabelPairs /= f
		for _, l := range [][]model.NameCount{st.SeriesCountByMetricName, st.LabelValueCountByLabelName, st.MemoryInBytesByLabelName, st.SeriesCountByLabelValuePair} {
			for i := range l {
				l[i].Value /= f
			}
		}
	}
	st.SeriesCountByMetricName = addCounts(st.SeriesCountByMetricName, nil, limit)
	st.LabelValueCountByLabelName = addCounts(st.LabelValueCountByLabelName, nil, limit)
	st.MemoryInBytesByLabelName = addCounts(st.MemoryInBytesByLabelName, nil, limit)
	st.SeriesCountByLabelValuePair = addCounts(st.SeriesCountByLabelValuePair, nil, limit)
	return st, nil
}

func addCounts(into []model.NameCount, add []*ingesterpb.NameCount, limit int) []model.NameCount {
	for _, a := range add {
		if i := slices.IndexFunc(into, func(n model.NameCount) bool { return n.Name == a.Name }); i >= 0 {
			into[i].Value += a.Count
		} else {
			into = append(into, model.NameCount{Name: a.Name, Value: a.Count})
		}
	}
	slices.SortFunc(into, func(a, b model.NameCount) int {
		if a.Value != b.Value {
			if a.Value > b.Value {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	if limit > 0 && len(into) > limit {
		into = into[:limit]
	}
	if into == nil {
		into = []model.NameCount{}
	}
	return into
}

type querier struct {
	q          *Queryable
	ings       []Ingester
	repl       Replication
	mint, maxt int64

	mu      sync.Mutex // protects cancels
	cancels []context.CancelFunc
}

// Close stops the Select streams still open (a query that stopped reading
// early leaves them waiting to send).
func (q *querier) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, c := range q.cancels {
		c()
	}
	q.cancels = nil
	return nil
}

// Select fans out to every ingester and merges the replicas' series
// (identical samples are deduplicated by the merge). A selector rewritten
// by RewriteForTiers names a view; Select then reads the resolution
// chooseResolution picks (docs/downsampling.md, "Reads").
func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	view, ms, err := ViewOf(ms)
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("%w: %v", model.ErrBadData, err))
	}
	if hints != nil && hints.Func == "series" {
		return q.selectSeriesOnly(ctx, mint, maxt, hints.Limit, ms)
	}
	if view == "" {
		return q.selectRaw(ctx, mint, maxt, ms)
	}
	res := q.q.chooseResolution(ctx, hints, mint)
	q.q.metrics.selects.WithLabelValues(res.String()).Inc()
	if res == ResolutionRaw {
		return rawView(view, q.selectRaw(ctx, mint, maxt, ms))
	}
	return q.selectTier(ctx, res, view, mint, maxt, ms)
}

// selectRaw reads raw samples in [mint, maxt].
func (q *querier) selectRaw(ctx context.Context, mint, maxt int64, ms []*labels.Matcher) storage.SeriesSet {
	sets, f := q.fanSelect(ctx, &ingesterpb.SelectRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.FromMatchers(ms)})
	if len(sets) == 0 {
		return emptyOutcome(f)
	}
	ss := make([]storage.SeriesSet, len(sets))
	for i, s := range sets {
		ss[i] = storage.NewSeriesSetFromChunkSeriesSet(s)
	}
	if len(ss) == 1 {
		return ss[0]
	}
	return storage.NewMergeSeriesSet(ss, 0, storage.ChainedSeriesMerge)
}

// fanSelect opens req's Select stream on every healthy ingester; none when
// too many are known down already (the fanout's outcome says so).
func (q *querier) fanSelect(ctx context.Context, req *ingesterpb.SelectRequest) ([]storage.ChunkSeriesSet, *fanout) {
	f := q.newFanout()
	if _, err := f.outcome(); err != nil {
		return nil, f
	}
	var sets []storage.ChunkSeriesSet
	for _, ing := range q.ings {
		if ing.Healthy {
			ss := newStreamSet(ctx, q.q.cfg, f, ing, req)
			q.mu.Lock()
			q.cancels = append(q.cancels, ss.cancel)
			q.mu.Unlock()
			sets = append(sets, ss)
		}
	}
	return sets, f
}

// emptyOutcome is the answer of a read that reached no ingester.
func emptyOutcome(f *fanout) storage.SeriesSet {
	if w, err := f.outcome(); err != nil || len(w) > 0 {
		return &listSeriesSet{i: -1, warnings: w, err: err}
	}
	return storage.EmptySeriesSet()
}

// selectSeriesOnly answers a Select that needs labels only (the series
// API) through the Series RPC, which sends no chunks.
func (q *querier) selectSeriesOnly(ctx context.Context, mint, maxt int64, limit int, ms []*labels.Matcher) storage.SeriesSet {
	req := &ingesterpb.SeriesRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: int64(limit)}
	lists, w, err := gather(ctx, q, q.newFanout(), func(ctx context.Context, c ingesterpb.IngesterClient) ([]storage.Series, error) {
		stream, err := c.Series(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("series from ingester: %w", ingesterpb.FromStatus(err))
		}
		var out []storage.Series
		var sb labels.ScratchBuilder
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return nil, fmt.Errorf("series from ingester: %w", ingesterpb.FromStatus(err))
			}
			for _, ls := range resp.Series {
				out = append(out, storage.NewListSeries(ingesterpb.ToLabels(ls.Labels, &sb), nil))
			}
		}
	})
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	all := slices.Concat(lists...)
	slices.SortFunc(all, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	all = slices.CompactFunc(all, func(a, b storage.Series) bool { return labels.Equal(a.Labels(), b.Labels()) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return &listSeriesSet{list: all, i: -1, warnings: w}
}

type listSeriesSet struct {
	list     []storage.Series
	i        int
	warnings annotations.Annotations
	err      error
}

func (l *listSeriesSet) Next() bool                        { l.i++; return l.i < len(l.list) }
func (l *listSeriesSet) At() storage.Series                { return l.list[l.i] }
func (l *listSeriesSet) Err() error                        { return l.err }
func (l *listSeriesSet) Warnings() annotations.Annotations { return l.warnings }

// streamSet reads one ingester's Select stream, a message ahead. An
// ingester that fails, or keeps the set waiting longer than HedgeAfter
// while the answer is complete without it, ends the set early without an
// error; beyond the tolerance the set fails (or warns, with AllowPartial).
type streamSet struct {
	ctx     context.Context
	cancel  context.CancelFunc
	cfg     Config
	f       *fanout
	name    string
	msgs    chan *ingesterpb.SelectResponse
	recvErr error // set before msgs is closed

	buf  []*ingesterpb.ChunkSeries
	cur  *ingesterpb.ChunkSeries
	sb   labels.ScratchBuilder
	err  error
	warn annotations.Annotations
	done bool
}

func newStreamSet(ctx context.Context, cfg Config, f *fanout, ing Ingester, req *ingesterpb.SelectRequest) *streamSet {
	ctx, cancel := context.WithTimeout(ctx, cfg.IngesterTimeout)
	s := &streamSet{ctx: ctx, cancel: cancel, cfg: cfg, f: f, name: ing.Name, msgs: make(chan *ingesterpb.SelectResponse, 1)}
	go s.receive(ing.Client, req)
	return s
}

func (s *streamSet) receive(c ingesterpb.IngesterClient, req *ingesterpb.SelectRequest) {
	defer close(s.msgs)
	stream, err := c.Select(s.ctx, req)
	if err != nil {
		s.recvErr = fmt.Errorf("select from ingester %s: %w", s.name, ingesterpb.FromStatus(err))
		return
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			s.recvErr = fmt.Errorf("select from ingester %s: %w", s.name, ingesterpb.FromStatus(err))
			return
		}
		select {
		case s.msgs <- resp:
		case <-s.ctx.Done():
			s.recvErr = s.ctx.Err()
			return
		}
	}
}

func (s *streamSet) Next() bool {
	for len(s.buf) == 0 {
		if s.done {
			return false
		}
		hedge := time.NewTimer(s.cfg.HedgeAfter)
		select {
		case resp, ok := <-s.msgs:
			hedge.Stop()
			if !ok {
				s.finish(s.recvErr)
				return false
			}
			s.buf = resp.Series
		case <-hedge.C:
			if s.f.giveUp(s.name) {
				s.finish(nil)
				return false
			}
			// Needed for a complete answer: keep waiting, up to the
			// ingester timeout.
			select {
			case resp, ok := <-s.msgs:
				if !ok {
					s.finish(s.recvErr)
					return false
				}
				s.buf = resp.Series
			case <-s.ctx.Done():
				s.finish(fmt.Errorf("select from ingester %s: %w", s.name, s.ctx.Err()))
				return false
			}
		}
	}
	s.cur, s.buf = s.buf[0], s.buf[1:]
	return true
}

// finish ends the set; err is the ingester's failure, if any.
func (s *streamSet) finish(err error) {
	s.done = true
	s.cancel()
	if errors.Is(err, model.ErrBadData) { // the request's fault, not the ingester's
		s.err = err
		return
	}
	if err != nil {
		s.f.fail(s.name, err)
	} else {
		s.f.q.metrics.calls.WithLabelValues("ok").Inc()
	}
	s.warn, s.err = s.f.outcome()
}

func (s *streamSet) At() storage.ChunkSeries {
	return &wireSeries{lset: ingesterpb.ToLabels(s.cur.Labels, &s.sb), chunks: s.cur.Chunks}
}

func (s *streamSet) Err() error                        { return s.err }
func (s *streamSet) Warnings() annotations.Annotations { return s.warn }

type wireSeries struct {
	lset   labels.Labels
	chunks []*ingesterpb.Chunk
}

func (w *wireSeries) Labels() labels.Labels { return w.lset }

func (w *wireSeries) Iterator(chunks.Iterator) chunks.Iterator {
	return &wireChunkIter{chunks: w.chunks, i: -1}
}

type wireChunkIter struct {
	chunks []*ingesterpb.Chunk
	i      int
	cur    chunks.Meta
	err    error
}

func (it *wireChunkIter) Next() bool {
	if it.err != nil || it.i+1 >= len(it.chunks) {
		return false
	}
	it.i++
	c := it.chunks[it.i]
	if model.ChunkEncoding(c.Encoding) != model.EncXOR {
		it.err = fmt.Errorf("chunk encoding %d is not supported by this querier", c.Encoding)
		return false
	}
	chk, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
	if err != nil {
		it.err = err
		return false
	}
	it.cur = chunks.Meta{Chunk: chk, MinTime: c.MinTimeMs, MaxTime: c.MaxTimeMs}
	return true
}

func (it *wireChunkIter) At() chunks.Meta { return it.cur }
func (it *wireChunkIter) Err() error      { return it.err }

func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &ingesterpb.LabelNamesRequest{StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: limitOf(hints)}
	lists, w, err := gather(ctx, q, q.newFanout(), func(ctx context.Context, c ingesterpb.IngesterClient) ([]string, error) {
		r, err := c.LabelNames(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("label names from ingester: %w", ingesterpb.FromStatus(err))
		}
		return r.Names, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return sortedUnique(slices.Concat(lists...), hints), w, nil
}

func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	req := &ingesterpb.LabelValuesRequest{Name: name, StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: limitOf(hints)}
	lists, w, err := gather(ctx, q, q.newFanout(), func(ctx context.Context, c ingesterpb.IngesterClient) ([]string, error) {
		r, err := c.LabelValues(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("label values from ingester: %w", ingesterpb.FromStatus(err))
		}
		return r.Values, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return sortedUnique(slices.Concat(lists...), hints), w, nil
}

func limitOf(h *storage.LabelHints) int64 {
	if h == nil {
		return 0
	}
	return int64(h.Limit)
}

func sortedUnique(s []string, hints *storage.LabelHints) []string {
	slices.Sort(s)
	s = slices.Compact(s)
	if hints != nil && hints.Limit > 0 && len(s) > hints.Limit {
		s = s[:hints.Limit]
	}
	return s
}

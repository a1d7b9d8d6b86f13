package querier

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
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
}

// DefaultConfig returns Prometheus' defaults.
func DefaultConfig() Config {
	return Config{Timeout: 2 * time.Minute, MaxSamples: 50_000_000, LookbackDelta: 5 * time.Minute}
}

// RegisterFlags adds the query flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "query.timeout", c.Timeout, "maximum time a query may take")
	f.IntVar(&c.MaxSamples, "query.max-samples", c.MaxSamples, "samples one query may load into memory at most")
	f.DurationVar(&c.LookbackDelta, "query.lookback-delta", c.LookbackDelta, "how far back an instant selector looks for a sample")
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.Timeout <= 0 || c.MaxSamples <= 0 || c.LookbackDelta <= 0 {
		return errors.New("querier: timeout, max_samples and lookback_delta must be positive")
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

// Clients returns the ingesters to query. The caller must not modify the
// returned slice.
type Clients func() []ingesterpb.IngesterClient

// Queryable fans reads out to every ingester Clients returns.
type Queryable struct {
	clients Clients
	logger  *slog.Logger
}

var _ storage.Queryable = (*Queryable)(nil)

// New returns a Queryable over the ingesters.
func New(clients Clients, logger *slog.Logger) *Queryable {
	return &Queryable{clients: clients, logger: logger}
}

// Querier implements storage.Queryable.
func (q *Queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{clients: q.clients(), mint: mint, maxt: maxt}, nil
}

// TSDBStatus asks every ingester for its cardinality and adds them up.
func (q *Queryable) TSDBStatus(ctx context.Context, limit int) (model.TSDBStatus, error) {
	var st model.TSDBStatus
	for _, c := range q.clients() {
		r, err := c.Stats(ctx, &ingesterpb.StatsRequest{Limit: int64(limit)})
		if err != nil {
			return st, ingesterpb.FromStatus(err)
		}
		st.NumSeries += r.NumSeries
		st.NumLabelPairs += r.NumLabelPairs
		if st.MinTime == 0 || r.MinTimeMs < st.MinTime {
			st.MinTime = r.MinTimeMs
		}
		st.MaxTime = max(st.MaxTime, r.MaxTimeMs)
		st.SeriesCountByMetricName = addCounts(st.SeriesCountByMetricName, r.SeriesCountByMetricName, limit)
		st.LabelValueCountByLabelName = addCounts(st.LabelValueCountByLabelName, r.LabelValueCountByLabelName, limit)
		st.MemoryInBytesByLabelName = addCounts(st.MemoryInBytesByLabelName, r.MemoryInBytesByLabelName, limit)
		st.SeriesCountByLabelValuePair = addCounts(st.SeriesCountByLabelValuePair, r.SeriesCountByLabelValuePair, limit)
	}
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
	clients    []ingesterpb.IngesterClient
	mint, maxt int64
}

func (q *querier) Close() error { return nil }

func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	if hints != nil && hints.Func == "series" {
		return q.selectSeriesOnly(ctx, mint, maxt, hints.Limit, ms)
	}
	req := &ingesterpb.SelectRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.FromMatchers(ms)}
	sets := make([]storage.SeriesSet, 0, len(q.clients))
	for _, c := range q.clients {
		stream, err := c.Select(ctx, req)
		if err != nil {
			return storage.ErrSeriesSet(fmt.Errorf("select from ingester: %w", ingesterpb.FromStatus(err)))
		}
		sets = append(sets, storage.NewSeriesSetFromChunkSeriesSet(&streamSet{stream: stream}))
	}
	if len(sets) == 1 {
		return sets[0]
	}
	return storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
}

// selectSeriesOnly answers a Select that needs labels only (the series
// API) through the Series RPC, which sends no chunks.
func (q *querier) selectSeriesOnly(ctx context.Context, mint, maxt int64, limit int, ms []*labels.Matcher) storage.SeriesSet {
	req := &ingesterpb.SeriesRequest{StartMs: mint, EndMs: maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: int64(limit)}
	var all []storage.Series
	var sb labels.ScratchBuilder
	for _, c := range q.clients {
		stream, err := c.Series(ctx, req)
		if err != nil {
			return storage.ErrSeriesSet(fmt.Errorf("series from ingester: %w", ingesterpb.FromStatus(err)))
		}
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return storage.ErrSeriesSet(fmt.Errorf("series from ingester: %w", ingesterpb.FromStatus(err)))
			}
			for _, ls := range resp.Series {
				all = append(all, storage.NewListSeries(ingesterpb.ToLabels(ls.Labels, &sb), nil))
			}
		}
	}
	slices.SortFunc(all, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	all = slices.CompactFunc(all, func(a, b storage.Series) bool { return labels.Equal(a.Labels(), b.Labels()) })
	if limit > 0 && len(all) > limit {
		all = all[:limit]
	}
	return &listSeriesSet{list: all, i: -1}
}

type listSeriesSet struct {
	list []storage.Series
	i    int
}

func (l *listSeriesSet) Next() bool                        { l.i++; return l.i < len(l.list) }
func (l *listSeriesSet) At() storage.Series                { return l.list[l.i] }
func (l *listSeriesSet) Err() error                        { return nil }
func (l *listSeriesSet) Warnings() annotations.Annotations { return nil }

// streamSet reads a Select stream lazily, one message at a time.
type streamSet struct {
	stream ingesterpb.Ingester_SelectClient
	buf    []*ingesterpb.ChunkSeries
	cur    *ingesterpb.ChunkSeries
	sb     labels.ScratchBuilder
	err    error
	done   bool
}

func (s *streamSet) Next() bool {
	for len(s.buf) == 0 {
		if s.done || s.err != nil {
			return false
		}
		resp, err := s.stream.Recv()
		if err == io.EOF {
			s.done = true
			return false
		}
		if err != nil {
			s.err = fmt.Errorf("select from ingester: %w", ingesterpb.FromStatus(err))
			return false
		}
		s.buf = resp.Series
	}
	s.cur, s.buf = s.buf[0], s.buf[1:]
	return true
}

func (s *streamSet) At() storage.ChunkSeries {
	return &wireSeries{lset: ingesterpb.ToLabels(s.cur.Labels, &s.sb), chunks: s.cur.Chunks}
}

func (s *streamSet) Err() error                        { return s.err }
func (s *streamSet) Warnings() annotations.Annotations { return nil }

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
	var all []string
	for _, c := range q.clients {
		r, err := c.LabelNames(ctx, &ingesterpb.LabelNamesRequest{StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: limitOf(hints)})
		if err != nil {
			return nil, nil, fmt.Errorf("label names from ingester: %w", ingesterpb.FromStatus(err))
		}
		all = append(all, r.Names...)
	}
	return sortedUnique(all, hints), nil, nil
}

func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var all []string
	for _, c := range q.clients {
		r, err := c.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Name: name, StartMs: q.mint, EndMs: q.maxt, Matchers: ingesterpb.FromMatchers(ms), Limit: limitOf(hints)})
		if err != nil {
			return nil, nil, fmt.Errorf("label values from ingester: %w", ingesterpb.FromStatus(err))
		}
		all = append(all, r.Values...)
	}
	return sortedUnique(all, hints), nil, nil
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

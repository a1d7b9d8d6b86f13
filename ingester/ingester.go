package ingester

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/model/downsample"
	vstorage "github.com/vigil-tsdb/vigil/storage"
)

// Store is what the ingester needs from storage.
type Store interface {
	// Append stores a batch; see storage.DB.Append.
	Append(ctx context.Context, batch []model.Series) (model.PushResult, error)
	storage.ChunkQueryable
	// Stats reports head cardinality, top limit per list.
	Stats(limit int) model.TSDBStatus
	// Repair (see storage.DB).
	SeriesDigests(ctx context.Context, mint, maxt int64, fn func(vstorage.SeriesDigest) error) error
	SeriesSamples(ctx context.Context, lset labels.Labels, mint, maxt int64) ([]model.Sample, error)
	Backfill(ctx context.Context, batch []model.Series) (model.PushResult, error)
	DeleteSeries(ctx context.Context, match func(labels.Labels) bool, maxt int64) (int, error)
	ColdChanges() uint64
}

// TierReader reads the window aggregates of a downsampled tier (1 or 2)
// whose window end lies in [mint, maxt], per series matching ms, sorted by
// labels; compactor.Windows over the ingester's storage is one. The result
// belongs to the caller.
type TierReader func(ctx context.Context, tier uint8, mint, maxt int64, ms ...*labels.Matcher) ([]downsample.Series, error)

// rawChunks is implemented by chunk series whose chunk bytes can be sent
// without re-encoding (storage's).
type rawChunks interface {
	Chunks(fn func(mint, maxt int64, data []byte))
}

// Config configures the gRPC service, repair and hand-off.
type Config struct {
	// SelectBatchBytes is the approximate size of one streamed Select message.
	SelectBatchBytes int `yaml:"select_batch_bytes"`
	// Partitions is the ring's partition count (0: single node, unchecked).
	Partitions int `yaml:"-"`

	RepairInterval time.Duration `yaml:"repair_interval"`
	RepairSettle   time.Duration `yaml:"repair_settle"`
	RepairLookback time.Duration `yaml:"repair_lookback"`
	RepairRate     int           `yaml:"repair_rate"`
	HandoffTimeout time.Duration `yaml:"handoff_timeout"`
	LeaveWait      time.Duration `yaml:"leave_wait"`
}

// DefaultConfig returns working defaults.
func DefaultConfig() Config {
	return Config{
		SelectBatchBytes: 1 << 20,
		RepairInterval:   5 * time.Minute,
		RepairSettle:     time.Minute,
		RepairLookback:   8 * 24 * time.Hour,
		RepairRate:       200_000,
		HandoffTimeout:   10 * time.Minute,
		LeaveWait:        5 * time.Second,
	}
}

// RegisterFlags adds the -ingester.* flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.RepairInterval, "ingester.repair-interval", c.RepairInterval, "how often repair compares this ingester's data with the other owners (cluster mode)")
	f.DurationVar(&c.RepairSettle, "ingester.repair-settle", c.RepairSettle, "repair compares data up to now minus this, leaving writes in flight alone")
	f.DurationVar(&c.RepairLookback, "ingester.repair-lookback", c.RepairLookback, "how far back repair compares data (at least the raw retention)")
	f.IntVar(&c.RepairRate, "ingester.repair-rate", c.RepairRate, "samples per second repair and hand-off send at most (0: unlimited)")
	f.DurationVar(&c.HandoffTimeout, "ingester.handoff-timeout", c.HandoffTimeout, "how long a leaving ingester tries to hand its data off before it exits anyway")
	f.DurationVar(&c.LeaveWait, "ingester.leave-wait", c.LeaveWait, "after announcing leaving, how long to wait for distributors to stop writing here before the hand-off")
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.RepairInterval <= 0 || c.RepairLookback <= 0 || c.HandoffTimeout <= 0 {
		return errors.New("ingester: repair_interval, repair_lookback and handoff_timeout must be positive")
	}
	if c.RepairSettle < 0 || c.LeaveWait < 0 || c.RepairRate < 0 {
		return errors.New("ingester: repair_settle, leave_wait and repair_rate must not be negative")
	}
	return nil
}

// Ingester implements ingesterpb.IngesterServer over a Store.
type Ingester struct {
	ingesterpb.UnimplementedIngesterServer
	cfg     Config
	store   Store
	logger  *slog.Logger
	digests *digestCache
	tiers   TierReader

	pushDuration *prometheus.HistogramVec
	samplesIn    prometheus.Counter
}

var _ ingesterpb.IngesterServer = (*Ingester)(nil)

// New returns an ingester serving store.
func New(cfg Config, store Store, logger *slog.Logger, reg prometheus.Registerer) (*Ingester, error) {
	if cfg.SelectBatchBytes <= 0 {
		cfg.SelectBatchBytes = DefaultConfig().SelectBatchBytes
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &Ingester{
		cfg: cfg, store: store, logger: logger, digests: &digestCache{store: store, now: time.Now},
		pushDuration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_ingester_request_duration_seconds", Help: "Duration of ingester RPCs.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"method"}),
		samplesIn:    f.NewCounter(prometheus.CounterOpts{Name: "vigil_ingester_received_samples_total", Help: "Samples received by Push."}),
	}, nil
}

// SetTierReader lets Select answer for the downsampled tiers (without one
// it refuses them). Call it before serving.
func (i *Ingester) SetTierReader(r TierReader) { i.tiers = r }

func (i *Ingester) observe(method string, start time.Time) {
	i.pushDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

// Push appends a batch.
func (i *Ingester) Push(ctx context.Context, req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
	defer i.observe("Push", time.Now())
	batch, err := ingesterpb.ToSeries(req)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	i.samplesIn.Add(float64(model.CountSamples(batch)))
	res, err := i.store.Append(ctx, batch)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	return ingesterpb.FromResult(res), nil
}

func timeRange(start, end int64) (int64, int64) {
	if end == 0 {
		end = math.MaxInt64
	}
	return start, end
}

func (i *Ingester) chunkQuerier(start, end int64, pbms []*ingesterpb.LabelMatcher) (storage.ChunkQuerier, []*labels.Matcher, error) {
	ms, err := ingesterpb.ToMatchers(pbms)
	if err != nil {
		return nil, nil, err
	}
	mint, maxt := timeRange(start, end)
	q, err := i.store.ChunkQuerier(mint, maxt)
	return q, ms, err
}

// Select streams matching series with their chunks.
func (i *Ingester) Select(req *ingesterpb.SelectRequest, stream ingesterpb.Ingester_SelectServer) error {
	defer i.observe("Select", time.Now())
	if req.Tier != 0 {
		return i.selectTier(req, stream)
	}
	ctx := stream.Context()
	q, ms, err := i.chunkQuerier(req.StartMs, req.EndMs, req.Matchers)
	if err != nil {
		return ingesterpb.ToStatus(err)
	}
	defer q.Close()
	mint, maxt := timeRange(req.StartMs, req.EndMs)
	ss := q.Select(ctx, true, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	resp := &ingesterpb.SelectResponse{}
	size := 0
	for ss.Next() {
		s := ss.At()
		cs := &ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(s.Labels())}
		if rc, ok := s.(rawChunks); ok {
			rc.Chunks(func(mint, maxt int64, data []byte) {
				cs.Chunks = append(cs.Chunks, &ingesterpb.Chunk{MinTimeMs: mint, MaxTimeMs: maxt, Encoding: uint32(model.EncXOR), Data: data})
				size += len(data) + 24
			})
		} else {
			it := s.Iterator(nil)
			for it.Next() {
				m := it.At()
				data := m.Chunk.Bytes()
				cs.Chunks = append(cs.Chunks, &ingesterpb.Chunk{MinTimeMs: m.MinTime, MaxTimeMs: m.MaxTime, Encoding: uint32(m.Chunk.Encoding()), Data: data})
				size += len(data) + 24
			}
			if err := it.Err(); err != nil {
				return ingesterpb.ToStatus(err)
			}
		}
		resp.Series = append(resp.Series, cs)
		if size >= i.cfg.SelectBatchBytes {
			if err := stream.Send(resp); err != nil {
				return err
			}
			resp, size = &ingesterpb.SelectResponse{}, 0
		}
	}
	if err := ss.Err(); err != nil {
		return ingesterpb.ToStatus(err)
	}
	if len(resp.Series) > 0 {
		return stream.Send(resp)
	}
	return nil
}

// selectTier streams the windows of a downsampled tier as aggregate chunks
// (docs/downsampling.md, "Reads").
func (i *Ingester) selectTier(req *ingesterpb.SelectRequest, stream ingesterpb.Ingester_SelectServer) error {
	if req.Tier > math.MaxUint8 || i.tiers == nil {
		return ingesterpb.ToStatus(fmt.Errorf("%w: this ingester has no tier %d", model.ErrBadData, req.Tier))
	}
	ms, err := ingesterpb.ToMatchers(req.Matchers)
	if err != nil {
		return ingesterpb.ToStatus(err)
	}
	mint, maxt := timeRange(req.StartMs, req.EndMs)
	set, err := i.tiers(stream.Context(), uint8(req.Tier), mint, maxt, ms...)
	if err != nil {
		return ingesterpb.ToStatus(err)
	}
	resp := &ingesterpb.SelectResponse{}
	size := 0
	for _, s := range set {
		cs := &ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(s.Labels)}
		for _, p := range s.Parts {
			if p.Chunk != nil { // as stored
				cs.Chunks = append(cs.Chunks, &ingesterpb.Chunk{MinTimeMs: p.Mint, MaxTimeMs: p.Maxt, Encoding: uint32(downsample.EncodingAggregate), Data: p.Chunk})
				size += len(p.Chunk) + 24
				continue
			}
			for ws := p.Windows; len(ws) > 0; {
				g := ws[:min(len(ws), downsample.MaxChunkWindows)]
				ws = ws[len(g):]
				data, err := downsample.AppendChunk(nil, g)
				if err != nil {
					return ingesterpb.ToStatus(fmt.Errorf("series %s: %w", s.Labels, err))
				}
				cs.Chunks = append(cs.Chunks, &ingesterpb.Chunk{MinTimeMs: g[0].End, MaxTimeMs: g[len(g)-1].End, Encoding: uint32(downsample.EncodingAggregate), Data: data})
				size += len(data) + 24
			}
		}
		resp.Series = append(resp.Series, cs)
		if size >= i.cfg.SelectBatchBytes {
			if err := stream.Send(resp); err != nil {
				return err
			}
			resp, size = &ingesterpb.SelectResponse{}, 0
		}
	}
	if len(resp.Series) > 0 {
		return stream.Send(resp)
	}
	return nil
}

// Series streams the label sets of matching series with data in range.
func (i *Ingester) Series(req *ingesterpb.SeriesRequest, stream ingesterpb.Ingester_SeriesServer) error {
	defer i.observe("Series", time.Now())
	q, ms, err := i.chunkQuerier(req.StartMs, req.EndMs, req.Matchers)
	if err != nil {
		return ingesterpb.ToStatus(err)
	}
	defer q.Close()
	mint, maxt := timeRange(req.StartMs, req.EndMs)
	ss := q.Select(stream.Context(), true, &storage.SelectHints{Start: mint, End: maxt, Limit: int(req.Limit), Func: "series"}, ms...)
	resp := &ingesterpb.SeriesResponse{}
	for ss.Next() {
		resp.Series = append(resp.Series, &ingesterpb.LabelSet{Labels: ingesterpb.FromLabels(ss.At().Labels())})
		if len(resp.Series) >= 1000 {
			if err := stream.Send(resp); err != nil {
				return err
			}
			resp = &ingesterpb.SeriesResponse{}
		}
	}
	if err := ss.Err(); err != nil {
		return ingesterpb.ToStatus(err)
	}
	if len(resp.Series) > 0 {
		return stream.Send(resp)
	}
	return nil
}

// LabelNames returns label names of matching series.
func (i *Ingester) LabelNames(ctx context.Context, req *ingesterpb.LabelNamesRequest) (*ingesterpb.LabelNamesResponse, error) {
	defer i.observe("LabelNames", time.Now())
	q, ms, err := i.chunkQuerier(req.StartMs, req.EndMs, req.Matchers)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	defer q.Close()
	names, _, err := q.LabelNames(ctx, &storage.LabelHints{Limit: int(req.Limit)}, ms...)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	return &ingesterpb.LabelNamesResponse{Names: names}, nil
}

// LabelValues returns the values of one label over matching series.
func (i *Ingester) LabelValues(ctx context.Context, req *ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
	defer i.observe("LabelValues", time.Now())
	q, ms, err := i.chunkQuerier(req.StartMs, req.EndMs, req.Matchers)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	defer q.Close()
	values, _, err := q.LabelValues(ctx, req.Name, &storage.LabelHints{Limit: int(req.Limit)}, ms...)
	if err != nil {
		return nil, ingesterpb.ToStatus(err)
	}
	return &ingesterpb.LabelValuesResponse{Values: values}, nil
}

// Stats reports cardinality.
func (i *Ingester) Stats(_ context.Context, req *ingesterpb.StatsRequest) (*ingesterpb.StatsResponse, error) {
	st := i.store.Stats(int(req.Limit))
	conv := func(l []model.NameCount) []*ingesterpb.NameCount {
		out := make([]*ingesterpb.NameCount, len(l))
		for i, nc := range l {
			out[i] = &ingesterpb.NameCount{Name: nc.Name, Count: nc.Value}
		}
		return out
	}
	return &ingesterpb.StatsResponse{
		NumSeries: st.NumSeries, MinTimeMs: st.MinTime, MaxTimeMs: st.MaxTime, NumLabelPairs: st.NumLabelPairs,
		SeriesCountByMetricName:     conv(st.SeriesCountByMetricName),
		LabelValueCountByLabelName:  conv(st.LabelValueCountByLabelName),
		MemoryInBytesByLabelName:    conv(st.MemoryInBytesByLabelName),
		SeriesCountByLabelValuePair: conv(st.SeriesCountByLabelValuePair),
	}, nil
}

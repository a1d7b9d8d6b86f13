package ingester

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/ring"
)

const (
	day = 24 * time.Hour
	// digestBatch is how many partitions one Digests call covers.
	digestBatch = 256
	// detailBatch is how many partitions one per-series Digests call covers.
	detailBatch = 32
	// backfillBatch is the number of samples sent per Backfill call.
	backfillBatch = 20_000
)

// Repairer runs anti-entropy for one ingester (docs/cluster.md): per time
// partition (UTC day) and ring partition it compares digests with the
// partition's other owners, sends them what they lack, and deletes the
// data of partitions it no longer owns once every owner confirmed it.
type Repairer struct {
	cfg     Config
	rf      int
	store   Store
	digests *digestCache
	ring    ring.Ring
	self    string
	clients func(addr string) (ingesterpb.IngesterClient, error)
	logger  *slog.Logger
	limiter *limiter
	now     func() time.Time
	m       *repairMetrics

	mu   sync.Mutex // protects last
	last RepairStatus
}

// RepairStatus is the outcome of the last round, shown on /ring.
type RepairStatus struct {
	Started           time.Time     `json:"started"`
	Duration          time.Duration `json:"duration_ns"`
	Final             bool          `json:"final"` // a hand-off round
	Partitions        int           `json:"partitions"`
	Mismatched        int           `json:"mismatched"`
	Unconfirmed       int           `json:"unconfirmed"`
	SeriesSent        int           `json:"series_sent"`
	SamplesSent       int           `json:"samples_sent"`
	PartitionsDeleted int           `json:"partitions_deleted"`
	SeriesDeleted     int           `json:"series_deleted"`
	Error             string        `json:"error,omitempty"`
}

type repairMetrics struct {
	rounds        *prometheus.CounterVec
	duration      prometheus.Gauge
	lastSuccess   prometheus.Gauge
	mismatched    prometheus.Gauge
	unconfirmed   prometheus.Gauge
	seriesSent    prometheus.Counter
	samplesSent   prometheus.Counter
	conflicts     prometheus.Counter
	seriesDeleted prometheus.Counter
}

func newRepairMetrics(reg prometheus.Registerer) *repairMetrics {
	f := promauto.With(reg)
	return &repairMetrics{
		rounds:        f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_repair_rounds_total", Help: "Repair rounds, by result (complete: every partition confirmed by every owner; incomplete; failed)."}, []string{"result"}),
		duration:      f.NewGauge(prometheus.GaugeOpts{Name: "vigil_repair_last_round_duration_seconds", Help: "Duration of the last repair round."}),
		lastSuccess:   f.NewGauge(prometheus.GaugeOpts{Name: "vigil_repair_last_complete_timestamp_seconds", Help: "When the last complete repair round ended."}),
		mismatched:    f.NewGauge(prometheus.GaugeOpts{Name: "vigil_repair_partitions_mismatched", Help: "Ring partitions whose digest differed from an owner's in the last round."}),
		unconfirmed:   f.NewGauge(prometheus.GaugeOpts{Name: "vigil_repair_partitions_pending", Help: "Ring partitions held here that some owner could not confirm in the last round (owner down, call failed)."}),
		seriesSent:    f.NewCounter(prometheus.CounterOpts{Name: "vigil_repair_series_sent_total", Help: "Series (per day) sent to other owners by repair."}),
		samplesSent:   f.NewCounter(prometheus.CounterOpts{Name: "vigil_repair_samples_sent_total", Help: "Samples sent to other owners by repair."}),
		conflicts:     f.NewCounter(prometheus.CounterOpts{Name: "vigil_repair_conflicts_total", Help: "Samples an owner refused because it stores a different value at the same timestamp (the owner's value is kept)."}),
		seriesDeleted: f.NewCounter(prometheus.CounterOpts{Name: "vigil_repair_series_deleted_total", Help: "Series deleted here because this ingester no longer owns them and every owner confirmed its copy."}),
	}
}

// NewRepairer returns the repairer of ing, the ingester named self.
func NewRepairer(ing *Ingester, rf int, r ring.Ring, self string, clients func(string) (ingesterpb.IngesterClient, error), logger *slog.Logger, reg prometheus.Registerer) *Repairer {
	cfg := ing.cfg
	return &Repairer{
		cfg: cfg, rf: rf, store: ing.store, digests: ing.digests, ring: r, self: self, clients: clients, logger: logger,
		limiter: newLimiter(cfg.RepairRate), now: time.Now, m: newRepairMetrics(reg),
	}
}

// Status returns the outcome of the last round.
func (r *Repairer) Status() RepairStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Run repairs every RepairInterval until ctx ends.
func (r *Repairer) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.RepairInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		hi := r.now().Add(-r.cfg.RepairSettle).UnixMilli()
		if _, err := r.Round(ctx, hi, false); err != nil && ctx.Err() == nil {
			r.logger.Warn("repair round failed", "err", err)
		}
	}
}

// Handoff copies everything this (leaving) ingester holds to the current
// owners and returns once a round confirmed every partition, or fails
// when ctx ends first.
func (r *Repairer) Handoff(ctx context.Context) error {
	start := r.now()
	for attempt := 1; ; attempt++ {
		st, err := r.Round(ctx, r.now().UnixMilli(), true)
		if err == nil && st.Unconfirmed == 0 {
			r.logger.Info("hand-off complete", "rounds", attempt, "partitions", st.Partitions, "samples_sent", st.SamplesSent, "took", r.now().Sub(start).Round(time.Millisecond))
			return nil
		}
		r.logger.Warn("hand-off round incomplete, retrying", "round", attempt, "unconfirmed_partitions", st.Unconfirmed, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("hand-off not confirmed after %d rounds: %w", attempt, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// Round runs one repair round over data up to hi (ms). final marks a
// hand-off round, which deletes nothing.
func (r *Repairer) Round(ctx context.Context, hi int64, final bool) (RepairStatus, error) {
	st := RepairStatus{Started: r.now(), Final: final}
	err := r.round(ctx, hi, final, &st)
	st.Duration = r.now().Sub(st.Started)
	if err != nil {
		st.Error = err.Error()
		r.m.rounds.WithLabelValues("failed").Inc()
	} else if st.Unconfirmed > 0 {
		r.m.rounds.WithLabelValues("incomplete").Inc()
	} else {
		r.m.rounds.WithLabelValues("complete").Inc()
		r.m.lastSuccess.Set(float64(r.now().Unix()))
	}
	r.m.duration.Set(st.Duration.Seconds())
	r.m.mismatched.Set(float64(st.Mismatched))
	r.m.unconfirmed.Set(float64(st.Unconfirmed))
	if st.SamplesSent > 0 || st.SeriesDeleted > 0 || err != nil {
		r.logger.Info("repair round", "partitions", st.Partitions, "mismatched", st.Mismatched, "unconfirmed", st.Unconfirmed,
			"series_sent", st.SeriesSent, "samples_sent", st.SamplesSent, "series_deleted", st.SeriesDeleted, "took", st.Duration.Round(time.Millisecond), "err", err)
	}
	r.mu.Lock()
	r.last = st
	r.mu.Unlock()
	return st, err
}

// roundState is what one round learns across days.
type roundState struct {
	owners      map[int][]ring.Member // partition -> owners, fixed for the round
	seen        map[int]bool          // partitions with local data
	unconfirmed map[int]bool
	mismatched  map[int]bool
}

func (r *Repairer) ownersOf(rs *roundState, p int) ([]ring.Member, error) {
	if o, ok := rs.owners[p]; ok {
		return o, nil
	}
	o, err := r.ring.PartitionOwners(ring.RoleIngester, p, r.rf)
	if err != nil {
		return nil, err
	}
	rs.owners[p] = o
	return o, nil
}

func (r *Repairer) round(ctx context.Context, hi int64, final bool, st *RepairStatus) error {
	rs := &roundState{owners: map[int][]ring.Member{}, seen: map[int]bool{}, unconfirmed: map[int]bool{}, mismatched: map[int]bool{}}
	// Whole days (the storage's time partitions): their windows stay the
	// same from round to round, so their digests can be cached.
	dayMs := day.Milliseconds()
	lo := hi - r.cfg.RepairLookback.Milliseconds()
	lo -= lo % dayMs
	for ds := lo; ds <= hi; ds += dayMs {
		if err := ctx.Err(); err != nil {
			return err
		}
		mint, maxt := ds, min(ds+dayMs-1, hi)
		if err := r.repairWindow(ctx, rs, mint, maxt, st); err != nil {
			return err
		}
	}
	st.Partitions = len(rs.seen)
	st.Mismatched = len(rs.mismatched)
	st.Unconfirmed = len(rs.unconfirmed)
	if final {
		return nil
	}
	return r.deleteUnowned(ctx, rs, hi, st)
}

// repairWindow compares one time window with every other owner of each
// partition that has local data in it.
func (r *Repairer) repairWindow(ctx context.Context, rs *roundState, mint, maxt int64, st *RepairStatus) error {
	count := r.ring.Partitions()
	local, err := r.digests.partitionDigests(ctx, mint, maxt, count, nil)
	if err != nil {
		return fmt.Errorf("local digests of [%d, %d]: %w", mint, maxt, err)
	}
	if len(local) == 0 {
		return nil
	}
	peers := map[string]ring.Member{}
	parts := map[string][]int{} // peer -> partitions to compare
	for p := range local {
		rs.seen[p] = true
		owners, err := r.ownersOf(rs, p)
		if err != nil {
			rs.unconfirmed[p] = true
			continue
		}
		for _, m := range owners {
			if m.Name == r.self {
				continue
			}
			if !m.Healthy {
				rs.unconfirmed[p] = true
				continue
			}
			peers[m.Name] = m
			parts[m.Name] = append(parts[m.Name], p)
		}
	}
	// Per peer: which partitions differ.
	differ := map[string][]int{}
	need := map[int]bool{}
	for name, ps := range parts {
		slices.Sort(ps)
		for chunk := range slices.Chunk(ps, digestBatch) {
			remote, err := r.remoteDigests(ctx, peers[name], mint, maxt, chunk, false)
			if err != nil {
				r.logger.Warn("repair: digests from owner failed", "owner", name, "err", err)
				for _, p := range chunk {
					rs.unconfirmed[p] = true
				}
				continue
			}
			for _, p := range chunk {
				if !local[p].equal(remote[p]) {
					differ[name] = append(differ[name], p)
					need[p] = true
					rs.mismatched[p] = true
				}
			}
		}
	}
	if len(need) == 0 {
		return nil
	}
	detail, err := digests(ctx, r.store, mint, maxt, count, func(p int) bool { return need[p] }, true, true)
	if err != nil {
		return fmt.Errorf("local series digests of [%d, %d]: %w", mint, maxt, err)
	}
	for name, ps := range differ {
		for chunk := range slices.Chunk(ps, detailBatch) {
			if err := r.sendMissing(ctx, peers[name], mint, maxt, chunk, detail, st); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r.logger.Warn("repair: sending to owner failed", "owner", name, "err", err)
				for _, p := range chunk {
					rs.unconfirmed[p] = true
				}
			}
		}
	}
	return nil
}

func (r *Repairer) remoteDigests(ctx context.Context, m ring.Member, mint, maxt int64, ps []int, perSeries bool) (map[int]*ingesterpb.PartitionDigest, error) {
	c, err := r.clients(m.GRPCAddr)
	if err != nil {
		return nil, err
	}
	req := &ingesterpb.DigestsRequest{StartMs: mint, EndMs: maxt, PerSeries: perSeries, PartitionCount: uint32(r.ring.Partitions())}
	for _, p := range ps {
		req.Partitions = append(req.Partitions, uint32(p))
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := c.Digests(cctx, req)
	if err != nil {
		return nil, ingesterpb.FromStatus(err)
	}
	out := make(map[int]*ingesterpb.PartitionDigest, len(resp.Partitions))
	for _, pd := range resp.Partitions {
		out[int(pd.Partition)] = pd
	}
	return out, nil
}

// sendMissing sends peer every local series of partitions ps whose digest
// differs from the peer's, then returns. An owner that stores a series
// this node lacks is not this node's business: that owner's own repair
// sends it.
func (r *Repairer) sendMissing(ctx context.Context, peer ring.Member, mint, maxt int64, ps []int, detail map[int]*partDigest, st *RepairStatus) error {
	remote, err := r.remoteDigests(ctx, peer, mint, maxt, ps, true)
	if err != nil {
		return err
	}
	c, err := r.clients(peer.GRPCAddr)
	if err != nil {
		return err
	}
	var batch []model.Series
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := r.limiter.wait(ctx, n); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		resp, err := c.Backfill(cctx, ingesterpb.FromSeries(batch))
		if err != nil {
			return fmt.Errorf("backfill %d samples to %s: %w", n, peer.Name, ingesterpb.FromStatus(err))
		}
		res := ingesterpb.ToResult(resp)
		if conflicts := res.ByReason[model.ReasonConflict]; conflicts > 0 {
			r.m.conflicts.Add(float64(conflicts))
		}
		if other := res.RejectedSamples - res.ByReason[model.ReasonConflict]; other > 0 {
			return fmt.Errorf("backfill to %s: %d samples refused (%v)", peer.Name, other, res.Rejections)
		}
		r.m.seriesSent.Add(float64(len(batch)))
		r.m.samplesSent.Add(float64(n))
		st.SeriesSent += len(batch)
		st.SamplesSent += n
		batch, n = batch[:0], 0
		return nil
	}
	for _, p := range ps {
		theirs := map[uint64]*ingesterpb.SeriesDigest{}
		if pd := remote[p]; pd != nil {
			for _, sd := range pd.SeriesDigests {
				theirs[sd.LabelsHash] = sd
			}
		}
		pd := detail[p]
		if pd == nil {
			continue
		}
		for _, sd := range pd.list {
			if t := theirs[sd.hash]; t != nil && t.Samples == sd.samples && t.Sum == sd.sum {
				continue
			}
			smps, err := r.store.SeriesSamples(ctx, sd.labels, mint, maxt)
			if err != nil {
				return fmt.Errorf("read %s: %w", sd.labels, err)
			}
			batch = append(batch, model.Series{Labels: sd.labels, Samples: smps})
			n += len(smps)
			if n >= backfillBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// deleteUnowned deletes, up to hi, the series of every partition this
// node holds but no longer owns, once every owner confirmed it in this
// round and the owners did not change since.
func (r *Repairer) deleteUnowned(ctx context.Context, rs *roundState, hi int64, st *RepairStatus) error {
	drop := map[int]bool{}
	for p := range rs.seen {
		owners := rs.owners[p]
		if owners == nil || rs.unconfirmed[p] || slices.ContainsFunc(owners, func(m ring.Member) bool { return m.Name == r.self }) {
			continue
		}
		now, err := r.ring.PartitionOwners(ring.RoleIngester, p, r.rf)
		if err != nil || !sameNames(now, owners) {
			continue
		}
		drop[p] = true
	}
	if len(drop) == 0 {
		return nil
	}
	count := uint64(r.ring.Partitions())
	var key []byte
	n, err := r.store.DeleteSeries(ctx, func(l labels.Labels) bool {
		key = model.AppendLabels(key[:0], l)
		return drop[int(xxhash.Sum64(key)%count)]
	}, hi)
	if err != nil {
		return fmt.Errorf("delete %d partitions no longer owned: %w", len(drop), err)
	}
	st.PartitionsDeleted = len(drop)
	st.SeriesDeleted = n
	r.m.seriesDeleted.Add(float64(n))
	return nil
}

func sameNames(a, b []ring.Member) bool {
	return slices.EqualFunc(a, b, func(x, y ring.Member) bool { return x.Name == y.Name })
}

// limiter spaces work to a rate of units per second (0: unlimited).
type limiter struct {
	rate float64
	mu   sync.Mutex // protects next
	next time.Time
}

func newLimiter(perSecond int) *limiter { return &limiter{rate: float64(perSecond)} }

// wait blocks until n more units are within the rate.
func (l *limiter) wait(ctx context.Context, n int) error {
	if l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	if d := time.Until(at); d > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return nil
}

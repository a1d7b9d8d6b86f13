package compactor

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/model/downsample"
	"github.com/vigil-tsdb/vigil/storage"
)

// Day boundaries. Windows are left-open and right-closed, and so are the
// days of the tiers: tier day D holds the windows whose end lies in
// (DayStart(D), DayStart(D+1)], that is the samples with
// DayStart(D) < t ≤ DayStart(D+1). A day is then a 24 h window in the same
// convention, made of whole 1 m and 1 h windows, and the 1 h windows of day
// D are combined from the 1 m windows of day D alone. TierDayWriter accepts
// exactly this ([DayStart(D), DayStart(D+1)], end included).
//
// Raw partitions are right-open instead ([DayStart(D), DayStart(D+1))), so
// tier day D also reads the samples at exactly DayStart(D+1) from raw day
// D+1 (a scrape aligned to midnight has one). ColdChangesDay(D) does not
// see a change to them; instead each day compacted from raw records a
// digest of the raw samples at exactly its start (which belong to the day
// before) and at exactly its end. When a change to day D+1 redoes it, its
// start digest no longer equals day D's end digest, and D is redone too.
// Days are compacted newest first, so D sees D+1's new digest in the same
// pass. A change anywhere else in day D+1 redoes only D+1.

// tierNames index by storage tier.
var tierNames = [...]string{storage.TierRaw: "raw", storage.TierMinute: "1m", storage.TierHour: "1h"}

// tierWidth is the window width of a tier in ms.
var tierWidth = [...]int64{storage.TierMinute: 60_000, storage.TierHour: 3_600_000}

// Stats says what one pass did. Arrays are indexed by storage tier
// (storage.TierRaw, TierMinute, TierHour).
type Stats struct {
	Compacted [3][]int32 // days written, in the order written
	Dropped   [3][]int32 // days dropped, oldest first
	Series    [3]int     // series written
	Windows   [3]int     // windows written
	Bytes     [3]int     // aggregate chunk bytes written
	Errors    int        // failed day operations
}

// Compactor downsamples the raw days of one storage.DB into the 1 m and 1 h
// tiers and applies retention (docs/downsampling.md). It must be the only
// writer of the DB's tiers: run one per DB.
type Compactor struct {
	cfg     Config
	db      *storage.DB
	logger  *slog.Logger
	metrics *metrics

	mu sync.Mutex // held by a pass: one at a time

	// A tier day is written in batches of at most batchSeries series or
	// about batchBytes of chunk data, whichever comes first (the defaults
	// below; tests lower them).
	batchSeries, batchBytes int
}

// New returns a Compactor over db; it does nothing until Run or RunOnce.
func New(cfg Config, db *storage.DB, logger *slog.Logger, reg prometheus.Registerer) (*Compactor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("compactor: no storage")
	}
	return &Compactor{cfg: cfg, db: db, logger: logger, metrics: newMetrics(reg), batchSeries: batchSeries, batchBytes: batchBytes}, nil
}

// Run runs a pass at once and then every Config.Interval, with the wall
// clock, until ctx is done; then it returns nil once the pass in progress
// stopped. Errors of a pass are logged and counted, and the next pass
// retries. Stop Run before closing the DB.
func (c *Compactor) Run(ctx context.Context) error {
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for {
		if _, err := c.RunOnce(ctx, time.Now()); err != nil && ctx.Err() == nil {
			c.logger.Error("compactor pass had errors; the next pass retries", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// RunOnce runs one full pass as if the time were now: it compacts every due
// day of the 1 m tier, then of the 1 h tier, then drops the days past
// retention, oldest first. A failure on one day is logged, counted and
// returned (joined with the others) after the pass went on with the other
// days; a done ctx stops the pass and returns its error. Passes run one at
// a time; RunOnce is safe concurrently with everything else on the DB.
func (c *Compactor) RunOnce(ctx context.Context, now time.Time) (Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	start := time.Now()
	ps := &pass{c: c, ctx: ctx, now: now.UnixMilli()}
	ps.ret = [3]int64{c.cfg.RetentionRaw.Milliseconds(), c.cfg.RetentionMinute.Milliseconds(), c.cfg.RetentionHour.Milliseconds()}
	err := ps.run()
	c.metrics.passes.Inc()
	c.metrics.passDuration.Observe(time.Since(start).Seconds())
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err == nil {
		c.metrics.lastSuccess.SetToCurrentTime()
	}
	return ps.stats, err
}

// dayProgress is a tier day's progress key as read or written.
type dayProgress struct {
	p   progress
	raw []byte // the stored value (tier 2 records its hash)
	bad bool   // unreadable: the day is redone when its source allows
}

// pass is the state of one RunOnce: the days of each tier with their
// progress, kept current as days are written and dropped.
type pass struct {
	c      *Compactor
	ctx    context.Context
	now    int64    // ms
	ret    [3]int64 // retention by tier, ms; 0 disables a tier
	raw    map[int32]bool
	prog   [3]map[int32]dayProgress // by tier (1, 2): days with a progress key
	failed [3]map[int32]bool        // by tier: days whose compaction failed in this pass
	stats  Stats
	errs   []error
}

func (ps *pass) run() error {
	if err := ps.load(); err != nil {
		ps.c.metrics.errors.WithLabelValues("list").Inc()
		return err
	}
	if ps.enabled(storage.TierMinute) {
		ps.compactFromRaw(storage.TierMinute)
	}
	if ps.enabled(storage.TierHour) {
		if ps.enabled(storage.TierMinute) {
			ps.compactFromMinute()
		} else {
			ps.compactFromRaw(storage.TierHour)
		}
	}
	for _, tier := range []uint8{storage.TierRaw, storage.TierMinute, storage.TierHour} {
		ps.retention(tier)
	}
	for _, tier := range []uint8{storage.TierMinute, storage.TierHour} {
		if days := slices.Sorted(maps.Keys(ps.prog[tier])); len(days) > 0 {
			ps.c.metrics.lag.WithLabelValues(tierNames[tier]).Set(float64(ps.now-storage.DayStart(days[len(days)-1]+1)) / 1000)
		}
	}
	if err := ps.ctx.Err(); err != nil {
		return err
	}
	return errors.Join(ps.errs...)
}

func (ps *pass) load() error {
	rawDays, err := ps.c.db.TierDays(storage.TierRaw)
	if err != nil {
		return err
	}
	ps.raw = make(map[int32]bool, len(rawDays))
	for _, d := range rawDays {
		ps.raw[d] = true
	}
	for _, tier := range []uint8{storage.TierMinute, storage.TierHour} {
		ps.failed[tier] = map[int32]bool{}
		ps.prog[tier] = map[int32]dayProgress{}
		days, err := ps.c.db.TierDays(tier)
		if err != nil {
			return err
		}
		for _, d := range days {
			if err := ps.reload(tier, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// reload reads the progress of a tier day into ps.prog.
func (ps *pass) reload(tier uint8, day int32) error {
	v, ok, err := ps.c.db.TierProgress(tier, day)
	if err != nil {
		return err
	}
	if !ok {
		delete(ps.prog[tier], day)
		return nil
	}
	p, err := decodeProgress(v)
	if err != nil {
		ps.c.logger.Warn("unreadable progress of a tier day; it is redone if its source is still kept", "tier", tierNames[tier], "day", dayString(day), "err", err)
	}
	ps.prog[tier][day] = dayProgress{p: p, raw: v, bad: err != nil}
	return nil
}

func (ps *pass) enabled(tier uint8) bool { return ps.ret[tier] > 0 }

// expired reports whether day ended more than the tier's retention ago.
func (ps *pass) expired(day int32, tier uint8) bool {
	return storage.DayStart(day+1)+ps.ret[tier] <= ps.now
}

// due reports whether day ended at least Settle ago.
func (ps *pass) due(day int32) bool {
	return storage.DayStart(day+1)+ps.c.cfg.Settle.Milliseconds() <= ps.now
}

// compactFromRaw writes the due days of tier from raw samples, newest
// first (see "Day boundaries").
func (ps *pass) compactFromRaw(tier uint8) {
	cands := map[int32]bool{}
	for d := range ps.raw {
		cands[d], cands[d-1] = true, true
	}
	days := slices.Sorted(maps.Keys(cands))
	slices.Reverse(days)
	for _, d := range days {
		if ps.ctx.Err() != nil {
			return
		}
		if !ps.due(d) {
			continue
		}
		// Without a raw partition the day has no samples, unless it was
		// dropped: then its aggregates must not be made from nothing.
		if !ps.raw[d] && ps.expired(d, storage.TierRaw) {
			continue
		}
		// Not worth writing what retention would drop at once, unless the
		// 1 h tier still needs the day's 1 m aggregates.
		if ps.expired(d, tier) && !(tier == storage.TierMinute && ps.enabled(storage.TierHour) &&
			!ps.expired(d, storage.TierHour) && !ps.has(storage.TierHour, d)) {
			continue
		}
		mark := ps.c.db.ColdChangesDay(d) // before the data is read
		cur, has := ps.prog[tier][d]
		var reason string
		switch next, ok := ps.prog[tier][d+1]; {
		case !has:
			reason = "new"
		case cur.bad:
			reason = "unreadable progress"
		case cur.p.cold != mark:
			reason = "cold change"
		case ok && !next.bad && next.p.head != cur.p.tail:
			reason = "change at the end of the day"
		default:
			continue
		}
		if has && !cur.bad && ps.expired(d, storage.TierRaw) {
			// The raw day may be what a backfill wrote after retention
			// dropped the rest: rewriting would lose the aggregates. (With
			// unreadable progress raw was never dropped: it is whole.)
			ps.c.logger.Warn("a change to a day past raw retention is not merged into its aggregates", "tier", tierNames[tier], "day", dayString(d), "reason", reason)
			continue
		}
		ps.compactRawDay(tier, d, mark, reason)
	}
}

// sampleDigest is a sample's part of a boundary digest (a sum over the
// samples, so independent of series order).
func sampleDigest(lsetHash uint64, t int64, v float64) uint64 {
	return storage.Mix64(lsetHash ^ storage.SampleDigest(t, v))
}

func (ps *pass) compactRawDay(tier uint8, day int32, mark uint64, reason string) {
	width := tierWidth[tier]
	lo, hi := storage.DayStart(day), storage.DayStart(day+1)
	p := progress{cold: mark, compactedAt: ps.now}
	ps.compactDay(tier, day, &p, "raw", reason, func(emit func(labels.Labels, []downsample.Window) error) error {
		q, err := ps.c.db.Querier(lo, hi)
		if err != nil {
			return err
		}
		defer q.Close()
		// All series with a metric name (storage lists no others), one at
		// a time: a series' samples of the day are the only raw data held.
		ss := q.Select(ps.ctx, false, nil)
		var (
			buf []model.Sample
			it  chunkenc.Iterator
		)
		for ss.Next() {
			s := ss.At()
			lset := s.Labels()
			h := lset.Hash()
			buf = buf[:0]
			it = s.Iterator(it)
			for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
				if vt != chunkenc.ValFloat {
					return fmt.Errorf("series %s: sample of type %s, want float", lset, vt)
				}
				t, v := it.At()
				switch t {
				case lo: // the last window of the day before
					p.head += sampleDigest(h, t, v)
					continue
				case hi:
					p.tail += sampleDigest(h, t, v)
				}
				buf = append(buf, model.Sample{T: t, V: v})
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("read series %s: %w", lset, err)
			}
			if err := emit(lset, downsample.Downsample(buf, width)); err != nil {
				return err
			}
		}
		return ss.Err()
	})
}

// compactFromMinute writes the 1 h days whose 1 m day is newer than them
// (or that have none).
func (ps *pass) compactFromMinute() {
	days := slices.Sorted(maps.Keys(ps.prog[storage.TierMinute]))
	slices.Reverse(days)
	for _, d := range days {
		if ps.ctx.Err() != nil {
			return
		}
		src := ps.prog[storage.TierMinute][d]
		if src.bad || ps.expired(d, storage.TierHour) {
			continue
		}
		srcHash := progressHash(src.raw)
		var reason string
		switch cur, has := ps.prog[storage.TierHour][d]; {
		case !has:
			reason = "new"
		case cur.bad:
			reason = "unreadable progress"
		case cur.p.source != srcHash:
			reason = "1m day rewritten"
		default:
			continue
		}
		ps.compactMinuteDay(d, src.p, srcHash, reason)
	}
}

func (ps *pass) compactMinuteDay(day int32, src progress, srcHash uint64, reason string) {
	lo, hi := storage.DayStart(day), storage.DayStart(day+1)
	p := progress{cold: src.cold, compactedAt: ps.now, head: src.head, tail: src.tail, source: srcHash}
	// Reads the 1 m tier while writing the 1 h one: TierSelect does not
	// take the tier lock that the writer holds.
	ps.compactDay(storage.TierHour, day, &p, "1m", reason, func(emit func(labels.Labels, []downsample.Window) error) error {
		// From lo+1: the day before's last chunk may end at lo.
		set, err := ps.c.db.TierSelect(ps.ctx, storage.TierMinute, lo+1, hi)
		if err != nil {
			return err
		}
		var ws []downsample.Window
		for set.Next() {
			s := set.At()
			if ws, err = tierWindows(ws[:0], s, lo+1, hi); err != nil {
				return err
			}
			if err := emit(s.Labels, downsample.Combine(ws, tierWidth[storage.TierHour])); err != nil {
				return err
			}
		}
		return set.Err()
	})
}

// tierWindows appends the windows of s's chunks whose End lies in
// [lo, hi] to dst.
func tierWindows(dst []downsample.Window, s storage.TierSeries, lo, hi int64) ([]downsample.Window, error) {
	for _, c := range s.Chunks {
		if c.Encoding != downsample.EncodingAggregate {
			return dst, fmt.Errorf("series %s: chunk [%d, %d] has encoding %d, want %d", s.Labels, c.Mint, c.Maxt, c.Encoding, downsample.EncodingAggregate)
		}
		ws, err := downsample.DecodeChunk(c.Data)
		if err != nil {
			return dst, fmt.Errorf("series %s: chunk [%d, %d]: %w", s.Labels, c.Mint, c.Maxt, err)
		}
		for _, w := range ws {
			if w.End >= lo && w.End <= hi {
				dst = append(dst, w)
			}
		}
	}
	return dst, nil
}

// tierSeries encodes windows into chunks of up to MaxChunkWindows, each
// stamped with its first and last window end; it returns the number of
// windows.
func tierSeries(lset labels.Labels, ws []downsample.Window) (storage.TierSeries, int, error) {
	ts := storage.TierSeries{Labels: lset}
	if len(ws) == 0 {
		return ts, 0, nil
	}
	ts.Chunks = make([]storage.TierChunk, 0, (len(ws)+downsample.MaxChunkWindows-1)/downsample.MaxChunkWindows)
	for i := 0; i < len(ws); i += downsample.MaxChunkWindows {
		g := ws[i:min(i+downsample.MaxChunkWindows, len(ws))]
		data, err := downsample.AppendChunk(nil, g)
		if err != nil {
			return ts, 0, err
		}
		ts.Chunks = append(ts.Chunks, storage.TierChunk{Mint: g[0].End, Maxt: g[len(g)-1].End, Encoding: downsample.EncodingAggregate, Data: data})
	}
	return ts, len(ws), nil
}

// The default batch of a tier day: a pass holds one batch of a day's
// encoded windows, not the whole day (docs/downsampling.md, "Compactor").
const (
	batchSeries = 1000
	batchBytes  = 4 << 20
)

// compactDay writes one tier day: it begins the day (its old content is
// dropped and it is invisible until the end), then read calls emit with
// the windows of each series in turn, which are encoded and written in
// batches, and adds to p (read may too: the boundary digests); once read
// returns nil the progress p, complete for the whole day, is committed. On
// any error the day is aborted: it is left without progress and redone by
// a later pass. from names the source in errors.
func (ps *pass) compactDay(tier uint8, day int32, p *progress, from, reason string, read func(emit func(labels.Labels, []downsample.Window) error) error) {
	start := time.Now()
	name := tierNames[tier]
	w, err := ps.c.db.BeginTierDay(ps.ctx, tier, day)
	if err != nil {
		ps.fail(tier, day, fmt.Errorf("compact %s day %s: %w", name, dayString(day), err))
		return
	}
	dw := dayWriter{w: w, maxSeries: ps.c.batchSeries, maxBytes: ps.c.batchBytes}
	err = read(func(lset labels.Labels, ws []downsample.Window) error {
		ts, n, err := tierSeries(lset, ws)
		if err != nil {
			return fmt.Errorf("series %s: %w", lset, err)
		}
		if n == 0 {
			return nil
		}
		p.windows += uint64(n)
		return dw.add(ts)
	})
	if err != nil && dw.err == nil {
		err = fmt.Errorf("read %s: %w", from, err)
	}
	if err == nil {
		err = dw.flush()
	}
	var v []byte
	if err == nil {
		p.series = uint64(dw.series)
		v = p.encode()
		err = w.Commit(v)
	}
	if err != nil {
		w.Abort() // nothing to do after a failed Commit
		ps.fail(tier, day, fmt.Errorf("compact %s day %s: %w", name, dayString(day), err))
		return
	}
	ps.prog[tier][day] = dayProgress{p: *p, raw: v}
	st := &ps.stats
	st.Compacted[tier] = append(st.Compacted[tier], day)
	st.Series[tier] += dw.series
	st.Windows[tier] += int(p.windows)
	st.Bytes[tier] += dw.bytes
	ps.c.metrics.daysCompacted.WithLabelValues(name).Inc()
	ps.c.metrics.series.WithLabelValues(name).Add(float64(dw.series))
	ps.c.metrics.windows.WithLabelValues(name).Add(float64(p.windows))
	ps.c.metrics.bytes.WithLabelValues(name).Add(float64(dw.bytes))
	ps.c.logger.Info("compacted day", "tier", name, "day", dayString(day), "reason", reason,
		"series", dw.series, "windows", p.windows, "bytes", dw.bytes, "took", time.Since(start).Round(time.Millisecond))
}

// dayWriter batches a tier day's series into TierDayWriter.Add and counts
// what it wrote.
type dayWriter struct {
	w                   *storage.TierDayWriter
	maxSeries, maxBytes int // of a batch
	batch               []storage.TierSeries
	batchBytes          int
	series              int   // series added
	bytes               int   // chunk bytes added
	err                 error // the first error of Add
}

func (dw *dayWriter) add(ts storage.TierSeries) error {
	n := 0
	for _, c := range ts.Chunks {
		n += len(c.Data)
	}
	dw.batch = append(dw.batch, ts)
	dw.batchBytes += n
	dw.series++
	dw.bytes += n
	if len(dw.batch) >= dw.maxSeries || dw.batchBytes >= dw.maxBytes {
		return dw.flush()
	}
	return nil
}

// flush writes the batch; Add keeps nothing of it, so neither does dw.
func (dw *dayWriter) flush() error {
	if len(dw.batch) == 0 || dw.err != nil {
		return dw.err
	}
	dw.err = dw.w.Add(dw.batch)
	clear(dw.batch)
	dw.batch, dw.batchBytes = dw.batch[:0], 0
	return dw.err
}

// fail records a failed compaction; the day's progress is read again, as a
// failed write may have removed it.
func (ps *pass) fail(tier uint8, day int32, err error) {
	if ps.ctx.Err() != nil {
		return // the pass is stopping; not a failure of the day
	}
	ps.failed[tier][day] = true
	ps.stats.Errors++
	ps.errs = append(ps.errs, err)
	ps.c.metrics.errors.WithLabelValues("compact").Inc()
	ps.c.logger.Error("compacting a day failed; the next pass retries", "tier", tierNames[tier], "day", dayString(day), "err", err)
	if rerr := ps.reload(tier, day); rerr != nil {
		delete(ps.prog[tier], day) // treat as missing: nothing is dropped on its account
	}
}

func (ps *pass) has(tier uint8, day int32) bool {
	dp, ok := ps.prog[tier][day]
	return ok && !dp.bad && !ps.failed[tier][day]
}

// kept reports whether a day of tier lives on in the next enabled tier that
// still keeps it (true if none does): only then may the tier drop it. A 1 h
// day must also be made from the current 1 m day.
func (ps *pass) kept(tier uint8, day int32) bool {
	for t := tier + 1; t <= storage.TierHour; t++ {
		if !ps.enabled(t) || ps.expired(day, t) {
			continue
		}
		if !ps.has(t, day) {
			return false
		}
		if src, ok := ps.prog[storage.TierMinute][day]; t == storage.TierHour && tier == storage.TierMinute && ok {
			return ps.prog[t][day].p.source == progressHash(src.raw)
		}
		return true
	}
	return true
}

// retention drops the days of tier past its retention, oldest first.
func (ps *pass) retention(tier uint8) {
	var days []int32
	if tier == storage.TierRaw {
		days = slices.Sorted(maps.Keys(ps.raw))
	} else {
		days = slices.Sorted(maps.Keys(ps.prog[tier]))
	}
	name := tierNames[tier]
	for _, d := range days {
		if ps.ctx.Err() != nil {
			return
		}
		if !ps.expired(d, tier) {
			return
		}
		if !ps.kept(tier, d) {
			continue
		}
		err := ps.c.db.DropDay(ps.ctx, tier, d)
		if errors.Is(err, storage.ErrDayInHead) {
			ps.c.logger.Info("day past retention still in memory; dropped by a later pass", "tier", name, "day", dayString(d), "err", err)
			continue
		}
		if err != nil {
			if ps.ctx.Err() != nil {
				return
			}
			ps.stats.Errors++
			ps.errs = append(ps.errs, fmt.Errorf("drop %s day %s: %w", name, dayString(d), err))
			ps.c.metrics.errors.WithLabelValues("drop").Inc()
			ps.c.logger.Error("dropping a day failed; the next pass retries", "tier", name, "day", dayString(d), "err", err)
			if tier != storage.TierRaw {
				if rerr := ps.reload(tier, d); rerr != nil {
					delete(ps.prog[tier], d)
				}
			}
			continue
		}
		if tier == storage.TierRaw {
			delete(ps.raw, d)
		} else {
			delete(ps.prog[tier], d)
		}
		ps.stats.Dropped[tier] = append(ps.stats.Dropped[tier], d)
		ps.c.metrics.daysDropped.WithLabelValues(name).Inc()
		ps.c.logger.Info("dropped day", "tier", name, "day", dayString(d))
	}
}

func dayString(day int32) string {
	return time.UnixMilli(storage.DayStart(day)).UTC().Format(time.DateOnly)
}

// progress is the value of a tier day's progress key (docs/downsampling.md,
// "On disk"), big-endian:
//
//	uint32 version (1)
//	uint64 cold         from raw: ColdChangesDay(day), read before the data;
//	                    1 h from 1 m: the 1 m day's
//	int64  compactedAt  the pass's clock, ms
//	uvarint series      series written
//	uvarint windows     windows written
//	uint64 head         digest of the raw samples at exactly the day's start
//	                    (the day before's last window); 1 h from 1 m: the
//	                    1 m day's
//	uint64 tail         digest of the raw samples at exactly the day's end
//	                    (its last window); 1 h from 1 m: the 1 m day's
//	uint64 source       1 h from 1 m: FNV-1a of the 1 m day's progress
//	                    value; else 0
//
// The first five fields are the design's; the last three are how a day
// learns that its boundary samples or its source changed.
type progress struct {
	cold            uint64
	compactedAt     int64
	series, windows uint64
	head, tail      uint64
	source          uint64
}

const progressVersion = 1

func (p progress) encode() []byte {
	b := make([]byte, 0, 4+8+8+2*binary.MaxVarintLen64+3*8)
	b = binary.BigEndian.AppendUint32(b, progressVersion)
	b = binary.BigEndian.AppendUint64(b, p.cold)
	b = binary.BigEndian.AppendUint64(b, uint64(p.compactedAt))
	b = binary.AppendUvarint(b, p.series)
	b = binary.AppendUvarint(b, p.windows)
	b = binary.BigEndian.AppendUint64(b, p.head)
	b = binary.BigEndian.AppendUint64(b, p.tail)
	return binary.BigEndian.AppendUint64(b, p.source)
}

func decodeProgress(b []byte) (progress, error) {
	var p progress
	if len(b) < 4 {
		return p, fmt.Errorf("progress of %d bytes", len(b))
	}
	if v := binary.BigEndian.Uint32(b); v != progressVersion {
		return p, fmt.Errorf("progress version %d, want %d", v, progressVersion)
	}
	b = b[4:]
	if len(b) < 16 {
		return p, errors.New("truncated progress")
	}
	p.cold, p.compactedAt = binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:]))
	b = b[16:]
	for _, f := range []*uint64{&p.series, &p.windows} {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return p, errors.New("truncated progress")
		}
		*f, b = v, b[k:]
	}
	if len(b) != 24 {
		return p, fmt.Errorf("progress has %d bytes after the counts, want 24", len(b))
	}
	p.head, p.tail, p.source = binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])
	return p, nil
}

func progressHash(v []byte) uint64 {
	h := fnv.New64a()
	h.Write(v)
	return h.Sum64()
}

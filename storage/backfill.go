package storage

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-tsdb/vigil/model"
)

// errSeriesLimit refuses a new series beyond Config.MaxActiveSeries.
var errSeriesLimit = errors.New("active series limit reached")

// Backfill stores samples of any age; repair and hand-off copy data
// between replicas with it. A sample already stored with the same value
// is counted as a duplicate; a different value at a stored timestamp is
// refused (model.ReasonConflict) and the stored value kept. It returns once
// everything stored is durable: samples inside the out-of-order window go
// through the head and the WAL (as durable as Config.WALSync promises),
// older ones are written to Badger as closed chunks and Badger is synced.
//
// A series that exists nowhere yet is refused (model.ReasonSeriesLimit)
// when the head is at Config.MaxActiveSeries, as in Append. On an error
// part of the batch may be stored; sending it again is safe (what was
// stored comes back as duplicates). Backfills of old samples run one at a
// time and exclude flushes meanwhile. Labels must be valid and sorted.
func (db *DB) Backfill(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	var res model.PushResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	var old []model.Series
	ticket, n, err := db.appendHead(batch, &res, &old)
	if err != nil {
		return model.PushResult{}, err
	}
	nOld := 0
	if len(old) > 0 {
		if nOld, err = db.backfillChunks(ctx, old, &res); err != nil {
			return model.PushResult{}, err
		}
	}
	if err := db.waitLogged(ticket, n); err != nil {
		return model.PushResult{}, err
	}
	res.Stored = n + nOld
	if nOld > 0 {
		db.coldChanges.n.Add(1) // chunks are only written for samples past the head's window; the days' marks moved in backfillChunks
	}
	db.metrics.backfilled.WithLabelValues("head").Add(float64(n))
	db.metrics.backfilled.WithLabelValues("chunks").Add(float64(nOld))
	db.metrics.duplicates.Add(float64(res.Duplicates))
	return res, nil
}

// backfillSeries is the part of a backfill batch for one series that is
// older than the out-of-order window.
type backfillSeries struct {
	lset     labels.Labels // the caller's
	ref      uint64
	inBadger bool // its series and labels keys are persisted
	samples  []model.Sample
}

// backfillChunks writes samples older than the out-of-order window as
// closed chunks to Badger, after checking them against what memory and
// Badger hold, and syncs. It returns how many it stored.
//
// Why the checks are exact: flushMu keeps flushes (the only other writer
// of raw chunks, and the only one that moves chunks from memory to Badger)
// and other backfills out; the appendMu barrier below waits for appends
// that computed an older window than appendHead did, and every later
// append refuses samples this old. So nothing else can store a sample at
// these timestamps while we check and write.
func (db *DB) backfillChunks(ctx context.Context, old []model.Series, res *model.PushResult) (int, error) {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.appendMu.Lock()
	closed := db.closed
	db.appendMu.Unlock()
	if closed {
		return 0, fmt.Errorf("storage is closed: %w", model.ErrUnavailable)
	}
	txn := db.bdb.NewTransaction(false)
	defer txn.Discard()
	var (
		list     []*backfillSeries
		byRef    = map[uint64]*backfillSeries{}
		reserved []string
	)
	defer func() { db.releasePending(reserved) }()
	for _, in := range old {
		ref, origin, key, err := db.resolveRef(txn, in.Labels, true)
		inBadger := origin == refInBadger
		if errors.Is(err, errSeriesLimit) {
			db.rejectAll(res, in, model.ReasonSeriesLimit, err.Error())
			continue
		}
		if err != nil {
			return 0, err
		}
		if key != "" {
			reserved = append(reserved, key)
		}
		bs := byRef[ref]
		if bs == nil {
			bs = &backfillSeries{lset: in.Labels, ref: ref, inBadger: inBadger}
			byRef[ref] = bs
			list = append(list, bs)
		}
		bs.samples = append(bs.samples, in.Samples...)
	}
	if db.testBackfillResolved != nil {
		db.testBackfillResolved()
	}

	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	var wbErr error
	set := func(k, v []byte) {
		if wbErr == nil {
			wbErr = wb.Set(k, v)
		}
	}
	var (
		mb       mergeBuf
		stored   int
		nChunks  int
		newest   = int64(math.MinInt64)
		allParts []uint32
		parts    []uint32
		lblBuf   []byte
	)
	for i, bs := range list {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		fresh, err := db.checkBackfill(txn, bs, res, &mb)
		if err != nil {
			return 0, err
		}
		if len(fresh) == 0 {
			continue
		}
		parts = parts[:0]
		for len(fresh) > 0 {
			n := chunkLen(fresh, db.chunkRange)
			xc := chunkenc.NewXORChunk()
			app, _ := xc.Appender()
			for _, smp := range fresh[:n] {
				app.Append(0, smp.T, smp.V)
			}
			mint, maxt := fresh[0].T, fresh[n-1].T
			set(chunkKey(TierRaw, bs.ref, mint, db.head.nextSeq.Add(1)), chunkValue(maxt, byte(model.EncXOR), xc.Bytes()))
			if p := partitionOf(mint); !slices.Contains(parts, p) {
				parts = append(parts, p)
				bs.lset.Range(func(l labels.Label) { set(postingKey(TierRaw, p, l.Name, l.Value, bs.ref), nil) })
			}
			newest = max(newest, maxt)
			nChunks++
			stored += n
			fresh = fresh[n:]
		}
		if !bs.inBadger {
			lblBuf = model.AppendLabels(lblBuf[:0], bs.lset)
			set(seriesKey(lblBuf), u64(bs.ref))
			set(labelsKey(bs.ref), slices.Clone(lblBuf))
		}
		allParts = append(allParts, parts...)
	}
	if stored == 0 {
		return 0, nil
	}
	// Counters at least as high as every ref and seq written, so that a
	// restart never hands them out again.
	set(metaVersion, u64(FormatVersion))
	set(metaNextID, u64(db.head.nextRef.Load()))
	set(metaNextSeq, u64(db.head.nextSeq.Load()))
	if wbErr != nil {
		return 0, fmt.Errorf("stage backfill batch: %w", wbErr)
	}
	// The days' cold-change marks move before the chunks are durable, so
	// that a crash in between still finds them moved (persisted ahead),
	// and again after, for whoever read them meanwhile.
	db.coldChanges.mark(allParts, false)
	// Make the chunks findable before they become visible: queries list
	// partitions from db.parts, and skip Badger above the watermark.
	for _, p := range allParts {
		db.parts.add(p)
	}
	if newest < math.MaxInt64 {
		db.raiseWatermark(newest + 1)
	}
	if err := wb.Flush(); err != nil {
		return 0, fmt.Errorf("write backfill batch: %w", err)
	}
	if err := db.bdb.Sync(); err != nil {
		return 0, fmt.Errorf("sync badger: %w", err)
	}
	db.coldChanges.mark(allParts, false)
	db.metrics.backfillChunks.Add(float64(nChunks))
	return stored, nil
}

// chunkLen returns how many of the sorted samples go into one chunk: at
// most samplesPerChunk, all in the chunk range of the first.
func chunkLen(smps []model.Sample, chunkRange int64) int {
	end := rangeEnd(smps[0].T, chunkRange)
	n := 1
	for n < len(smps) && n < samplesPerChunk && smps[n].T < end {
		n++
	}
	return n
}

// checkBackfill sorts a series' backfill samples and returns those not
// stored yet, counting duplicates and refusing conflicts against memory,
// Badger and earlier samples of the same batch (the first one wins).
func (db *DB) checkBackfill(txn *badger.Txn, bs *backfillSeries, res *model.PushResult, mb *mergeBuf) ([]model.Sample, error) {
	slices.SortStableFunc(bs.samples, func(a, b model.Sample) int { return cmp.Compare(a.T, b.T) })
	lo, hi := bs.samples[0].T, bs.samples[len(bs.samples)-1].T
	var chks []chunkCopy
	if s := db.head.byRef(bs.ref); s != nil {
		chks = s.readChunks(lo, hi, chks)
	}
	chks, err := db.badgerChunksOf(txn, bs.ref, lo, hi, chks, chks)
	if err != nil {
		return nil, fmt.Errorf("read chunks of series %d: %w", bs.ref, err)
	}
	slices.SortStableFunc(chks, func(a, b chunkCopy) int { return cmp.Compare(a.mint, b.mint) })
	var have []model.Sample
	err = mergeChunks(chks, lo, hi, mb, func(t int64, v float64) { have = append(have, model.Sample{T: t, V: v}) })
	if err != nil {
		return nil, fmt.Errorf("read chunks of series %d: %w", bs.ref, err)
	}
	fresh := make([]model.Sample, 0, len(bs.samples))
	j := 0
	for _, smp := range bs.samples {
		var prev model.Sample
		found := false
		if n := len(fresh); n > 0 && fresh[n-1].T == smp.T {
			prev, found = fresh[n-1], true
		} else {
			for j < len(have) && have[j].T < smp.T {
				j++
			}
			if j < len(have) && have[j].T == smp.T {
				prev, found = have[j], true
			}
		}
		switch {
		case !found:
			fresh = append(fresh, smp)
		case math.Float64bits(prev.V) == math.Float64bits(smp.V):
			res.Duplicates++
		default:
			db.reject(res, bs.lset, smp, model.ReasonConflict, "a different value is already stored at this timestamp")
		}
	}
	return fresh, nil
}

// refOrigin says where resolveRef found a series' ref.
type refOrigin int

const (
	refInBadger refOrigin = iota // its labels ↔ ref keys are in Badger
	refHeadOnly                  // a head series whose keys are not in Badger yet
	refPending                   // reserved earlier by the same operation
	refNew                       // reserved by this call: key is the reservation
)

// resolveRef returns the ref of the series lset and where it came from. A
// series that exists nowhere gets a new ref, reserved in db.pending (key
// is the reservation to release once Badger has synced) so that an Append
// creating it meanwhile takes the same ref; with limit, the head's series
// limit applies to such a new series. txn reads Badger; nothing else
// writes series keys while the caller holds flushMu.
func (db *DB) resolveRef(txn *badger.Txn, lset labels.Labels, limit bool) (ref uint64, origin refOrigin, key string, err error) {
	hash := lset.Hash()
	st := &db.head.stripes[hash&(stripeCount-1)]
	st.mu.Lock()
	defer st.mu.Unlock()
	if s := db.head.getLocked(st, hash, lset); s != nil {
		s.mu.Lock()
		inBadger := s.inBadger
		s.mu.Unlock()
		if inBadger {
			return s.ref, refInBadger, "", nil
		}
		return s.ref, refHeadOnly, "", nil
	}
	if ref, ok := db.pendingRef(lset); ok {
		return ref, refPending, "", nil
	}
	enc := model.AppendLabels(nil, lset)
	item, err := txn.Get(seriesKey(enc))
	switch {
	case err == nil:
		err = item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("series key value of %d bytes", len(v))
			}
			ref = binary.BigEndian.Uint64(v)
			return nil
		})
		if err != nil {
			return 0, 0, "", fmt.Errorf("look up series %s: %w", lset, err)
		}
		return ref, refInBadger, "", nil
	case !errors.Is(err, badger.ErrKeyNotFound):
		return 0, 0, "", fmt.Errorf("look up series %s: %w", lset, err)
	}
	if max := db.cfg.MaxActiveSeries; limit && max > 0 && db.head.numSeries.Load() >= int64(max) {
		return 0, 0, "", fmt.Errorf("%w (%d)", errSeriesLimit, max)
	}
	ref = db.head.nextRef.Add(1)
	key = string(enc)
	db.pendingMu.Lock()
	db.pending[key] = ref
	db.pendingMu.Unlock()
	db.pendingN.Add(1)
	return ref, refNew, key, nil
}

// releasePending drops reservations made by resolveRef.
func (db *DB) releasePending(keys []string) {
	if len(keys) == 0 {
		return
	}
	db.pendingMu.Lock()
	for _, k := range keys {
		delete(db.pending, k)
	}
	db.pendingMu.Unlock()
	db.pendingN.Add(-int64(len(keys)))
}

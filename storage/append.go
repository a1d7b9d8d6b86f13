package storage

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

var bufPool = sync.Pool{New: func() any { return &appendBuf{} }}

type appendBuf struct {
	samples []walSample
	rec     []byte
}

// Append stores a batch and returns once every stored sample is in the WAL
// as durably as Config.WALSync promises. Per-sample refusals (too old,
// conflicting value, series limit) are reported in the result, not as an
// error; the error is model.ErrUnavailable when nothing could be made
// durable. Labels must be valid and sorted (the distributor checks them).
func (db *DB) Append(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	var res model.PushResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	ticket, n, err := db.appendHead(batch, &res, nil)
	if err == nil {
		err = db.waitLogged(ticket, n)
	}
	if err != nil {
		return model.PushResult{}, err
	}
	res.Stored = n
	db.metrics.duplicates.Add(float64(res.Duplicates))
	return res, nil
}

// appendHead appends a batch to the head and logs what it stored to the
// WAL without waiting for it; it returns the WAL ticket to wait for and
// the number of samples stored. Samples older than the out-of-order window
// are refused as too old, unless old is not nil: then they are left out and
// appended to *old (as new Series sharing the batch's labels), for
// Backfill to write as chunks.
func (db *DB) appendHead(batch []model.Series, res *model.PushResult, old *[]model.Series) (uint64, int, error) {
	buf := bufPool.Get().(*appendBuf)
	defer bufPool.Put(buf)
	samples := buf.samples[:0]

	db.appendMu.RLock()
	if db.closed {
		db.appendMu.RUnlock()
		return 0, 0, fmt.Errorf("storage is closed: %w", model.ErrUnavailable)
	}
	minValid := int64(math.MinInt64)
	if hm := db.head.maxt.Load(); hm != math.MinInt64 {
		minValid = hm - db.window
	}
	var maxT int64 = math.MinInt64
	minT := int64(math.MaxInt64)
	ooo := 0
	// Series are looked up a group at a time before their samples are
	// appended: the lookups are independent, so their cache misses overlap
	// instead of each waiting behind the previous series' append.
	var found [lookupGroup]*memSeries
	var hashes [lookupGroup]uint64
	for i, in := range batch {
		g := i % lookupGroup
		if g == 0 {
			for j := 0; j < lookupGroup && i+j < len(batch); j++ {
				hashes[j] = batch[i+j].Labels.Hash()
				found[j] = db.head.get(hashes[j], batch[i+j].Labels)
			}
		}
		if len(in.Samples) == 0 {
			continue
		}
		if old != nil {
			var o model.Series
			if o, in = splitBefore(in, minValid); len(o.Samples) > 0 {
				*old = append(*old, o)
			}
			if len(in.Samples) == 0 {
				continue
			}
		} else if allBefore(in.Samples, minValid) {
			db.rejectAll(res, in, model.ReasonTooOld, db.tooOldMsg)
			continue
		}
		s, err := db.lockedSeries(in.Labels, hashes[g], found[g])
		if err != nil {
			db.rejectAll(res, in, model.ReasonSeriesLimit, err.Error())
			continue
		}
		for _, smp := range in.Samples {
			switch out := s.append(smp.T, smp.V, minValid, db.chunkRange, db.head); out {
			case outStored, outStoredOOO:
				if out == outStoredOOO {
					ooo++
				}
				samples = append(samples, walSample{id: s.ref, t: smp.T, v: smp.V})
				maxT, minT = max(maxT, smp.T), min(minT, smp.T)
			case outDuplicate:
				res.Duplicates++
			case outConflict:
				db.reject(res, in.Labels, smp, model.ReasonConflict, "a different value is already stored at this timestamp")
			case outTooOld:
				db.reject(res, in.Labels, smp, model.ReasonTooOld, db.tooOldMsg)
			}
		}
		s.mu.Unlock()
	}
	var ticket uint64
	var err error
	if len(samples) > 0 {
		buf.rec = appendSamplesRecord(buf.rec[:0], samples)
		ticket, err = db.wal.Append(buf.rec)
	}
	db.appendMu.RUnlock()
	n := len(samples)
	buf.samples = samples
	db.head.updateMaxT(maxT)
	db.touchedCold(minT)
	db.metrics.outOfOrder.Add(float64(ooo))
	if err != nil {
		return 0, 0, fmt.Errorf("log %d samples: %v: %w", n, err, model.ErrUnavailable)
	}
	return ticket, n, nil
}

// waitLogged waits until the WAL record of an appendHead that stored n
// samples is durable, and counts them.
func (db *DB) waitLogged(ticket uint64, n int) error {
	if ticket > 0 {
		if err := db.wal.Wait(ticket); err != nil {
			return fmt.Errorf("log %d samples: %v: %w", n, err, model.ErrUnavailable)
		}
	}
	db.metrics.samplesAppended.Add(float64(n))
	return nil
}

// splitBefore splits in's samples into those before t and the others,
// keeping their order. It copies only when both parts are non-empty.
func splitBefore(in model.Series, t int64) (before, rest model.Series) {
	n := 0
	for _, smp := range in.Samples {
		if smp.T < t {
			n++
		}
	}
	switch n {
	case 0:
		return model.Series{Labels: in.Labels}, in
	case len(in.Samples):
		return in, model.Series{Labels: in.Labels}
	}
	before = model.Series{Labels: in.Labels, Samples: make([]model.Sample, 0, n)}
	rest = model.Series{Labels: in.Labels, Samples: make([]model.Sample, 0, len(in.Samples)-n)}
	for _, smp := range in.Samples {
		if smp.T < t {
			before.Samples = append(before.Samples, smp)
		} else {
			rest.Samples = append(rest.Samples, smp)
		}
	}
	return before, rest
}

func allBefore(s []model.Sample, t int64) bool {
	for _, smp := range s {
		if smp.T >= t {
			return false
		}
	}
	return true
}

func (db *DB) reject(res *model.PushResult, lset labels.Labels, smp model.Sample, r model.Reason, msg string) {
	db.metrics.rejected.WithLabelValues(string(r)).Inc()
	if len(res.Rejections) >= model.MaxRejectionDetails {
		res.Reject(1, model.Rejection{Reason: r}) // counted, not listed: skip formatting the labels
		return
	}
	res.Reject(1, model.Rejection{Reason: r, Series: lset.String(), T: smp.T, Message: msg})
}

func (db *DB) rejectAll(res *model.PushResult, in model.Series, r model.Reason, msg string) {
	db.metrics.rejected.WithLabelValues(string(r)).Add(float64(len(in.Samples)))
	res.Reject(len(in.Samples), model.Rejection{Reason: r, Series: in.Labels.String(), T: in.Samples[0].T, Message: msg})
}

// lookupGroup is how many series Append looks up ahead of appending.
const lookupGroup = 32

// lockedSeries returns the head series for lset with its mutex held,
// creating it (and logging it to the WAL) if needed. hint is the result of
// an earlier lookup (may be nil or since removed). Called with appendMu
// held shared.
func (db *DB) lockedSeries(lset labels.Labels, hash uint64, hint *memSeries) (*memSeries, error) {
	if hint != nil {
		hint.mu.Lock()
		if !hint.removed.Load() {
			return hint, nil
		}
		hint.mu.Unlock()
	}
	for {
		s, _, err := db.head.getOrCreate(hash, lset, func() (uint64, bool, error) {
			if max := db.cfg.MaxActiveSeries; max > 0 && db.head.numSeries.Load() >= int64(max) {
				return 0, false, fmt.Errorf("active series limit of %d reached", max)
			}
			if ref, ok := db.pendingRef(lset); ok {
				return ref, false, nil // Backfill writes its keys; so will the next flush
			}
			ref, ok, err := db.lookupRef(lset)
			if err != nil || ok {
				return ref, ok, err
			}
			return db.head.nextRef.Add(1), false, nil
		}, func(s *memSeries) error {
			_, err := db.wal.Append(appendSeriesRecord(nil, []walSeries{{id: s.ref, labels: s.lset}}))
			return err
		})
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		if !s.removed.Load() {
			return s, nil
		}
		// Removed by a flush between lookup and lock: look up again.
		s.mu.Unlock()
	}
}

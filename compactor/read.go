package compactor

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/model/downsample"
	"github.com/vigil-tsdb/vigil/storage"
)

// Windows returns the windows of tier (storage.TierMinute or TierHour)
// whose End lies in [mint, maxt], per series matching ms, sorted by labels
// (docs/downsampling.md, "Reads"). Each UTC day comes from the best source
// db holds for it:
//
//   - the tier itself where the day is compacted;
//   - for the 1 h tier, the 1 m day combined, where only that is compacted;
//   - else the raw samples, downsampled on the fly (days not yet due, or
//     not compacted yet).
//
// So every replica answers with the same windows whatever its compaction
// progress. The result is held in memory (about 100 bytes per window) and
// owned by the caller. Windows is safe concurrently with a running
// Compactor: a day it rewrites or drops meanwhile is read either whole
// before or whole after (storage.DB.TierSelect).
func Windows(ctx context.Context, db *storage.DB, tier uint8, mint, maxt int64, ms ...*labels.Matcher) ([]downsample.Series, error) {
	if tier != storage.TierMinute && tier != storage.TierHour {
		return nil, fmt.Errorf("compactor: no windows in tier %d", tier)
	}
	if mint > maxt {
		return nil, nil
	}
	has := func(t uint8) (map[int32]bool, error) {
		days, err := db.TierDays(t)
		if err != nil {
			return nil, err
		}
		m := make(map[int32]bool, len(days))
		for _, d := range days {
			m[d] = true
		}
		return m, nil
	}
	own, err := has(tier)
	if err != nil {
		return nil, err
	}
	minute := map[int32]bool{}
	if tier == storage.TierHour {
		if minute, err = has(storage.TierMinute); err != nil {
			return nil, err
		}
	}
	acc := windowAcc{m: map[string]*downsample.Series{}}
	// Tier day D holds the windows with DayStart(D) < End ≤ DayStart(D+1).
	first, last := storage.DayOf(max(mint, math.MinInt64/2)-1), min(storage.DayOf(maxt-1), math.MaxInt32-1)
	for _, sg := range segments(first, last, own, minute) {
		lo, hi := max(mint, storage.DayStart(sg.from)+1), min(maxt, storage.DayStart(sg.to+1))
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch sg.src {
		case srcTier:
			err = acc.fromTier(ctx, db, tier, lo, hi, ms, nil)
		case srcMinute:
			err = acc.fromTier(ctx, db, storage.TierMinute, lo, hi, ms, func(ws []downsample.Window) []downsample.Window {
				return downsample.Combine(ws, tierWidth[storage.TierHour])
			})
		default:
			err = acc.fromRaw(ctx, db, tierWidth[tier], lo, hi, ms)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s windows of %s..%s: %w", tierNames[tier], dayString(sg.from), dayString(sg.to), err)
		}
	}
	out := make([]downsample.Series, 0, len(acc.m))
	for _, s := range acc.m {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b downsample.Series) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

const (
	srcRaw = iota
	srcTier
	srcMinute
)

// segment is a run of days [from, to] read from one source.
type segment struct {
	from, to int32
	src      int
}

// segments splits [first, last] into runs by source: the days in own
// (compacted in the tier), else in minute (compacted in the 1 m tier), else
// raw. It takes time in the number of compacted days, not of days.
func segments(first, last int32, own, minute map[int32]bool) []segment {
	var special []int32
	for _, m := range []map[int32]bool{own, minute} {
		for d := range m {
			if d >= first && d <= last {
				special = append(special, d)
			}
		}
	}
	slices.Sort(special)
	special = slices.Compact(special)
	var out []segment
	push := func(from, to int32, src int) {
		if n := len(out); n > 0 && out[n-1].src == src && out[n-1].to+1 == from {
			out[n-1].to = to
			return
		}
		out = append(out, segment{from, to, src})
	}
	next := first
	for _, d := range special {
		if d > next {
			push(next, d-1, srcRaw)
		}
		src := srcMinute
		if own[d] {
			src = srcTier
		}
		push(d, d, src)
		next = d + 1
	}
	if next <= last {
		push(next, last, srcRaw)
	}
	return out
}

// windowAcc gathers the windows of each series over consecutive day
// ranges, read in time order.
type windowAcc struct {
	m   map[string]*downsample.Series
	buf []byte
}

// series returns the accumulated series of lset.
func (a *windowAcc) series(lset labels.Labels) *downsample.Series {
	a.buf = lset.Bytes(a.buf)
	s, ok := a.m[string(a.buf)]
	if !ok {
		s = &downsample.Series{Labels: lset}
		a.m[string(a.buf)] = s
	}
	return s
}

// add appends windows with End in [lo, hi] to the series' (ws sorted).
func (a *windowAcc) add(lset labels.Labels, ws []downsample.Window, lo, hi int64) {
	i, _ := slices.BinarySearchFunc(ws, lo, func(w downsample.Window, t int64) int { return cmpInt(w.End, t) })
	j, found := slices.BinarySearchFunc(ws, hi, func(w downsample.Window, t int64) int { return cmpInt(w.End, t) })
	if found {
		j++
	}
	if i >= j {
		return
	}
	s := a.series(lset)
	if n := len(s.Parts); n > 0 && s.Parts[n-1].Chunk == nil {
		s.Parts[n-1].Windows = append(s.Parts[n-1].Windows, ws[i:j]...)
		return
	}
	s.Parts = append(s.Parts, downsample.Part{Windows: slices.Clone(ws[i:j])})
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// fromTier reads the windows of a tier with End in [lo, hi]; conv, if set,
// turns them into another width first (1 m → 1 h), in which case whole
// coarse windows are read.
func (a *windowAcc) fromTier(ctx context.Context, db *storage.DB, tier uint8, lo, hi int64, ms []*labels.Matcher, conv func([]downsample.Window) []downsample.Window) error {
	rlo, rhi := lo, hi
	if conv != nil {
		h := tierWidth[storage.TierHour]
		rlo, rhi = downsample.WindowEnd(lo, h)-h+1, downsample.WindowEnd(hi, h)
	}
	set, err := db.TierSelect(ctx, tier, rlo, rhi, ms...)
	if err != nil {
		return err
	}
	var ws []downsample.Window
	for set.Next() {
		s := set.At()
		if conv == nil {
			if err := a.addChunks(s, lo, hi); err != nil {
				return err
			}
			continue
		}
		if ws, err = tierWindows(ws[:0], s, rlo, rhi); err != nil {
			return err
		}
		a.add(s.Labels, conv(ws), lo, hi)
	}
	return set.Err()
}

// addChunks adds the windows of s with End in [lo, hi]: its chunks that
// lie wholly within as they are, the others decoded and cut.
func (a *windowAcc) addChunks(s storage.TierSeries, lo, hi int64) error {
	for _, c := range s.Chunks {
		if c.Encoding != downsample.EncodingAggregate {
			return fmt.Errorf("series %s: chunk [%d, %d] has encoding %d, want %d", s.Labels, c.Mint, c.Maxt, c.Encoding, downsample.EncodingAggregate)
		}
		if c.Mint >= lo && c.Maxt <= hi {
			as := a.series(s.Labels)
			as.Parts = append(as.Parts, downsample.Part{Chunk: c.Data, Mint: c.Mint, Maxt: c.Maxt})
			continue
		}
		ws, err := tierWindows(nil, storage.TierSeries{Labels: s.Labels, Chunks: []storage.TierChunk{c}}, lo, hi)
		if err != nil {
			return err
		}
		a.add(s.Labels, ws, lo, hi)
	}
	return nil
}

// fromRaw downsamples the raw samples of the width-wide windows with End in
// [lo, hi].
func (a *windowAcc) fromRaw(ctx context.Context, db *storage.DB, width, lo, hi int64, ms []*labels.Matcher) error {
	rlo, rhi := downsample.WindowEnd(lo, width)-width+1, downsample.WindowEnd(hi, width)
	q, err := db.Querier(rlo, rhi)
	if err != nil {
		return err
	}
	defer q.Close()
	ss := q.Select(ctx, false, nil, ms...)
	var (
		buf []model.Sample
		it  chunkenc.Iterator
	)
	for ss.Next() {
		s := ss.At()
		buf = buf[:0]
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				return fmt.Errorf("series %s: sample of type %s, want float", s.Labels(), vt)
			}
			t, v := it.At()
			if t >= rlo && t <= rhi {
				buf = append(buf, model.Sample{T: t, V: v})
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("read series %s: %w", s.Labels(), err)
		}
		a.add(s.Labels(), downsample.Downsample(buf, width), lo, hi)
	}
	return ss.Err()
}

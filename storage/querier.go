package storage

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-tsdb/vigil/model"
)

// ChunkQuerier returns a querier over [mint, maxt] (ms, inclusive) that
// yields chunks: per series sorted by min time, possibly overlapping.
func (db *DB) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return &chunkQuerier{db: db, mint: mint, maxt: maxt}, nil
}

// Querier returns a sample querier over [mint, maxt]; overlapping chunks
// are merged and deduplicated by timestamp.
func (db *DB) Querier(mint, maxt int64) (storage.Querier, error) {
	return &sampleQuerier{chunkQuerier{db: db, mint: mint, maxt: maxt}}, nil
}

var (
	_ storage.ChunkQueryable = (*DB)(nil)
	_ storage.Queryable      = (*DB)(nil)
)

type chunkQuerier struct {
	db         *DB
	mint, maxt int64
}

func (q *chunkQuerier) Close() error { return nil }

type seriesRef struct {
	ref  uint64
	lset labels.Labels
	mem  *memSeries // nil if not in the head when selected
}

// selectSeries returns the series matching ms with possible data in range,
// sorted by labels. Head postings are read before Badger's, so a series
// evicted in between (its postings persisted first) is not missed.
func (q *chunkQuerier) selectSeries(ctx context.Context, ms []*labels.Matcher) ([]seriesRef, error) {
	headRefs, err := selectRefs(q.db.head.postings, ms)
	if err != nil {
		return nil, err
	}
	var out []seriesRef
	seen := map[uint64]struct{}{}
	for _, ref := range headRefs {
		s := q.db.head.byRef(ref)
		if s == nil || !matchesAll(s.lset, ms) {
			continue
		}
		seen[ref] = struct{}{}
		out = append(out, seriesRef{ref: ref, lset: s.lset, mem: s})
	}
	if q.mint >= q.db.onlyInBadgerBefore.Load() {
		// Every series with data in range has it in memory, so is in the head.
		sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].lset, out[j].lset) < 0 })
		return out, nil
	}
	var sb labels.ScratchBuilder
	err = q.db.bdb.View(func(txn *badger.Txn) error {
		for _, part := range q.db.partitionsIn(q.mint, q.maxt) {
			if err := ctx.Err(); err != nil {
				return err
			}
			refs, err := selectRefs(&badgerPostings{txn: txn, part: part}, ms)
			if err != nil {
				return err
			}
			for _, ref := range refs {
				if _, ok := seen[ref]; ok {
					continue
				}
				seen[ref] = struct{}{}
				lset, err := readLabels(txn, ref, &sb)
				if err != nil {
					return err
				}
				if matchesAll(lset, ms) {
					out = append(out, seriesRef{ref: ref, lset: lset})
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select series: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].lset, out[j].lset) < 0 })
	return out, nil
}

func readLabels(txn *badger.Txn, ref uint64, sb *labels.ScratchBuilder) (labels.Labels, error) {
	item, err := txn.Get(labelsKey(ref))
	if err != nil {
		return labels.EmptyLabels(), fmt.Errorf("labels of series %d: %w", ref, err)
	}
	var lset labels.Labels
	err = item.Value(func(v []byte) error {
		var derr error
		lset, derr = model.DecodeLabels(v, sb)
		return derr
	})
	return lset, err
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// chunksOf returns the chunks of one series overlapping the range, memory
// first (its versions are newer) then Badger, sorted by min time.
func (q *chunkQuerier) chunksOf(sr seriesRef) ([]chunkCopy, error) {
	var out []chunkCopy
	if s := sr.mem; s != nil {
		out = s.readChunks(q.mint, q.maxt, out)
	} else if s := q.db.head.byRef(sr.ref); s != nil {
		out = s.readChunks(q.mint, q.maxt, out)
	}
	inMem := len(out)
	if q.mint >= q.db.onlyInBadgerBefore.Load() { // loaded after the memory copy
		sort.SliceStable(out, func(i, j int) bool { return out[i].mint < out[j].mint })
		return out, nil
	}
	err := q.db.bdb.View(func(txn *badger.Txn) error {
		var err error
		out, err = q.db.badgerChunksOf(txn, sr.ref, q.mint, q.maxt, out[:inMem], out)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read chunks of series %d: %w", sr.ref, err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].mint < out[j].mint })
	return out, nil
}

// badgerChunksOf appends to dst the Badger chunks of series ref that
// overlap [mint, maxt], except those whose seq is in mem (the memory copy
// of a chunk is newer).
func (db *DB) badgerChunksOf(txn *badger.Txn, ref uint64, mint, maxt int64, mem, dst []chunkCopy) ([]chunkCopy, error) {
	// Chunks never span a chunk range, so none starts before mint's partition.
	for _, part := range db.partitionsIn(mint, maxt) {
		prefix := chunkSeriesPrefix(TierRaw, part, ref)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: false})
		for it.Rewind(); it.Valid(); it.Next() {
			_, cmint, seq, err := parseChunkKey(it.Item().Key())
			if err != nil {
				it.Close()
				return nil, err
			}
			if cmint > maxt {
				break
			}
			if slices.ContainsFunc(mem, func(c chunkCopy) bool { return c.seq == seq }) {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return nil, err
			}
			cmaxt, _, data, err := parseChunkValue(v)
			if err != nil {
				it.Close()
				return nil, fmt.Errorf("chunk of series %d at %d: %w", ref, cmint, err)
			}
			if cmaxt < mint {
				continue
			}
			dst = append(dst, chunkCopy{mint: cmint, maxt: cmaxt, seq: seq, data: data})
		}
		it.Close()
	}
	return dst, nil
}

func (q *chunkQuerier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	sub := &chunkQuerier{db: q.db, mint: mint, maxt: maxt}
	list, err := sub.selectSeries(ctx, ms)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	limit := 0
	if hints != nil {
		limit = hints.Limit
	}
	return &chunkSeriesSet{ctx: ctx, q: sub, list: list, limit: limit, labelsOnly: hints != nil && hints.Func == "series"}
}

// hasData reports whether a series has a sample in the querier's range,
// without copying chunks.
func (q *chunkQuerier) hasData(sr seriesRef) (bool, error) {
	s := sr.mem
	if s == nil {
		s = q.db.head.byRef(sr.ref)
	}
	if s != nil && s.overlaps(q.mint, q.maxt) {
		return true, nil
	}
	if q.mint >= q.db.onlyInBadgerBefore.Load() {
		return false, nil
	}
	found := false
	err := q.db.bdb.View(func(txn *badger.Txn) error {
		for _, part := range q.db.partitionsIn(q.mint, q.maxt) {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: chunkSeriesPrefix(TierRaw, part, sr.ref)})
			for it.Rewind(); it.Valid() && !found; it.Next() {
				_, mint, _, err := parseChunkKey(it.Item().Key())
				if err != nil {
					it.Close()
					return err
				}
				if mint > q.maxt {
					break
				}
				if mint >= q.mint {
					found = true
					break
				}
				err = it.Item().Value(func(v []byte) error {
					maxt, _, _, err := parseChunkValue(v)
					found = err == nil && maxt >= q.mint
					return err
				})
				if err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
			if found {
				return nil
			}
		}
		return nil
	})
	return found, err
}

// chunkSeriesSet reads each series' chunks when it is reached, and skips
// series that turn out to have no data in range.
type chunkSeriesSet struct {
	ctx        context.Context
	q          *chunkQuerier
	labelsOnly bool // hints.Func "series": series without chunks
	list       []seriesRef
	limit      int
	n          int
	cur        *chunkSeries
	err        error
}

func (s *chunkSeriesSet) Next() bool {
	for len(s.list) > 0 && s.err == nil {
		if s.limit > 0 && s.n >= s.limit {
			return false
		}
		if err := s.ctx.Err(); err != nil {
			s.err = err
			return false
		}
		sr := s.list[0]
		s.list = s.list[1:]
		if s.labelsOnly {
			ok, err := s.q.hasData(sr)
			if err != nil {
				s.err = err
				return false
			}
			if !ok {
				continue
			}
			s.cur = &chunkSeries{lset: sr.lset}
			s.n++
			return true
		}
		chks, err := s.q.chunksOf(sr)
		if err != nil {
			s.err = err
			return false
		}
		if len(chks) == 0 {
			continue
		}
		s.cur = &chunkSeries{lset: sr.lset, chunks: chks}
		s.n++
		return true
	}
	return false
}

func (s *chunkSeriesSet) At() storage.ChunkSeries           { return s.cur }
func (s *chunkSeriesSet) Err() error                        { return s.err }
func (s *chunkSeriesSet) Warnings() annotations.Annotations { return nil }

type chunkSeries struct {
	lset   labels.Labels
	chunks []chunkCopy
}

func (c *chunkSeries) Labels() labels.Labels { return c.lset }

func (c *chunkSeries) Iterator(chunks.Iterator) chunks.Iterator {
	return &chunkIter{chunks: c.chunks, i: -1}
}

type chunkIter struct {
	chunks []chunkCopy
	i      int
	cur    chunks.Meta
	err    error
}

func (it *chunkIter) Next() bool {
	if it.err != nil || it.i+1 >= len(it.chunks) {
		return false
	}
	it.i++
	c := it.chunks[it.i]
	xc, err := chunkFromBytes(c.data)
	if err != nil {
		it.err = err
		return false
	}
	it.cur = chunks.Meta{Chunk: xc, MinTime: c.mint, MaxTime: c.maxt}
	return true
}

func (it *chunkIter) At() chunks.Meta { return it.cur }
func (it *chunkIter) Err() error      { return it.err }

// Chunks returns the series' chunks as (mint, maxt, XOR bytes); for the
// ingester's gRPC encoding. The caller must not modify the bytes.
func (c *chunkSeries) Chunks(fn func(mint, maxt int64, data []byte)) {
	for _, ch := range c.chunks {
		fn(ch.mint, ch.maxt, ch.data)
	}
}

func (q *chunkQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var names []string
	if len(ms) == 0 {
		names = q.db.head.postings.names()
		err := q.viewIfNeeded(func(txn *badger.Txn) error {
			for _, part := range q.db.partitionsIn(q.mint, q.maxt) {
				if err := (&badgerPostings{txn: txn, part: part}).names(func(n string) { names = append(names, n) }); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("label names: %w", err)
		}
	} else {
		list, err := q.selectSeries(ctx, ms)
		if err != nil {
			return nil, nil, err
		}
		for _, sr := range list {
			sr.lset.Range(func(l labels.Label) { names = append(names, l.Name) })
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	return applyLimit(names, hints), nil, nil
}

func (q *chunkQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	var values []string
	if len(ms) == 0 {
		collect := func(src postingsSource) error {
			return src.forValues(name, func(v string, _ func() ([]uint64, error)) error {
				values = append(values, v)
				return nil
			})
		}
		if err := collect(q.db.head.postings); err != nil {
			return nil, nil, err
		}
		err := q.viewIfNeeded(func(txn *badger.Txn) error {
			for _, part := range q.db.partitionsIn(q.mint, q.maxt) {
				if err := collect(&badgerPostings{txn: txn, part: part}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("label values of %q: %w", name, err)
		}
	} else {
		list, err := q.selectSeries(ctx, ms)
		if err != nil {
			return nil, nil, err
		}
		for _, sr := range list {
			if v := sr.lset.Get(name); v != "" {
				values = append(values, v)
			}
		}
	}
	slices.Sort(values)
	values = slices.Compact(values)
	return applyLimit(values, hints), nil, nil
}

// viewIfNeeded runs fn in a Badger read transaction unless everything in
// the querier's range is in memory (see DB.onlyInBadgerBefore).
func (q *chunkQuerier) viewIfNeeded(fn func(*badger.Txn) error) error {
	if q.mint >= q.db.onlyInBadgerBefore.Load() {
		return nil
	}
	return q.db.bdb.View(fn)
}

func applyLimit(s []string, hints *storage.LabelHints) []string {
	if hints != nil && hints.Limit > 0 && len(s) > hints.Limit {
		return s[:hints.Limit]
	}
	return s
}

// sampleQuerier decodes chunks into samples, merging overlapping chunks.
type sampleQuerier struct{ chunkQuerier }

func (q *sampleQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	return &boundedSeriesSet{SeriesSet: storage.NewSeriesSetFromChunkSeriesSet(q.chunkQuerier.Select(ctx, sortSeries, hints, ms...)), mint: mint, maxt: maxt}
}

// boundedSeriesSet trims samples to [mint, maxt]: chunks are returned whole.
type boundedSeriesSet struct {
	storage.SeriesSet
	mint, maxt int64
}

func (b *boundedSeriesSet) At() storage.Series {
	return &boundedSeries{Series: b.SeriesSet.At(), mint: b.mint, maxt: b.maxt}
}

type boundedSeries struct {
	storage.Series
	mint, maxt int64
}

func (b *boundedSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	return &boundedIterator{Iterator: b.Series.Iterator(it), mint: b.mint, maxt: b.maxt}
}

type boundedIterator struct {
	chunkenc.Iterator
	mint, maxt int64
	started    bool
}

func (b *boundedIterator) Next() chunkenc.ValueType {
	if !b.started {
		b.started = true
		return b.check(b.Iterator.Seek(b.mint))
	}
	return b.check(b.Iterator.Next())
}

func (b *boundedIterator) Seek(t int64) chunkenc.ValueType {
	b.started = true
	return b.check(b.Iterator.Seek(max(t, b.mint)))
}

func (b *boundedIterator) check(vt chunkenc.ValueType) chunkenc.ValueType {
	if vt == chunkenc.ValNone || b.Iterator.AtT() > b.maxt {
		return chunkenc.ValNone
	}
	return vt
}

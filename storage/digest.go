package storage

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-tsdb/vigil/model"
)

// SampleDigest is the digest of one sample, the term SeriesDigest.Sum adds
// up: mix(mix(uint64(t) + 0x9e3779b97f4a7c15) XOR float64bits(v)), where mix
// is splitmix64's finalizer. For a fixed t it is a bijection of the value
// bits, so two samples at the same time with different values never have
// the same digest.
func SampleDigest(t int64, v float64) uint64 {
	return Mix64(Mix64(uint64(t)+0x9e3779b97f4a7c15) ^ math.Float64bits(v))
}

// Mix64 is the splitmix64 finalizer (a bijection on uint64); repair mixes
// series digests with it too.
func Mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// SeriesDigest summarises one series' samples in a time range.
type SeriesDigest struct {
	Labels  labels.Labels
	Samples int    // samples in range
	Sum     uint64 // wrapping sum of SampleDigest over those samples
}

// digestRenewAfter bounds how long SeriesDigests keeps one Badger read
// transaction (and the tables it pins) open.
const digestRenewAfter = 5 * time.Second

// SeriesDigests calls fn for every series that has at least one sample in
// [mint, maxt] (inclusive), once each, in no particular order. The digest
// counts each timestamp once however the samples are chunked, wherever
// they are (head, its out-of-order buffer, Badger), so two replicas holding
// the same samples produce the same digests.
//
// Labels passed to fn are immutable and safe to keep. fn runs on the
// calling goroutine and may block; the scan honours ctx between series and
// returns fn's first error. It reads Badger with one iterator per day
// partition in the range, renewed every few seconds and whenever a flush
// evicts chunks from memory, so a concurrent flush never hides a chunk.
// Samples written concurrently may or may not be counted.
func (db *DB) SeriesDigests(ctx context.Context, mint, maxt int64, fn func(SeriesDigest) error) error {
	if mint > maxt {
		return nil
	}
	heads := db.head.all()
	slices.SortFunc(heads, func(a, b *memSeries) int { return cmp.Compare(a.ref, b.ref) })
	sc := &digestScan{db: db, mint: mint, maxt: maxt, gen: db.evictions.Load(), earliest: math.MinInt64}
	if mint > math.MinInt64+db.chunkRange { // a chunk ends within its chunk range
		sc.earliest = mint - db.chunkRange
	}
	defer sc.close()
	if mint < db.onlyInBadgerBefore.Load() {
		sc.useBadger = true
		sc.open(0)
	}
	var (
		arena chunkArena
		mb    mergeBuf
		sb    labels.ScratchBuilder
		hi    int
		n     int
	)
	for {
		if n++; n%128 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if sc.err != nil {
			return sc.err
		}
		ref, ok := sc.nextRef()
		if hi < len(heads) && (!ok || heads[hi].ref <= ref) {
			ref, ok = heads[hi].ref, true
		}
		if !ok {
			return nil
		}
		arena.reset()
		var s *memSeries
		if hi < len(heads) && heads[hi].ref == ref {
			s = heads[hi]
			hi++
			s.copyChunks(&arena, mint, maxt)
		}
		inMem := len(arena.idx)
		// Loaded after the memory copy: see DB.evictions.
		if g := db.evictions.Load(); g != sc.gen || (sc.txn != nil && time.Since(sc.opened) > digestRenewAfter) {
			sc.gen = g
			sc.useBadger = sc.useBadger || mint < db.onlyInBadgerBefore.Load()
			if sc.useBadger {
				sc.open(ref)
			}
		}
		if sc.useBadger {
			sc.readChunks(ref, &arena, inMem)
		}
		if sc.err != nil {
			return sc.err
		}
		if len(arena.idx) == 0 {
			continue
		}
		chks := arena.chunks()
		slices.SortStableFunc(chks, func(a, b chunkCopy) int { return cmp.Compare(a.mint, b.mint) })
		d := SeriesDigest{}
		err := mergeChunks(chks, mint, maxt, &mb, func(t int64, v float64) {
			d.Samples++
			d.Sum += SampleDigest(t, v)
		})
		if err != nil {
			return fmt.Errorf("digest series %d: %w", ref, err)
		}
		if d.Samples == 0 {
			continue
		}
		if s != nil {
			d.Labels = s.lset
		} else if d.Labels, err = readLabels(sc.txn, ref, &sb); err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
	}
}

// digestScan walks the chunk keys of the partitions in a range in series
// order: one iterator per partition, all in one read transaction.
type digestScan struct {
	db         *DB
	mint, maxt int64
	earliest   int64  // a chunk starting at or before this ends before mint
	gen        uint64 // DB.evictions when txn was opened (or the scan began)
	useBadger  bool

	txn     *badger.Txn
	opened  time.Time
	cursors []partCursor
	err     error
}

type partCursor struct {
	part uint32
	it   *badger.Iterator
	ref  uint64 // series of the current key
	ok   bool   // the iterator is on a chunk key
}

func (c *partCursor) load() error {
	c.ok = c.it.Valid()
	if !c.ok {
		return nil
	}
	id, _, _, err := parseChunkKey(c.it.Item().Key())
	c.ref = id
	return err
}

func (sc *digestScan) close() {
	for _, c := range sc.cursors {
		c.it.Close()
	}
	sc.cursors = sc.cursors[:0]
	if sc.txn != nil {
		sc.txn.Discard()
		sc.txn = nil
	}
}

// open (re)starts the transaction, every cursor positioned at series from.
func (sc *digestScan) open(from uint64) {
	sc.close()
	sc.txn = sc.db.bdb.NewTransaction(false)
	sc.opened = time.Now()
	for _, part := range sc.db.partitionsIn(sc.mint, sc.maxt) {
		it := sc.txn.NewIterator(badger.IteratorOptions{Prefix: partPrefix(prefixChunks, TierRaw, part)})
		it.Seek(chunkSeriesPrefix(TierRaw, part, from))
		c := partCursor{part: part, it: it}
		if err := c.load(); err != nil && sc.err == nil {
			sc.err = err
		}
		sc.cursors = append(sc.cursors, c)
	}
}

// nextRef returns the lowest series any cursor is on.
func (sc *digestScan) nextRef() (uint64, bool) {
	var ref uint64
	found := false
	for _, c := range sc.cursors {
		if c.ok && (!found || c.ref < ref) {
			ref, found = c.ref, true
		}
	}
	return ref, found
}

// readChunks adds the Badger chunks of series ref that overlap the range
// to a, except those whose seq is among its first inMem chunks (the memory
// copy of a chunk wins), and moves the cursors past ref.
func (sc *digestScan) readChunks(ref uint64, a *chunkArena, inMem int) {
	for i := range sc.cursors {
		c := &sc.cursors[i]
		for c.ok && c.ref == ref && sc.err == nil {
			item := c.it.Item()
			_, mint, seq, err := parseChunkKey(item.Key())
			if err != nil {
				sc.err = err
				return
			}
			if mint > sc.maxt {
				if ref == math.MaxUint64 {
					c.ok = false
					break
				}
				c.it.Seek(chunkSeriesPrefix(TierRaw, c.part, ref+1))
				sc.err = c.load()
				break
			}
			if mint > sc.earliest && !a.hasSeq(seq, inMem) {
				err = item.Value(func(v []byte) error {
					maxt, enc, data, err := parseChunkValue(v)
					if err != nil {
						return err
					}
					if enc != byte(model.EncXOR) {
						return fmt.Errorf("encoding %d", enc)
					}
					if maxt >= sc.mint {
						a.add(mint, maxt, seq, data)
					}
					return nil
				})
				if err != nil {
					sc.err = fmt.Errorf("chunk %x: %w", item.Key(), err)
					return
				}
			}
			c.it.Next()
			sc.err = c.load()
		}
	}
}

// chunkArena holds copies of one series' chunks in one reused buffer.
type chunkArena struct {
	data  []byte
	idx   []arenaChunk
	views []chunkCopy
}

type arenaChunk struct {
	mint, maxt int64
	seq        uint64
	off, end   int
}

func (a *chunkArena) reset() { a.data, a.idx = a.data[:0], a.idx[:0] }

func (a *chunkArena) add(mint, maxt int64, seq uint64, data []byte) {
	off := len(a.data)
	a.data = append(a.data, data...)
	a.idx = append(a.idx, arenaChunk{mint: mint, maxt: maxt, seq: seq, off: off, end: len(a.data)})
}

// hasSeq reports whether one of the first n chunks has this seq.
func (a *chunkArena) hasSeq(seq uint64, n int) bool {
	for _, c := range a.idx[:n] {
		if c.seq == seq {
			return true
		}
	}
	return false
}

// chunks returns views of the chunks, valid until the next reset or add.
func (a *chunkArena) chunks() []chunkCopy {
	a.views = a.views[:0]
	for _, c := range a.idx {
		a.views = append(a.views, chunkCopy{mint: c.mint, maxt: c.maxt, seq: c.seq, data: a.data[c.off:c.end]})
	}
	return a.views
}

// copyChunks adds the chunks overlapping [mint, maxt] to a, and the
// buffered out-of-order samples in range as one more chunk (seq 0).
func (s *memSeries) copyChunks(a *chunkArena, mint, maxt int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks {
		if c.maxt >= mint && c.mint <= maxt {
			a.add(c.mint, c.maxt, c.seq, c.chunk.Bytes())
		}
	}
	if first, last, data, ok := s.oooChunk(mint, maxt); ok {
		a.add(first, last, 0, data)
	}
}

// mergeBuf is scratch space for mergeChunks.
type mergeBuf struct {
	xc      chunkenc.XORChunk
	it      chunkenc.Iterator
	samples []model.Sample
}

// mergeChunks calls fn in time order for every distinct timestamp in
// [mint, maxt] held by chks, which must be sorted by min time. Where
// overlapping chunks hold the same timestamp, the value of the one listed
// first wins (callers list memory copies before Badger's, as reads do).
func mergeChunks(chks []chunkCopy, mint, maxt int64, mb *mergeBuf, fn func(t int64, v float64)) error {
	overlap := false
	end := int64(math.MinInt64)
	for _, c := range chks {
		if c.mint <= end {
			overlap = true
			break
		}
		end = c.maxt
	}
	visit := func(c chunkCopy, emit func(t int64, v float64)) error {
		if c.maxt < mint || c.mint > maxt {
			return nil
		}
		if len(c.data) < 2 {
			return fmt.Errorf("chunk at %d: %d bytes", c.mint, len(c.data))
		}
		mb.xc.Reset(c.data)
		mb.it = mb.xc.Iterator(mb.it)
		for mb.it.Next() == chunkenc.ValFloat {
			t, v := mb.it.At()
			if t < mint {
				continue
			}
			if t > maxt {
				break
			}
			emit(t, v)
		}
		return mb.it.Err()
	}
	if !overlap { // the common case: chunks in sequence, no timestamp twice
		for _, c := range chks {
			if err := visit(c, fn); err != nil {
				return err
			}
		}
		return nil
	}
	smps := mb.samples[:0]
	for _, c := range chks {
		err := visit(c, func(t int64, v float64) { smps = append(smps, model.Sample{T: t, V: v}) })
		if err != nil {
			return err
		}
	}
	slices.SortStableFunc(smps, func(a, b model.Sample) int { return cmp.Compare(a.T, b.T) })
	for i, smp := range smps {
		if i > 0 && smp.T == smps[i-1].T {
			continue
		}
		fn(smp.T, smp.V)
	}
	mb.samples = smps
	return nil
}

// SeriesSamples returns the samples of the series with exactly these
// labels in [mint, maxt], sorted by time, one per timestamp, from memory
// and Badger (the same merge as queries and SeriesDigests). The result is
// the caller's. A series that does not exist has no samples.
func (db *DB) SeriesSamples(ctx context.Context, lset labels.Labels, mint, maxt int64) ([]model.Sample, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if mint > maxt {
		return nil, nil
	}
	sr := seriesRef{lset: lset, mem: db.head.get(lset.Hash(), lset)}
	if sr.mem != nil {
		sr.ref = sr.mem.ref
	} else {
		ref, ok, err := db.lookupRef(lset)
		if err != nil || !ok {
			return nil, err
		}
		sr.ref = ref
	}
	q := &chunkQuerier{db: db, mint: mint, maxt: maxt}
	chks, err := q.chunksOf(sr)
	if err != nil {
		return nil, err
	}
	var out []model.Sample
	var mb mergeBuf
	err = mergeChunks(chks, mint, maxt, &mb, func(t int64, v float64) { out = append(out, model.Sample{T: t, V: v}) })
	if err != nil {
		return nil, fmt.Errorf("samples of %s: %w", lset, err)
	}
	return out, nil
}

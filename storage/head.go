package storage

import (
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-tsdb/vigil/model"
)

// samplesPerChunk is where a head chunk is cut even inside its range.
const samplesPerChunk = 120

// memChunk is one XOR chunk in memory. Its Badger key is (id, mint, seq);
// seq is unique in the DB, so a chunk rebuilt after a restart never
// overwrites another one that happens to start at the same time.
type memChunk struct {
	chunk      *chunkenc.XORChunk
	mint, maxt int64
	seq        uint64
	persisted  int  // samples in the version last written to Badger
	closed     bool // takes no more appends
}

// memSeries is a series in the head. ref and lset never change.
type memSeries struct {
	ref  uint64
	lset labels.Labels

	removed atomic.Bool // set, under the stripe lock, when dropped from the head
	hash    uint64      // lset.Hash()
	next    *memSeries  // next series with the same hash in the stripe; under the stripe lock

	mu       sync.Mutex  // protects everything below
	chunks   []*memChunk // sorted by mint; may overlap (out-of-order chunks)
	open     *memChunk   // the in-order chunk taking appends, nil if none
	app      chunkenc.Appender
	maxt     int64          // newest in-order timestamp, MinInt64 if none
	lastV    float64        // value at maxt
	ooo      []model.Sample // buffered out-of-order samples, sorted by T
	inBadger bool           // series and labels keys are persisted
	posted   []uint32       // partitions whose postings are persisted (a small cache)
}

type appendOutcome int

const (
	outStored appendOutcome = iota
	outStoredOOO
	outDuplicate
	outConflict
	outTooOld
)

// append adds one sample. minValid is the oldest timestamp accepted;
// chunkRange the cut boundary in ms. s.mu is held.
func (s *memSeries) append(t int64, v float64, minValid, chunkRange int64, h *head) appendOutcome {
	if t < minValid {
		return outTooOld
	}
	if t > s.maxt {
		c := s.open
		if c == nil || c.chunk.NumSamples() >= samplesPerChunk || t >= rangeEnd(c.mint, chunkRange) {
			c = s.cut(t, h)
		}
		s.app.Append(0, t, v)
		c.maxt, s.maxt, s.lastV = t, t, v
		return outStored
	}
	if t == s.maxt {
		if math.Float64bits(v) == math.Float64bits(s.lastV) {
			return outDuplicate
		}
		return outConflict
	}
	if old, ok := s.lookup(t); ok {
		if math.Float64bits(old) == math.Float64bits(v) {
			return outDuplicate
		}
		return outConflict
	}
	i := sort.Search(len(s.ooo), func(i int) bool { return s.ooo[i].T >= t })
	s.ooo = slices.Insert(s.ooo, i, model.Sample{T: t, V: v})
	if len(s.ooo) >= samplesPerChunk {
		s.flushOOO(chunkRange, h)
	}
	return outStoredOOO
}

// rangeEnd returns the end (exclusive) of the chunk range holding t.
func rangeEnd(t, chunkRange int64) int64 {
	start := t - t%chunkRange
	if t < 0 && t%chunkRange != 0 {
		start -= chunkRange
	}
	return start + chunkRange
}

func (s *memSeries) cut(t int64, h *head) *memChunk {
	if s.open != nil {
		s.open.closed = true
		s.open.chunk.Compact()
	}
	c := &memChunk{chunk: chunkenc.NewXORChunk(), mint: t, maxt: t, seq: h.nextSeq.Add(1)}
	app, _ := c.chunk.Appender() // a new XOR chunk's appender never fails
	s.open, s.app = c, app
	s.insertChunk(c)
	h.metrics.chunksCut.Inc()
	return c
}

func (s *memSeries) insertChunk(c *memChunk) {
	i := sort.Search(len(s.chunks), func(i int) bool { return s.chunks[i].mint > c.mint })
	s.chunks = slices.Insert(s.chunks, i, c)
}

// lookup finds the value stored at t in memory, if any.
func (s *memSeries) lookup(t int64) (float64, bool) {
	if i := sort.Search(len(s.ooo), func(i int) bool { return s.ooo[i].T >= t }); i < len(s.ooo) && s.ooo[i].T == t {
		return s.ooo[i].V, true
	}
	var it chunkenc.Iterator
	for _, c := range s.chunks {
		if c.mint > t {
			break
		}
		if c.maxt < t {
			continue
		}
		it = c.chunk.Iterator(it)
		if it.Seek(t) == chunkenc.ValFloat {
			if ts, v := it.At(); ts == t {
				return v, true
			}
		}
	}
	return 0, false
}

// flushOOO turns the out-of-order buffer into closed chunks, one per chunk
// range, so that no chunk spans a partition. s.mu is held.
func (s *memSeries) flushOOO(chunkRange int64, h *head) {
	for len(s.ooo) > 0 {
		end := rangeEnd(s.ooo[0].T, chunkRange)
		n := sort.Search(len(s.ooo), func(i int) bool { return s.ooo[i].T >= end })
		c := &memChunk{chunk: chunkenc.NewXORChunk(), mint: s.ooo[0].T, maxt: s.ooo[n-1].T, seq: h.nextSeq.Add(1), closed: true}
		app, _ := c.chunk.Appender()
		for _, smp := range s.ooo[:n] {
			app.Append(0, smp.T, smp.V)
		}
		c.chunk.Compact()
		s.insertChunk(c)
		h.metrics.chunksCut.Inc()
		s.ooo = s.ooo[n:]
	}
	s.ooo = nil
}

// overlaps reports whether the series has a sample in [mint, maxt] in
// memory. Chunk bounds are exact sample times, so bounds overlap means data.
func (s *memSeries) overlaps(mint, maxt int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks {
		if c.maxt >= mint && c.mint <= maxt {
			return true
		}
	}
	for _, smp := range s.ooo {
		if smp.T >= mint && smp.T <= maxt {
			return true
		}
	}
	return false
}

// chunkCopy is a chunk read out of memory or Badger.
type chunkCopy struct {
	mint, maxt int64
	seq        uint64 // 0 for chunks made from the out-of-order buffer
	data       []byte // XOR bytes, owned by the copy
}

// readChunks copies the chunks overlapping [mint, maxt], and the buffered
// out-of-order samples in range as one more chunk.
func (s *memSeries) readChunks(mint, maxt int64, dst []chunkCopy) []chunkCopy {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.chunks {
		if c.maxt < mint || c.mint > maxt {
			continue
		}
		dst = append(dst, chunkCopy{mint: c.mint, maxt: c.maxt, seq: c.seq, data: slices.Clone(c.chunk.Bytes())})
	}
	if first, last, data, ok := s.oooChunk(mint, maxt); ok {
		dst = append(dst, chunkCopy{mint: first, maxt: last, data: data})
	}
	return dst
}

const stripeCount = 1 << 10

type stripe struct {
	mu sync.Mutex
	m  map[uint64]*memSeries // labels hash → first series with that hash (chained by next)
}

// head holds the series with recent data: their open and not yet evicted
// chunks, and in-memory postings over them.
type head struct {
	metrics *dbMetrics

	stripes  [stripeCount]stripe
	refsMu   sync.RWMutex // protects refs
	refs     map[uint64]*memSeries
	postings *memPostings

	numSeries atomic.Int64
	maxt      atomic.Int64 // newest sample timestamp in the DB
	nextRef   atomic.Uint64
	nextSeq   atomic.Uint64
}

func newHead(m *dbMetrics) *head {
	h := &head{metrics: m, refs: map[uint64]*memSeries{}, postings: newMemPostings()}
	for i := range h.stripes {
		h.stripes[i].m = map[uint64]*memSeries{}
	}
	h.maxt.Store(math.MinInt64)
	return h
}

func (h *head) updateMaxT(t int64) {
	for {
		cur := h.maxt.Load()
		if t <= cur || h.maxt.CompareAndSwap(cur, t) {
			return
		}
	}
}

// get returns the live series with labels lset (hash = lset.Hash()), or nil.
func (h *head) get(hash uint64, lset labels.Labels) *memSeries {
	st := &h.stripes[hash&(stripeCount-1)]
	st.mu.Lock()
	defer st.mu.Unlock()
	return h.getLocked(st, hash, lset)
}

func (h *head) getLocked(st *stripe, hash uint64, lset labels.Labels) *memSeries {
	for s := st.m[hash]; s != nil; s = s.next {
		if !s.removed.Load() && labels.Equal(s.lset, lset) {
			return s
		}
	}
	return nil
}

// getOrCreate returns the series for lset, creating it with newRef() if it
// is not in the head. onCreate runs under the stripe lock before the series
// becomes visible, so a WAL series record it writes precedes every sample
// record for the series.
func (h *head) getOrCreate(hash uint64, lset labels.Labels, newRef func() (uint64, bool, error), onCreate func(*memSeries) error) (*memSeries, bool, error) {
	st := &h.stripes[hash&(stripeCount-1)]
	st.mu.Lock()
	defer st.mu.Unlock()
	if s := h.getLocked(st, hash, lset); s != nil {
		return s, false, nil
	}
	ref, inBadger, err := newRef()
	if err != nil {
		return nil, false, err
	}
	s := &memSeries{ref: ref, lset: lset.Copy(), hash: hash, maxt: math.MinInt64, inBadger: inBadger}
	if onCreate != nil {
		if err := onCreate(s); err != nil {
			return nil, false, err
		}
	}
	s.next = st.m[hash]
	st.m[hash] = s
	h.refsMu.Lock()
	h.refs[ref] = s
	h.refsMu.Unlock()
	h.postings.add(ref, s.lset)
	h.numSeries.Add(1)
	h.metrics.seriesCreated.Inc()
	return s, true, nil
}

func (h *head) byRef(ref uint64) *memSeries {
	h.refsMu.RLock()
	defer h.refsMu.RUnlock()
	return h.refs[ref]
}

// all returns every series in the head (a snapshot of the pointers).
func (h *head) all() []*memSeries {
	h.refsMu.RLock()
	defer h.refsMu.RUnlock()
	out := make([]*memSeries, 0, len(h.refs))
	for _, s := range h.refs {
		out = append(out, s)
	}
	return out
}

// removeIfEmpty drops s from the head if it holds no data in memory.
func (h *head) removeIfEmpty(s *memSeries) bool {
	hash := s.hash
	st := &h.stripes[hash&(stripeCount-1)]
	st.mu.Lock()
	defer st.mu.Unlock()
	s.mu.Lock()
	empty := len(s.chunks) == 0 && len(s.ooo) == 0 && s.open == nil && s.inBadger
	if empty {
		s.removed.Store(true)
	}
	s.mu.Unlock()
	if !empty {
		return false
	}
	if first := st.m[hash]; first == s {
		if s.next == nil {
			delete(st.m, hash)
		} else {
			st.m[hash] = s.next
		}
	} else {
		for p := first; p != nil; p = p.next {
			if p.next == s {
				p.next = s.next
				break
			}
		}
	}
	h.refsMu.Lock()
	delete(h.refs, s.ref)
	h.refsMu.Unlock()
	h.postings.del(s.ref, s.lset)
	h.numSeries.Add(-1)
	h.metrics.seriesRemoved.Inc()
	return true
}

// oooChunk encodes the buffered out-of-order samples in [mint, maxt] as one
// XOR chunk; ok is false when there are none. s.mu is held.
func (s *memSeries) oooChunk(mint, maxt int64) (first, last int64, data []byte, ok bool) {
	var oc *chunkenc.XORChunk
	var app chunkenc.Appender
	for _, smp := range s.ooo {
		if smp.T < mint || smp.T > maxt {
			continue
		}
		if oc == nil {
			oc = chunkenc.NewXORChunk()
			app, _ = oc.Appender()
			first = smp.T
		}
		app.Append(0, smp.T, smp.V)
		last = smp.T
	}
	if oc == nil {
		return 0, 0, nil, false
	}
	return first, last, oc.Bytes(), true
}

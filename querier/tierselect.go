package querier

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/model/downsample"
)

// selectTier answers a view Select from tier res (docs/downsampling.md,
// "Stitching"): the windows whose end lies in [mint, B], B the last window
// end ≤ maxt, merged over the replicas window by window; then the raw
// samples in (B, maxt]; both turned into the view's samples, the counter
// view in raw values, so the raw part follows it as it is.
func (q *querier) selectTier(ctx context.Context, res Resolution, view string, mint, maxt int64, ms []*labels.Matcher) storage.SeriesSet {
	w := res.width()
	b := floorDiv(maxt, w) * w
	pbms := ingesterpb.FromMatchers(ms)
	cols := viewColumns(view)
	var tier storage.ChunkSeriesSet = storage.EmptyChunkSeriesSet()
	if b >= mint {
		sets, f := q.fanSelect(ctx, &ingesterpb.SelectRequest{StartMs: mint, EndMs: b, Matchers: pbms, Tier: uint32(res)})
		if len(sets) == 0 {
			return emptyOutcome(f)
		}
		tier = storage.NewMergeChunkSeriesSet(sets, 0, mergeWindowSeries)
	}
	var raw storage.SeriesSet = storage.EmptySeriesSet()
	if b < maxt {
		raw = q.selectRaw(ctx, max(b+1, mint), maxt, ms)
	}
	return &stitchSet{view: view, width: w, cols: cols, tier: tier, raw: raw}
}

// viewColumns returns the window columns view's samples are made of
// (viewSamples); the others are not decoded.
func viewColumns(view string) downsample.Columns {
	switch view {
	case ViewCount:
		return downsample.ColumnSet(downsample.ColumnCount)
	case ViewSum:
		return downsample.ColumnSet(downsample.ColumnSum)
	case ViewMin:
		return downsample.ColumnSet(downsample.ColumnMin)
	case ViewMax:
		return downsample.ColumnSet(downsample.ColumnMax)
	case ViewCounter:
		return downsample.ColumnSet(downsample.ColumnFirstT, downsample.ColumnFirstV, downsample.ColumnLastT, downsample.ColumnLastV, downsample.ColumnInc)
	default: // ViewLast
		return downsample.ColumnSet(downsample.ColumnLastT, downsample.ColumnLastV)
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// windowSeries is a series held by several replicas; windowsOf decodes
// and merges them.
type windowSeries struct {
	lset     labels.Labels
	replicas []storage.ChunkSeries
}

func (w *windowSeries) Labels() labels.Labels { return w.lset }

// Iterator is not used: stitchSet reads the windows directly.
func (w *windowSeries) Iterator(chunks.Iterator) chunks.Iterator {
	return storage.NewListChunkSeriesIterator()
}

// windowsOf decodes columns cols of the windows of one replica's series,
// or of several merged window by window: where they disagree on a window
// (one missed samples that repair has not restored yet), the window with
// more samples wins. End and Count are always decoded.
func windowsOf(s storage.ChunkSeries, cols downsample.Columns) ([]downsample.Window, error) {
	switch s := s.(type) {
	case *windowSeries:
		var merged []downsample.Window
		for _, r := range s.replicas {
			ws, err := windowsOf(r, cols)
			if err != nil {
				return nil, err
			}
			merged = mergeWindows(merged, ws)
		}
		return merged, nil
	case *wireSeries:
		n := 0 // windows, from the chunks' headers: one allocation
		for _, c := range s.chunks {
			k, _ := binary.Uvarint(c.Data)
			n += int(min(k, downsample.MaxChunkWindows))
		}
		var (
			out = make([]downsample.Window, 0, n)
			dec downsample.Decoder
			err error
		)
		for _, c := range s.chunks {
			if c.Encoding != uint32(downsample.EncodingAggregate) {
				return nil, fmt.Errorf("series %s: tier chunk of encoding %d, want %d", s.lset, c.Encoding, downsample.EncodingAggregate)
			}
			if out, err = dec.AppendColumns(out, c.Data, cols); err != nil {
				return nil, fmt.Errorf("series %s: %w", s.lset, err)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("series %s: unexpected %T", s.Labels(), s)
}

// mergeWindowSeries is the merge function of the replicas' tier sets: it
// defers the decoding to windowsOf, which stitchSet runs in parallel.
func mergeWindowSeries(ss ...storage.ChunkSeries) storage.ChunkSeries {
	return &windowSeries{lset: ss[0].Labels(), replicas: slices.Clone(ss)}
}

// mergeWindows merges two window lists sorted by End.
func mergeWindows(a, b []downsample.Window) []downsample.Window {
	if len(a) == 0 {
		return b
	}
	out := make([]downsample.Window, 0, max(len(a), len(b)))
	for len(a) > 0 && len(b) > 0 {
		switch {
		case a[0].End < b[0].End:
			out, a = append(out, a[0]), a[1:]
		case a[0].End > b[0].End:
			out, b = append(out, b[0]), b[1:]
		default:
			if b[0].Count > a[0].Count {
				out = append(out, b[0])
			} else {
				out = append(out, a[0])
			}
			a, b = a[1:], b[1:]
		}
	}
	return append(append(out, a...), b...)
}

// stitchSet joins the tier series and the raw series (both sorted by
// labels) into view samples. It decodes the tier series ahead in batches,
// on up to GOMAXPROCS goroutines: decoding the windows is most of a tier
// query's CPU in the querier (docs/benchmarks.md).
type stitchSet struct {
	view  string
	width int64              // of the windows
	cols  downsample.Columns // decoded from the windows
	tier  storage.ChunkSeriesSet
	raw   storage.SeriesSet

	ahead          []decoded // tier series decoded, not consumed yet
	tierDone       bool
	rawOK, started bool
	cur            storage.Series
	err            error
	it             chunkenc.Iterator
}

// decoded is a tier series with its windows.
type decoded struct {
	lset labels.Labels
	ws   []downsample.Window
	err  error
}

// decodeAhead is how many tier series stitchSet decodes at a time.
const decodeAhead = 64

// tierHead returns the next tier series, decoding a batch when none is
// left; nil at the end of the tier set.
func (s *stitchSet) tierHead() *decoded {
	if len(s.ahead) == 0 && !s.tierDone {
		var series []storage.ChunkSeries
		for len(series) < decodeAhead && s.tier.Next() {
			series = append(series, s.tier.At())
		}
		s.tierDone = len(series) < decodeAhead
		s.ahead = make([]decoded, len(series))
		var (
			next atomic.Int64
			wg   sync.WaitGroup
		)
		for range min(runtime.GOMAXPROCS(0), len(series)) {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < len(series); i = int(next.Add(1) - 1) {
					ws, err := windowsOf(series[i], s.cols)
					s.ahead[i] = decoded{lset: series[i].Labels(), ws: ws, err: err}
				}
			})
		}
		wg.Wait()
	}
	if len(s.ahead) == 0 {
		return nil
	}
	return &s.ahead[0]
}

func (s *stitchSet) Next() bool {
	if s.err != nil {
		return false
	}
	if !s.started {
		s.started = true
		s.rawOK = s.raw.Next()
	}
	head := s.tierHead()
	if head == nil && !s.rawOK {
		return false
	}
	var (
		lset labels.Labels
		ws   []downsample.Window
		raw  []model.Sample
	)
	c := 0
	switch {
	case !s.rawOK:
		c = -1
	case head == nil:
		c = 1
	default:
		c = labels.Compare(head.lset, s.raw.At().Labels())
	}
	if c <= 0 {
		if head.err != nil {
			s.err = head.err
			return false
		}
		lset, ws = head.lset, head.ws
		s.ahead = s.ahead[1:]
	}
	if c >= 0 {
		rs := s.raw.At()
		lset = rs.Labels()
		s.it = rs.Iterator(s.it)
		for vt := s.it.Next(); vt != chunkenc.ValNone; vt = s.it.Next() {
			if vt != chunkenc.ValFloat {
				s.err = fmt.Errorf("series %s: sample of type %s, want float", lset, vt)
				return false
			}
			t, v := s.it.At()
			raw = append(raw, model.Sample{T: t, V: v})
		}
		if err := s.it.Err(); err != nil {
			s.err = err
			return false
		}
		s.rawOK = s.raw.Next()
	}
	s.cur = &sampleSeries{lset: lset, samples: viewSamples(s.view, s.width, ws, raw)}
	return true
}

func (s *stitchSet) At() storage.Series { return s.cur }

func (s *stitchSet) Err() error {
	if s.err != nil {
		return s.err
	}
	if err := s.tier.Err(); err != nil {
		return err
	}
	return s.raw.Err()
}

func (s *stitchSet) Warnings() annotations.Annotations {
	w := s.tier.Warnings()
	return w.Merge(s.raw.Warnings())
}

// viewSamples returns the samples a view's PromQL function is given: the
// windows' (docs/downsampling.md, the rewrite table), then the raw samples
// after them, adapted as rawView does (the counter view is in raw values,
// so the raw samples follow it as they are).
func viewSamples(view string, width int64, ws []downsample.Window, raw []model.Sample) []model.Sample {
	var out []model.Sample
	switch view {
	case ViewCount:
		out = downsample.ColumnSamples(ws, downsample.ColumnCount)
	case ViewSum:
		out = downsample.ColumnSamples(ws, downsample.ColumnSum)
	case ViewMin:
		out = downsample.ColumnSamples(ws, downsample.ColumnMin)
	case ViewMax:
		out = downsample.ColumnSamples(ws, downsample.ColumnMax)
	case ViewCounter:
		out = downsample.CounterView(ws, width)
	default: // ViewLast
		out = make([]model.Sample, len(ws))
		for i, w := range ws {
			out[i] = model.Sample{T: w.LastT, V: w.LastV}
		}
	}
	switch view {
	case ViewCount:
		for _, r := range raw {
			if !value.IsStaleNaN(r.V) {
				out = append(out, model.Sample{T: r.T, V: 1})
			}
		}
	default:
		out = append(out, raw...)
	}
	return out
}

// sampleSeries is a series over a slice of float samples.
type sampleSeries struct {
	lset    labels.Labels
	samples []model.Sample
}

func (s *sampleSeries) Labels() labels.Labels { return s.lset }

func (s *sampleSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return &sampleIterator{samples: s.samples, i: -1}
}

type sampleIterator struct {
	samples []model.Sample
	i       int
}

func (it *sampleIterator) Next() chunkenc.ValueType {
	if it.i+1 >= len(it.samples) {
		it.i = len(it.samples)
		return chunkenc.ValNone
	}
	it.i++
	return chunkenc.ValFloat
}

func (it *sampleIterator) Seek(t int64) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	for ; it.i < len(it.samples); it.i++ {
		if it.samples[it.i].T >= t {
			return chunkenc.ValFloat
		}
	}
	return chunkenc.ValNone
}

func (it *sampleIterator) At() (int64, float64) {
	s := it.samples[it.i]
	return s.T, s.V
}

func (it *sampleIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.samples[it.i].T, nil
}

func (it *sampleIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.samples[it.i].T, nil
}

func (it *sampleIterator) AtT() int64  { return it.samples[it.i].T }
func (it *sampleIterator) AtST() int64 { return 0 }
func (it *sampleIterator) Err() error  { return nil }

package querier

import (
	"context"
	"encoding/binary"
	"fmt"

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
		tier = storage.NewMergeChunkSeriesSet(sets, 0, func(ss ...storage.ChunkSeries) storage.ChunkSeries {
			return mergeWindowSeries(cols, ss...)
		})
	}
	var raw storage.SeriesSet = storage.EmptySeriesSet()
	if b < maxt {
		raw = q.selectRaw(ctx, max(b+1, mint), maxt, ms)
	}
	return &stitchSet{view: view, cols: cols, tier: tier, raw: raw}
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

// windowSeries is a series' windows merged from several replicas.
type windowSeries struct {
	lset    labels.Labels
	windows []downsample.Window
}

func (w *windowSeries) Labels() labels.Labels { return w.lset }

// Iterator is not used: stitchSet reads the windows directly.
func (w *windowSeries) Iterator(chunks.Iterator) chunks.Iterator {
	return storage.NewListChunkSeriesIterator()
}

// windowsOf decodes columns cols of the windows of one replica's (or
// merged) series (End and Count always).
func windowsOf(s storage.ChunkSeries, cols downsample.Columns) ([]downsample.Window, error) {
	switch s := s.(type) {
	case *windowSeries:
		return s.windows, nil
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

// mergeWindowSeries merges the replicas of one series window by window:
// where they disagree on a window (one missed samples that repair has not
// restored yet), the window with more samples wins.
func mergeWindowSeries(cols downsample.Columns, ss ...storage.ChunkSeries) storage.ChunkSeries {
	merged := &windowSeries{lset: ss[0].Labels()}
	for _, s := range ss {
		ws, err := windowsOf(s, cols)
		if err != nil {
			return &errSeries{lset: merged.lset, err: err}
		}
		merged.windows = mergeWindows(merged.windows, ws)
	}
	return merged
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

// errSeries carries a decoding error through the merge to stitchSet.
type errSeries struct {
	lset labels.Labels
	err  error
}

func (e *errSeries) Labels() labels.Labels { return e.lset }
func (e *errSeries) Iterator(chunks.Iterator) chunks.Iterator {
	return storage.NewListChunkSeriesIterator()
}

// stitchSet joins the tier series and the raw series (both sorted by
// labels) into view samples.
type stitchSet struct {
	view string
	cols downsample.Columns // decoded from the windows
	tier storage.ChunkSeriesSet
	raw  storage.SeriesSet

	tierOK, rawOK, started bool
	cur                    storage.Series
	err                    error
	it                     chunkenc.Iterator
}

func (s *stitchSet) Next() bool {
	if s.err != nil {
		return false
	}
	if !s.started {
		s.started = true
		s.tierOK, s.rawOK = s.tier.Next(), s.raw.Next()
	}
	if !s.tierOK && !s.rawOK {
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
	case !s.tierOK:
		c = 1
	default:
		c = labels.Compare(s.tier.At().Labels(), s.raw.At().Labels())
	}
	if c <= 0 {
		ts := s.tier.At()
		lset = ts.Labels()
		if e, ok := ts.(*errSeries); ok {
			s.err = e.err
			return false
		}
		var err error
		if ws, err = windowsOf(ts, s.cols); err != nil {
			s.err = err
			return false
		}
		s.tierOK = s.tier.Next()
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
	s.cur = &sampleSeries{lset: lset, samples: viewSamples(s.view, ws, raw)}
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
func viewSamples(view string, ws []downsample.Window, raw []model.Sample) []model.Sample {
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
		out = downsample.CounterView(ws)
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

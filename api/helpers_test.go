package api

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigil-tsdb/vigil/model"
)

// encodeRemoteWrite is the inverse of DecodeRemoteWrite.
func encodeRemoteWrite(t testing.TB, batch []model.Series) []byte {
	t.Helper()
	raw := marshalWriteRequest(t, toWriteRequest(batch))
	return snappy.Encode(nil, raw)
}

func toWriteRequest(batch []model.Series) *prompb.WriteRequest {
	req := &prompb.WriteRequest{}
	for _, s := range batch {
		var ts prompb.TimeSeries
		s.Labels.Range(func(l labels.Label) {
			ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		for _, smp := range s.Samples {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: smp.T, Value: smp.V})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	return req
}

func marshalWriteRequest(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	if err != nil {
		t.Fatalf("marshal write request: %v", err)
	}
	return raw
}

// series builds a model.Series from alternating label names and values
// and (t, v) pairs.
func series(lbls []string, tv ...float64) model.Series {
	s := model.Series{Labels: labels.FromStrings(lbls...)}
	for i := 0; i+1 < len(tv); i += 2 {
		s.Samples = append(s.Samples, model.Sample{T: int64(tv[i]), V: tv[i+1]})
	}
	return s
}

// equalBatches compares batches, NaN equal to NaN of the same bits.
func equalBatches(a, b []model.Series) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !labels.Equal(a[i].Labels, b[i].Labels) || len(a[i].Samples) != len(b[i].Samples) {
			return false
		}
		for j := range a[i].Samples {
			x, y := a[i].Samples[j], b[i].Samples[j]
			if x.T != y.T || math.Float64bits(x.V) != math.Float64bits(y.V) && !(math.IsNaN(x.V) && math.IsNaN(y.V)) {
				return false
			}
		}
	}
	return true
}

func formatBatch(b []model.Series) string {
	var sb strings.Builder
	for _, s := range b {
		fmt.Fprintf(&sb, "%s %v\n", s.Labels, s.Samples)
	}
	return sb.String()
}

// funcPusher is a Pusher made of a function field.
type funcPusher struct {
	push func(ctx context.Context, batch []model.Series) (model.PushResult, error)
}

func (f funcPusher) Push(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	return f.push(ctx, batch)
}

var _ Pusher = funcPusher{}

// validatingPusher validates with model's default limits at a fixed clock,
// as the distributor does, and records what it stored.
type validatingPusher struct {
	now int64 // ms
	mu  sync.Mutex
	got []model.Series // protected by mu
}

func (p *validatingPusher) Push(_ context.Context, batch []model.Series) (model.PushResult, error) {
	var res model.PushResult
	valid := model.DefaultLimits().Filter(batch, p.now, &res)
	res.Stored = model.CountSamples(valid)
	p.mu.Lock()
	p.got = append(p.got, valid...)
	p.mu.Unlock()
	return res, nil
}

func (p *validatingPusher) stored() []model.Series {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// memStorage is a small in-memory storage.Queryable for handler tests.
type memStorage struct {
	series    []model.Series // sorted by labels
	selectErr error          // returned by every Select if set
	warnings  annotations.Annotations
}

func newMemStorage(ss ...model.Series) *memStorage {
	sort.Slice(ss, func(i, j int) bool { return labels.Compare(ss[i].Labels, ss[j].Labels) < 0 })
	return &memStorage{series: ss}
}

func (m *memStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return &memQuerier{m: m, mint: mint, maxt: maxt}, nil
}

type memQuerier struct {
	m          *memStorage
	mint, maxt int64
}

// matching returns the series matching ms with a sample in range, their
// samples trimmed to the range.
func (q *memQuerier) matching(ms []*labels.Matcher) []model.Series {
	var out []model.Series
outer:
	for _, s := range q.m.series {
		for _, m := range ms {
			if !m.Matches(s.Labels.Get(m.Name)) {
				continue outer
			}
		}
		var in []model.Sample
		for _, smp := range s.Samples {
			if smp.T >= q.mint && smp.T <= q.maxt {
				in = append(in, smp)
			}
		}
		if len(in) > 0 {
			out = append(out, model.Series{Labels: s.Labels, Samples: in})
		}
	}
	return out
}

func (q *memQuerier) Select(_ context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if q.m.selectErr != nil {
		return storage.ErrSeriesSet(q.m.selectErr)
	}
	var list []storage.Series
	for _, s := range q.matching(ms) {
		smps := make([]chunks.Sample, 0, len(s.Samples))
		for _, smp := range s.Samples {
			smps = append(smps, fSample{t: smp.T, f: smp.V})
		}
		list = append(list, storage.NewListSeries(s.Labels, smps))
	}
	return &listSeriesSet{list: list, i: -1, warnings: q.m.warnings}
}

func (q *memQuerier) LabelValues(_ context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.m.selectErr != nil {
		return nil, nil, q.m.selectErr
	}
	seen := map[string]bool{}
	for _, s := range q.matching(ms) {
		if v := s.Labels.Get(name); v != "" {
			seen[v] = true
		}
	}
	return sortedKeys(seen), nil, nil
}

func (q *memQuerier) LabelNames(_ context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if q.m.selectErr != nil {
		return nil, nil, q.m.selectErr
	}
	seen := map[string]bool{}
	for _, s := range q.matching(ms) {
		s.Labels.Range(func(l labels.Label) { seen[l.Name] = true })
	}
	return sortedKeys(seen), nil, nil
}

func (q *memQuerier) Close() error { return nil }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type listSeriesSet struct {
	list     []storage.Series
	i        int
	warnings annotations.Annotations
}

func (s *listSeriesSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *listSeriesSet) At() storage.Series                { return s.list[s.i] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return s.warnings }

// fSample is a float chunks.Sample.
type fSample struct {
	t int64
	f float64
}

func (s fSample) T() int64                      { return s.t }
func (s fSample) ST() int64                     { return 0 }
func (s fSample) F() float64                    { return s.f }
func (s fSample) H() *histogram.Histogram       { return nil }
func (s fSample) FH() *histogram.FloatHistogram { return nil }
func (s fSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s fSample) Copy() chunks.Sample           { return s }

// metricValue returns the value of a counter or gauge.
func metricValue(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	if pb.Counter != nil {
		return pb.Counter.GetValue()
	}
	return pb.Gauge.GetValue()
}

// gatherLines renders the counters of reg whose names start with prefix,
// and the sample counts of its histograms (as name_count), one sorted
// line each, labels in name order.
func gatherLines(t testing.TB, reg prometheus.Gatherer, prefix string) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), prefix) {
			continue
		}
		for _, m := range mf.Metric {
			var ls []string
			for _, lp := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			name, v := mf.GetName(), 0.0
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Histogram != nil:
				name, v = name+"_count", float64(m.Histogram.GetSampleCount())
			}
			out = append(out, fmt.Sprintf("%s{%s} %v", name, strings.Join(ls, ","), v))
		}
	}
	sort.Strings(out)
	return out
}

func newTestRegistry() *prometheus.Registry { return prometheus.NewRegistry() }

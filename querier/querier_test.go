package querier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
)

// fakeIngester is an IngesterClient made of function fields.
type fakeIngester struct {
	ingesterpb.IngesterClient
	selectFn      func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error)
	streamErr     error // returned by the Select stream after its responses
	labelValuesFn func(*ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error)
	seriesFn      func(*ingesterpb.SeriesRequest) (grpc.ServerStreamingClient[ingesterpb.SeriesResponse], error)
}

type fakeSeriesStream struct {
	grpc.ClientStream
	resps []*ingesterpb.SeriesResponse
}

func (s *fakeSeriesStream) Recv() (*ingesterpb.SeriesResponse, error) {
	if len(s.resps) == 0 {
		return nil, io.EOF
	}
	r := s.resps[0]
	s.resps = s.resps[1:]
	return r, nil
}

func TestSeriesOnlySelectUsesSeriesRPC(t *testing.T) {
	set := func(names ...string) *ingesterpb.SeriesResponse {
		r := &ingesterpb.SeriesResponse{}
		for _, n := range names {
			r.Series = append(r.Series, &ingesterpb.LabelSet{Labels: ingesterpb.FromLabels(labels.FromStrings("__name__", n))})
		}
		return r
	}
	mk := func(names ...string) *fakeIngester {
		return &fakeIngester{
			selectFn: func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
				t.Error("Select called for a series-only request")
				return nil, nil
			},
			seriesFn: func(req *ingesterpb.SeriesRequest) (grpc.ServerStreamingClient[ingesterpb.SeriesResponse], error) {
				return &fakeSeriesStream{resps: []*ingesterpb.SeriesResponse{set(names...)}}, nil
			},
		}
	}
	q := newTestQueryable(t, []ingesterpb.IngesterClient{mk("b", "a"), mk("c", "a")})
	qr, _ := q.Querier(0, 100)
	ss := qr.Select(context.Background(), true, &storage.SelectHints{Start: 0, End: 100, Func: "series"}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	var got []string
	for ss.Next() {
		got = append(got, ss.At().Labels().Get("__name__"))
	}
	if ss.Err() != nil || len(got) != 3 || got[0] != "a" || got[2] != "c" {
		t.Fatalf("got %v %v", got, ss.Err())
	}
}

func (f *fakeIngester) Select(_ context.Context, req *ingesterpb.SelectRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[ingesterpb.SelectResponse], error) {
	resps, err := f.selectFn(req)
	if err != nil {
		return nil, err
	}
	return &fakeStream{resps: resps, err: f.streamErr}, nil
}

func (f *fakeIngester) Series(_ context.Context, req *ingesterpb.SeriesRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[ingesterpb.SeriesResponse], error) {
	return f.seriesFn(req)
}

func (f *fakeIngester) LabelValues(_ context.Context, req *ingesterpb.LabelValuesRequest, _ ...grpc.CallOption) (*ingesterpb.LabelValuesResponse, error) {
	return f.labelValuesFn(req)
}

type fakeStream struct {
	grpc.ClientStream
	resps []*ingesterpb.SelectResponse
	err   error // returned after the responses instead of io.EOF
}

func (s *fakeStream) Recv() (*ingesterpb.SelectResponse, error) {
	if len(s.resps) == 0 {
		if s.err != nil {
			return nil, s.err
		}
		return nil, io.EOF
	}
	r := s.resps[0]
	s.resps = s.resps[1:]
	return r, nil
}

func xorChunk(t *testing.T, samples ...model.Sample) *ingesterpb.Chunk {
	t.Helper()
	c := chunkenc.NewXORChunk()
	app, _ := c.Appender()
	for _, s := range samples {
		app.Append(0, s.T, s.V)
	}
	return &ingesterpb.Chunk{MinTimeMs: samples[0].T, MaxTimeMs: samples[len(samples)-1].T, Encoding: uint32(model.EncXOR), Data: c.Bytes()}
}

func series(t *testing.T, lset labels.Labels, chunks ...*ingesterpb.Chunk) *ingesterpb.ChunkSeries {
	return &ingesterpb.ChunkSeries{Labels: ingesterpb.FromLabels(lset), Chunks: chunks}
}

func collect(t *testing.T, q *Queryable, ms ...*labels.Matcher) (map[string][]model.Sample, error) {
	t.Helper()
	qr, _ := q.Querier(math.MinInt64, math.MaxInt64)
	ss := qr.Select(context.Background(), true, nil, ms...)
	out := map[string][]model.Sample{}
	for ss.Next() {
		it := ss.At().Iterator(nil)
		var smps []model.Sample
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			smps = append(smps, model.Sample{T: ts, V: v})
		}
		out[ss.At().Labels().String()] = smps
	}
	return out, ss.Err()
}

func TestSelectMergesReplicasAndOverlappingChunks(t *testing.T) {
	a := labels.FromStrings("__name__", "m", "i", "a")
	b := labels.FromStrings("__name__", "m", "i", "b")
	ing1 := &fakeIngester{selectFn: func(req *ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
		if len(req.Matchers) != 1 || req.Matchers[0].Name != "__name__" {
			t.Errorf("matchers not passed on: %v", req.Matchers)
		}
		return []*ingesterpb.SelectResponse{
			{Series: []*ingesterpb.ChunkSeries{series(t, a, xorChunk(t, model.Sample{T: 1, V: 1}, model.Sample{T: 3, V: 3}), xorChunk(t, model.Sample{T: 2, V: 2}))}},
			{Series: []*ingesterpb.ChunkSeries{series(t, b, xorChunk(t, model.Sample{T: 5, V: 5}))}},
		}, nil
	}}
	ing2 := &fakeIngester{selectFn: func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
		return []*ingesterpb.SelectResponse{{Series: []*ingesterpb.ChunkSeries{series(t, a, xorChunk(t, model.Sample{T: 3, V: 3}, model.Sample{T: 4, V: 4}))}}}, nil
	}}
	tests := []struct {
		name    string
		clients []ingesterpb.IngesterClient
		want    map[string]int
	}{
		{name: "one ingester, overlapping chunks", clients: []ingesterpb.IngesterClient{ing1}, want: map[string]int{a.String(): 3, b.String(): 1}},
		{name: "two replicas merged, duplicate timestamp once", clients: []ingesterpb.IngesterClient{ing1, ing2}, want: map[string]int{a.String(): 4, b.String(): 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newTestQueryable(t, tc.clients)
			got, err := collect(t, q, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v", got)
			}
			for k, n := range tc.want {
				if len(got[k]) != n {
					t.Fatalf("%s: got %v, want %d samples", k, got[k], n)
				}
				for i := 1; i < len(got[k]); i++ {
					if got[k][i].T <= got[k][i-1].T {
						t.Fatalf("%s: not strictly increasing: %v", k, got[k])
					}
				}
			}
		})
	}
}

func TestSelectErrorsAreNotSilent(t *testing.T) {
	tests := []struct {
		name string
		ing  *fakeIngester
		want error
	}{
		{name: "select refused", ing: &fakeIngester{selectFn: func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
			return nil, status.Error(codes.Unavailable, "down")
		}}, want: model.ErrUnavailable},
		{name: "bad matcher", ing: &fakeIngester{selectFn: func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
			return nil, status.Error(codes.InvalidArgument, "bad regex")
		}}, want: model.ErrBadData},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newTestQueryable(t, []ingesterpb.IngesterClient{tc.ing})
			_, err := collect(t, q, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStreamErrorMidway(t *testing.T) {
	// A stream that fails after one message must surface the failure.
	ing := &fakeIngester{
		selectFn: func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
			return []*ingesterpb.SelectResponse{{Series: []*ingesterpb.ChunkSeries{series(t, labels.FromStrings("__name__", "x"), xorChunk(t, model.Sample{T: 1, V: 1}))}}}, nil
		},
		streamErr: status.Error(codes.Unavailable, "connection reset"),
	}
	got, err := collect(t, newTestQueryable(t, []ingesterpb.IngesterClient{ing}), labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
	if !errors.Is(err, model.ErrUnavailable) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("read %v, err %v", got, err)
	}
}

// With RF=3 and quorum 2, one failed, down or hanging ingester leaves the
// answer complete; two make it an error, or a warning with AllowPartial.
func TestReplicaTolerance(t *testing.T) {
	lset := labels.FromStrings("__name__", "x")
	good := func() *fakeIngester {
		return &fakeIngester{selectFn: func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
			return []*ingesterpb.SelectResponse{{Series: []*ingesterpb.ChunkSeries{series(t, lset, xorChunk(t, model.Sample{T: 1, V: 1}, model.Sample{T: 2, V: 2}))}}}, nil
		}, labelValuesFn: func(*ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
			return &ingesterpb.LabelValuesResponse{Values: []string{"v"}}, nil
		}}
	}
	failing := &fakeIngester{selectFn: func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}, labelValuesFn: func(*ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}}
	midway := good()
	midway.streamErr = status.Error(codes.Unavailable, "connection reset")
	release := make(chan struct{})
	defer close(release)
	hanging := &fakeIngester{selectFn: func(*ingesterpb.SelectRequest) ([]*ingesterpb.SelectResponse, error) {
		<-release
		return nil, status.Error(codes.Canceled, "gave up")
	}, labelValuesFn: func(*ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
		<-release
		return nil, status.Error(codes.Canceled, "gave up")
	}}
	tests := []struct {
		name         string
		ings         []Ingester
		allowPartial bool
		wantErr      bool
		wantWarning  bool
	}{
		{name: "all up", ings: []Ingester{{"a", good(), true}, {"b", good(), true}, {"c", good(), true}}},
		{name: "one refused", ings: []Ingester{{"a", good(), true}, {"b", failing, true}, {"c", good(), true}}},
		{name: "one fails midway", ings: []Ingester{{"a", good(), true}, {"b", midway, true}, {"c", good(), true}}},
		{name: "one known down", ings: []Ingester{{"a", good(), true}, {"b", nil, false}, {"c", good(), true}}},
		{name: "one hanging is hedged", ings: []Ingester{{"a", good(), true}, {"b", hanging, true}, {"c", good(), true}}},
		{name: "two failed", ings: []Ingester{{"a", good(), true}, {"b", failing, true}, {"c", nil, false}}, wantErr: true},
		{name: "two failed, partial allowed", ings: []Ingester{{"a", good(), true}, {"b", failing, true}, {"c", nil, false}}, allowPartial: true, wantWarning: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.HedgeAfter = 50 * time.Millisecond
			cfg.AllowPartial = tc.allowPartial
			q, err := New(cfg, func() ([]Ingester, Replication) { return tc.ings, Replication{Factor: 3, Quorum: 2} }, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			qr, _ := q.Querier(math.MinInt64, math.MaxInt64)
			ss := qr.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
			n := 0
			for ss.Next() {
				it := ss.At().Iterator(nil)
				for it.Next() != chunkenc.ValNone {
					n++
				}
			}
			if tc.wantErr {
				if !errors.Is(ss.Err(), model.ErrUnavailable) || !strings.Contains(ss.Err().Error(), "incomplete") {
					t.Fatalf("err %v, want an incomplete-answer error", ss.Err())
				}
				return
			}
			if ss.Err() != nil {
				t.Fatal(ss.Err())
			}
			if n != 2 {
				t.Fatalf("read %d samples, want the 2 deduplicated ones", n)
			}
			if w := ss.Warnings(); (len(w) > 0) != tc.wantWarning {
				t.Fatalf("warnings %v, want some: %v", w, tc.wantWarning)
			}
			_, lw, err := qr.LabelValues(context.Background(), "x", nil)
			if tc.wantWarning != (len(lw) > 0) || err != nil {
				t.Fatalf("label values: warnings %v err %v", lw, err)
			}
		})
	}
}

func TestLabelValuesUnion(t *testing.T) {
	mk := func(vals ...string) *fakeIngester {
		return &fakeIngester{labelValuesFn: func(*ingesterpb.LabelValuesRequest) (*ingesterpb.LabelValuesResponse, error) {
			return &ingesterpb.LabelValuesResponse{Values: vals}, nil
		}}
	}
	q := newTestQueryable(t, []ingesterpb.IngesterClient{mk("b", "a"), mk("c", "a")})
	qr, _ := q.Querier(0, time.Now().UnixMilli())
	vals, _, err := qr.LabelValues(context.Background(), "x", nil)
	if err != nil || len(vals) != 3 || vals[0] != "a" || vals[2] != "c" {
		t.Fatalf("got %v %v", vals, err)
	}
}

// newTestQueryable is a single-replica Queryable over clients.
func newTestQueryable(t *testing.T, clients []ingesterpb.IngesterClient) *Queryable {
	t.Helper()
	var ings []Ingester
	for i, c := range clients {
		ings = append(ings, Ingester{Name: fmt.Sprintf("ing-%d", i), Client: c, Healthy: true})
	}
	q, err := New(DefaultConfig(), func() ([]Ingester, Replication) { return ings, Replication{Factor: 1, Quorum: 1} }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

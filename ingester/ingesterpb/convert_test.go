package ingesterpb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-tsdb/vigil/model"
)

func TestSeriesRoundTripAndCodec(t *testing.T) {
	batch := []model.Series{
		{Labels: labels.FromStrings("__name__", "a", "x", "1"), Samples: []model.Sample{{T: 1, V: 1.5}, {T: 2, V: math.Inf(-1)}}},
		{Labels: labels.FromStrings("__name__", "b"), Samples: []model.Sample{{T: -3, V: 0}}},
	}
	req := FromSeries(batch)
	// The vtproto bytes are plain protobuf: the reflective decoder reads them.
	b, err := Codec{}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var viaProto PushRequest
	if err := proto.Unmarshal(b, &viaProto); err != nil || !proto.Equal(&viaProto, req) {
		t.Fatalf("vtproto bytes do not decode with proto: %v", err)
	}
	var back PushRequest
	if err := (Codec{}).Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got, err := ToSeries(&back)
	if err != nil {
		t.Fatal(err)
	}
	for i := range batch {
		if !labels.Equal(got[i].Labels, batch[i].Labels) || len(got[i].Samples) != len(batch[i].Samples) {
			t.Fatalf("series %d: %v != %v", i, got[i], batch[i])
		}
		for j := range batch[i].Samples {
			if got[i].Samples[j] != batch[i].Samples[j] && !(math.IsInf(got[i].Samples[j].V, -1)) {
				t.Fatalf("sample %d/%d differs", i, j)
			}
		}
	}
}

func TestToSeriesRejectsMalformed(t *testing.T) {
	tests := []struct {
		name string
		ts   *TimeSeries
	}{
		{name: "length mismatch", ts: &TimeSeries{Labels: model.AppendLabels(nil, labels.FromStrings("__name__", "a")), TimestampsMs: []int64{1, 2}, Values: []float64{1}}},
		{name: "truncated labels", ts: &TimeSeries{Labels: []byte{8, 'a'}}},
		{name: "duplicate names", ts: &TimeSeries{Labels: append(model.AppendLabels(nil, labels.FromStrings("a", "1")), model.AppendLabels(nil, labels.FromStrings("a", "2"))...)}},
		{name: "empty", ts: &TimeSeries{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ToSeries(&PushRequest{Series: []*TimeSeries{tc.ts}}); !errors.Is(err, model.ErrBadData) {
				t.Fatalf("err %v, want bad data", err)
			}
		})
	}
	// Unsorted but unique labels are sorted.
	unsorted := append(model.AppendLabels(nil, labels.FromStrings("z", "1")), model.AppendLabels(nil, labels.FromStrings("__name__", "a"))...)
	got, err := ToSeries(&PushRequest{Series: []*TimeSeries{{Labels: unsorted}}})
	if err != nil || got[0].Labels.String() != `{__name__="a", z="1"}` {
		t.Fatalf("got %v %v", got, err)
	}
}

func TestMatchers(t *testing.T) {
	ms := []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "a", "1"),
		labels.MustNewMatcher(labels.MatchNotEqual, "b", "2"),
		labels.MustNewMatcher(labels.MatchRegexp, "c", "x.*"),
		labels.MustNewMatcher(labels.MatchNotRegexp, "d", "y|z"),
	}
	back, err := ToMatchers(FromMatchers(ms))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ms {
		if back[i].String() != ms[i].String() {
			t.Fatalf("%s != %s", back[i], ms[i])
		}
	}
	if _, err := ToMatchers([]*LabelMatcher{{Type: LabelMatcher_RE, Name: "x", Value: "("}}); !errors.Is(err, model.ErrBadData) {
		t.Fatalf("bad regex: %v", err)
	}
}

func TestStatusMapping(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code codes.Code
		back error // the class FromStatus must give back
	}{
		{name: "bad data", err: model.BadData("x", errors.New("y")), code: codes.InvalidArgument, back: model.ErrBadData},
		{name: "too large", err: fmt.Errorf("%w: 2000 samples over 1000", model.ErrTooLarge), code: codes.ResourceExhausted, back: model.ErrTooLarge},
		{name: "overloaded", err: fmt.Errorf("%w: 64 requests in flight", model.ErrOverloaded), code: codes.ResourceExhausted, back: model.ErrOverloaded},
		{name: "unavailable", err: model.ErrUnavailable, code: codes.Unavailable, back: model.ErrUnavailable},
		{name: "canceled", err: context.Canceled, code: codes.Canceled, back: context.Canceled},
		{name: "other", err: errors.New("boom"), code: codes.Internal, back: model.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := ToStatus(tc.err)
			if status.Code(st) != tc.code {
				t.Fatalf("code %v, want %v", status.Code(st), tc.code)
			}
			if back := FromStatus(st); !errors.Is(back, tc.back) {
				t.Fatalf("FromStatus(%v) = %v, want it to be %v", st, back, tc.back)
			}
		})
	}
}

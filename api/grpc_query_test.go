package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
	"github.com/vigil-tsdb/vigil/model"
)

func TestGRPCStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *apiError
		want codes.Code
	}{
		{"bad data", &apiError{errBadData, errors.New("x")}, codes.InvalidArgument},
		{"execution", queryError(errors.New("x")), codes.FailedPrecondition},
		{"sample limit", queryError(promql.ErrTooManySamples("query execution")), codes.ResourceExhausted},
		{"timeout", queryError(promql.ErrQueryTimeout("x")), codes.DeadlineExceeded},
		{"canceled", queryError(context.Canceled), codes.Canceled},
		{"unavailable", queryError(promql.ErrStorage{Err: fmt.Errorf("2 of 3 ingesters: %w", model.ErrUnavailable)}), codes.Unavailable},
		{"overloaded", queryError(fmt.Errorf("q: %w", model.ErrOverloaded)), codes.Unavailable},
		{"storage", queryError(promql.ErrStorage{Err: errors.New("disk")}), codes.Internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := grpcStatus(tc.err)
			if st.Code() != tc.want || st.Message() != tc.err.err.Error() || len(st.Details()) != 0 {
				t.Errorf("%s %q %v, want %s %q without details", st.Code(), st.Message(), st.Details(), tc.want, tc.err.err)
			}
		})
	}
}

// TestQueryServerGate: a node without a querier, or not ready, answers
// every RPC with Unavailable and the HTTP API's text.
func TestQueryServerGate(t *testing.T) {
	noQuerier, _ := newTestAPI(t, nil, nil, nil)
	notReady, err := New(DefaultConfig(), nil, testStorage(), newTestEngine(), nil, func() error { return errors.New("replaying the WAL") }, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		a    *API
		want string
	}{{noQuerier, "this node does not answer queries (no querier)"}, {notReady, "not ready: replaying the WAL"}} {
		s := NewQueryServer(tc.a)
		for name, call := range map[string]func() error{
			"Query": func() error { _, err := s.Query(ctx, &vigilv1.QueryRequest{Expr: "up"}); return err },
			"QueryRange": func() error {
				_, err := s.QueryRange(ctx, &vigilv1.QueryRangeRequest{Expr: "up", StepMs: 1})
				return err
			},
			"Series":      func() error { _, err := s.Series(ctx, &vigilv1.SeriesRequest{Matchers: []string{"up"}}); return err },
			"LabelNames":  func() error { _, err := s.LabelNames(ctx, &vigilv1.LabelNamesRequest{}); return err },
			"LabelValues": func() error { _, err := s.LabelValues(ctx, &vigilv1.LabelValuesRequest{Name: "job"}); return err },
		} {
			if st := status.Convert(call()); st.Code() != codes.Unavailable || st.Message() != tc.want {
				t.Errorf("%s: %s %q, want Unavailable %q", name, st.Code(), st.Message(), tc.want)
			}
		}
	}
}

// TestQueryServer runs the RPCs over the HTTP tests' data in process:
// each answer carries what /api/v1/... encodes for the same request.
func TestQueryServer(t *testing.T) {
	a, _ := newTestAPI(t, nil, testStorage(), nil)
	s := NewQueryServer(a)
	ctx := context.Background()
	at := int64(t0+307) * 1000

	resp, err := s.Query(ctx, &vigilv1.QueryRequest{Expr: "up", TimeMs: at, Limit: 1})
	want := &vigilv1.QueryResponse{
		Result: &vigilv1.QueryResponse_Vector{Vector: &vigilv1.Vector{Series: []*vigilv1.Series{{
			Labels:  []*vigilv1.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: "h1:9100"}, {Name: "job", Value: "a"}},
			Samples: []*vigilv1.Sample{{TimestampMs: at, Value: 1}},
		}}}},
		Warnings: []string{"results truncated due to limit"},
	}
	if err != nil || !proto.Equal(resp, want) {
		t.Errorf("Query: %v, %v; want %v", resp, err, want)
	}

	resp, err = s.QueryRange(ctx, &vigilv1.QueryRangeRequest{Expr: `http_requests_total`, StartMs: t0 * 1000, EndMs: (t0 + 30) * 1000, StepMs: 15_000,
		Timeout: durationpb.New(10 * time.Second)})
	want = &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Matrix{Matrix: &vigilv1.Matrix{Series: []*vigilv1.Series{{
		Labels:  []*vigilv1.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "code", Value: "200"}, {Name: "job", Value: "a"}},
		Samples: []*vigilv1.Sample{{TimestampMs: t0 * 1000, Value: 0}, {TimestampMs: (t0 + 15) * 1000, Value: 15}, {TimestampMs: (t0 + 30) * 1000, Value: 30}},
	}}}}}
	if err != nil || !proto.Equal(resp, want) {
		t.Errorf("QueryRange: %v, %v; want %v", resp, err, want)
	}

	for expr, want := range map[string]*vigilv1.QueryResponse{
		"1.5":    {Result: &vigilv1.QueryResponse_Scalar{Scalar: &vigilv1.Scalar{TimestampMs: at, Value: 1.5}}},
		`"a\"b"`: {Result: &vigilv1.QueryResponse_String_{String_: &vigilv1.String{TimestampMs: at, Value: `a"b`}}},
	} {
		if resp, err := s.Query(ctx, &vigilv1.QueryRequest{Expr: expr, TimeMs: at}); err != nil || !proto.Equal(resp, want) {
			t.Errorf("%s: %v, %v; want %v", expr, resp, err, want)
		}
	}

	sr, err := s.Series(ctx, &vigilv1.SeriesRequest{Matchers: []string{`{__name__=~"up|temperature"}`}})
	if err != nil || len(sr.Series) != 3 || sr.Series[0].Labels[1].Value != "<lab> & co" {
		t.Errorf("Series: %v, %v", sr, err)
	}
	ln, err := s.LabelNames(ctx, &vigilv1.LabelNamesRequest{Matchers: []string{"up"}})
	if err != nil || strings.Join(ln.Names, ",") != "__name__,instance,job" {
		t.Errorf("LabelNames: %v, %v", ln, err)
	}
	lv, err := s.LabelValues(ctx, &vigilv1.LabelValuesRequest{Name: "job", Limit: 1})
	if err != nil || strings.Join(lv.Values, ",") != "a" || len(lv.Warnings) != 1 {
		t.Errorf("LabelValues: %v, %v", lv, err)
	}

	// Errors carry the HTTP API's text.
	_, err = s.Query(ctx, &vigilv1.QueryRequest{Expr: "up", Timeout: &durationpb.Duration{Seconds: 1, Nanos: -1}})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), `invalid parameter "timeout"`) {
		t.Errorf("invalid timeout: %v", err)
	}
	_, err = s.QueryRange(ctx, &vigilv1.QueryRangeRequest{Expr: "up", StartMs: 2, EndMs: 1, StepMs: 1})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || st.Message() != `invalid parameter "end": end timestamp must not be before start time` {
		t.Errorf("start after end: %v", err)
	}
	// A step so negative that milliseconds × 1e6 would wrap to positive.
	for _, step := range []int64{-1, math.MinInt64, -9_223_372_036_855} {
		_, err = s.QueryRange(ctx, &vigilv1.QueryRangeRequest{Expr: "up", StartMs: 1, EndMs: 2, StepMs: step})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "zero or negative query resolution step") {
			t.Errorf("step %d: %v", step, err)
		}
	}
}

func TestQueryResponseRefusesHistograms(t *testing.T) {
	h := &histogram.FloatHistogram{Count: 1}
	for _, v := range []any{
		promql.Vector{{Metric: labels.FromStrings("a", "b"), H: h}},
		promql.Matrix{{Metric: labels.FromStrings("a", "b"), Histograms: []promql.HPoint{{H: h}}}},
	} {
		if _, err := queryResponse(v); err == nil || !strings.Contains(err.Error(), "native histogram") {
			t.Errorf("%T: %v", v, err)
		}
	}
}

package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
)

// QueryServer serves the public vigil.v1.Query service (docs/sdk.md,
// "Query") over an API: the requests run through the same checks, limits,
// resolution choice, engine and error classes as /api/v1/query,
// query_range, series, labels and label values.
type QueryServer struct {
	vigilv1.UnimplementedQueryServer
	a *API
}

var _ vigilv1.QueryServer = (*QueryServer)(nil)

// NewQueryServer returns the vigil.v1.Query service of a. It answers
// Unavailable while a has no querier or is not ready, as the HTTP API does.
func NewQueryServer(a *API) *QueryServer { return &QueryServer{a: a} }

// Query implements vigilv1.QueryServer.
func (s *QueryServer) Query(ctx context.Context, req *vigilv1.QueryRequest) (*vigilv1.QueryResponse, error) {
	ts := s.a.now()
	if req.TimeMs != 0 {
		ts = time.UnixMilli(req.TimeMs).UTC()
	}
	p := queryParams{query: req.Expr, start: ts, end: ts}
	return s.query(ctx, "Query", p, req.Limit, req.Resolution, req.Timeout)
}

// QueryRange implements vigilv1.QueryServer.
func (s *QueryServer) QueryRange(ctx context.Context, req *vigilv1.QueryRangeRequest) (*vigilv1.QueryResponse, error) {
	// A step beyond what a Duration holds is as good as the longest one;
	// one not positive is refused by the shared check (as 0, so that a
	// very negative one cannot overflow into a positive one).
	step := time.Duration(min(max(req.StepMs, 0), math.MaxInt64/int64(time.Millisecond))) * time.Millisecond
	p := queryParams{query: req.Expr, isRange: true, start: time.UnixMilli(req.StartMs).UTC(), end: time.UnixMilli(req.EndMs).UTC(), step: step}
	return s.query(ctx, "QueryRange", p, req.Limit, req.Resolution, req.Timeout)
}

// query runs Query and QueryRange after checking the fields they share.
func (s *QueryServer) query(ctx context.Context, method string, p queryParams, limit int64, res vigilv1.Resolution,
	timeout *durationpb.Duration,
) (*vigilv1.QueryResponse, error) {
	if e := s.a.queryGate(); e != nil {
		return nil, s.fail(ctx, method, e)
	}
	if err := checkLimit(limit); err != nil {
		return nil, s.fail(ctx, method, badParam(err, "limit"))
	}
	p.limit = int(limit)
	var err error
	if p.resolution, err = resolutionParam(res); err != nil {
		return nil, s.fail(ctx, method, badParam(err, "resolution"))
	}
	if timeout != nil {
		if err := timeout.CheckValid(); err != nil {
			return nil, s.fail(ctx, method, badParam(err, "timeout"))
		}
		p.timeout, p.hasTimeout = timeout.AsDuration(), true
	}
	p.opts = promql.NewPrometheusQueryOpts(false, 0)
	var resp *vigilv1.QueryResponse
	var convErr error
	if e := s.a.evalQuery(ctx, p, func(ev evaluated) {
		resp, convErr = queryResponse(ev.value)
		if convErr == nil {
			resp.Warnings, resp.Infos = ev.warnings.AsStrings(p.query, 10, 10)
		}
	}); e != nil {
		return nil, s.fail(ctx, method, e)
	}
	if convErr != nil {
		return nil, s.fail(ctx, method, &apiError{errInternal, convErr})
	}
	return resp, nil
}

// Series implements vigilv1.QueryServer.
func (s *QueryServer) Series(ctx context.Context, req *vigilv1.SeriesRequest) (*vigilv1.SeriesResponse, error) {
	p, e := s.metaParams(req.Matchers, req.StartMs, req.EndMs, req.Limit)
	if e != nil {
		return nil, s.fail(ctx, "Series", e)
	}
	resp := &vigilv1.SeriesResponse{}
	warnings, e := s.a.selectSeries(ctx, p, func(lset labels.Labels) {
		resp.Series = append(resp.Series, &vigilv1.LabelSet{Labels: protoLabels(lset)})
	})
	if e != nil {
		return nil, s.fail(ctx, "Series", e)
	}
	resp.Warnings, resp.Infos = warnings.AsStrings("", 10, 10)
	return resp, nil
}

// LabelNames implements vigilv1.QueryServer.
func (s *QueryServer) LabelNames(ctx context.Context, req *vigilv1.LabelNamesRequest) (*vigilv1.LabelNamesResponse, error) {
	p, e := s.metaParams(req.Matchers, req.StartMs, req.EndMs, req.Limit)
	if e != nil {
		return nil, s.fail(ctx, "LabelNames", e)
	}
	names, warnings, e := s.a.selectLabelNames(ctx, p)
	if e != nil {
		return nil, s.fail(ctx, "LabelNames", e)
	}
	resp := &vigilv1.LabelNamesResponse{Names: names}
	resp.Warnings, resp.Infos = warnings.AsStrings("", 10, 10)
	return resp, nil
}

// LabelValues implements vigilv1.QueryServer.
func (s *QueryServer) LabelValues(ctx context.Context, req *vigilv1.LabelValuesRequest) (*vigilv1.LabelValuesResponse, error) {
	p, e := s.metaParams(req.Matchers, req.StartMs, req.EndMs, req.Limit)
	if e != nil {
		return nil, s.fail(ctx, "LabelValues", e)
	}
	vals, warnings, e := s.a.selectLabelValues(ctx, req.Name, p)
	if e != nil {
		return nil, s.fail(ctx, "LabelValues", e)
	}
	resp := &vigilv1.LabelValuesResponse{Values: vals}
	resp.Warnings, resp.Infos = warnings.AsStrings("", 10, 10)
	return resp, nil
}

// metaParams checks what the metadata RPCs share, as formMetaParams does
// for HTTP; times of 0 are unbounded.
func (s *QueryServer) metaParams(matchers []string, startMs, endMs, limit int64) (metaParams, *apiError) {
	if e := s.a.queryGate(); e != nil {
		return metaParams{}, e
	}
	if err := checkLimit(limit); err != nil {
		return metaParams{}, badParam(err, "limit")
	}
	p := metaParams{limit: int(limit), start: minTime, end: maxTime}
	if startMs != 0 {
		p.start = time.UnixMilli(startMs).UTC()
	}
	if endMs != 0 {
		p.end = time.UnixMilli(endMs).UTC()
	}
	sets, err := parseMatchers(s.a.parser, matchers)
	if err != nil {
		return metaParams{}, badParam(err, "match[]")
	}
	p.sets = sets
	return p, nil
}

// fail logs a failed call as the HTTP API does and returns its status.
func (s *QueryServer) fail(ctx context.Context, method string, e *apiError) error {
	st := grpcStatus(e)
	level := slog.LevelDebug
	if e.typ.httpCode() >= 500 {
		level = slog.LevelWarn
	}
	s.a.logger.Log(ctx, level, "grpc query failed", "method", "vigil.v1.Query/"+method, "code", st.Code(), "err", e.err)
	return st.Err()
}

// grpcStatus is the status of an API error, with the HTTP answer's text:
// 400 is InvalidArgument, 422 FailedPrecondition except the engine's
// sample limit (ResourceExhausted, without RetryInfo: a retry would hit it
// again), a query out of time DeadlineExceeded, too few ingesters or a
// node not ready Unavailable.
func grpcStatus(e *apiError) *status.Status {
	code := codes.Internal
	switch e.typ {
	case errBadData:
		code = codes.InvalidArgument
	case errExec:
		code = codes.FailedPrecondition
		var tooMany promql.ErrTooManySamples
		if errors.As(e.err, &tooMany) {
			code = codes.ResourceExhausted
		}
	case errTimeout:
		code = codes.DeadlineExceeded
	case errCanceled:
		code = codes.Canceled
	case errUnavailable:
		code = codes.Unavailable
	}
	return status.New(code, e.err.Error())
}

// resolutionParam is the HTTP resolution parameter of r.
func resolutionParam(r vigilv1.Resolution) (string, error) {
	switch r {
	case vigilv1.Resolution_RESOLUTION_AUTO:
		return "", nil
	case vigilv1.Resolution_RESOLUTION_RAW:
		return "raw", nil
	case vigilv1.Resolution_RESOLUTION_1M:
		return "1m", nil
	case vigilv1.Resolution_RESOLUTION_1H:
		return "1h", nil
	}
	return "", fmt.Errorf("unknown resolution %d", int32(r))
}

// queryResponse copies a query's value into a response. Native histograms
// cannot be stored (docs/sdk.md), so a value with one is an error.
func queryResponse(v any) (*vigilv1.QueryResponse, error) {
	errHistogram := errors.New("the result holds a native histogram, which vigil.v1 does not carry")
	switch v := v.(type) {
	case promql.Vector:
		out := &vigilv1.Vector{Series: make([]*vigilv1.Series, len(v))}
		for i, s := range v {
			if s.H != nil {
				return nil, errHistogram
			}
			out.Series[i] = &vigilv1.Series{Labels: protoLabels(s.Metric), Samples: []*vigilv1.Sample{{TimestampMs: s.T, Value: s.F}}}
		}
		return &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Vector{Vector: out}}, nil
	case promql.Matrix:
		out := &vigilv1.Matrix{Series: make([]*vigilv1.Series, len(v))}
		for i, s := range v {
			if len(s.Histograms) > 0 {
				return nil, errHistogram
			}
			smps := make([]vigilv1.Sample, len(s.Floats))
			ps := &vigilv1.Series{Labels: protoLabels(s.Metric), Samples: make([]*vigilv1.Sample, len(s.Floats))}
			for j, f := range s.Floats {
				smps[j] = vigilv1.Sample{TimestampMs: f.T, Value: f.F}
				ps.Samples[j] = &smps[j]
			}
			out.Series[i] = ps
		}
		return &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Matrix{Matrix: out}}, nil
	case promql.Scalar:
		return &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Scalar{Scalar: &vigilv1.Scalar{TimestampMs: v.T, Value: v.V}}}, nil
	case promql.String:
		return &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_String_{String_: &vigilv1.String{TimestampMs: v.T, Value: v.V}}}, nil
	}
	return nil, fmt.Errorf("unexpected query result type %T", v)
}

// protoLabels copies a label set, sorted by name as it is.
func protoLabels(lset labels.Labels) []*vigilv1.Label {
	ls := make([]vigilv1.Label, 0, lset.Len())
	lset.Range(func(l labels.Label) { ls = append(ls, vigilv1.Label{Name: l.Name, Value: l.Value}) })
	out := make([]*vigilv1.Label, len(ls))
	for i := range ls {
		out[i] = &ls[i]
	}
	return out
}

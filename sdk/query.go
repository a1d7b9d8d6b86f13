package sdk

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
)

// Value is the result of a query: a Vector, Matrix, Scalar or String.
// Use a type switch to read it.
type Value interface {
	// Type is "vector", "matrix", "scalar" or "string", the resultType of
	// the HTTP API.
	Type() string
	isValue()
}

// InstantSample is one series of a Vector with its value at the
// evaluation time.
type InstantSample struct {
	Labels []Label // sorted by name
	T      int64   // Unix milliseconds
	V      float64
}

// Vector is an instant vector: one sample per series.
type Vector []InstantSample

// Matrix is a range vector: series with their samples in time order,
// labels sorted by name.
type Matrix []Series

// Scalar is a number at a time in Unix milliseconds.
type Scalar struct {
	T int64
	V float64
}

// String is a string at a time in Unix milliseconds.
type String struct {
	T int64
	V string
}

// Type implements Value.
func (Vector) Type() string { return "vector" }

// Type implements Value.
func (Matrix) Type() string { return "matrix" }

// Type implements Value.
func (Scalar) Type() string { return "scalar" }

// Type implements Value.
func (String) Type() string { return "string" }

func (Vector) isValue() {}
func (Matrix) isValue() {}
func (Scalar) isValue() {}
func (String) isValue() {}

// Annotations are the notes the server attached to a result: warnings
// (e.g. "results truncated due to limit", PromQL's possible mistakes) and
// infos, at most 10 of each, as in the HTTP API.
type Annotations struct {
	Warnings []string
	Infos    []string
}

// QueryResult is what Query and QueryRange return.
type QueryResult struct {
	Value Value // Vector, Matrix, Scalar or String
	Annotations
}

// SeriesResult is what Series returns.
type SeriesResult struct {
	Series [][]Label // label sets, each sorted by name
	Annotations
}

// LabelsResult is what LabelNames and LabelValues return.
type LabelsResult struct {
	Values []string // the label names or values, sorted
	Annotations
}

// Resolution says which data a query may read (docs/downsampling.md,
// "Reads").
type Resolution int32

const (
	// ResolutionAuto lets the server choose by range, step and retention.
	ResolutionAuto Resolution = Resolution(vigilv1.Resolution_RESOLUTION_AUTO)
	// ResolutionRaw reads raw samples only.
	ResolutionRaw Resolution = Resolution(vigilv1.Resolution_RESOLUTION_RAW)
	// Resolution1m reads the 1-minute tier.
	Resolution1m Resolution = Resolution(vigilv1.Resolution_RESOLUTION_1M)
	// Resolution1h reads the 1-hour tier.
	Resolution1h Resolution = Resolution(vigilv1.Resolution_RESOLUTION_1H)
)

// QueryOption adjusts one query call.
type QueryOption func(*queryOptions)

type queryOptions struct {
	resolution Resolution
	timeout    time.Duration // 0: the server's
	limit      int64
}

// WithResolution sets the resolution of Query and QueryRange (default
// ResolutionAuto).
func WithResolution(r Resolution) QueryOption { return func(o *queryOptions) { o.resolution = r } }

// WithTimeout shortens the server's query timeout (-api.query-timeout)
// for Query and QueryRange; a longer one is capped by the server, and 0
// keeps the server's. A query out of time fails with
// codes.DeadlineExceeded. Series and the label calls are bounded by the
// context only.
func WithTimeout(d time.Duration) QueryOption { return func(o *queryOptions) { o.timeout = d } }

// WithLimit returns at most n series (Query, QueryRange, Series), names
// (LabelNames) or values (LabelValues); a warning says when there were
// more. 0, the default, returns all.
func WithLimit(n int) QueryOption { return func(o *queryOptions) { o.limit = int64(n) } }

func applyQueryOptions(opts []QueryOption) queryOptions {
	var o queryOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func (o queryOptions) protoTimeout() *durationpb.Duration {
	if o.timeout <= 0 {
		return nil
	}
	return durationpb.New(o.timeout)
}

// unixMilli is t in Unix milliseconds, 0 for the zero time.
func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Query evaluates the PromQL expression expr at ts (the zero time: the
// server's now), through the same parser, engine, limits and resolution
// choice as /api/v1/query. A request the HTTP API answers with 400 fails
// with ErrInvalid and the same text; the engine's sample limit is
// codes.ResourceExhausted and an execution error codes.FailedPrecondition
// (neither retried).
func (c *Client) Query(ctx context.Context, expr string, ts time.Time, opts ...QueryOption) (QueryResult, error) {
	o := applyQueryOptions(opts)
	req := &vigilv1.QueryRequest{Expr: expr, TimeMs: unixMilli(ts), Timeout: o.protoTimeout(),
		Resolution: vigilv1.Resolution(o.resolution), Limit: o.limit}
	var resp *vigilv1.QueryResponse
	err := c.retry(ctx, "query", func(ctx context.Context) (err error) {
		resp, err = vigilv1.NewQueryClient(c.conn).Query(ctx, req)
		return queryTimeoutIsFinal(err)
	})
	if err != nil {
		return QueryResult{}, err
	}
	return fromQueryResponse("query", resp)
}

// QueryRange evaluates expr from start to end every step (rounded down
// to milliseconds) as /api/v1/query_range does: the result is a Matrix.
// start after end, a step that is not positive and more than 11,000 steps
// fail with ErrInvalid.
func (c *Client) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration, opts ...QueryOption) (QueryResult, error) {
	o := applyQueryOptions(opts)
	req := &vigilv1.QueryRangeRequest{Expr: expr, StartMs: start.UnixMilli(), EndMs: end.UnixMilli(), StepMs: step.Milliseconds(),
		Timeout: o.protoTimeout(), Resolution: vigilv1.Resolution(o.resolution), Limit: o.limit}
	var resp *vigilv1.QueryResponse
	err := c.retry(ctx, "query range", func(ctx context.Context) (err error) {
		resp, err = vigilv1.NewQueryClient(c.conn).QueryRange(ctx, req)
		return queryTimeoutIsFinal(err)
	})
	if err != nil {
		return QueryResult{}, err
	}
	return fromQueryResponse("query range", resp)
}

// Series returns the label sets of the series that match any of the
// selectors in matchers (at least one, e.g. `{job="api"}`) and have data
// between start and end (zero times: unbounded), as /api/v1/series does.
// Of the options, only WithLimit applies.
func (c *Client) Series(ctx context.Context, matchers []string, start, end time.Time, opts ...QueryOption) (SeriesResult, error) {
	o := applyQueryOptions(opts)
	req := &vigilv1.SeriesRequest{Matchers: matchers, StartMs: unixMilli(start), EndMs: unixMilli(end), Limit: o.limit}
	var resp *vigilv1.SeriesResponse
	err := c.retry(ctx, "series", func(ctx context.Context) (err error) {
		resp, err = vigilv1.NewQueryClient(c.conn).Series(ctx, req)
		return err
	})
	if err != nil {
		return SeriesResult{}, err
	}
	out := SeriesResult{Series: make([][]Label, len(resp.Series)), Annotations: Annotations{Warnings: resp.Warnings, Infos: resp.Infos}}
	for i, s := range resp.Series {
		out.Series[i] = fromProtoLabels(s.Labels)
	}
	return out, nil
}

// LabelNames returns the sorted label names of the series that match any
// of matchers (none: every series) between start and end (zero times:
// unbounded), as /api/v1/labels does. Of the options, only WithLimit
// applies.
func (c *Client) LabelNames(ctx context.Context, matchers []string, start, end time.Time, opts ...QueryOption) (LabelsResult, error) {
	o := applyQueryOptions(opts)
	req := &vigilv1.LabelNamesRequest{Matchers: matchers, StartMs: unixMilli(start), EndMs: unixMilli(end), Limit: o.limit}
	var resp *vigilv1.LabelNamesResponse
	err := c.retry(ctx, "label names", func(ctx context.Context) (err error) {
		resp, err = vigilv1.NewQueryClient(c.conn).LabelNames(ctx, req)
		return err
	})
	if err != nil {
		return LabelsResult{}, err
	}
	return LabelsResult{Values: resp.Names, Annotations: Annotations{Warnings: resp.Warnings, Infos: resp.Infos}}, nil
}

// LabelValues returns the sorted values of the label name in the series
// that match any of matchers (none: every series) between start and end
// (zero times: unbounded), as /api/v1/label/<name>/values does. Of the
// options, only WithLimit applies.
func (c *Client) LabelValues(ctx context.Context, name string, matchers []string, start, end time.Time, opts ...QueryOption) (LabelsResult, error) {
	o := applyQueryOptions(opts)
	req := &vigilv1.LabelValuesRequest{Name: name, Matchers: matchers, StartMs: unixMilli(start), EndMs: unixMilli(end), Limit: o.limit}
	var resp *vigilv1.LabelValuesResponse
	err := c.retry(ctx, "label values", func(ctx context.Context) (err error) {
		resp, err = vigilv1.NewQueryClient(c.conn).LabelValues(ctx, req)
		return err
	})
	if err != nil {
		return LabelsResult{}, err
	}
	return LabelsResult{Values: resp.Values, Annotations: Annotations{Warnings: resp.Warnings, Infos: resp.Infos}}, nil
}

// fromQueryResponse converts a query's answer; an answer without a result
// (a server newer than this client, with a new result type) is an error.
func fromQueryResponse(op string, r *vigilv1.QueryResponse) (QueryResult, error) {
	out := QueryResult{Annotations: Annotations{Warnings: r.Warnings, Infos: r.Infos}}
	switch res := r.Result.(type) {
	case *vigilv1.QueryResponse_Vector:
		v := make(Vector, len(res.Vector.GetSeries()))
		for i, s := range res.Vector.GetSeries() {
			if len(s.Samples) != 1 {
				return QueryResult{}, fmt.Errorf("vigil %s: vector series %d has %d samples, want 1", op, i, len(s.Samples))
			}
			v[i] = InstantSample{Labels: fromProtoLabels(s.Labels), T: s.Samples[0].TimestampMs, V: s.Samples[0].Value}
		}
		out.Value = v
	case *vigilv1.QueryResponse_Matrix:
		m := make(Matrix, len(res.Matrix.GetSeries()))
		for i, s := range res.Matrix.GetSeries() {
			smps := make([]Sample, len(s.Samples))
			for j, p := range s.Samples {
				smps[j] = Sample{T: p.TimestampMs, V: p.Value}
			}
			m[i] = Series{Labels: fromProtoLabels(s.Labels), Samples: smps}
		}
		out.Value = m
	case *vigilv1.QueryResponse_Scalar:
		out.Value = Scalar{T: res.Scalar.GetTimestampMs(), V: res.Scalar.GetValue()}
	case *vigilv1.QueryResponse_String_:
		out.Value = String{T: res.String_.GetTimestampMs(), V: res.String_.GetValue()}
	default:
		return QueryResult{}, fmt.Errorf("vigil %s: the answer holds no result this client knows (%T)", op, r.Result)
	}
	return out, nil
}

func fromProtoLabels(ls []*vigilv1.Label) []Label {
	out := make([]Label, len(ls))
	for i, l := range ls {
		out[i] = Label{Name: l.Name, Value: l.Value}
	}
	return out
}

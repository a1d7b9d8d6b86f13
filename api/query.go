package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	commonmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"

	"github.com/vigil-tsdb/vigil/model"
)

// errorType is the "errorType" of a Prometheus API error response.
type errorType string

const (
	errBadData     errorType = "bad_data"
	errExec        errorType = "execution"
	errCanceled    errorType = "canceled"
	errTimeout     errorType = "timeout"
	errInternal    errorType = "internal"
	errUnavailable errorType = "unavailable"
)

// httpCode is the status of each error type. Prometheus 3.x answers 499
// for "canceled"; Vigil answers 503, as Prometheus 2.x did.
func (t errorType) httpCode() int {
	switch t {
	case errBadData:
		return http.StatusBadRequest
	case errExec:
		return http.StatusUnprocessableEntity
	case errCanceled, errTimeout, errUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

type apiError struct {
	typ errorType
	err error
}

// apiResult is what a query API handler produces: the encoded "data"
// value (nil to leave it out), annotations, or an error.
type apiResult struct {
	data     []byte
	warnings annotations.Annotations
	query    string // for positions in annotation texts
	err      *apiError
}

type apiFunc func(r *http.Request) apiResult

func errResult(t errorType, err error) apiResult {
	return apiResult{err: &apiError{typ: t, err: err}}
}

// prepareError reports what Resolutions.Prepare refused: the query (a
// model.ErrBadData) or else the resolution parameter.
func prepareError(err error) *apiError {
	if errors.Is(err, model.ErrBadData) {
		return badParam(err, "query")
	}
	return badParam(err, "resolution")
}

// badParam is the error of an invalid parameter, named as in the HTTP API.
func badParam(err error, name string) *apiError {
	return &apiError{errBadData, fmt.Errorf("invalid parameter %q: %w", name, err)}
}

func invalidParam(err error, name string) apiResult {
	return apiResult{err: badParam(err, name)}
}

// apiHandler runs f and writes the Prometheus response envelope.
func (a *API) apiHandler(f apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxQueryFormBytes)
		var res apiResult
		if err := r.ParseForm(); err != nil {
			res = errResult(errBadData, fmt.Errorf("error parsing form values: %w", err))
		} else {
			res = f(r)
		}
		a.respond(w, r, res)
	}
}

func (a *API) respond(w http.ResponseWriter, r *http.Request, res apiResult) {
	b := make([]byte, 0, 64+len(res.data))
	code := http.StatusOK
	if res.err != nil {
		code = res.err.typ.httpCode()
		b = append(b, `{"status":"error","errorType":`...)
		b = appendJSONString(b, string(res.err.typ))
		b = append(b, `,"error":`...)
		b = appendJSONString(b, res.err.err.Error())
		b = append(b, '}')
		level := slog.LevelDebug
		if code >= 500 {
			level = slog.LevelWarn
		}
		a.logger.Log(r.Context(), level, "api request failed", "path", r.URL.Path, "code", code, "err", res.err.err)
	} else {
		b = append(b, `{"status":"success"`...)
		if res.data != nil {
			b = append(b, `,"data":`...)
			b = append(b, res.data...)
		}
		warns, infos := res.warnings.AsStrings(res.query, 10, 10)
		if len(warns) > 0 {
			b = append(b, `,"warnings":`...)
			b = appendStrings(b, warns)
		}
		if len(infos) > 0 {
			b = append(b, `,"infos":`...)
			b = appendStrings(b, infos)
		}
		b = append(b, '}')
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		a.logger.Debug("write api response", "path", r.URL.Path, "err", err)
	}
}

// queryError classifies an error from the engine or the storage the way
// Prometheus does, plus Vigil's error classes from the querier.
func queryError(err error) *apiError {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	cause := err
	isStorage := errors.As(err, &es)
	if isStorage {
		cause = es.Err
	}
	switch {
	case errors.As(err, &eqc):
		return &apiError{errCanceled, err}
	case errors.As(err, &eqt):
		return &apiError{errTimeout, err}
	case errors.Is(cause, model.ErrUnavailable), errors.Is(cause, model.ErrOverloaded):
		return &apiError{errUnavailable, err}
	case errors.Is(cause, model.ErrBadData):
		return &apiError{errBadData, err}
	case errors.Is(cause, context.DeadlineExceeded):
		return &apiError{errTimeout, err}
	case errors.Is(cause, context.Canceled):
		return &apiError{errCanceled, err}
	case isStorage:
		return &apiError{errInternal, err}
	}
	return &apiError{errExec, err}
}

// queryParams is a parsed query or query_range request. The HTTP handlers
// and the gRPC Query service fill it in from their encodings and run it
// through evalQuery, so that both answer the same.
type queryParams struct {
	query      string
	resolution string        // as the HTTP parameter: "" (auto), "auto", "raw", "1m", "1h"
	isRange    bool          // query_range
	start, end time.Time     // equal for an instant query
	step       time.Duration // range queries only
	timeout    time.Duration // asked for when hasTimeout; capped by Config.QueryTimeout
	hasTimeout bool
	limit      int // most series returned; 0 for all
	opts       promql.QueryOpts
	stats      bool // report the query's statistics
}

// evaluated is what a query returned.
type evaluated struct {
	value    parser.Value
	warnings annotations.Annotations
	stats    stats.QueryStats // nil unless asked for
}

// evalQuery checks a range query's range and step, applies the timeout
// and the resolution, evaluates p and truncates the result to p.limit
// series. It calls use with the result before closing the query (the
// engine reuses the result's memory after that, so use copies or encodes
// what it keeps) and returns nil, or returns why nothing was evaluated.
func (a *API) evalQuery(ctx context.Context, p queryParams, use func(evaluated)) *apiError {
	if p.isRange {
		if p.end.Before(p.start) {
			return badParam(errors.New("end timestamp must not be before start time"), "end")
		}
		if err := checkStep(p.step); err != nil {
			return badParam(err, "step")
		}
		if tooManyPoints(p.start, p.end, p.step) {
			return &apiError{errBadData, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")}
		}
	}
	timeout := a.cfg.QueryTimeout
	if p.hasTimeout && p.timeout < timeout {
		timeout = p.timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ctx, qs, err := a.prepare(ctx, p.query, p.resolution, p.start, p.end, p.step)
	if err != nil {
		return prepareError(err)
	}
	var qry promql.Query
	if p.isRange {
		qry, err = a.engine.NewRangeQuery(ctx, a.queryable, p.opts, qs, p.start, p.end, p.step)
	} else {
		qry, err = a.engine.NewInstantQuery(ctx, a.queryable, p.opts, qs, p.start)
	}
	if err != nil {
		return badParam(err, "query")
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return queryError(res.Err)
	}
	warnings := res.Warnings
	if p.limit > 0 {
		switch v := res.Value.(type) {
		case promql.Vector:
			if len(v) > p.limit {
				res.Value = v[:p.limit]
				warnings = warnings.Add(errors.New("results truncated due to limit"))
			}
		case promql.Matrix:
			if len(v) > p.limit {
				res.Value = v[:p.limit]
				warnings = warnings.Add(errors.New("results truncated due to limit"))
			}
		}
	}
	ev := evaluated{value: res.Value, warnings: warnings}
	if p.stats {
		ev.stats = stats.NewQueryStats(qry.Stats())
	}
	use(ev)
	return nil
}

// formQueryOpts reads the timeout, lookback_delta and stats parameters.
func formQueryOpts(r *http.Request, p *queryParams) *apiResult {
	if s := r.FormValue("timeout"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			res := invalidParam(err, "timeout")
			return &res
		}
		p.timeout, p.hasTimeout = d, true
	}
	var lookback time.Duration
	if s := r.FormValue("lookback_delta"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			res := errResult(errBadData, fmt.Errorf("error parsing lookback delta duration: %w", err))
			return &res
		}
		lookback = d
	}
	p.opts = promql.NewPrometheusQueryOpts(r.FormValue("stats") == "all", lookback)
	p.stats = r.FormValue("stats") != ""
	return nil
}

// httpQuery evaluates p and encodes the result as Prometheus does, with
// the statistics when asked for.
func (a *API) httpQuery(r *http.Request, p queryParams) apiResult {
	var out apiResult
	if e := a.evalQuery(r.Context(), p, func(ev evaluated) {
		var statsJSON []byte
		if ev.stats != nil {
			b, err := json.Marshal(ev.stats)
			if err != nil {
				out = errResult(errInternal, fmt.Errorf("encode query stats: %w", err))
				return
			}
			statsJSON = b
		}
		out = apiResult{data: appendQueryData(nil, ev.value, statsJSON), warnings: ev.warnings, query: p.query}
	}); e != nil {
		return apiResult{err: e}
	}
	switch s := r.FormValue("stats"); s {
	case "", "true", "all":
	default:
		if out.err == nil {
			out.warnings = out.warnings.Add(fmt.Errorf("value %q for parameter \"stats\" is deprecated and will be rejected in the next major release, use %q or %q", s, "true", "all"))
		}
	}
	return out
}

func (a *API) query(r *http.Request) apiResult {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	ts, err := parseTimeParam(r.FormValue("time"), "time", a.now())
	if err != nil {
		return invalidParam(err, "time")
	}
	p := queryParams{query: r.FormValue("query"), resolution: r.FormValue("resolution"), start: ts, end: ts, limit: limit}
	if fail := formQueryOpts(r, &p); fail != nil {
		return *fail
	}
	return a.httpQuery(r, p)
}

func (a *API) queryRange(r *http.Request) apiResult {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return invalidParam(err, "end")
	}
	step, err := parseStep(r.FormValue("step"))
	if err != nil {
		return invalidParam(err, "step")
	}
	p := queryParams{query: r.FormValue("query"), resolution: r.FormValue("resolution"), isRange: true, start: start, end: end, step: step, limit: limit}
	if fail := formQueryOpts(r, &p); fail != nil {
		return *fail
	}
	return a.httpQuery(r, p)
}

// queryExemplars validates its parameters like Prometheus and answers an
// empty list: Vigil stores no exemplars.
func (a *API) queryExemplars(r *http.Request) apiResult {
	start, err := parseTimeParam(r.FormValue("start"), "start", minTime)
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTimeParam(r.FormValue("end"), "end", maxTime)
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return errResult(errBadData, errors.New("end timestamp must not be before start timestamp"))
	}
	if _, err := a.parser.ParseExpr(r.FormValue("query")); err != nil {
		return errResult(errBadData, err)
	}
	return apiResult{data: []byte("[]")}
}

func (a *API) formatQuery(r *http.Request) apiResult {
	expr, err := a.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return invalidParam(err, "query")
	}
	return apiResult{data: appendJSONString(nil, expr.Pretty(0))}
}

// metaParams is a parsed series, labels or label values request, from
// HTTP or gRPC.
type metaParams struct {
	limit      int // most results; 0 for all
	start, end time.Time
	sets       [][]*labels.Matcher // match[]: any of them
}

// formMetaParams parses limit, start, end and match[] of the metadata
// endpoints (series, labels, label values).
func (a *API) formMetaParams(r *http.Request) (metaParams, *apiResult) {
	fail := func(x apiResult) (metaParams, *apiResult) { return metaParams{}, &x }
	var p metaParams
	var err error
	if p.limit, err = parseLimit(r.FormValue("limit")); err != nil {
		return fail(invalidParam(err, "limit"))
	}
	if p.start, err = parseTimeParam(r.FormValue("start"), "start", minTime); err != nil {
		return fail(invalidParam(err, "start"))
	}
	if p.end, err = parseTimeParam(r.FormValue("end"), "end", maxTime); err != nil {
		return fail(invalidParam(err, "end"))
	}
	if p.sets, err = parseMatchers(a.parser, r.Form["match[]"]); err != nil {
		return fail(invalidParam(err, "match[]"))
	}
	return p, nil
}

// hintLimit asks storage for one more than limit, so that truncation can
// be detected.
func hintLimit(limit int) int {
	if limit > 0 {
		return limit + 1
	}
	return 0
}

// selectSeries calls emit with the labels of each series that matches any
// of p.sets, at most p.limit of them (a warning says when more matched),
// and returns the annotations. emit runs while the storage querier is
// open.
func (a *API) selectSeries(ctx context.Context, p metaParams, emit func(labels.Labels)) (annotations.Annotations, *apiError) {
	if len(p.sets) == 0 {
		return nil, &apiError{errBadData, errors.New("no match[] parameter provided")}
	}
	q, err := a.queryable.Querier(timestamp.FromTime(p.start), timestamp.FromTime(p.end))
	if err != nil {
		return nil, queryError(err)
	}
	defer q.Close()
	hints := &storage.SelectHints{
		Start: timestamp.FromTime(p.start),
		End:   timestamp.FromTime(p.end),
		Func:  "series", // no samples needed
		Limit: hintLimit(p.limit),
	}
	var set storage.SeriesSet
	if len(p.sets) > 1 {
		ss := make([]storage.SeriesSet, 0, len(p.sets))
		for _, ms := range p.sets {
			ss = append(ss, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(ss, 0, storage.ChainedSeriesMerge)
	} else {
		set = q.Select(ctx, false, hints, p.sets[0]...)
	}
	n := 0
	var warnings annotations.Annotations
	for set.Next() {
		if n%128 == 127 {
			if err := ctx.Err(); err != nil {
				return nil, queryError(err)
			}
		}
		if p.limit > 0 && n == p.limit {
			warnings = warnings.Add(errors.New("results truncated due to limit"))
			break
		}
		emit(set.At().Labels())
		n++
	}
	if err := set.Err(); err != nil {
		return nil, queryError(err)
	}
	warnings.Merge(set.Warnings())
	return warnings, nil
}

// selectLabelNames returns the sorted label names of the series matching
// any of p.sets (every series without sets), at most p.limit of them.
func (a *API) selectLabelNames(ctx context.Context, p metaParams) ([]string, annotations.Annotations, *apiError) {
	q, err := a.queryable.Querier(timestamp.FromTime(p.start), timestamp.FromTime(p.end))
	if err != nil {
		return nil, nil, queryError(err)
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(p.limit)}
	names, warnings, err := collectStrings(p.sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(ctx, hints, ms...)
	})
	if err != nil {
		return nil, nil, queryError(err)
	}
	names, warnings = limitStrings(names, p.limit, warnings)
	return names, warnings, nil
}

// selectLabelValues returns the sorted values of label name in the series
// matching any of p.sets (every series without sets), at most p.limit of
// them.
func (a *API) selectLabelValues(ctx context.Context, name string, p metaParams) ([]string, annotations.Annotations, *apiError) {
	if !commonmodel.UTF8Validation.IsValidLabelName(name) {
		return nil, nil, &apiError{errBadData, fmt.Errorf("invalid label name: %q", name)}
	}
	q, err := a.queryable.Querier(timestamp.FromTime(p.start), timestamp.FromTime(p.end))
	if err != nil {
		return nil, nil, queryError(err)
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(p.limit)}
	vals, warnings, err := collectStrings(p.sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(ctx, name, hints, ms...)
	})
	if err != nil {
		return nil, nil, queryError(err)
	}
	vals, warnings = limitStrings(vals, p.limit, warnings)
	return vals, warnings, nil
}

func (a *API) series(r *http.Request) apiResult {
	p, fail := a.formMetaParams(r)
	if fail != nil {
		return *fail
	}
	b := []byte{'['}
	warnings, e := a.selectSeries(r.Context(), p, func(lset labels.Labels) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendLabels(b, lset)
	})
	if e != nil {
		return apiResult{err: e}
	}
	return apiResult{data: append(b, ']'), warnings: warnings}
}

func (a *API) labelNames(r *http.Request) apiResult {
	p, fail := a.formMetaParams(r)
	if fail != nil {
		return *fail
	}
	names, warnings, e := a.selectLabelNames(r.Context(), p)
	if e != nil {
		return apiResult{err: e}
	}
	return apiResult{data: appendStrings(nil, names), warnings: warnings}
}

func (a *API) labelValues(r *http.Request) apiResult {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = commonmodel.UnescapeName(name, commonmodel.ValueEncodingEscaping)
	}
	p, fail := a.formMetaParams(r)
	if fail != nil {
		return *fail
	}
	vals, warnings, e := a.selectLabelValues(r.Context(), name, p)
	if e != nil {
		return apiResult{err: e}
	}
	return apiResult{data: appendStrings(nil, vals), warnings: warnings}
}

// collectStrings calls get once without matchers, or once per matcher set
// and returns the sorted union.
func collectStrings(sets [][]*labels.Matcher, get func([]*labels.Matcher) ([]string, annotations.Annotations, error)) ([]string, annotations.Annotations, error) {
	if len(sets) <= 1 {
		var ms []*labels.Matcher
		if len(sets) == 1 {
			ms = sets[0]
		}
		vals, warnings, err := get(ms)
		if err != nil {
			return nil, warnings, err
		}
		vals = slices.Clone(vals) // storage may own them only until Close
		slices.Sort(vals)
		return vals, warnings, nil
	}
	var (
		warnings annotations.Annotations
		seen     = map[string]struct{}{}
	)
	for _, ms := range sets {
		vals, w, err := get(ms)
		if err != nil {
			return nil, warnings, err
		}
		warnings.Merge(w)
		for _, v := range vals {
			seen[v] = struct{}{}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	slices.Sort(out)
	return out, warnings, nil
}

// limitStrings cuts vals to limit (0: no limit), with a warning when it
// does.
func limitStrings(vals []string, limit int, warnings annotations.Annotations) ([]string, annotations.Annotations) {
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return vals, warnings
}

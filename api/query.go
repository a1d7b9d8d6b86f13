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
func prepareError(err error) apiResult {
	if errors.Is(err, model.ErrBadData) {
		return invalidParam(err, "query")
	}
	return invalidParam(err, "resolution")
}

func invalidParam(err error, name string) apiResult {
	return errResult(errBadData, fmt.Errorf("invalid parameter %q: %w", name, err))
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

// queryContext applies the timeout parameter, capped by QueryTimeout.
func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc, error) {
	timeout := a.cfg.QueryTimeout
	if s := r.FormValue("timeout"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return nil, nil, err
		}
		if d < timeout {
			timeout = d
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	return ctx, cancel, nil
}

// queryOpts reads lookback_delta and stats.
func queryOpts(r *http.Request) (promql.QueryOpts, error) {
	var lookback time.Duration
	if s := r.FormValue("lookback_delta"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("error parsing lookback delta duration: %w", err)
		}
		lookback = d
	}
	return promql.NewPrometheusQueryOpts(r.FormValue("stats") == "all", lookback), nil
}

// runQuery executes qry and encodes its result, applying limit and stats.
func runQuery(ctx context.Context, r *http.Request, qry promql.Query, limit int) apiResult {
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return apiResult{err: queryError(res.Err)}
	}
	warnings := res.Warnings
	if limit > 0 {
		switch v := res.Value.(type) {
		case promql.Vector:
			if len(v) > limit {
				res.Value = v[:limit]
				warnings = warnings.Add(errors.New("results truncated due to limit"))
			}
		case promql.Matrix:
			if len(v) > limit {
				res.Value = v[:limit]
				warnings = warnings.Add(errors.New("results truncated due to limit"))
			}
		}
	}
	var statsJSON []byte
	switch s := r.FormValue("stats"); s {
	case "":
	default:
		warnings = warnings.Add(fmt.Errorf("value %q for parameter \"stats\" is deprecated and will be rejected in the next major release, use %q or %q", s, "true", "all"))
		fallthrough
	case "true", "all":
		out, err := json.Marshal(stats.NewQueryStats(qry.Stats()))
		if err != nil {
			return errResult(errInternal, fmt.Errorf("encode query stats: %w", err))
		}
		statsJSON = out
	}
	return apiResult{
		data:     appendQueryData(nil, res.Value, statsJSON),
		warnings: warnings,
		query:    r.FormValue("query"),
	}
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
	ctx, cancel, err := a.queryContext(r)
	if err != nil {
		return invalidParam(err, "timeout")
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return errResult(errBadData, err)
	}
	ctx, qs, err := a.prepare(ctx, r, ts, ts, 0)
	if err != nil {
		return prepareError(err)
	}
	qry, err := a.engine.NewInstantQuery(ctx, a.queryable, opts, qs, ts)
	if err != nil {
		return invalidParam(err, "query")
	}
	return runQuery(ctx, r, qry, limit)
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
	if end.Before(start) {
		return invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseStep(r.FormValue("step"))
	if err != nil {
		return invalidParam(err, "step")
	}
	if tooManyPoints(start, end, step) {
		return errResult(errBadData, errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
	}
	ctx, cancel, err := a.queryContext(r)
	if err != nil {
		return invalidParam(err, "timeout")
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return errResult(errBadData, err)
	}
	ctx, qs, err := a.prepare(ctx, r, start, end, step)
	if err != nil {
		return prepareError(err)
	}
	qry, err := a.engine.NewRangeQuery(ctx, a.queryable, opts, qs, start, end, step)
	if err != nil {
		return invalidParam(err, "query")
	}
	return runQuery(ctx, r, qry, limit)
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

// rangeParams parses limit, start, end and match[] of the metadata
// endpoints (series, labels, label values).
func (a *API) rangeParams(r *http.Request) (limit int, start, end time.Time, sets [][]*labels.Matcher, res *apiResult) {
	fail := func(x apiResult) (int, time.Time, time.Time, [][]*labels.Matcher, *apiResult) {
		return 0, time.Time{}, time.Time{}, nil, &x
	}
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return fail(invalidParam(err, "limit"))
	}
	if start, err = parseTimeParam(r.FormValue("start"), "start", minTime); err != nil {
		return fail(invalidParam(err, "start"))
	}
	if end, err = parseTimeParam(r.FormValue("end"), "end", maxTime); err != nil {
		return fail(invalidParam(err, "end"))
	}
	if sets, err = parseMatchers(a.parser, r.Form["match[]"]); err != nil {
		return fail(invalidParam(err, "match[]"))
	}
	return limit, start, end, sets, nil
}

// hintLimit asks storage for one more than limit, so that truncation can
// be detected.
func hintLimit(limit int) int {
	if limit > 0 {
		return limit + 1
	}
	return 0
}

func (a *API) series(r *http.Request) apiResult {
	if len(r.Form["match[]"]) == 0 {
		return errResult(errBadData, errors.New("no match[] parameter provided"))
	}
	limit, start, end, sets, fail := a.rangeParams(r)
	if fail != nil {
		return *fail
	}
	ctx := r.Context()
	q, err := a.queryable.Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: queryError(err)}
	}
	defer q.Close()
	hints := &storage.SelectHints{
		Start: timestamp.FromTime(start),
		End:   timestamp.FromTime(end),
		Func:  "series", // no samples needed
		Limit: hintLimit(limit),
	}
	var set storage.SeriesSet
	if len(sets) > 1 {
		ss := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			ss = append(ss, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(ss, 0, storage.ChainedSeriesMerge)
	} else {
		set = q.Select(ctx, false, hints, sets[0]...)
	}
	b := []byte{'['}
	n := 0
	var warnings annotations.Annotations
	for set.Next() {
		if n%128 == 127 {
			if err := ctx.Err(); err != nil {
				return apiResult{err: queryError(err)}
			}
		}
		if limit > 0 && n == limit {
			warnings = warnings.Add(errors.New("results truncated due to limit"))
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendLabels(b, set.At().Labels())
		n++
	}
	if err := set.Err(); err != nil {
		return apiResult{err: queryError(err)}
	}
	warnings.Merge(set.Warnings())
	return apiResult{data: append(b, ']'), warnings: warnings}
}

func (a *API) labelNames(r *http.Request) apiResult {
	limit, start, end, sets, fail := a.rangeParams(r)
	if fail != nil {
		return *fail
	}
	q, err := a.queryable.Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: queryError(err)}
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(limit)}
	names, warnings, err := collectStrings(sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(r.Context(), hints, ms...)
	})
	if err != nil {
		return apiResult{err: queryError(err)}
	}
	return stringsResult(names, limit, warnings)
}

func (a *API) labelValues(r *http.Request) apiResult {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = commonmodel.UnescapeName(name, commonmodel.ValueEncodingEscaping)
	}
	if !commonmodel.UTF8Validation.IsValidLabelName(name) {
		return errResult(errBadData, fmt.Errorf("invalid label name: %q", name))
	}
	limit, start, end, sets, fail := a.rangeParams(r)
	if fail != nil {
		return *fail
	}
	q, err := a.queryable.Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: queryError(err)}
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(limit)}
	vals, warnings, err := collectStrings(sets, func(ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(r.Context(), name, hints, ms...)
	})
	if err != nil {
		return apiResult{err: queryError(err)}
	}
	return stringsResult(vals, limit, warnings)
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

func stringsResult(vals []string, limit int, warnings annotations.Annotations) apiResult {
	if limit > 0 && len(vals) > limit {
		vals = vals[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: appendStrings(nil, vals), warnings: warnings}
}

package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/vigil-tsdb/vigil/model"
)

// maxTSDBStatusLimit is Prometheus' cap on the limit of
// /api/v1/status/tsdb.
const maxTSDBStatusLimit = 10000

func (a *API) buildInfo(*http.Request) apiResult {
	b, err := appendAny(nil, currentBuildInfo())
	if err != nil {
		return errResult(errInternal, err)
	}
	return apiResult{data: b}
}

// tsdbStat, headStats and tsdbStatusData are the JSON shapes of
// Prometheus 3.x's /api/v1/status/tsdb.
type tsdbStat struct {
	Name  string `json:"name"`
	Value uint64 `json:"value"`
}

type headStats struct {
	NumSeries     uint64 `json:"numSeries"`
	NumLabelPairs int    `json:"numLabelPairs"`
	ChunkCount    int64  `json:"chunkCount"`
	MinTime       int64  `json:"minTime"`
	MaxTime       int64  `json:"maxTime"`
}

type tsdbStatusData struct {
	HeadStats                   headStats  `json:"headStats"`
	SeriesCountByMetricName     []tsdbStat `json:"seriesCountByMetricName"`
	LabelValueCountByLabelName  []tsdbStat `json:"labelValueCountByLabelName"`
	MemoryInBytesByLabelName    []tsdbStat `json:"memoryInBytesByLabelName"`
	SeriesCountByLabelValuePair []tsdbStat `json:"seriesCountByLabelValuePair"`
}

func tsdbStats(ncs []model.NameCount) []tsdbStat {
	out := make([]tsdbStat, 0, len(ncs))
	for _, nc := range ncs {
		out = append(out, tsdbStat{Name: nc.Name, Value: nc.Value})
	}
	return out
}

func (a *API) tsdbStatus(r *http.Request) apiResult {
	limit := 10
	if s := r.FormValue("limit"); s != "" {
		var err error
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			return errResult(errBadData, errors.New("limit must be a positive number"))
		}
		if limit > maxTSDBStatusLimit {
			return errResult(errBadData, fmt.Errorf("limit must not exceed %d", maxTSDBStatusLimit))
		}
	}
	if a.status == nil {
		return errResult(errUnavailable, errors.New("this node keeps no cardinality statistics"))
	}
	if err := a.ready(); err != nil {
		return errResult(errUnavailable, fmt.Errorf("not ready: %w", err))
	}
	s, err := a.status.TSDBStatus(r.Context(), limit)
	if err != nil {
		ae := queryError(err)
		if ae.typ == errExec {
			ae.typ = errInternal // as Prometheus answers for a failed Stats call
		}
		return apiResult{err: ae}
	}
	b, err := appendAny(nil, tsdbStatusData{
		HeadStats: headStats{
			NumSeries:     s.NumSeries,
			NumLabelPairs: int(s.NumLabelPairs),
			MinTime:       s.MinTime,
			MaxTime:       s.MaxTime,
		},
		SeriesCountByMetricName:     tsdbStats(s.SeriesCountByMetricName),
		LabelValueCountByLabelName:  tsdbStats(s.LabelValueCountByLabelName),
		MemoryInBytesByLabelName:    tsdbStats(s.MemoryInBytesByLabelName),
		SeriesCountByLabelValuePair: tsdbStats(s.SeriesCountByLabelValuePair),
	})
	if err != nil {
		return errResult(errInternal, err)
	}
	return apiResult{data: b}
}

// metadata validates its parameters like Prometheus and answers an empty
// object: Vigil keeps no metric metadata (HELP, TYPE, UNIT) yet.
func (a *API) metadata(r *http.Request) apiResult {
	if s := r.FormValue("limit"); s != "" {
		if _, err := strconv.Atoi(s); err != nil {
			return errResult(errBadData, errors.New("limit must be a number"))
		}
	}
	if s := r.FormValue("limit_per_metric"); s != "" {
		if _, err := strconv.Atoi(s); err != nil {
			return errResult(errBadData, errors.New("limit_per_metric must be a number"))
		}
	}
	return apiResult{data: []byte("{}")}
}

func (a *API) statusConfig(*http.Request) apiResult {
	yaml := ""
	if a.configYAML != nil {
		yaml = a.configYAML()
	}
	b, err := appendAny(nil, struct {
		YAML string `json:"yaml"`
	}{yaml})
	if err != nil {
		return errResult(errInternal, err)
	}
	return apiResult{data: b}
}

func (a *API) statusFlags(*http.Request) apiResult {
	b, err := appendAny(nil, a.flags)
	if err != nil {
		return errResult(errInternal, err)
	}
	return apiResult{data: b}
}

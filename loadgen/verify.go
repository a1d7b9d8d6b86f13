package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// VerifyResult is what reading back the acknowledged samples found.
type VerifyResult struct {
	Series    int   `json:"series"`    // series checked
	Samples   int64 `json:"samples"`   // acknowledged samples checked
	Found     int64 `json:"found"`     // read back with the same value
	Missing   int64 `json:"missing"`   // acknowledged, not read back
	Different int64 `json:"different"` // read back with another value
	// Extra counts samples read back that were not acknowledged (a request
	// that timed out on the client may still have been stored): reported,
	// not a failure.
	Extra int64 `json:"extra"`
	// QueryErrors counts series that could not be read at all.
	QueryErrors int `json:"query_errors"`
	// Problems lists the first failures, one line each.
	Problems []string `json:"problems"`
}

// Failed reports whether any acknowledged sample was not read back intact.
func (v VerifyResult) Failed() bool { return v.Missing > 0 || v.Different > 0 || v.QueryErrors > 0 }

const maxProblems = 50

func (v *VerifyResult) problem(format string, args ...any) {
	if len(v.Problems) < maxProblems {
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
}

// Verify reads every series back from the Prometheus API at base with a
// range selector covering its acknowledged samples (an instant query
// returns the raw samples of a range selector) and compares timestamps
// and values exactly.
func Verify(ctx context.Context, base string, series []*AckedSeries) VerifyResult {
	// A base that is not loopback was allowed by the caller; a loopback
	// one may not redirect elsewhere.
	client := newHTTPClient(time.Minute, nil, CheckTarget(base, false) != nil)
	defer client.CloseIdleConnections()
	base = strings.TrimRight(base, "/")
	var res VerifyResult
	for _, s := range series {
		if ctx.Err() != nil {
			res.QueryErrors++
			res.problem("verification stopped: %v", ctx.Err())
			break
		}
		if len(s.Samples) == 0 {
			continue
		}
		res.Series++
		first, last := int64(math.MaxInt64), int64(math.MinInt64)
		for ts := range s.Samples {
			first, last = min(first, ts), max(last, ts)
		}
		res.Samples += int64(len(s.Samples))
		expr := fmt.Sprintf("%s[%dms]", s.Selector(), last-first+1)
		u := base + "/api/v1/query?" + url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(last)/1000, 'f', 3, 64)}}.Encode()
		body, err := httpGet(ctx, client, u)
		var got map[int64]float64
		if err == nil {
			got, err = matchingSamples(body, s.Labels)
		}
		if err != nil {
			res.QueryErrors++
			res.problem("%s: read back: %v", s.Selector(), err)
			continue
		}
		if len(got) == 0 {
			res.Missing += int64(len(s.Samples))
			res.problem("%s: series missing (%d acknowledged samples)", s.Selector(), len(s.Samples))
			continue
		}
		for ts, want := range s.Samples {
			v, ok := got[ts]
			switch {
			case !ok:
				res.Missing++
				res.problem("%s: sample at %s missing", s.Selector(), time.UnixMilli(ts).UTC().Format(time.RFC3339Nano))
			case math.Float64bits(v) != math.Float64bits(want):
				res.Different++
				res.problem("%s: sample at %s is %v, want %v", s.Selector(), time.UnixMilli(ts).UTC().Format(time.RFC3339Nano), v, want)
			default:
				res.Found++
			}
		}
		for ts := range got {
			if _, ok := s.Samples[ts]; !ok {
				res.Extra++
			}
		}
	}
	return res
}

// matchingSamples decodes a matrix answer and returns the samples of the
// element whose labels equal want exactly.
func matchingSamples(body []byte, want map[string]string) (map[int64]float64, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string    `json:"metric"`
				Values [][2]json.RawMessage `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("api error: %s", r.Error)
	}
	if r.Data.ResultType != "matrix" {
		return nil, fmt.Errorf("result type %q, want matrix", r.Data.ResultType)
	}
	out := map[int64]float64{}
	for _, e := range r.Data.Result {
		if !sameLabels(e.Metric, want) {
			continue
		}
		for _, p := range e.Values {
			ts, err := strconv.ParseFloat(string(p[0]), 64)
			if err != nil {
				return nil, fmt.Errorf("timestamp %s: %w", p[0], err)
			}
			var vs string
			if err := json.Unmarshal(p[1], &vs); err != nil {
				return nil, fmt.Errorf("value %s: %w", p[1], err)
			}
			v, err := strconv.ParseFloat(vs, 64)
			if err != nil {
				return nil, fmt.Errorf("value %q: %w", vs, err)
			}
			out[int64(math.Round(ts*1000))] = v
		}
	}
	return out, nil
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// PullVerifyResult is what checking the pull path found: the exporters'
// series held by Vigil and every exporter up over the run.
type PullVerifyResult struct {
	Job       string `json:"job"`
	Exporters int    `json:"exporters"`
	// SeriesServed is the exporters' series; SeriesStored what Vigil
	// holds of the job at the end of the load, the scrape's own series
	// (up, scrape_*) left out.
	SeriesServed int64 `json:"series_served"`
	SeriesStored int64 `json:"series_stored"`
	// AlwaysUp counts exporters whose up stayed 1 over the run; Down lists
	// the first few others (up 0 at some point, or no up at all).
	AlwaysUp int      `json:"always_up"`
	Down     []string `json:"down"`
	Error    string   `json:"error,omitempty"`
}

// Failed reports whether Vigil lacks some of the exporters' series, an
// exporter was not up the whole run, or the check could not be made.
func (p PullVerifyResult) Failed() bool {
	return p.Error != "" || p.SeriesStored < p.SeriesServed || p.AlwaysUp < p.Exporters
}

// Summary is the one-line finding.
func (p PullVerifyResult) Summary() string {
	if p.Error != "" {
		return "pull path not verified: " + p.Error
	}
	return fmt.Sprintf("Vigil holds %d of the %d series served by the exporters; %d of %d exporters up the whole run",
		p.SeriesStored, p.SeriesServed, p.AlwaysUp, p.Exporters)
}

// VerifyPull checks at base that Vigil holds at least served series of
// job at end (count of the job's series, the scrape's own left out) and
// that up{job} was 1 for each of the exporters over the window before end.
func VerifyPull(ctx context.Context, client *http.Client, base, job string, exporters int, served int64, end time.Time, window time.Duration) PullVerifyResult {
	res := PullVerifyResult{Job: job, Exporters: exporters, SeriesServed: served, Down: []string{}}
	base = strings.TrimRight(base, "/")
	at := strconv.FormatFloat(float64(end.UnixMilli())/1000, 'f', 3, 64)
	sel := fmt.Sprintf(`{job=%s,__name__!~"up|scrape_.+"}`, quotePromQL(job))
	vec, err := instantVector(ctx, client, base, "count("+sel+")", at)
	if err == nil && len(vec) == 1 {
		res.SeriesStored = int64(vec[0].value)
	} else if err != nil {
		res.Error = fmt.Sprintf("count the job's series: %v", err)
		return res
	}
	secs := max(int64(window.Seconds()+0.999), 1)
	vec, err = instantVector(ctx, client, base, fmt.Sprintf("min_over_time(up{job=%s}[%ds])", quotePromQL(job), secs), at)
	if err != nil {
		res.Error = fmt.Sprintf("read up: %v", err)
		return res
	}
	for _, e := range vec {
		if e.value == 1 {
			res.AlwaysUp++
		} else if len(res.Down) < 10 {
			res.Down = append(res.Down, fmt.Sprintf("%s (min up %g)", e.labels["instance"], e.value))
		}
	}
	if missing := exporters - len(vec); missing > 0 && len(res.Down) < 10 {
		res.Down = append(res.Down, fmt.Sprintf("%d exporters without an up series", missing))
	}
	return res
}

type vectorElem struct {
	labels map[string]string
	value  float64
}

// instantVector runs an instant query and decodes its vector answer.
func instantVector(ctx context.Context, client *http.Client, base, expr, at string) ([]vectorElem, error) {
	u := base + "/api/v1/query?" + url.Values{"query": {expr}, "time": {at}}.Encode()
	body, err := httpGet(ctx, client, u)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string  `json:"metric"`
				Value  [2]json.RawMessage `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode answer: %w", err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("api error: %s", r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %q, want vector", r.Data.ResultType)
	}
	out := make([]vectorElem, 0, len(r.Data.Result))
	for _, e := range r.Data.Result {
		var vs string
		if err := json.Unmarshal(e.Value[1], &vs); err != nil {
			return nil, fmt.Errorf("value %s: %w", e.Value[1], err)
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			return nil, fmt.Errorf("value %q: %w", vs, err)
		}
		out = append(out, vectorElem{labels: e.Metric, value: v})
	}
	return out, nil
}

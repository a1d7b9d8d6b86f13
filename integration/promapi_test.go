package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// promAPI is a client for the Prometheus HTTP query API, which Vigil,
// Prometheus and VictoriaMetrics all serve.
type promAPI struct {
	name string // for messages
	base string // http://host:port
}

// queryResult is a decoded query answer. Vectors and matrices become one
// resultSeries per label set; a scalar becomes one series without labels.
type queryResult struct {
	ResultType string
	Series     []resultSeries // sorted by label set
	Warnings   []string
	Infos      []string
	Raw        []byte // the response body, for messages
}

type resultSeries struct {
	Labels labels.Labels
	Points []resultPoint
}

type resultPoint struct {
	T int64 // milliseconds since the epoch
	V float64
}

// apiTime formats t as the API's decimal seconds with millisecond precision.
func apiTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

func (c promAPI) instant(ctx context.Context, query string, at time.Time) (*queryResult, error) {
	return c.get(ctx, "/api/v1/query", url.Values{"query": {query}, "time": {apiTime(at)}})
}

func (c promAPI) rangeQuery(ctx context.Context, query string, start, end time.Time, step time.Duration) (*queryResult, error) {
	return c.get(ctx, "/api/v1/query_range", url.Values{
		"query": {query},
		"start": {apiTime(start)},
		"end":   {apiTime(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
}

func (c promAPI) get(ctx context.Context, path string, params url.Values) (*queryResult, error) {
	u := c.base + path + "?" + params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", c.name, err)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", c.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s answer to %s: %w", c.name, params.Get("query"), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query %s for %s: %s: %s", c.name, params.Get("query"), resp.Status, bytes.TrimSpace(body))
	}
	res, err := decodeQueryResponse(body)
	if err != nil {
		return nil, fmt.Errorf("decode %s answer to %s: %w", c.name, params.Get("query"), err)
	}
	return res, nil
}

// decodeQueryResponse decodes a Prometheus API query response. Native
// histograms are not handled: a response carrying one is an error rather
// than a silently dropped value.
func decodeQueryResponse(body []byte) (*queryResult, error) {
	var resp struct {
		Status    string   `json:"status"`
		ErrorType string   `json:"errorType"`
		Error     string   `json:"error"`
		Warnings  []string `json:"warnings"`
		Infos     []string `json:"infos"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&resp); err != nil {
		return nil, err
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("status %q: %s: %s", resp.Status, resp.ErrorType, resp.Error)
	}
	res := &queryResult{ResultType: resp.Data.ResultType, Warnings: resp.Warnings, Infos: resp.Infos, Raw: body}
	type apiSeries struct {
		Metric     map[string]string   `json:"metric"`
		Value      []json.RawMessage   `json:"value"`
		Values     [][]json.RawMessage `json:"values"`
		Histogram  json.RawMessage     `json:"histogram"`
		Histograms json.RawMessage     `json:"histograms"`
	}
	switch resp.Data.ResultType {
	case "scalar":
		var pair []json.RawMessage
		if err := json.Unmarshal(resp.Data.Result, &pair); err != nil {
			return nil, err
		}
		p, err := decodePoint(pair)
		if err != nil {
			return nil, err
		}
		res.Series = []resultSeries{{Labels: labels.EmptyLabels(), Points: []resultPoint{p}}}
	case "vector", "matrix":
		var series []apiSeries
		if err := json.Unmarshal(resp.Data.Result, &series); err != nil {
			return nil, err
		}
		for _, s := range series {
			if s.Histogram != nil || s.Histograms != nil {
				return nil, fmt.Errorf("series %v carries native histograms, which this client does not compare", s.Metric)
			}
			rs := resultSeries{Labels: labels.FromMap(s.Metric)}
			pairs := s.Values
			if resp.Data.ResultType == "vector" {
				pairs = [][]json.RawMessage{s.Value}
			}
			for _, pair := range pairs {
				p, err := decodePoint(pair)
				if err != nil {
					return nil, fmt.Errorf("series %s: %w", rs.Labels, err)
				}
				rs.Points = append(rs.Points, p)
			}
			res.Series = append(res.Series, rs)
		}
		sort.Slice(res.Series, func(i, j int) bool { return labels.Compare(res.Series[i].Labels, res.Series[j].Labels) < 0 })
	default:
		return nil, fmt.Errorf("unsupported result type %q", resp.Data.ResultType)
	}
	return res, nil
}

// decodePoint decodes [<seconds>, "<value>"].
func decodePoint(pair []json.RawMessage) (resultPoint, error) {
	if len(pair) != 2 {
		return resultPoint{}, fmt.Errorf("point %s: want [time, value]", pair)
	}
	var ts json.Number
	if err := json.Unmarshal(pair[0], &ts); err != nil {
		return resultPoint{}, fmt.Errorf("point time %s: %w", pair[0], err)
	}
	sec, err := ts.Float64()
	if err != nil {
		return resultPoint{}, fmt.Errorf("point time %s: %w", ts, err)
	}
	var vs string
	if err := json.Unmarshal(pair[1], &vs); err != nil {
		return resultPoint{}, fmt.Errorf("point value %s: %w", pair[1], err)
	}
	v, err := strconv.ParseFloat(vs, 64)
	if err != nil {
		return resultPoint{}, fmt.Errorf("point value %q: %w", vs, err)
	}
	return resultPoint{T: int64(math.Round(sec * 1000)), V: v}, nil
}

// sameValue reports whether a and b agree: NaN only with NaN, an infinity
// only with the same infinity, finite values within rel relative to the
// larger magnitude (so 0 only equals 0).
func sameValue(a, b, rel float64) bool {
	switch {
	case math.IsNaN(a) || math.IsNaN(b):
		return math.IsNaN(a) && math.IsNaN(b)
	case math.IsInf(a, 0) || math.IsInf(b, 0):
		return a == b
	case a == b:
		return true
	}
	return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b))
}

// diffResults lists every difference between want and got: result type,
// label sets present on one side only, and per series the timestamps and
// values (compared with sameValue). It returns nil when they agree.
func diffResults(want, got *queryResult, rel float64) []string {
	var diffs []string
	if want.ResultType != got.ResultType {
		diffs = append(diffs, fmt.Sprintf("result type %q, want %q", got.ResultType, want.ResultType))
	}
	byLabels := func(r *queryResult) map[string]resultSeries {
		m := make(map[string]resultSeries, len(r.Series))
		for _, s := range r.Series {
			m[s.Labels.String()] = s
		}
		return m
	}
	w, g := byLabels(want), byLabels(got)
	all := make([]labels.Labels, 0, len(w)+len(g))
	for _, s := range want.Series {
		all = append(all, s.Labels)
	}
	for _, s := range got.Series {
		if _, ok := w[s.Labels.String()]; !ok {
			all = append(all, s.Labels)
		}
	}
	sort.Slice(all, func(i, j int) bool { return labels.Compare(all[i], all[j]) < 0 })
	for _, ls := range all {
		k := ls.String()
		ws, inWant := w[k]
		gs, inGot := g[k]
		switch {
		case !inGot:
			diffs = append(diffs, fmt.Sprintf("series %s missing (%d points)", k, len(ws.Points)))
			continue
		case !inWant:
			diffs = append(diffs, fmt.Sprintf("series %s unexpected (%d points)", k, len(gs.Points)))
			continue
		}
		diffs = append(diffs, diffPoints(k, ws.Points, gs.Points, rel)...)
	}
	return diffs
}

func diffPoints(series string, want, got []resultPoint, rel float64) []string {
	var diffs []string
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || (i < len(want) && want[i].T < got[j].T):
			diffs = append(diffs, fmt.Sprintf("series %s: point at %d missing (want %v)", series, want[i].T, want[i].V))
			i++
		case i == len(want) || got[j].T < want[i].T:
			diffs = append(diffs, fmt.Sprintf("series %s: unexpected point at %d (%v)", series, got[j].T, got[j].V))
			j++
		default:
			if !sameValue(want[i].V, got[j].V, rel) {
				diffs = append(diffs, fmt.Sprintf("series %s at %d: got %v, want %v (relative difference %.3g)",
					series, want[i].T, got[j].V, want[i].V, relDiff(want[i].V, got[j].V)))
			}
			i++
			j++
		}
	}
	return diffs
}

func relDiff(a, b float64) float64 {
	m := math.Max(math.Abs(a), math.Abs(b))
	if m == 0 {
		return 0
	}
	return math.Abs(a-b) / m
}

// format renders r in full, one series per line with every point as
// <seconds>=<value> (values in the shortest form that parses back to the
// same float64), for failure messages.
func (r *queryResult) format() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", r)
	if len(r.Warnings) > 0 {
		fmt.Fprintf(&b, ", warnings %q", r.Warnings)
	}
	if len(r.Infos) > 0 {
		fmt.Fprintf(&b, ", infos %q", r.Infos)
	}
	for _, s := range r.Series {
		fmt.Fprintf(&b, "\n  %s:", s.Labels)
		for _, p := range s.Points {
			fmt.Fprintf(&b, " %s=%s", strconv.FormatFloat(float64(p.T)/1000, 'f', 3, 64), strconv.FormatFloat(p.V, 'g', -1, 64))
		}
	}
	return b.String()
}

// pointCount counts points over all series, for log lines.
func (r *queryResult) pointCount() int {
	n := 0
	for _, s := range r.Series {
		n += len(s.Points)
	}
	return n
}

// String is a compact one-line summary.
func (r *queryResult) String() string {
	return fmt.Sprintf("%s: %d series, %d points", r.ResultType, len(r.Series), r.pointCount())
}

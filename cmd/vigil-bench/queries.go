package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// apiClient talks to a Prometheus-compatible HTTP API.
type apiClient struct {
	base   string
	client *http.Client
}

func newAPIClient(base string) *apiClient {
	return &apiClient{
		base: base,
		client: &http.Client{
			Timeout:   2 * time.Minute,
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2, DisableCompression: true},
		},
	}
}

func (c *apiClient) close() { c.client.CloseIdleConnections() }

type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type vectorElem struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// get performs one GET and returns the body and the time until it was read
// completely.
func (c *apiClient) get(ctx context.Context, path string, params url.Values) ([]byte, time.Duration, error) {
	u := c.base + path + "?" + params.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("build request: %w", err)
	}
	began := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("get %s: %w", path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("%s: HTTP %d: %.300s", path, resp.StatusCode, body)
	}
	return body, took, nil
}

// resultSize decodes an API answer and returns the number of series in
// it: vector or matrix elements for queries, label sets for /series.
func resultSize(body []byte) (int, error) {
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("decode api response: %w", err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("api error %s: %s", r.ErrorType, r.Error)
	}
	if len(r.Data) > 0 && r.Data[0] == '[' { // /api/v1/series
		var sets []map[string]string
		if err := json.Unmarshal(r.Data, &sets); err != nil {
			return 0, fmt.Errorf("decode series: %w", err)
		}
		return len(sets), nil
	}
	var d queryData
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return 0, fmt.Errorf("decode query data: %w", err)
	}
	switch d.ResultType {
	case "vector", "matrix":
		var elems []json.RawMessage
		if err := json.Unmarshal(d.Result, &elems); err != nil {
			return 0, fmt.Errorf("decode %s: %w", d.ResultType, err)
		}
		return len(elems), nil
	case "scalar", "string":
		return 1, nil
	}
	return 0, fmt.Errorf("unknown result type %q", d.ResultType)
}

// instantScalar runs an instant query expected to return one vector
// element and returns its value.
func (c *apiClient) instantScalar(ctx context.Context, expr string, at time.Time) (float64, error) {
	body, _, err := c.get(ctx, "/api/v1/query", url.Values{"query": {expr}, "time": {promTime(at)}})
	if err != nil {
		return 0, err
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("decode api response: %w", err)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s: api error %s: %s", expr, r.ErrorType, r.Error)
	}
	var d queryData
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return 0, fmt.Errorf("decode query data: %w", err)
	}
	var v []vectorElem
	if err := json.Unmarshal(d.Result, &v); err != nil {
		return 0, fmt.Errorf("%s: decode vector: %w", expr, err)
	}
	if len(v) != 1 {
		return 0, fmt.Errorf("%s: %d results, want 1", expr, len(v))
	}
	s, ok := v[0].Value[1].(string)
	if !ok {
		return 0, fmt.Errorf("%s: value %v is not a string", expr, v[0].Value[1])
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: parse value: %w", expr, err)
	}
	return f, nil
}

// dashQuery is one dashboard query whose latency is measured.
type dashQuery struct {
	label      string // table row
	path       string
	params     url.Values
	wantSeries int // series a correct answer holds
}

// dashboardQueries are the five measured queries, evaluated at `at` (just
// after the newest sample) for a load of `hosts` hosts.
func dashboardQueries(at time.Time, hosts int) []dashQuery {
	instant := func(expr string) url.Values { return url.Values{"query": {expr}, "time": {promTime(at)}} }
	host := min(7, hosts-1)
	return []dashQuery{
		{label: "`sum(rate(node_cpu_seconds_total[5m]))`", path: "/api/v1/query",
			params: instant("sum(rate(node_cpu_seconds_total[5m]))"), wantSeries: 1},
		{label: "`sum by (instance)(rate(node_network_receive_bytes_total[5m]))`", path: "/api/v1/query",
			params: instant("sum by (instance)(rate(node_network_receive_bytes_total[5m]))"), wantSeries: hosts},
		{label: fmt.Sprintf("`node_load1{instance=\"host-%d:9100\"}` range 1h step 60s", host), path: "/api/v1/query_range",
			params: url.Values{
				"query": {fmt.Sprintf(`node_load1{instance="host-%d:9100"}`, host)},
				"start": {promTime(at.Add(-time.Hour))}, "end": {promTime(at)}, "step": {"60"},
			}, wantSeries: 1},
		{label: "`topk(5, node_memory_MemAvailable_bytes)`", path: "/api/v1/query",
			params: instant("topk(5, node_memory_MemAvailable_bytes)"), wantSeries: min(5, hosts)},
		{label: "`/api/v1/series?match[]=node_load1`", path: "/api/v1/series",
			params:     url.Values{"match[]": {"node_load1"}, "start": {promTime(at.Add(-time.Hour))}, "end": {promTime(at)}},
			wantSeries: hosts},
	}
}

// queryResult is one dashboard query's measurement on one system.
type queryResult struct {
	median time.Duration
	series int   // series in the answer
	err    error // the query failed or returned nothing
}

// measureQuery runs q warmups+runs times and returns the median latency of
// the measured runs. Any failed or empty answer makes the whole result an
// error: an empty answer is not a fast one.
func (c *apiClient) measureQuery(ctx context.Context, q dashQuery, warmups, runs int) queryResult {
	var times []time.Duration
	series := -1
	for i := 0; i < warmups+runs; i++ {
		body, took, err := c.get(ctx, q.path, q.params)
		if err != nil {
			return queryResult{err: err}
		}
		n, err := resultSize(body)
		if err != nil {
			return queryResult{err: err}
		}
		if n == 0 {
			return queryResult{err: errors.New("empty result")}
		}
		series = n
		if i >= warmups {
			times = append(times, took)
		}
	}
	return queryResult{median: median(times), series: series}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// promTime formats t as the API's seconds with milliseconds.
func promTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// promDuration formats d for a PromQL range selector.
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

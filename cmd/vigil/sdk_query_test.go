package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/vigil-tsdb/vigil/sdk"
)

// promAnswer is the envelope of a Prometheus API answer.
type promAnswer struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

func promGet(t *testing.T, base, path string, params url.Values) (int, promAnswer) {
	t.Helper()
	resp, err := http.Get(base + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a promAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, a
}

// promTime is Unix milliseconds as the HTTP API's seconds.
func promTime(ms int64) string { return strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64) }

// canonical forms, so that HTTP's JSON and the SDK's values compare.
func canonLabels(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	b.WriteByte('}')
	return b.String()
}

func sdkLabels(ls []sdk.Label) map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	if len(m) != len(ls) {
		m["!duplicate"] = fmt.Sprint(ls)
	}
	if !slices.IsSortedFunc(ls, func(a, b sdk.Label) int { return strings.Compare(a.Name, b.Name) }) {
		m["!unsorted"] = fmt.Sprint(ls)
	}
	return m
}

func canonPoint(ms int64, v float64) string {
	return fmt.Sprintf("%d=%s", ms, strconv.FormatFloat(v, 'g', -1, 64))
}

// httpPoint decodes [seconds, "value"].
func httpPoint(t *testing.T, p []json.RawMessage) (int64, string) {
	t.Helper()
	if len(p) != 2 {
		t.Fatalf("point %s", p)
	}
	sec, err := strconv.ParseFloat(string(p[0]), 64)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal(p[1], &s); err != nil {
		t.Fatal(err)
	}
	return int64(math.Round(sec * 1000)), s
}

// canonHTTPValue is the canonical form of a query's "data": the result
// type and one line per series (vectors sorted: their order is not
// defined).
func canonHTTPValue(t *testing.T, data json.RawMessage) (string, []string) {
	t.Helper()
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	switch d.ResultType {
	case "vector":
		var r []struct {
			Metric map[string]string
			Value  []json.RawMessage
		}
		if err := json.Unmarshal(d.Result, &r); err != nil {
			t.Fatal(err)
		}
		for _, s := range r {
			ms, v := httpPoint(t, s.Value)
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, canonLabels(s.Metric)+" "+canonPoint(ms, f))
		}
		slices.Sort(out)
	case "matrix":
		var r []struct {
			Metric map[string]string
			Values [][]json.RawMessage
		}
		if err := json.Unmarshal(d.Result, &r); err != nil {
			t.Fatal(err)
		}
		for _, s := range r {
			line := canonLabels(s.Metric)
			for _, p := range s.Values {
				ms, v := httpPoint(t, p)
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatal(err)
				}
				line += " " + canonPoint(ms, f)
			}
			out = append(out, line)
		}
	case "scalar", "string":
		var p []json.RawMessage
		if err := json.Unmarshal(d.Result, &p); err != nil {
			t.Fatal(err)
		}
		ms, v := httpPoint(t, p)
		if d.ResultType == "scalar" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			v = strconv.FormatFloat(f, 'g', -1, 64)
		}
		out = append(out, fmt.Sprintf("%d=%s", ms, v))
	default:
		t.Fatalf("result type %q", d.ResultType)
	}
	return d.ResultType, out
}

func canonSDKValue(v sdk.Value) (string, []string) {
	var out []string
	switch v := v.(type) {
	case sdk.Vector:
		for _, s := range v {
			out = append(out, canonLabels(sdkLabels(s.Labels))+" "+canonPoint(s.T, s.V))
		}
		slices.Sort(out)
	case sdk.Matrix:
		for _, s := range v {
			line := canonLabels(sdkLabels(s.Labels))
			for _, p := range s.Samples {
				line += " " + canonPoint(p.T, p.V)
			}
			out = append(out, line)
		}
	case sdk.Scalar:
		out = append(out, canonPoint(v.T, v.V))
	case sdk.String:
		out = append(out, fmt.Sprintf("%d=%s", v.T, v.V))
	default:
		return fmt.Sprintf("%T", v), nil
	}
	return v.Type(), out
}

func sameStrings(a, b []string) bool { return slices.Equal(a, b) || len(a) == 0 && len(b) == 0 }

// TestSDKQuery writes through the SDK into the real single node, then
// checks that every Query RPC answers what the HTTP API answers for the
// same request (values, order of series, annotations, limits, the
// resolution option), and that each class of error has the documented
// code and the HTTP API's text.
func TestSDKQuery(t *testing.T) {
	grpcAddr := freeAddr(t)
	base, stop := startRun(t, "-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", grpcAddr,
		"-self-scrape.interval", "0", "-query.max-samples", "5000")
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	c, err := sdk.New(grpcAddr, sdk.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// 6 counters and a gauge, every 15 s for 30 minutes up to about now.
	t0 := time.Now().Add(-30 * time.Minute).Truncate(time.Minute).UnixMilli()
	var series []sdk.Series
	k := 0
	for _, job := range []string{"api", "web"} {
		for _, inst := range []string{"a", "b", "c"} {
			k++
			s := sdk.Series{Labels: sdk.Labels("__name__", "sdkq_requests_total", "job", job, "instance", inst)}
			for i := range 121 {
				s.Samples = append(s.Samples, sdk.Sample{T: t0 + int64(i)*15_000, V: float64(i * k)})
			}
			series = append(series, s)
		}
	}
	g := sdk.Series{Labels: sdk.Labels("__name__", "sdkq_gauge", "job", "api")}
	for i := range 121 {
		g.Samples = append(g.Samples, sdk.Sample{T: t0 + int64(i)*15_000, V: math.Sin(float64(i)/7) * 100})
	}
	series = append(series, g)
	if res, err := c.Write(ctx, series); err != nil || res.Stored != 7*121 {
		t.Fatalf("write: %+v, %v", res, err)
	}
	waitQuery(t, base, `count(count_over_time({__name__=~"sdkq_.*"}[1h]))`, "7")

	ts := t0 + 20*60_000 // evaluation time of the instant queries
	start, end := t0, t0+30*60_000

	t.Run("query same as HTTP", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			expr     string
			opts     []sdk.QueryOption
			params   url.Values // besides query and time
			wantType string
			wantLen  int
			wantNote string // a warning or info that must be there
		}{
			{name: "vector", expr: "sdkq_requests_total", wantType: "vector", wantLen: 6},
			{name: "aggregation", expr: "sum by (job) (rate(sdkq_requests_total[5m]))", wantType: "vector", wantLen: 2},
			{name: "fractions", expr: "sdkq_gauge / 3", wantType: "vector", wantLen: 1},
			{name: "scalar", expr: "scalar(sum(sdkq_requests_total))", wantType: "scalar", wantLen: 1},
			{name: "string", expr: `"hello"`, wantType: "string", wantLen: 1},
			{name: "limit", expr: "sdkq_requests_total", opts: []sdk.QueryOption{sdk.WithLimit(2)}, params: url.Values{"limit": {"2"}},
				wantType: "vector", wantLen: 2, wantNote: "results truncated due to limit"},
			{name: "info", expr: "rate(sdkq_gauge[5m])", wantType: "vector", wantLen: 1, wantNote: "might not be a counter"},
			{name: "raw", expr: "sdkq_gauge", opts: []sdk.QueryOption{sdk.WithResolution(sdk.ResolutionRaw)}, params: url.Values{"resolution": {"raw"}},
				wantType: "vector", wantLen: 1},
			{name: "1h tier", expr: "max_over_time(sdkq_gauge[2h])", opts: []sdk.QueryOption{sdk.WithResolution(sdk.Resolution1h)}, params: url.Values{"resolution": {"1h"}},
				wantType: "vector", wantLen: -1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res, err := c.Query(ctx, tc.expr, time.UnixMilli(ts), tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				p := url.Values{"query": {tc.expr}, "time": {promTime(ts)}}
				for k, v := range tc.params {
					p[k] = v
				}
				code, a := promGet(t, base, "/api/v1/query", p)
				if code != http.StatusOK {
					t.Fatalf("HTTP %d: %+v", code, a)
				}
				httpType, httpVal := canonHTTPValue(t, a.Data)
				sdkType, sdkVal := canonSDKValue(res.Value)
				if sdkType != httpType || !sameStrings(sdkVal, httpVal) {
					t.Fatalf("SDK %s %q\nHTTP %s %q", sdkType, sdkVal, httpType, httpVal)
				}
				if !sameStrings(res.Warnings, a.Warnings) || !sameStrings(res.Infos, a.Infos) {
					t.Errorf("annotations: SDK %q %q, HTTP %q %q", res.Warnings, res.Infos, a.Warnings, a.Infos)
				}
				if sdkType != tc.wantType || tc.wantLen >= 0 && len(sdkVal) != tc.wantLen {
					t.Errorf("got %s of %d, want %s of %d", sdkType, len(sdkVal), tc.wantType, tc.wantLen)
				}
				if tc.wantNote != "" && !strings.Contains(strings.Join(append(res.Warnings, res.Infos...), "\n"), tc.wantNote) {
					t.Errorf("annotations %q %q lack %q", res.Warnings, res.Infos, tc.wantNote)
				}
			})
		}
	})

	t.Run("resolution passes through", func(t *testing.T) {
		// A selector naming the reserved __aggr__ label is fine over raw
		// data and refused when a tier is forced: the option reaches the
		// server's resolution choice, with the HTTP API's answer.
		const q = `sdkq_gauge{__aggr__="max"}`
		if _, err := c.Query(ctx, q, time.UnixMilli(ts), sdk.WithResolution(sdk.ResolutionRaw)); err != nil {
			t.Fatalf("raw: %v", err)
		}
		for _, r := range []struct {
			opt  sdk.Resolution
			name string
		}{{sdk.Resolution1m, "1m"}, {sdk.Resolution1h, "1h"}} {
			_, err := c.Query(ctx, q, time.UnixMilli(ts), sdk.WithResolution(r.opt))
			var e *sdk.Error
			if !errors.As(err, &e) || !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(e.Message, "is reserved") {
				t.Fatalf("%s: %v, want InvalidArgument naming the reserved label", r.name, err)
			}
			code, a := promGet(t, base, "/api/v1/query", url.Values{"query": {q}, "time": {promTime(ts)}, "resolution": {r.name}})
			if code != http.StatusBadRequest || a.Error != e.Message {
				t.Errorf("%s over HTTP: %d %q, want 400 %q", r.name, code, a.Error, e.Message)
			}
		}
	})

	t.Run("query at now", func(t *testing.T) {
		before := time.Now().UnixMilli()
		res, err := c.Query(ctx, "sdkq_gauge", time.Time{})
		after := time.Now().UnixMilli()
		if err != nil {
			t.Fatal(err)
		}
		v, ok := res.Value.(sdk.Vector)
		if !ok || len(v) != 1 || v[0].T < before-1000 || v[0].T > after+1000 || v[0].V != g.Samples[120].V {
			t.Fatalf("%+v, want the last gauge sample (%v) at now (%d..%d)", res.Value, g.Samples[120].V, before, after)
		}
	})

	t.Run("query range same as HTTP", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			expr    string
			step    time.Duration
			opts    []sdk.QueryOption
			params  url.Values
			wantLen int
		}{
			{name: "rate", expr: "rate(sdkq_requests_total[2m])", step: 30 * time.Second, wantLen: 6},
			{name: "gauge at 15s", expr: "sdkq_gauge", step: 15 * time.Second, wantLen: 1},
			{name: "odd step", expr: "sum(sdkq_requests_total) / 7", step: 45500 * time.Millisecond, wantLen: 1},
			{name: "limit", expr: "sdkq_requests_total", step: time.Minute, opts: []sdk.QueryOption{sdk.WithLimit(4)}, params: url.Values{"limit": {"4"}}, wantLen: 4},
			{name: "raw", expr: "sdkq_gauge", step: time.Minute, opts: []sdk.QueryOption{sdk.WithResolution(sdk.ResolutionRaw)}, params: url.Values{"resolution": {"raw"}}, wantLen: 1},
			{name: "1m tier", expr: "avg_over_time(sdkq_gauge[10m])", step: 10 * time.Minute, opts: []sdk.QueryOption{sdk.WithResolution(sdk.Resolution1m)},
				params: url.Values{"resolution": {"1m"}}, wantLen: -1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res, err := c.QueryRange(ctx, tc.expr, time.UnixMilli(start), time.UnixMilli(end), tc.step, tc.opts...)
				if err != nil {
					t.Fatal(err)
				}
				p := url.Values{"query": {tc.expr}, "start": {promTime(start)}, "end": {promTime(end)}, "step": {strconv.FormatFloat(tc.step.Seconds(), 'f', -1, 64)}}
				for k, v := range tc.params {
					p[k] = v
				}
				code, a := promGet(t, base, "/api/v1/query_range", p)
				if code != http.StatusOK {
					t.Fatalf("HTTP %d: %+v", code, a)
				}
				httpType, httpVal := canonHTTPValue(t, a.Data)
				sdkType, sdkVal := canonSDKValue(res.Value)
				if sdkType != "matrix" || httpType != "matrix" || !sameStrings(sdkVal, httpVal) {
					t.Fatalf("SDK %s %q\nHTTP %s %q", sdkType, sdkVal, httpType, httpVal)
				}
				if !sameStrings(res.Warnings, a.Warnings) || !sameStrings(res.Infos, a.Infos) {
					t.Errorf("annotations: SDK %q %q, HTTP %q %q", res.Warnings, res.Infos, a.Warnings, a.Infos)
				}
				if tc.wantLen >= 0 && len(sdkVal) != tc.wantLen {
					t.Errorf("%d series, want %d", len(sdkVal), tc.wantLen)
				}
			})
		}
	})

	t.Run("metadata same as HTTP", func(t *testing.T) {
		all := time.Time{}
		for _, tc := range []struct {
			name     string
			call     func() ([]string, sdk.Annotations, error)
			path     string
			params   url.Values
			isSeries bool
			wantLen  int
		}{
			{name: "series", path: "/api/v1/series", isSeries: true, wantLen: 4,
				params: url.Values{"match[]": {`sdkq_requests_total{job="api"}`, "sdkq_gauge"}},
				call: func() ([]string, sdk.Annotations, error) {
					r, err := c.Series(ctx, []string{`sdkq_requests_total{job="api"}`, "sdkq_gauge"}, all, all)
					return canonSeries(r.Series), r.Annotations, err
				}},
			{name: "series in range with limit", path: "/api/v1/series", isSeries: true, wantLen: 2,
				params: url.Values{"match[]": {`{__name__=~"sdkq_.*"}`}, "start": {promTime(start)}, "end": {promTime(end)}, "limit": {"2"}},
				call: func() ([]string, sdk.Annotations, error) {
					r, err := c.Series(ctx, []string{`{__name__=~"sdkq_.*"}`}, time.UnixMilli(start), time.UnixMilli(end), sdk.WithLimit(2))
					return canonSeries(r.Series), r.Annotations, err
				}},
			{name: "label names", path: "/api/v1/labels", wantLen: 3,
				params: url.Values{"match[]": {`{__name__=~"sdkq_.*"}`}},
				call: func() ([]string, sdk.Annotations, error) {
					r, err := c.LabelNames(ctx, []string{`{__name__=~"sdkq_.*"}`}, all, all)
					return r.Values, r.Annotations, err
				}},
			{name: "label names of the gauge, limit", path: "/api/v1/labels", wantLen: 1,
				params: url.Values{"match[]": {"sdkq_gauge"}, "limit": {"1"}},
				call: func() ([]string, sdk.Annotations, error) {
					r, err := c.LabelNames(ctx, []string{"sdkq_gauge"}, all, all, sdk.WithLimit(1))
					return r.Values, r.Annotations, err
				}},
			{name: "label values", path: "/api/v1/label/instance/values", wantLen: 3,
				params: url.Values{"match[]": {`sdkq_requests_total{job="web"}`}, "start": {promTime(start)}, "end": {promTime(end)}},
				call: func() ([]string, sdk.Annotations, error) {
					r, err := c.LabelValues(ctx, "instance", []string{`sdkq_requests_total{job="web"}`}, time.UnixMilli(start), time.UnixMilli(end))
					return r.Values, r.Annotations, err
				}},
			{name: "metric names", path: "/api/v1/label/__name__/values", wantLen: -1,
				call: func() ([]string, sdk.Annotations, error) {
					r, err := c.LabelValues(ctx, "__name__", nil, all, all)
					return r.Values, r.Annotations, err
				}},
			{name: "job values, limit", path: "/api/v1/label/job/values", wantLen: 1,
				params: url.Values{"match[]": {`{__name__=~"sdkq_.*"}`}, "limit": {"1"}},
				call: func() ([]string, sdk.Annotations, error) {
					r, err := c.LabelValues(ctx, "job", []string{`{__name__=~"sdkq_.*"}`}, all, all, sdk.WithLimit(1))
					return r.Values, r.Annotations, err
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, notes, err := tc.call()
				if err != nil {
					t.Fatal(err)
				}
				code, a := promGet(t, base, tc.path, tc.params)
				if code != http.StatusOK {
					t.Fatalf("HTTP %d: %+v", code, a)
				}
				var want []string
				if tc.isSeries {
					var sets []map[string]string
					if err := json.Unmarshal(a.Data, &sets); err != nil {
						t.Fatal(err)
					}
					for _, s := range sets {
						want = append(want, canonLabels(s))
					}
				} else if err := json.Unmarshal(a.Data, &want); err != nil {
					t.Fatal(err)
				}
				if !sameStrings(got, want) {
					t.Fatalf("SDK %q\nHTTP %q", got, want)
				}
				if !sameStrings(notes.Warnings, a.Warnings) || !sameStrings(notes.Infos, a.Infos) {
					t.Errorf("annotations: SDK %+v, HTTP %q %q", notes, a.Warnings, a.Infos)
				}
				if tc.wantLen >= 0 && len(got) != tc.wantLen {
					t.Errorf("%d results, want %d", len(got), tc.wantLen)
				}
				if tc.params.Get("limit") != "" && !slices.Contains(notes.Warnings, "results truncated due to limit") { // each case has more
					t.Errorf("limited answer without the warning: %+v", notes)
				}
			})
		}
	})

	t.Run("errors", func(t *testing.T) {
		at := time.UnixMilli(ts)
		for _, tc := range []struct {
			name      string
			call      func(c *sdk.Client) error
			path      string // the same request over HTTP, if any
			params    url.Values
			httpCode  int
			code      codes.Code
			invalid   bool   // errors.Is ErrInvalid
			retryable bool   // errors.Is ErrUnavailable
			text      string // in the message
		}{
			{name: "bad PromQL", code: codes.InvalidArgument, invalid: true, text: "unclosed left parenthesis",
				call: func(c *sdk.Client) error { _, err := c.Query(ctx, "sum(", at); return err },
				path: "/api/v1/query", params: url.Values{"query": {"sum("}, "time": {promTime(ts)}}, httpCode: 400},
			{name: "bad PromQL in a range query", code: codes.InvalidArgument, invalid: true, text: "unclosed left parenthesis",
				call: func(c *sdk.Client) error {
					_, err := c.QueryRange(ctx, "rate(x[5m]", time.UnixMilli(start), time.UnixMilli(end), time.Minute)
					return err
				},
				path: "/api/v1/query_range", params: url.Values{"query": {"rate(x[5m]"}, "start": {promTime(start)}, "end": {promTime(end)}, "step": {"60"}}, httpCode: 400},
			{name: "bad matcher", code: codes.InvalidArgument, invalid: true, text: `invalid parameter "match[]"`,
				call: func(c *sdk.Client) error {
					_, err := c.Series(ctx, []string{`{job=~"("}`}, time.Time{}, time.Time{})
					return err
				},
				path: "/api/v1/series", params: url.Values{"match[]": {`{job=~"("}`}}, httpCode: 400},
			{name: "matcher matching everything", code: codes.InvalidArgument, invalid: true, text: "at least one non-empty matcher",
				call: func(c *sdk.Client) error {
					_, err := c.LabelNames(ctx, []string{`{job=""}`}, time.Time{}, time.Time{})
					return err
				},
				path: "/api/v1/labels", params: url.Values{"match[]": {`{job=""}`}}, httpCode: 400},
			{name: "series without matchers", code: codes.InvalidArgument, invalid: true, text: "no match[] parameter provided",
				call: func(c *sdk.Client) error { _, err := c.Series(ctx, nil, time.Time{}, time.Time{}); return err },
				path: "/api/v1/series", params: url.Values{}, httpCode: 400},
			{name: "bad label name", code: codes.InvalidArgument, invalid: true, text: `invalid label name: ""`,
				call: func(c *sdk.Client) error { _, err := c.LabelValues(ctx, "", nil, time.Time{}, time.Time{}); return err }},
			{name: "start after end", code: codes.InvalidArgument, invalid: true, text: "end timestamp must not be before start time",
				call: func(c *sdk.Client) error {
					_, err := c.QueryRange(ctx, "sdkq_gauge", time.UnixMilli(end), time.UnixMilli(start), time.Minute)
					return err
				},
				path: "/api/v1/query_range", params: url.Values{"query": {"sdkq_gauge"}, "start": {promTime(end)}, "end": {promTime(start)}, "step": {"60"}}, httpCode: 400},
			{name: "zero step", code: codes.InvalidArgument, invalid: true, text: "zero or negative query resolution step",
				call: func(c *sdk.Client) error {
					_, err := c.QueryRange(ctx, "sdkq_gauge", time.UnixMilli(start), time.UnixMilli(end), 0)
					return err
				},
				path: "/api/v1/query_range", params: url.Values{"query": {"sdkq_gauge"}, "start": {promTime(start)}, "end": {promTime(end)}, "step": {"0"}}, httpCode: 400},
			{name: "too many points", code: codes.InvalidArgument, invalid: true, text: "exceeded maximum resolution of 11,000 points",
				call: func(c *sdk.Client) error {
					_, err := c.QueryRange(ctx, "sdkq_gauge", time.UnixMilli(start), time.UnixMilli(end), 100*time.Millisecond)
					return err
				},
				path: "/api/v1/query_range", params: url.Values{"query": {"sdkq_gauge"}, "start": {promTime(start)}, "end": {promTime(end)}, "step": {"0.1"}}, httpCode: 400},
			{name: "negative limit", code: codes.InvalidArgument, invalid: true, text: "limit must be non-negative",
				call: func(c *sdk.Client) error { _, err := c.Query(ctx, "sdkq_gauge", at, sdk.WithLimit(-1)); return err },
				path: "/api/v1/query", params: url.Values{"query": {"sdkq_gauge"}, "time": {promTime(ts)}, "limit": {"-1"}}, httpCode: 400},
			{name: "unknown resolution", code: codes.InvalidArgument, invalid: true, text: `invalid parameter "resolution": unknown resolution 9`,
				call: func(c *sdk.Client) error {
					_, err := c.Query(ctx, "sdkq_gauge", at, sdk.WithResolution(sdk.Resolution(9)))
					return err
				}},
			{name: "sample limit", code: codes.ResourceExhausted, text: "query processing would load too many samples into memory",
				call: func(c *sdk.Client) error {
					_, err := c.QueryRange(ctx, "sdkq_requests_total", time.UnixMilli(start), time.UnixMilli(end), time.Second)
					return err
				},
				path: "/api/v1/query_range", params: url.Values{"query": {"sdkq_requests_total"}, "start": {promTime(start)}, "end": {promTime(end)}, "step": {"1"}}, httpCode: 422},
			{name: "execution error", code: codes.FailedPrecondition, text: "many-to-many matching not allowed",
				call: func(c *sdk.Client) error {
					_, err := c.Query(ctx, "sdkq_requests_total + on(job) sdkq_requests_total", at)
					return err
				},
				path: "/api/v1/query", params: url.Values{"query": {"sdkq_requests_total + on(job) sdkq_requests_total"}, "time": {promTime(ts)}}, httpCode: 422},
			{name: "timeout", code: codes.DeadlineExceeded, text: "query timed out",
				call: func(c *sdk.Client) error {
					_, err := c.QueryRange(ctx, "sum(rate(sdkq_requests_total[5m]))", time.UnixMilli(start), time.UnixMilli(end), time.Minute, sdk.WithTimeout(time.Nanosecond))
					return err
				},
				path: "/api/v1/query_range", params: url.Values{"query": {"sum(rate(sdkq_requests_total[5m]))"}, "start": {promTime(start)}, "end": {promTime(end)}, "step": {"60"}, "timeout": {"0.000000001"}}, httpCode: 503},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := tc.call(c)
				var e *sdk.Error
				if !errors.As(err, &e) {
					t.Fatalf("error %v (%T), want an *sdk.Error", err, err)
				}
				if e.Code != tc.code || errors.Is(err, sdk.ErrInvalid) != tc.invalid || errors.Is(err, sdk.ErrUnavailable) != tc.retryable ||
					!strings.Contains(e.Message, tc.text) || e.Attempts != 1 {
					t.Fatalf("%v: code %s invalid %v retryable %v attempts %d; want %s, %v, %v, 1 attempt, saying %q",
						err, e.Code, errors.Is(err, sdk.ErrInvalid), e.Retryable, e.Attempts, tc.code, tc.invalid, tc.retryable, tc.text)
				}
				if tc.path == "" {
					return
				}
				code, a := promGet(t, base, tc.path, tc.params)
				if code != tc.httpCode || a.Error != e.Message {
					t.Errorf("HTTP %d %q, want %d with the SDK's text %q", code, a.Error, tc.httpCode, e.Message)
				}
			})
		}
	})

	t.Run("not retried", func(t *testing.T) {
		// With retries on, what retrying cannot fix is answered at once:
		// a bad query, the sample limit (no RetryInfo) and the query's own
		// timeout.
		rc, err := sdk.New(grpcAddr, sdk.WithBackoff(time.Millisecond, 10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		for _, call := range []func() error{
			func() error { _, err := rc.Query(ctx, "sum(", time.UnixMilli(ts)); return err },
			func() error {
				_, err := rc.QueryRange(ctx, "sdkq_requests_total", time.UnixMilli(start), time.UnixMilli(end), time.Second)
				return err
			},
			func() error {
				_, err := rc.QueryRange(ctx, "sum(rate(sdkq_requests_total[5m]))", time.UnixMilli(start), time.UnixMilli(end), time.Minute, sdk.WithTimeout(time.Nanosecond))
				return err
			},
		} {
			var e *sdk.Error
			if err := call(); !errors.As(err, &e) || e.Attempts != 1 || e.Retryable {
				t.Errorf("%v: want one attempt, not retryable", err)
			}
		}
	})
}

func canonSeries(sets [][]sdk.Label) []string {
	out := make([]string, len(sets))
	for i, s := range sets {
		out[i] = canonLabels(sdkLabels(s))
	}
	return out
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/vigil-tsdb/vigil/model"
)

func newTestEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:           1_000_000,
		Timeout:              time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		Parser:               parser.NewParser(parser.Options{}),
	})
}

// t0 is the first sample time of the test data, in seconds.
const t0 = 1_700_000_000

// testStorage holds, every 15 s for 10 minutes from t0: up{job="a"} = 1,
// up{job="b"} = 0, a counter rising by 15 per step and a gauge.
func testStorage() *memStorage {
	var upA, upB, ctr, g []float64
	for i := 0; i <= 40; i++ {
		ts := float64((t0 + 15*i) * 1000)
		upA = append(upA, ts, 1)
		upB = append(upB, ts, 0)
		ctr = append(ctr, ts, float64(15*i))
		g = append(g, ts, float64(i%3)-0.5)
	}
	return newMemStorage(
		series([]string{"__name__", "up", "instance", "h1:9100", "job", "a"}, upA...),
		series([]string{"__name__", "up", "instance", "h2:9100", "job", "b"}, upB...),
		series([]string{"__name__", "http_requests_total", "code", "200", "job", "a"}, ctr...),
		series([]string{"__name__", "temperature", "room", "<lab> & co"}, g...),
	)
}

func get(t *testing.T, h http.Handler, path string, params url.Values) (int, string) {
	t.Helper()
	w := do(t, h, request{method: http.MethodGet, target: path + "?" + params.Encode()})
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	return w.Code, w.Body.String()
}

func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// Expected bodies are written as Prometheus 3.x answers for the same data
// (the encoders themselves are checked against Prometheus' codec in
// json_test.go); TestPrometheusInterop compares with a live Prometheus.
func TestQueryAPI(t *testing.T) {
	a, _ := newTestAPI(t, nil, testStorage(), nil)
	h := a.Handler()
	at := fmt.Sprint(t0 + 307) // between samples
	tests := []struct {
		name     string
		path     string
		params   url.Values
		wantCode int
		want     string
	}{
		{
			name: "instant vector", path: "/api/v1/query", params: vals("query", "up", "time", at),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"h1:9100","job":"a"},"value":[1700000307,"1"]},{"metric":{"__name__":"up","instance":"h2:9100","job":"b"},"value":[1700000307,"0"]}]}}`,
		},
		{
			name: "instant vector, fractional time", path: "/api/v1/query", params: vals("query", `up{job="a"}`, "time", "1700000307.25"),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"h1:9100","job":"a"},"value":[1700000307.250,"1"]}]}}`,
		},
		{
			name: "rfc3339 time and rate", path: "/api/v1/query", params: vals("query", "rate(http_requests_total[1m])", "time", "2023-11-14T22:18:07Z"),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"code":"200","job":"a"},"value":[1700000287,"0.9999999999999999"]}]}}`,
		},
		{
			name: "scalar", path: "/api/v1/query", params: vals("query", "1/3", "time", "1700000000.01"),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"scalar","result":[1700000000.01,"0.3333333333333333"]}}`,
		},
		{
			name: "string", path: "/api/v1/query", params: vals("query", `"a<b"`, "time", at),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"string","result":[1700000307,"a\u003cb"]}}`,
		},
		{
			name: "empty vector", path: "/api/v1/query", params: vals("query", "nothing_here", "time", at),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"vector","result":[]}}`,
		},
		{
			name: "labels are not HTML-escaped in results", path: "/api/v1/query", params: vals("query", "temperature", "time", at),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"temperature","room":"<lab> & co"},"value":[1700000307,"1.5"]}]}}`,
		},
		{
			name: "range query", path: "/api/v1/query_range", params: vals("query", `up{job="b"}`, "start", fmt.Sprint(t0+1), "end", fmt.Sprint(t0+61), "step", "30"),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"h2:9100","job":"b"},"values":[[1700000001,"0"],[1700000031,"0"],[1700000061,"0"]]}]}}`,
		},
		{
			name: "range query with duration step and limit", path: "/api/v1/query_range", params: vals("query", `up`, "start", fmt.Sprint(t0+1), "end", fmt.Sprint(t0+2), "step", "1s", "limit", "1"),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"h1:9100","job":"a"},"values":[[1700000001,"1"],[1700000002,"1"]]}]},"warnings":["results truncated due to limit"]}`,
		},
		{
			name: "range query of a scalar", path: "/api/v1/query_range", params: vals("query", `2.5`, "start", "1700000000.5", "end", "1700000001", "step", "0.5"),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000.500,"2.5"],[1700000001,"2.5"]]}]}}`,
		},
		{
			name: "limit on instant query", path: "/api/v1/query", params: vals("query", "up", "time", at, "limit", "1"),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"h1:9100","job":"a"},"value":[1700000307,"1"]}]},"warnings":["results truncated due to limit"]}`,
		},
		{
			name: "warning annotation", path: "/api/v1/query", params: vals("query", "quantile(2, up)", "time", at),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000307,"+Inf"]}]},"warnings":["PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"]}`,
		},
		{
			name: "info annotation", path: "/api/v1/query", params: vals("query", "rate(temperature[1m])", "time", at),
			wantCode: 200,
			want:     `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"room":"<lab> & co"},"value":[1700000307,"0.033333333333333326"]}]},"infos":["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"temperature\" (1:6)"]}`,
		},

		// Errors.
		{
			name: "empty query", path: "/api/v1/query", params: vals("time", at), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": unknown position: parse error: no expression found in input"}`,
		},
		{
			name: "syntax error", path: "/api/v1/query", params: vals("query", "sum(up"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:7: parse error: unclosed left parenthesis"}`,
		},
		{
			name: "bad time", path: "/api/v1/query", params: vals("query", "up", "time", "later"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"time\": invalid time value for 'time': cannot parse \"later\" to a valid timestamp"}`,
		},
		{
			name: "bad limit", path: "/api/v1/query", params: vals("query", "up", "limit", "-1"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\": limit must be non-negative"}`,
		},
		{
			name: "bad timeout", path: "/api/v1/query", params: vals("query", "up", "timeout", "soon"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration"}`,
		},
		{
			name: "bad lookback", path: "/api/v1/query", params: vals("query", "up", "lookback_delta", "x"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"error parsing lookback delta duration: cannot parse \"x\" to a valid duration"}`,
		},
		{
			name: "execution error", path: "/api/v1/query", params: vals("query", "up * on() up", "time", at), wantCode: 422,
			want: `{"status":"error","errorType":"execution","error":"found duplicate series for the match group {} on the right hand-side of the operation: [{__name__=\"up\", instance=\"h1:9100\", job=\"a\"}, {__name__=\"up\", instance=\"h2:9100\", job=\"b\"}];many-to-many matching not allowed: matching labels must be unique on one side"}`,
		},
		{
			name: "range: missing start", path: "/api/v1/query_range", params: vals("query", "up", "end", "1", "step", "1"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": cannot parse \"\" to a valid timestamp"}`,
		},
		{
			name: "range: end before start", path: "/api/v1/query_range", params: vals("query", "up", "start", "10", "end", "5", "step", "1"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"end\": end timestamp must not be before start time"}`,
		},
		{
			name: "range: zero step", path: "/api/v1/query_range", params: vals("query", "up", "start", "1", "end", "5", "step", "0"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"}`,
		},
		{
			name: "range: too many points", path: "/api/v1/query_range", params: vals("query", "up", "start", "0", "end", "11001", "step", "1"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"}`,
		},
		{
			name: "range: 11000 points is fine", path: "/api/v1/query_range", params: vals("query", "vector(1) > 2", "start", "0", "end", "11000", "step", "1"), wantCode: 200,
			want: `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, h, tc.path, tc.params)
			if code != tc.wantCode || body != tc.want {
				t.Errorf("got %d\n%s\nwant %d\n%s", code, body, tc.wantCode, tc.want)
			}
		})
	}
}

func TestQueryPOSTForm(t *testing.T) {
	a, _ := newTestAPI(t, nil, testStorage(), nil)
	form := vals("query", `up{job="b"}`, "time", fmt.Sprint(t0+7))
	w := do(t, a.Handler(), request{target: "/api/v1/query", body: []byte(form.Encode()),
		headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	want := `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"h2:9100","job":"b"},"value":[1700000007,"0"]}]}}`
	if w.Code != 200 || w.Body.String() != want {
		t.Errorf("got %d %s", w.Code, w.Body)
	}
	t.Run("form too large", func(t *testing.T) {
		a, _ := newTestAPI(t, nil, testStorage(), func(c *Config) { c.MaxQueryFormBytes = 10 })
		w := do(t, a.Handler(), request{target: "/api/v1/query", body: []byte(form.Encode()),
			headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"error parsing form values: http: request body too large"`) {
			t.Errorf("got %d %s", w.Code, w.Body)
		}
	})
}

func TestQueryStats(t *testing.T) {
	a, _ := newTestAPI(t, nil, testStorage(), nil)
	_, body := get(t, a.Handler(), "/api/v1/query", vals("query", "up", "time", fmt.Sprint(t0+10), "stats", "true"))
	for _, s := range []string{`"stats":{"timings":{"evalTotalTime":`, `"samples":{"totalQueryableSamples":2,"samplesRead":2,"peakSamples":2}`} {
		if !strings.Contains(body, s) {
			t.Errorf("body does not contain %s:\n%s", s, body)
		}
	}
	_, body = get(t, a.Handler(), "/api/v1/query", vals("query", "up", "time", fmt.Sprint(t0+10), "stats", "yes"))
	if !strings.Contains(body, `"warnings":["value \"yes\" for parameter \"stats\" is deprecated`) || !strings.Contains(body, `"stats":{`) {
		t.Errorf("deprecated stats value: %s", body)
	}
}

func TestQueryErrorsFromStorage(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantType string
	}{
		{name: "unavailable", err: fmt.Errorf("2 of 3 ingesters down: %w", model.ErrUnavailable), wantCode: 503, wantType: "unavailable"},
		{name: "bad data", err: model.BadData("matchers", errors.New("too broad")), wantCode: 400, wantType: "bad_data"},
		{name: "other", err: errors.New("chunk checksum mismatch"), wantCode: 422, wantType: "execution"},
		{name: "deadline", err: context.DeadlineExceeded, wantCode: 503, wantType: "timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := testStorage()
			st.selectErr = tc.err
			a, _ := newTestAPI(t, nil, st, nil)
			for _, q := range []struct {
				path   string
				params url.Values
			}{
				{"/api/v1/query", vals("query", "up", "time", fmt.Sprint(t0))},
				{"/api/v1/series", vals("match[]", "up")},
				{"/api/v1/labels", nil},
				{"/api/v1/label/job/values", nil},
			} {
				code, body := get(t, a.Handler(), q.path, q.params)
				if code != tc.wantCode || !strings.Contains(body, `"errorType":"`+tc.wantType+`"`) || !strings.Contains(body, tc.err.Error()) {
					t.Errorf("%s: got %d %s, want %d %s", q.path, code, body, tc.wantCode, tc.wantType)
				}
			}
		})
	}
}

func TestQueryTimeout(t *testing.T) {
	a, _ := newTestAPI(t, nil, testStorage(), func(c *Config) { c.QueryTimeout = time.Nanosecond })
	code, body := get(t, a.Handler(), "/api/v1/query", vals("query", "up", "time", fmt.Sprint(t0)))
	if code != 503 || !strings.Contains(body, `"errorType":"timeout","error":"query timed out in`) {
		t.Errorf("config timeout: got %d %s", code, body)
	}
	a, _ = newTestAPI(t, nil, testStorage(), nil)
	code, body = get(t, a.Handler(), "/api/v1/query_range", vals("query", "up", "start", "0", "end", "100", "step", "1", "timeout", "0.000000001"))
	if code != 503 || !strings.Contains(body, `"errorType":"timeout"`) {
		t.Errorf("timeout parameter: got %d %s", code, body)
	}
}

func TestQueryErrorClasses(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want errorType
		code int
	}{
		{name: "canceled", err: promql.ErrQueryCanceled("x"), want: errCanceled, code: 503},
		{name: "timeout", err: promql.ErrQueryTimeout("x"), want: errTimeout, code: 503},
		{name: "storage", err: promql.ErrStorage{Err: errors.New("disk")}, want: errInternal, code: 500},
		{name: "storage unavailable", err: promql.ErrStorage{Err: model.ErrUnavailable}, want: errUnavailable, code: 503},
		{name: "overloaded", err: fmt.Errorf("q: %w", model.ErrOverloaded), want: errUnavailable, code: 503},
		{name: "context canceled", err: context.Canceled, want: errCanceled, code: 503},
		{name: "too many samples", err: promql.ErrTooManySamples("x"), want: errExec, code: 422},
		{name: "other", err: errors.New("x"), want: errExec, code: 422},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := queryError(tc.err)
			if got.typ != tc.want || got.typ.httpCode() != tc.code {
				t.Errorf("queryError(%v) = %s (%d), want %s (%d)", tc.err, got.typ, got.typ.httpCode(), tc.want, tc.code)
			}
		})
	}
}

func TestSeriesAndLabels(t *testing.T) {
	a, _ := newTestAPI(t, nil, testStorage(), nil)
	h := a.Handler()
	tests := []struct {
		name     string
		path     string
		params   url.Values
		wantCode int
		want     string
	}{
		{
			name: "series", path: "/api/v1/series", params: vals("match[]", "up"), wantCode: 200,
			want: `{"status":"success","data":[{"__name__":"up","instance":"h1:9100","job":"a"},{"__name__":"up","instance":"h2:9100","job":"b"}]}`,
		},
		{
			name: "series, two selectors merged", path: "/api/v1/series", params: vals("match[]", `up{job="b"}`, "match[]", `{__name__=~"up|temperature"}`), wantCode: 200,
			want: `{"status":"success","data":[{"__name__":"temperature","room":"<lab> & co"},{"__name__":"up","instance":"h1:9100","job":"a"},{"__name__":"up","instance":"h2:9100","job":"b"}]}`,
		},
		{
			name: "series in a time range without data", path: "/api/v1/series", params: vals("match[]", "up", "start", "0", "end", "100"), wantCode: 200,
			want: `{"status":"success","data":[]}`,
		},
		{
			name: "series limit", path: "/api/v1/series", params: vals("match[]", "up", "limit", "1"), wantCode: 200,
			want: `{"status":"success","data":[{"__name__":"up","instance":"h1:9100","job":"a"}],"warnings":["results truncated due to limit"]}`,
		},
		{
			name: "series without match", path: "/api/v1/series", wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"no match[] parameter provided"}`,
		},
		{
			name: "series with empty matcher", path: "/api/v1/series", params: vals("match[]", `{job=~".*"}`), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"match[]\": match[] must contain at least one non-empty matcher"}`,
		},
		{
			name: "series bad start", path: "/api/v1/series", params: vals("match[]", "up", "start", "x"), wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid parameter \"start\": invalid time value for 'start': cannot parse \"x\" to a valid timestamp"}`,
		},
		{
			name: "labels", path: "/api/v1/labels", wantCode: 200,
			want: `{"status":"success","data":["__name__","code","instance","job","room"]}`,
		},
		{
			name: "labels with matchers", path: "/api/v1/labels", params: vals("match[]", "temperature", "match[]", `up{job="a"}`), wantCode: 200,
			want: `{"status":"success","data":["__name__","instance","job","room"]}`,
		},
		{
			name: "labels limit", path: "/api/v1/labels", params: vals("limit", "2"), wantCode: 200,
			want: `{"status":"success","data":["__name__","code"],"warnings":["results truncated due to limit"]}`,
		},
		{
			name: "label values", path: "/api/v1/label/job/values", wantCode: 200,
			want: `{"status":"success","data":["a","b"]}`,
		},
		{
			name: "label values HTML-escaped", path: "/api/v1/label/room/values", wantCode: 200,
			want: `{"status":"success","data":["\u003clab\u003e \u0026 co"]}`,
		},
		{
			name: "label values with matcher", path: "/api/v1/label/job/values", params: vals("match[]", `up{instance="h2:9100"}`), wantCode: 200,
			want: `{"status":"success","data":["b"]}`,
		},
		{
			name: "metric names", path: "/api/v1/label/__name__/values", wantCode: 200,
			want: `{"status":"success","data":["http_requests_total","temperature","up"]}`,
		},
		{
			name: "escaped label name", path: "/api/v1/label/U__j_6f_b/values", wantCode: 200,
			want: `{"status":"success","data":["a","b"]}`,
		},
		{
			name: "unknown label", path: "/api/v1/label/nope/values", wantCode: 200,
			want: `{"status":"success","data":[]}`,
		},
		{
			name: "invalid label name", path: "/api/v1/label/%ff/values", wantCode: 400,
			want: `{"status":"error","errorType":"bad_data","error":"invalid label name: \"\\xff\""}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, h, tc.path, tc.params)
			if code != tc.wantCode || body != tc.want {
				t.Errorf("got %d\n%s\nwant %d\n%s", code, body, tc.wantCode, tc.want)
			}
		})
	}
}

type funcStatus struct {
	f func(ctx context.Context, limit int) (model.TSDBStatus, error)
}

func (s funcStatus) TSDBStatus(ctx context.Context, limit int) (model.TSDBStatus, error) {
	return s.f(ctx, limit)
}

func TestStatusEndpoints(t *testing.T) {
	var gotLimit int
	status := funcStatus{f: func(_ context.Context, limit int) (model.TSDBStatus, error) {
		gotLimit = limit
		return model.TSDBStatus{
			NumSeries: 3, MinTime: 1000, MaxTime: 2000, NumLabelPairs: 7,
			SeriesCountByMetricName:     []model.NameCount{{Name: "up", Value: 2}, {Name: "x", Value: 1}},
			LabelValueCountByLabelName:  []model.NameCount{{Name: "job", Value: 2}},
			MemoryInBytesByLabelName:    []model.NameCount{{Name: "job", Value: 2}},
			SeriesCountByLabelValuePair: []model.NameCount{{Name: "job=a", Value: 1}},
		}, nil
	}}
	reg := newTestRegistry()
	a, err := New(DefaultConfig(), nil, testStorage(), newTestEngine(), status, nil, reg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	a.SetStatusSources(func() string { return "global:\n  scrape_interval: 15s\n" }, map[string]string{"data.dir": "./data"})
	h := a.Handler()

	code, body := get(t, h, "/api/v1/status/tsdb", nil)
	want := `{"status":"success","data":{"headStats":{"numSeries":3,"numLabelPairs":7,"chunkCount":0,"minTime":1000,"maxTime":2000},"seriesCountByMetricName":[{"name":"up","value":2},{"name":"x","value":1}],"labelValueCountByLabelName":[{"name":"job","value":2}],"memoryInBytesByLabelName":[{"name":"job","value":2}],"seriesCountByLabelValuePair":[{"name":"job=a","value":1}]}}`
	if code != 200 || body != want || gotLimit != 10 {
		t.Errorf("tsdb: got %d (limit %d)\n%s\nwant\n%s", code, gotLimit, body, want)
	}
	if _, _ = get(t, h, "/api/v1/status/tsdb", vals("limit", "3")); gotLimit != 3 {
		t.Errorf("limit 3 passed as %d", gotLimit)
	}
	for _, tc := range []struct{ limit, want string }{
		{"0", "limit must be a positive number"},
		{"x", "limit must be a positive number"},
		{"10001", "limit must not exceed 10000"},
	} {
		if code, body := get(t, h, "/api/v1/status/tsdb", vals("limit", tc.limit)); code != 400 || !strings.Contains(body, tc.want) {
			t.Errorf("limit %s: got %d %s", tc.limit, code, body)
		}
	}

	for _, tc := range []struct {
		path   string
		params url.Values
		want   string
	}{
		{"/api/v1/metadata", nil, `{"status":"success","data":{}}`},
		{"/api/v1/metadata", vals("limit", "x"), `{"status":"error","errorType":"bad_data","error":"limit must be a number"}`},
		{"/api/v1/status/config", nil, `{"status":"success","data":{"yaml":"global:\n  scrape_interval: 15s\n"}}`},
		{"/api/v1/status/flags", nil, `{"status":"success","data":{"data.dir":"./data"}}`},
		{"/api/v1/query_exemplars", vals("query", "up"), `{"status":"success","data":[]}`},
		{"/api/v1/format_query", vals("query", "sum(rate(x[5m]))by(job)"), `{"status":"success","data":"sum by (job) (rate(x[5m]))"}`},
	} {
		if _, body := get(t, h, tc.path, tc.params); body != tc.want {
			t.Errorf("%s: got\n%s\nwant\n%s", tc.path, body, tc.want)
		}
	}

	Version, Revision = "1.2.3", "abc"
	defer func() { Version, Revision = "", "" }()
	_, body = get(t, h, "/api/v1/status/buildinfo", nil)
	if !strings.HasPrefix(body, `{"status":"success","data":{"version":"1.2.3","revision":"abc","branch":"","buildUser":"","buildDate":"","goVersion":"go1.`) {
		t.Errorf("buildinfo: %s", body)
	}
}

func TestStatusTSDBUnavailable(t *testing.T) {
	a, _ := newTestAPI(t, nil, testStorage(), nil)
	code, body := get(t, a.Handler(), "/api/v1/status/tsdb", nil)
	if code != 503 || body != `{"status":"error","errorType":"unavailable","error":"this node keeps no cardinality statistics"}` {
		t.Errorf("got %d %s", code, body)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	a, _ := newTestAPI(t, nil, testStorage(), nil)
	var notReady error = errors.New("replaying WAL")
	a.ready = func() error { return notReady }
	h := a.Handler()

	w := do(t, h, request{method: http.MethodGet, target: "/-/healthy"})
	if w.Code != 200 || w.Body.String() != "Vigil is Healthy.\n" {
		t.Errorf("healthy: %d %q", w.Code, w.Body)
	}
	w = do(t, h, request{method: http.MethodGet, target: "/-/ready"})
	if w.Code != 503 || w.Body.String() != "Vigil is not ready: replaying WAL\n" {
		t.Errorf("ready while not ready: %d %q", w.Code, w.Body)
	}
	code, body := get(t, h, "/api/v1/query", vals("query", "up"))
	if code != 503 || body != `{"status":"error","errorType":"unavailable","error":"not ready: replaying WAL"}` {
		t.Errorf("query while not ready: %d %s", code, body)
	}
	if code, _ := get(t, h, "/api/v1/status/buildinfo", nil); code != 200 {
		t.Errorf("buildinfo while not ready: %d", code)
	}

	notReady = nil
	w = do(t, h, request{method: http.MethodGet, target: "/-/ready"})
	if w.Code != 200 || w.Body.String() != "Vigil is Ready.\n" {
		t.Errorf("ready: %d %q", w.Code, w.Body)
	}
	w = do(t, h, request{method: http.MethodHead, target: "/-/ready"})
	if w.Code != 200 {
		t.Errorf("HEAD ready: %d", w.Code)
	}
	w = do(t, h, request{method: http.MethodGet, target: "/metrics"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), `vigil_api_requests_total{code="503",handler="/-/ready"} 1`) {
		t.Errorf("metrics: %d\n%s", w.Code, w.Body)
	}
	w = do(t, h, request{method: http.MethodGet, target: "/ping"})
	if w.Code != 204 {
		t.Errorf("ping: %d", w.Code)
	}
	w = do(t, h, request{method: http.MethodGet, target: "/api/v1/nonexistent"})
	if w.Code != 404 {
		t.Errorf("unknown path: %d", w.Code)
	}
}

func TestNoQuerier(t *testing.T) {
	a, _ := newTestAPI(t, &validatingPusher{}, nil, nil)
	code, body := get(t, a.Handler(), "/api/v1/query", vals("query", "up"))
	if code != 503 || !strings.Contains(body, "this node does not answer queries") {
		t.Errorf("got %d %s", code, body)
	}
	if _, err := New(DefaultConfig(), nil, testStorage(), nil, nil, nil, nil, nil, nil); err == nil {
		t.Error("New accepted a queryable without an engine")
	}
}

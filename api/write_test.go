package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-tsdb/vigil/model"
)

// testNow is the fixed clock of handler tests.
var testNow = time.Unix(1_700_000_000, 0)

// newTestAPI builds an API with a real PromQL engine over st (if not
// nil) and the given pusher; cfg changes DefaultConfig.
func newTestAPI(t *testing.T, pusher Pusher, st *memStorage, cfg func(*Config)) (*API, *prometheus.Registry) {
	t.Helper()
	c := DefaultConfig()
	if cfg != nil {
		cfg(&c)
	}
	reg := prometheus.NewRegistry()
	var (
		a   *API
		err error
	)
	if st != nil {
		a, err = New(c, pusher, st, newTestEngine(), nil, nil, reg, nil, reg)
	} else {
		a, err = New(c, pusher, nil, nil, nil, nil, reg, nil, reg)
	}
	if err != nil {
		t.Fatal(err)
	}
	a.now = func() time.Time { return testNow }
	return a, reg
}

type request struct {
	method  string
	target  string
	body    []byte
	headers map[string]string
}

func do(t *testing.T, h http.Handler, req request) *httptest.ResponseRecorder {
	t.Helper()
	if req.method == "" {
		req.method = http.MethodPost
	}
	r := httptest.NewRequest(req.method, req.target, bytes.NewReader(req.body))
	for k, v := range req.headers {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var rwHeaders = map[string]string{
	"Content-Encoding":                  "snappy",
	"Content-Type":                      "application/x-protobuf",
	"X-Prometheus-Remote-Write-Version": "0.1.0",
}

// TestRemoteWriteBadInput covers each class of bad input: request-level
// problems refuse the whole request; per-series and per-sample problems
// come back from the (validating) Pusher as rejections, the valid part of
// the request being stored.
func TestRemoteWriteBadInput(t *testing.T) {
	nowMs := testNow.UnixMilli()
	good := series([]string{"__name__", "up", "job", "ok"}, float64(nowMs), 1)
	raw := func(ts ...prompb.TimeSeries) []byte {
		return snappy.Encode(nil, marshalWriteRequest(t, &prompb.WriteRequest{Timeseries: ts}))
	}
	sample := []prompb.Sample{{Timestamp: nowMs, Value: 1}}
	tests := []struct {
		name       string
		body       []byte
		headers    map[string]string
		wantCode   int
		wantBody   []string // substrings of the response body
		wantStored int      // samples the pusher stored
	}{
		{name: "valid", body: encodeRemoteWrite(t, []model.Series{good}), wantCode: 204, wantStored: 1},
		{name: "empty request", body: encodeRemoteWrite(t, nil), wantCode: 204},
		{name: "corrupt snappy", body: []byte("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"), wantCode: 400, wantBody: []string{"snappy body: corrupt snappy block of 11 bytes"}},
		{name: "bad protobuf", body: snappy.Encode(nil, []byte{0x0a, 0x10, 0x0a}), wantCode: 400, wantBody: []string{"remote write protobuf: 3 bytes do not decode as prometheus.WriteRequest"}},
		{name: "native histograms refuse the request", body: raw(prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}, Histograms: []prompb.Histogram{{Timestamp: nowMs}}}), wantCode: 400, wantBody: []string{"native histograms are not supported yet"}},
		{
			name:     "empty label set",
			body:     raw(prompb.TimeSeries{Samples: sample}, toWriteRequest([]model.Series{good}).Timeseries[0]),
			wantCode: 400, wantStored: 1,
			wantBody: []string{"rejected 1 of 2 samples (1 stored, 0 exact duplicates dropped)", "reason=invalid_labels series={}: series has no labels"},
		},
		{
			name:     "duplicate label names",
			body:     raw(prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "m"}, {Name: "a", Value: "1"}, {Name: "a", Value: "2"}}, Samples: sample}),
			wantCode: 400,
			wantBody: []string{"rejected 1 of 1 samples", `reason=invalid_labels`, `duplicate label name "a"`},
		},
		{
			name:     "invalid metric name",
			body:     raw(prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "1bad.name"}}, Samples: sample}),
			wantCode: 400,
			wantBody: []string{"reason=invalid_metric_name", `invalid metric name "1bad.name"`},
		},
		{
			name:     "missing metric name",
			body:     raw(prompb.TimeSeries{Labels: []prompb.Label{{Name: "job", Value: "x"}}, Samples: sample}),
			wantCode: 400,
			wantBody: []string{"reason=missing_metric_name", "series has no __name__ label"},
		},
		{
			name: "NaN and Inf values",
			body: encodeRemoteWrite(t, []model.Series{
				series([]string{"__name__", "m"}, float64(nowMs), math.NaN(), float64(nowMs+1), math.Inf(1), float64(nowMs+2), 5, float64(nowMs+3), math.Float64frombits(value.StaleNaN)),
			}),
			wantCode: 400, wantStored: 2,
			wantBody: []string{
				"rejected 2 of 4 samples (2 stored",
				fmt.Sprintf(`reason=invalid_value series={__name__="m"} timestamp=%d: value NaN`, nowMs),
				fmt.Sprintf(`reason=invalid_value series={__name__="m"} timestamp=%d: value +Inf`, nowMs+1),
			},
		},
		{
			name:     "too far in the future",
			body:     encodeRemoteWrite(t, []model.Series{good, series([]string{"__name__", "late"}, float64(nowMs+time.Hour.Milliseconds()), 1)}),
			wantCode: 400, wantStored: 1,
			wantBody: []string{fmt.Sprintf(`reason=too_far_in_future series={__name__="late"} timestamp=%d: timestamp %d is 1h0m0s past the server's clock, limit is 10m0s`, nowMs+3600000, nowMs+3600000)},
		},
		{name: "content-encoding gzip", body: encodeRemoteWrite(t, []model.Series{good}), headers: map[string]string{"Content-Encoding": "gzip"}, wantCode: 415, wantBody: []string{`Content-Encoding "gzip"; remote write needs snappy`}},
		{name: "remote write 2.0", body: encodeRemoteWrite(t, []model.Series{good}), headers: map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}, wantCode: 415, wantBody: []string{`only remote write 1.0`}},
		{name: "json content type", body: []byte("{}"), headers: map[string]string{"Content-Type": "application/json"}, wantCode: 415, wantBody: []string{"needs application/x-protobuf"}},
		{name: "no headers at all is snappy protobuf", body: encodeRemoteWrite(t, []model.Series{good}), headers: map[string]string{"Content-Encoding": "", "Content-Type": ""}, wantCode: 204, wantStored: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &validatingPusher{now: nowMs}
			a, _ := newTestAPI(t, p, nil, nil)
			h := map[string]string{}
			for k, v := range rwHeaders {
				h[k] = v
			}
			for k, v := range tc.headers {
				h[k] = v
			}
			w := do(t, a.Handler(), request{target: "/api/v1/write", body: tc.body, headers: h})
			if w.Code != tc.wantCode {
				t.Fatalf("code %d, want %d; body %q", w.Code, tc.wantCode, w.Body)
			}
			for _, s := range tc.wantBody {
				if !strings.Contains(w.Body.String(), s) {
					t.Errorf("body %q does not contain %q", w.Body, s)
				}
			}
			if got := model.CountSamples(p.stored()); got != tc.wantStored {
				t.Errorf("stored %d samples, want %d", got, tc.wantStored)
			}
			if w.Code >= 400 && w.Header().Get("Retry-After") != "" {
				t.Errorf("non-retryable %d carries Retry-After", w.Code)
			}
		})
	}
}

func TestRemoteWriteSizeLimits(t *testing.T) {
	p := &validatingPusher{now: testNow.UnixMilli()}
	a, _ := newTestAPI(t, p, nil, func(c *Config) {
		c.MaxBodyBytes = 1000
		c.MaxDecodedBodyBytes = 2000
	})
	big := []model.Series{series([]string{"__name__", "m", "v", strings.Repeat("x", 5000)}, 1, 1)}
	compressible := encodeRemoteWrite(t, big) // small on the wire, 5 kB decoded
	if len(compressible) > 1000 {
		t.Fatalf("test body of %d bytes is not under the wire limit", len(compressible))
	}
	random := make([]byte, 1500)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name     string
		body     []byte
		chunked  bool
		wantCode int
		wantBody string
	}{
		{name: "over wire limit by content-length", body: snappy.Encode(nil, random), wantCode: 413, wantBody: "body of 15"},
		{name: "over wire limit, chunked", body: snappy.Encode(nil, random), chunked: true, wantCode: 413, wantBody: "body larger than the limit of 1000 bytes"},
		{name: "over decoded limit", body: compressible, wantCode: 413, wantBody: "snappy body decodes to 50"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(tc.body))
			if tc.chunked {
				r.ContentLength = -1
				r.Body = io.NopCloser(bytes.NewReader(tc.body))
			}
			w := httptest.NewRecorder()
			a.Handler().ServeHTTP(w, r)
			if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", w.Code, w.Body, tc.wantCode, tc.wantBody)
			}
			if !strings.Contains(w.Body.String(), "request too large") {
				t.Errorf("body %q does not name the error class", w.Body)
			}
		})
	}
	if n := len(p.stored()); n != 0 {
		t.Errorf("stored %d series from refused requests", n)
	}
	if got := metricValue(t, a.metrics.requests.WithLabelValues("/api/v1/write", "413")); got != 3 {
		t.Errorf("vigil_api_requests_total{code=413} = %v, want 3", got)
	}
}

// TestWriteStatus is the table of the one function mapping push errors to
// HTTP status codes.
func TestWriteStatus(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantCode  int
		wantRetry bool
	}{
		{name: "bad data", err: model.BadData("x", errors.New("y")), wantCode: 400},
		{name: "wrapped bad data", err: fmt.Errorf("push: %w", model.ErrBadData), wantCode: 400},
		{name: "too large", err: fmt.Errorf("%w: 5 > 4", model.ErrTooLarge), wantCode: 413},
		{name: "overloaded", err: model.ErrOverloaded, wantCode: 429, wantRetry: true},
		{name: "unavailable", err: fmt.Errorf("wal: %w", model.ErrUnavailable), wantCode: 503, wantRetry: true},
		{name: "unknown", err: errors.New("boom"), wantCode: 503, wantRetry: true},
		{name: "canceled", err: context.Canceled, wantCode: 503, wantRetry: true},
		{name: "unsupported media type", err: errUnsupportedMediaType, wantCode: 415},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, retry := writeStatus(tc.err)
			if code != tc.wantCode || retry != tc.wantRetry {
				t.Errorf("writeStatus(%v) = %d, %v; want %d, %v", tc.err, code, retry, tc.wantCode, tc.wantRetry)
			}
		})
	}
}

func TestPusherErrors(t *testing.T) {
	body := encodeRemoteWrite(t, []model.Series{series([]string{"__name__", "m"}, 1, 1, 2, 2)})
	tests := []struct {
		name       string
		err        error
		wantCode   int
		wantRetry  string
		wantBody   string
		wantReason string
	}{
		{name: "overloaded", err: fmt.Errorf("%w: 100 requests in flight", model.ErrOverloaded), wantCode: 429, wantRetry: "2", wantBody: "overloaded: 100 requests in flight", wantReason: reasonOverloaded},
		{name: "unavailable", err: fmt.Errorf("%w: quorum not reached", model.ErrUnavailable), wantCode: 503, wantRetry: "2", wantBody: "unavailable: quorum not reached", wantReason: reasonUnavailable},
		{name: "other", err: errors.New("disk on fire"), wantCode: 503, wantRetry: "2", wantBody: "disk on fire", wantReason: reasonUnavailable},
		{name: "too large", err: fmt.Errorf("%w: 2 samples, limit 1", model.ErrTooLarge), wantCode: 413, wantBody: "2 samples, limit 1", wantReason: reasonTooLarge},
		{name: "bad data", err: model.BadData("batch", errors.New("nope")), wantCode: 400, wantBody: "batch: nope", wantReason: reasonInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := funcPusher{push: func(context.Context, []model.Series) (model.PushResult, error) {
				return model.PushResult{}, tc.err
			}}
			a, _ := newTestAPI(t, p, nil, nil)
			w := do(t, a.Handler(), request{target: "/api/v1/write", body: body, headers: rwHeaders})
			if w.Code != tc.wantCode || w.Header().Get("Retry-After") != tc.wantRetry || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Fatalf("got %d Retry-After %q body %q; want %d %q containing %q",
					w.Code, w.Header().Get("Retry-After"), w.Body, tc.wantCode, tc.wantRetry, tc.wantBody)
			}
			if got := metricValue(t, a.metrics.rejected.WithLabelValues(tc.wantReason)); got != 2 {
				t.Errorf("rejected{reason=%q} = %v, want 2", tc.wantReason, got)
			}
		})
	}
}

func TestRejectionBodyListsAtMostTen(t *testing.T) {
	p := funcPusher{push: func(_ context.Context, batch []model.Series) (model.PushResult, error) {
		var res model.PushResult
		for _, s := range batch {
			for _, smp := range s.Samples {
				res.Reject(1, model.Rejection{Reason: model.ReasonTooOld, Series: s.Labels.String(), T: smp.T, Message: "too old"})
			}
		}
		return res, nil
	}}
	a, _ := newTestAPI(t, p, nil, nil)
	var tv []float64
	for i := 1; i <= 25; i++ {
		tv = append(tv, float64(i), 1)
	}
	w := do(t, a.Handler(), request{target: "/api/v1/write", body: encodeRemoteWrite(t, []model.Series{series([]string{"__name__", "m"}, tv...)}), headers: rwHeaders})
	if w.Code != 400 {
		t.Fatalf("code %d", w.Code)
	}
	body := w.Body.String()
	if n := strings.Count(body, "reason=too_old"); n != model.MaxRejectionDetails {
		t.Errorf("%d rejections listed, want %d:\n%s", n, model.MaxRejectionDetails, body)
	}
	for _, s := range []string{"rejected 25 of 25 samples (0 stored", "(only the first 10 rejections are listed)", "timestamp=10: too old"} {
		if !strings.Contains(body, s) {
			t.Errorf("body does not contain %q:\n%s", s, body)
		}
	}
	if got := metricValue(t, a.metrics.rejected.WithLabelValues(string(model.ReasonTooOld))); got != 25 {
		t.Errorf("rejected{reason=too_old} = %v, want 25", got)
	}
}

func TestCountRejectedMixedReasons(t *testing.T) {
	a, _ := newTestAPI(t, nil, nil, nil)
	var res model.PushResult
	res.Reject(5, model.Rejection{Reason: model.ReasonInvalidLabels})
	res.Reject(1, model.Rejection{Reason: model.ReasonInvalidValue})
	res.RejectedSamples += 2 // a Pusher that counted two without a reason
	a.metrics.countRejected(res)
	for reason, want := range map[string]float64{"invalid_labels": 5, "invalid_value": 1, reasonUnlisted: 2} {
		if got := metricValue(t, a.metrics.rejected.WithLabelValues(reason)); got != want {
			t.Errorf("rejected{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstded(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func TestTextImportHandler(t *testing.T) {
	nowMs := testNow.UnixMilli()
	text := []byte("# TYPE m gauge\nm{a=\"1\"} 1\nm{a=\"2\"} 2 1000\n")
	tests := []struct {
		name     string
		target   string
		body     []byte
		headers  map[string]string
		wantCode int
		wantBody string
		want     []model.Series
	}{
		{
			name: "plain", target: "/api/v1/import/prometheus", body: text, wantCode: 204,
			want: []model.Series{series([]string{"__name__", "m", "a", "1"}, float64(nowMs), 1), series([]string{"__name__", "m", "a", "2"}, 1000, 2)},
		},
		{
			name: "extra labels and pushgateway path", target: "/api/v1/import/prometheus/metrics/job/batch/instance/h1?extra_label=dc=eu", body: text, wantCode: 204,
			want: []model.Series{
				series([]string{"__name__", "m", "a", "1", "dc", "eu", "instance", "h1", "job", "batch"}, float64(nowMs), 1),
				series([]string{"__name__", "m", "a", "2", "dc", "eu", "instance", "h1", "job", "batch"}, 1000, 2),
			},
		},
		{
			name: "timestamp parameter", target: "/api/v1/import/prometheus?timestamp=1600000000", body: []byte("m 1\n"), wantCode: 204,
			want: []model.Series{series([]string{"__name__", "m"}, 1600000000000, 1)},
		},
		{
			name: "gzip", target: "/api/v1/import/prometheus", body: gzipped(t, []byte("m 1\n")), headers: map[string]string{"Content-Encoding": "gzip"}, wantCode: 204,
			want: []model.Series{series([]string{"__name__", "m"}, float64(nowMs), 1)},
		},
		{
			name: "zstd", target: "/api/v1/import/prometheus", body: zstded(t, []byte("m 1\n")), headers: map[string]string{"Content-Encoding": "zstd"}, wantCode: 204,
			want: []model.Series{series([]string{"__name__", "m"}, float64(nowMs), 1)},
		},
		{
			name: "openmetrics", target: "/api/v1/import/prometheus", body: []byte("m_total 3 1700000000.5\n# EOF\n"),
			headers: map[string]string{"Content-Type": "application/openmetrics-text; version=1.0.0"}, wantCode: 204,
			want: []model.Series{series([]string{"__name__", "m_total"}, 1700000000500, 3)},
		},
		{name: "syntax error", target: "/api/v1/import/prometheus", body: []byte("ok 1\nbad{ 1\n"), wantCode: 400, wantBody: "prometheus text: line 2: expected label name"},
		{name: "bad extra label", target: "/api/v1/import/prometheus?extra_label=nope", body: text, wantCode: 400, wantBody: `parameter extra_label: "nope" is not name=value`},
		{name: "bad path", target: "/api/v1/import/prometheus/metrics/instance/x", body: text, wantCode: 400, wantBody: "want metrics/job/<job>"},
		{name: "bad timestamp", target: "/api/v1/import/prometheus?timestamp=noon", body: text, wantCode: 400, wantBody: `parameter timestamp: cannot parse "noon"`},
		{name: "corrupt gzip", target: "/api/v1/import/prometheus", body: []byte("not gzip"), headers: map[string]string{"Content-Encoding": "gzip"}, wantCode: 400, wantBody: "gzip body"},
		{name: "corrupt zstd", target: "/api/v1/import/prometheus", body: []byte("not zstd at all"), headers: map[string]string{"Content-Encoding": "zstd"}, wantCode: 400, wantBody: "zstd body"},
		{name: "unknown encoding", target: "/api/v1/import/prometheus", body: text, headers: map[string]string{"Content-Encoding": "br"}, wantCode: 415, wantBody: `Content-Encoding "br"; use gzip, zstd or none`},
		{name: "rejected sample named", target: "/api/v1/import/prometheus", body: []byte("ok 1\nbad NaN\n"), wantCode: 400, wantBody: `reason=invalid_value series={__name__="bad"}`,
			want: []model.Series{series([]string{"__name__", "ok"}, float64(nowMs), 1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &validatingPusher{now: nowMs}
			a, _ := newTestAPI(t, p, nil, nil)
			w := do(t, a.Handler(), request{target: tc.target, body: tc.body, headers: tc.headers})
			if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", w.Code, w.Body, tc.wantCode, tc.wantBody)
			}
			if got := p.stored(); !equalBatches(got, tc.want) {
				t.Errorf("stored\n%swant\n%s", formatBatch(got), formatBatch(tc.want))
			}
		})
	}
}

func TestSampleLimit(t *testing.T) {
	p := &validatingPusher{now: testNow.UnixMilli()}
	a, _ := newTestAPI(t, p, nil, func(c *Config) { c.MaxSamplesPerRequest = 3 })
	h := a.Handler()
	tests := []struct {
		name     string
		target   string
		body     []byte
		wantBody string
	}{
		{name: "remote write, refused while decoding", target: "/api/v1/write",
			body:     encodeRemoteWrite(t, []model.Series{series([]string{"__name__", "a"}, 1, 1, 2, 2), series([]string{"__name__", "b"}, 1, 1, 2, 2)}),
			wantBody: "request too large: more than 3 samples in one request"},
		{name: "text", target: "/api/v1/import/prometheus", body: []byte("a 1\nb 1\nc 1\nd 1\n"), wantBody: "request too large: 4 samples in one request, limit is 3"},
		{name: "line protocol", target: "/write", body: []byte("m a=1,b=2,c=3,d=4\n"), wantBody: "request too large: 4 samples in one request, limit is 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, h, request{target: tc.target, body: tc.body})
			if w.Code != 413 || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %q, want 413 %q", w.Code, w.Body, tc.wantBody)
			}
		})
	}
	if w := do(t, h, request{target: "/write", body: []byte("m a=1,b=2,c=3\n")}); w.Code != 204 {
		t.Errorf("at the limit: %d %q", w.Code, w.Body)
	}
	if got := len(p.stored()); got != 3 {
		t.Errorf("stored %d series, want only the 3 of the request at the limit", got)
	}
}

func TestDecodedSizeLimitForCompressedText(t *testing.T) {
	p := &validatingPusher{now: testNow.UnixMilli()}
	a, _ := newTestAPI(t, p, nil, func(c *Config) { c.MaxBodyBytes = 1 << 10; c.MaxDecodedBodyBytes = 4 << 10 })
	body := []byte(strings.Repeat("m 1\n", 2000)) // 8000 bytes decoded
	for _, enc := range []string{"gzip", "zstd"} {
		t.Run(enc, func(t *testing.T) {
			b := gzipped(t, body)
			if enc == "zstd" {
				b = zstded(t, body)
			}
			w := do(t, a.Handler(), request{target: "/api/v1/import/prometheus", body: b, headers: map[string]string{"Content-Encoding": enc}})
			if w.Code != 413 || !strings.Contains(w.Body.String(), "body decodes to more than 4096 bytes") {
				t.Fatalf("got %d %q, want 413", w.Code, w.Body)
			}
		})
	}
}

func TestLineProtocolHandler(t *testing.T) {
	nowMs := testNow.UnixMilli()
	tests := []struct {
		name     string
		target   string
		body     []byte
		headers  map[string]string
		wantCode int
		wantBody string
		want     []model.Series
	}{
		{
			name: "v1 write, precision s", target: "/write?db=telegraf&precision=s", body: []byte("cpu,host=a usage=1.5 1700000000\n"), wantCode: 204,
			want: []model.Series{series([]string{"__name__", "cpu_usage", "host", "a"}, 1700000000000, 1.5)},
		},
		{
			name: "v2 write, default ns, no timestamp", target: "/api/v2/write?org=o&bucket=b", body: []byte("cpu,host=a usage=1.5\n"), wantCode: 204,
			want: []model.Series{series([]string{"__name__", "cpu_usage", "host", "a"}, float64(nowMs), 1.5)},
		},
		{
			name: "gzip and extra label", target: "/api/v2/write?extra_label=dc=eu", body: gzipped(t, []byte("mem free=3i\n")), headers: map[string]string{"Content-Encoding": "gzip"}, wantCode: 204,
			want: []model.Series{series([]string{"__name__", "mem_free", "dc", "eu"}, float64(nowMs), 3)},
		},
		{name: "bad precision", target: "/write?precision=d", body: []byte("m f=1\n"), wantCode: 400, wantBody: `line protocol: unknown precision "d"`},
		{name: "bad line", target: "/write", body: []byte("m f=1\nm f=oops\n"), wantCode: 400, wantBody: `line protocol: line 2: field "f" of measurement "m": invalid number "oops"`},
		{name: "future timestamp rejected", target: "/write?precision=s", body: []byte("m f=1 1800000000\nm g=2\n"), wantCode: 400, wantBody: "reason=too_far_in_future",
			want: []model.Series{series([]string{"__name__", "m_g"}, float64(nowMs), 2)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &validatingPusher{now: nowMs}
			a, _ := newTestAPI(t, p, nil, nil)
			w := do(t, a.Handler(), request{target: tc.target, body: tc.body, headers: tc.headers})
			if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", w.Code, w.Body, tc.wantCode, tc.wantBody)
			}
			if got := p.stored(); !equalBatches(got, tc.want) {
				t.Errorf("stored\n%swant\n%s", formatBatch(got), formatBatch(tc.want))
			}
		})
	}
}

func TestWriteGates(t *testing.T) {
	body := encodeRemoteWrite(t, []model.Series{series([]string{"__name__", "m"}, 1, 1)})
	t.Run("no pusher", func(t *testing.T) {
		a, _ := newTestAPI(t, nil, nil, nil)
		w := do(t, a.Handler(), request{target: "/api/v1/write", body: body, headers: rwHeaders})
		if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "does not accept writes") {
			t.Fatalf("got %d %q", w.Code, w.Body)
		}
	})
	t.Run("not ready", func(t *testing.T) {
		p := &validatingPusher{now: 1}
		a, _ := newTestAPI(t, p, nil, nil)
		a.ready = func() error { return errors.New("replaying WAL: 40%") }
		for _, target := range []string{"/api/v1/write", "/write", "/api/v1/import/prometheus"} {
			w := do(t, a.Handler(), request{target: target, body: body})
			if w.Code != 503 || !strings.Contains(w.Body.String(), "not ready: replaying WAL: 40%") {
				t.Errorf("%s: got %d %q", target, w.Code, w.Body)
			}
		}
		if len(p.stored()) != 0 {
			t.Error("stored while not ready")
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		a, _ := newTestAPI(t, &validatingPusher{}, nil, nil)
		w := do(t, a.Handler(), request{method: http.MethodGet, target: "/api/v1/write"})
		if w.Code != http.StatusMethodNotAllowed {
			t.Fatalf("got %d", w.Code)
		}
	})
}

func TestWriteMetrics(t *testing.T) {
	p := &validatingPusher{now: testNow.UnixMilli()}
	a, reg := newTestAPI(t, p, nil, nil)
	h := a.Handler()
	do(t, h, request{target: "/api/v1/write", body: encodeRemoteWrite(t, []model.Series{series([]string{"__name__", "m"}, float64(testNow.UnixMilli()), 1, float64(testNow.UnixMilli()+1), math.NaN())}), headers: rwHeaders})
	do(t, h, request{target: "/write", body: []byte("a b=1,c=2\n")})
	do(t, h, request{target: "/api/v1/import/prometheus", body: []byte("x 1\n")})
	want := []string{
		`vigil_api_received_samples_total{protocol="influx_line"} 2`,
		`vigil_api_received_samples_total{protocol="prometheus_text"} 1`,
		`vigil_api_received_samples_total{protocol="remote_write"} 2`,
		`vigil_api_rejected_samples_total{reason="invalid_value"} 1`,
		`vigil_api_request_duration_seconds_count{handler="/api/v1/import/prometheus"} 1`,
		`vigil_api_request_duration_seconds_count{handler="/api/v1/write"} 1`,
		`vigil_api_request_duration_seconds_count{handler="/write"} 1`,
		`vigil_api_requests_total{code="204",handler="/api/v1/import/prometheus"} 1`,
		`vigil_api_requests_total{code="204",handler="/write"} 1`,
		`vigil_api_requests_total{code="400",handler="/api/v1/write"} 1`,
		`vigil_api_write_requests_in_flight{} 0`,
		`vigil_api_write_requests_queued{} 0`,
	}
	got := gatherLines(t, reg, "vigil_api_")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("metrics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// BenchmarkRemoteWriteHandler measures the API's share of ingestion: a
// Prometheus-sized request (2,000 series of one sample, node_exporter
// shaped) through the handler into a Pusher that keeps nothing.
func BenchmarkRemoteWriteHandler(b *testing.B) {
	var batch []model.Series
	for i := 0; i < 2000; i++ {
		batch = append(batch, series([]string{"__name__", "node_cpu_seconds_total", "cpu", strconv.Itoa(i % 64),
			"instance", "host-" + strconv.Itoa(i/64) + ":9100", "job", "node", "mode", "idle"}, 1700000000000, float64(i)))
	}
	body := encodeRemoteWrite(b, batch)
	p := funcPusher{push: func(_ context.Context, batch []model.Series) (model.PushResult, error) {
		return model.PushResult{Stored: model.CountSamples(batch)}, nil
	}}
	a, err := New(DefaultConfig(), p, nil, nil, nil, nil, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := a.Handler()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 204 {
			b.Fatal(w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(len(batch))*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func TestWriteConcurrencyLimit(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	pusher := funcPusher{push: func(ctx context.Context, batch []model.Series) (model.PushResult, error) {
		entered <- struct{}{}
		<-release
		return model.PushResult{Stored: model.CountSamples(batch)}, nil
	}}
	a, _ := newTestAPI(t, pusher, nil, func(c *Config) {
		c.MaxConcurrentWrites = 1
		c.WriteQueueTimeout = 50 * time.Millisecond
	})
	h := a.Handler()
	body := []byte("m 1\n")
	first := make(chan *httptest.ResponseRecorder)
	go func() {
		first <- do(t, h, request{method: http.MethodPost, target: "/api/v1/import/prometheus", body: body})
	}()
	<-entered // the first request holds the only slot
	rec := do(t, h, request{method: http.MethodPost, target: "/api/v1/import/prometheus", body: body})
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "write requests in progress") {
		t.Fatalf("second request: %d %q Retry-After=%q", rec.Code, rec.Body.String(), rec.Header().Get("Retry-After"))
	}
	close(release)
	if rec := <-first; rec.Code/100 != 2 {
		t.Fatalf("first request: %d %s", rec.Code, rec.Body.String())
	}
	// The slot is free again.
	if rec := do(t, h, request{method: http.MethodPost, target: "/api/v1/import/prometheus", body: body}); rec.Code/100 != 2 {
		t.Fatalf("third request: %d %s", rec.Code, rec.Body.String())
	}
}

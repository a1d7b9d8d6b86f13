package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

func rwSeries(ts int64, v float64, kv ...string) prompb.TimeSeries {
	var ls []prompb.Label
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: ts, Value: v}}}
}

func rwBody(t *testing.T, series ...prompb.TimeSeries) []byte {
	t.Helper()
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

func postRW(t *testing.T, base string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// queryVector runs an instant query and returns "labels => value" lines.
func queryVector(t *testing.T, base, q string, at time.Time) map[string]string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}, "time": {fmt.Sprintf("%.3f", float64(at.UnixMilli())/1000)}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		t.Fatalf("query %s: %v %+v", q, err, out)
	}
	got := map[string]string{}
	for _, r := range out.Data.Result {
		got[fmt.Sprint(r.Metric)] = fmt.Sprint(r.Value[1])
	}
	return got
}

// TestBadInputRemoteWrite sends every class of bad remote-write input to a
// real single node and checks the status, that the message names the
// problem, that valid series in the same request are kept, and that data
// written before is undisturbed.
func TestBadInputRemoteWrite(t *testing.T) {
	v := startVigil(t, "-api.max-body-bytes=65536", "-api.max-decoded-body-bytes=262144")
	base := v.URL()
	now := time.Now()
	ts := now.UnixMilli()

	var good []prompb.TimeSeries
	for i := range 20 {
		good = append(good, rwSeries(ts-60_000, float64(i), "__name__", "good_metric", "i", fmt.Sprint(i)))
	}
	if code, body := postRW(t, base, rwBody(t, good...)); code/100 != 2 {
		t.Fatalf("good write: %d %s", code, body)
	}
	before := queryVector(t, base, "good_metric", now)
	if len(before) != 20 {
		t.Fatalf("good data: %d series, want 20", len(before))
	}

	valid := func(name string) prompb.TimeSeries { return rwSeries(ts, 1, "__name__", name) }
	manyLabels := []string{"__name__", "too_many"}
	for i := range 40 {
		manyLabels = append(manyLabels, fmt.Sprintf("l%02d", i), "v")
	}
	huge := make([]prompb.TimeSeries, 0, 5000)
	for i := range 5000 {
		huge = append(huge, rwSeries(ts, float64(i), "__name__", "huge_metric", "i", fmt.Sprint(i), "pad", strings.Repeat("x", 40)))
	}
	tests := []struct {
		name     string
		body     []byte
		code     int
		contains string
		kept     string // a metric from the same request that must have been stored
	}{
		{name: "corrupt snappy", body: []byte("this is not snappy"), code: 400, contains: "snappy"},
		{name: "bad protobuf", body: snappy.Encode(nil, []byte{0x0a, 0xff, 0xff, 0x01, 0x02}), code: 400, contains: "protobuf"},
		{name: "empty label set", body: rwBody(t, prompb.TimeSeries{Samples: []prompb.Sample{{Timestamp: ts, Value: 1}}}, valid("kept_empty")), code: 400, contains: "no labels", kept: "kept_empty"},
		{name: "duplicate label names", body: rwBody(t, rwSeries(ts, 1, "__name__", "dup", "a", "1", "a", "2"), valid("kept_dup")), code: 400, contains: "duplicate label name", kept: "kept_dup"},
		{name: "invalid metric name", body: rwBody(t, rwSeries(ts, 1, "__name__", "1-bad"), valid("kept_name")), code: 400, contains: "invalid metric name", kept: "kept_name"},
		{name: "NaN value", body: rwBody(t, rwSeries(ts, math.NaN(), "__name__", "nan_metric"), valid("kept_nan")), code: 400, contains: "not a number", kept: "kept_nan"},
		{name: "Inf value", body: rwBody(t, rwSeries(ts, math.Inf(1), "__name__", "inf_metric"), valid("kept_inf")), code: 400, contains: "not a number", kept: "kept_inf"},
		{name: "timestamp in the future", body: rwBody(t, rwSeries(ts+3600_000, 1, "__name__", "future_metric"), valid("kept_future")), code: 400, contains: "past the server's clock", kept: "kept_future"},
		{name: "timestamp too old", body: rwBody(t, rwSeries(ts-3*3600_000, 1, "__name__", "old_metric"), valid("kept_old")), code: 400, contains: "out-of-order window", kept: "kept_old"},
		{name: "too many labels", body: rwBody(t, rwSeries(ts, 1, manyLabels...), valid("kept_labels")), code: 400, contains: "limit is 40", kept: "kept_labels"},
		{name: "oversize body", body: rwBody(t, huge...), code: 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := postRW(t, base, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d; body: %s", code, tc.code, body)
			}
			if tc.contains != "" && !strings.Contains(body, tc.contains) {
				t.Fatalf("body does not name the problem (%q): %s", tc.contains, body)
			}
			if tc.kept != "" {
				if got := queryVector(t, base, tc.kept, now.Add(time.Second)); len(got) != 1 {
					t.Fatalf("valid series %s in the same request was not kept: %v", tc.kept, got)
				}
			}
		})
	}
	// Nothing from a refused series or request was stored, and the data
	// written first is exactly as it was.
	for _, m := range []string{"dup", "nan_metric", "inf_metric", "future_metric", "old_metric", "too_many", "huge_metric"} {
		if got := queryVector(t, base, fmt.Sprintf("count_over_time(%s[3h])", m), now.Add(2*time.Hour)); len(got) != 0 {
			t.Errorf("refused data %s was stored: %v", m, got)
		}
	}
	after := queryVector(t, base, "good_metric", now)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("earlier data changed:\nbefore %v\nafter  %v", before, after)
	}
}

func tryPostRW(base string, body []byte) (int, string, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// rangeValues returns the values of the samples of one series in
// [from, to] ms, read raw through a range selector.
func rangeValues(t *testing.T, base, selector string, from, to int64) []float64 {
	t.Helper()
	span := to - from + 1
	q := fmt.Sprintf("%s[%dms]", selector, span)
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}, "time": {fmt.Sprintf("%.3f", float64(to)/1000)}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Values [][2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, out.Error)
	}
	var vals []float64
	for _, r := range out.Data.Result {
		for _, p := range r.Values {
			var f float64
			fmt.Sscan(fmt.Sprint(p[1]), &f)
			vals = append(vals, f)
		}
	}
	return vals
}

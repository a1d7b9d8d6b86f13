package api

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/vigil-tsdb/vigil/model"
)

func TestParseText(t *testing.T) {
	const now = 1_700_000_000_000
	tests := []struct {
		name        string
		body        string
		contentType string
		extra       labels.Labels
		want        []model.Series
		wantErr     string // substring; the error must be ErrBadData
	}{
		{name: "empty", body: "", want: nil},
		{name: "only comments", body: "# just a comment\n\n# HELP x y\n", want: nil},
		{
			name: "exposition with metadata",
			body: "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n" +
				"http_requests_total{method=\"get\",code=\"200\"} 1027 1395066363000\n" +
				"http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n" +
				"\n# A normal comment.\nmetric_without_timestamp_and_labels 12.47\n",
			want: []model.Series{
				series([]string{"__name__", "http_requests_total", "code", "200", "method", "get"}, 1395066363000, 1027),
				series([]string{"__name__", "http_requests_total", "code", "400", "method", "post"}, 1395066363000, 3),
				series([]string{"__name__", "metric_without_timestamp_and_labels"}, now, 12.47),
			},
		},
		{
			name: "special values",
			body: "a +Inf\nb -Inf\nc NaN\nd 1.5e-3\ne -0\n",
			want: []model.Series{
				series([]string{"__name__", "a"}, now, math.Inf(1)),
				series([]string{"__name__", "b"}, now, math.Inf(-1)),
				series([]string{"__name__", "c"}, now, math.NaN()),
				series([]string{"__name__", "d"}, now, 0.0015),
				series([]string{"__name__", "e"}, now, math.Copysign(0, -1)),
			},
		},
		{
			name: "samples of one series grouped in order",
			body: "m{a=\"1\"} 1 1000\nother 5 1000\nm{a=\"1\"} 2 2000\nm{ a=\"1\" } 3 3000\n",
			want: []model.Series{
				series([]string{"__name__", "m", "a", "1"}, 1000, 1, 2000, 2, 3000, 3),
				series([]string{"__name__", "other"}, 1000, 5),
			},
		},
		{
			name: "escapes in label values",
			body: `m{path="C:\\dir",q="say \"hi\"",nl="a\nb"} 1` + "\n",
			want: []model.Series{series([]string{"__name__", "m", "nl", "a\nb", "path", `C:\dir`, "q", `say "hi"`}, now, 1)},
		},
		{
			name: "quoted UTF-8 names passed on for validation",
			body: `{"my.metric", "lé"="v"} 1` + "\n",
			want: []model.Series{series([]string{"__name__", "my.metric", "lé", "v"}, now, 1)},
		},
		{
			name: "duplicate label names kept for validation",
			body: `m{a="1",a="2"} 1` + "\n",
			want: []model.Series{{Labels: labels.New(labels.Label{Name: "__name__", Value: "m"}, labels.Label{Name: "a", Value: "1"}, labels.Label{Name: "a", Value: "2"}), Samples: []model.Sample{{T: now, V: 1}}}},
		},
		{
			name:  "extra labels override",
			body:  "m{job=\"old\",x=\"1\"} 1\n",
			extra: labels.FromStrings("job", "new", "dc", "eu"),
			want:  []model.Series{series([]string{"__name__", "m", "dc", "eu", "job", "new", "x", "1"}, now, 1)},
		},
		{
			name: "summary and histogram",
			body: "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n",
			want: []model.Series{
				series([]string{"__name__", "s", "quantile", "0.5"}, now, 1),
				series([]string{"__name__", "s_sum"}, now, 2),
				series([]string{"__name__", "s_count"}, now, 3),
				series([]string{"__name__", "h_bucket", "le", "1.0"}, now, 1),
				series([]string{"__name__", "h_bucket", "le", "+Inf"}, now, 2),
			},
		},
		{
			name:        "openmetrics",
			contentType: "application/openmetrics-text; version=1.0.0; charset=utf-8",
			body:        "# TYPE foo counter\nfoo_total 17.0 1520879607.789\nbar 1\n# EOF\n",
			want: []model.Series{
				series([]string{"__name__", "foo_total"}, 1520879607789, 17),
				series([]string{"__name__", "bar"}, now, 1),
			},
		},
		{name: "line number of error", body: "a 1\n\n# c\nb 2\nc{ 3\nd 4\n", wantErr: "prometheus text: line 5: expected label name"},
		{name: "error on first line", body: "1abc 1\n", wantErr: "line 1:"},
		{name: "missing value", body: "ok 1\nm{a=\"b\"}\n", wantErr: "line 2:"},
		{name: "bad value", body: "m 1x\n", wantErr: "line 1:"},
		{name: "openmetrics timestamp beyond int64 ms", body: "a 1 1\nb 0 1E20\n# EOF\n", contentType: "application/openmetrics-text; version=1.0.0", wantErr: "openmetrics text: line 2: b: timestamp out of range"},
		{name: "timestamp beyond the API's range", body: "a 0 9223372036854775807\n", wantErr: "line 1: a: timestamp out of range"},
		{name: "unterminated label value", body: "m{a=\"b} 1\n", wantErr: "line 1:"},
		{name: "bad type", body: "# TYPE m nonsense\n", wantErr: `line 1: invalid metric type "nonsense"`},
		{name: "openmetrics without EOF", contentType: "application/openmetrics-text", body: "a 1\nb 2\n", wantErr: "openmetrics text: line 2: data does not end with # EOF"},
		{name: "protobuf exposition", contentType: "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", body: "x", wantErr: "protobuf exposition) is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			extra := tc.extra
			if extra.IsEmpty() {
				extra = labels.EmptyLabels()
			}
			got, err := ParseText([]byte(tc.body), tc.contentType, now, extra)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %s, want error containing %q", formatBatch(got), tc.wantErr)
				}
				if !errors.Is(err, model.ErrBadData) {
					t.Errorf("error %q is not ErrBadData", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !equalBatches(got, tc.want) {
				t.Errorf("got\n%swant\n%s", formatBatch(got), formatBatch(tc.want))
			}
		})
	}
}

func TestParseTextStaleNaNKept(t *testing.T) {
	// The staleness marker cannot be written in the text format; a plain
	// NaN must arrive as NaN (not as the marker) so validation can refuse
	// it.
	got, err := ParseText([]byte("m NaN\n"), "", 1, labels.EmptyLabels())
	if err != nil {
		t.Fatal(err)
	}
	if v := got[0].Samples[0].V; !math.IsNaN(v) || value.IsStaleNaN(v) {
		t.Errorf("got %v (stale %v), want a plain NaN", v, value.IsStaleNaN(v))
	}
}

func TestParseTextDoesNotWritePastLen(t *testing.T) {
	buf := []byte("m 1\nXYZ")
	body := buf[:4] // "m 1\n", with capacity beyond
	if _, err := ParseText(body, "", 1, labels.EmptyLabels()); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "m 1\nXYZ" {
		t.Errorf("memory past len(body) changed: %q", buf)
	}
}

func TestErrorLine(t *testing.T) {
	body := []byte("a\nb\n\n\nc\n")
	tests := []struct {
		name    string
		lastOff int
		want    int
	}{
		{name: "nothing parsed", lastOff: -1, want: 1},
		{name: "after first", lastOff: 0, want: 2},
		{name: "skips blank lines", lastOff: 2, want: 5},
		{name: "at end", lastOff: 6, want: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorLine(body, tc.lastOff); got != tc.want {
				t.Errorf("errorLine(%d) = %d, want %d", tc.lastOff, got, tc.want)
			}
		})
	}
}

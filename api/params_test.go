package api

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Time
		wantErr string
	}{
		{name: "unix seconds", in: "1700000000", want: time.Unix(1700000000, 0).UTC()},
		{name: "fractional seconds rounded to ms", in: "1700000000.1234", want: time.Unix(1700000000, 123_000_000).UTC()},
		{name: "negative", in: "-1.5", want: time.Unix(-1, -500_000_000).UTC()},
		{name: "rfc3339", in: "2023-11-14T22:13:20Z", want: time.Unix(1700000000, 0).UTC()},
		{name: "rfc3339 nano with zone", in: "2023-11-14T23:13:20.5+01:00", want: time.Unix(1700000000, 500_000_000)},
		{name: "min time", in: minTimeFormatted, want: minTime},
		{name: "max time", in: maxTimeFormatted, want: maxTime},
		{name: "empty", in: "", wantErr: `cannot parse "" to a valid timestamp`},
		{name: "garbage", in: "yesterday", wantErr: `cannot parse "yesterday" to a valid timestamp`},
		{name: "overflow", in: "1e300", wantErr: `cannot parse "1e300"`},
		{name: "nan", in: "NaN", wantErr: `cannot parse "NaN"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTime(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseTime(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("parseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseTimeParam(t *testing.T) {
	def := time.Unix(42, 0)
	if got, err := parseTimeParam("", "start", def); err != nil || !got.Equal(def) {
		t.Errorf("empty: got %v, %v; want default", got, err)
	}
	_, err := parseTimeParam("x", "start", def)
	if want := `invalid time value for 'start': cannot parse "x" to a valid timestamp`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "seconds", in: "15", want: 15 * time.Second},
		{name: "fractional seconds", in: "0.5", want: 500 * time.Millisecond},
		{name: "prometheus duration", in: "1h30m", want: 90 * time.Minute},
		{name: "ms", in: "250ms", want: 250 * time.Millisecond},
		{name: "days and weeks", in: "1w2d", want: 9 * 24 * time.Hour},
		{name: "zero", in: "0", want: 0},
		{name: "negative seconds", in: "-5", want: -5 * time.Second},
		{name: "overflow", in: "1e20", wantErr: "It overflows int64"},
		{name: "garbage", in: "soon", wantErr: `cannot parse "soon" to a valid duration`},
		{name: "empty", in: "", wantErr: `cannot parse "" to a valid duration`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseDuration(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseDuration(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseLimit(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{name: "empty is no limit", in: "", want: 0},
		{name: "zero is no limit", in: "0", want: 0},
		{name: "positive", in: "25", want: 25},
		{name: "negative", in: "-1", wantErr: true},
		{name: "not a number", in: "ten", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLimit(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("parseLimit(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestParseStepAndPoints(t *testing.T) {
	start := time.Unix(0, 0)
	tests := []struct {
		name     string
		step     string
		end      time.Time
		wantErr  string
		tooMany  bool
		wantStep time.Duration
	}{
		{name: "ok", step: "15s", end: start.Add(time.Hour), wantStep: 15 * time.Second},
		{name: "float seconds", step: "0.5", end: start.Add(time.Minute), wantStep: 500 * time.Millisecond},
		{name: "zero", step: "0", end: start, wantErr: "zero or negative query resolution step widths are not accepted"},
		{name: "negative", step: "-60", end: start, wantErr: "zero or negative"},
		{name: "garbage", step: "x", end: start, wantErr: `cannot parse "x"`},
		{name: "exactly 11000 points", step: "1s", end: start.Add(11000 * time.Second), wantStep: time.Second},
		{name: "11001 points", step: "1s", end: start.Add(11001 * time.Second), wantStep: time.Second, tooMany: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			step, err := parseStep(tc.step)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseStep(%q) = %v, %v; want error %q", tc.step, step, err, tc.wantErr)
				}
				return
			}
			if err != nil || step != tc.wantStep {
				t.Fatalf("parseStep(%q) = %v, %v; want %v", tc.step, step, err, tc.wantStep)
			}
			if got := tooManyPoints(start, tc.end, step); got != tc.tooMany {
				t.Errorf("tooManyPoints = %v, want %v", got, tc.tooMany)
			}
		})
	}
}

func TestParseMatchers(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	tests := []struct {
		name    string
		in      []string
		want    int // number of sets
		wantErr string
	}{
		{name: "metric name", in: []string{"up"}, want: 1},
		{name: "several", in: []string{`up{job="a"}`, `{__name__=~"node_.+"}`}, want: 2},
		{name: "empty matcher only", in: []string{`{job=""}`}, wantErr: "match[] must contain at least one non-empty matcher"},
		{name: "matches everything", in: []string{`{job=~".*"}`}, wantErr: "at least one non-empty matcher"},
		{name: "syntax error", in: []string{`up{`}, wantErr: "parse error"},
		{name: "not a selector", in: []string{`sum(up)`}, wantErr: "parse error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMatchers(p, tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseMatchers(%q) = %v, %v; want error %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("parseMatchers(%q) = %v, %v; want %d sets", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestExtraLabels(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		path    string
		want    labels.Labels
		wantErr string
	}{
		{name: "none", target: "/api/v1/import/prometheus", want: labels.EmptyLabels()},
		{name: "query params, last wins", target: "/x?extra_label=dc=eu&extra_label=job=a&extra_label=job=b", want: labels.FromStrings("dc", "eu", "job", "b")},
		{name: "value with equals", target: "/x?extra_label=q=a%3Db", want: labels.FromStrings("q", "a=b")},
		{name: "no equals", target: "/x?extra_label=job", wantErr: `parameter extra_label: "job" is not name=value`},
		{name: "bad name", target: "/x?extra_label=1a=b", wantErr: `"1a=b" is not name=value with a valid label name`},
		{name: "pushgateway path", target: "/x", path: "metrics/job/node/instance/host:9100", want: labels.FromStrings("instance", "host:9100", "job", "node")},
		{name: "pushgateway base64", target: "/x", path: "metrics/job/j/path@base64/L3Zhci90bXA", want: labels.FromStrings("job", "j", "path", "/var/tmp")},
		{name: "path then query param", target: "/x?extra_label=job=override", path: "metrics/job/node", want: labels.FromStrings("job", "override")},
		{name: "path without job", target: "/x", path: "metrics/instance/a", wantErr: "want metrics/job/<job>"},
		{name: "path odd parts", target: "/x", path: "metrics/job/a/instance", wantErr: "want metrics/job/<job>"},
		{name: "path not metrics", target: "/x", path: "foo/job/a", wantErr: "want /api/v1/import/prometheus/metrics/job/<job>"},
		{name: "path bad base64", target: "/x", path: "metrics/job@base64/!!", wantErr: "invalid base64url value"},
		{name: "path bad label", target: "/x", path: "metrics/job/a/bad-name/v", wantErr: `invalid label name "bad-name"`},
		{name: "path empty job", target: "/x", path: "metrics/job@base64/=", wantErr: "empty job name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", tc.target, nil)
			if tc.path != "" {
				r.SetPathValue("path", tc.path)
			}
			got, err := extraLabels(r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, %v; want error %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !labels.Equal(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

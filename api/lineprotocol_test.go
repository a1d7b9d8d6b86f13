package api

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

func TestParseLineProtocol(t *testing.T) {
	const now = 1_700_000_000_000
	tests := []struct {
		name      string
		body      string
		precision string
		want      []model.Series
		wantErr   string // substring; the error must be ErrBadData
	}{
		{name: "empty", body: "", want: nil},
		{name: "comments and blank lines", body: "# comment\n\n   \n\t# indented comment\n", want: nil},
		{
			name: "one line, all field types",
			body: `weather,location=us-midwest,season=summer temperature=82,humidity=71i,count=3u,raining=true,dry=F,note="hot" 1465839830100400200`,
			want: []model.Series{
				series([]string{"__name__", "weather_temperature", "location", "us-midwest", "season", "summer"}, 1465839830100, 82),
				series([]string{"__name__", "weather_humidity", "location", "us-midwest", "season", "summer"}, 1465839830100, 71),
				series([]string{"__name__", "weather_count", "location", "us-midwest", "season", "summer"}, 1465839830100, 3),
				series([]string{"__name__", "weather_raining", "location", "us-midwest", "season", "summer"}, 1465839830100, 1),
				series([]string{"__name__", "weather_dry", "location", "us-midwest", "season", "summer"}, 1465839830100, 0),
			},
		},
		{
			name: "field named value is not special",
			body: "cpu value=1 1000000\n",
			want: []model.Series{series([]string{"__name__", "cpu_value"}, 1, 1)},
		},
		{
			name: "no timestamp, CRLF, no tags",
			body: "cpu load=0.5\r\nmem used=-1.5e3\r\n",
			want: []model.Series{
				series([]string{"__name__", "cpu_load"}, now, 0.5),
				series([]string{"__name__", "mem_used"}, now, -1500),
			},
		},
		{
			name: "same series across lines and tag orders grouped",
			body: "m,a=1,b=2 f=1 1000000000\nm,b=2,a=1 f=2 2000000000\nm,a=1,b=2 g=3 2000000000\nm,a=1,b=2 f=4 3000000000\n",
			want: []model.Series{
				series([]string{"__name__", "m_f", "a", "1", "b", "2"}, 1000, 1, 2000, 2, 3000, 4),
				series([]string{"__name__", "m_g", "a", "1", "b", "2"}, 2000, 3),
			},
		},
		{
			name: "escapes",
			body: `my\ meas\,ure,tag\ key=tag\,val\=ue\ x,back=sl\\ash,lit=a\b field\=k\ ey=1 1000000` + "\n",
			want: []model.Series{series([]string{
				"__name__", "my_meas_ure_field_k_ey",
				"back", `sl\ash`, "lit", `a\b`, "tag_key", "tag,val=ue x",
			}, 1, 1)},
		},
		{
			name: "names sanitized",
			body: "1cpu.usage,host-name=a,9zone=b,ns:x=c user%=1 1000000\n",
			want: []model.Series{series([]string{
				"__name__", "_1cpu_usage_user_", "_9zone", "b", "host_name", "a", "ns_x", "c",
			}, 1, 1)},
		},
		{
			name: "non-ASCII measurement",
			body: "températures,ville=Zürich val=1 1000000\n",
			want: []model.Series{series([]string{"__name__", "temp_ratures_val", "ville", "Zürich"}, 1, 1)},
		},
		{
			name: "string fields skipped, even with newlines, commas and escapes",
			body: "m s=\"a,b c=d\\\"e\nstill string\\\\\",x=2 1000000\nn y=3 1000000\n",
			want: []model.Series{
				series([]string{"__name__", "m_x"}, 1, 2),
				series([]string{"__name__", "n_y"}, 1, 3),
			},
		},
		{
			name: "only string fields gives nothing",
			body: "log msg=\"hello\"\n",
			want: nil,
		},
		{name: "precision s", body: "m f=1 1700000000\n", precision: "s", want: []model.Series{series([]string{"__name__", "m_f"}, 1700000000000, 1)}},
		{name: "precision ms", body: "m f=1 1700000000123\n", precision: "ms", want: []model.Series{series([]string{"__name__", "m_f"}, 1700000000123, 1)}},
		{name: "precision us", body: "m f=1 1700000000123456\n", precision: "us", want: []model.Series{series([]string{"__name__", "m_f"}, 1700000000123, 1)}},
		{name: "precision u", body: "m f=1 1700000000123456\n", precision: "u", want: []model.Series{series([]string{"__name__", "m_f"}, 1700000000123, 1)}},
		{name: "precision n", body: "m f=1 1700000000123456789\n", precision: "n", want: []model.Series{series([]string{"__name__", "m_f"}, 1700000000123, 1)}},
		{name: "precision m", body: "m f=1 2\n", precision: "m", want: []model.Series{series([]string{"__name__", "m_f"}, 120000, 1)}},
		{name: "precision h", body: "m f=1 2\n", precision: "h", want: []model.Series{series([]string{"__name__", "m_f"}, 7200000, 1)}},
		{name: "negative ns timestamp floors", body: "m f=1 -1\n", want: []model.Series{series([]string{"__name__", "m_f"}, -1, 1)}},
		{name: "integer extremes", body: "m a=-9223372036854775808i,b=18446744073709551615u\n", want: []model.Series{
			series([]string{"__name__", "m_a"}, now, -9223372036854775808),
			series([]string{"__name__", "m_b"}, now, 18446744073709551615),
		}},
		{name: "trailing spaces and leading whitespace", body: "  m f=1 1000000   \n", want: []model.Series{series([]string{"__name__", "m_f"}, 1, 1)}},

		{name: "unknown precision", body: "m f=1\n", precision: "d", wantErr: `unknown precision "d"`},
		{name: "missing fields", body: "ok f=1\ncpu,host=a\n", wantErr: `line 2: measurement "cpu" has no fields`},
		{name: "missing fields after space", body: "cpu \n", wantErr: `line 1: measurement "cpu" has no fields`},
		{name: "field without value", body: "cpu f\n", wantErr: `line 1: field "f" of measurement "cpu" has no value`},
		{name: "empty field value", body: "cpu f= 1\n", wantErr: `line 1: field "f" of measurement "cpu": empty value`},
		{name: "empty field key", body: "cpu =1\n", wantErr: `empty field key`},
		{name: "tag without value", body: "cpu,host f=1\n", wantErr: `line 1: tag key "host" of measurement "cpu" has no value`},
		{name: "empty tag value", body: "cpu,host= f=1\n", wantErr: `tag "host" of measurement "cpu" has an empty value`},
		{name: "empty tag key", body: "cpu,=a f=1\n", wantErr: `empty tag key`},
		{name: "empty measurement", body: ",a=b f=1\n", wantErr: `line 1: missing measurement`},
		{name: "bad float", body: "m f=1.2.3\n", wantErr: `field "f" of measurement "m": invalid number "1.2.3"`},
		{name: "inf is not a number here", body: "m f=inf\n", wantErr: `invalid number "inf"`},
		{name: "nan is not a number here", body: "m f=NaN\n", wantErr: `invalid number "NaN"`},
		{name: "hex float", body: "m f=0x1p3\n", wantErr: `invalid number "0x1p3"`},
		{name: "float out of range", body: "m f=1e400\n", wantErr: `number "1e400" out of range`},
		{name: "bad integer", body: "m f=1.5i\n", wantErr: `invalid integer "1.5i"`},
		{name: "integer out of range", body: "m f=9223372036854775808i\n", wantErr: `integer "9223372036854775808i" out of range`},
		{name: "negative unsigned", body: "m f=-1u\n", wantErr: `invalid unsigned integer "-1u"`},
		{name: "bad boolean", body: "m f=yes\n", wantErr: `invalid number "yes"`},
		{name: "unterminated string", body: "m f=1\nm s=\"abc\n\n", wantErr: `line 2: field "s" of measurement "m": unterminated string value`},
		{name: "text after string", body: "m s=\"a\"x\n", wantErr: `unexpected 'x' after the closing quote`},
		{name: "bad timestamp", body: "m f=1 12:00\n", wantErr: `line 1: invalid timestamp "12:00"`},
		{name: "float timestamp", body: "m f=1 1.5\n", wantErr: `invalid timestamp "1.5"`},
		{name: "text after timestamp", body: "m f=1 1 2\n", wantErr: `unexpected text "2" after the timestamp`},
		{name: "timestamp overflow", body: "m f=1 9223372036854776\n", precision: "s", wantErr: `timestamp 9223372036854776 overflows at precision "s"`},
		{name: "line count after multi-line string", body: "m s=\"a\nb\nc\"\nm f=x\n", wantErr: `line 4:`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLineProtocol([]byte(tc.body), tc.precision, now)
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
			for _, s := range got {
				if r, msg := (model.Limits{}).ValidateLabels(s.Labels); r != "" && !strings.Contains(tc.name, "duplicate") {
					t.Errorf("series %s does not validate: %s", s.Labels, msg)
				}
			}
		})
	}
}

func TestSanitizeName(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		metric bool
		want   string
	}{
		{name: "valid metric", in: "cpu_usage:rate", metric: true, want: "cpu_usage:rate"},
		{name: "colon in label", in: "a:b", metric: false, want: "a_b"},
		{name: "leading digit", in: "9lives", metric: true, want: "_9lives"},
		{name: "dots and dashes", in: "a.b-c", metric: false, want: "a_b_c"},
		{name: "multibyte rune is one underscore", in: "grüße", metric: true, want: "gr__e"},
		{name: "invalid utf8 byte", in: "a\xffb", metric: true, want: "a_b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := sanitizeName(tc.in, tc.metric); got != tc.want {
				t.Errorf("sanitizeName(%q, %v) = %q, want %q", tc.in, tc.metric, got, tc.want)
			}
		})
	}
}

func TestLineProtocolLabelsValid(t *testing.T) {
	got, err := ParseLineProtocol([]byte("a.b,c.d=1,e=2 f.g=1,h=2\n"), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got {
		if r, msg := model.DefaultLimits().ValidateLabels(s.Labels); r != "" {
			t.Errorf("%s: %s", s.Labels, msg)
		}
		if math.IsNaN(s.Samples[0].V) {
			t.Errorf("NaN value")
		}
	}
	if want := labels.FromStrings("__name__", "a_b_f_g", "c_d", "1", "e", "2"); !labels.Equal(got[0].Labels, want) {
		t.Errorf("got %s, want %s", got[0].Labels, want)
	}
}

func BenchmarkParseLineProtocol(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		sb.WriteString("cpu,host=server")
		sb.WriteByte(byte('a' + i%26))
		sb.WriteString(",region=eu usage_user=12.5,usage_system=3.25,usage_idle=84.25 1700000000000000000\n")
	}
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLineProtocol(body, "", 0); err != nil {
			b.Fatal(err)
		}
	}
}

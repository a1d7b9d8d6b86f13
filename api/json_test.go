package api

import (
	"math"
	"math/rand/v2"
	"testing"

	jsoniter "github.com/json-iterator/go"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/jsonutil"
)

// The expected strings of TestQueryDataJSON are those of Prometheus'
// web/api/v1/json_codec_test.go (v0.315.0) for the same values.
func TestQueryDataJSON(t *testing.T) {
	tests := []struct {
		name string
		v    parser.Value
		want string
	}{
		{
			name: "vector",
			v: promql.Vector{
				{Metric: labels.FromStrings("__name__", "foo"), T: 1000, F: 1},
				{Metric: labels.FromStrings("__name__", "bar"), T: 2000, F: 2},
			},
			want: `{"resultType":"vector","result":[{"metric":{"__name__":"foo"},"value":[1,"1"]},{"metric":{"__name__":"bar"},"value":[2,"2"]}]}`,
		},
		{
			name: "matrix",
			v: promql.Matrix{
				{Metric: labels.FromStrings("__name__", "foo"), Floats: []promql.FPoint{{F: 1, T: 1000}}},
				{Metric: labels.FromStrings("__name__", "bar"), Floats: []promql.FPoint{{F: 2, T: 2000}}},
			},
			want: `{"resultType":"matrix","result":[{"metric":{"__name__":"foo"},"values":[[1,"1"]]},{"metric":{"__name__":"bar"},"values":[[2,"2"]]}]}`,
		},
		{
			name: "histogram matrix",
			v: promql.Matrix{{
				Metric: labels.FromStrings("__name__", "foo"),
				Histograms: []promql.HPoint{{T: 1000, H: &histogram.FloatHistogram{
					Schema: 2, ZeroThreshold: 0.001, ZeroCount: 12, Count: 10, Sum: 20,
					PositiveSpans:   []histogram.Span{{Offset: 3, Length: 2}, {Offset: 1, Length: 3}},
					NegativeSpans:   []histogram.Span{{Offset: 2, Length: 2}},
					PositiveBuckets: []float64{1, 2, 2, 1, 1},
					NegativeBuckets: []float64{2, 1},
				}}},
			}},
			want: `{"resultType":"matrix","result":[{"metric":{"__name__":"foo"},"histograms":[[1,{"count":"10","sum":"20","buckets":[[1,"-1.6817928305074288","-1.414213562373095","1"],[1,"-1.414213562373095","-1.189207115002721","2"],[3,"-0.001","0.001","12"],[0,"1.414213562373095","1.6817928305074288","1"],[0,"1.6817928305074288","2","2"],[0,"2.378414230005442","2.82842712474619","2"],[0,"2.82842712474619","3.3635856610148576","1"],[0,"3.3635856610148576","4","1"]]}]]}]}`,
		},
		{name: "empty vector", v: promql.Vector{}, want: `{"resultType":"vector","result":[]}`},
		{name: "empty matrix", v: promql.Matrix{}, want: `{"resultType":"matrix","result":[]}`},
		{name: "nil vector", v: promql.Vector(nil), want: `{"resultType":"vector","result":[]}`},
		{name: "vector without labels", v: promql.Vector{{T: 1500, F: 0.5}}, want: `{"resultType":"vector","result":[{"metric":{},"value":[1.500,"0.5"]}]}`},
		// Scalars and strings go through their MarshalJSON methods in
		// Prometheus: a float timestamp (1.01, not 1.010) and 'f' values.
		{name: "scalar", v: promql.Scalar{T: 1010, V: 1e-7}, want: `{"resultType":"scalar","result":[1.01,"0.0000001"]}`},
		{name: "scalar inf", v: promql.Scalar{T: 0, V: math.Inf(-1)}, want: `{"resultType":"scalar","result":[0,"-Inf"]}`},
		{name: "string", v: promql.String{T: 1500, V: "a<b>\"c\"\b"}, want: `{"resultType":"string","result":[1.5,"a\u003cb\u003e\"c\"\b"]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendQueryData(nil, tc.v, nil)); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// The FPoint cases of Prometheus' json_codec_test.go: timestamp and value
// formatting.
func TestPointJSON(t *testing.T) {
	tests := []struct {
		t    int64
		f    float64
		want string
	}{
		{0, 0, `[0,"0"]`},
		{1, 20, `[0.001,"20"]`},
		{10, 20, `[0.010,"20"]`},
		{100, 20, `[0.100,"20"]`},
		{1001, 20, `[1.001,"20"]`},
		{1010, 20, `[1.010,"20"]`},
		{1100, 20, `[1.100,"20"]`},
		{12345678123456555, 20, `[12345678123456.555,"20"]`},
		{-1, 20, `[-0.001,"20"]`},
		{0, math.NaN(), `[0,"NaN"]`},
		{0, math.Inf(1), `[0,"+Inf"]`},
		{0, math.Inf(-1), `[0,"-Inf"]`},
		{0, 1.2345678e6, `[0,"1234567.8"]`},
		{0, 1.2345678e-6, `[0,"0.0000012345678"]`},
		{0, 1.2345678e-67, `[0,"1.2345678e-67"]`},
	}
	for _, tc := range tests {
		b := []byte{'['}
		b = appendTimestamp(b, tc.t)
		b = append(b, ',')
		b = appendFloatString(b, tc.f)
		b = append(b, ']')
		if string(b) != tc.want {
			t.Errorf("point (%d, %v): got %s, want %s", tc.t, tc.f, b, tc.want)
		}
	}
}

// TestJSONMatchesPrometheusEncoders compares the hand-written encoders with
// the jsoniter-based functions Prometheus' codec uses, on tricky and random
// input.
func TestJSONMatchesPrometheusEncoders(t *testing.T) {
	strs := []string{
		"", "plain", `q"uote`, `back\slash`, "<html>&amp;", "tab\tnl\ncr\r", "\x00\x01\x1f\x7f", "\b\f",
		"\u2028\u2029", "héllo wörld ✓", "\xff\xfe invalid", "a\xc3", "emoji 🎉", "\u00e9\u0301",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		n := rng.IntN(12)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		strs = append(strs, string(b))
	}
	std := jsoniter.ConfigCompatibleWithStandardLibrary
	for _, s := range strs {
		want, err := std.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("appendJSONString(%q) = %s, jsoniter %s", s, got, want)
		}
		stream := std.BorrowStream(nil)
		stream.WriteString(s)
		if got := appendJSONStringRaw(nil, s); string(got) != string(stream.Buffer()) {
			t.Errorf("appendJSONStringRaw(%q) = %s, jsoniter %s", s, got, stream.Buffer())
		}
		std.ReturnStream(stream)
	}

	floats := []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99e-7, 1e21, 9.99e20, -1e21, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 123456789.125}
	for i := 0; i < 2000; i++ {
		floats = append(floats, math.Float64frombits(rng.Uint64()), rng.NormFloat64()*math.Pow(10, float64(rng.IntN(60)-30)))
	}
	for _, f := range floats {
		stream := std.BorrowStream(nil)
		jsonutil.MarshalFloat(f, stream)
		if got := appendFloatString(nil, f); string(got) != string(stream.Buffer()) {
			t.Errorf("appendFloatString(%v) = %s, jsonutil %s", f, got, stream.Buffer())
		}
		std.ReturnStream(stream)
	}

	ts := []int64{0, 1, -1, 999, -999, 1000, -1000, 1001, math.MaxInt64 / 2, -math.MaxInt64 / 2}
	for i := 0; i < 2000; i++ {
		ts = append(ts, rng.Int64N(1<<50)-(1<<49))
	}
	for _, v := range ts {
		stream := std.BorrowStream(nil)
		jsonutil.MarshalTimestamp(v, stream)
		if got := appendTimestamp(nil, v); string(got) != string(stream.Buffer()) {
			t.Errorf("appendTimestamp(%d) = %s, jsonutil %s", v, got, stream.Buffer())
		}
		std.ReturnStream(stream)
	}

	hs := []*histogram.FloatHistogram{
		{Count: 0, Sum: 0},
		{Schema: 0, Count: 3, Sum: 5.5, ZeroCount: 1, ZeroThreshold: 1e-9, PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []float64{1, 0}},
		{Schema: -53, Count: 4, Sum: 2, CustomValues: []float64{1, 5}, PositiveSpans: []histogram.Span{{Offset: 0, Length: 3}}, PositiveBuckets: []float64{1, 2, 1}},
	}
	for _, h := range hs {
		stream := std.BorrowStream(nil)
		jsonutil.MarshalHistogram(h, stream)
		if got := appendHistogram(nil, h); string(got) != string(stream.Buffer()) {
			t.Errorf("appendHistogram(%v) = %s, jsonutil %s", h, got, stream.Buffer())
		}
		std.ReturnStream(stream)
	}
}

func TestLabelsJSON(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "path", `C:\x "y" <z>`, "nl", "a\nb")
	want := `{"__name__":"up","nl":"a\nb","path":"C:\\x \"y\" <z>"}`
	if got := string(appendLabels(nil, ls)); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := string(appendLabels(nil, labels.EmptyLabels())); got != "{}" {
		t.Errorf("empty labels: got %s, want {}", got)
	}
}

package integration

import (
	"math"
	"strings"
	"testing"
)

// The comparison decides whether interop tests pass, so it is tested on its
// own, without any process.

func TestSameValue(t *testing.T) {
	tests := []struct {
		name string
		a, b float64
		want bool
	}{
		{name: "equal", a: 1.5, b: 1.5, want: true},
		{name: "zeros", a: 0, b: math.Copysign(0, -1), want: true},
		{name: "within tolerance", a: 1e6, b: 1e6 * (1 + 5e-10), want: true},
		{name: "beyond tolerance", a: 1e6, b: 1e6 * (1 + 2e-9), want: false},
		{name: "zero against tiny", a: 0, b: 1e-300, want: false},
		{name: "sign", a: 1, b: -1, want: false},
		{name: "NaN with NaN", a: math.NaN(), b: math.NaN(), want: true},
		{name: "NaN with number", a: math.NaN(), b: 0, want: false},
		{name: "number with NaN", a: 0, b: math.NaN(), want: false},
		{name: "same infinity", a: math.Inf(1), b: math.Inf(1), want: true},
		{name: "opposite infinities", a: math.Inf(1), b: math.Inf(-1), want: false},
		{name: "infinity with huge", a: math.Inf(1), b: math.MaxFloat64, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameValue(tt.a, tt.b, 1e-9); got != tt.want {
				t.Errorf("sameValue(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestDiffResults(t *testing.T) {
	const (
		vectorA = `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job":"a"},"value":[1700000000.5,"1"]},
			{"metric":{"job":"b"},"value":[1700000000.5,"NaN"]}]}}`
		vectorAReordered = `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job":"b"},"value":[1700000000.5,"NaN"]},
			{"metric":{"job":"a"},"value":[1700000000.5,"1.0000000000001"]}]}}`
		vectorOtherValue = `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job":"a"},"value":[1700000000.5,"1.001"]},
			{"metric":{"job":"b"},"value":[1700000000.5,"NaN"]}]}}`
		vectorInf = `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job":"a"},"value":[1700000000.5,"1"]},
			{"metric":{"job":"b"},"value":[1700000000.5,"+Inf"]}]}}`
		vectorMissing = `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job":"a"},"value":[1700000000.5,"1"]}]}}`
		vectorOtherLabels = `{"status":"success","data":{"resultType":"vector","result":[
			{"metric":{"job":"a","x":"y"},"value":[1700000000.5,"1"]},
			{"metric":{"job":"b"},"value":[1700000000.5,"NaN"]}]}}`
		matrixA = `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"__name__":"m"},"values":[[1700000000.5,"1"],[1700000003.5,"2"]]}]}}`
		matrixShifted = `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"__name__":"m"},"values":[[1700000000.5,"1"],[1700000003.501,"2"]]}]}}`
		matrixShort = `{"status":"success","data":{"resultType":"matrix","result":[
			{"metric":{"__name__":"m"},"values":[[1700000003.5,"2"]]}]}}`
		scalar = `{"status":"success","data":{"resultType":"scalar","result":[1700000000.5,"1"]}}`
	)
	tests := []struct {
		name      string
		want, got string
		diffs     []string // substrings, one per expected difference
	}{
		{name: "identical", want: vectorA, got: vectorA},
		{name: "order and last-bit differences", want: vectorA, got: vectorAReordered},
		{name: "value", want: vectorA, got: vectorOtherValue, diffs: []string{`{job="a"} at 1700000000500: got 1.001, want 1`}},
		{name: "NaN against Inf", want: vectorA, got: vectorInf, diffs: []string{`{job="b"} at 1700000000500: got +Inf, want NaN`}},
		{name: "missing series", want: vectorA, got: vectorMissing, diffs: []string{`series {job="b"} missing`}},
		{name: "extra series", want: vectorMissing, got: vectorA, diffs: []string{`series {job="b"} unexpected`}},
		{name: "other labels", want: vectorA, got: vectorOtherLabels, diffs: []string{`{job="a"} missing`, `{job="a", x="y"} unexpected`}},
		{name: "matrix identical", want: matrixA, got: matrixA},
		{name: "matrix timestamp", want: matrixA, got: matrixShifted, diffs: []string{"point at 1700000003500 missing", "unexpected point at 1700000003501"}},
		{name: "matrix missing point", want: matrixA, got: matrixShort, diffs: []string{"point at 1700000000500 missing"}},
		{name: "result type", want: scalar, got: vectorMissing, diffs: []string{`result type "vector", want "scalar"`, "series {} missing", `series {job="a"} unexpected`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := decodeQueryResponse([]byte(tt.want))
			if err != nil {
				t.Fatalf("decode want: %v", err)
			}
			got, err := decodeQueryResponse([]byte(tt.got))
			if err != nil {
				t.Fatalf("decode got: %v", err)
			}
			diffs := diffResults(want, got, 1e-9)
			if len(diffs) != len(tt.diffs) {
				t.Fatalf("got %d differences, want %d:\n%s", len(diffs), len(tt.diffs), strings.Join(diffs, "\n"))
			}
			for i, d := range diffs {
				if !strings.Contains(d, tt.diffs[i]) {
					t.Errorf("difference %d = %q, want it to contain %q", i, d, tt.diffs[i])
				}
			}
		})
	}
}

func TestDecodeQueryResponseErrors(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{name: "API error", body: `{"status":"error","errorType":"bad_data","error":"parse error"}`, want: "bad_data: parse error"},
		{name: "native histogram", body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}`, want: "native histograms"},
		{name: "bad value", body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}`, want: "point value"},
		{name: "unknown type", body: `{"status":"success","data":{"resultType":"streams","result":[]}}`, want: "unsupported result type"},
		{name: "not JSON", body: `<html>`, want: "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeQueryResponse([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestQueryResultFormat(t *testing.T) {
	r, err := decodeQueryResponse([]byte(`{"status":"success","warnings":["w"],"data":{"resultType":"matrix","result":[
		{"metric":{"__name__":"m","job":"a"},"values":[[1700000000.5,"0.1"],[1700000003.5,"NaN"]]}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	const want = "matrix: 1 series, 2 points, warnings [\"w\"]\n  {__name__=\"m\", job=\"a\"}: 1700000000.500=0.1 1700000003.500=NaN"
	if got := r.format(); got != want {
		t.Errorf("format() =\n%s\nwant\n%s", got, want)
	}
}

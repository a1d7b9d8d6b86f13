package sdk

import (
	"reflect"
	"strings"
	"testing"
	"time"

	vigilv1 "github.com/vigil-tsdb/vigil/api/vigil/v1"
)

func TestFromQueryResponse(t *testing.T) {
	lbls := []*vigilv1.Label{{Name: "__name__", Value: "up"}, {Name: "job", Value: "a"}}
	want := []Label{{"__name__", "up"}, {"job", "a"}}
	for _, tc := range []struct {
		name    string
		resp    *vigilv1.QueryResponse
		want    Value
		wantErr string
	}{
		{name: "vector", resp: &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Vector{Vector: &vigilv1.Vector{Series: []*vigilv1.Series{
			{Labels: lbls, Samples: []*vigilv1.Sample{{TimestampMs: 5, Value: 1.5}}},
		}}}}, want: Vector{{Labels: want, T: 5, V: 1.5}}},
		{name: "empty vector", resp: &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Vector{Vector: &vigilv1.Vector{}}}, want: Vector{}},
		{name: "matrix", resp: &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Matrix{Matrix: &vigilv1.Matrix{Series: []*vigilv1.Series{
			{Labels: lbls, Samples: []*vigilv1.Sample{{TimestampMs: 1, Value: 2}, {TimestampMs: 3, Value: 4}}},
		}}}}, want: Matrix{{Labels: want, Samples: []Sample{{1, 2}, {3, 4}}}}},
		{name: "scalar", resp: &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Scalar{Scalar: &vigilv1.Scalar{TimestampMs: 7, Value: -1}}}, want: Scalar{T: 7, V: -1}},
		{name: "string", resp: &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_String_{String_: &vigilv1.String{TimestampMs: 7, Value: "s"}}}, want: String{T: 7, V: "s"}},
		{name: "vector sample count", resp: &vigilv1.QueryResponse{Result: &vigilv1.QueryResponse_Vector{Vector: &vigilv1.Vector{Series: []*vigilv1.Series{
			{Labels: lbls},
		}}}}, wantErr: "vector series 0 has 0 samples, want 1"},
		{name: "no result", resp: &vigilv1.QueryResponse{}, wantErr: "holds no result this client knows"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fromQueryResponse("query", tc.resp)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got.Value, tc.want) || got.Value.Type() != tc.name[strings.LastIndex(tc.name, " ")+1:] {
				t.Fatalf("%#v, %v; want %#v", got.Value, err, tc.want)
			}
		})
	}
}

func TestUnixMilli(t *testing.T) {
	if unixMilli(time.Time{}) != 0 || unixMilli(time.UnixMilli(1234)) != 1234 {
		t.Fatal("the zero time is 0, others their Unix milliseconds")
	}
}

package api

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-tsdb/vigil/model"
)

func TestDecodeRemoteWrite(t *testing.T) {
	framed := func(raw []byte) []byte {
		var buf bytes.Buffer
		w := snappy.NewBufferedWriter(&buf)
		_, _ = w.Write(raw)
		_ = w.Close()
		return buf.Bytes()
	}
	valid := []model.Series{
		series([]string{"__name__", "up", "job", "a"}, 1000, 1, 2000, 0),
		series([]string{"__name__", "temp", "room", "x"}, 1500, -3.25),
	}
	withHist := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:     []prompb.Label{{Name: "__name__", Value: "lat"}},
		Histograms: []prompb.Histogram{{Timestamp: 1, Sum: 1}},
	}}}
	tests := []struct {
		name    string
		body    []byte
		want    []model.Series
		wantErr string // substring; the error must be ErrBadData
	}{
		{name: "valid", body: snappy.Encode(nil, marshalWriteRequest(t, toWriteRequest(valid))), want: valid},
		{name: "empty request", body: snappy.Encode(nil, nil), want: []model.Series{}},
		{
			name: "labels sorted, duplicates kept",
			body: snappy.Encode(nil, marshalWriteRequest(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
				Labels:  []prompb.Label{{Name: "z", Value: "1"}, {Name: "__name__", Value: "m"}, {Name: "a", Value: "2"}, {Name: "a", Value: "2"}},
				Samples: []prompb.Sample{{Timestamp: 5, Value: 1}},
			}}})),
			want: []model.Series{{
				Labels:  labels.New(labels.Label{Name: "__name__", Value: "m"}, labels.Label{Name: "a", Value: "2"}, labels.Label{Name: "a", Value: "2"}, labels.Label{Name: "z", Value: "1"}),
				Samples: []model.Sample{{T: 5, V: 1}},
			}},
		},
		{
			name: "series without samples skipped, exemplars ignored",
			body: snappy.Encode(nil, marshalWriteRequest(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Labels: []prompb.Label{{Name: "__name__", Value: "only_exemplar"}}, Exemplars: []prompb.Exemplar{{Value: 1, Timestamp: 1}}},
				{Labels: []prompb.Label{{Name: "__name__", Value: "m"}}, Samples: []prompb.Sample{{Timestamp: 7, Value: math.Inf(1)}}, Exemplars: []prompb.Exemplar{{Value: 1}}},
			}})),
			want: []model.Series{series([]string{"__name__", "m"}, 7, math.Inf(1))},
		},
		{
			name: "empty label set passed on for validation",
			body: snappy.Encode(nil, marshalWriteRequest(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
				{Samples: []prompb.Sample{{Timestamp: 1, Value: 1}}},
			}})),
			want: []model.Series{{Labels: labels.EmptyLabels(), Samples: []model.Sample{{T: 1, V: 1}}}},
		},
		{name: "not snappy", body: []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), wantErr: "snappy body: corrupt snappy block"},
		{name: "truncated snappy", body: snappy.Encode(nil, marshalWriteRequest(t, toWriteRequest(valid)))[:20], wantErr: "snappy body: corrupt snappy block"},
		{name: "framed snappy", body: framed(marshalWriteRequest(t, toWriteRequest(valid))), wantErr: "not framed"},
		{name: "bad protobuf", body: snappy.Encode(nil, []byte{0x0a, 0x05, 0x01}), wantErr: "remote write protobuf: 3 bytes do not decode as prometheus.WriteRequest"},
		{name: "garbage protobuf", body: snappy.Encode(nil, []byte("hello, this is not protobuf")), wantErr: "do not decode as prometheus.WriteRequest"},
		{name: "native histograms", body: snappy.Encode(nil, marshalWriteRequest(t, withHist)), wantErr: `series 0 {__name__="lat"} has 1 native histogram samples: native histograms are not supported yet`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRemoteWrite(tc.body)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, want error containing %q", got, tc.wantErr)
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

func TestDecodeRemoteWriteSizeLimit(t *testing.T) {
	body := encodeRemoteWrite(t, []model.Series{series([]string{"__name__", strings.Repeat("m", 1000)}, 1, 1)})
	n, _ := snappy.DecodedLen(body)
	if _, err := decodeRemoteWrite(body, int64(n), 0); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, err := decodeRemoteWrite(body, int64(n-1), 0)
	if !errors.Is(err, model.ErrTooLarge) {
		t.Fatalf("over the limit: got %v, want ErrTooLarge", err)
	}
	if want := "decodes to 1"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say the size (%q)", err, want)
	}
}

func TestDecodeRemoteWriteDoesNotAlias(t *testing.T) {
	in := []model.Series{series([]string{"__name__", "m", "job", "j"}, 1, 1)}
	body := encodeRemoteWrite(t, in)
	got, err := DecodeRemoteWrite(body)
	if err != nil {
		t.Fatal(err)
	}
	// Decode something else through the pooled buffers, then check.
	if _, err := DecodeRemoteWrite(encodeRemoteWrite(t, []model.Series{series([]string{"__name__", "x", "job", "y"}, 2, 2)})); err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 0
	}
	if !equalBatches(got, in) {
		t.Errorf("decoded data changed after its input was reused: %s", formatBatch(got))
	}
}

func BenchmarkDecodeRemoteWrite(b *testing.B) {
	var batch []model.Series
	for i := 0; i < 500; i++ {
		batch = append(batch, series([]string{"__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "host-" + string(rune('a'+i%26)) + ":9100", "job", "node", "mode", "idle"}, 1700000000000, float64(i)))
	}
	body := encodeRemoteWrite(b, batch)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRemoteWrite(body); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDecodeRemoteWriteImplausibleLength(t *testing.T) {
	// 89 bytes found by fuzzing whose header declares 3.4 GB.
	body := []byte("\xaa\x95\xf6\xeb\f\x9d\x9a\xe2\xe6\x10?\xb7i\x132_")
	_, err := DecodeRemoteWrite(body)
	if !errors.Is(err, model.ErrBadData) || !strings.Contains(err.Error(), "cannot decode to the 3447556778 bytes its header declares") {
		t.Fatalf("got %v", err)
	}
	// The most compressible input still decodes.
	zeros := make([]byte, 1<<20)
	enc := snappy.Encode(nil, zeros)
	if n, _ := snappy.DecodedLen(enc); int64(n) > int64(len(enc))*22 {
		t.Fatalf("snappy expands %d bytes to %d, beyond the bound", len(enc), n)
	}
	t.Logf("1 MiB of zeros: %d bytes, ratio %.1f", len(enc), float64(len(zeros))/float64(len(enc)))
}

package api

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-tsdb/vigil/model"
)

// decodeWriteRequestPrompb is the straightforward decoder, through
// prompb's generated Unmarshal: the reference decodeWriteRequest must
// agree with.
func decodeWriteRequestPrompb(raw []byte) ([]model.Series, bool, error) {
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, false, err
	}
	out := []model.Series{}
	hist := false
	var b labels.ScratchBuilder
	for _, ts := range req.Timeseries {
		b.Reset()
		for _, l := range ts.Labels {
			b.Add(l.Name, l.Value)
		}
		b.Sort()
		if len(ts.Histograms) > 0 {
			hist = true
		}
		if len(ts.Samples) == 0 {
			continue
		}
		s := model.Series{Labels: b.Labels()}
		for _, smp := range ts.Samples {
			s.Samples = append(s.Samples, model.Sample{T: smp.Timestamp, V: smp.Value})
		}
		out = append(out, s)
	}
	return out, hist, nil
}

// checkAgainstPrompb requires decodeWriteRequest to agree with prompb on
// raw: the same series when both succeed; when prompb succeeds, ours must
// too (unless the request holds histograms, which we refuse). Ours may
// refuse malformed input prompb tolerates (overlong varints, out-of-range
// field numbers), which no protobuf encoder produces.
func checkAgainstPrompb(t *testing.T, raw []byte) {
	t.Helper()
	got, err := decodeWriteRequest(raw, 0)
	want, hist, werr := decodeWriteRequestPrompb(raw)
	switch {
	case werr == nil && hist:
		if err == nil {
			t.Fatalf("request with native histograms decoded: %s", formatBatch(got))
		}
	case werr == nil && err != nil:
		// Tolerated only for non-canonical encodings: what prompb read,
		// encoded canonically, must decode to the same.
		canon := marshalWriteRequest(t, toWriteRequest(want))
		again, err2 := decodeWriteRequest(canon, 0)
		if err2 != nil || !equalBatches(again, want) {
			t.Fatalf("prompb decodes %x, we do not (%v), nor its canonical form (%v)", raw, err, err2)
		}
	case werr == nil && err == nil:
		if !equalBatches(got, want) {
			t.Fatalf("decoders disagree on %x:\nours:   %s\nprompb: %s", raw, formatBatch(got), formatBatch(want))
		}
	}
}

func TestDecodeWriteRequestMatchesPrompb(t *testing.T) {
	reqs := []*prompb.WriteRequest{
		{},
		{Timeseries: []prompb.TimeSeries{{}}},
		toWriteRequest([]model.Series{
			series([]string{"__name__", "up", "job", "a"}, 1000, 1, -2000, math.NaN()),
			series([]string{"b", "", "__name__", "x"}, math.MaxInt64, math.Inf(1), math.MinInt64, math.Copysign(0, -1)),
		}),
		{Timeseries: []prompb.TimeSeries{{
			Labels:    []prompb.Label{{Name: "__name__", Value: "e"}, {Name: "", Value: "v"}, {Name: "n"}},
			Samples:   []prompb.Sample{{}, {Timestamp: 5}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace", Value: "x"}}, Value: 1, Timestamp: 2}},
		}, {
			Labels:    []prompb.Label{{Name: "__name__", Value: "only_exemplars"}},
			Exemplars: []prompb.Exemplar{{Value: 1}},
		}}, Metadata: []prompb.MetricMetadata{{MetricFamilyName: "e", Help: "h", Unit: "s"}}},
		{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}, Samples: []prompb.Sample{{Value: 1}}, Histograms: []prompb.Histogram{{Timestamp: 1}}}}},
	}
	for i, req := range reqs {
		raw := marshalWriteRequest(t, req)
		checkAgainstPrompb(t, raw)
		// And every truncation of it.
		for n := 0; n < len(raw); n++ {
			checkAgainstPrompb(t, raw[:n])
		}
		_ = i
	}
	// Unknown fields, repeated scalars and groups.
	for _, raw := range [][]byte{
		{0x0a, 0x04, 0x12, 0x02, 0x10, 0x07},                   // sample with timestamp 7, no labels
		{0x0a, 0x06, 0x12, 0x04, 0x10, 0x07, 0x10, 0x08},       // timestamp given twice: last wins
		{0x28, 0x01, 0x0a, 0x04, 0x12, 0x02, 0x10, 0x01},       // unknown varint field 5 first
		{0x0a, 0x07, 0x12, 0x02, 0x10, 0x01, 0x2b, 0x2c, 0x00}, // group field 5 inside TimeSeries
		{0x0a, 0x02, 0x0a, 0x00},                               // empty label
		{0x08, 0x01},                                           // timeseries with wrong wire type
		{0x0a, 0x03, 0x12, 0x01, 0x09},                         // truncated fixed64
	} {
		checkAgainstPrompb(t, raw)
	}
}

func BenchmarkDecodeWriteRequestPrompb(b *testing.B) {
	var batch []model.Series
	for i := 0; i < 500; i++ {
		batch = append(batch, series([]string{"__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "host-" + string(rune('a'+i%26)) + ":9100", "job", "node", "mode", "idle"}, 1700000000000, float64(i)))
	}
	raw := marshalWriteRequest(b, toWriteRequest(batch))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := decodeWriteRequestPrompb(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeWriteRequest(b *testing.B) {
	var batch []model.Series
	for i := 0; i < 500; i++ {
		batch = append(batch, series([]string{"__name__", "node_cpu_seconds_total", "cpu", "0", "instance", "host-" + string(rune('a'+i%26)) + ":9100", "job", "node", "mode", "idle"}, 1700000000000, float64(i)))
	}
	raw := marshalWriteRequest(b, toWriteRequest(batch))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeWriteRequest(raw, 0); err != nil {
			b.Fatal(err)
		}
	}
}

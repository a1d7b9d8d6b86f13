package storage

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestWALRecordRoundTrip(t *testing.T) {
	series := []walSeries{{id: 1, labels: labels.FromStrings("__name__", "a", "x", "y")}, {id: 1 << 40, labels: labels.FromStrings("__name__", "b")}}
	samples := []walSample{{id: 1, t: 1000, v: 1.5}, {id: 7, t: 900, v: math.Inf(-1)}, {id: 1 << 40, t: -5, v: math.NaN()}}
	var sb labels.ScratchBuilder
	gs, _, err := decodeRecord(appendSeriesRecord(nil, series), &sb, nil, nil)
	if err != nil || len(gs) != 2 || gs[1].id != 1<<40 || !labels.Equal(gs[0].labels, series[0].labels) {
		t.Fatalf("series: %v %v", gs, err)
	}
	_, gm, err := decodeRecord(appendSamplesRecord(nil, samples), &sb, nil, nil)
	if err != nil || len(gm) != 3 {
		t.Fatalf("samples: %v %v", gm, err)
	}
	for i := range samples {
		if gm[i].id != samples[i].id || gm[i].t != samples[i].t || math.Float64bits(gm[i].v) != math.Float64bits(samples[i].v) {
			t.Fatalf("sample %d: %v != %v", i, gm[i], samples[i])
		}
	}
	for _, bad := range [][]byte{nil, {9}, {recSamples, 5}, {recSeries, 1, 1, 1, 200}} {
		if _, _, err := decodeRecord(bad, &sb, nil, nil); err == nil {
			t.Errorf("decodeRecord(%x) accepted garbage", bad)
		}
	}
}

// FuzzWALRecord: the decoder never panics, and whatever it accepts
// re-encodes to the same bytes.
func FuzzWALRecord(f *testing.F) {
	f.Add(appendSeriesRecord(nil, []walSeries{{id: 3, labels: labels.FromStrings("__name__", "up", "job", "x")}}))
	f.Add(appendSamplesRecord(nil, []walSample{{id: 3, t: 1700000000000, v: 1}, {id: 4, t: 1700000000001, v: -2}}))
	f.Add([]byte{recSamples, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		var sb labels.ScratchBuilder
		series, samples, err := decodeRecord(p, &sb, nil, nil)
		if err != nil {
			return
		}
		var again []byte
		if p[0] == recSeries {
			again = appendSeriesRecord(nil, series)
		} else {
			again = appendSamplesRecord(nil, samples)
		}
		// Varints have non-canonical encodings; compare decoded forms.
		s2, m2, err := decodeRecord(again, &sb, nil, nil)
		if err != nil || len(s2) != len(series) || len(m2) != len(samples) {
			t.Fatalf("re-encoded record does not decode the same: %v", err)
		}
		for i := range m2 {
			if m2[i].id != samples[i].id || m2[i].t != samples[i].t || math.Float64bits(m2[i].v) != math.Float64bits(samples[i].v) {
				t.Fatalf("sample %d differs after round trip", i)
			}
		}
	})
}

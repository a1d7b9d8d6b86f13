package loadgen

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// decode undoes what a remote-write receiver must undo.
func decode(body []byte) (*prompb.WriteRequest, error) {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("snappy decode: %w", err)
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("unmarshal write request: %w", err)
	}
	return &req, nil
}

func TestEncodeRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi int
	}{
		{name: "several hosts", lo: 0, hi: 250},
		{name: "part of a host", lo: 30, hi: 130},
		{name: "single series", lo: 99, hi: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gen := NewGenerator(300, 5, testStart, 15*time.Second)
			ref := NewGenerator(300, 5, testStart, 15*time.Second)
			var e encoder
			// Encode twice to exercise buffer reuse; check the second.
			if _, _, err := e.encode(gen, tc.lo, tc.hi); err != nil {
				t.Fatal(err)
			}
			for i := tc.lo; i < tc.hi; i++ {
				ref.Next(i)
			}
			body, n, err := e.encode(gen, tc.lo, tc.hi)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.hi - tc.lo; n != want {
				t.Fatalf("encode reported %d samples, want %d", n, want)
			}
			req, err := decode(body)
			if err != nil {
				t.Fatal(err)
			}
			if len(req.Timeseries) != tc.hi-tc.lo {
				t.Fatalf("%d time series, want %d", len(req.Timeseries), tc.hi-tc.lo)
			}
			for j, ts := range req.Timeseries {
				i := tc.lo + j
				if got, want := labelString(ts.Labels), labelString(ref.Labels(i)); got != want {
					t.Fatalf("series %d labels %s, want %s", i, got, want)
				}
				if len(ts.Samples) != 1 {
					t.Fatalf("series %d has %d samples, want 1", i, len(ts.Samples))
				}
				if s, want := ts.Samples[0], ref.Next(i); s.Timestamp != want.Timestamp || s.Value != want.Value {
					t.Fatalf("series %d sample = %+v, want %+v", i, s, want)
				}
			}
		})
	}
}

func labelString(ls []prompb.Label) string {
	s := ""
	for _, l := range ls {
		s += l.Name + "=" + l.Value + ","
	}
	return s
}

func BenchmarkEncode(b *testing.B) {
	gen := NewGenerator(10_000, 1, testStart, 15*time.Second)
	var e encoder
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		// Re-advancing past Samples is fine: the generator has no end.
		if _, _, err := e.encode(gen, 0, 10_000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*10_000/b.Elapsed().Seconds(), "samples/s")
}

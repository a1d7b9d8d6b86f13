package collector

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/vigil-tsdb/vigil/model"
)

// equalSeries compares batches exactly, NaN bit patterns included.
func equalSeries(a, b []model.Series) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d series, want %d", len(a), len(b))
	}
	for i := range a {
		if !labels.Equal(a[i].Labels, b[i].Labels) || a[i].Labels.Len() != b[i].Labels.Len() {
			return fmt.Errorf("series %d: labels %v, want %v", i, a[i].Labels, b[i].Labels)
		}
		if len(a[i].Samples) != len(b[i].Samples) {
			return fmt.Errorf("series %d: %d samples, want %d", i, len(a[i].Samples), len(b[i].Samples))
		}
		for j, s := range a[i].Samples {
			w := b[i].Samples[j]
			if s.T != w.T || math.Float64bits(s.V) != math.Float64bits(w.V) {
				return fmt.Errorf("series %d sample %d: %v, want %v", i, j, s, w)
			}
		}
	}
	return nil
}

// nodeBatch is a node_exporter-shaped batch: n series of one sample each.
func nodeBatch(n int, t int64) []model.Series {
	batch := make([]model.Series, n)
	for i := range batch {
		batch[i] = model.Series{
			Labels: labels.FromStrings("__name__", "node_cpu_seconds_total", "cpu", strconv.Itoa(i%64),
				"mode", []string{"idle", "user", "system", "iowait"}[i%4], "instance", "10.1.2."+strconv.Itoa(i/256)+":9100",
				"job", "node", "series", strconv.Itoa(i)),
			Samples: []model.Sample{{T: t, V: float64(i) * 1.5}},
		}
	}
	return batch
}

func TestSpoolFrameRoundTrip(t *testing.T) {
	unsorted := func() labels.Labels {
		var sb labels.ScratchBuilder
		sb.Add("z", "1")
		sb.Add("a", "2")
		return sb.Labels()
	}
	tests := []struct {
		name  string
		batch []model.Series
	}{
		{name: "empty batch", batch: nil},
		{name: "one sample", batch: []model.Series{{Labels: labels.FromStrings("__name__", "up", "job", "a"), Samples: []model.Sample{{T: 1_700_000_000_000, V: 1}}}}},
		{name: "staleness marker and specials", batch: []model.Series{{
			Labels: labels.FromStrings("__name__", "x"),
			Samples: []model.Sample{{T: 10, V: math.Float64frombits(value.StaleNaN)}, {T: 20, V: math.Inf(-1)},
				{T: 30, V: math.Copysign(0, -1)}, {T: 5, V: math.NaN()}},
		}}},
		{name: "negative and extreme times", batch: []model.Series{
			{Labels: labels.FromStrings("a", "b"), Samples: []model.Sample{{T: math.MinInt64, V: 1}, {T: math.MaxInt64, V: 2}}},
			{Labels: labels.FromStrings("a", "c"), Samples: []model.Sample{{T: -5, V: 3}}},
		}},
		{name: "no labels, no samples", batch: []model.Series{{}, {Labels: labels.FromStrings("__name__", "y")}}},
		{name: "unsorted labels kept as given", batch: []model.Series{{Labels: unsorted(), Samples: []model.Sample{{T: 1, V: 1}}}}},
		{name: "unicode and long values", batch: []model.Series{{Labels: labels.FromStrings("__name__", "ü", "v", string(bytes.Repeat([]byte("é"), 3000))), Samples: []model.Sample{{T: 1, V: 1}}}}},
		{name: "node batch", batch: nodeBatch(1000, 1_700_000_000_000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame, meta, err := encodeFrame(tc.batch, 42)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := checkSpoolFrame(frame)
			if err != nil {
				t.Fatal(err)
			}
			got, gotMeta, err := decodeBatch(payload)
			if err != nil {
				t.Fatal(err)
			}
			if gotMeta != meta || meta.AppendedAt != 42 || meta.Samples != model.CountSamples(tc.batch) {
				t.Fatalf("meta %+v, encoded %+v", gotMeta, meta)
			}
			if err := equalSeries(got, tc.batch); err != nil {
				t.Fatal(err)
			}
			// Every bit of the frame is covered: any single flipped bit is caught.
			for i := range frame {
				for bit := range 8 {
					frame[i] ^= 1 << bit
					if p, err := checkSpoolFrame(frame); err == nil {
						if _, _, err := decodeBatch(p); err == nil {
							t.Fatalf("flipping bit %d of byte %d went unnoticed", bit, i)
						}
					}
					frame[i] ^= 1 << bit
				}
				if i > 200 {
					break // the header and the start of the payload are enough
				}
			}
		})
	}
}

// TestSpoolFrameSize measures how compact a spooled node_exporter batch is.
func TestSpoolFrameSize(t *testing.T) {
	batch := nodeBatch(10_000, 1_700_000_000_000)
	frame, _, err := encodeFrame(batch, 1)
	if err != nil {
		t.Fatal(err)
	}
	var textBytes int
	for _, s := range batch {
		textBytes += len(s.Labels.String()) + 20
	}
	perSample := float64(len(frame)) / float64(len(batch))
	t.Logf("10,000 node_exporter-like samples: %d bytes in one frame, %.1f bytes/sample (exposition text ≈ %.1f bytes/sample)",
		len(frame), perSample, float64(textBytes)/float64(len(batch)))
	if perSample > 35 {
		t.Fatalf("%.1f bytes per sample; the symbol table should keep it near 30", perSample)
	}
}

func TestScanSpoolFrames(t *testing.T) {
	var frames [][]byte
	var all []byte
	for i := range 5 {
		f, _, err := encodeFrame(nodeBatch(3+i, int64(i)), int64(i))
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
		all = append(all, f...)
	}
	off := func(i int) int64 {
		var o int64
		for _, f := range frames[:i] {
			o += int64(len(f))
		}
		return o
	}
	tests := []struct {
		name     string
		damage   func(b []byte) []byte
		wantGood []int // frame numbers found
		wantBad  int
		wantTail int64 // offset of the bad tail, -1 for none
	}{
		{name: "clean", damage: func(b []byte) []byte { return b }, wantGood: []int{0, 1, 2, 3, 4}, wantTail: -1},
		{name: "payload bit flip in frame 2", damage: func(b []byte) []byte { b[off(2)+40] ^= 4; return b }, wantGood: []int{0, 1, 3, 4}, wantBad: 1, wantTail: -1},
		{name: "length of frame 1 garbage", damage: func(b []byte) []byte { b[off(1)+5] = 0x7f; return b }, wantGood: []int{0, 2, 3, 4}, wantBad: 1, wantTail: -1},
		{name: "marker of frame 3 gone", damage: func(b []byte) []byte { b[off(3)] = 0; return b }, wantGood: []int{0, 1, 2, 4}, wantBad: 1, wantTail: -1},
		{name: "frames 1 and 3 bad", damage: func(b []byte) []byte { b[off(1)+20] ^= 1; b[off(3)+9] ^= 1; return b }, wantGood: []int{0, 2, 4}, wantBad: 2, wantTail: -1},
		{name: "torn last frame", damage: func(b []byte) []byte { return b[:len(b)-7] }, wantGood: []int{0, 1, 2, 3}, wantTail: off(4)},
		{name: "torn header", damage: func(b []byte) []byte { return b[:off(4)+5] }, wantGood: []int{0, 1, 2, 3}, wantTail: off(4)},
		{name: "zeroed tail", damage: func(b []byte) []byte { return append(b, make([]byte, 100)...) }, wantGood: []int{0, 1, 2, 3, 4}, wantTail: off(5)},
		{name: "garbage in front", damage: func(b []byte) []byte { return append([]byte("garbage!"), b...) }, wantGood: []int{0, 1, 2, 3, 4}, wantBad: 1, wantTail: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.damage(append([]byte(nil), all...))
			good, bad, tail := scanSpoolFrames(b)
			var got []int
			for _, g := range good {
				for i := range frames {
					if bytes.Equal(b[g.Off:g.Off+g.Size], frames[i]) {
						got = append(got, i)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantGood) || len(bad) != tc.wantBad {
				t.Fatalf("good frames %v, want %v; bad regions %v, want %d", got, tc.wantGood, bad, tc.wantBad)
			}
			gotTail := int64(-1)
			if tail != nil {
				gotTail = tail.Off
			}
			if gotTail != tc.wantTail {
				t.Fatalf("tail at %d, want %d", gotTail, tc.wantTail)
			}
			checkTiling(t, b, good, bad, tail)
		})
	}
}

// checkTiling verifies that good frames and bad regions cover b exactly,
// in order and without overlap.
func checkTiling(t testing.TB, b []byte, good []scannedFrame, bad []badRegion, tail *badRegion) {
	t.Helper()
	type span struct{ off, n int64 }
	var spans []span
	for _, g := range good {
		spans = append(spans, span{g.Off, g.Size})
	}
	for _, r := range bad {
		spans = append(spans, span{r.Off, r.Len})
	}
	if tail != nil {
		spans = append(spans, span{tail.Off, tail.Len})
	}
	var covered int64
	for _, s := range spans {
		if s.n <= 0 || s.off < 0 || s.off+s.n > int64(len(b)) {
			t.Fatalf("span %+v outside %d bytes", s, len(b))
		}
		covered += s.n
	}
	if covered != int64(len(b)) {
		t.Fatalf("spans cover %d of %d bytes: %+v", covered, len(b), spans)
	}
}

func FuzzSpoolFrame(f *testing.F) {
	for i, batch := range [][]model.Series{nil, nodeBatch(1, 5), nodeBatch(4, -1), {{Labels: labels.FromStrings("a", "b")}}} {
		frame, _, err := encodeFrame(batch, int64(i))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame)
		f.Add(frame[frameHeaderSize:]) // the payload alone
		f.Add(append(frame[:len(frame)-1:len(frame)-1], frame...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// As a segment body: never panics, and accounts for every byte.
		good, bad, tail := scanSpoolFrames(data)
		checkTiling(t, data, good, bad, tail)
		for _, g := range good {
			payload, err := checkSpoolFrame(data[g.Off : g.Off+g.Size])
			if err != nil {
				t.Fatalf("scanned frame fails its check: %v", err)
			}
			decodeRoundTrip(t, payload)
		}
		// As a payload.
		decodeRoundTrip(t, data)
	})
}

// decodeRoundTrip decodes payload; if that works, encoding the result
// again must give a payload that decodes to the same batch and metadata.
func decodeRoundTrip(t *testing.T, payload []byte) {
	batch, meta, err := decodeBatch(payload)
	if err != nil {
		return
	}
	if model.CountSamples(batch) != meta.Samples {
		t.Fatalf("decoded %d samples, header says %d", model.CountSamples(batch), meta.Samples)
	}
	again := appendBatchPayload(nil, batch, batchMeta(batch, meta.AppendedAt))
	batch2, meta2, err := decodeBatch(again)
	if err != nil {
		t.Fatalf("re-encoded batch does not decode: %v", err)
	}
	if meta2 != meta {
		t.Fatalf("meta %+v after re-encoding, was %+v", meta2, meta)
	}
	if err := equalSeries(batch2, batch); err != nil {
		t.Fatal(err)
	}
}

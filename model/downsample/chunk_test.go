package downsample

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigil-tsdb/vigil/model"
)

// testWindows returns up to n windows of a 30 s scrape of the given kind.
func testWindows(seed uint64, k kind, width int64, n int) []Window {
	ws := Downsample(randomSeries(rand.New(rand.NewPCG(seed, 99)), k, 1+int(int64(n)*width/(24*hour))), width)
	return ws[:min(n, len(ws))]
}

func mustChunk(t testing.TB, ws []Window) []byte {
	t.Helper()
	b, err := AppendChunk(nil, ws)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChunkRoundTrip(t *testing.T) {
	weird := []float64{nan, math.Float64frombits(0x7ff0000000000002), math.Float64frombits(0xfff8000000000abc),
		math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 0, math.SmallestNonzeroFloat64, math.MaxFloat64}
	r := rand.New(rand.NewPCG(7, 7))
	var cases [][]Window
	for ki, k := range kinds {
		for _, width := range []int64{minute, hour} {
			ws := testWindows(uint64(ki), k, width, 1000)
			for len(ws) > 0 {
				n := min(len(ws), 1+r.IntN(MaxChunkWindows))
				cases = append(cases, ws[:n])
				ws = ws[n:]
			}
		}
	}
	// Random windows with odd values in every float column.
	for range 200 {
		ws := make([]Window, 1+r.IntN(MaxChunkWindows))
		end := int64(r.Uint64()>>12) - 1<<51
		for i := range ws {
			end += 1 + int64(r.IntN(1<<20))
			ws[i] = Window{End: end, Count: float64(1 + r.IntN(1000)), FirstT: end - int64(r.IntN(1000)), LastT: end}
			for _, c := range []Column{ColumnSum, ColumnMin, ColumnMax, ColumnFirstV, ColumnLastV, ColumnInc} {
				v := r.NormFloat64() * 1e6
				if r.IntN(4) == 0 {
					v = weird[r.IntN(len(weird))]
				}
				_ = ws[i].set(c, v)
			}
		}
		cases = append(cases, ws)
	}
	var dec Decoder
	for i, ws := range cases {
		b := mustChunk(t, ws)
		got, err := DecodeChunk(b)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		requireWindows(t, got, ws)
		for _, cols := range testColumnSets {
			got, err := dec.AppendColumns(nil, b, cols)
			if err != nil {
				t.Fatalf("case %d, columns %b: %v", i, cols, err)
			}
			requireWindows(t, got, onlyColumns(ws, cols))
		}
	}
}

// testColumnSets are the column sets the querier's views decode, and a few
// others.
var testColumnSets = []Columns{
	0, ColumnSet(ColumnSum), ColumnSet(ColumnMin), ColumnSet(ColumnMax),
	ColumnSet(ColumnFirstT, ColumnFirstV, ColumnLastT, ColumnLastV, ColumnInc),
	ColumnSet(ColumnLastT, ColumnLastV), ColumnSet(ColumnFirstT), AllColumns,
}

// onlyColumns returns ws with the columns not in cols (besides End and
// Count) zeroed, as Decoder.AppendColumns leaves them.
func onlyColumns(ws []Window, cols Columns) []Window {
	out := make([]Window, len(ws))
	for i, w := range ws {
		out[i] = Window{End: w.End, Count: w.Count}
		for c := range numColumns {
			if cols.Has(c) {
				_ = out[i].set(c, w.value(c))
			}
		}
	}
	return out
}

// TestChunkSize logs bytes per window of full chunks of a regular 30 s
// scrape (a figure for docs/downsampling.md; the only assertion is a sanity
// bound).
func TestChunkSize(t *testing.T) {
	gens := []struct {
		name string
		next func(r *rand.Rand, prev float64) float64
	}{
		{"requests counter", func(r *rand.Rand, prev float64) float64 { return prev + float64(r.IntN(200)) }},
		{"cpu seconds counter", func(r *rand.Rand, prev float64) float64 { return prev + 30*r.Float64() }},
		{"memory bytes gauge", func(r *rand.Rand, prev float64) float64 {
			return max(0, prev+math.Round(r.NormFloat64()*100)*4096)
		}},
		{"ratio gauge (0..1)", func(r *rand.Rand, _ float64) float64 { return r.Float64() }},
		{"constant (up)", func(*rand.Rand, float64) float64 { return 1 }},
	}
	for gi, g := range gens {
		r := rand.New(rand.NewPCG(uint64(gi), 1))
		for _, width := range []int64{minute, hour} {
			var ss []model.Sample
			v := 1e9
			for ts := int64(1_700_000_007_000); len(ss) < int(MaxChunkWindows*width/30_000); ts += 30_000 {
				v = g.next(r, v)
				ss = append(ss, model.Sample{T: ts, V: v})
			}
			ws := Downsample(ss, width)[:MaxChunkWindows]
			b := mustChunk(t, ws)
			var cols []string
			for c := ColumnCount; c < numColumns; c++ {
				cols = append(cols, c.String()+"="+strconv.FormatFloat(float64(len(xorColumn(ws, c)))/float64(len(ws)), 'f', 1, 64))
			}
			rawBytes := 0 // the same samples in raw chunks of 120
			for i := 0; i < len(ss); i += 120 {
				var ts []int64
				var vs []float64
				for _, s := range ss[i:min(i+120, len(ss))] {
					ts, vs = append(ts, s.T), append(vs, s.V)
				}
				rawBytes += len(xorBytes(ts, vs))
			}
			t.Logf("%-19s W=%-7d %5.1f B/window, raw %6.1f B/window (%s)", g.name, width,
				float64(len(b))/float64(len(ws)), float64(rawBytes)/float64(len(ws)), strings.Join(cols, " "))
			if len(b) > len(ws)*9*9+100 {
				t.Errorf("chunk of %d bytes for %d windows", len(b), len(ws))
			}
		}
	}
}

func TestAppendChunkErrors(t *testing.T) {
	ok := Window{End: minute, Count: 1, FirstT: 1, LastT: 1}
	at := func(end int64) Window { w := ok; w.End, w.FirstT, w.LastT = end, end, end; return w }
	tests := []struct {
		name string
		ws   []Window
		want string
	}{
		{"no windows", nil, "0 windows"},
		{"too many windows", make([]Window, MaxChunkWindows+1), "121 windows"},
		{"equal ends", []Window{at(minute), at(minute)}, "not after the previous end"},
		{"ends out of order", []Window{at(2 * minute), at(minute)}, "not after the previous end"},
		{"zero count", []Window{{End: minute}}, "not a positive integer"},
		{"fractional count", []Window{{End: minute, Count: 1.5}}, "not a positive integer"},
		{"NaN count", []Window{{End: minute, Count: nan}}, "not a positive integer"},
		{"first after last", []Window{{End: minute, Count: 2, FirstT: 5, LastT: 4}}, "out of order"},
		{"last after end", []Window{{End: minute, Count: 1, FirstT: 5, LastT: minute + 1}}, "out of order"},
		{"time beyond 2^53", []Window{{End: math.MaxInt64, Count: 1, FirstT: 1<<53 + 1, LastT: 1<<53 + 1}}, "beyond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte{1, 2}
			got, err := AppendChunk(dst, tt.ws)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if len(got) != 2 {
				t.Errorf("dst changed to %v", got)
			}
		})
	}
}

// xorBytes is an XOR chunk of the given times and values.
func xorBytes(ts []int64, vs []float64) []byte {
	xc := chunkenc.NewXORChunk()
	app, _ := xc.Appender()
	for i := range ts {
		app.Append(0, ts[i], vs[i])
	}
	return xc.Bytes()
}

// assemble builds a chunk from n and its columns, each with its length
// prefix (the count column first).
func assemble(n uint64, count []byte, rest ...[]byte) []byte {
	b := binary.AppendUvarint(nil, n)
	if count != nil {
		rest = append([][]byte{count}, rest...)
	}
	for _, r := range rest {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

func TestDecodeChunkErrors(t *testing.T) {
	ends := []int64{minute, 2 * minute}
	col := func(vs ...float64) []byte { return xorBytes(ends, vs) }
	ones := col(1, 1)
	valid := func() [][]byte { // sum … inc for two one-sample windows at their ends
		c := make([][]byte, 8)
		for i := range c {
			c[i] = ones
		}
		c[3], c[5] = col(60_000, 120_000), col(60_000, 120_000)
		return c
	}
	with := func(i int, b []byte) [][]byte { c := valid(); c[i] = b; return c }
	good := assemble(2, ones, valid()...)
	if _, err := DecodeChunk(good); err != nil {
		t.Fatalf("valid chunk: %v", err)
	}
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "truncated window count"},
		{"bad uvarint", []byte{0x80}, "truncated window count"},
		{"zero windows", assemble(0, nil), "0 windows"},
		{"too many windows", assemble(121, nil), "121 windows"},
		{"no count column", assemble(2, nil), "column count: truncated length"},
		{"empty count column", assemble(2, []byte{}), "column count: truncated chunk header"},
		{"count column of another length", assemble(2, xorBytes(ends[:1], []float64{1})), "column count: 1 samples, want 2"},
		{"count column cut short", assemble(2, ones[:3]), "column count: after 0 samples"},
		{"ends not increasing", assemble(2, xorBytes([]int64{minute, minute}, []float64{1, 1})), "not after the previous end"},
		{"missing columns", assemble(2, ones, valid()[:3]...), "column first_t: truncated length"},
		{"length beyond input", append(assemble(2, ones, valid()[:2]...), 50, 1), "column max: length 50 beyond the 1 bytes left"},
		{"column with too few samples", assemble(2, ones, with(0, xorBytes(ends[:1], []float64{1}))...), "column sum: 1 samples, want 2"},
		{"column at other times", assemble(2, ones, with(1, xorBytes([]int64{minute, 3 * minute}, []float64{1, 1}))...), "column min: window 1 at time 180000, want 120000"},
		{"fractional time", assemble(2, ones, with(3, col(1.5, 2))...), "column first_t: window 0: time 1.5 is not an integral"},
		{"NaN time", assemble(2, ones, with(5, col(nan, 2))...), "column last_t: window 0: time NaN"},
		{"trailing bytes", append(assemble(2, ones, valid()...), 0), "1 trailing bytes"},
		{"count not an integer", assemble(2, col(1, 0.5), valid()...), "window 1: count 0.5"},
		{"last_t after end", assemble(2, ones, with(5, col(60_000, 120_001))...), "window 1: first_t 120000, last_t 120001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := DecodeChunk(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "decode aggregate chunk: ") {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if ws != nil {
				t.Errorf("windows %v with the error", ws)
			}
		})
	}
	// Every truncation of a valid chunk is an error.
	b := mustChunk(t, testWindows(1, kinds[0], minute, MaxChunkWindows))
	for i := range len(b) {
		if _, err := DecodeChunk(b[:i]); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", i, len(b))
		}
	}
}

func FuzzAggregateChunk(f *testing.F) {
	for ki, k := range kinds {
		f.Add(mustChunk(f, testWindows(uint64(ki), k, minute, MaxChunkWindows)))
		f.Add(mustChunk(f, testWindows(uint64(ki), k, hour, 5)))
	}
	f.Add(mustChunk(f, []Window{{End: 0, Count: 1, Min: nan, Max: nan, FirstT: -1, LastT: 0}}))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 1})
	var dec Decoder // reused across inputs, as the querier does
	f.Fuzz(func(t *testing.T, b []byte) {
		prefix := []Window{{End: 1, Count: 1}}
		got, derr := dec.Append(prefix, b)
		ws, err := DecodeChunk(b)
		if (derr == nil) != (err == nil) {
			t.Fatalf("Decoder.Append error %v, DecodeChunk error %v", derr, err)
		}
		if err != nil {
			if len(got) != 1 || got[0] != prefix[0] {
				t.Fatalf("Decoder.Append changed dst on an error: %v", got)
			}
			return
		}
		requireWindows(t, got[1:], ws)
		for _, cols := range testColumnSets { // a valid chunk decodes in part
			part, err := dec.AppendColumns(nil, b, cols)
			if err != nil {
				t.Fatalf("columns %b: %v (all columns decode)", cols, err)
			}
			requireWindows(t, part, onlyColumns(ws, cols))
		}
		b2, err := AppendChunk(nil, ws)
		if err != nil {
			t.Fatalf("decoded windows do not encode: %v", err)
		}
		ws2, err := DecodeChunk(b2)
		if err != nil {
			t.Fatalf("re-encoded chunk does not decode: %v", err)
		}
		requireWindows(t, ws2, ws)
	})
}

func BenchmarkDecodeChunk(b *testing.B) {
	chunk := mustChunk(b, testWindows(1, kinds[1], minute, MaxChunkWindows))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeChunk(chunk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeCounterColumns decodes what the counter view needs.
func BenchmarkDecodeCounterColumns(b *testing.B) {
	chunk := mustChunk(b, testWindows(1, kinds[1], minute, MaxChunkWindows))
	cols := ColumnSet(ColumnFirstT, ColumnFirstV, ColumnLastT, ColumnLastV, ColumnInc)
	var (
		dec Decoder
		ws  []Window
	)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if ws, err = dec.AppendColumns(ws[:0], chunk, cols); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendChunk(b *testing.B) {
	ws := testWindows(1, kinds[1], minute, MaxChunkWindows)
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf, _ = AppendChunk(buf[:0], ws)
	}
}

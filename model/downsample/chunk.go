package downsample

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// EncodingAggregate is the encoding byte of an aggregate chunk in a tier's
// chunk value (docs/storage.md, "Badger keys"; raw XOR chunks are 1).
const EncodingAggregate byte = 2

// MaxChunkWindows is the most windows one aggregate chunk holds.
const MaxChunkWindows = 120

// maxExactTime bounds FirstT and LastT, which the chunk stores as float64.
const maxExactTime = 1 << 53

// chunkColumns are the chunk's length-prefixed XOR chunks, in order. Count
// comes first: its times are the window ends the others are checked
// against.
var chunkColumns = [...]Column{ColumnCount, ColumnSum, ColumnMin, ColumnMax, ColumnFirstT, ColumnFirstV, ColumnLastT, ColumnLastV, ColumnInc}

// Columns is a set of columns, one bit per Column.
type Columns uint16

// AllColumns holds every column.
const AllColumns Columns = 1<<numColumns - 1

// ColumnSet returns the set of cs.
func ColumnSet(cs ...Column) Columns {
	var s Columns
	for _, c := range cs {
		if c >= 0 && c < numColumns {
			s |= 1 << c
		}
	}
	return s
}

// Has reports whether c is in s.
func (s Columns) Has(c Column) bool { return c >= 0 && c < numColumns && s&(1<<c) != 0 }

// AppendChunk appends the aggregate chunk of ws (1 to MaxChunkWindows
// windows of one series, End strictly increasing) to dst:
//
//	uvarint(n) 9 × { uvarint(len) xor(End, column) }
//
// for the columns Count, Sum, Min, Max, FirstT, FirstV, LastT, LastV, Inc
// in this order, where
// xor is a Prometheus XOR chunk (its 2-byte header included) and times are
// float64 milliseconds. The encoding byte is not included. Windows that
// cannot be real aggregates (Count not a positive integer, not
// FirstT ≤ LastT ≤ End, a time beyond ±2⁵³) are refused, as DecodeChunk
// refuses them.
func AppendChunk(dst []byte, ws []Window) ([]byte, error) {
	if err := checkWindows(ws, AllColumns); err != nil {
		return dst, fmt.Errorf("encode aggregate chunk: %w", err)
	}
	dst = binary.AppendUvarint(dst, uint64(len(ws)))
	for _, c := range chunkColumns {
		b := xorColumn(ws, c)
		dst = binary.AppendUvarint(dst, uint64(len(b)))
		dst = append(dst, b...)
	}
	return dst, nil
}

func xorColumn(ws []Window, c Column) []byte {
	xc := chunkenc.NewXORChunk()
	app, _ := xc.Appender() // cannot fail on an empty chunk
	for i := range ws {
		app.Append(0, ws[i].End, ws[i].value(c))
	}
	return xc.Bytes()
}

// checkWindows checks ws as DecodeChunk would after decoding cols (End and
// Count are always there; the times only when both are in cols).
func checkWindows(ws []Window, cols Columns) error {
	times := cols.Has(ColumnFirstT) && cols.Has(ColumnLastT)
	if len(ws) == 0 || len(ws) > MaxChunkWindows {
		return fmt.Errorf("%d windows, want 1 to %d", len(ws), MaxChunkWindows)
	}
	for i, w := range ws {
		if i > 0 && w.End <= ws[i-1].End {
			return fmt.Errorf("window %d: end %d not after the previous end %d", i, w.End, ws[i-1].End)
		}
		if !(w.Count >= 1 && w.Count <= maxExactTime && w.Count == math.Trunc(w.Count)) {
			return fmt.Errorf("window %d: count %v is not a positive integer", i, w.Count)
		}
		if !times {
			continue
		}
		if w.FirstT < -maxExactTime || w.LastT > maxExactTime {
			return fmt.Errorf("window %d: times %d..%d beyond ±2^53 ms", i, w.FirstT, w.LastT)
		}
		if !(w.FirstT <= w.LastT && w.LastT <= w.End) {
			return fmt.Errorf("window %d: first_t %d, last_t %d, end %d out of order", i, w.FirstT, w.LastT, w.End)
		}
	}
	return nil
}

// DecodeChunk decodes an aggregate chunk (without its encoding byte). It
// checks the whole layout and every window and returns an error naming
// what is wrong; it never panics. The returned windows are new memory.
func DecodeChunk(b []byte) ([]Window, error) {
	var d Decoder
	return d.Append(nil, b)
}

// Decoder decodes aggregate chunks reusing its buffers between calls. The
// zero value is ready; it is not safe for concurrent use.
type Decoder struct {
	ts []int64
	vs []float64
	it chunkenc.Iterator
}

// Append decodes the aggregate chunk b as DecodeChunk does and appends its
// windows to dst. On an error dst is returned unchanged (its spare
// capacity may have been written).
func (d *Decoder) Append(dst []Window, b []byte) ([]Window, error) {
	return d.AppendColumns(dst, b, AllColumns)
}

// AppendColumns is Append for the columns in cols only (End and Count are
// always decoded): the others are skipped by their length and left zero
// in the windows, unchecked. A query that needs a few aggregates decodes
// only those (the counter view needs six of nine).
func (d *Decoder) AppendColumns(dst []Window, b []byte, cols Columns) ([]Window, error) {
	ws, err := d.decodeChunk(dst, b, cols|ColumnSet(ColumnCount))
	if err != nil {
		return dst, fmt.Errorf("decode aggregate chunk: %w", err)
	}
	return ws, nil
}

func (d *Decoder) decodeChunk(dst []Window, b []byte, cols Columns) ([]Window, error) {
	base := len(dst)
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return dst, errors.New("truncated window count")
	}
	if n == 0 || n > MaxChunkWindows {
		return dst[:base], fmt.Errorf("%d windows, want 1 to %d", n, MaxChunkWindows)
	}
	b = b[k:]
	dst = slices.Grow(dst, int(n))[:base+int(n)]
	ws := dst[base:]
	clear(ws)

	for _, c := range chunkColumns {
		l, k := binary.Uvarint(b)
		if k <= 0 {
			return dst[:base], fmt.Errorf("column %s: truncated length", c)
		}
		if l > uint64(len(b)-k) {
			return dst[:base], fmt.Errorf("column %s: length %d beyond the %d bytes left", c, l, len(b)-k)
		}
		col := b[k : k+int(l)]
		b = b[k+int(l):]
		if !cols.Has(c) {
			continue
		}
		ts, vs, err := d.decodeXOR(col, len(ws))
		if err != nil {
			return dst[:base], fmt.Errorf("column %s: %w", c, err)
		}
		if c == ColumnCount { // the first: it sets the window ends
			for i := range ws {
				if i > 0 && ts[i] <= ts[i-1] {
					return dst[:base], fmt.Errorf("window %d: end %d not after the previous end %d", i, ts[i], ts[i-1])
				}
				ws[i].End = ts[i]
			}
		}
		for i := range ws {
			if ts[i] != ws[i].End {
				return dst[:base], fmt.Errorf("column %s: window %d at time %d, want %d", c, i, ts[i], ws[i].End)
			}
			if err := ws[i].set(c, vs[i]); err != nil {
				return dst[:base], fmt.Errorf("column %s: window %d: %w", c, i, err)
			}
		}
	}
	if len(b) > 0 {
		return dst[:base], fmt.Errorf("%d trailing bytes", len(b))
	}
	if err := checkWindows(ws, cols); err != nil {
		return dst[:base], err
	}
	return dst, nil
}

// decodeXOR decodes an XOR chunk that must hold exactly n samples; bytes
// after them are ignored.
func (d *Decoder) decodeXOR(b []byte, n int) ([]int64, []float64, error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("truncated chunk header (%d bytes)", len(b))
	}
	if got := int(binary.BigEndian.Uint16(b)); got != n {
		return nil, nil, fmt.Errorf("%d samples, want %d", got, n)
	}
	xc, err := chunkenc.FromData(chunkenc.EncXOR, b)
	if err != nil {
		return nil, nil, err
	}
	ts, vs := d.ts[:0], d.vs[:0]
	d.it = xc.Iterator(d.it)
	it := d.it
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		ts, vs = append(ts, t), append(vs, v)
	}
	if err := it.Err(); err != nil {
		return nil, nil, fmt.Errorf("after %d samples: %w", len(ts), err)
	}
	d.ts, d.vs = ts, vs
	if len(ts) != n {
		return nil, nil, fmt.Errorf("%d samples decoded, want %d", len(ts), n)
	}
	return ts, vs, nil
}

// set stores v into column c; the time columns must hold integral
// milliseconds within ±2⁵³.
func (w *Window) set(c Column, v float64) error {
	switch c {
	case ColumnFirstT, ColumnLastT:
		if !(math.Abs(v) <= maxExactTime && v == math.Trunc(v)) {
			return fmt.Errorf("time %v is not an integral millisecond within ±2^53", v)
		}
		if c == ColumnFirstT {
			w.FirstT = int64(v)
		} else {
			w.LastT = int64(v)
		}
	case ColumnCount:
		w.Count = v
	case ColumnSum:
		w.Sum = v
	case ColumnMin:
		w.Min = v
	case ColumnMax:
		w.Max = v
	case ColumnFirstV:
		w.FirstV = v
	case ColumnLastV:
		w.LastV = v
	case ColumnInc:
		w.Inc = v
	}
	return nil
}

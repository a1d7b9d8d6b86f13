package collector

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// The spool's on-disk format; docs/collector.md ("Files") is the reference.

const (
	segmentHeaderSize = 8
	frameHeaderSize   = 12 // marker, length, crc
	frameMarker       = 0x46505356
	payloadVersion    = 1
	// maxFramePayload bounds one frame; a batch of 10,000 samples with
	// generous labels is a few MiB.
	maxFramePayload = 256 << 20
)

var (
	segmentHeader = [segmentHeaderSize]byte{'V', 'G', 'S', 'P', 1, 0, 0, 0}
	spoolCRC      = crc32.MakeTable(crc32.Castagnoli)
	markerBytes   = binary.LittleEndian.AppendUint32(nil, frameMarker)

	errFrameTooLarge = errors.New("batch too large for one spool frame")
)

// frameMeta is the head of a payload: enough to index a frame.
type frameMeta struct {
	AppendedAt int64 // ms since epoch, when the batch was spooled
	Samples    int
	MinT, MaxT int64 // over all samples; 0 when there are none
}

// batchMeta computes the metadata of batch.
func batchMeta(batch []model.Series, appendedAt int64) frameMeta {
	m := frameMeta{AppendedAt: appendedAt, MinT: math.MaxInt64, MaxT: math.MinInt64}
	for _, s := range batch {
		for _, smp := range s.Samples {
			m.Samples++
			m.MinT = min(m.MinT, smp.T)
			m.MaxT = max(m.MaxT, smp.T)
		}
	}
	if m.Samples == 0 {
		m.MinT, m.MaxT = 0, 0
	}
	return m
}

// spoolEncoder encodes frames, reusing its buffers and symbol map from one
// frame to the next. Not safe for concurrent use.
type spoolEncoder struct {
	refs map[string]uint64
	syms []string
	body []byte
}

// appendBatchPayload appends the payload encoding of batch to dst; meta
// is batchMeta(batch, appendedAt).
func appendBatchPayload(dst []byte, batch []model.Series, meta frameMeta) []byte {
	var e spoolEncoder
	return e.appendPayload(dst, batch, meta)
}

func (e *spoolEncoder) appendPayload(dst []byte, batch []model.Series, meta frameMeta) []byte {
	dst = append(dst, payloadVersion)
	dst = binary.AppendVarint(dst, meta.AppendedAt)
	dst = binary.AppendUvarint(dst, uint64(meta.Samples))
	dst = binary.AppendVarint(dst, meta.MinT)
	dst = binary.AppendVarint(dst, meta.MaxT)

	// Symbol table: every distinct name and value once.
	if e.refs == nil {
		e.refs = map[string]uint64{}
	}
	clear(e.refs)
	e.syms = e.syms[:0]
	ref := func(s string) uint64 {
		r, ok := e.refs[s]
		if !ok {
			r = uint64(len(e.syms))
			e.refs[s] = r
			e.syms = append(e.syms, s)
		}
		return r
	}
	body := binary.AppendUvarint(e.body[:0], uint64(len(batch)))
	for _, s := range batch {
		body = binary.AppendUvarint(body, uint64(s.Labels.Len()))
		s.Labels.Range(func(l labels.Label) {
			body = binary.AppendUvarint(body, ref(l.Name))
			body = binary.AppendUvarint(body, ref(l.Value))
		})
		body = binary.AppendUvarint(body, uint64(len(s.Samples)))
		prev := meta.MinT
		for _, smp := range s.Samples {
			body = binary.AppendVarint(body, smp.T-prev)
			body = binary.LittleEndian.AppendUint64(body, math.Float64bits(smp.V))
			prev = smp.T
		}
	}
	e.body = body
	dst = binary.AppendUvarint(dst, uint64(len(e.syms)))
	for _, s := range e.syms {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	clear(e.syms) // drop references to the batch's strings
	return append(dst, body...)
}

// sealFrame fills in the header of f, a frame whose payload is in place.
func sealFrame(f []byte) {
	payload := f[frameHeaderSize:]
	binary.LittleEndian.PutUint32(f, frameMarker)
	binary.LittleEndian.PutUint32(f[4:], uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum(f[4:8], spoolCRC), spoolCRC, payload)
	binary.LittleEndian.PutUint32(f[8:], crc)
}

// appendFrame appends the frame of batch to dst.
func (e *spoolEncoder) appendFrame(dst []byte, batch []model.Series, appendedAt int64) ([]byte, frameMeta, error) {
	start := len(dst)
	meta := batchMeta(batch, appendedAt)
	dst = append(dst, make([]byte, frameHeaderSize)...)
	dst = e.appendPayload(dst, batch, meta)
	if n := len(dst) - start - frameHeaderSize; n > maxFramePayload {
		return dst[:start], frameMeta{}, fmt.Errorf("%d bytes, limit %d: %w", n, maxFramePayload, errFrameTooLarge)
	}
	sealFrame(dst[start:])
	return dst, meta, nil
}

// encodeFrame returns the framed encoding of batch in a new buffer.
func encodeFrame(batch []model.Series, appendedAt int64) ([]byte, frameMeta, error) {
	var e spoolEncoder
	return e.appendFrame(nil, batch, appendedAt)
}

// checkSpoolFrame reports whether a whole, valid frame starts at b[0] and
// returns its payload. It never reads beyond b.
func checkSpoolFrame(b []byte) ([]byte, error) {
	if len(b) < frameHeaderSize {
		return nil, fmt.Errorf("short frame header (%d bytes)", len(b))
	}
	if binary.LittleEndian.Uint32(b) != frameMarker {
		return nil, errors.New("no frame marker")
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n > maxFramePayload || int64(n) > int64(len(b)-frameHeaderSize) {
		return nil, fmt.Errorf("frame length %d beyond the data (%d bytes left)", n, len(b)-frameHeaderSize)
	}
	payload := b[frameHeaderSize : frameHeaderSize+int(n)]
	crc := crc32.Update(crc32.Checksum(b[4:8], spoolCRC), spoolCRC, payload)
	if crc != binary.LittleEndian.Uint32(b[8:]) {
		return nil, errors.New("checksum mismatch")
	}
	return payload, nil
}

// scannedFrame is a good frame found by scanSpoolFrames.
type scannedFrame struct {
	Off  int64 // offset of the frame in the scanned buffer
	Size int64 // header plus payload
	Meta frameMeta
}

// badRegion is a run of bytes that holds no good frame.
type badRegion struct {
	Off, Len int64
	Err      error // why the frame at Off was rejected
}

// scanSpoolFrames finds the good frames in b (a segment after its header). A
// bad frame is skipped by searching for the next marker that starts a good
// frame. Bad runs followed by a good frame are returned in bad; a bad run
// that reaches the end of b is returned as tail (nil if b ends cleanly).
func scanSpoolFrames(b []byte) (good []scannedFrame, bad []badRegion, tail *badRegion) {
	var pos int64
	for pos < int64(len(b)) {
		f, err := spoolFrameAt(b[pos:])
		if err == nil {
			f.Off = pos
			good = append(good, f)
			pos += f.Size
			continue
		}
		// Resynchronise: the next marker that starts a good frame.
		next := int64(-1)
		for from := pos + 1; from < int64(len(b)); {
			i := bytes.Index(b[from:], markerBytes)
			if i < 0 {
				break
			}
			cand := from + int64(i)
			if _, cerr := spoolFrameAt(b[cand:]); cerr == nil {
				next = cand
				break
			}
			from = cand + 1
		}
		if next < 0 {
			return good, bad, &badRegion{Off: pos, Len: int64(len(b)) - pos, Err: err}
		}
		bad = append(bad, badRegion{Off: pos, Len: next - pos, Err: err})
		pos = next
	}
	return good, bad, nil
}

// spoolFrameAt checks the frame at b[0] and decodes its metadata.
func spoolFrameAt(b []byte) (scannedFrame, error) {
	payload, err := checkSpoolFrame(b)
	if err != nil {
		return scannedFrame{}, err
	}
	meta, _, err := decodeMeta(payload)
	if err != nil {
		return scannedFrame{}, err
	}
	return scannedFrame{Size: int64(frameHeaderSize + len(payload)), Meta: meta}, nil
}

// spoolDecoder reads the payload encoding; the first error sticks.
type spoolDecoder struct {
	b   []byte
	err error
}

func (d *spoolDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *spoolDecoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *spoolDecoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items that take at least minSize bytes each, so
// that a corrupt count cannot make the spoolDecoder allocate beyond the input.
func (d *spoolDecoder) count(what string, minSize int) int {
	v := d.uvarint(what)
	if d.err == nil && v > uint64(len(d.b)/minSize) {
		d.fail("%s %d beyond the data (%d bytes left)", what, v, len(d.b))
		return 0
	}
	return int(v)
}

func decodeMeta(payload []byte) (frameMeta, []byte, error) {
	if len(payload) == 0 || payload[0] != payloadVersion {
		return frameMeta{}, nil, errors.New("unknown payload version")
	}
	d := &spoolDecoder{b: payload[1:]}
	var m frameMeta
	m.AppendedAt = d.varint("append time")
	samples := d.uvarint("sample count")
	m.MinT = d.varint("min time")
	m.MaxT = d.varint("max time")
	if d.err != nil {
		return frameMeta{}, nil, d.err
	}
	// A sample takes at least 9 bytes of the body.
	if samples > uint64(len(d.b)/9) {
		return frameMeta{}, nil, fmt.Errorf("sample count %d beyond the data (%d bytes left)", samples, len(d.b))
	}
	m.Samples = int(samples)
	if m.Samples == 0 && (m.MinT != 0 || m.MaxT != 0) || m.MinT > m.MaxT {
		return frameMeta{}, nil, fmt.Errorf("bad time range %d..%d for %d samples", m.MinT, m.MaxT, m.Samples)
	}
	return m, d.b, nil
}

// decodeBatch decodes a payload. The result does not reference payload.
func decodeBatch(payload []byte) ([]model.Series, frameMeta, error) {
	meta, rest, err := decodeMeta(payload)
	if err != nil {
		return nil, frameMeta{}, err
	}
	d := &spoolDecoder{b: rest}
	syms := make([]string, d.count("symbol count", 1))
	for i := range syms {
		n := d.count("symbol length", 1)
		if d.err != nil {
			break
		}
		syms[i] = string(d.b[:n])
		d.b = d.b[n:]
	}
	series := make([]model.Series, d.count("series count", 2))
	all := make([]model.Sample, 0, meta.Samples)
	var (
		sb         labels.ScratchBuilder
		minT, maxT int64 = math.MaxInt64, math.MinInt64
	)
	sym := func() string {
		r := d.uvarint("symbol reference")
		if d.err == nil && r >= uint64(len(syms)) {
			d.fail("symbol reference %d of %d", r, len(syms))
		}
		if d.err != nil {
			return ""
		}
		return syms[r]
	}
	for i := range series {
		nl := d.count("label count", 2)
		sb.Reset()
		for range nl {
			name := sym()
			value := sym()
			sb.Add(name, value)
		}
		ns := d.count("series sample count", 9)
		if d.err != nil {
			break
		}
		if ns > meta.Samples-len(all) {
			d.fail("series %d has %d samples, more than the header's %d", i, ns, meta.Samples)
			break
		}
		start := len(all)
		t := meta.MinT
		for range ns {
			t += d.varint("timestamp delta")
			if d.err != nil || len(d.b) < 8 {
				d.fail("short sample")
				break
			}
			v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
			d.b = d.b[8:]
			all = append(all, model.Sample{T: t, V: v})
			minT, maxT = min(minT, t), max(maxT, t)
		}
		if d.err != nil {
			break
		}
		series[i] = model.Series{Labels: sb.Labels(), Samples: all[start:len(all):len(all)]}
	}
	switch {
	case d.err != nil:
	case len(d.b) != 0:
		d.fail("%d bytes after the last series", len(d.b))
	case len(all) != meta.Samples:
		d.fail("%d samples, header says %d", len(all), meta.Samples)
	case len(all) > 0 && (minT != meta.MinT || maxT != meta.MaxT):
		d.fail("time range %d..%d, header says %d..%d", minT, maxT, meta.MinT, meta.MaxT)
	}
	if d.err != nil {
		return nil, frameMeta{}, d.err
	}
	return series, meta, nil
}

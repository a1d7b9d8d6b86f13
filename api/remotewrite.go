package api

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-tsdb/vigil/model"
)

// errNativeHistograms is the cause given when a remote-write request carries
// native histograms, which Vigil does not store yet.
var errNativeHistograms = errors.New("native histograms are not supported yet; send float samples only (disable send_native_histograms in the sender or drop histogram series with write_relabel_configs)")

// DecodeRemoteWrite decodes a Prometheus remote-write 1.0 request body: a
// snappy block holding a prompb.WriteRequest. Labels of every series are
// sorted by name (duplicate names are kept, so that validation sees and
// names them); samples keep their order. Exemplars and metadata are
// ignored, and so are series without samples. A series carrying native
// histograms makes the whole request fail, since storing only part of it
// would silently drop data. Label sets are not validated here.
//
// The result does not alias body. Errors satisfy errors.Is(err,
// model.ErrBadData) and say what was wrong.
func DecodeRemoteWrite(body []byte) ([]model.Series, error) {
	return decodeRemoteWrite(body, 0, 0)
}

// snappyFramedMagic starts a snappy stream in the framed format.
var snappyFramedMagic = []byte("\xff\x06\x00\x00sNaPpY")

// snappyBufs holds decode buffers: the decoded protobuf is not referenced
// once decodeWriteRequest returns, as labels are copied.
var snappyBufs = sync.Pool{New: func() any { return new([]byte) }}

// decodeRemoteWrite is DecodeRemoteWrite refusing, with an error of class
// model.ErrTooLarge, bodies whose decoded size exceeds maxDecoded (before
// allocating it) and requests of more than maxSamples samples (as soon as
// they are seen); zero disables either limit.
func decodeRemoteWrite(body []byte, maxDecoded int64, maxSamples int) ([]model.Series, error) {
	if bytes.HasPrefix(body, snappyFramedMagic) {
		return nil, model.BadData("snappy body", errors.New("body is in the snappy framed (stream) format; remote write needs the snappy block format, not framed"))
	}
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, model.BadData("snappy body", fmt.Errorf("corrupt snappy block of %d bytes: %w", len(body), err))
	}
	// A snappy element expands at most 64/3-fold (a 3-byte copy of 64
	// bytes): a header claiming more is corrupt, and must not make us
	// allocate gigabytes for a few bytes of input.
	if int64(n) > int64(len(body))*22 {
		return nil, model.BadData("snappy body", fmt.Errorf("corrupt snappy block: %d bytes cannot decode to the %d bytes its header declares", len(body), n))
	}
	if maxDecoded > 0 && int64(n) > maxDecoded {
		return nil, fmt.Errorf("%w: snappy body decodes to %d bytes, limit is %d", model.ErrTooLarge, n, maxDecoded)
	}
	bufp := snappyBufs.Get().(*[]byte)
	defer func() {
		if cap(*bufp) <= maxPooledBuffer {
			snappyBufs.Put(bufp)
		}
	}()
	if cap(*bufp) < n {
		*bufp = make([]byte, n)
	}
	raw, err := snappy.Decode((*bufp)[:n], body)
	if err != nil {
		return nil, model.BadData("snappy body", fmt.Errorf("corrupt snappy block of %d bytes: %w", len(body), err))
	}
	return decodeWriteRequest(raw, maxSamples)
}

// decodeWriteRequest decodes an uncompressed prometheus.WriteRequest
// (prompb) straight into series. It reads the protobuf wire format with
// protowire instead of prompb's generated Unmarshal, which allocates every
// label name and value, every TimeSeries and every sample slice before we
// copy them again: this way a series costs two allocations (its labels and
// its share of one sample array). decode_test.go checks it against
// prompb.WriteRequest.Unmarshal, also under fuzzing.
func decodeWriteRequest(raw []byte, maxSamples int) ([]model.Series, error) {
	d := rwDecoder{maxSamples: maxSamples}
	// Size the slices for the request, but no larger than real series
	// (tens of bytes each) could need: empty TimeSeries entries cost two
	// bytes and must not make us allocate 30 times the body.
	if n := min(countTimeSeries(raw), len(raw)/32); n > 0 {
		d.out = make([]model.Series, 0, n)
		d.ends = make([]int, 0, n)
		d.samples = make([]model.Sample, 0, n)
	}
	total := len(raw)
	for len(raw) > 0 {
		off := total - len(raw)
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return nil, d.fail(total, off, "WriteRequest", protowire.ParseError(n))
		}
		raw = raw[n:]
		if num == 1 { // repeated TimeSeries timeseries
			if typ != protowire.BytesType {
				return nil, d.fail(total, off, "WriteRequest", fmt.Errorf("wrong wire type %d for field timeseries", typ))
			}
			msg, n := protowire.ConsumeBytes(raw)
			if n < 0 {
				return nil, d.fail(total, off, "WriteRequest", protowire.ParseError(n))
			}
			raw = raw[n:]
			if err := d.timeSeries(msg); err != nil {
				return nil, d.fail(total, off, fmt.Sprintf("TimeSeries %d", d.n-1), err)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, raw) // metadata and unknown fields
		if n < 0 {
			return nil, d.fail(total, off, "WriteRequest", protowire.ParseError(n))
		}
		raw = raw[n:]
	}
	// Give every series a capacity-limited share of one array, so that
	// appending to one series cannot overwrite the next.
	start := 0
	for i := range d.out {
		end := d.ends[i]
		d.out[i].Samples = d.samples[start:end:end]
		start = end
	}
	return d.out, nil
}

// countTimeSeries counts the TimeSeries of a WriteRequest without decoding
// them, to size the decoder's slices; it stops at the first malformed
// field.
func countTimeSeries(raw []byte) int {
	count := 0
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			break
		}
		raw = raw[n:]
		if n = protowire.ConsumeFieldValue(num, typ, raw); n < 0 {
			break
		}
		raw = raw[n:]
		if num == 1 {
			count++
		}
	}
	return count
}

// rwDecoder holds the state of one decodeWriteRequest.
type rwDecoder struct {
	maxSamples int // 0: no limit
	b          labels.ScratchBuilder
	n          int            // TimeSeries read so far
	samples    []model.Sample // samples of all series, in order
	ends       []int          // end of each output series' samples in samples
	out        []model.Series
}

func (d *rwDecoder) fail(total, off int, what string, err error) error {
	if errors.Is(err, model.ErrTooLarge) {
		return err
	}
	if errors.Is(err, errNativeHistograms) {
		return model.BadData("remote write protobuf", err)
	}
	return model.BadData("remote write protobuf", fmt.Errorf("%d bytes do not decode as prometheus.WriteRequest: %s at byte %d: %w", total, what, off, err))
}

// timeSeries decodes one TimeSeries message.
func (d *rwDecoder) timeSeries(msg []byte) error {
	d.n++
	d.b.Reset()
	start := len(d.samples)
	histograms := 0
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		if num >= 1 && num <= 4 && typ != protowire.BytesType {
			return fmt.Errorf("wrong wire type %d for field %d", typ, num)
		}
		switch num {
		case 1, 2: // repeated Label labels, repeated Sample samples
			sub, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return protowire.ParseError(n)
			}
			msg = msg[n:]
			if num == 1 {
				name, value, err := decodeLabel(sub)
				if err != nil {
					return fmt.Errorf("label: %w", err)
				}
				d.b.Add(name, value)
				continue
			}
			s, err := decodeSample(sub)
			if err != nil {
				return fmt.Errorf("sample: %w", err)
			}
			d.samples = append(d.samples, s)
			if d.maxSamples > 0 && len(d.samples) > d.maxSamples {
				return fmt.Errorf("%w: more than %d samples in one request", model.ErrTooLarge, d.maxSamples)
			}
			continue
		case 4: // repeated Histogram histograms
			histograms++
		}
		n = protowire.ConsumeFieldValue(num, typ, msg) // exemplars, histograms, unknown
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
	}
	// Labels copies the names and values, which point into the request.
	d.b.Sort()
	ls := d.b.Labels()
	if histograms > 0 {
		return fmt.Errorf("series %d %s has %d native histogram samples: %w", d.n-1, ls.String(), histograms, errNativeHistograms)
	}
	if len(d.samples) == start {
		return nil // exemplar-only series carry nothing we store
	}
	d.out = append(d.out, model.Series{Labels: ls})
	d.ends = append(d.ends, len(d.samples))
	return nil
}

// decodeLabel decodes a Label message. The strings alias msg.
func decodeLabel(msg []byte) (name, value string, err error) {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return "", "", protowire.ParseError(n)
		}
		msg = msg[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			b, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return "", "", protowire.ParseError(n)
			}
			msg = msg[n:]
			if num == 1 {
				name = yoloString(b)
			} else {
				value = yoloString(b)
			}
			continue
		}
		if num == 1 || num == 2 {
			return "", "", fmt.Errorf("wrong wire type %d for field %d", typ, num)
		}
		if n = protowire.ConsumeFieldValue(num, typ, msg); n < 0 {
			return "", "", protowire.ParseError(n)
		}
		msg = msg[n:]
	}
	return name, value, nil
}

// decodeSample decodes a Sample message: double value = 1, int64
// timestamp = 2.
func decodeSample(msg []byte) (model.Sample, error) {
	var s model.Sample
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return s, protowire.ParseError(n)
		}
		msg = msg[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(msg)
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			s.V = math.Float64frombits(v)
			msg = msg[n:]
			continue
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return s, protowire.ParseError(n)
			}
			s.T = int64(v)
			msg = msg[n:]
			continue
		case num == 1 || num == 2:
			return s, fmt.Errorf("wrong wire type %d for field %d", typ, num)
		}
		if n = protowire.ConsumeFieldValue(num, typ, msg); n < 0 {
			return s, protowire.ParseError(n)
		}
		msg = msg[n:]
	}
	return s, nil
}

// yoloString views b as a string without copying; the caller must not
// keep it beyond b's lifetime (ScratchBuilder.Labels copies).
func yoloString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

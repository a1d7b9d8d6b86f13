package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// WAL record payloads (docs/storage.md, "WAL"). The first byte is the type.
//
//	series:  0x01 uvarint(n) n × { uvarint(id) uvarint(nlabels) nlabels × { str name, str value } }
//	samples: 0x02 uvarint(n) varint(base t) n × { uvarint(id) varint(t − base) uint64le(value bits) }
//
// str is uvarint(len) bytes. A record is framed by the segment writer.
const (
	recSeries  byte = 1
	recSamples byte = 2
)

// maxRecordLen bounds one framed record; a larger length is corruption.
const maxRecordLen = 256 << 20

type walSeries struct {
	id     uint64
	labels labels.Labels
}

type walSample struct {
	id uint64
	t  int64
	v  float64
}

func appendSeriesRecord(b []byte, series []walSeries) []byte {
	b = append(b, recSeries)
	b = binary.AppendUvarint(b, uint64(len(series)))
	for _, s := range series {
		b = binary.AppendUvarint(b, s.id)
		b = binary.AppendUvarint(b, uint64(s.labels.Len()))
		b = model.AppendLabels(b, s.labels)
	}
	return b
}

func appendSamplesRecord(b []byte, samples []walSample) []byte {
	b = append(b, recSamples)
	b = binary.AppendUvarint(b, uint64(len(samples)))
	var base int64
	if len(samples) > 0 {
		base = samples[0].t
	}
	b = binary.AppendVarint(b, base)
	for _, s := range samples {
		b = binary.AppendUvarint(b, s.id)
		b = binary.AppendVarint(b, s.t-base)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.v))
	}
	return b
}

var errRecord = errors.New("malformed wal record")

// decodeRecord decodes one record payload into series or samples (the other
// is nil). It never panics on arbitrary input; the fuzz test holds it to that.
func decodeRecord(p []byte, sb *labels.ScratchBuilder, series []walSeries, samples []walSample) ([]walSeries, []walSample, error) {
	if len(p) == 0 {
		return nil, nil, fmt.Errorf("%w: empty", errRecord)
	}
	typ, b := p[0], p[1:]
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, fmt.Errorf("%w: bad count", errRecord)
	}
	b = b[w:]
	switch typ {
	case recSeries:
		if n > uint64(len(b))/2 { // every entry takes at least two bytes
			return nil, nil, fmt.Errorf("%w: %d series in %d bytes", errRecord, n, len(b))
		}
		series = series[:0]
		for i := uint64(0); i < n; i++ {
			id, w := binary.Uvarint(b)
			if w <= 0 {
				return nil, nil, fmt.Errorf("%w: series %d: bad id", errRecord, i)
			}
			b = b[w:]
			nl, w := binary.Uvarint(b)
			if w <= 0 || nl > uint64(len(b)) {
				return nil, nil, fmt.Errorf("%w: series %d: bad label count", errRecord, i)
			}
			b = b[w:]
			sb.Reset()
			for j := uint64(0); j < nl; j++ {
				var name, value string
				var err error
				if name, b, err = readString(b); err != nil {
					return nil, nil, fmt.Errorf("%w: series %d label %d: %v", errRecord, i, j, err)
				}
				if value, b, err = readString(b); err != nil {
					return nil, nil, fmt.Errorf("%w: series %d label %d: %v", errRecord, i, j, err)
				}
				sb.Add(name, value)
			}
			series = append(series, walSeries{id: id, labels: sb.Labels()})
		}
		if len(b) != 0 {
			return nil, nil, fmt.Errorf("%w: %d trailing bytes", errRecord, len(b))
		}
		return series, nil, nil
	case recSamples:
		if n > uint64(len(b))/10 { // id, t and 8 value bytes
			return nil, nil, fmt.Errorf("%w: %d samples in %d bytes", errRecord, n, len(b))
		}
		base, w := binary.Varint(b)
		if w <= 0 {
			return nil, nil, fmt.Errorf("%w: bad base timestamp", errRecord)
		}
		b = b[w:]
		samples = samples[:0]
		for i := uint64(0); i < n; i++ {
			id, w := binary.Uvarint(b)
			if w <= 0 {
				return nil, nil, fmt.Errorf("%w: sample %d: bad id", errRecord, i)
			}
			b = b[w:]
			dt, w := binary.Varint(b)
			if w <= 0 || len(b)-w < 8 {
				return nil, nil, fmt.Errorf("%w: sample %d: truncated", errRecord, i)
			}
			b = b[w:]
			v := math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
			samples = append(samples, walSample{id: id, t: base + dt, v: v})
		}
		if len(b) != 0 {
			return nil, nil, fmt.Errorf("%w: %d trailing bytes", errRecord, len(b))
		}
		return nil, samples, nil
	default:
		return nil, nil, fmt.Errorf("%w: unknown type %d", errRecord, typ)
	}
}

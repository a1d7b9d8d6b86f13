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
//	series:     0x01 uvarint(n) n × { uvarint(id) uvarint(nlabels) nlabels × { str name, str value } }
//	samples:    0x02 uvarint(n) varint(base t) n × { uvarint(id) varint(t − base) uint64le(value bits) }
//	tombstones: 0x03 uvarint(n) n × { uvarint(id) varint(maxt) }
//
// str is uvarint(len) bytes. A record is framed by the segment writer.
const (
	recSeries     byte = 1
	recSamples    byte = 2
	recTombstones byte = 3
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

// walTombstone deletes every sample of series id with a timestamp at or
// before maxt that was stored before the record (DB.DeleteSeries).
type walTombstone struct {
	id   uint64
	maxt int64
}

// walRecord is one decoded record: typ says which slice is filled. The
// slices are reused by the next decodeRecord into the same walRecord.
type walRecord struct {
	typ        byte
	series     []walSeries
	samples    []walSample
	tombstones []walTombstone
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

func appendTombstonesRecord(b []byte, tombs []walTombstone) []byte {
	b = append(b, recTombstones)
	b = binary.AppendUvarint(b, uint64(len(tombs)))
	for _, t := range tombs {
		b = binary.AppendUvarint(b, t.id)
		b = binary.AppendVarint(b, t.maxt)
	}
	return b
}

var errRecord = errors.New("malformed wal record")

// decodeRecord decodes one record payload into rec, reusing its slices.
// It never panics on arbitrary input; the fuzz test holds it to that.
func decodeRecord(p []byte, sb *labels.ScratchBuilder, rec *walRecord) error {
	rec.typ = 0
	rec.series, rec.samples, rec.tombstones = rec.series[:0], rec.samples[:0], rec.tombstones[:0]
	if len(p) == 0 {
		return fmt.Errorf("%w: empty", errRecord)
	}
	var err error
	switch p[0] {
	case recSeries:
		rec.series, err = decodeSeries(p[1:], sb, rec.series)
	case recSamples:
		rec.samples, err = decodeSamples(p[1:], rec.samples)
	case recTombstones:
		rec.tombstones, err = decodeTombstones(p[1:], rec.tombstones)
	default:
		return fmt.Errorf("%w: unknown type %d", errRecord, p[0])
	}
	if err == nil {
		rec.typ = p[0]
	}
	return err
}

func decodeCount(b []byte) (uint64, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return 0, nil, fmt.Errorf("%w: bad count", errRecord)
	}
	return n, b[w:], nil
}

func decodeSeries(b []byte, sb *labels.ScratchBuilder, series []walSeries) ([]walSeries, error) {
	n, b, err := decodeCount(b)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(b))/2 { // every entry takes at least two bytes
		return nil, fmt.Errorf("%w: %d series in %d bytes", errRecord, n, len(b))
	}
	for i := uint64(0); i < n; i++ {
		id, w := binary.Uvarint(b)
		if w <= 0 {
			return nil, fmt.Errorf("%w: series %d: bad id", errRecord, i)
		}
		b = b[w:]
		nl, w := binary.Uvarint(b)
		if w <= 0 || nl > uint64(len(b)) {
			return nil, fmt.Errorf("%w: series %d: bad label count", errRecord, i)
		}
		b = b[w:]
		sb.Reset()
		for j := uint64(0); j < nl; j++ {
			var name, value string
			var err error
			if name, b, err = readString(b); err != nil {
				return nil, fmt.Errorf("%w: series %d label %d: %v", errRecord, i, j, err)
			}
			if value, b, err = readString(b); err != nil {
				return nil, fmt.Errorf("%w: series %d label %d: %v", errRecord, i, j, err)
			}
			sb.Add(name, value)
		}
		series = append(series, walSeries{id: id, labels: sb.Labels()})
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errRecord, len(b))
	}
	return series, nil
}

func decodeSamples(b []byte, samples []walSample) ([]walSample, error) {
	n, b, err := decodeCount(b)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(b))/10 { // id, t and 8 value bytes
		return nil, fmt.Errorf("%w: %d samples in %d bytes", errRecord, n, len(b))
	}
	base, w := binary.Varint(b)
	if w <= 0 {
		return nil, fmt.Errorf("%w: bad base timestamp", errRecord)
	}
	b = b[w:]
	for i := uint64(0); i < n; i++ {
		id, w := binary.Uvarint(b)
		if w <= 0 {
			return nil, fmt.Errorf("%w: sample %d: bad id", errRecord, i)
		}
		b = b[w:]
		dt, w := binary.Varint(b)
		if w <= 0 || len(b)-w < 8 {
			return nil, fmt.Errorf("%w: sample %d: truncated", errRecord, i)
		}
		b = b[w:]
		v := math.Float64frombits(binary.LittleEndian.Uint64(b))
		b = b[8:]
		samples = append(samples, walSample{id: id, t: base + dt, v: v})
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errRecord, len(b))
	}
	return samples, nil
}

func decodeTombstones(b []byte, tombs []walTombstone) ([]walTombstone, error) {
	n, b, err := decodeCount(b)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(b))/2 { // id and maxt take at least a byte each
		return nil, fmt.Errorf("%w: %d tombstones in %d bytes", errRecord, n, len(b))
	}
	for i := uint64(0); i < n; i++ {
		id, w := binary.Uvarint(b)
		if w <= 0 {
			return nil, fmt.Errorf("%w: tombstone %d: bad id", errRecord, i)
		}
		b = b[w:]
		maxt, w := binary.Varint(b)
		if w <= 0 {
			return nil, fmt.Errorf("%w: tombstone %d: bad maxt", errRecord, i)
		}
		b = b[w:]
		tombs = append(tombs, walTombstone{id: id, maxt: maxt})
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errRecord, len(b))
	}
	return tombs, nil
}

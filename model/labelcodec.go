package model

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// The label-set encoding shared by storage (Badger keys and values, WAL) and
// the ingester push RPC: for each label in order,
//
//	uvarint(len(name)) name uvarint(len(value)) value
//
// It is self-delimiting, so an encoded set can be a key prefix.

// AppendLabels appends the encoding of ls to b.
func AppendLabels(b []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) {
		b = binary.AppendUvarint(b, uint64(len(l.Name)))
		b = append(b, l.Name...)
		b = binary.AppendUvarint(b, uint64(len(l.Value)))
		b = append(b, l.Value...)
	})
	return b
}

// EncodedLabelsSize returns len(AppendLabels(nil, ls)).
func EncodedLabelsSize(ls labels.Labels) int {
	n := 0
	ls.Range(func(l labels.Label) {
		n += uvarintSize(len(l.Name)) + len(l.Name) + uvarintSize(len(l.Value)) + len(l.Value)
	})
	return n
}

func uvarintSize(n int) int {
	s := 1
	for n >= 0x80 {
		n >>= 7
		s++
	}
	return s
}

// DecodeLabels decodes an encoded label set, using sb as scratch. The
// result does not reference b; b may be reused after the call. Labels are
// returned in encoded order (callers that need sorted sets check or sort).
func DecodeLabels(b []byte, sb *labels.ScratchBuilder) (labels.Labels, error) {
	sb.Reset()
	for len(b) > 0 {
		name, rest, err := readBytes(b)
		if err != nil {
			return labels.EmptyLabels(), fmt.Errorf("label name: %w", err)
		}
		value, rest, err := readBytes(rest)
		if err != nil {
			return labels.EmptyLabels(), fmt.Errorf("value of label %q: %w", name, err)
		}
		// scratchString may alias b: ScratchBuilder.Labels copies below.
		sb.Add(scratchString(name), scratchString(value))
		b = rest
	}
	return sb.Labels(), nil
}

var errBadLength = errors.New("bad length")

func readBytes(b []byte) ([]byte, []byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, nil, errBadLength
	}
	if n > uint64(len(b)-w) {
		return nil, nil, fmt.Errorf("length %d beyond end of buffer (%d bytes left)", n, len(b)-w)
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}

package api

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// The encoders below write what Prometheus' web/api/v1 JSON codec writes
// (jsoniter with its registered encoders for promql types, compatible with
// encoding/json), byte for byte, without importing web/api/v1, which pulls
// in Prometheus' config, rules and scrape packages. json_test.go holds
// Prometheus' own expected outputs.

// appendQueryData appends {"resultType":...,"result":...} and, if stats is
// not nil, the already-encoded "stats" object.
func appendQueryData(b []byte, v parser.Value, stats []byte) []byte {
	b = append(b, `{"resultType":`...)
	b = appendJSONString(b, string(v.Type()))
	b = append(b, `,"result":`...)
	b = appendValue(b, v)
	if stats != nil {
		b = append(b, `,"stats":`...)
		b = append(b, stats...)
	}
	return append(b, '}')
}

// appendValue appends a query result.
func appendValue(b []byte, v parser.Value) []byte {
	switch v := v.(type) {
	case promql.Vector:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSample(b, s)
		}
		return append(b, ']')
	case promql.Matrix:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendSeries(b, s)
		}
		return append(b, ']')
	case promql.Scalar, promql.String:
		// Prometheus encodes these through their MarshalJSON methods,
		// which use encoding/json: a float64 timestamp (1.01, not
		// 1.010) and encoding/json's string escaping.
		out, err := json.Marshal(v)
		if err != nil {
			return append(b, "null"...)
		}
		return append(b, out...)
	}
	return append(b, "null"...)
}

// appendSample appends {"metric":{...},"value":[t,"v"]} (or "histogram").
func appendSample(b []byte, s promql.Sample) []byte {
	b = append(b, `{"metric":`...)
	b = appendLabels(b, s.Metric)
	if s.H == nil {
		b = append(b, `,"value":[`...)
		b = appendTimestamp(b, s.T)
		b = append(b, ',')
		b = appendFloatString(b, s.F)
	} else {
		b = append(b, `,"histogram":[`...)
		b = appendTimestamp(b, s.T)
		b = append(b, ',')
		b = appendHistogram(b, s.H)
	}
	return append(b, ']', '}')
}

// appendSeries appends {"metric":{...},"values":[...],"histograms":[...]},
// leaving out an empty "values" or "histograms".
func appendSeries(b []byte, s promql.Series) []byte {
	b = append(b, `{"metric":`...)
	b = appendLabels(b, s.Metric)
	if len(s.Floats) > 0 {
		b = append(b, `,"values":[`...)
		for i, p := range s.Floats {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = appendTimestamp(b, p.T)
			b = append(b, ',')
			b = appendFloatString(b, p.F)
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	if len(s.Histograms) > 0 {
		b = append(b, `,"histograms":[`...)
		for i, p := range s.Histograms {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = appendTimestamp(b, p.T)
			b = append(b, ',')
			b = appendHistogram(b, p.H)
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendLabels appends a label set as a JSON object in label order.
func appendLabels(b []byte, ls labels.Labels) []byte {
	b = append(b, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONStringRaw(b, l.Name)
		b = append(b, ':')
		b = appendJSONStringRaw(b, l.Value)
	})
	return append(b, '}')
}

// appendTimestamp appends milliseconds t as seconds with exactly three
// decimals when not whole (jsonutil.MarshalTimestamp: 1.010, not 1.01).
func appendTimestamp(b []byte, t int64) []byte {
	if t < 0 {
		b = append(b, '-')
		t = -t
	}
	b = strconv.AppendInt(b, t/1000, 10)
	if frac := t % 1000; frac != 0 {
		b = append(b, '.')
		if frac < 100 {
			b = append(b, '0')
		}
		if frac < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, frac, 10)
	}
	return b
}

// appendFloatString appends a sample value as a JSON string the way
// jsonutil.MarshalFloat does: 'f' formatting, 'e' below 1e-6 and from
// 1e21 on, and "+Inf", "-Inf", "NaN".
func appendFloatString(b []byte, f float64) []byte {
	b = append(b, '"')
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	return append(b, '"')
}

// appendHistogram is jsonutil.MarshalHistogram: count, sum and the
// non-empty buckets as [boundaries, lower, upper, count].
func appendHistogram(b []byte, h *histogram.FloatHistogram) []byte {
	b = append(b, `{"count":`...)
	b = appendFloatString(b, h.Count)
	b = append(b, `,"sum":`...)
	b = appendFloatString(b, h.Sum)
	found := false
	it := h.AllBucketIterator()
	for it.Next() {
		bucket := it.At()
		if bucket.Count == 0 {
			continue
		}
		if !found {
			b = append(b, `,"buckets":[`...)
		} else {
			b = append(b, ',')
		}
		found = true
		boundaries := 2 // both exclusive
		switch {
		case bucket.LowerInclusive && bucket.UpperInclusive:
			boundaries = 3
		case bucket.LowerInclusive:
			boundaries = 1
		case bucket.UpperInclusive:
			boundaries = 0
		}
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(boundaries), 10)
		b = append(b, ',')
		b = appendFloatString(b, bucket.Lower)
		b = append(b, ',')
		b = appendFloatString(b, bucket.Upper)
		b = append(b, ',')
		b = appendFloatString(b, bucket.Count)
		b = append(b, ']')
	}
	if found {
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendStrings appends a JSON array of strings.
func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendAny appends v through encoding/json, for the small fixed-shape
// structs of the status endpoints.
func appendAny(b []byte, v any) ([]byte, error) {
	out, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, out...), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string the way Prometheus' jsoniter
// configuration (compatible with encoding/json, HTML escaping on) writes
// plain strings such as label names in /api/v1/labels, errors and
// warnings: <, > and & as \u003c..., control characters other than \n, \r
// and \t as \u00XX, U+2028 and U+2029 escaped, invalid UTF-8 replaced by
// U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			b = appendEscapedByte(b, c)
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONStringRaw appends s the way jsoniter's Stream.WriteString does,
// which Prometheus uses for label names and values in query results and
// /api/v1/series: only '"', '\\' and control characters are escaped; no
// HTML escaping, and bytes of invalid UTF-8 are passed through.
func appendJSONStringRaw(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			b = append(b, s[start:i]...)
			b = appendEscapedByte(b, c)
			start = i + 1
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendEscapedByte appends the jsoniter escape of an ASCII byte.
func appendEscapedByte(b []byte, c byte) []byte {
	switch c {
	case '\\', '"':
		return append(b, '\\', c)
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}

package api

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	commonmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// ParseLineProtocol parses InfluxDB line protocol,
//
//	measurement[,tag=value...] field=value[,field=value...] [timestamp]
//
// into series. Every numeric field becomes one sample of the metric
// measurement_field (characters outside [a-zA-Z0-9_:] replaced by '_', a
// leading digit prefixed with '_'); tags become labels (names sanitized the
// same way, without ':'). Floats, integers (1i), unsigned integers (1u) and
// booleans (true → 1, false → 0) are accepted; string fields ("...") are
// skipped. Timestamps are integers in precision units: "ns" or "n" (the
// default when empty), "us" or "u", "ms", "s", "m", "h"; a line without one
// gets defaultTimeMs. Samples of the same series are grouped, in input
// order. Lines starting with '#' and blank lines are ignored; "\r\n" line
// ends are accepted.
//
// Escaping follows InfluxDB: in measurements a backslash escapes ',' and
// ' '; in tag keys, tag values and field keys it escapes ',', '=' and ' ';
// in string field values it escapes '"' and '\'; "\\" is one backslash
// everywhere; a backslash before any other character is kept literally.
//
// The result does not alias body. Errors satisfy errors.Is(err,
// model.ErrBadData) and name the line and the part that failed.
func ParseLineProtocol(body []byte, precision string, defaultTimeMs int64) ([]model.Series, error) {
	toMs, err := precisionToMs(precision)
	if err != nil {
		return nil, model.BadData("line protocol", err)
	}
	p := lpParser{
		buf:     body,
		line:    1,
		toMs:    toMs,
		defT:    defaultTimeMs,
		g:       newSeriesGrouper(),
		byRaw:   make(map[string]int),
		scratch: make([]byte, 0, 64),
	}
	if err := p.parse(); err != nil {
		return nil, model.BadData("line protocol", err)
	}
	return p.g.series, nil
}

// precisionToMs returns a function converting a timestamp in the given
// precision to milliseconds.
func precisionToMs(precision string) (func(int64) (int64, error), error) {
	div := func(d int64) func(int64) (int64, error) {
		return func(t int64) (int64, error) {
			q := t / d
			if t%d < 0 {
				q-- // floor, so that -1ns is in the millisecond before 0
			}
			return q, nil
		}
	}
	mul := func(m int64) func(int64) (int64, error) {
		return func(t int64) (int64, error) {
			if t > math.MaxInt64/m || t < math.MinInt64/m {
				return 0, fmt.Errorf("timestamp %d overflows at precision %q", t, precision)
			}
			return t * m, nil
		}
	}
	switch precision {
	case "", "ns", "n":
		return div(1_000_000), nil
	case "us", "u", "µs":
		return div(1_000), nil
	case "ms":
		return func(t int64) (int64, error) { return t, nil }, nil
	case "s":
		return mul(1_000), nil
	case "m":
		return mul(60_000), nil
	case "h":
		return mul(3_600_000), nil
	}
	return nil, fmt.Errorf("unknown precision %q (want ns, us, ms, s, m or h)", precision)
}

type lpParser struct {
	buf  []byte
	pos  int
	line int // 1-based line number of pos
	toMs func(int64) (int64, error)
	defT int64
	g    *seriesGrouper
	// byRaw maps the raw bytes of "measurement,tags\x00field" to an index in
	// g.series, so that repeated series skip building labels.
	byRaw map[string]int

	// Per-line state.
	lineStart int
	meas      string
	tags      []labels.Label
	rawSeries []byte // measurement and tags as written
	fields    []lpField
	scratch   []byte
}

type lpField struct {
	key string
	v   float64
}

func (p *lpParser) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.line, fmt.Sprintf(format, args...))
}

func (p *lpParser) parse() error {
	for p.pos < len(p.buf) {
		p.skipSpace()
		if p.pos >= len(p.buf) {
			break
		}
		switch c := p.buf[p.pos]; {
		case c == '\n':
			p.pos++
			p.line++
			continue
		case c == '\r' && p.pos+1 < len(p.buf) && p.buf[p.pos+1] == '\n':
			p.pos += 2
			p.line++
			continue
		case c == '#':
			for p.pos < len(p.buf) && p.buf[p.pos] != '\n' {
				p.pos++
			}
			continue
		}
		if err := p.parseLine(); err != nil {
			return err
		}
	}
	return nil
}

func (p *lpParser) skipSpace() {
	for p.pos < len(p.buf) && (p.buf[p.pos] == ' ' || p.buf[p.pos] == '\t') {
		p.pos++
	}
}

// atEOL reports whether pos is at the end of a line: end of input, '\n',
// or "\r\n" / a final '\r'.
func (p *lpParser) atEOL() bool {
	if p.pos >= len(p.buf) {
		return true
	}
	switch p.buf[p.pos] {
	case '\n':
		return true
	case '\r':
		return p.pos+1 >= len(p.buf) || p.buf[p.pos+1] == '\n'
	}
	return false
}

// consumeEOL moves past the end of line at pos.
func (p *lpParser) consumeEOL() {
	if p.pos < len(p.buf) && p.buf[p.pos] == '\r' {
		p.pos++
	}
	if p.pos < len(p.buf) && p.buf[p.pos] == '\n' {
		p.pos++
		p.line++
	}
}

// scanToken reads an escaped token ending at an unescaped byte of stops,
// a newline or the end of input, and returns it unescaped. specials are the
// characters a backslash escapes in this token (besides the backslash).
func (p *lpParser) scanToken(stops, specials string) string {
	start := p.pos
	escaped := false
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		if c == '\n' {
			break
		}
		if c == '\\' && p.pos+1 < len(p.buf) && p.buf[p.pos+1] != '\n' {
			escaped = true
			p.pos += 2
			continue
		}
		if strings.IndexByte(stops, c) >= 0 {
			break
		}
		p.pos++
	}
	raw := p.buf[start:p.pos]
	if !escaped {
		return string(raw)
	}
	out := p.scratch[:0]
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' && i+1 < len(raw) && (raw[i+1] == '\\' || strings.IndexByte(specials, raw[i+1]) >= 0) {
			out = append(out, raw[i+1])
			i++
			continue
		}
		out = append(out, c)
	}
	p.scratch = out
	return string(out)
}

func (p *lpParser) parseLine() error {
	p.lineStart = p.pos
	p.tags = p.tags[:0]
	p.fields = p.fields[:0]

	p.meas = p.scanToken(", ", ", ")
	if p.meas == "" {
		return p.errorf("missing measurement")
	}
	for p.pos < len(p.buf) && p.buf[p.pos] == ',' {
		p.pos++
		key := p.scanToken(",= ", ",= ")
		if p.pos >= len(p.buf) || p.buf[p.pos] != '=' {
			return p.errorf("tag key %q of measurement %q has no value (want key=value)", key, p.meas)
		}
		if key == "" {
			return p.errorf("empty tag key in measurement %q", p.meas)
		}
		p.pos++
		val := p.scanToken(", ", ",= ")
		if val == "" {
			return p.errorf("tag %q of measurement %q has an empty value", key, p.meas)
		}
		p.tags = append(p.tags, labels.Label{Name: key, Value: val})
	}
	p.rawSeries = p.buf[p.lineStart:p.pos]
	if p.pos >= len(p.buf) || p.buf[p.pos] != ' ' {
		return p.errorf("measurement %q has no fields (want a space, then field=value)", p.meas)
	}
	p.skipSpace()
	if p.atEOL() {
		return p.errorf("measurement %q has no fields (want field=value after the space)", p.meas)
	}
	if err := p.parseFields(); err != nil {
		return err
	}

	// Optional timestamp.
	t := p.defT
	p.skipSpace()
	if !p.atEOL() {
		start := p.pos
		for p.pos < len(p.buf) && p.buf[p.pos] != ' ' && p.buf[p.pos] != '\t' && !p.atEOL() {
			p.pos++
		}
		tok := string(p.buf[start:p.pos])
		ts, err := strconv.ParseInt(tok, 10, 64)
		if err != nil {
			return p.errorf("invalid timestamp %q (want an integer)", tok)
		}
		if t, err = p.toMs(ts); err != nil {
			return p.errorf("%v", err)
		}
		p.skipSpace()
		if !p.atEOL() {
			return p.errorf("unexpected text %q after the timestamp", p.restOfLine())
		}
	}
	p.consumeEOL()
	for _, f := range p.fields {
		p.add(f, model.Sample{T: t, V: f.v})
	}
	return nil
}

func (p *lpParser) restOfLine() string {
	end := p.pos
	for end < len(p.buf) && p.buf[end] != '\n' && end-p.pos < 40 {
		end++
	}
	return string(p.buf[p.pos:end])
}

// parseFields reads field=value pairs up to the space before the
// timestamp or the end of the line.
func (p *lpParser) parseFields() error {
	for {
		key := p.scanToken(",= ", ",= ")
		if p.pos >= len(p.buf) || p.buf[p.pos] != '=' {
			return p.errorf("field %q of measurement %q has no value (want field=value)", key, p.meas)
		}
		if key == "" {
			return p.errorf("empty field key in measurement %q", p.meas)
		}
		p.pos++
		if p.pos < len(p.buf) && p.buf[p.pos] == '"' {
			if err := p.skipString(key); err != nil {
				return err
			}
		} else {
			start := p.pos
			for p.pos < len(p.buf) && p.buf[p.pos] != ',' && p.buf[p.pos] != ' ' && p.buf[p.pos] != '\t' && !p.atEOL() {
				p.pos++
			}
			v, err := parseFieldValue(string(p.buf[start:p.pos]))
			if err != nil {
				return p.errorf("field %q of measurement %q: %v", key, p.meas, err)
			}
			p.fields = append(p.fields, lpField{key: key, v: v})
		}
		if p.pos < len(p.buf) && p.buf[p.pos] == ',' {
			p.pos++
			continue
		}
		return nil
	}
}

// skipString moves past a quoted string field value, which may span lines.
func (p *lpParser) skipString(key string) error {
	startLine := p.line
	p.pos++ // opening quote
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case '\\':
			if p.pos+1 < len(p.buf) && (p.buf[p.pos+1] == '"' || p.buf[p.pos+1] == '\\') {
				p.pos += 2
				continue
			}
		case '\n':
			p.line++
		case '"':
			p.pos++
			if p.pos < len(p.buf) && p.buf[p.pos] != ',' && p.buf[p.pos] != ' ' && !p.atEOL() {
				return p.errorf("field %q of measurement %q: unexpected %q after the closing quote", key, p.meas, p.buf[p.pos])
			}
			return nil
		}
		p.pos++
	}
	return fmt.Errorf("line %d: field %q of measurement %q: unterminated string value", startLine, key, p.meas)
}

var errFieldValue = errors.New("want a float, an integer (1i), an unsigned integer (1u), a boolean or a quoted string")

// parseFieldValue parses an unquoted field value.
func parseFieldValue(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty value: %w", errFieldValue)
	}
	switch s {
	case "t", "T", "true", "True", "TRUE":
		return 1, nil
	case "f", "F", "false", "False", "FALSE":
		return 0, nil
	}
	switch last := s[len(s)-1]; last {
	case 'i':
		digits := s[:len(s)-1]
		if !isInteger(digits, true) {
			return 0, fmt.Errorf("invalid integer %q: %w", s, errFieldValue)
		}
		n, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("integer %q out of range", s)
		}
		return float64(n), nil
	case 'u':
		digits := s[:len(s)-1]
		if !isInteger(digits, false) {
			return 0, fmt.Errorf("invalid unsigned integer %q: %w", s, errFieldValue)
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unsigned integer %q out of range", s)
		}
		return float64(n), nil
	}
	// strconv.ParseFloat also takes "inf", "nan", hex floats and
	// underscores, which line protocol does not.
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return 0, fmt.Errorf("invalid number %q: %w", s, errFieldValue)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("number %q out of range", s)
		}
		return 0, fmt.Errorf("invalid number %q: %w", s, errFieldValue)
	}
	return v, nil
}

// isInteger reports whether s is a decimal integer, with a leading '-'
// only if signed.
func isInteger(s string, signed bool) bool {
	if signed && len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// add appends s to the series of field f on the current line.
func (p *lpParser) add(f lpField, s model.Sample) {
	key := make([]byte, 0, binary.MaxVarintLen64+len(p.rawSeries)+len(f.key))
	key = binary.AppendUvarint(key, uint64(len(p.rawSeries)))
	key = append(append(key, p.rawSeries...), f.key...)
	if i, ok := p.byRaw[string(key)]; ok {
		p.g.series[i].Samples = append(p.g.series[i].Samples, s)
		return
	}
	var b labels.ScratchBuilder
	b.Add(commonmodel.MetricNameLabel, sanitizeName(p.meas+"_"+f.key, true))
	for _, t := range p.tags {
		b.Add(sanitizeName(t.Name, false), t.Value)
	}
	b.Sort()
	// The grouper also finds the series when it was written with its tags
	// in another order.
	p.byRaw[string(key)] = p.g.add(b.Labels(), s)
}

// sanitizeName maps s to a valid Prometheus metric name (metric true) or
// label name: every character outside [a-zA-Z0-9_] (and ':' for metric
// names) becomes '_', and a leading digit gets a '_' prefix.
func sanitizeName(s string, metric bool) string {
	valid := true
	for i := 0; i < len(s); i++ {
		if !nameChar(s[i], metric) {
			valid = false
			break
		}
	}
	if valid && s != "" && !(s[0] >= '0' && s[0] <= '9') {
		return s
	}
	var sb strings.Builder
	sb.Grow(len(s) + 1)
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		sb.WriteByte('_')
	}
	for _, r := range s {
		if r < 0x80 && nameChar(byte(r), metric) {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

func nameChar(c byte, metric bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || (metric && c == ':')
}

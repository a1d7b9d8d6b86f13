package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/vigil-tsdb/vigil/model"
)

// Content types of the exposition formats ParseText reads.
const (
	contentTypeOpenMetrics = "application/openmetrics-text"
	contentTypeProtobuf    = "application/vnd.google.protobuf"
)

// ParseText parses a Prometheus text exposition (format 0.0.4) or, when
// contentType is application/openmetrics-text, an OpenMetrics 1.0 body,
// with Prometheus' own parser (textparse). Any other or empty content type
// is read as the Prometheus text format, so that `curl --data-binary` works.
//
// Samples without a timestamp get defaultTimeMs. Every label of extra is
// set on every series, replacing a label of the same name. Samples of the
// same series are grouped into one model.Series, in input order. HELP,
// TYPE, UNIT, comments and exemplars are ignored. Label sets are not
// validated here beyond what the format requires (the Pusher does that),
// so that a bad series is reported per series rather than failing the
// whole body.
//
// The result does not alias body. Errors satisfy errors.Is(err,
// model.ErrBadData) and name the line that failed.
func ParseText(body []byte, contentType string, defaultTimeMs int64, extra labels.Labels) ([]model.Series, error) {
	format := "prometheus text"
	mediaType, _, _ := mime.ParseMediaType(contentType)
	var p textparse.Parser
	switch mediaType {
	case contentTypeOpenMetrics:
		format = "openmetrics text"
		p = textparse.NewOpenMetricsParser(body, labels.NewSymbolTable())
	case contentTypeProtobuf:
		return nil, model.BadData("exposition", fmt.Errorf("content type %q (protobuf exposition) is not supported; send the text format", contentType))
	default:
		// The parser appends '\n' to its input: give it room for that in a
		// copy we own, so that it neither writes past len(body) into the
		// caller's memory nor reallocates, which keeps the byte slices it
		// returns inside body for error positions.
		cp := make([]byte, len(body), len(body)+1)
		copy(cp, body)
		body = cp
		p = textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	}

	var (
		g       = newSeriesGrouper()
		lset    labels.Labels
		lastOff = -1 // byte offset of the last entry parsed, for error positions
		lb      *labels.Builder
	)
	if !extra.IsEmpty() {
		lb = labels.NewBuilder(labels.EmptyLabels())
	}
	for {
		et, err := nextEntry(p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, model.BadData(format, fmt.Errorf("line %d: %w", errorLine(body, lastOff), err))
		}
		switch et {
		case textparse.EntrySeries:
			series, ts, v := p.Series()
			lastOff = offsetIn(body, series)
			p.Labels(&lset)
			t := defaultTimeMs
			if ts != nil {
				t = *ts
				// OpenMetrics timestamps are float seconds, converted
				// without a range check (1E20 comes out as -2^63).
				if t < minTime.UnixMilli() || t > maxTime.UnixMilli() {
					return nil, model.BadData(format, fmt.Errorf("line %d: %s: timestamp out of range (%s to %s)", lineOf(body, lastOff), series, minTimeFormatted, maxTimeFormatted))
				}
			}
			if lb != nil {
				lb.Reset(lset)
				extra.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
				lset = lb.Labels()
			}
			g.add(lset, model.Sample{T: t, V: v})
		case textparse.EntryHistogram:
			series, _, _, _ := p.Histogram()
			return nil, model.BadData(format, fmt.Errorf("line %d: %s: %w", lineOf(body, offsetIn(body, series)), series, errNativeHistograms))
		case textparse.EntryHelp:
			name, _ := p.Help()
			lastOff = offsetIn(body, name)
		case textparse.EntryType:
			name, _ := p.Type()
			lastOff = offsetIn(body, name)
		case textparse.EntryUnit:
			name, _ := p.Unit()
			lastOff = offsetIn(body, name)
		case textparse.EntryComment:
			lastOff = offsetIn(body, p.Comment())
		}
	}
	return g.series, nil
}

// nextEntry calls p.Next, turning a parser panic into an error: textparse
// is written for scrapes of trusted targets, and a push endpoint must not
// let a crafted body take the process down.
func nextEntry(p textparse.Parser) (et textparse.Entry, err error) {
	defer func() {
		if r := recover(); r != nil {
			et, err = textparse.EntryInvalid, fmt.Errorf("malformed input (parser panicked: %v)", r)
		}
	}()
	return p.Next()
}

// offsetIn returns the offset of sub within body if sub is a subslice of
// body (textparse returns subslices of its input), else -1.
func offsetIn(body, sub []byte) int {
	if len(sub) == 0 || len(body) == 0 {
		return -1
	}
	off := cap(body) - cap(sub)
	if off < 0 || off >= len(body) || &body[off] != &sub[0] {
		return -1
	}
	return off
}

// lineOf returns the 1-based line number of byte offset off, or 0 if off
// is unknown.
func lineOf(body []byte, off int) int {
	if off < 0 || off > len(body) {
		return 0
	}
	return bytes.Count(body[:off], []byte{'\n'}) + 1
}

// errorLine returns the line a parse error is on, given the offset of the
// last entry parsed successfully (-1 if none): every entry ends with its
// line, so the error is on the first non-blank line after it.
func errorLine(body []byte, lastOff int) int {
	start := 0
	if lastOff >= 0 {
		nl := bytes.IndexByte(body[lastOff:], '\n')
		if nl < 0 {
			return lineOf(body, lastOff)
		}
		start = lastOff + nl + 1
	}
	for start < len(body) && body[start] == '\n' {
		start++
	}
	if start >= len(body) {
		// Error at the end of input (e.g. missing "# EOF"): report the
		// last line.
		start = len(body)
		if start > 0 && body[start-1] == '\n' {
			start--
		}
	}
	return lineOf(body, start)
}

// seriesGrouper collects samples by label set, keeping first-seen order.
type seriesGrouper struct {
	series []model.Series
	byHash map[uint64][]int // label hash → indexes into series
}

func newSeriesGrouper() *seriesGrouper {
	return &seriesGrouper{byHash: make(map[uint64][]int)}
}

// add appends s to the series ls and returns that series' index.
func (g *seriesGrouper) add(ls labels.Labels, s model.Sample) int {
	h := ls.Hash()
	for _, i := range g.byHash[h] {
		if labels.Equal(g.series[i].Labels, ls) {
			g.series[i].Samples = append(g.series[i].Samples, s)
			return i
		}
	}
	i := len(g.series)
	g.byHash[h] = append(g.byHash[h], i)
	g.series = append(g.series, model.Series{Labels: ls, Samples: []model.Sample{s}})
	return i
}

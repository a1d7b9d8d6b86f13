package api

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	commonmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Parameter parsing follows Prometheus' web/api/v1 so that clients get the
// same answers and the same error texts.

var (
	// minTime and maxTime are Prometheus' defaults for optional time
	// ranges (web/api/v1.MinTime and MaxTime): far enough out for any data,
	// close enough that milliseconds fit in an int64.
	minTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	maxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = minTime.Format(time.RFC3339Nano)
	maxTimeFormatted = maxTime.Format(time.RFC3339Nano)
)

// maxPointsPerSeries is Prometheus' limit on (end-start)/step for range
// queries.
const maxPointsPerSeries = 11000

// parseTime parses a Unix timestamp in (fractional) seconds or an RFC 3339
// time. Fractions are rounded to milliseconds.
func parseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(t) || t < float64(minTime.Unix()) || t > float64(maxTime.Unix()) {
			return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
		}
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// time.Parse handles only four-digit years; accept at least our own
	// boundary times, as Prometheus does.
	switch s {
	case minTimeFormatted:
		return minTime, nil
	case maxTimeFormatted:
		return maxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// parseTimeParam parses an optional time parameter, returning def when it
// is empty.
func parseTimeParam(val, name string, def time.Time) (time.Time, error) {
	if val == "" {
		return def, nil
	}
	t, err := parseTime(val)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// parseDuration parses (fractional) seconds or a Prometheus duration such
// as 5m or 1h30m.
func parseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts > float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := commonmodel.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}

// parseLimit parses the limit parameter; 0 (also for "") means no limit.
func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if err := checkLimit(int64(n)); err != nil {
		return 0, err
	}
	return n, nil
}

// checkLimit refuses a negative limit.
func checkLimit(n int64) error {
	if n < 0 {
		return errors.New("limit must be non-negative")
	}
	return nil
}

// parseStep parses and checks the step of a range query.
func parseStep(s string) (time.Duration, error) {
	step, err := parseDuration(s)
	if err != nil {
		return 0, err
	}
	return step, checkStep(step)
}

// checkStep refuses a step that is not positive.
func checkStep(step time.Duration) error {
	if step <= 0 {
		return errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	return nil
}

// tooManyPoints reports whether a range query would return more than
// maxPointsPerSeries points per series.
func tooManyPoints(start, end time.Time, step time.Duration) bool {
	return end.Sub(start)/step > maxPointsPerSeries
}

// parseMatchers parses match[] selectors; each must have at least one
// matcher that does not match the empty string (as in Prometheus, so that
// `{foo=""}` cannot select every series).
func parseMatchers(p parser.Parser, ss []string) ([][]*labels.Matcher, error) {
	sets, err := p.ParseMetricSelectors(ss)
	if err != nil {
		return nil, err
	}
outer:
	for _, ms := range sets {
		for _, m := range ms {
			if m != nil && !m.Matches("") {
				continue outer
			}
		}
		return nil, errors.New("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

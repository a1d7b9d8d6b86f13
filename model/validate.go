package model

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

// Limits are the per-series and per-request checks applied where data
// enters Vigil. The zero value of a field disables that check.
type Limits struct {
	MaxLabelsPerSeries   int           `yaml:"max_labels_per_series"`
	MaxLabelNameLength   int           `yaml:"max_label_name_length"`
	MaxLabelValueLength  int           `yaml:"max_label_value_length"`
	MaxSamplesPerRequest int           `yaml:"max_samples_per_request"`
	MaxFuture            time.Duration `yaml:"max_future"`     // how far past now a timestamp may be
	RejectNaNInf         bool          `yaml:"reject_nan_inf"` // refuse NaN (not the staleness marker) and ±Inf
}

// DefaultLimits returns the limits Vigil runs with unless configured.
func DefaultLimits() Limits {
	return Limits{
		MaxLabelsPerSeries:   40,
		MaxLabelNameLength:   1024,
		MaxLabelValueLength:  4096,
		MaxSamplesPerRequest: 1_000_000,
		MaxFuture:            10 * time.Minute,
		RejectNaNInf:         true,
	}
}

// ValidateLabels checks one label set: a valid metric name, valid and unique
// label names in sorted order, non-empty values, and the length limits.
// It returns the rejection reason and a message, or "" if the set is valid.
func (l Limits) ValidateLabels(ls labels.Labels) (Reason, string) {
	if ls.IsEmpty() {
		return ReasonInvalidLabels, "series has no labels"
	}
	n := ls.Len()
	if l.MaxLabelsPerSeries > 0 && n > l.MaxLabelsPerSeries {
		return ReasonTooManyLabels, fmt.Sprintf("series has %d labels, limit is %d", n, l.MaxLabelsPerSeries)
	}
	name := ls.Get(MetricNameLabel)
	if name == "" {
		return ReasonMissingName, "series has no __name__ label"
	}
	if !IsValidMetricName(name) {
		return ReasonInvalidName, fmt.Sprintf("invalid metric name %q", name)
	}
	var (
		prev   string
		reason Reason
		msg    string
		first  = true
	)
	ls.Range(func(lb labels.Label) {
		if reason != "" {
			return
		}
		switch {
		case !first && lb.Name == prev:
			reason, msg = ReasonInvalidLabels, fmt.Sprintf("duplicate label name %q", lb.Name)
		case !first && lb.Name < prev:
			reason, msg = ReasonInvalidLabels, fmt.Sprintf("label names not sorted: %q after %q", lb.Name, prev)
		case !IsValidLabelName(lb.Name):
			reason, msg = ReasonInvalidLabels, fmt.Sprintf("invalid label name %q", lb.Name)
		case lb.Value == "":
			reason, msg = ReasonInvalidLabels, fmt.Sprintf("label %q has an empty value", lb.Name)
		case !utf8.ValidString(lb.Value):
			reason, msg = ReasonInvalidLabels, fmt.Sprintf("value of label %q is not valid UTF-8", lb.Name)
		case l.MaxLabelNameLength > 0 && len(lb.Name) > l.MaxLabelNameLength:
			reason, msg = ReasonLabelTooLong, fmt.Sprintf("label name of %d bytes, limit is %d", len(lb.Name), l.MaxLabelNameLength)
		case l.MaxLabelValueLength > 0 && len(lb.Value) > l.MaxLabelValueLength:
			reason, msg = ReasonLabelTooLong, fmt.Sprintf("value of label %q is %d bytes, limit is %d", lb.Name, len(lb.Value), l.MaxLabelValueLength)
		}
		prev, first = lb.Name, false
	})
	return reason, msg
}

// ValidateSample checks one sample of a series at wall-clock time now (ms).
func (l Limits) ValidateSample(s Sample, now int64) (Reason, string) {
	if l.RejectNaNInf && !value.IsStaleNaN(s.V) && (math.IsNaN(s.V) || math.IsInf(s.V, 0)) {
		return ReasonInvalidValue, fmt.Sprintf("value %v at %d is not a number (only the staleness marker NaN is accepted)", s.V, s.T)
	}
	if l.MaxFuture > 0 && s.T > now+l.MaxFuture.Milliseconds() {
		return ReasonTooFarInFuture, fmt.Sprintf("timestamp %d is %s past the server's clock, limit is %s",
			s.T, time.Duration(s.T-now)*time.Millisecond, l.MaxFuture)
	}
	return "", ""
}

// Filter validates a batch at wall-clock time now (ms) and returns the valid
// part; the refused samples are recorded in res. The input is not modified.
// When everything is valid (the common case) the batch itself is returned;
// otherwise a new slice that shares the valid series.
func (l Limits) Filter(batch []Series, now int64, res *PushResult) []Series {
	var out []Series // nil until the first refusal
	for i, s := range batch {
		kept, ok := l.filterSeries(s, now, res)
		if ok && out == nil {
			continue
		}
		if out == nil {
			out = make([]Series, 0, len(batch))
			out = append(out, batch[:i]...)
		}
		if len(kept.Samples) > 0 {
			out = append(out, kept)
		}
	}
	if out == nil {
		return batch
	}
	return out
}

// filterSeries returns s, or what is left of it, and whether s was wholly valid.
func (l Limits) filterSeries(s Series, now int64, res *PushResult) (Series, bool) {
	if reason, msg := l.ValidateLabels(s.Labels); reason != "" {
		res.Reject(len(s.Samples), Rejection{Reason: reason, Series: s.Labels.String(), Message: msg})
		return Series{}, false
	}
	bad := -1
	for i, smp := range s.Samples {
		if r, _ := l.ValidateSample(smp, now); r != "" {
			bad = i
			break
		}
	}
	if bad < 0 {
		return s, true
	}
	kept := make([]Sample, 0, len(s.Samples))
	kept = append(kept, s.Samples[:bad]...)
	for _, smp := range s.Samples[bad:] {
		if r, msg := l.ValidateSample(smp, now); r != "" {
			res.Reject(1, Rejection{Reason: r, Series: s.Labels.String(), T: smp.T, Message: msg})
			continue
		}
		kept = append(kept, smp)
	}
	return Series{Labels: s.Labels, Samples: kept}, false
}

// IsValidMetricName reports whether n matches [a-zA-Z_:][a-zA-Z0-9_:]*,
// the legacy Prometheus metric name syntax every Prometheus 2.x tool accepts.
func IsValidMetricName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// IsValidLabelName reports whether n matches [a-zA-Z_][a-zA-Z0-9_]*.
func IsValidLabelName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// CountSamples returns the number of samples in batch.
func CountSamples(batch []Series) int {
	n := 0
	for _, s := range batch {
		n += len(s.Samples)
	}
	return n
}

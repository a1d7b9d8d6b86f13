package model

import (
	"github.com/prometheus/prometheus/model/labels"
)

// Sample is one (timestamp, value) pair. T is milliseconds since the epoch.
type Sample struct {
	T int64
	V float64
}

// Series is a set of labels (including __name__) and samples in the order
// they were received. Callers own Labels and Samples; storage copies what it
// keeps.
type Series struct {
	Labels  labels.Labels
	Samples []Sample
}

// PushResult says what became of a batch. Stored plus Duplicates plus
// RejectedSamples equals the number of samples offered.
type PushResult struct {
	Stored          int // samples written
	Duplicates      int // exact duplicates (same series, time and value), dropped silently
	RejectedSamples int // samples refused; Rejections says why
	// ByReason counts every refused sample by reason (nil if none).
	ByReason map[Reason]int
	// Rejections holds up to MaxRejectionDetails examples, first ones first.
	Rejections []Rejection
}

// MaxRejectionDetails caps PushResult.Rejections so that an all-bad request
// of a million samples does not produce a million-line answer.
const MaxRejectionDetails = 10

// Rejection describes one refused sample or series.
type Rejection struct {
	Reason  Reason // machine-readable class
	Series  string // labels of the series, in Prometheus text form
	T       int64  // timestamp of the sample, 0 for series-level reasons
	Message string // human-readable detail
}

// Reject records a rejection of n samples in r: counted always, detailed
// while fewer than MaxRejectionDetails are listed.
func (r *PushResult) Reject(n int, rej Rejection) {
	r.countReason(rej.Reason, n)
	if len(r.Rejections) < MaxRejectionDetails {
		r.Rejections = append(r.Rejections, rej)
	}
}

func (r *PushResult) countReason(reason Reason, n int) {
	r.RejectedSamples += n
	if r.ByReason == nil {
		r.ByReason = map[Reason]int{}
	}
	r.ByReason[reason] += n
}

// Merge adds o's counts and rejection details to r.
func (r *PushResult) Merge(o PushResult) {
	r.Stored += o.Stored
	r.Duplicates += o.Duplicates
	r.RejectedSamples += o.RejectedSamples
	for reason, n := range o.ByReason {
		if r.ByReason == nil {
			r.ByReason = map[Reason]int{}
		}
		r.ByReason[reason] += n
	}
	for _, rej := range o.Rejections {
		if len(r.Rejections) >= MaxRejectionDetails {
			break
		}
		r.Rejections = append(r.Rejections, rej)
	}
}

// Reason classifies why a sample or series was refused.
type Reason string

// Rejection reasons. They appear in HTTP error bodies and in the
// vigil_*_rejected_samples_total{reason=...} metrics, so they are stable.
const (
	ReasonInvalidLabels   Reason = "invalid_labels" // empty, duplicate, unsorted or malformed names/values
	ReasonMissingName     Reason = "missing_metric_name"
	ReasonInvalidName     Reason = "invalid_metric_name"
	ReasonTooManyLabels   Reason = "too_many_labels"
	ReasonLabelTooLong    Reason = "label_too_long"
	ReasonInvalidValue    Reason = "invalid_value" // NaN (other than the staleness marker) or ±Inf
	ReasonTooFarInFuture  Reason = "too_far_in_future"
	ReasonTooOld          Reason = "too_old" // older than the out-of-order window allows
	ReasonConflict        Reason = "duplicate_timestamp_conflict"
	ReasonSeriesLimit     Reason = "series_limit"
	ReasonUnsupportedType Reason = "unsupported_sample_type"
)

// ChunkEncoding names the encoding of Chunk.Data; it is the byte stored on
// disk and sent over gRPC, so values never change meaning.
type ChunkEncoding uint8

// Chunk encodings.
const (
	EncXOR ChunkEncoding = 1 // Prometheus chunkenc XOR (Gorilla)
)

// MetricNameLabel is the label that holds the metric name.
const MetricNameLabel = "__name__"

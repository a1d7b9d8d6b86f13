package rules

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	vmodel "github.com/vigil-tsdb/vigil/model"
)

// pushAppendable is the rule manager's storage: an evaluation's samples
// (recording rules, ALERTS, ALERTS_FOR_STATE) are buffered and pushed
// through the distributor in one batch at Commit.
// dropStale, when set, tells from an appender's context whether its
// staleness markers must be dropped (a group handed over to another
// ruler: its series live on there).
type pushAppendable struct {
	push      Pusher
	dropStale func(ctx context.Context) bool
}

func (a pushAppendable) Appender(ctx context.Context) storage.Appender {
	return &pushAppender{ctx: ctx, push: a.push, index: map[string]int{}, dropStale: a.dropStale}
}

// errUnsupported answers what Vigil does not store (native histograms,
// exemplars, metadata): a rule producing them fails its evaluation with
// this text.
var errUnsupported = errors.New("not supported by Vigil's storage")

type pushAppender struct {
	ctx    context.Context
	push   Pusher
	series []vmodel.Series
	index  map[string]int // labels → position in series

	dropStale func(ctx context.Context) bool
}

func (a *pushAppender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	if value.IsStaleNaN(v) && a.dropStale != nil && a.dropStale(a.ctx) {
		return 0, nil
	}
	key := l.String()
	i, ok := a.index[key]
	if !ok {
		i = len(a.series)
		a.index[key] = i
		a.series = append(a.series, vmodel.Series{Labels: l})
	}
	a.series[i].Samples = append(a.series[i].Samples, vmodel.Sample{T: t, V: v})
	return 0, nil
}

// Commit pushes the buffered samples; an error (no quorum, a refused
// sample) fails the evaluation, which the rule manager counts and logs.
func (a *pushAppender) Commit() error {
	if len(a.series) == 0 {
		return nil
	}
	res, err := a.push.Push(a.ctx, a.series)
	a.series, a.index = nil, map[string]int{}
	if err != nil {
		return fmt.Errorf("push rule results: %w", err)
	}
	if res.RejectedSamples > 0 {
		return fmt.Errorf("push rule results: %d samples refused (%v)", res.RejectedSamples, res.ByReason)
	}
	return nil
}

func (a *pushAppender) Rollback() error {
	a.series, a.index = nil, map[string]int{}
	return nil
}

func (a *pushAppender) SetOptions(*storage.AppendOptions) {}

func (a *pushAppender) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, fmt.Errorf("exemplars: %w", errUnsupported)
}

func (a *pushAppender) AppendHistogram(_ storage.SeriesRef, l labels.Labels, _ int64, _ *histogram.Histogram, _ *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, fmt.Errorf("%s: native histograms: %w", l, errUnsupported)
}

func (a *pushAppender) AppendHistogramSTZeroSample(_ storage.SeriesRef, l labels.Labels, _, _ int64, _ *histogram.Histogram, _ *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, fmt.Errorf("%s: native histograms: %w", l, errUnsupported)
}

func (a *pushAppender) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, nil // metadata is not kept; not an error
}

func (a *pushAppender) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, nil // start timestamps are not kept
}

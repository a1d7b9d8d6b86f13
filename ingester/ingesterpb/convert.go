package ingesterpb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-tsdb/vigil/model"
)

// FromSeries converts a batch to a PushRequest. Everything is copied, into
// a few large arrays shared by the request's series.
func FromSeries(batch []model.Series) *PushRequest {
	return new(PushBuffer).Fill(batch)
}

// PushBuffer holds the arrays behind a PushRequest so that a caller that
// sends many requests can reuse them: Fill builds a request in the
// buffer's memory, valid until the next Fill. Not safe for concurrent use.
type PushBuffer struct {
	req    PushRequest
	series []TimeSeries
	lbuf   []byte
	tbuf   []int64
	vbuf   []float64
}

// Fill converts batch into the buffer's request and returns it.
func (pb *PushBuffer) Fill(batch []model.Series) *PushRequest {
	nLabelBytes, nSamples := 0, 0
	for _, s := range batch {
		nLabelBytes += model.EncodedLabelsSize(s.Labels)
		nSamples += len(s.Samples)
	}
	lbuf := grow(pb.lbuf, nLabelBytes)
	tbuf := grow(pb.tbuf, nSamples)
	vbuf := grow(pb.vbuf, nSamples)
	pb.series = grow(pb.series, len(batch))[:len(batch)]
	pb.req.Series = grow(pb.req.Series, len(batch))[:len(batch)]
	for i, s := range batch {
		l0, s0 := len(lbuf), len(tbuf)
		lbuf = model.AppendLabels(lbuf, s.Labels)
		for _, smp := range s.Samples {
			tbuf = append(tbuf, smp.T)
			vbuf = append(vbuf, smp.V)
		}
		ts := &pb.series[i]
		ts.Labels = lbuf[l0:len(lbuf):len(lbuf)]
		ts.TimestampsMs = tbuf[s0:len(tbuf):len(tbuf)]
		ts.Values = vbuf[s0:len(vbuf):len(vbuf)]
		pb.req.Series[i] = ts
	}
	pb.lbuf, pb.tbuf, pb.vbuf = lbuf, tbuf, vbuf
	return &pb.req
}

// grow returns s emptied, with capacity for at least n elements.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, 0, n)
	}
	return s[:0]
}

// ToSeries converts a PushRequest to a batch; label sets are sorted,
// samples kept in the order sent. The batch does not reference req.
func ToSeries(req *PushRequest) ([]model.Series, error) {
	n := 0
	for _, ts := range req.Series {
		if len(ts.TimestampsMs) != len(ts.Values) {
			return nil, model.BadData("push request", fmt.Errorf("series has %d timestamps and %d values", len(ts.TimestampsMs), len(ts.Values)))
		}
		n += len(ts.TimestampsMs)
	}
	smps := make([]model.Sample, n)
	out := make([]model.Series, len(req.Series))
	var sb labels.ScratchBuilder
	for i, ts := range req.Series {
		lset, err := model.DecodeLabels(ts.Labels, &sb)
		if err != nil {
			return nil, model.BadData(fmt.Sprintf("labels of series %d", i), err)
		}
		if !sortedUnique(lset) { // rare: the distributor sends sorted sets
			var ls []labels.Label
			lset.Range(func(l labels.Label) { ls = append(ls, l) })
			if lset = labels.New(ls...); !sortedUnique(lset) {
				return nil, model.BadData(fmt.Sprintf("labels of series %d", i), fmt.Errorf("duplicate label name in %s", lset))
			}
		}
		if lset.IsEmpty() {
			return nil, model.BadData(fmt.Sprintf("labels of series %d", i), errors.New("empty label set"))
		}
		k := len(ts.TimestampsMs)
		mine := smps[:k:k]
		smps = smps[k:]
		for j, t := range ts.TimestampsMs {
			mine[j] = model.Sample{T: t, V: ts.Values[j]}
		}
		out[i] = model.Series{Labels: lset, Samples: mine}
	}
	return out, nil
}

func sortedUnique(ls labels.Labels) bool {
	prev, ok, first := "", true, true
	ls.Range(func(l labels.Label) {
		if !first && l.Name <= prev {
			ok = false
		}
		prev, first = l.Name, false
	})
	return ok
}

// FromLabels converts labels to their wire form.
func FromLabels(ls labels.Labels) []*Label {
	out := make([]*Label, 0, ls.Len())
	pairs := make([]Label, ls.Len())
	i := 0
	ls.Range(func(l labels.Label) {
		pairs[i] = Label{Name: l.Name, Value: l.Value}
		out = append(out, &pairs[i])
		i++
	})
	return out
}

// ToLabels converts wire labels, sorting them by name.
func ToLabels(ls []*Label, sb *labels.ScratchBuilder) labels.Labels {
	sb.Reset()
	for _, l := range ls {
		sb.Add(l.Name, l.Value)
	}
	sb.Sort()
	return sb.Labels()
}

// FromResult and ToResult convert push results.
func FromResult(r model.PushResult) *PushResponse {
	resp := &PushResponse{Stored: uint64(r.Stored), Duplicates: uint64(r.Duplicates), RejectedSamples: uint64(r.RejectedSamples)}
	if len(r.ByReason) > 0 {
		resp.RejectedByReason = make(map[string]uint64, len(r.ByReason))
		for reason, n := range r.ByReason {
			resp.RejectedByReason[string(reason)] = uint64(n)
		}
	}
	for _, rej := range r.Rejections {
		resp.Rejections = append(resp.Rejections, &Rejection{Reason: string(rej.Reason), Series: rej.Series, TimestampMs: rej.T, Message: rej.Message})
	}
	return resp
}

func ToResult(resp *PushResponse) model.PushResult {
	r := model.PushResult{Stored: int(resp.Stored), Duplicates: int(resp.Duplicates), RejectedSamples: int(resp.RejectedSamples)}
	if len(resp.RejectedByReason) > 0 {
		r.ByReason = make(map[model.Reason]int, len(resp.RejectedByReason))
		for reason, n := range resp.RejectedByReason {
			r.ByReason[model.Reason(reason)] = int(n)
		}
	}
	for _, rej := range resp.Rejections {
		r.Rejections = append(r.Rejections, model.Rejection{Reason: model.Reason(rej.Reason), Series: rej.Series, T: rej.TimestampMs, Message: rej.Message})
	}
	return r
}

// FromMatchers and ToMatchers convert label matchers.
func FromMatchers(ms []*labels.Matcher) []*LabelMatcher {
	out := make([]*LabelMatcher, len(ms))
	for i, m := range ms {
		var t LabelMatcher_Type
		switch m.Type {
		case labels.MatchEqual:
			t = LabelMatcher_EQ
		case labels.MatchNotEqual:
			t = LabelMatcher_NEQ
		case labels.MatchRegexp:
			t = LabelMatcher_RE
		case labels.MatchNotRegexp:
			t = LabelMatcher_NRE
		}
		out[i] = &LabelMatcher{Type: t, Name: m.Name, Value: m.Value}
	}
	return out
}

func ToMatchers(ms []*LabelMatcher) ([]*labels.Matcher, error) {
	out := make([]*labels.Matcher, len(ms))
	for i, m := range ms {
		var t labels.MatchType
		switch m.Type {
		case LabelMatcher_EQ:
			t = labels.MatchEqual
		case LabelMatcher_NEQ:
			t = labels.MatchNotEqual
		case LabelMatcher_RE:
			t = labels.MatchRegexp
		case LabelMatcher_NRE:
			t = labels.MatchNotRegexp
		default:
			return nil, model.BadData("matcher", fmt.Errorf("unknown matcher type %d", m.Type))
		}
		lm, err := labels.NewMatcher(t, m.Name, m.Value)
		if err != nil {
			return nil, model.BadData(fmt.Sprintf("matcher %s", m.Name), err)
		}
		out[i] = lm
	}
	return out, nil
}

// ToStatus maps an error to a gRPC status: the one place the server side
// decides codes.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var code codes.Code
	switch {
	case errors.Is(err, model.ErrBadData):
		code = codes.InvalidArgument
	case errors.Is(err, model.ErrTooLarge), errors.Is(err, model.ErrOverloaded):
		code = codes.ResourceExhausted
	case errors.Is(err, model.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	default:
		code = codes.Internal
	}
	return status.Error(code, err.Error())
}

// FromStatus maps a gRPC error from an ingester back to a model error
// class, keeping the server's message: the client side of ToStatus.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %v", model.ErrUnavailable, err)
	}
	msg := st.Message()
	switch st.Code() {
	case codes.InvalidArgument:
		return model.BadData("ingester", errors.New(msg))
	case codes.ResourceExhausted:
		// ToStatus sends both classes as ResourceExhausted; the message
		// keeps the class's text. Too large is final, overloaded is not.
		if strings.Contains(msg, model.ErrTooLarge.Error()) {
			return fmt.Errorf("%w: %s", model.ErrTooLarge, msg)
		}
		return fmt.Errorf("%w: %s", model.ErrOverloaded, msg)
	case codes.Canceled:
		return fmt.Errorf("%s: %w", msg, context.Canceled)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %w", msg, context.DeadlineExceeded)
	default: // Unavailable, Internal, Unknown...: retryable from the client's view
		return fmt.Errorf("ingester: %w: %s", model.ErrUnavailable, msg)
	}
}

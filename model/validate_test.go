package model

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

func TestValidateLabels(t *testing.T) {
	l := DefaultLimits()
	long := strings.Repeat("x", 5000)
	tests := []struct {
		name string
		ls   labels.Labels
		want Reason
	}{
		{name: "valid", ls: labels.FromStrings("__name__", "up", "job", "x")},
		{name: "empty", ls: labels.EmptyLabels(), want: ReasonInvalidLabels},
		{name: "no name", ls: labels.FromStrings("job", "x"), want: ReasonMissingName},
		{name: "bad name", ls: labels.FromStrings("__name__", "1up"), want: ReasonInvalidName},
		{name: "bad label name", ls: labels.FromStrings("__name__", "up", "a-b", "x"), want: ReasonInvalidLabels},
		{name: "empty value", ls: labels.FromStrings("__name__", "up", "a", ""), want: ReasonInvalidLabels},
		{name: "duplicate", ls: labels.New(labels.Label{Name: "__name__", Value: "up"}, labels.Label{Name: "a", Value: "1"}, labels.Label{Name: "a", Value: "2"}), want: ReasonInvalidLabels},
		{name: "invalid utf-8", ls: labels.FromStrings("__name__", "up", "a", "\xff"), want: ReasonInvalidLabels},
		{name: "value too long", ls: labels.FromStrings("__name__", "up", "a", long), want: ReasonLabelTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, msg := l.ValidateLabels(tc.ls)
			if got != tc.want {
				t.Fatalf("reason %q (%s), want %q", got, msg, tc.want)
			}
			if got != "" && msg == "" {
				t.Fatal("refusal without a message")
			}
		})
	}
}

func TestFilter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0).UnixMilli()
	l := DefaultLimits()
	good := Series{Labels: labels.FromStrings("__name__", "a"), Samples: []Sample{{T: now, V: 1}}}
	mixed := Series{Labels: labels.FromStrings("__name__", "b"), Samples: []Sample{{T: now, V: 1}, {T: now + 1, V: math.NaN()}, {T: now + 2, V: math.Float64frombits(value.StaleNaN)}, {T: now + time.Hour.Milliseconds(), V: 1}}}
	bad := Series{Labels: labels.FromStrings("__name__", "9"), Samples: []Sample{{T: now, V: 1}}}

	var res PushResult
	all := []Series{good, good}
	if out := l.Filter(all, now, &res); &out[0] != &all[0] || res.RejectedSamples != 0 {
		t.Fatal("an all-valid batch must be returned as it is")
	}
	res = PushResult{}
	out := l.Filter([]Series{good, mixed, bad, good}, now, &res)
	if len(out) != 3 || len(out[1].Samples) != 2 || res.RejectedSamples != 3 {
		t.Fatalf("out %v, res %+v", out, res)
	}
	reasons := map[Reason]bool{}
	for _, r := range res.Rejections {
		reasons[r.Reason] = true
	}
	if !reasons[ReasonInvalidValue] || !reasons[ReasonTooFarInFuture] || !reasons[ReasonInvalidName] {
		t.Fatalf("reasons %v", reasons)
	}
	if len(mixed.Samples) != 4 {
		t.Fatal("input modified")
	}
}

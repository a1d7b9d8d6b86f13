package distributor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
)

type fakeIngester struct {
	ingesterpb.IngesterClient
	push func(*ingesterpb.PushRequest) (*ingesterpb.PushResponse, error)
}

func (f *fakeIngester) Push(_ context.Context, req *ingesterpb.PushRequest, _ ...grpc.CallOption) (*ingesterpb.PushResponse, error) {
	return f.push(req)
}

func TestPush(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ok := func(name string, v float64) model.Series {
		return model.Series{Labels: labels.FromStrings("__name__", name), Samples: []model.Sample{{T: now.UnixMilli(), V: v}}}
	}
	tests := []struct {
		name         string
		batch        []model.Series
		ingester     func(*ingesterpb.PushRequest) (*ingesterpb.PushResponse, error)
		wantErr      error
		wantStored   int
		wantRejected int
		wantReason   model.Reason
		wantSent     int // series that reached the ingester
	}{
		{name: "all valid", batch: []model.Series{ok("a", 1), ok("b", 2)}, wantStored: 2, wantSent: 2},
		{name: "invalid series filtered, rest sent", batch: []model.Series{ok("a", 1), ok("9bad", 1), ok("c", math.Inf(1))},
			wantStored: 1, wantRejected: 2, wantReason: model.ReasonInvalidName, wantSent: 1},
		{name: "nothing valid: ingester not called", batch: []model.Series{ok("9bad", 1)}, wantRejected: 1, wantReason: model.ReasonInvalidName},
		{name: "too many samples", batch: []model.Series{ok("a", 1), ok("b", 1), ok("c", 1), ok("d", 1)}, wantErr: model.ErrTooLarge},
		{name: "ingester unavailable", batch: []model.Series{ok("a", 1)}, wantSent: 1, wantErr: model.ErrUnavailable,
			ingester: func(*ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
				return nil, status.Error(codes.Unavailable, "wal failed")
			}},
		{name: "ingester rejections merged", batch: []model.Series{ok("a", 1), ok("b", 1)}, wantSent: 2, wantStored: 1, wantRejected: 1, wantReason: model.ReasonTooOld,
			ingester: func(req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
				return &ingesterpb.PushResponse{Stored: 1, RejectedSamples: 1, RejectedByReason: map[string]uint64{string(model.ReasonTooOld): 1}, Rejections: []*ingesterpb.Rejection{{Reason: string(model.ReasonTooOld), Message: "old"}}}, nil
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sent := 0
			ing := &fakeIngester{push: func(req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
				sent = len(req.Series)
				if tc.ingester != nil {
					return tc.ingester(req)
				}
				return &ingesterpb.PushResponse{Stored: uint64(len(req.Series))}, nil
			}}
			cfg := DefaultConfig()
			cfg.Limits.MaxSamplesPerRequest = 3
			d, err := New(cfg, ing, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			if err != nil {
				t.Fatal(err)
			}
			d.now = func() time.Time { return now }
			res, err := d.Push(context.Background(), tc.batch)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if sent != tc.wantSent || res.Stored != tc.wantStored || res.RejectedSamples != tc.wantRejected {
				t.Fatalf("sent %d stored %d rejected %d, want %d %d %d (%+v)", sent, res.Stored, res.RejectedSamples, tc.wantSent, tc.wantStored, tc.wantRejected, res)
			}
			if tc.wantReason != "" && (len(res.Rejections) == 0 || res.Rejections[0].Reason != tc.wantReason) {
				t.Fatalf("rejections %+v, want first reason %s", res.Rejections, tc.wantReason)
			}
			for _, r := range res.Rejections {
				if r.Message == "" || (r.Series == "" && r.Reason != model.ReasonTooOld) {
					t.Errorf("rejection without detail: %+v", r)
				}
				if strings.TrimSpace(r.Message) != r.Message {
					t.Errorf("untidy message %q", r.Message)
				}
			}
		})
	}
}

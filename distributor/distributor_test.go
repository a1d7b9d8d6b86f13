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
			d, err := New(cfg, Single{Target: Target{Name: "one", Addr: "one", Healthy: true}}, clientMap{"one": ing}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
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

// clientMap resolves addresses to test clients.
type clientMap map[string]ingesterpb.IngesterClient

func (m clientMap) Get(addr string) (ingesterpb.IngesterClient, error) {
	if c, ok := m[addr]; ok {
		return c, nil
	}
	return nil, errors.New("no such ingester " + addr)
}

// three routes every series to the same three ingesters.
type three []Target

func (t three) Route([]byte) ([]Target, error) { return t, nil }
func (three) Quorum() int                      { return 2 }

func TestQuorum(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	batch := []model.Series{
		{Labels: labels.FromStrings("__name__", "a"), Samples: []model.Sample{{T: now.UnixMilli(), V: 1}}},
		{Labels: labels.FromStrings("__name__", "b"), Samples: []model.Sample{{T: now.UnixMilli(), V: 2}}},
	}
	okIng := func() *fakeIngester {
		return &fakeIngester{push: func(req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
			return &ingesterpb.PushResponse{Stored: uint64(len(req.Series))}, nil
		}}
	}
	failIng := &fakeIngester{push: func(*ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
		return nil, status.Error(codes.Unavailable, "disk full")
	}}
	block := make(chan struct{})
	defer close(block)
	slowIng := &fakeIngester{push: func(req *ingesterpb.PushRequest) (*ingesterpb.PushResponse, error) {
		<-block
		return &ingesterpb.PushResponse{Stored: uint64(len(req.Series))}, nil
	}}
	tests := []struct {
		name    string
		clients clientMap
		healthy [3]bool
		wantErr bool
	}{
		{"all up", clientMap{"a": okIng(), "b": okIng(), "c": okIng()}, [3]bool{true, true, true}, false},
		{"one failing", clientMap{"a": okIng(), "b": failIng, "c": okIng()}, [3]bool{true, true, true}, false},
		{"one known down", clientMap{"a": okIng(), "b": okIng(), "c": okIng()}, [3]bool{true, false, true}, false},
		{"one hanging: acknowledged without waiting", clientMap{"a": okIng(), "b": slowIng, "c": okIng()}, [3]bool{true, true, true}, false},
		{"two failing", clientMap{"a": okIng(), "b": failIng, "c": failIng}, [3]bool{true, true, true}, true},
		{"one failing one down", clientMap{"a": okIng(), "b": failIng, "c": okIng()}, [3]bool{true, true, false}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var targets three
			for i, n := range []string{"a", "b", "c"} {
				targets = append(targets, Target{Name: n, Addr: n, Healthy: tc.healthy[i]})
			}
			d, err := New(DefaultConfig(), targets, tc.clients, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			if err != nil {
				t.Fatal(err)
			}
			d.now = func() time.Time { return now }
			res, err := d.Push(context.Background(), batch)
			if tc.wantErr {
				if !errors.Is(err, model.ErrUnavailable) || !strings.Contains(err.Error(), "replicas failed") {
					t.Fatalf("err %v, want a retryable quorum error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Stored != 2 || res.RejectedSamples != 0 {
				t.Fatalf("result %+v, want 2 stored", res)
			}
		})
	}
}

func TestScaleResult(t *testing.T) {
	// Three replicas each stored 9 of 10 samples and refused one as too old.
	var sum model.PushResult
	for range 3 {
		r := model.PushResult{Stored: 9}
		r.Reject(1, model.Rejection{Reason: model.ReasonTooOld, Series: "x", T: 5, Message: "old"})
		sum.Merge(r)
	}
	got := scaleResult(sum, 10, 30)
	if got.Stored != 9 || got.RejectedSamples != 1 || got.ByReason[model.ReasonTooOld] != 1 || len(got.Rejections) != 1 {
		t.Fatalf("scaled %+v", got)
	}
}

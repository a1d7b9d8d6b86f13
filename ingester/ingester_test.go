package ingester

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/storage"
)

// serve starts an ingester over real storage on an in-memory network.
func serve(t *testing.T) ingesterpb.IngesterClient {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := storage.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.BadgerCacheSize = 8 << 20
	db, err := storage.Open(cfg, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ing, err := New(Config{SelectBatchBytes: 64}, db, logger, prometheus.NewRegistry()) // tiny batches: many stream messages
	if err != nil {
		t.Fatal(err)
	}
	ln := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(ingesterpb.ServerOptions()...)
	ingesterpb.RegisterIngesterServer(srv, ing)
	go srv.Serve(ln)
	cc, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return ln.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(ingesterpb.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		srv.Stop()
		db.Close()
	})
	return ingesterpb.NewIngesterClient(cc)
}

func TestPushSelectSeriesLabels(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	var batch []model.Series
	for i := range 30 {
		batch = append(batch, model.Series{
			Labels:  labels.FromStrings("__name__", "m", "i", string(rune('a'+i%26))+string(rune('a'+i/26)), "job", []string{"x", "y"}[i%2]),
			Samples: []model.Sample{{T: now - 2000, V: float64(i)}, {T: now - 1000, V: float64(i + 1)}},
		})
	}
	resp, err := c.Push(ctx, ingesterpb.FromSeries(batch))
	if err != nil || resp.Stored != 60 {
		t.Fatalf("push: %v %+v", err, resp)
	}
	// The same again: all duplicates.
	if resp, err := c.Push(ctx, ingesterpb.FromSeries(batch)); err != nil || resp.Duplicates != 60 || resp.Stored != 0 {
		t.Fatalf("re-push: %v %+v", err, resp)
	}

	ms := ingesterpb.FromMatchers([]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "job", "y")})
	stream, err := c.Select(ctx, &ingesterpb.SelectRequest{StartMs: now - 10_000, EndMs: now, Matchers: ms})
	if err != nil {
		t.Fatal(err)
	}
	var sb labels.ScratchBuilder
	var prev labels.Labels
	n, msgs := 0, 0
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		msgs++
		for _, s := range r.Series {
			ls := ingesterpb.ToLabels(s.Labels, &sb)
			if ls.Get("job") != "y" || len(s.Chunks) != 1 || s.Chunks[0].Encoding != uint32(model.EncXOR) {
				t.Fatalf("unexpected series %s with %d chunks", ls, len(s.Chunks))
			}
			if !prev.IsEmpty() && labels.Compare(prev, ls) >= 0 {
				t.Fatalf("not sorted: %s after %s", ls, prev)
			}
			prev = ls
			n++
		}
	}
	if n != 15 || msgs < 2 {
		t.Fatalf("got %d series in %d messages, want 15 in several", n, msgs)
	}

	ss, err := c.Series(ctx, &ingesterpb.SeriesRequest{StartMs: now - 10_000, EndMs: now, Matchers: ms, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		r, err := ss.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got += len(r.Series)
	}
	if got != 5 {
		t.Fatalf("series with limit 5: got %d", got)
	}

	lv, err := c.LabelValues(ctx, &ingesterpb.LabelValuesRequest{Name: "job", StartMs: now - 10_000, EndMs: now})
	if err != nil || len(lv.Values) != 2 {
		t.Fatalf("label values: %v %v", lv, err)
	}
	ln, err := c.LabelNames(ctx, &ingesterpb.LabelNamesRequest{StartMs: now - 10_000, EndMs: now, Matchers: ms})
	if err != nil || len(ln.Names) != 3 {
		t.Fatalf("label names: %v %v", ln, err)
	}
	st, err := c.Stats(ctx, &ingesterpb.StatsRequest{Limit: 1})
	if err != nil || st.NumSeries != 30 || len(st.SeriesCountByMetricName) != 1 || st.SeriesCountByMetricName[0].Count != 30 {
		t.Fatalf("stats: %+v %v", st, err)
	}

	// A bad regex is the caller's fault.
	bad := []*ingesterpb.LabelMatcher{{Type: ingesterpb.LabelMatcher_RE, Name: "i", Value: "("}}
	stream, err = c.Select(ctx, &ingesterpb.SelectRequest{EndMs: now, Matchers: bad})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad regex: %v", err)
	}
}

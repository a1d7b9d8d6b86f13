package ingester

import (
	"context"
	"fmt"
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
	icfg := DefaultConfig()
	icfg.SelectBatchBytes = 64 // tiny batches: many stream messages
	icfg.Partitions = 61
	ing, err := New(icfg, db, logger, prometheus.NewRegistry())
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

// Two ingesters that got the same samples by different paths (Push in
// order, Backfill in reverse) report the same digests; one differing
// sample shows up in exactly one partition and one series.
func TestDigestsAgreeAcrossPaths(t *testing.T) {
	a, b := serve(t), serve(t)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	var batch []model.Series
	for i := range 50 {
		s := model.Series{Labels: labels.FromStrings("__name__", "d", "i", fmt.Sprint(i))}
		for k := range 10 {
			s.Samples = append(s.Samples, model.Sample{T: now - int64(10-k)*1000, V: float64(i * k)})
		}
		batch = append(batch, s)
	}
	if _, err := a.Push(ctx, ingesterpb.FromSeries(batch)); err != nil {
		t.Fatal(err)
	}
	rev := make([]model.Series, len(batch))
	for i, s := range batch {
		r := model.Series{Labels: s.Labels}
		for k := len(s.Samples) - 1; k >= 0; k-- {
			r.Samples = append(r.Samples, s.Samples[k])
		}
		rev[len(batch)-1-i] = r
	}
	if _, err := b.Backfill(ctx, ingesterpb.FromSeries(rev)); err != nil {
		t.Fatal(err)
	}
	digest := func(c ingesterpb.IngesterClient, perSeries bool) map[uint32]*ingesterpb.PartitionDigest {
		resp, err := c.Digests(ctx, &ingesterpb.DigestsRequest{StartMs: now - time.Hour.Milliseconds(), EndMs: now, PartitionCount: 61, PerSeries: perSeries})
		if err != nil {
			t.Fatal(err)
		}
		out := map[uint32]*ingesterpb.PartitionDigest{}
		for _, p := range resp.Partitions {
			out[p.Partition] = p
		}
		return out
	}
	da, db := digest(a, false), digest(b, false)
	if len(da) == 0 || len(da) != len(db) {
		t.Fatalf("%d and %d partitions", len(da), len(db))
	}
	series := uint64(0)
	for p, x := range da {
		y := db[p]
		if y == nil || x.Series != y.Series || x.Samples != y.Samples || x.Sum != y.Sum {
			t.Fatalf("partition %d: %+v vs %+v", p, x, y)
		}
		series += x.Series
	}
	if series != 50 {
		t.Fatalf("%d series in digests, want 50", series)
	}
	// One more sample on b only.
	extra := []model.Series{{Labels: batch[7].Labels, Samples: []model.Sample{{T: now - 500, V: 1}}}}
	if _, err := b.Push(ctx, ingesterpb.FromSeries(extra)); err != nil {
		t.Fatal(err)
	}
	da, db = digest(a, true), digest(b, true)
	differ := 0
	for p, x := range da {
		y := db[p]
		if x.Sum == y.Sum && x.Samples == y.Samples {
			continue
		}
		differ++
		theirs := map[uint64]uint64{}
		for _, sd := range y.SeriesDigests {
			theirs[sd.LabelsHash] = sd.Sum
		}
		diffSeries := 0
		for _, sd := range x.SeriesDigests {
			if theirs[sd.LabelsHash] != sd.Sum {
				diffSeries++
			}
		}
		if diffSeries != 1 || y.Samples != x.Samples+1 {
			t.Fatalf("partition %d: %d series differ, samples %d vs %d", p, diffSeries, x.Samples, y.Samples)
		}
	}
	if differ != 1 {
		t.Fatalf("%d partitions differ, want 1", differ)
	}
	// A caller with another partition count is refused.
	if _, err := a.Digests(ctx, &ingesterpb.DigestsRequest{PartitionCount: 7}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("mismatched partition count: %v", err)
	}
}

// Digests of cold windows come from a cache; every way of changing cold
// data (a late append, a backfill) must show in the next answer.
func TestColdDigestsFollowChanges(t *testing.T) {
	c := serve(t)
	ctx := context.Background()
	old := time.Now().Add(-72 * time.Hour).UnixMilli()
	req := &ingesterpb.DigestsRequest{StartMs: old - time.Hour.Milliseconds(), EndMs: old + time.Hour.Milliseconds(), PartitionCount: 61}
	samples := func() uint64 {
		t.Helper()
		resp, err := c.Digests(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, p := range resp.Partitions {
			n += p.Samples
		}
		return n
	}
	if n := samples(); n != 0 {
		t.Fatalf("%d samples in an empty store", n)
	}
	mk := func(t0 int64, n int) []model.Series {
		s := model.Series{Labels: labels.FromStrings("__name__", "cold")}
		for k := range n {
			s.Samples = append(s.Samples, model.Sample{T: t0 + int64(k)*1000, V: float64(k)})
		}
		return []model.Series{s}
	}
	// A fresh head accepts days-old samples through Push (its window
	// follows its own newest sample).
	if _, err := c.Push(ctx, ingesterpb.FromSeries(mk(old, 5))); err != nil {
		t.Fatal(err)
	}
	if n := samples(); n != 5 {
		t.Fatalf("after a late append: %d samples, want 5", n)
	}
	if n := samples(); n != 5 { // served from the cache
		t.Fatalf("cached: %d samples, want 5", n)
	}
	if _, err := c.Backfill(ctx, ingesterpb.FromSeries(mk(old-600_000, 3))); err != nil {
		t.Fatal(err)
	}
	if n := samples(); n != 8 {
		t.Fatalf("after a backfill: %d samples, want 8", n)
	}
}

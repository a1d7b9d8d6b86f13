package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"go.uber.org/goleak"

	"github.com/vigil-tsdb/vigil/model"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Badger's and glog's background goroutines that outlive Close.
		goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
		goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems"),
		goleak.IgnoreAnyFunction("github.com/dgraph-io/badger/v4.(*DB).monitorCache"),
	)
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testConfig(dir string) Config {
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.ChunkRange = time.Minute
	cfg.OutOfOrderWindow = 2 * time.Minute
	cfg.FlushInterval = time.Hour // tests flush explicitly
	cfg.BadgerCacheSize = 8 << 20
	return cfg
}

func openTest(t testing.TB, cfg Config) *DB {
	t.Helper()
	db, err := Open(cfg, testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db
}

// refModel is the simple in-memory model reads are compared with.
type refModel struct {
	window int64
	maxT   int64
	series map[string]labels.Labels
	data   map[string]map[int64]float64
}

func newRefModel(window int64) *refModel {
	return &refModel{window: window, maxT: math.MinInt64, series: map[string]labels.Labels{}, data: map[string]map[int64]float64{}}
}

// apply mirrors DB.Append's rules: one minValid per batch, exact duplicates
// dropped, other values at a stored timestamp refused.
func (m *refModel) apply(batch []model.Series) (stored, dups, rejected int) {
	minValid := int64(math.MinInt64)
	if m.maxT != math.MinInt64 {
		minValid = m.maxT - m.window
	}
	newMax := m.maxT
	for _, s := range batch {
		k := s.Labels.String()
		for _, smp := range s.Samples {
			if smp.T < minValid {
				rejected++
				continue
			}
			d := m.data[k]
			if old, ok := d[smp.T]; ok {
				if math.Float64bits(old) == math.Float64bits(smp.V) {
					dups++
				} else {
					rejected++
				}
				continue
			}
			if d == nil {
				d = map[int64]float64{}
				m.data[k] = d
				m.series[k] = s.Labels
			}
			d[smp.T] = smp.V
			stored++
			newMax = max(newMax, smp.T)
		}
	}
	m.maxT = newMax
	return stored, dups, rejected
}

func readAll(t *testing.T, db *DB, mint, maxt int64, ms ...*labels.Matcher) map[string][]model.Sample {
	t.Helper()
	q, err := db.Querier(mint, maxt)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if len(ms) == 0 {
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
	}
	ss := q.Select(context.Background(), true, nil, ms...)
	out := map[string][]model.Sample{}
	var it chunkenc.Iterator
	var prev labels.Labels
	for ss.Next() {
		s := ss.At()
		if !prev.IsEmpty() && labels.Compare(prev, s.Labels()) >= 0 {
			t.Fatalf("series not sorted: %s after %s", s.Labels(), prev)
		}
		prev = s.Labels()
		it = s.Iterator(it)
		var smps []model.Sample
		for it.Next() != chunkenc.ValNone {
			ts, v := it.At()
			smps = append(smps, model.Sample{T: ts, V: v})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out[s.Labels().String()] = smps
	}
	if err := ss.Err(); err != nil {
		t.Fatalf("select: %v", err)
	}
	return out
}

func (m *refModel) expect(mint, maxt int64, ms ...*labels.Matcher) map[string][]model.Sample {
	out := map[string][]model.Sample{}
	for k, d := range m.data {
		if !matchesAll(m.series[k], ms) {
			continue
		}
		var smps []model.Sample
		for ts, v := range d {
			if ts >= mint && ts <= maxt {
				smps = append(smps, model.Sample{T: ts, V: v})
			}
		}
		if len(smps) == 0 {
			continue
		}
		sort.Slice(smps, func(i, j int) bool { return smps[i].T < smps[j].T })
		out[k] = smps
	}
	return out
}

func compare(t *testing.T, when string, got, want map[string][]model.Sample) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d series, want %d", when, len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("%s: series %s missing", when, k)
		}
		for i := range min(len(g), len(w)) {
			if g[i].T != w[i].T || math.Float64bits(g[i].V) != math.Float64bits(w[i].V) {
				t.Fatalf("%s: series %s sample %d: got %v, want %v (%d vs %d samples)", when, k, i, g[i], w[i], len(g), len(w))
			}
		}
		if len(g) != len(w) {
			t.Fatalf("%s: series %s: got %d samples, want %d", when, k, len(g), len(w))
		}
	}
}

// genBatch makes a batch of random samples around the model's newest time:
// mostly in order, some out of order within and beyond the window, exact
// duplicates, conflicting values and staleness markers.
func genBatch(r *rand.Rand, m *refModel, names []labels.Labels, now *int64, window int64) []model.Series {
	var batch []model.Series
	for range 1 + r.IntN(6) {
		lset := names[r.IntN(len(names))]
		var smps []model.Sample
		for range 1 + r.IntN(20) {
			var ts int64
			switch p := r.Float64(); {
			case p < 0.6:
				*now += int64(1 + r.IntN(15000))
				ts = *now
			case p < 0.8:
				ts = *now - r.Int64N(window) // out of order, within window
			case p < 0.85:
				ts = *now - window - 1 - r.Int64N(window) // too old
			default:
				// an existing timestamp: duplicate or conflict
				if d := m.data[lset.String()]; len(d) > 0 {
					for k := range d {
						ts = k
						break
					}
				} else {
					ts = *now
				}
			}
			v := float64(r.IntN(100))
			switch p := r.Float64(); {
			case p < 0.05:
				v = math.Float64frombits(value.StaleNaN)
			case p < 0.5:
				if old, ok := m.data[lset.String()][ts]; ok {
					v = old
				}
			}
			smps = append(smps, model.Sample{T: ts, V: v})
		}
		batch = append(batch, model.Series{Labels: lset, Samples: smps})
	}
	return batch
}

func TestPropertyRandomWritesMatchModel(t *testing.T) {
	seeds := 6
	if testing.Short() {
		seeds = 2
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(seed), 7))
			cfg := testConfig(t.TempDir())
			window := cfg.OutOfOrderWindow.Milliseconds()
			m := newRefModel(window)
			var names []labels.Labels
			for i := range 25 {
				names = append(names, labels.FromStrings("__name__", fmt.Sprintf("m%d", i%4), "job", fmt.Sprintf("j%d", i%3), "instance", fmt.Sprintf("i%d", i)))
			}
			now := int64(1_700_000_000_000) + r.Int64N(PartitionDuration) // cross partition boundaries sometimes
			db := openTest(t, cfg)
			defer func() { db.Close() }()
			ctx := context.Background()
			for round := range 6 {
				for range 150 {
					batch := genBatch(r, m, names, &now, window)
					wantStored, wantDups, wantRej := m.apply(batch)
					res, err := db.Append(ctx, batch)
					if err != nil {
						t.Fatal(err)
					}
					if res.Stored != wantStored || res.Duplicates != wantDups || res.RejectedSamples != wantRej {
						t.Fatalf("round %d: append result %+v, model says stored=%d dups=%d rejected=%d", round, res, wantStored, wantDups, wantRej)
					}
					if r.IntN(40) == 0 {
						if err := db.Flush(); err != nil {
							t.Fatal(err)
						}
					}
				}
				compare(t, fmt.Sprintf("round %d", round), readAll(t, db, math.MinInt64, math.MaxInt64), m.expect(math.MinInt64, math.MaxInt64))
				// A sub-range and a few matcher shapes.
				lo, hi := now-3*window, now-window
				ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "job", "j[01]"), labels.MustNewMatcher(labels.MatchNotEqual, "__name__", "m2")}
				compare(t, fmt.Sprintf("round %d range+matchers", round), readAll(t, db, lo, hi, ms...), m.expect(lo, hi, ms...))
				// A recent range: served from memory alone (DB.onlyInBadgerBefore).
				recent := now - window/2
				if recent < db.onlyInBadgerBefore.Load() {
					t.Fatalf("round %d: recent range starts below the Badger watermark", round)
				}
				compare(t, fmt.Sprintf("round %d recent range", round), readAll(t, db, recent, math.MaxInt64), m.expect(recent, math.MaxInt64))
				// Restart: every other round cleanly, otherwise without a final
				// flush (the WAL must carry what the head had).
				if round%2 == 0 {
					if err := db.Close(); err != nil {
						t.Fatal(err)
					}
				} else {
					db.abandon()
				}
				db = openTest(t, cfg)
				compare(t, fmt.Sprintf("after restart %d", round), readAll(t, db, math.MinInt64, math.MaxInt64), m.expect(math.MinInt64, math.MaxInt64))
				compare(t, fmt.Sprintf("after restart %d, recent range", round), readAll(t, db, recent, math.MaxInt64), m.expect(recent, math.MaxInt64))
			}
		})
	}
}

// abandon closes the files without flushing, as a crash would leave them
// (the WAL writer has written everything acknowledged).
func (db *DB) abandon() {
	db.closeOnce.Do(func() {
		db.appendMu.Lock()
		db.closed = true
		db.appendMu.Unlock()
		db.wal.Close()
		db.bdb.Close()
		db.closeErr = fmt.Errorf("abandoned")
	})
}

func TestLabelQueries(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	ctx := context.Background()
	ts := int64(1_700_000_000_000)
	var batch []model.Series
	for i := range 10 {
		batch = append(batch, model.Series{
			Labels:  labels.FromStrings("__name__", "up", "job", fmt.Sprintf("job%d", i%2), "instance", fmt.Sprintf("h%d", i)),
			Samples: []model.Sample{{T: ts, V: 1}},
		})
	}
	if _, err := db.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		q, _ := db.Querier(math.MinInt64, math.MaxInt64)
		defer q.Close()
		names, _, err := q.LabelNames(ctx, nil)
		if err != nil || fmt.Sprint(names) != "[__name__ instance job]" {
			t.Fatalf("%s: names %v %v", when, names, err)
		}
		vals, _, err := q.LabelValues(ctx, "job", nil)
		if err != nil || fmt.Sprint(vals) != "[job0 job1]" {
			t.Fatalf("%s: values %v %v", when, vals, err)
		}
		vals, _, err = q.LabelValues(ctx, "instance", nil, labels.MustNewMatcher(labels.MatchEqual, "job", "job1"))
		if err != nil || fmt.Sprint(vals) != "[h1 h3 h5 h7 h9]" {
			t.Fatalf("%s: values with matcher %v %v", when, vals, err)
		}
	}
	check("head")
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	// Push the head far ahead so the first series are evicted, then read
	// them from Badger's postings.
	if _, err := db.Append(ctx, []model.Series{{Labels: labels.FromStrings("__name__", "other"), Samples: []model.Sample{{T: ts + 3*PartitionDuration, V: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := db.head.numSeries.Load(); n != 1 {
		t.Fatalf("head has %d series after eviction, want 1", n)
	}
	q, _ := db.Querier(ts-1, ts+1)
	defer q.Close()
	vals, _, err := q.LabelValues(ctx, "instance", nil, labels.MustNewMatcher(labels.MatchEqual, "job", "job1"))
	if err != nil || fmt.Sprint(vals) != "[h1 h3 h5 h7 h9]" {
		t.Fatalf("persisted: values with matcher %v %v", vals, err)
	}
	st := db.Stats(10)
	if st.NumSeries != 1 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestSeriesLimit(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxActiveSeries = 3
	db := openTest(t, cfg)
	defer db.Close()
	var batch []model.Series
	for i := range 5 {
		batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "x", "i", fmt.Sprint(i)), Samples: []model.Sample{{T: 1000, V: 1}}})
	}
	res, err := db.Append(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 3 || res.RejectedSamples != 2 || res.Rejections[0].Reason != model.ReasonSeriesLimit {
		t.Fatalf("got %+v", res)
	}
}

// TestCrashBetweenBadgerAndCheckpoint stops a flush after Badger synced the
// newly closed chunks and before the checkpoint was replaced: the restart
// sees the old checkpoint (with those chunks still open, same seq) plus the
// WAL, and must read every sample exactly once.
func TestCrashBetweenBadgerAndCheckpoint(t *testing.T) {
	cfg := testConfig(t.TempDir())
	window := cfg.OutOfOrderWindow.Milliseconds()
	m := newRefModel(window)
	r := rand.New(rand.NewPCG(42, 1))
	var names []labels.Labels
	for i := range 10 {
		names = append(names, labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)))
	}
	now := int64(1_700_000_000_000)
	db := openTest(t, cfg)
	write := func(rounds int) {
		for range rounds {
			batch := genBatch(r, m, names, &now, window)
			m.apply(batch)
			if _, err := db.Append(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(200)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	write(300) // closes chunks that were open in the checkpoint
	db.testCrashBeforeCheckpoint = true
	if err := db.Flush(); err == nil {
		t.Fatal("the test hook did not stop the flush")
	}
	db.abandon()
	db = openTest(t, cfg)
	defer func() { db.Close() }()
	all := readAll(t, db, math.MinInt64, math.MaxInt64)
	compare(t, "after restart", all, m.expect(math.MinInt64, math.MaxInt64))
	write(100)
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	compare(t, "after more writes", readAll(t, db, math.MinInt64, math.MaxInt64), m.expect(math.MinInt64, math.MaxInt64))
	// What the flush wrote to Badger, read back by a fresh head.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, cfg)
	compare(t, "after a second restart", readAll(t, db, math.MinInt64, math.MaxInt64), m.expect(math.MinInt64, math.MaxInt64))
}

// TestSeriesOnlySelect checks the labels-only path (hints.Func "series")
// against the full read, in memory and from Badger after eviction.
func TestSeriesOnlySelect(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	ctx := context.Background()
	ts := int64(1_700_000_000_000)
	var batch []model.Series
	for i := range 6 {
		batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), Samples: []model.Sample{{T: ts + int64(i)*60_000, V: 1}}})
	}
	if _, err := db.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	names := func(mint, maxt int64) string {
		q, _ := db.ChunkQuerier(mint, maxt)
		ss := q.Select(ctx, true, &storage.SelectHints{Start: mint, End: maxt, Func: "series"}, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
		var out []string
		for ss.Next() {
			out = append(out, ss.At().Labels().Get("i"))
		}
		if ss.Err() != nil {
			t.Fatal(ss.Err())
		}
		return fmt.Sprint(out)
	}
	check := func(when string) {
		if got := names(ts+60_000, ts+3*60_000); got != "[1 2 3]" {
			t.Fatalf("%s: series in range %s, want [1 2 3]", when, got)
		}
		if got := names(ts+30*60_000, ts+40*60_000); got != "[]" {
			t.Fatalf("%s: series in an empty range %s", when, got)
		}
	}
	check("in memory")
	// Move far ahead so the first series are evicted and read from Badger.
	if _, err := db.Append(ctx, []model.Series{{Labels: labels.FromStrings("__name__", "other"), Samples: []model.Sample{{T: ts + 3*PartitionDuration, V: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil { // closes the idle chunks, persists and evicts them
		t.Fatal(err)
	}
	if db.head.numSeries.Load() != 1 {
		t.Fatalf("head still has %d series", db.head.numSeries.Load())
	}
	check("from Badger")
}

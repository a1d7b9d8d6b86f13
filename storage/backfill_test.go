package storage

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// TestBackfillOldSamples backfills samples days older than the head,
// interleaved with stored ones, with exact duplicates and conflicting
// values, for an existing series and a new one, and reads them back
// merged, before and after a restart.
func TestBackfillOldSamples(t *testing.T) {
	cfg := testConfig(t.TempDir()) // 1 m chunk ranges, 2 m out-of-order window
	db := openTest(t, cfg)
	defer func() { db.Close() }()
	ctx := context.Background()
	m := newRefModel(math.MaxInt64) // the model applies no window: Backfill has none
	existing := labels.FromStrings("__name__", "bf", "s", "existing")
	fresh := labels.FromStrings("__name__", "bf", "s", "new", "zone", "b")
	t0 := int64(1_700_000_000_000)
	now := t0 + 3*PartitionDuration

	// Existing data: every 20 s for 2 h three days ago, then recent data,
	// so that the old data is flushed and evicted from memory.
	var batch []model.Series
	for k := range 360 {
		batch = append(batch, model.Series{Labels: existing, Samples: []model.Sample{{T: t0 + int64(k)*20_000, V: float64(k)}}})
	}
	m.apply(batch)
	mustPush(t, "append", db.Append, batch)
	mustFlush(t, db)
	recent := []model.Series{{Labels: existing, Samples: []model.Sample{{T: now, V: 1}}}}
	m.apply(recent)
	mustPush(t, "append", db.Append, recent)
	mustFlush(t, db)
	if s := db.head.get(existing.Hash(), existing); s == nil || len(s.chunks) != 1 {
		t.Fatal("the old chunks are still in memory")
	}

	// Backfill: every 10 s over the same 2 h (half new, half already
	// stored: a quarter of those with another value), plus a new series.
	var bf []model.Series
	wantStored, wantDups, wantConflicts := 0, 0, 0
	for k := range 720 {
		ts := t0 + int64(k)*10_000
		v := float64(k / 2)
		if k%2 == 0 {
			if k%8 == 0 {
				v += 0.5
				wantConflicts++
			} else {
				wantDups++
			}
		} else {
			v = -float64(k)
			wantStored++
		}
		bf = append(bf, model.Series{Labels: existing, Samples: []model.Sample{{T: ts, V: v}}})
	}
	for k := range 300 {
		bf = append(bf, model.Series{Labels: fresh, Samples: []model.Sample{{T: t0 - PartitionDuration + int64(k)*7_000, V: float64(k)}}})
		wantStored++
	}
	// The same sample twice in one batch: the second is a duplicate.
	bf = append(bf, bf[len(bf)-1])
	wantDups++
	stored, dups, rejected := m.apply(bf)
	if stored != wantStored || dups != wantDups || rejected != wantConflicts {
		t.Fatalf("test arithmetic: model says %d %d %d", stored, dups, rejected)
	}
	res, err := db.Backfill(ctx, bf)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != wantStored || res.Duplicates != wantDups || res.RejectedSamples != wantConflicts || res.ByReason[model.ReasonConflict] != wantConflicts {
		t.Fatalf("backfill result %+v, want stored %d duplicates %d conflicts %d", res, wantStored, wantDups, wantConflicts)
	}
	if got := counterValue(t, db.metrics.backfilled.WithLabelValues("chunks")); got != float64(wantStored) {
		t.Fatalf("backfilled chunks-path samples metric %v, want %d", got, wantStored)
	}
	check := func(when string) {
		t.Helper()
		compare(t, when, readAll(t, db, math.MinInt64, math.MaxInt64), m.expect(math.MinInt64, math.MaxInt64))
		lo, hi := t0+15*60_000, t0+40*60_000
		compare(t, when+", sub-range", readAll(t, db, lo, hi), m.expect(lo, hi))
		ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "zone", "b")}
		compare(t, when+", new series by its label", readAll(t, db, math.MinInt64, math.MaxInt64, ms...), m.expect(math.MinInt64, math.MaxInt64, ms...))
		q, _ := db.Querier(t0-PartitionDuration, t0-PartitionDuration+60_000)
		defer q.Close()
		vals, _, err := q.LabelValues(ctx, "zone", nil)
		if err != nil || fmt.Sprint(vals) != "[b]" {
			t.Fatalf("%s: label values of the backfilled series: %v %v", when, vals, err)
		}
	}
	check("after backfill")
	checkChunkShapes(t, db)
	// Sending it all again stores nothing.
	again, err := db.Backfill(ctx, bf)
	if err != nil || again.Stored != 0 || again.Duplicates+again.RejectedSamples != len(bf) {
		t.Fatalf("second backfill: %+v %v", again, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, cfg)
	check("after restart")
	checkSeriesIndex(t, db)
}

// TestBackfillInsideWindow: samples within the out-of-order window go
// through the head and the WAL, and survive a crash.
func TestBackfillInsideWindow(t *testing.T) {
	cfg := testConfig(t.TempDir())
	db := openTest(t, cfg)
	now := int64(1_700_000_000_000)
	lset := labels.FromStrings("__name__", "w")
	mustPush(t, "append", db.Append, []model.Series{{Labels: lset, Samples: []model.Sample{{T: now, V: 1}}}})
	res := mustPush(t, "backfill", db.Backfill, []model.Series{{Labels: lset, Samples: []model.Sample{{T: now - 60_000, V: 2}, {T: now, V: 1}, {T: now + 1000, V: 3}}}})
	if res.Stored != 2 || res.Duplicates != 1 {
		t.Fatalf("got %+v", res)
	}
	if got := counterValue(t, db.metrics.backfilled.WithLabelValues("head")); got != 2 {
		t.Fatalf("head-path backfilled metric %v, want 2", got)
	}
	if got := counterValue(t, db.metrics.backfillChunks); got != 0 {
		t.Fatalf("%v chunks written to Badger for samples inside the window", got)
	}
	res, err := db.Backfill(context.Background(), []model.Series{{Labels: lset, Samples: []model.Sample{{T: now - 60_000, V: 5}}}})
	if err != nil || res.ByReason[model.ReasonConflict] != 1 {
		t.Fatalf("conflict in the head: %+v %v", res, err)
	}
	db.abandon() // only the WAL has them
	db = openTest(t, cfg)
	defer db.Close()
	got := readAll(t, db, math.MinInt64, math.MaxInt64)[lset.String()]
	if fmt.Sprint(got) != "[{1699999940000 2} {1700000000000 1} {1700000001000 3}]" {
		t.Fatalf("after crash: %v", got)
	}
}

// TestBackfillAboveWatermark backfills a chunk that ends after
// DB.onlyInBadgerBefore (older than the window, newer than the last
// eviction cutoff): queries starting after the old watermark must still
// read Badger for it.
func TestBackfillAboveWatermark(t *testing.T) {
	cfg := testConfig(t.TempDir()) // 2 m window
	db := openTest(t, cfg)
	defer db.Close()
	ctx := context.Background()
	T := int64(1_700_000_000_000)
	a, b := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b")
	mustPush(t, "append", db.Append, []model.Series{{Labels: a, Samples: []model.Sample{{T: T, V: 1}}}})
	mustFlush(t, db) // watermark T − 2 m
	mustPush(t, "append", db.Append, []model.Series{{Labels: a, Samples: []model.Sample{{T: T + 10*60_000, V: 1}}}})
	w := db.onlyInBadgerBefore.Load()
	ts := T + 5*60_000 // older than the window (T + 8 m), newer than w
	if ts < w {
		t.Fatalf("setup: watermark %d already above %d", w, ts)
	}
	res := mustPush(t, "backfill", db.Backfill, []model.Series{{Labels: b, Samples: []model.Sample{{T: ts, V: 7}}}})
	if res.Stored != 1 || counterValue(t, db.metrics.backfillChunks) != 1 {
		t.Fatalf("setup: the sample did not go to Badger as a chunk: %+v", res)
	}
	got := readAll(t, db, ts-60_000, ts+60_000, labels.MustNewMatcher(labels.MatchEqual, "__name__", "b"))
	if fmt.Sprint(got) != fmt.Sprintf("map[{__name__=\"b\"}:[{%d 7}]]", ts) {
		t.Fatalf("backfilled chunk above the watermark not visible: %v", got)
	}
	if got := db.onlyInBadgerBefore.Load(); got <= ts {
		t.Fatalf("watermark %d not raised past the chunk's max time %d", got, ts)
	}
	q, _ := db.ChunkQuerier(ts-60_000, ts+60_000)
	names, _, err := q.LabelValues(ctx, "__name__", nil)
	if err != nil || fmt.Sprint(names) != "[a b]" {
		t.Fatalf("label values: %v %v", names, err)
	}
}

// TestBackfillSeriesLimit: a series that exists nowhere is refused at the
// limit; old samples of a series only Badger knows are stored.
func TestBackfillSeriesLimit(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxActiveSeries = 1
	db := openTest(t, cfg)
	defer db.Close()
	T := int64(1_700_000_000_000)
	a, b, c := labels.FromStrings("__name__", "a"), labels.FromStrings("__name__", "b"), labels.FromStrings("__name__", "c")
	mustPush(t, "append", db.Append, []model.Series{{Labels: a, Samples: []model.Sample{{T: T, V: 1}}}})
	mustFlush(t, db)
	mustPush(t, "append", db.Append, []model.Series{{Labels: a, Samples: []model.Sample{{T: T + PartitionDuration, V: 1}}}})
	mustFlush(t, db) // b never existed; a's first chunk is only in Badger now
	res, err := db.Backfill(context.Background(), []model.Series{
		{Labels: b, Samples: []model.Sample{{T: T + 1000, V: 1}}},
		{Labels: a, Samples: []model.Sample{{T: T + 1000, V: 2}}},
		{Labels: c, Samples: []model.Sample{{T: T + 2*PartitionDuration, V: 1}}}, // head path, new series
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stored != 1 || res.ByReason[model.ReasonSeriesLimit] != 2 {
		t.Fatalf("got %+v", res)
	}
	if got := readAll(t, db, T, T+2000); len(got) != 1 || len(got[a.String()]) != 2 {
		t.Fatalf("read %v", got)
	}
}

// TestBackfillNewSeriesRace: an Append creates a series while a Backfill
// that gave it a new ref has not written it yet. Both must use one ref.
func TestBackfillNewSeriesRace(t *testing.T) {
	cfg := testConfig(t.TempDir())
	db := openTest(t, cfg)
	defer func() { db.Close() }()
	T := int64(1_700_000_000_000)
	anchor, lset := labels.FromStrings("__name__", "anchor"), labels.FromStrings("__name__", "new")
	mustPush(t, "append", db.Append, []model.Series{{Labels: anchor, Samples: []model.Sample{{T: T, V: 1}}}})
	db.testBackfillResolved = func() {
		db.testBackfillResolved = nil
		mustPush(t, "append", db.Append, []model.Series{{Labels: lset, Samples: []model.Sample{{T: T, V: 2}}}})
	}
	mustPush(t, "backfill", db.Backfill, []model.Series{{Labels: lset, Samples: []model.Sample{{T: T - PartitionDuration, V: 3}}}})
	if db.testBackfillResolved != nil {
		t.Fatal("the hook did not run")
	}
	want := fmt.Sprintf("map[{__name__=\"new\"}:[{%d 3} {%d 2}]]", T-PartitionDuration, T)
	for _, when := range []string{"before restart", "after restart"} {
		if when == "after restart" {
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openTest(t, cfg)
		} else {
			mustFlush(t, db) // writes the head series' keys
		}
		if got := fmt.Sprint(readAll(t, db, math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "new"))); got != want {
			t.Fatalf("%s: read %s, want %s", when, got, want)
		}
		checkSeriesIndex(t, db)
	}
}

// checkSeriesIndex checks Badger's series index: labels → ref and
// ref → labels agree, and no label set has two refs.
func checkSeriesIndex(t *testing.T, db *DB) {
	t.Helper()
	err := db.bdb.View(func(txn *badger.Txn) error {
		var sb labels.ScratchBuilder
		byLabels := map[string]uint64{}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixLabels}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ref := binary.BigEndian.Uint64(it.Item().Key()[1:])
			lset, err := readLabels(txn, ref, &sb)
			if err != nil {
				return err
			}
			if other, dup := byLabels[lset.String()]; dup {
				return fmt.Errorf("series %s has refs %d and %d", lset, other, ref)
			}
			byLabels[lset.String()] = ref
			got, ok, err := db.lookupRef(lset)
			if err != nil || !ok || got != ref {
				return fmt.Errorf("series %s: ref %d, labels key says %d (%v %v)", lset, ref, got, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-tsdb/vigil/model"
)

// deleteUpTo mirrors DB.DeleteSeries and returns the series that lost samples.
func (m *refModel) deleteUpTo(match func(labels.Labels) bool, maxt int64) int {
	n := 0
	for k, d := range m.data {
		if !match(m.series[k]) {
			continue
		}
		hit := false
		for ts := range d {
			if ts <= maxt {
				delete(d, ts)
				hit = true
			}
		}
		if hit {
			n++
		}
	}
	return n
}

func matchLabel(name, value string) func(labels.Labels) bool {
	return func(l labels.Labels) bool { return l.Get(name) == value }
}

// deleteFixture writes six hours of 5 s samples for five series across a
// day boundary: most of it flushed to Badger and evicted, the newest in the
// head, a few in the out-of-order buffer.
func deleteFixture(t *testing.T, db *DB, m *refModel) (t0, end int64) {
	t.Helper()
	t0 = partitionStart(partitionOf(1_700_000_000_000)+1) - 3*3_600_000
	var lsets []labels.Labels
	for i := range 5 {
		lset := labels.FromStrings("__name__", "del", "job", "a", "i", fmt.Sprint(i))
		if i >= 3 { // job b has a label name of its own
			lset = labels.FromStrings("__name__", "del", "job", "b", "i", fmt.Sprint(i), "tier", "x")
		}
		lsets = append(lsets, lset)
	}
	const n = 6 * 720
	for k := 0; k < n; k += 60 {
		var batch []model.Series
		for _, lset := range lsets {
			var smps []model.Sample
			for j := k; j < k+60; j++ {
				if j >= n-10 && j%3 == 0 {
					continue // left for the out-of-order buffer
				}
				smps = append(smps, model.Sample{T: t0 + int64(j)*5000, V: float64(j)})
			}
			batch = append(batch, model.Series{Labels: lset, Samples: smps})
		}
		m.apply(batch)
		mustPush(t, "append", db.Append, batch)
		if k%1200 == 0 {
			mustFlush(t, db)
		}
	}
	var ooo []model.Series
	for _, lset := range lsets {
		for j := n - 10; j < n; j++ {
			if j%3 == 0 {
				ooo = append(ooo, model.Series{Labels: lset, Samples: []model.Sample{{T: t0 + int64(j)*5000, V: -1}}})
			}
		}
	}
	m.apply(ooo)
	mustPush(t, "append", db.Append, ooo)
	return t0, t0 + (n-1)*5000
}

func TestDeleteSeries(t *testing.T) {
	cfg := testConfig(t.TempDir()) // 1 m chunk ranges, 2 m window
	db := openTest(t, cfg)
	defer func() { db.Close() }()
	ctx := context.Background()
	m := newRefModel(math.MaxInt64)
	t0, end := deleteFixture(t, db, m)
	check := func(when string) {
		t.Helper()
		compare(t, when, readAll(t, db, math.MinInt64, math.MaxInt64), m.expect(math.MinInt64, math.MaxInt64))
		lo, hi := t0+3*3_600_000-90_000, t0+3*3_600_000+90_000
		compare(t, when+", sub-range", readAll(t, db, lo, hi), m.expect(lo, hi))
	}
	for _, tc := range []struct {
		name  string
		match func(labels.Labels) bool
		maxt  int64
	}{
		// Inside a chunk that is only in Badger: it is rewritten.
		{"one series, old data", matchLabel("i", "0"), t0 + 3_600_000 + 17_000},
		// Through the open head chunk and the out-of-order buffer.
		{"three series, up to the head", matchLabel("job", "a"), end - 22_000},
		{"nothing matches", matchLabel("job", "c"), end},
		{"two series, all of it", matchLabel("job", "b"), math.MaxInt64},
	} {
		want := m.deleteUpTo(tc.match, tc.maxt)
		n, err := db.DeleteSeries(ctx, tc.match, tc.maxt)
		if err != nil || n != want {
			t.Fatalf("%s: deleted from %d series (%v), want %d", tc.name, n, err, want)
		}
		check(tc.name)
	}
	if got := counterValue(t, db.metrics.deletedSeries); got != 6 {
		t.Fatalf("deleted series metric %v, want 6", got)
	}
	labelsChecks := func(when string) {
		t.Helper()
		q, _ := db.ChunkQuerier(math.MinInt64, math.MaxInt64)
		defer q.Close()
		vals, _, err := q.LabelValues(ctx, "job", nil)
		if err != nil || fmt.Sprint(vals) != "[a]" {
			t.Fatalf("%s: job values %v %v (job b was deleted)", when, vals, err)
		}
		names, _, err := q.LabelNames(ctx, nil)
		if err != nil || fmt.Sprint(names) != "[__name__ i job]" {
			t.Fatalf("%s: label names %v %v (tier was only on job b)", when, names, err)
		}
		names, _, err = q.LabelNames(ctx, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "del"))
		if err != nil || fmt.Sprint(names) != "[__name__ i job]" {
			t.Fatalf("%s: label names with a matcher %v %v", when, names, err)
		}
		vals, _, err = q.LabelValues(ctx, "i", nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "del"))
		if err != nil || fmt.Sprint(vals) != "[0 1 2]" {
			t.Fatalf("%s: i values %v %v", when, vals, err)
		}
		ss := q.Select(ctx, true, &storage.SelectHints{Start: math.MinInt64, End: math.MaxInt64, Func: "series"}, labels.MustNewMatcher(labels.MatchEqual, "job", "b"))
		for ss.Next() {
			t.Fatalf("%s: series %s listed after deletion", when, ss.At().Labels())
		}
	}
	labelsChecks("after deletes")

	// New samples at deleted timestamps (inside the window) are kept, also
	// across crashes: the tombstones are retired.
	again := []model.Series{{Labels: labels.FromStrings("__name__", "del", "job", "a", "i", "1"), Samples: []model.Sample{{T: end - 25_000, V: 99}}}}
	m.apply(again)
	mustPush(t, "append", db.Append, again)
	check("after appending at a deleted time")
	db.abandon()
	db = openTest(t, cfg)
	check("after a crash")
	labelsChecks("after a crash")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, cfg)
	check("after a clean restart")
	checkChunkShapes(t, db)
}

// TestDeleteInterrupted stops DeleteSeries where a crash could: after the
// tombstones are durable and before anything else, and after memory and
// Badger were changed but before the flush. The restart must complete the
// deletion from the WAL (against Badger, the old head checkpoint and the
// replayed samples) and retire the tombstones, so that samples written
// after the restart are not deleted by a later one.
func TestDeleteInterrupted(t *testing.T) {
	for _, stop := range []string{"tombstone", "applied"} {
		t.Run(stop, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			db := openTest(t, cfg)
			defer func() { db.Close() }()
			ctx := context.Background()
			m := newRefModel(math.MaxInt64)
			_, end := deleteFixture(t, db, m)
			mustFlush(t, db) // the checkpoint holds open chunks with samples to delete
			more := []model.Series{{Labels: labels.FromStrings("__name__", "del", "job", "a", "i", "2"), Samples: []model.Sample{{T: end + 1000, V: 1}, {T: end + 2000, V: 2}}}}
			m.apply(more)
			mustPush(t, "append", db.Append, more) // only in the WAL
			maxt := end + 1000
			m.deleteUpTo(matchLabel("job", "a"), maxt)
			db.testDeleteStop = stop
			if _, err := db.DeleteSeries(ctx, matchLabel("job", "a"), maxt); !errors.Is(err, errTestStop) {
				t.Fatalf("delete: %v", err)
			}
			db.abandon()
			db = openTest(t, cfg)
			if db.replayedTombstones != 3 {
				t.Fatalf("replay applied tombstones of %d series, want 3", db.replayedTombstones)
			}
			compare(t, "after restart", readAll(t, db, math.MinInt64, math.MaxInt64), m.expect(math.MinInt64, math.MaxInt64))
			late := []model.Series{{Labels: labels.FromStrings("__name__", "del", "job", "a", "i", "0"), Samples: []model.Sample{{T: end - 1000, V: 42}}}}
			m.apply(late)
			mustPush(t, "append", db.Append, late)
			db.abandon()
			db = openTest(t, cfg)
			if db.replayedTombstones != 0 {
				t.Fatalf("tombstones of %d series replayed again", db.replayedTombstones)
			}
			compare(t, "after a second crash", readAll(t, db, math.MinInt64, math.MaxInt64), m.expect(math.MinInt64, math.MaxInt64))
			checkChunkShapes(t, db)
		})
	}
}

// ColdChanges moves on every change to data older than ColdAge, and not on
// ordinary recent appends.
func TestColdChanges(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	now := time.Now().UnixMilli()
	lset := labels.FromStrings("__name__", "c")
	before := db.ColdChanges()
	if _, err := db.Append(ctx, []model.Series{{Labels: lset, Samples: []model.Sample{{T: now, V: 1}}}}); err != nil {
		t.Fatal(err)
	}
	if db.ColdChanges() != before {
		t.Fatal("a recent append moved the counter")
	}
	old := now - 3*24*time.Hour.Milliseconds()
	if _, err := db.Backfill(ctx, []model.Series{{Labels: lset, Samples: []model.Sample{{T: old, V: 2}}}}); err != nil {
		t.Fatal(err)
	}
	afterBackfill := db.ColdChanges()
	if afterBackfill == before {
		t.Fatal("an old backfill did not move the counter")
	}
	if _, err := db.DeleteSeries(ctx, func(labels.Labels) bool { return true }, old); err != nil {
		t.Fatal(err)
	}
	if db.ColdChanges() == afterBackfill {
		t.Fatal("a delete did not move the counter")
	}
}

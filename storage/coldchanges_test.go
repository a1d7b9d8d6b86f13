package storage

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// TestColdChangesDay: each kind of change to old data moves the mark of
// its day (after the change); recent appends move none.
func TestColdChangesDay(t *testing.T) {
	now := time.Now().UnixMilli()
	today := DayOf(now)
	oldDay := today - 5
	old := DayStart(oldDay) + PartitionDuration/2
	lset := labels.FromStrings("__name__", "cold")
	smp := func(t int64, v float64) []model.Series {
		return []model.Series{{Labels: lset, Samples: []model.Sample{{T: t, V: v}}}}
	}
	cases := []struct {
		name   string
		setup  func(t *testing.T, db *DB)
		change func(t *testing.T, db *DB)
		moved  []int32 // must move
		kept   []int32 // must not move
	}{
		{
			name:   "recent append",
			change: func(t *testing.T, db *DB) { mustPush(t, "append", db.Append, smp(now, 1)) },
			kept:   []int32{today, today - 1, oldDay},
		},
		{
			name: "late append into a stalled head",
			setup: func(t *testing.T, db *DB) {
				mustPush(t, "append", db.Append, smp(old, 1))
			},
			change: func(t *testing.T, db *DB) { mustPush(t, "append", db.Append, smp(old+1000, 2)) },
			moved:  []int32{oldDay},
			kept:   []int32{oldDay - 1, oldDay + 1, today},
		},
		{
			name:   "backfill",
			setup:  func(t *testing.T, db *DB) { mustPush(t, "append", db.Append, smp(now, 1)) },
			change: func(t *testing.T, db *DB) { mustPush(t, "backfill", db.Backfill, smp(old, 2)) },
			moved:  []int32{oldDay},
			kept:   []int32{oldDay - 1, oldDay + 1, today},
		},
		{
			name: "delete",
			setup: func(t *testing.T, db *DB) {
				mustPush(t, "append", db.Append, smp(now, 1))
				mustPush(t, "backfill", db.Backfill, smp(old, 2))
			},
			change: func(t *testing.T, db *DB) {
				if _, err := db.DeleteSeries(context.Background(), func(labels.Labels) bool { return true }, old); err != nil {
					t.Fatal(err)
				}
			},
			moved: []int32{oldDay},
			kept:  []int32{oldDay - 1, oldDay + 1, today},
		},
		{
			name: "delete of samples still in memory",
			setup: func(t *testing.T, db *DB) {
				mustPush(t, "append", db.Append, smp(old, 1))
				mustPush(t, "append", db.Append, smp(old+1000, 2))
			},
			change: func(t *testing.T, db *DB) {
				if _, err := db.DeleteSeries(context.Background(), func(labels.Labels) bool { return true }, old); err != nil {
					t.Fatal(err)
				}
			},
			moved: []int32{oldDay},
			kept:  []int32{oldDay - 1, oldDay + 1, today},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := openTest(t, testConfig(t.TempDir()))
			defer db.Close()
			if tc.setup != nil {
				tc.setup(t, db)
			}
			before := map[int32]uint64{}
			for _, d := range append(slices.Clone(tc.moved), tc.kept...) {
				before[d] = db.ColdChangesDay(d)
			}
			tc.change(t, db)
			for _, d := range tc.moved {
				if db.ColdChangesDay(d) <= before[d] {
					t.Errorf("day %d: mark %d did not move", d, before[d])
				}
			}
			for _, d := range tc.kept {
				if got := db.ColdChangesDay(d); got != before[d] {
					t.Errorf("day %d: mark moved from %d to %d", d, before[d], got)
				}
			}
		})
	}
}

// TestColdChangesDayRestart: the marks come back exactly after a clean
// restart and never go back after a crash.
func TestColdChangesDayRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	db := openTest(t, cfg)
	d1 := DayOf(time.Now().UnixMilli()) - 10
	d2 := d1 + 1
	old := DayStart(d1) + PartitionDuration/2
	lset := labels.FromStrings("__name__", "coldrestart")
	push := func(db *DB, t0 int64) {
		mustPush(t, "append", db.Append, []model.Series{{Labels: lset, Samples: []model.Sample{{T: t0, V: 1}}}})
	}
	push(db, old)
	push(db, old+1000)
	marks := func(db *DB) [3]uint64 {
		return [3]uint64{db.ColdChangesDay(d1), db.ColdChangesDay(d2), db.ColdChangesDay(d2 + 1)}
	}
	m1 := marks(db)
	if m1[0] < 2 || m1[1] != 0 {
		t.Fatalf("marks %v after two late appends into day 1", m1)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, cfg)
	if m := marks(db); m != m1 {
		t.Fatalf("marks %v after a clean restart, were %v", m, m1)
	}
	push(db, DayStart(d2)+1000) // the head moves into day 2
	m2 := marks(db)
	if m2[0] != m1[0] || m2[1] <= m1[1] || m2[2] != m1[2] {
		t.Fatalf("marks %v after an append into day 2, were %v", m2, m1)
	}
	db.abandon() // a crash: the exact marks are not persisted
	db = openTest(t, cfg)
	defer db.Close()
	m3 := marks(db)
	if m3[0] != m2[0] || m3[1] <= m2[1] || m3[2] != m2[2] { // day 2 had a change whose mark was not persisted exactly
		t.Fatalf("marks %v after a crash, were %v", m3, m2)
	}
	push(db, DayStart(d2)+2000)
	if m := marks(db); m[1] <= m3[1] {
		t.Fatalf("marks %v after another append, were %v", m, m3)
	}
}

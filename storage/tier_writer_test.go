package storage

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// streamTierDay writes series as one day through a TierDayWriter in
// batches of 1-size series, in a shuffled order, with some series split in
// two pieces that may go to different batches in either order (genTierDay's
// first chunk never has the min time of a later one, so the order of
// chunks with equal min times is kept), plus an empty batch and a series
// without chunks. check, if not nil, runs between batches.
func streamTierDay(t *testing.T, db *DB, tier uint8, day int32, series []TierSeries, progress string, size int, check func()) {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(day), uint64(size)))
	var pieces []TierSeries
	for i, s := range series {
		if i%3 == 0 && len(s.Chunks) > 1 {
			pieces = append(pieces, TierSeries{Labels: s.Labels, Chunks: s.Chunks[:1]}, TierSeries{Labels: s.Labels, Chunks: s.Chunks[1:]})
			continue
		}
		pieces = append(pieces, s)
	}
	pieces = append(pieces, TierSeries{Labels: labels.FromStrings("__name__", "nochunks")})
	r.Shuffle(len(pieces), func(i, j int) { pieces[i], pieces[j] = pieces[j], pieces[i] })
	w, err := db.BeginTierDay(context.Background(), tier, day)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if err := w.Add(nil); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	for len(pieces) > 0 {
		n := min(len(pieces), 1+r.IntN(size))
		if err := w.Add(pieces[:n]); err != nil {
			t.Fatal(err)
		}
		pieces = pieces[n:]
		if check != nil {
			check()
		}
	}
	if err := w.Commit([]byte(progress)); err != nil {
		t.Fatal(err)
	}
}

// TestTierDayWriterBatches: a day written in batches equals the same day
// written with one WriteTierDay, series by series and chunk by chunk, for
// series in Badger, only in the head and new; while the writer is open the
// day is invisible and TierSelect does not wait for it.
func TestTierDayWriterBatches(t *testing.T) {
	now := time.Now().UnixMilli()
	day := tierDay0
	content := append(genTierDay(day, 1, 30, "flushed"), genTierDay(day, 2, 3, "fresh")...)
	content = append(content, genTierDay(day, 3, 40, "unknown", "zone", "z")...)
	other := genTierDay(day+1, 4, 10, "other")
	setup := func(dir string) *DB {
		db := openTest(t, testConfig(dir))
		var raw []model.Series
		for i := range 10 {
			raw = append(raw, model.Series{Labels: labels.FromStrings("__name__", "flushed", "s", strconv.Itoa(i)), Samples: []model.Sample{{T: now, V: 1}}})
		}
		mustPush(t, "append", db.Append, raw)
		mustFlush(t, db)
		mustPush(t, "append", db.Append, []model.Series{{Labels: labels.FromStrings("__name__", "fresh", "s", "1"), Samples: []model.Sample{{T: now, V: 1}}}})
		mustWriteTier(t, db, TierMinute, day+1, other, "other")
		mustWriteTier(t, db, TierMinute, day, genTierDay(day, 9, 50, "old"), "old") // replaced
		return db
	}
	want := expectTier(map[int32][]TierSeries{day: content, day + 1: other}, math.MinInt64, math.MaxInt64)

	whole := setup(t.TempDir())
	defer whole.Close()
	mustWriteTier(t, whole, TierMinute, day, content, "p")
	compareTier(t, "one WriteTierDay", readTier(t, whole, TierMinute, math.MinInt64, math.MaxInt64), want)

	for _, size := range []int{1, 7, 200} {
		t.Run("batches of up to "+strconv.Itoa(size), func(t *testing.T) {
			dir := t.TempDir()
			db := setup(dir)
			defer func() { db.Close() }()
			onlyOther := expectTier(map[int32][]TierSeries{day + 1: other}, math.MinInt64, math.MaxInt64)
			streamTierDay(t, db, TierMinute, day, content, "p", size, func() {
				compareTier(t, "while writing", readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64), onlyOther)
				if days, _ := db.TierDays(TierMinute); !slices.Equal(days, []int32{day + 1}) {
					t.Fatalf("days while writing: %v", days)
				}
			})
			check := func(when string) {
				got := readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64)
				compareTier(t, when+": against one WriteTierDay", got, readTier(t, whole, TierMinute, math.MinInt64, math.MaxInt64))
				compareTier(t, when, got, want)
				if p, ok, err := db.TierProgress(TierMinute, day); err != nil || !ok || string(p) != "p" {
					t.Fatalf("%s: progress %q %v %v", when, p, ok, err)
				}
				if days, _ := db.TierDays(TierMinute); !slices.Equal(days, []int32{day, day + 1}) {
					t.Fatalf("%s: days %v", when, days)
				}
			}
			check("streamed")
			checkSeriesIndex(t, db)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openTest(t, testConfig(dir))
			check("after a restart")
		})
	}
}

// TestTierDayWriterAbort: Abort leaves the day absent, its old and new
// content gone, and releases the lock; Abort after Commit and a second
// Abort do nothing; a writer is spent after either.
func TestTierDayWriterAbort(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	ctx := context.Background()
	day := tierDay0
	other := genTierDay(day+1, 2, 10, "ab")
	mustWriteTier(t, db, TierMinute, day, genTierDay(day, 1, 10, "ab"), "old")
	mustWriteTier(t, db, TierMinute, day+1, other, "other")
	mustWriteTier(t, db, TierHour, day, other[:0], "hour")
	chunks := partPrefix(prefixChunks, TierMinute, partOfDay(day))
	postings := partPrefix(prefixPostings, TierMinute, partOfDay(day))

	w, err := db.BeginTierDay(ctx, TierMinute, day)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(genTierDay(day, 3, 20, "ab")); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, db, chunks); n == 0 {
		t.Fatal("Add wrote no chunks: the test tests nothing")
	}
	w.Abort()
	w.Abort()
	if n := countKeys(t, db, chunks) + countKeys(t, db, postings) + countKeys(t, db, progressKey(TierMinute, partOfDay(day))); n != 0 {
		t.Fatalf("%d keys of the aborted day left", n)
	}
	if days, _ := db.TierDays(TierMinute); !slices.Equal(days, []int32{day + 1}) {
		t.Fatalf("days after the abort: %v", days)
	}
	compareTier(t, "after the abort", readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64), expectTier(map[int32][]TierSeries{day + 1: other}, math.MinInt64, math.MaxInt64))
	if p, ok, _ := db.TierProgress(TierHour, day); !ok || string(p) != "hour" {
		t.Fatalf("the other tier's day: %q %v", p, ok)
	}
	if err := w.Add(other); !errors.Is(err, errTierWriterDone) {
		t.Fatalf("Add after Abort: %v", err)
	}
	if err := w.Commit(nil); !errors.Is(err, errTierWriterDone) {
		t.Fatalf("Commit after Abort: %v", err)
	}

	// The lock was released: a drop and a write go through, and Abort
	// after Commit keeps the day.
	if err := db.DropDay(ctx, TierMinute, day+1); err != nil {
		t.Fatal(err)
	}
	content := genTierDay(day, 4, 10, "ab")
	w, err = db.BeginTierDay(ctx, TierMinute, day)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit([]byte("new")); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	if err := w.Commit([]byte("again")); !errors.Is(err, errTierWriterDone) {
		t.Fatalf("second Commit: %v", err)
	}
	compareTier(t, "abort after commit", readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64), expectTier(map[int32][]TierSeries{day: content}, math.MinInt64, math.MaxInt64))
	if p, _, _ := db.TierProgress(TierMinute, day); string(p) != "new" {
		t.Fatalf("progress %q", p)
	}

	// The crash hook stops Commit before the progress key: the chunks
	// stay, the day is invisible, the lock is released.
	db.tiers.testStopBeforeProgress = true
	w, err = db.BeginTierDay(ctx, TierMinute, day)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit([]byte("x")); !errors.Is(err, errTestStop) {
		t.Fatalf("stopped commit: %v", err)
	}
	db.tiers.testStopBeforeProgress = false
	w.Abort()
	if countKeys(t, db, chunks) == 0 {
		t.Fatal("the stopped commit left no chunks")
	}
	if days, _ := db.TierDays(TierMinute); len(days) != 0 {
		t.Fatalf("days after a stopped commit: %v", days)
	}
	if err := db.DropDay(ctx, TierMinute, day); err != nil {
		t.Fatal(err)
	}
}

// TestTierDayWriterInvalidBatch: an invalid series in a later batch fails
// Add; the day stays without progress, the writer is spent, and Commit
// fails and drops what the earlier batches wrote.
func TestTierDayWriterInvalidBatch(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	ctx := context.Background()
	day := tierDay0
	lo, hi := DayStart(day), DayStart(day+1)
	tests := []struct {
		name   string
		modify func(*TierSeries)
	}{
		{name: "chunk past the day", modify: func(s *TierSeries) { s.Chunks[0].Maxt = hi + 1 }},
		{name: "chunk before the day", modify: func(s *TierSeries) { s.Chunks[0].Mint = lo - 1 }},
		{name: "min time after max time", modify: func(s *TierSeries) { s.Chunks[0].Mint = s.Chunks[0].Maxt + 1 }},
		{name: "no labels", modify: func(s *TierSeries) { s.Labels = labels.EmptyLabels() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustWriteTier(t, db, TierMinute, day, genTierDay(day, 1, 5, "inv"), "old")
			w, err := db.BeginTierDay(ctx, TierMinute, day)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if err := w.Add(genTierDay(day, 2, 10, "inv")); err != nil {
				t.Fatal(err)
			}
			bad := genTierDay(day, 3, 10, "inv2")
			tc.modify(&bad[7])
			err = w.Add(bad)
			if err == nil {
				t.Fatal("invalid batch accepted")
			}
			if _, found, err := db.lookupRef(bad[0].Labels); err != nil || found {
				t.Fatalf("a series of the invalid batch got a ref: %v %v", found, err)
			}
			if _, ok, _ := db.TierProgress(TierMinute, day); ok {
				t.Fatal("progress after a failed Add")
			}
			if got := readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64); len(got) != 0 {
				t.Fatalf("%d series readable after a failed Add", len(got))
			}
			if err2 := w.Add(genTierDay(day, 4, 1, "inv")); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("Add after a failed Add: %v, want %v", err2, err)
			}
			if err2 := w.Commit([]byte("p")); err2 == nil {
				t.Fatal("Commit after a failed Add succeeded")
			}
			if n := countKeys(t, db, partPrefix(prefixChunks, TierMinute, partOfDay(day))); n != 0 {
				t.Fatalf("%d chunk keys left after the failed Commit", n)
			}
			if days, _ := db.TierDays(TierMinute); len(days) != 0 {
				t.Fatalf("days %v", days)
			}
		})
	}
}

// TestTierDayWriterCancel: a ctx done between batches fails the next Add
// and Commit; the day ends up absent.
func TestTierDayWriterCancel(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	day := tierDay0
	for _, commitOnly := range []bool{false, true} {
		mustWriteTier(t, db, TierMinute, day, genTierDay(day, 1, 5, "cancel"), "old")
		ctx, cancel := context.WithCancel(context.Background())
		w, err := db.BeginTierDay(ctx, TierMinute, day)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Add(genTierDay(day, 2, 10, "cancel")); err != nil {
			t.Fatal(err)
		}
		cancel()
		if !commitOnly {
			if err := w.Add(genTierDay(day, 3, 10, "cancel2")); !errors.Is(err, context.Canceled) {
				t.Fatalf("Add after cancel: %v", err)
			}
		}
		if err := w.Commit([]byte("p")); !errors.Is(err, context.Canceled) {
			t.Fatalf("Commit after cancel: %v", err)
		}
		if days, _ := db.TierDays(TierMinute); len(days) != 0 {
			t.Fatalf("days after a cancelled write: %v", days)
		}
		if n := countKeys(t, db, partPrefix(prefixChunks, TierMinute, partOfDay(day))); n != 0 {
			t.Fatalf("%d chunk keys left", n)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := db.BeginTierDay(ctx, TierMinute, day); !errors.Is(err, context.Canceled) {
		t.Fatalf("Begin with a done ctx: %v", err)
	}
	if _, err := db.BeginTierDay(context.Background(), TierRaw, day); err == nil {
		t.Fatal("Begin of the raw tier accepted")
	}
}

// TestTierDayWriterHoldsLock: a drop of another day waits for the open
// writer; Begin after Close fails.
func TestTierDayWriterHoldsLock(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	ctx := context.Background()
	day := tierDay0
	mustWriteTier(t, db, TierHour, day+1, genTierDay(day+1, 1, 5, "lock"), "h")
	w, err := db.BeginTierDay(ctx, TierMinute, day)
	if err != nil {
		t.Fatal(err)
	}
	dropped := make(chan error, 1)
	go func() { dropped <- db.DropDay(ctx, TierHour, day+1) }()
	select {
	case err := <-dropped:
		t.Fatalf("DropDay ran beside an open writer: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := w.Add(genTierDay(day, 2, 5, "lock")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit([]byte("m")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-dropped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("DropDay still waits after Commit")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.BeginTierDay(ctx, TierMinute, day); !errors.Is(err, model.ErrUnavailable) {
		t.Fatalf("Begin after Close: %v", err)
	}
}

package storage

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// tierDay0 is the first day the tests write tiers for (2023-11-14).
var tierDay0 = DayOf(1_700_000_000_000)

// genTierDay builds a deterministic tier day: series named name with
// label s = 0..n-1 (and extra labels from extra), each with 1-3 chunks
// inside the day whose data starts with version.
func genTierDay(day int32, version uint64, n int, name string, extra ...string) []TierSeries {
	r := rand.New(rand.NewPCG(uint64(day), version))
	start := DayStart(day)
	out := make([]TierSeries, 0, n)
	for i := range n {
		lset := labels.FromStrings(append([]string{"__name__", name, "s", strconv.Itoa(i)}, extra...)...)
		var chks []TierChunk
		mint := start + int64(r.IntN(600))*60_000
		for range 1 + r.IntN(3) {
			maxt := min(mint+int64(1+r.IntN(300))*60_000, start+PartitionDuration)
			data := binary.BigEndian.AppendUint64(nil, version)
			for range 8 + r.IntN(200) {
				data = append(data, byte(r.Uint32()))
			}
			chks = append(chks, TierChunk{Mint: mint, Maxt: maxt, Encoding: 2, Data: data})
			mint = min(maxt+60_000, start+PartitionDuration)
		}
		out = append(out, TierSeries{Labels: lset, Chunks: chks})
	}
	return out
}

// readTier reads a whole TierSelect.
func readTier(t testing.TB, db *DB, tier uint8, mint, maxt int64, ms ...*labels.Matcher) []TierSeries {
	t.Helper()
	got, err := tryReadTier(db, tier, mint, maxt, ms...)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func tryReadTier(db *DB, tier uint8, mint, maxt int64, ms ...*labels.Matcher) ([]TierSeries, error) {
	if len(ms) == 0 {
		ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
	}
	set, err := db.TierSelect(context.Background(), tier, mint, maxt, ms...)
	if err != nil {
		return nil, err
	}
	var out []TierSeries
	for set.Next() {
		out = append(out, set.At())
	}
	return out, set.Err()
}

// expectTier is what TierSelect must return from the given days' contents
// (written in this order within a day): series merged by labels, sorted,
// chunks overlapping [mint, maxt] by day then min time, matching ms.
func expectTier(days map[int32][]TierSeries, mint, maxt int64, ms ...*labels.Matcher) []TierSeries {
	byLabels := map[string]*TierSeries{}
	for _, d := range slices.Sorted(maps.Keys(days)) {
		for _, s := range days[d] {
			if !matchesAll(s.Labels, ms) {
				continue
			}
			chks := slices.Clone(s.Chunks)
			slices.SortStableFunc(chks, func(a, b TierChunk) int { return cmp.Compare(a.Mint, b.Mint) })
			e := byLabels[s.Labels.String()]
			if e == nil {
				e = &TierSeries{Labels: s.Labels}
				byLabels[s.Labels.String()] = e
			}
			for _, c := range chks {
				if c.Maxt >= mint && c.Mint <= maxt {
					e.Chunks = append(e.Chunks, c)
				}
			}
		}
	}
	var out []TierSeries
	for _, e := range byLabels {
		if len(e.Chunks) > 0 {
			out = append(out, *e)
		}
	}
	slices.SortFunc(out, func(a, b TierSeries) int { return labels.Compare(a.Labels, b.Labels) })
	return out
}

func compareTier(t testing.TB, when string, got, want []TierSeries) {
	t.Helper()
	if err := diffTier(got, want); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

func diffTier(got, want []TierSeries) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d series, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !labels.Equal(g.Labels, w.Labels) {
			return fmt.Errorf("series %d is %s, want %s", i, g.Labels, w.Labels)
		}
		if len(g.Chunks) != len(w.Chunks) {
			return fmt.Errorf("%s: %d chunks, want %d", g.Labels, len(g.Chunks), len(w.Chunks))
		}
		for j := range g.Chunks {
			gc, wc := g.Chunks[j], w.Chunks[j]
			if gc.Mint != wc.Mint || gc.Maxt != wc.Maxt || gc.Encoding != wc.Encoding || !bytes.Equal(gc.Data, wc.Data) {
				return fmt.Errorf("%s chunk %d: [%d %d] enc %d %d bytes, want [%d %d] enc %d %d bytes", g.Labels, j, gc.Mint, gc.Maxt, gc.Encoding, len(gc.Data), wc.Mint, wc.Maxt, wc.Encoding, len(wc.Data))
			}
		}
	}
	return nil
}

func mustWriteTier(t testing.TB, db *DB, tier uint8, day int32, series []TierSeries, progress string) {
	t.Helper()
	if err := db.WriteTierDay(context.Background(), tier, day, series, []byte(progress)); err != nil {
		t.Fatal(err)
	}
}

// countKeys counts the live keys under prefix.
func countKeys(t testing.TB, db *DB, prefix []byte) int {
	t.Helper()
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTierWriteRead writes days of both tiers for series the DB has (in
// Badger, only in the head) and series it does not know, and reads them
// back with matchers and ranges, before and after a restart.
func TestTierWriteRead(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, testConfig(dir))
	defer func() { db.Close() }()
	ctx := context.Background()
	// Raw data: "flushed" series are in Badger, "fresh" only in the head.
	now := time.Now().UnixMilli()
	var raw []model.Series
	for i := range 3 {
		raw = append(raw, model.Series{Labels: labels.FromStrings("__name__", "flushed", "s", strconv.Itoa(i)), Samples: []model.Sample{{T: now, V: 1}}})
	}
	mustPush(t, "append", db.Append, raw)
	mustFlush(t, db)
	mustPush(t, "append", db.Append, []model.Series{{Labels: labels.FromStrings("__name__", "fresh", "s", "0"), Samples: []model.Sample{{T: now, V: 1}}}})

	content := map[uint8]map[int32][]TierSeries{TierMinute: {}, TierHour: {}}
	for d := range int32(3) {
		day := tierDay0 + d
		m := append(genTierDay(day, 1, 3, "flushed"), genTierDay(day, 2, 1, "fresh")...)
		m = append(m, genTierDay(day, 3, 5, "unknown", "zone", "z"+strconv.Itoa(int(d)%2))...)
		content[TierMinute][day] = m
		mustWriteTier(t, db, TierMinute, day, m, "p1-"+strconv.Itoa(int(d)))
		if d < 2 {
			h := genTierDay(day, 4, 4, "flushed")
			content[TierHour][day] = h
			mustWriteTier(t, db, TierHour, day, h, "p2-"+strconv.Itoa(int(d)))
		}
	}
	// A series known to the DB keeps its ref; the head-only one got its
	// keys written with its head ref.
	for _, name := range []string{"flushed", "fresh"} {
		lset := labels.FromStrings("__name__", name, "s", "0")
		ref, ok, err := db.lookupRef(lset)
		if err != nil || !ok || ref != db.head.get(lset.Hash(), lset).ref {
			t.Fatalf("%s: ref %d in badger (%v %v), %d in the head", lset, ref, ok, err, db.head.get(lset.Hash(), lset).ref)
		}
	}
	checkSeriesIndex(t, db)

	dayStart, dayEnd := DayStart(tierDay0+1), DayStart(tierDay0+2)-1
	eq := func(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, n, v) }
	cases := []struct {
		name       string
		tier       uint8
		mint, maxt int64
		ms         []*labels.Matcher
	}{
		{"everything", TierMinute, math.MinInt64, math.MaxInt64, nil},
		{"one day", TierMinute, dayStart, dayEnd, nil},
		{"a few hours", TierMinute, dayStart + 3*3600_000, dayStart + 7*3600_000, nil},
		{"by name", TierMinute, math.MinInt64, math.MaxInt64, []*labels.Matcher{eq("__name__", "unknown")}},
		{"regex and not-equal", TierMinute, math.MinInt64, math.MaxInt64, []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchRegexp, "s", "[12]"), labels.MustNewMatcher(labels.MatchNotEqual, "zone", "z1")}},
		{"label not in every series", TierMinute, math.MinInt64, math.MaxInt64, []*labels.Matcher{eq("zone", "z0")}},
		{"no such value", TierMinute, math.MinInt64, math.MaxInt64, []*labels.Matcher{eq("zone", "nope")}},
		{"hour tier", TierHour, math.MinInt64, math.MaxInt64, nil},
		{"hour tier, day without data", TierHour, DayStart(tierDay0 + 2), DayStart(tierDay0+3) - 1, nil},
		{"empty range", TierMinute, 10, 5, nil},
	}
	check := func(when string) {
		for _, tc := range cases {
			ms := tc.ms
			if ms == nil {
				ms = []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+")}
			}
			want := expectTier(content[tc.tier], tc.mint, tc.maxt, ms...)
			if tc.mint > tc.maxt {
				want = nil
			}
			compareTier(t, when+": "+tc.name, readTier(t, db, tc.tier, tc.mint, tc.maxt, ms...), want)
		}
		for _, tier := range []uint8{TierMinute, TierHour} {
			days, err := db.TierDays(tier)
			if err != nil {
				t.Fatal(err)
			}
			if want := slices.Sorted(maps.Keys(content[tier])); !slices.Equal(days, want) {
				t.Fatalf("%s: tier %d days %v, want %v", when, tier, days, want)
			}
			for d := range content[tier] {
				p, ok, err := db.TierProgress(tier, d)
				if want := fmt.Sprintf("p%d-%d", tier, d-tierDay0); err != nil || !ok || string(p) != want {
					t.Fatalf("%s: progress of tier %d day %d: %q %v %v, want %q", when, tier, d, p, ok, err, want)
				}
			}
		}
	}
	check("written")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, testConfig(dir))
	check("after a restart")
	checkSeriesIndex(t, db)

	// Refusals: a chunk outside its day, a raw or unknown tier.
	bad := genTierDay(tierDay0, 1, 1, "bad")
	bad[0].Chunks[0].Maxt = DayStart(tierDay0+1) + 1
	for name, err := range map[string]error{
		"chunk past the day": db.WriteTierDay(ctx, TierMinute, tierDay0, bad, nil),
		"raw tier":           db.WriteTierDay(ctx, TierRaw, tierDay0, nil, nil),
		"tier 3":             db.WriteTierDay(ctx, 3, tierDay0, nil, nil),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := db.TierSelect(ctx, TierRaw, 0, 1); err == nil {
		t.Error("TierSelect of the raw tier accepted")
	}
}

// TestTierSelectWalk reads random selections of many series (several
// read batches) from days that each hold a random subset of them, over
// random ranges that cut days and chunks: TierSelect's walk in key order
// must find what a plain filter of the written content finds.
func TestTierSelectWalk(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	r := rand.New(rand.NewPCG(5, 5))
	const days, series = 6, 3*tierBatchFirst + 17
	content := map[int32][]TierSeries{}
	for d := range int32(days) {
		day := tierDay0 + d
		all := genTierDay(day, uint64(d)+1, series, "walk")
		var some []TierSeries
		for _, s := range all {
			if r.IntN(4) != 0 { // a quarter of the series miss the day
				some = append(some, s)
			}
		}
		content[day] = some
		mustWriteTier(t, db, TierMinute, day, some, "w")
	}
	for i := range 40 {
		mint := DayStart(tierDay0) + r.Int64N(days*PartitionDuration)
		maxt := mint + r.Int64N(3*PartitionDuration)
		var re string
		switch i % 4 {
		case 0:
			re = ".*" // everything: neighbours in key order
		case 1:
			re = "1.*|2.*" // about a fifth of the series
		case 2:
			re = strconv.Itoa(r.IntN(series)) // one series
		default:
			var alts []string
			for range 1 + r.IntN(40) {
				alts = append(alts, strconv.Itoa(r.IntN(series)))
			}
			re = strings.Join(alts, "|")
		}
		ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "walk"), labels.MustNewMatcher(labels.MatchRegexp, "s", re)}
		compareTier(t, fmt.Sprintf("query %d: s=~%q [%d, %d]", i, re, mint, maxt), readTier(t, db, TierMinute, mint, maxt, ms...), expectTier(content, mint, maxt, ms...))
	}
}

// TestTierRewriteDay rewrites a day with other series and chunks: nothing
// of the old content is left, the neighbouring day is untouched.
func TestTierRewriteDay(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	first := genTierDay(tierDay0, 1, 20, "rw")
	next := genTierDay(tierDay0+1, 2, 20, "rw")
	mustWriteTier(t, db, TierMinute, tierDay0, first, "v1")
	mustWriteTier(t, db, TierMinute, tierDay0+1, next, "n")
	chunks := partPrefix(prefixChunks, TierMinute, partOfDay(tierDay0))
	postings := partPrefix(prefixPostings, TierMinute, partOfDay(tierDay0))
	if n := countKeys(t, db, chunks); n < 20 {
		t.Fatalf("%d chunk keys", n)
	}

	// Fewer series, other names, other chunks.
	second := genTierDay(tierDay0, 3, 5, "rw2")
	mustWriteTier(t, db, TierMinute, tierDay0, second, "v2")
	compareTier(t, "rewritten", readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64),
		expectTier(map[int32][]TierSeries{tierDay0: second, tierDay0 + 1: next}, math.MinInt64, math.MaxInt64))
	wantChunks := 0
	for _, s := range second {
		wantChunks += len(s.Chunks)
	}
	if n := countKeys(t, db, chunks); n != wantChunks {
		t.Fatalf("%d chunk keys after the rewrite, want %d", n, wantChunks)
	}
	if n := countKeys(t, db, postings); n != 5*2 {
		t.Fatalf("%d posting keys after the rewrite, want 10", n)
	}
	if p, _, _ := db.TierProgress(TierMinute, tierDay0); string(p) != "v2" {
		t.Fatalf("progress %q", p)
	}
	// An empty day is a day too.
	mustWriteTier(t, db, TierMinute, tierDay0, nil, "empty")
	if n := countKeys(t, db, chunks) + countKeys(t, db, postings); n != 0 {
		t.Fatalf("%d keys left in an emptied day", n)
	}
	if days, _ := db.TierDays(TierMinute); !slices.Equal(days, []int32{tierDay0, tierDay0 + 1}) {
		t.Fatalf("days %v", days)
	}
}

// TestTierProgressVisibility: a day whose write stopped before its
// progress key is never read, and a reader that meets a rewrite stops with
// ErrTierDayChanged instead of returning a mix.
func TestTierProgressVisibility(t *testing.T) {
	db := openTest(t, testConfig(t.TempDir()))
	defer db.Close()
	ctx := context.Background()
	done := genTierDay(tierDay0, 1, tierBatchFirst+10, "vis") // more than one read batch
	mustWriteTier(t, db, TierMinute, tierDay0, done, "done")
	db.tiers.testStopBeforeProgress = true
	if err := db.WriteTierDay(ctx, TierMinute, tierDay0+1, genTierDay(tierDay0+1, 2, 10, "vis"), []byte("x")); !errors.Is(err, errTestStop) {
		t.Fatalf("stopped write: %v", err)
	}
	db.tiers.testStopBeforeProgress = false
	if n := countKeys(t, db, partPrefix(prefixChunks, TierMinute, partOfDay(tierDay0+1))); n == 0 {
		t.Fatal("the stopped write left no chunks: the test tests nothing")
	}
	want := expectTier(map[int32][]TierSeries{tierDay0: done}, math.MinInt64, math.MaxInt64)
	compareTier(t, "with a half-written day", readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64), want)
	if days, _ := db.TierDays(TierMinute); !slices.Equal(days, []int32{tierDay0}) {
		t.Fatalf("days %v", days)
	}
	if _, ok, _ := db.TierProgress(TierMinute, tierDay0+1); ok {
		t.Fatal("progress of a half-written day")
	}

	// A rewrite under a reader.
	set, err := db.TierSelect(ctx, TierMinute, math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "vis"))
	if err != nil {
		t.Fatal(err)
	}
	if !set.Next() {
		t.Fatal(set.Err())
	}
	mustWriteTier(t, db, TierMinute, tierDay0, genTierDay(tierDay0, 3, tierBatchFirst+10, "vis"), "again")
	// The series of the batch read before the rewrite come from the old
	// version; the next batch sees the rewrite.
	old := map[string][]byte{}
	for _, s := range done {
		old[s.Labels.String()] = s.Chunks[0].Data
	}
	n := 1
	for ; set.Next(); n++ {
		if s := set.At(); !slices.Equal(s.Chunks[0].Data, old[s.Labels.String()]) {
			t.Fatalf("series %s of the first batch differs from the version it was read from", s.Labels)
		}
	}
	if n != tierBatchFirst || !errors.Is(set.Err(), ErrTierDayChanged) {
		t.Fatalf("read across a rewrite: %d series, then %v", n, set.Err())
	}
}

// TestTierDropDay drops tier days and a raw day.
func TestTierDropDay(t *testing.T) {
	cfg := testConfig(t.TempDir())
	db := openTest(t, cfg)
	defer db.Close()
	ctx := context.Background()
	a, b := genTierDay(tierDay0, 1, 10, "drop"), genTierDay(tierDay0+1, 2, 10, "drop")
	mustWriteTier(t, db, TierMinute, tierDay0, a, "a")
	mustWriteTier(t, db, TierMinute, tierDay0+1, b, "b")
	mustWriteTier(t, db, TierHour, tierDay0, a, "h")
	if err := db.DropDay(ctx, TierMinute, tierDay0); err != nil {
		t.Fatal(err)
	}
	compareTier(t, "after the drop", readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64), expectTier(map[int32][]TierSeries{tierDay0 + 1: b}, math.MinInt64, math.MaxInt64))
	compareTier(t, "the other tier", readTier(t, db, TierHour, math.MinInt64, math.MaxInt64), expectTier(map[int32][]TierSeries{tierDay0: a}, math.MinInt64, math.MaxInt64))
	for _, prefix := range []byte{prefixChunks, prefixPostings, prefixProgress} {
		if n := countKeys(t, db, partPrefix(prefix, TierMinute, partOfDay(tierDay0))); n != 0 {
			t.Fatalf("%d keys of prefix %#x left", n, prefix)
		}
	}
	if err := db.DropDay(ctx, TierMinute, tierDay0); err != nil {
		t.Fatalf("dropping a missing day: %v", err)
	}

	// Raw: a day still in the head is refused; once evicted it goes.
	lset := labels.FromStrings("__name__", "rawdrop")
	t0 := DayStart(tierDay0) + 3600_000
	mustPush(t, "append", db.Append, []model.Series{{Labels: lset, Samples: []model.Sample{{T: t0, V: 1}, {T: t0 + 1000, V: 2}}}})
	if err := db.DropDay(ctx, TierRaw, tierDay0); !errors.Is(err, ErrDayInHead) {
		t.Fatalf("drop of a day in the head: %v", err)
	}
	later := DayStart(tierDay0 + 2)
	mustPush(t, "append", db.Append, []model.Series{{Labels: lset, Samples: []model.Sample{{T: later, V: 3}}}})
	mustFlush(t, db)
	mustPush(t, "append", db.Append, []model.Series{{Labels: lset, Samples: []model.Sample{{T: later + 600_000, V: 4}}}})
	mustFlush(t, db) // evicts the old chunk
	if days, _ := db.TierDays(TierRaw); !slices.Contains(days, tierDay0) {
		t.Fatalf("raw days %v", days)
	}
	if err := db.DropDay(ctx, TierRaw, tierDay0); err != nil {
		t.Fatal(err)
	}
	if days, _ := db.TierDays(TierRaw); slices.Contains(days, tierDay0) {
		t.Fatalf("raw days %v after the drop", days)
	}
	got := readAll(t, db, math.MinInt64, math.MaxInt64)
	if smps := got[lset.String()]; len(smps) != 2 || smps[0].T != later {
		t.Fatalf("raw samples after the drop: %v", smps)
	}
	// A sample backfilled into the dropped day is new data, with postings.
	mustPush(t, "backfill", db.Backfill, []model.Series{{Labels: lset, Samples: []model.Sample{{T: t0, V: 5}}}})
	if smps := readAll(t, db, t0-1, t0+1)[lset.String()]; len(smps) != 1 || smps[0].V != 5 {
		t.Fatalf("backfilled into the dropped day: %v", smps)
	}
}

// dirSize returns the bytes allocated to the files under dir.
func dirSize(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTierDropReclaimsSpace writes many tier days of incompressible data,
// drops most of them and measures the data directory before and after
// Badger's Flatten and value-log GC.
func TestTierDropReclaimsSpace(t *testing.T) {
	if testing.Short() {
		t.Skip("writes about 40 MB")
	}
	dir := t.TempDir()
	cfg := testConfig(dir)
	db := openTest(t, cfg)
	defer func() { db.Close() }()
	ctx := context.Background()
	const days, dropped, series = 24, 20, 200
	r := rand.New(rand.NewPCG(1, 2))
	var written int64
	for d := range int32(days) {
		day := tierDay0 + d
		content := make([]TierSeries, series)
		for i := range content {
			chks := make([]TierChunk, 8)
			for j := range chks {
				data := make([]byte, 1000)
				for k := range data {
					data[k] = byte(r.Uint32())
				}
				mint := DayStart(day) + int64(j)*3*3600_000
				chks[j] = TierChunk{Mint: mint, Maxt: mint + 3600_000, Encoding: 2, Data: data}
				written += int64(len(data))
			}
			content[i] = TierSeries{Labels: labels.FromStrings("__name__", "space", "s", strconv.Itoa(i)), Chunks: chks}
		}
		mustWriteTier(t, db, TierMinute, day, content, "p")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirSize(t, dir)
	db = openTest(t, cfg)
	start := time.Now()
	for d := range int32(dropped) {
		if err := db.DropDay(ctx, TierMinute, tierDay0+d); err != nil {
			t.Fatal(err)
		}
	}
	dropTime := time.Since(start)
	afterDrop := dirSize(t, dir)
	if err := db.bdb.Flatten(1); err != nil {
		t.Fatal(err)
	}
	gcs := 0
	for db.bdb.RunValueLogGC(0.3) == nil {
		gcs++
	}
	if got := readTier(t, db, TierMinute, math.MinInt64, math.MaxInt64); len(got) != series || len(got[0].Chunks) != 8*(days-dropped) {
		t.Fatalf("after the drops: %d series, %d chunks in the first", len(got), len(got[0].Chunks))
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	after := dirSize(t, dir)
	t.Logf("%d days of %.1f MB written: data dir %.1f MB; %d days dropped in %s: %.1f MB; after flatten, %d value-log GCs and close: %.1f MB",
		days, float64(written)/days/1e6, float64(before)/1e6, dropped, dropTime.Round(time.Millisecond), float64(afterDrop)/1e6, gcs, float64(after)/1e6)
	if freed, want := before-after, written*dropped/days/2; freed < want {
		t.Fatalf("dropping %d of %d days freed %d bytes, want at least %d", dropped, days, freed, want)
	}
}

// TestTierConcurrent writes and drops tier days while appends (creating
// the tier's series too), flushes, backfills and deletions run, and
// readers check that every series they get is one whole version of each
// day.
func TestTierConcurrent(t *testing.T) {
	cfg := testConfig(t.TempDir())
	db := openTest(t, cfg)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	run := func(name string, f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				if err := f(i); err != nil && ctx.Err() == nil {
					errc <- fmt.Errorf("%s: %w", name, err)
					return
				}
			}
		}()
	}
	now := time.Now().UnixMilli()
	run("append", func(i int) error {
		var batch []model.Series
		for s := range 40 {
			batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "conc", "s", strconv.Itoa(s)), Samples: []model.Sample{{T: now + int64(i)*1000, V: float64(i)}}})
		}
		_, err := db.Append(ctx, batch)
		return err
	})
	run("flush", func(int) error { time.Sleep(20 * time.Millisecond); return db.Flush() })
	run("backfill", func(i int) error {
		time.Sleep(10 * time.Millisecond)
		lset := labels.FromStrings("__name__", "concbf", "s", strconv.Itoa(i%30))
		_, err := db.Backfill(ctx, []model.Series{{Labels: lset, Samples: []model.Sample{{T: DayStart(tierDay0) + int64(i)*1000, V: 1}}}})
		return err
	})
	run("delete", func(i int) error {
		time.Sleep(50 * time.Millisecond)
		_, err := db.DeleteSeries(ctx, func(l labels.Labels) bool { return l.Get("s") == strconv.Itoa(i%30) && l.Get("__name__") == "concbf" }, DayStart(tierDay0)+int64(i)*500)
		return err
	})
	run("drop raw", func(i int) error {
		time.Sleep(100 * time.Millisecond)
		if err := db.DropDay(ctx, TierRaw, tierDay0); err != nil && !errors.Is(err, ErrDayInHead) {
			return err
		}
		return nil
	})
	// Tier writers: versions of two days, the series growing into those
	// the appender has not created yet; one drop now and then.
	content := func(day int32, v uint64) []TierSeries {
		out := genTierDay(day, v, 20+int(v%40), "conc")
		return append(out, genTierDay(day, v, 5, "tieronly", "v", strconv.Itoa(int(v%3)))...)
	}
	var tierOps atomic.Int64
	run("tier write", func(i int) error {
		time.Sleep(30 * time.Millisecond) // readers find the days complete in between
		tierOps.Add(1)
		day := tierDay0 + int32(i%2)
		if i%9 == 8 {
			return db.DropDay(ctx, TierMinute, day)
		}
		return db.WriteTierDay(ctx, TierMinute, day, content(day, uint64(i)), binary.BigEndian.AppendUint64(nil, uint64(i)))
	})
	reads, changed, seriesRead := 0, 0, 0
	var readMu sync.Mutex
	for range 2 {
		run("read", func(int) error {
			got, err := tryReadTier(db, TierMinute, math.MinInt64, math.MaxInt64)
			readMu.Lock()
			defer readMu.Unlock()
			reads++
			if errors.Is(err, ErrTierDayChanged) {
				changed++
				return nil
			}
			if err != nil {
				return err
			}
			seriesRead += len(got)
			return checkVersions(got, content)
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	t.Logf("%d tier operations; %d tier reads (%d series), %d stopped by a rewrite", tierOps.Load(), reads, seriesRead, changed)
	checkSeriesIndex(t, db)
	mustFlush(t, db)
	checkSeriesIndex(t, db)
}

// checkVersions checks that each series' chunks of each day are exactly
// those of the version their data names.
func checkVersions(got []TierSeries, content func(int32, uint64) []TierSeries) error {
	for _, s := range got {
		byDay := map[int32][]TierChunk{}
		for _, c := range s.Chunks {
			day := DayOf(c.Mint)
			if c.Mint == DayStart(day) && c.Maxt == c.Mint {
				day-- // a chunk at the first instant of a day may belong to the day before
			}
			byDay[day] = append(byDay[day], c)
		}
		for day, chks := range byDay {
			v := binary.BigEndian.Uint64(chks[0].Data)
			want := expectTier(map[int32][]TierSeries{day: content(day, v)}, math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", s.Labels.Get("__name__")))
			i := slices.IndexFunc(want, func(w TierSeries) bool { return labels.Equal(w.Labels, s.Labels) })
			if i < 0 {
				return fmt.Errorf("%s in day %d: not in version %d", s.Labels, day, v)
			}
			if err := diffTier([]TierSeries{{Labels: s.Labels, Chunks: chks}}, want[i:i+1]); err != nil {
				return fmt.Errorf("day %d version %d: %w", day, v, err)
			}
		}
	}
	return nil
}

// tierCrashOp is operation it of the crash test's writer: a write (or
// every seventh, a drop) of one of three days of one tier.
func tierCrashOp(it int) (tier uint8, day int32, drop bool) {
	return uint8(1 + it%2), tierDay0 + int32(it/2%3), it%7 == 6
}

// tierCrashContent is what operation it writes: series shared with the
// child's raw appends, and series only tiers have (new ones now and then).
func tierCrashContent(tier uint8, day int32, it int) []TierSeries {
	out := genTierDay(day, uint64(it)<<8|uint64(tier), 10+it%30, "tier_crash")
	return append(out, genTierDay(day, uint64(it), 10, "tier_only", "gen", strconv.Itoa(it%5))...)
}

// TestTierCrashChild is the writer process of TestTierCrashKill9; it only
// runs when that test starts it.
func TestTierCrashChild(t *testing.T) {
	dir := os.Getenv("VIGIL_TIER_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestTierCrashKill9")
	}
	start, _ := strconv.Atoi(os.Getenv("VIGIL_TIER_CRASH_START"))
	cfg := testConfig(dir)
	cfg.FlushInterval = 100 * time.Millisecond
	db, err := Open(cfg, testLogger(), nil)
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	go db.Run(ctx)
	go func() { // raw writes meanwhile, creating series the tier days use
		base := time.Now().UnixMilli()
		for n := 0; ; n++ {
			var batch []model.Series
			for s := range 40 {
				batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "tier_crash", "s", strconv.Itoa(s)), Samples: []model.Sample{{T: base + int64(n)*1000, V: float64(n)}}})
			}
			if _, err := db.Append(ctx, batch); err != nil {
				fmt.Fprintln(os.Stderr, "append:", err)
				os.Exit(4)
			}
			if n%20 == 0 {
				lset := labels.FromStrings("__name__", "tier_crash_bf", "s", strconv.Itoa(n%7))
				if _, err := db.Backfill(ctx, []model.Series{{Labels: lset, Samples: []model.Sample{{T: DayStart(tierDay0) + int64(start*1000+n), V: 1}}}}); err != nil {
					fmt.Fprintln(os.Stderr, "backfill:", err)
					os.Exit(4)
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for it := start; ; it++ {
		tier, day, drop := tierCrashOp(it)
		switch {
		case drop:
			err = db.DropDay(ctx, tier, day)
		case it%3 == 1: // streamed, a kill may land between batches
			err = writeTierBatches(ctx, db, tier, day, tierCrashContent(tier, day, it), 7, []byte(strconv.Itoa(it)))
		default:
			err = db.WriteTierDay(ctx, tier, day, tierCrashContent(tier, day, it), []byte(strconv.Itoa(it)))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "op", it, ":", err)
			os.Exit(5)
		}
		fmt.Printf("ack %d\n", it)
	}
}

// writeTierBatches writes a day with a TierDayWriter, size series per Add.
func writeTierBatches(ctx context.Context, db *DB, tier uint8, day int32, series []TierSeries, size int, progress []byte) error {
	w, err := db.BeginTierDay(ctx, tier, day)
	if err != nil {
		return err
	}
	defer w.Abort()
	for i := 0; i < len(series); i += size {
		if err := w.Add(series[i:min(i+size, len(series))]); err != nil {
			return err
		}
	}
	return w.Commit(progress)
}

// TestTierCrashKill9 kills a process writing (with WriteTierDay or, every
// third operation, a TierDayWriter in batches) and dropping tier days with
// SIGKILL at random points, restarts, and checks that every tier day with
// a progress key is exactly what the last acknowledged operation on it
// wrote, or the one in flight.
func TestTierCrashKill9(t *testing.T) {
	runs := 8
	if testing.Short() {
		runs = 2
	}
	dir := t.TempDir()
	last := map[tierDay]int{} // last acknowledged operation on each tier day
	next := 0
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	for run := range runs {
		acked := next - 1
		delay := time.Duration(300+r.IntN(1500)) * time.Millisecond
		killChild(t, "TestTierCrashChild", []string{"VIGIL_TIER_CRASH_DIR=" + dir, fmt.Sprintf("VIGIL_TIER_CRASH_START=%d", next)}, delay, func(line string) {
			if _, err := fmt.Sscanf(line, "ack %d", &acked); err != nil {
				t.Fatalf("child said %q", line)
			}
		})
		for it := next; it <= acked; it++ {
			tier, day, _ := tierCrashOp(it)
			last[tierDay{tier, partOfDay(day)}] = it
		}
		inflight := acked + 1
		t.Logf("run %d: killed after %s, operations %d-%d acknowledged", run, delay, next, acked)

		db := openTest(t, testConfig(dir))
		for _, tier := range []uint8{TierMinute, TierHour} {
			want := map[int32][]TierSeries{}
			for d := range int32(3) {
				day := tierDay0 + d
				k := tierDay{tier, partOfDay(day)}
				allowed := map[int]bool{} // operations whose result may be there; -1: no day
				if it, ok := last[k]; ok {
					if _, _, drop := tierCrashOp(it); drop {
						allowed[-1] = true
					} else {
						allowed[it] = true
					}
				} else {
					allowed[-1] = true
				}
				if ft, fd, drop := tierCrashOp(inflight); ft == tier && fd == day {
					allowed[-1] = true // a write starts by dropping the day
					if !drop {
						allowed[inflight] = true
					}
				}
				p, ok, err := db.TierProgress(tier, day)
				if err != nil {
					t.Fatal(err)
				}
				got := -1
				if ok {
					got, _ = strconv.Atoi(string(p))
					want[day] = tierCrashContent(tier, day, got)
				}
				if !allowed[got] {
					t.Fatalf("run %d: tier %d day %d holds operation %d, allowed %v", run, tier, day, got, allowed)
				}
			}
			compareTier(t, fmt.Sprintf("run %d tier %d", run, tier), readTier(t, db, tier, math.MinInt64, math.MaxInt64), expectTier(want, math.MinInt64, math.MaxInt64))
			days, err := db.TierDays(tier)
			if err != nil {
				t.Fatal(err)
			}
			if w := slices.Sorted(maps.Keys(want)); !slices.Equal(days, w) {
				t.Fatalf("run %d: tier %d days %v, want %v", run, tier, days, w)
			}
		}
		checkSeriesIndex(t, db)
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		next = acked + 1 // the operation in flight runs again first
	}
	if len(last) == 0 {
		t.Fatal("no operation was ever acknowledged")
	}
}

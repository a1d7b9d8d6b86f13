package compactor

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"go.uber.org/goleak"

	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/model/downsample"
	"github.com/vigil-tsdb/vigil/storage"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixtures.cleanup()
	if code == 0 {
		err := goleak.Find(
			// Badger's and glog's background goroutines that outlive Close.
			goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
			goleak.IgnoreTopFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems"),
			goleak.IgnoreAnyFunction("github.com/dgraph-io/badger/v4.(*DB).monitorCache"),
		)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// day0 is the first day of the synthetic data, well before the wall clock:
// the compactor runs with a fake clock, and storage takes the data as old.
var day0 = storage.DayOf(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())

func dayStart(d int32) int64 { return storage.DayStart(d) }

// fixtureSpec describes a synthetic data set: series 0..series-1 over days
// [from, to) (some series cover less), plus the anchor, a series with
// samples at 01:00 and 23:00 of day `to`: the data itself is then older
// than the out-of-order window and Backfill writes it as chunks, and day
// `to` is both in Badger (the 01:00 chunk is closed and flushed) and in the
// head (the open chunk), so DropDay refuses it.
type fixtureSpec struct {
	series   int
	from, to int32
	// compacted: then a pass with longRetention at compactedAt() ran.
	compacted bool
}

const (
	minute = int64(60_000)
	hour   = 60 * minute
)

// stale is the staleness marker.
var stale = math.Float64frombits(value.StaleNaN)

var (
	compactedFixture = fixtureSpec{series: 300, from: day0, to: day0 + 40, compacted: true}
	crashFixture     = fixtureSpec{series: 100, from: day0 + 30, to: day0 + 34}
)

// compactedAt is the clock of the compacted fixtures' pass: every day but
// the anchor's is due.
func (f fixtureSpec) compactedAt() int64 { return dayStart(f.to) + 3*hour }

func (f fixtureSpec) anchor() model.Series {
	return model.Series{Labels: labels.FromStrings("__name__", "fixture_anchor"), Samples: []model.Sample{{T: dayStart(f.to) + hour, V: 1}, {T: dayStart(f.to) + 23*hour, V: 2}}}
}

// genSeries returns series i of the spec: counters (integer or float
// increments, a reset every ~3 h) and gauges (some with NaN), scraped every
// 30 s (those only in the last 2 days), 30 m or 1 h (sparse, to keep the
// test fast under -race), some with jitter (the others have a sample at
// every midnight), some living only 12 days, starting late or ending early
// with a staleness marker.
func (f fixtureSpec) genSeries(i int) model.Series {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	counter := i%2 == 0
	name := "fixture_gauge"
	if counter {
		name = "fixture_requests_total"
	}
	lset := labels.FromStrings("__name__", name, "job", "fixture", "i", strconv.Itoa(i))
	interval := hour
	from, to := dayStart(f.from), dayStart(f.to)
	switch {
	case i%20 == 0:
		interval = 30_000
		from = max(from, dayStart(f.to-2))
	case i%4 == 1:
		interval = 30 * minute
	}
	switch {
	case i%20 != 0 && i%3 == 2 && to-from > 12*24*hour: // churn: lives 12 days
		from += int64(i*7%int(f.to-f.from-12)) * 24 * hour
		to = from + 12*24*hour
	case i%7 == 3:
		from += (to - from) / 4
	}
	stopped := i%11 == 5
	if stopped {
		to -= (to - from) / 3
	}
	jitter := i%3 == 0
	var (
		smps []model.Sample
		v    float64
	)
	for t := from; t < to; t += interval {
		ts := t
		if jitter {
			ts += int64(r.IntN(4001)) - 2000
		}
		switch {
		case counter && r.Float64() < float64(interval)/float64(3*hour):
			v = float64(r.IntN(5))
		case counter && i%4 == 0:
			v += r.Float64() * 3
		case counter:
			v += float64(r.IntN(100))
		case i%10 == 1 && r.IntN(200) == 0:
			v = math.NaN()
		default:
			if math.IsNaN(v) {
				v = 0
			}
			v += r.NormFloat64() * 10
		}
		smps = append(smps, model.Sample{T: ts, V: v})
	}
	if stopped {
		smps = append(smps, model.Sample{T: smps[len(smps)-1].T + interval, V: stale})
	}
	return model.Series{Labels: lset, Samples: smps}
}

func testDBConfig(dir string) storage.Config {
	cfg := storage.DefaultConfig()
	cfg.Dir = dir
	cfg.FlushInterval = time.Hour // nothing recent is written but the anchor
	cfg.BadgerCacheSize = 8 << 20
	cfg.BadgerMemTableSize = 8 << 20
	return cfg
}

func openDB(t testing.TB, dir string) *storage.DB {
	t.Helper()
	db, err := storage.Open(testDBConfig(dir), testLogger(), nil)
	if err != nil {
		t.Fatalf("open storage: %v", err)
	}
	return db
}

// fixtures builds each data set once (closed, in a temporary directory);
// tests open copies.
var fixtures fixtureDirs

type fixtureDirs struct {
	mu    sync.Mutex
	dirs  map[fixtureSpec]string
	stats map[fixtureSpec]Stats // of a compacted fixture's pass
}

func (f fixtureSpec) copy(t *testing.T) string {
	t.Helper()
	fixtures.mu.Lock()
	defer fixtures.mu.Unlock()
	return fixtures.copyLocked(t, f)
}

func (fd *fixtureDirs) copyLocked(t *testing.T, f fixtureSpec) string {
	t.Helper()
	src, ok := fd.dirs[f]
	if !ok {
		if f.compacted {
			raw := f
			raw.compacted = false
			tmp := fd.copyLocked(t, raw)
			var err error
			if src, err = os.MkdirTemp("", "vigil-compactor-fixture-"); err != nil {
				t.Fatal(err)
			}
			if err := copyDir(tmp, src); err != nil {
				t.Fatal(err)
			}
			db := openDB(t, src)
			start := time.Now()
			st := runOnce(t, newCompactor(t, longRetention(), db), f.compactedAt())
			took := time.Since(start)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("compacting the fixture: %s; 1m: %d series-days, %d windows, %d bytes (%.1f B/window); 1h: %d series-days, %d windows, %d bytes (%.1f B/window)",
				took.Round(time.Millisecond), st.Series[1], st.Windows[1], st.Bytes[1], float64(st.Bytes[1])/float64(st.Windows[1]),
				st.Series[2], st.Windows[2], st.Bytes[2], float64(st.Bytes[2])/float64(st.Windows[2]))
			if fd.stats == nil {
				fd.stats = map[fixtureSpec]Stats{}
			}
			fd.stats[f] = st
		} else {
			var err error
			if src, err = os.MkdirTemp("", "vigil-compactor-fixture-"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			n := f.build(t, src)
			t.Logf("fixture: %d series, %d days, %d samples written in %s", f.series, f.to-f.from, n, time.Since(start).Round(time.Millisecond))
		}
		if fd.dirs == nil {
			fd.dirs = map[fixtureSpec]string{}
		}
		fd.dirs[f] = src
	}
	dst, err := os.MkdirTemp("", "vigil-compactor-copy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dst) })
	if err := copyDir(src, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func (fd *fixtureDirs) cleanup() {
	for _, d := range fd.dirs {
		os.RemoveAll(d)
	}
}

func (f fixtureSpec) build(t *testing.T, dir string) int {
	t.Helper()
	db := openDB(t, dir)
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	ctx := context.Background()
	if res, err := db.Append(ctx, []model.Series{f.anchor()}); err != nil || res.Stored != 2 {
		t.Fatalf("append anchor: %v %+v", err, res)
	}
	n := 0
	for i := 0; i < f.series; i += 10 {
		var batch []model.Series
		want := 0
		for j := i; j < min(i+10, f.series); j++ {
			s := f.genSeries(j)
			batch = append(batch, s)
			want += len(s.Samples)
		}
		res, err := db.Backfill(ctx, batch)
		if err != nil || res.Stored != want {
			t.Fatalf("backfill series %d: %v; stored %d of %d: %+v", i, err, res.Stored, want, res.Rejections)
		}
		n += want
	}
	return n
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// longRetention keeps everything of the fixtures at the clocks tests use.
func longRetention() Config {
	cfg := DefaultConfig()
	cfg.RetentionRaw, cfg.RetentionMinute, cfg.RetentionHour = 400*24*time.Hour, 400*24*time.Hour, 400*24*time.Hour
	return cfg
}

func newCompactor(t testing.TB, cfg Config, db *storage.DB) *Compactor {
	t.Helper()
	c, err := New(cfg, db, testLogger(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runOnce(t testing.TB, c *Compactor, now int64) Stats {
	t.Helper()
	st, err := c.RunOnce(context.Background(), time.UnixMilli(now))
	if err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
	return st
}

// readTierDay returns the stored windows of a tier day by series.
func readTierDay(t testing.TB, db *storage.DB, tier uint8, day int32) map[string][]downsample.Window {
	t.Helper()
	set, err := db.TierSelect(context.Background(), tier, dayStart(day)+1, dayStart(day+1))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]downsample.Window{}
	for set.Next() {
		s := set.At()
		var ws []downsample.Window
		for _, c := range s.Chunks {
			if c.Encoding != downsample.EncodingAggregate {
				t.Fatalf("%s: chunk encoding %d", s.Labels, c.Encoding)
			}
			cws, err := downsample.DecodeChunk(c.Data)
			if err != nil {
				t.Fatalf("%s: %v", s.Labels, err)
			}
			ws = append(ws, cws...)
		}
		out[s.Labels.String()] = ws
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// expectDay computes a tier day's windows from the generated raw samples:
// 1 m with Downsample, 1 h with Downsample at 1 h too (not from the 1 m
// windows), so sums and Inc may differ in the last bits.
func expectDay(all []model.Series, tier uint8, day int32) map[string][]downsample.Window {
	lo, hi := dayStart(day), dayStart(day+1)
	out := map[string][]downsample.Window{}
	for _, s := range all {
		var in []model.Sample
		for _, smp := range s.Samples {
			if smp.T > lo && smp.T <= hi {
				in = append(in, smp)
			}
		}
		if ws := downsample.Downsample(in, tierWidth[tier]); len(ws) > 0 {
			out[s.Labels.String()] = ws
		}
	}
	return out
}

// near: equal bits, or both within 1e-9 relative.
func near(a, b float64) bool {
	if sameFloat(a, b) || (math.IsNaN(a) && math.IsNaN(b)) {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Max(math.Abs(a), math.Abs(b)), 1)
}

// compareDays checks stored windows against expected ones: count, min,
// max, first and last exactly, sum and Inc within 1e-9 relative.
func compareDays(t *testing.T, what string, got, want map[string][]downsample.Window) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d series stored, want %d", what, len(got), len(want))
	}
	for k, ws := range want {
		g := got[k]
		if len(g) != len(ws) {
			t.Errorf("%s %s: %d windows, want %d", what, k, len(g), len(ws))
			continue
		}
		for i, w := range ws {
			a := g[i]
			exact := a.End == w.End && a.FirstT == w.FirstT && a.LastT == w.LastT && sameFloat(a.Count, w.Count) &&
				sameFloat(a.Min, w.Min) && sameFloat(a.Max, w.Max) && sameFloat(a.FirstV, w.FirstV) && sameFloat(a.LastV, w.LastV)
			if !exact || !near(a.Sum, w.Sum) || !near(a.Inc, w.Inc) {
				t.Errorf("%s %s window %d:\ngot  %+v\nwant %+v", what, k, i, a, w)
				return
			}
		}
	}
}

func genAll(f fixtureSpec) []model.Series {
	all := make([]model.Series, f.series)
	for i := range all {
		all[i] = f.genSeries(i)
	}
	return all
}

func tierProgresses(t testing.TB, db *storage.DB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, tier := range []uint8{storage.TierMinute, storage.TierHour} {
		days, err := db.TierDays(tier)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range days {
			v, ok, err := db.TierProgress(tier, d)
			if err != nil || !ok {
				t.Fatalf("progress of tier %d day %d: %v %v", tier, d, ok, err)
			}
			out[fmt.Sprintf("%d/%d", tier, d)] = v
		}
	}
	return out
}

// tierDaysOf returns the tier days a pass writes for the samples, before
// day end: the raw days and the days before them.
func tierDaysOf(all []model.Series, end int32) []int32 {
	days := map[int32]bool{}
	for _, s := range all {
		for _, smp := range s.Samples {
			if d := storage.DayOf(smp.T); d < end {
				days[d], days[d-1] = true, true
			}
		}
	}
	return slices.Sorted(maps.Keys(days))
}

// TestCompactMatchesRaw: 40 days of 300 series compacted in one pass; the
// stored 1 m and 1 h windows of several days equal Downsample of the raw
// samples written.
func TestCompactMatchesRaw(t *testing.T) {
	f := compactedFixture
	db := openDB(t, f.copy(t))
	defer db.Close()
	fixtures.mu.Lock()
	st := fixtures.stats[f]
	fixtures.mu.Unlock()
	now := f.compactedAt()

	// Every day with raw samples, and the day before it (its last window
	// ends at the day's first instant); the anchor's day is not due yet.
	all := genAll(f)
	wantDays := tierDaysOf(all, f.to)
	for _, tier := range []uint8{storage.TierMinute, storage.TierHour} {
		if got := slices.Sorted(slices.Values(st.Compacted[tier])); !slices.Equal(got, wantDays) {
			t.Fatalf("tier %d compacted days %v, want %v", tier, got, wantDays)
		}
		days, err := db.TierDays(tier)
		if err != nil || !slices.Equal(days, wantDays) {
			t.Fatalf("TierDays(%d) = %v, %v; want %v", tier, days, err, wantDays)
		}
	}

	for _, d := range []int32{f.from - 1, f.from + 17, f.to - 2, f.to - 1} {
		for _, tier := range []uint8{storage.TierMinute, storage.TierHour} {
			compareDays(t, fmt.Sprintf("tier %d day %s", tier, dayString(d)), readTierDay(t, db, tier, d), expectDay(all, tier, d))
		}
		v, _, err := db.TierProgress(storage.TierMinute, d)
		if err != nil {
			t.Fatal(err)
		}
		p, err := decodeProgress(v)
		if err != nil {
			t.Fatal(err)
		}
		want := expectDay(all, storage.TierMinute, d)
		nw := 0
		for _, ws := range want {
			nw += len(ws)
		}
		if p.series != uint64(len(want)) || p.windows != uint64(nw) || p.compactedAt != now || p.cold != db.ColdChangesDay(d) {
			t.Errorf("day %s progress %+v, want %d series, %d windows, compacted at %d, cold %d", dayString(d), p, len(want), nw, now, db.ColdChangesDay(d))
		}
	}
}

// TestCompactIdempotent: a second pass writes nothing; a backfill into a
// compacted day redoes that day only; one at exactly a day's start redoes
// that day and the day before, whose last window holds it.
func TestCompactIdempotent(t *testing.T) {
	f := compactedFixture
	db := openDB(t, f.copy(t))
	defer db.Close()
	c := newCompactor(t, longRetention(), db)
	now := f.compactedAt()
	before := tierProgresses(t, db)

	now += 5 * minute
	st := runOnce(t, c, now)
	if len(st.Compacted[1])+len(st.Compacted[2])+len(st.Dropped[0])+len(st.Dropped[1])+len(st.Dropped[2]) != 0 {
		t.Fatalf("second pass did something: %+v", st)
	}
	if after := tierProgresses(t, db); !equalProgress(before, after) {
		t.Fatal("progress changed by a pass without changes")
	}

	all := genAll(f)
	ctx := context.Background()
	tests := []struct {
		name string
		day  int32   // the day the sample is backfilled into
		t    int64   // its time
		want []int32 // days redone, in order
	}{
		{name: "inside a day", day: f.from + 20, t: dayStart(f.from+20) + 12*hour + 1234, want: []int32{f.from + 20}},
		{name: "at a day's first instant", day: f.from + 25, t: dayStart(f.from + 25), want: []int32{f.from + 25, f.from + 24}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mark := db.ColdChangesDay(tc.day)
			s := model.Series{Labels: labels.FromStrings("__name__", "fixture_backfilled", "n", strconv.Itoa(i)), Samples: []model.Sample{{T: tc.t, V: 42}}}
			if res, err := db.Backfill(ctx, []model.Series{s}); err != nil || res.Stored != 1 {
				t.Fatalf("backfill: %v %+v", err, res)
			}
			if db.ColdChangesDay(tc.day) == mark {
				t.Fatal("the backfill did not move the day's cold mark")
			}
			all = append(all, s)
			now += 5 * minute
			st := runOnce(t, c, now)
			if !slices.Equal(st.Compacted[1], tc.want) || !slices.Equal(st.Compacted[2], tc.want) {
				t.Fatalf("redone 1m days %v, 1h days %v; want %v", st.Compacted[1], st.Compacted[2], tc.want)
			}
			for _, d := range tc.want {
				for _, tier := range []uint8{storage.TierMinute, storage.TierHour} {
					got := readTierDay(t, db, tier, d)
					compareDays(t, fmt.Sprintf("tier %d day %s", tier, dayString(d)), got, expectDay(all, tier, d))
					if _, ok := got[s.Labels.String()]; ok != (d == storage.DayOf(tc.t-1)) {
						t.Errorf("tier %d day %s: backfilled series present %v", tier, dayString(d), ok)
					}
				}
			}
			if st := runOnce(t, c, now+5*minute); len(st.Compacted[1])+len(st.Compacted[2]) != 0 {
				t.Fatalf("pass after the redo compacted %v %v", st.Compacted[1], st.Compacted[2])
			}
		})
	}
}

// TestCompactBatches: a pass writing each tier day in batches of a few
// series and a few KB stores exactly what a pass writing each day in one
// batch stores, with the same progress and stats.
func TestCompactBatches(t *testing.T) {
	f := crashFixture
	now := f.compactedAt()
	pass := func(batchSeries, batchBytes int) (Stats, [3]tierContent) {
		db := openDB(t, f.copy(t))
		defer db.Close()
		c := newCompactor(t, longRetention(), db)
		c.batchSeries, c.batchBytes = batchSeries, batchBytes
		st := runOnce(t, c, now)
		return st, readAllTiers(t, db)
	}
	wantSt, want := pass(batchSeries, batchBytes)
	for _, tc := range []struct {
		name                    string
		batchSeries, batchBytes int
	}{
		{name: "7 series", batchSeries: 7, batchBytes: batchBytes},
		{name: "2 KB", batchSeries: batchSeries, batchBytes: 2 << 10},
		{name: "1 series", batchSeries: 1, batchBytes: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, got := pass(tc.batchSeries, tc.batchBytes)
			if fmt.Sprint(st) != fmt.Sprint(wantSt) {
				t.Fatalf("stats %+v, want %+v", st, wantSt)
			}
			if n := len(st.Compacted[1]); st.Series[1] < 2*tc.batchSeries*n && st.Bytes[1] < 2*tc.batchBytes*n {
				t.Fatalf("%d series and %d bytes in %d days: too few for two batches a day", st.Series[1], st.Bytes[1], n)
			}
			for _, tier := range []uint8{storage.TierMinute, storage.TierHour} {
				g, w := got[tier], want[tier]
				if !slices.Equal(g.days, w.days) || len(w.days) < 4 {
					t.Fatalf("tier %d days %v, want %v", tier, g.days, w.days)
				}
				for _, d := range w.days {
					if !bytes.Equal(g.progress[d], w.progress[d]) {
						t.Errorf("tier %d day %s: progress %x, want %x", tier, dayString(d), g.progress[d], w.progress[d])
					}
					if len(g.windows[d]) != len(w.windows[d]) {
						t.Errorf("tier %d day %s: %d series, want %d", tier, dayString(d), len(g.windows[d]), len(w.windows[d]))
					}
					for k, ws := range w.windows[d] {
						if !slices.EqualFunc(g.windows[d][k], ws, sameWindow) {
							t.Errorf("tier %d day %s %s: windows differ", tier, dayString(d), k)
						}
					}
				}
			}
		})
	}
}

func equalProgress(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestRetention: after a first pass compacted everything, a later pass
// drops the days past each tier's retention (oldest first, never raw data
// before its aggregates, never the day in the head), the data directory
// shrinks, and the retained days still answer.
func TestRetention(t *testing.T) {
	const day = 24 * time.Hour
	big, small := compactedFixture, crashFixture
	small.compacted = true
	// days returns every tier day of f after a pass at now, from day d on.
	days := func(f fixtureSpec, d int32) []int32 {
		all := append(tierDaysOf(genAll(f), f.to), f.to)
		i, _ := slices.BinarySearch(all, d)
		return all[i:]
	}
	tests := []struct {
		name         string
		f            fixtureSpec
		now          int64
		raw, m1, h1  time.Duration
		wantRaw      []int32 // raw days left
		wantM, wantH []int32
		check        []int32 // days whose content is checked
	}{
		{
			// Raw days ≤ to are past 7 d, 1 m days ≤ from+17 past 30 d. The
			// anchor's day is past retention but in the head: kept.
			name: "defaults", f: big, now: dayStart(big.to+8) + 3*hour, raw: 7 * day, m1: 30 * day, h1: 365 * day,
			wantRaw: []int32{big.to}, wantM: days(big, big.from+18), wantH: days(big, 0),
			check: []int32{big.from + 5, big.from + 20, big.to - 1},
		},
		{
			// Raw ≤ to−1, 1 m ≤ to−2, 1 h ≤ to−3 expire: 1 m days past the
			// 1 h retention go without a 1 h day to wait for.
			name: "all tiers drop", f: small, now: dayStart(small.to+2) + 3*hour, raw: 2 * day, m1: 3 * day, h1: 4 * day,
			wantRaw: []int32{small.to}, wantM: days(small, small.to-1), wantH: days(small, small.to-2),
			check: []int32{small.to - 3, small.to - 2, small.to - 1},
		},
		{
			// The 1 h days made from the 1 m tier stay; raw waits for them.
			name: "1m tier disabled", f: small, now: dayStart(small.to+2) + 3*hour, raw: 2 * day, m1: 0, h1: 365 * day,
			wantRaw: []int32{small.to}, wantM: nil, wantH: days(small, 0),
			check: []int32{small.from, small.to - 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, now := tc.f, tc.now
			all := genAll(f)
			dir := f.copy(t)
			sizeBefore := dirSize(t, dir)
			db := openDB(t, dir)
			defer db.Close()

			cfg := DefaultConfig()
			cfg.RetentionRaw, cfg.RetentionMinute, cfg.RetentionHour = tc.raw, tc.m1, tc.h1
			c := newCompactor(t, cfg, db)
			start := time.Now()
			st := runOnce(t, c, now)
			took := time.Since(start)
			for tier, want := range [][]int32{tc.wantRaw, tc.wantM, tc.wantH} {
				days, err := db.TierDays(uint8(tier))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(days, want) {
					t.Errorf("tier %d days %v, want %v", tier, days, want)
				}
				if !slices.IsSorted(st.Dropped[tier]) {
					t.Errorf("tier %d dropped out of order: %v", tier, st.Dropped[tier])
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			sizeAfter := dirSize(t, dir)
			t.Logf("dropped raw %d, 1m %d, 1h %d days in %s; data directory %.1f MB → %.1f MB",
				len(st.Dropped[0]), len(st.Dropped[1]), len(st.Dropped[2]), took.Round(time.Millisecond), float64(sizeBefore)/1e6, float64(sizeAfter)/1e6)
			if sizeAfter >= sizeBefore {
				t.Errorf("data directory did not shrink: %d → %d bytes", sizeBefore, sizeAfter)
			}

			db = openDB(t, dir)
			defer db.Close()
			if st := runOnce(t, newCompactor(t, cfg, db), now+5*minute); len(st.Compacted[1])+len(st.Compacted[2])+len(st.Dropped[1])+len(st.Dropped[2]) != 0 {
				t.Errorf("the pass after retention did %+v", st)
			}
			// Retained days answer; dropped days are gone.
			for tier, want := range [][]int32{nil, tc.wantM, tc.wantH} {
				if tier == 0 {
					continue
				}
				for _, d := range tc.check {
					got := readTierDay(t, db, uint8(tier), d)
					if !slices.Contains(want, d) {
						if len(got) != 0 {
							t.Errorf("tier %d day %s dropped but %d series answer", tier, dayString(d), len(got))
						}
						continue
					}
					compareDays(t, fmt.Sprintf("tier %d day %s", tier, dayString(d)), got, expectDay(all, uint8(tier), d))
				}
			}
		})
	}
}

func TestProgressRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		p    progress
	}{
		{name: "zero", p: progress{}},
		{name: "full", p: progress{cold: math.MaxUint64, compactedAt: -5, series: 1 << 40, windows: 300, head: 1, tail: 2, source: 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.p.encode()
			got, err := decodeProgress(b)
			if err != nil || got != tc.p {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.p)
			}
			for n := range len(b) {
				if _, err := decodeProgress(b[:n]); err == nil {
					t.Fatalf("truncated to %d bytes: no error", n)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{name: "default", modify: func(*Config) {}, ok: true},
		{name: "tiers disabled", modify: func(c *Config) { c.RetentionMinute, c.RetentionHour = 0, 0 }, ok: true},
		{name: "zero interval", modify: func(c *Config) { c.Interval = 0 }},
		{name: "negative settle", modify: func(c *Config) { c.Settle = -time.Second }},
		{name: "no raw retention", modify: func(c *Config) { c.RetentionRaw = 0 }},
		{name: "1m shorter than raw", modify: func(c *Config) { c.RetentionMinute = 6 * day }},
		{name: "1h shorter than 1m", modify: func(c *Config) { c.RetentionHour = 20 * day }},
		{name: "1h shorter than raw, 1m disabled", modify: func(c *Config) { c.RetentionMinute, c.RetentionHour = 0, 6*day }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.modify(&cfg)
			if err := cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
	var cfg Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-compactor.interval=1m", "-retention.raw=48h", "-retention.1m=0", "-retention.1h=8760h", "-compactor.settle=2h"}); err != nil {
		t.Fatal(err)
	}
	if want := (Config{Interval: time.Minute, Settle: 2 * time.Hour, RetentionRaw: 48 * time.Hour, RetentionHour: 8760 * time.Hour}); cfg != want {
		t.Fatalf("flags gave %+v, want %+v", cfg, want)
	}
}

// TestRun: Run passes at once and stops with its context.
func TestRun(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	reg := prometheus.NewRegistry()
	c, err := New(DefaultConfig(), db, testLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		passes := 0.0
		for _, mf := range mfs {
			if mf.GetName() == "vigil_compactor_passes_total" {
				passes = mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		if passes >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no pass within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// sameFloat is equality of bit patterns: NaN equals NaN, -0 differs from 0.
func sameFloat(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }

// sameWindow compares every column bit for bit.
func sameWindow(a, b downsample.Window) bool {
	return a.End == b.End && a.FirstT == b.FirstT && a.LastT == b.LastT &&
		sameFloat(a.Count, b.Count) && sameFloat(a.Sum, b.Sum) && sameFloat(a.Min, b.Min) && sameFloat(a.Max, b.Max) &&
		sameFloat(a.FirstV, b.FirstV) && sameFloat(a.LastV, b.LastV) && sameFloat(a.Inc, b.Inc)
}

// BenchmarkPassMemory measures the heap of one pass over one day of series
// scraped every 30 s, the case of docs/downsampling.md "Open problems" 7:
//
//	go test -run '^$' -bench PassMemory -benchtime 1x ./compactor/
//
// It reports, above the heap before the pass (after a GC), the peak live
// heap (as marked by the GC cycles during the pass) and the peak HeapInuse
// (live and garbage), both sampled every 2 ms, and the bytes allocated.
func BenchmarkPassMemory(b *testing.B) {
	const n = 2000
	day := day0 + 10
	src := b.TempDir()
	db := openDB(b, src)
	ctx := context.Background()
	for i := 0; i < n; i += 50 {
		var batch []model.Series
		for j := i; j < min(i+50, n); j++ {
			r := rand.New(rand.NewPCG(uint64(j), 7))
			name := "dense_gauge"
			if j%2 == 0 {
				name = "dense_requests_total"
			}
			s := model.Series{Labels: labels.FromStrings("__name__", name, "job", "dense", "i", strconv.Itoa(j))}
			v := 0.0
			for t := dayStart(day); t < dayStart(day+1); t += 30_000 {
				v += float64(r.IntN(100))
				s.Samples = append(s.Samples, model.Sample{T: t, V: v})
			}
			batch = append(batch, s)
		}
		if _, err := db.Backfill(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		if err := copyDir(src, dir); err != nil {
			b.Fatal(err)
		}
		db := openDB(b, dir)
		c := newCompactor(b, longRetention(), db)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		peak, peakLive := before.HeapInuse, uint64(0)
		live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			var ms runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					runtime.ReadMemStats(&ms)
					rtmetrics.Read(live)
					peak, peakLive = max(peak, ms.HeapInuse), max(peakLive, live[0].Value.Uint64())
				}
			}
		}()
		b.StartTimer()
		st := runOnce(b, c, dayStart(day+1)+3*hour)
		b.StopTimer()
		close(stop)
		<-done
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(peak-before.HeapInuse)/1e6, "peak-inuse-MB")
		b.ReportMetric((float64(peakLive)-float64(before.HeapAlloc))/1e6, "peak-live-MB")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/1e6, "alloc-MB")
		b.ReportMetric(float64(st.Windows[storage.TierMinute]), "1m-windows")
		b.ReportMetric(float64(st.Bytes[storage.TierMinute])/1e6, "1m-MB")
		b.StartTimer()
	}
}

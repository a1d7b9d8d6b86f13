package storage

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/vigil-tsdb/vigil/model"
)

// sampleSet is a fixed set of samples, the model digests are checked against.
type sampleSet struct {
	lsets []labels.Labels
	data  map[string]map[int64]float64
}

func genSampleSet(r *rand.Rand, nSeries, nSamples int, t0, step int64) *sampleSet {
	ss := &sampleSet{data: map[string]map[int64]float64{}}
	for i := range nSeries {
		lset := labels.FromStrings("__name__", "dg", "job", fmt.Sprintf("j%d", i%3), "i", fmt.Sprint(i))
		ss.lsets = append(ss.lsets, lset)
		d := map[int64]float64{}
		for k := range nSamples {
			v := float64(r.IntN(1000)) / 4
			if r.IntN(200) == 0 {
				v = math.Float64frombits(value.StaleNaN)
			}
			d[t0+int64(k)*step+r.Int64N(step/2)] = v
		}
		ss.data[lset.String()] = d
	}
	return ss
}

// all returns every sample as a one-sample series, in time order.
func (ss *sampleSet) all() []model.Series {
	var out []model.Series
	for _, lset := range ss.lsets {
		for t, v := range ss.data[lset.String()] {
			out = append(out, model.Series{Labels: lset, Samples: []model.Sample{{T: t, V: v}}})
		}
	}
	slices.SortStableFunc(out, func(a, b model.Series) int { return int(a.Samples[0].T - b.Samples[0].T) })
	return out
}

// digests computes what SeriesDigests must report for [mint, maxt].
func (ss *sampleSet) digests(mint, maxt int64) map[string]SeriesDigest {
	out := map[string]SeriesDigest{}
	for _, lset := range ss.lsets {
		d := SeriesDigest{Labels: lset}
		for t, v := range ss.data[lset.String()] {
			if t >= mint && t <= maxt {
				d.Samples++
				d.Sum += SampleDigest(t, v)
			}
		}
		if d.Samples > 0 {
			out[lset.String()] = d
		}
	}
	return out
}

// counterValue reads a counter of the DB's metrics.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func collectDigests(t testing.TB, db *DB, mint, maxt int64) map[string]SeriesDigest {
	t.Helper()
	out := map[string]SeriesDigest{}
	err := db.SeriesDigests(context.Background(), mint, maxt, func(d SeriesDigest) error {
		k := d.Labels.String()
		if _, dup := out[k]; dup {
			return fmt.Errorf("series %s reported twice", k)
		}
		out[k] = d
		return nil
	})
	if err != nil {
		t.Fatalf("digests [%d, %d]: %v", mint, maxt, err)
	}
	return out
}

func compareDigests(t *testing.T, when string, got, want map[string]SeriesDigest) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Fatalf("%s: series %s missing", when, k)
		}
		if g.Samples != w.Samples || g.Sum != w.Sum {
			t.Fatalf("%s: series %s: got %d samples sum %x, want %d sum %x", when, k, g.Samples, g.Sum, w.Samples, w.Sum)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d series, want %d", when, len(got), len(want))
	}
}

func shuffled(r *rand.Rand, s []model.Series) []model.Series {
	s = slices.Clone(s)
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	return s
}

func mustPush(t testing.TB, what string, push func(context.Context, []model.Series) (model.PushResult, error), batch []model.Series) model.PushResult {
	t.Helper()
	res, err := push(context.Background(), batch)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if res.RejectedSamples > 0 {
		t.Fatalf("%s: %d refused: %+v", what, res.RejectedSamples, res.Rejections[0])
	}
	return res
}

func mustFlush(t testing.TB, db *DB) {
	t.Helper()
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
}

// digestConfig: 2 h chunk ranges and a short out-of-order window, so that
// three days of data live mostly in Badger.
func digestConfig(dir string) Config {
	cfg := testConfig(dir)
	cfg.ChunkRange = 2 * time.Hour
	cfg.OutOfOrderWindow = 10 * time.Minute
	return cfg
}

// TestSeriesDigestsAcrossHistories feeds the same samples to DBs in
// different ways (in order; shuffled through the out-of-order path with
// re-sent duplicates; old ones backfilled as chunks), with flushes and
// restarts in between, and checks every DB's digests against the model,
// over ranges that cut through chunks and partitions.
func TestSeriesDigestsAcrossHistories(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	t0 := int64(1_700_000_000_000)
	const step = 30_000
	ss := genSampleSet(r, 8, 3*2880, t0, step) // three days
	all := ss.all()
	end := all[len(all)-1].Samples[0].T
	ranges := [][2]int64{{math.MinInt64, math.MaxInt64}, {t0 + 3_600_000, t0 + 3_600_000 + 37*60_000}, {end - 5*60_000, end}}
	for p := partitionOf(t0); partitionStart(p) <= end; p++ {
		ranges = append(ranges, [2]int64{partitionStart(p), partitionStart(p) + PartitionDuration - 1})
	}
	check := func(t *testing.T, when string, db *DB) {
		t.Helper()
		total := 0
		for _, smps := range readAll(t, db, math.MinInt64, math.MaxInt64) {
			total += len(smps)
		}
		if total != len(all) {
			t.Fatalf("%s: %d samples readable, %d written", when, total, len(all))
		}
		for _, rg := range ranges {
			compareDigests(t, fmt.Sprintf("%s, range [%d, %d]", when, rg[0], rg[1]), collectDigests(t, db, rg[0], rg[1]), ss.digests(rg[0], rg[1]))
		}
	}
	reopen := func(db *DB, cfg Config, crash bool) *DB {
		if crash {
			db.abandon()
		} else if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return openTest(t, cfg)
	}

	t.Run("in order", func(t *testing.T) {
		cfg := digestConfig(t.TempDir())
		db := openTest(t, cfg)
		for i := 0; i < len(all); i += 500 {
			mustPush(t, "append", db.Append, all[i:min(i+500, len(all))])
			if i%10_000 == 0 {
				mustFlush(t, db)
			}
		}
		check(t, "before restart", db)
		db = reopen(db, cfg, false)
		defer func() { db.Close() }()
		check(t, "after restart", db)
	})

	t.Run("out of order", func(t *testing.T) {
		cfg := digestConfig(t.TempDir())
		cfg.OutOfOrderWindow = 5 * 24 * time.Hour
		db := openTest(t, cfg)
		// Shuffled within blocks of about two hours.
		mixed := slices.Clone(all)
		for i := 0; i < len(mixed); i += 2000 {
			blk := mixed[i:min(i+2000, len(mixed))]
			r.Shuffle(len(blk), func(a, b int) { blk[a], blk[b] = blk[b], blk[a] })
		}
		var ooo, dups float64
		for i := 0; i < len(mixed); i += 400 {
			batch := mixed[i:min(i+400, len(mixed))]
			if i > 0 && i%2000 == 0 {
				batch = append(slices.Clone(batch), mixed[i-10:i]...) // re-sent: duplicates
			}
			mustPush(t, "append", db.Append, batch)
			switch i % 12_000 {
			case 4000:
				mustFlush(t, db)
			case 8000:
				ooo += counterValue(t, db.metrics.outOfOrder)
				dups += counterValue(t, db.metrics.duplicates)
				db = reopen(db, cfg, i%24_000 == 8000)
			}
		}
		if ooo == 0 || dups == 0 {
			t.Fatalf("%v out-of-order samples, %v duplicates: the test does not exercise what it is for", ooo, dups)
		}
		check(t, "before restart", db)
		db = reopen(db, cfg, true)
		defer func() { db.Close() }()
		check(t, "after restart", db)
	})

	t.Run("backfill", func(t *testing.T) {
		cfg := digestConfig(t.TempDir())
		db := openTest(t, cfg)
		// The newest hour appended in order except a few samples of its
		// last minutes; the rest backfilled as runs of one series' samples
		// in random order (as repair sends them, chunked unlike the
		// original), after one sample in 50 was sent alone first; some of
		// it twice. The held-back samples are inside the out-of-order
		// window: Backfill stores them through the head.
		split := len(all) - 8*120
		var first, held []model.Series
		for i, s := range all[split:] {
			if i >= 8*110 && i%7 == 0 {
				held = append(held, s)
			} else {
				first = append(first, s)
			}
		}
		mustPush(t, "append", db.Append, first)
		var old, singles []model.Series
		runs := map[string]*model.Series{}
		flushRun := func(k string) {
			if run := runs[k]; run != nil && len(run.Samples) > 0 {
				old = append(old, *run)
				delete(runs, k)
			}
		}
		for i, s := range all[:split] {
			if i%50 == 0 {
				singles = append(singles, s)
				continue
			}
			k := s.Labels.String()
			if runs[k] == nil {
				runs[k] = &model.Series{Labels: s.Labels}
			}
			runs[k].Samples = append(runs[k].Samples, s.Samples[0])
			if len(runs[k].Samples) == 50+i%150 {
				flushRun(k)
			}
		}
		for _, lset := range ss.lsets {
			flushRun(lset.String())
		}
		old = append(shuffled(r, singles), shuffled(r, old)...)
		var viaHead, viaChunks float64
		count := func() {
			viaHead += counterValue(t, db.metrics.backfilled.WithLabelValues("head"))
			viaChunks += counterValue(t, db.metrics.backfilled.WithLabelValues("chunks"))
		}
		for i := 0; i < len(old); i += 10 {
			batch := old[i:min(i+10, len(old))]
			if len(held) > 0 && i%20 == 0 {
				batch = append(slices.Clone(batch), held[0], first[len(first)-1-i/20])
				held = held[1:]
			}
			if i > 0 && i%30 == 0 {
				batch = append(slices.Clone(batch), old[i-2:i]...)
			}
			offered := 0
			for _, s := range batch {
				offered += len(s.Samples)
			}
			res := mustPush(t, "backfill", db.Backfill, batch)
			if res.Stored+res.Duplicates != offered {
				t.Fatalf("backfill: %+v for %d samples", res, offered)
			}
			if i%400 == 0 {
				count()
				db = reopen(db, cfg, i%800 == 0)
			}
		}
		count()
		if viaHead == 0 || viaChunks == 0 || len(held) > 0 {
			t.Fatalf("backfill stored %v samples through the head, %v as chunks, %d held back left over", viaHead, viaChunks, len(held))
		}
		check(t, "before restart", db)
		db = reopen(db, cfg, false)
		defer func() { db.Close() }()
		check(t, "after restart", db)
		checkChunkShapes(t, db)
		for _, lset := range ss.lsets[:3] {
			got, err := db.SeriesSamples(context.Background(), lset, t0+PartitionDuration/3, end-PartitionDuration/3)
			if err != nil {
				t.Fatal(err)
			}
			want := (&refModel{data: map[string]map[int64]float64{lset.String(): ss.data[lset.String()]}, series: map[string]labels.Labels{lset.String(): lset}}).expect(t0+PartitionDuration/3, end-PartitionDuration/3)
			compare(t, "SeriesSamples", map[string][]model.Sample{lset.String(): got}, want)
		}
	})

	t.Run("one value differs", func(t *testing.T) {
		cfg := digestConfig(t.TempDir())
		db := openTest(t, cfg)
		defer func() { db.Close() }()
		changed := slices.Clone(all)
		victim := len(changed) / 2
		smp := changed[victim].Samples[0]
		changed[victim] = model.Series{Labels: changed[victim].Labels, Samples: []model.Sample{{T: smp.T, V: smp.V + 1}}}
		for i := 0; i < len(changed); i += 500 {
			mustPush(t, "append", db.Append, changed[i:min(i+500, len(changed))])
		}
		mustFlush(t, db)
		for _, rg := range ranges {
			got, want := collectDigests(t, db, rg[0], rg[1]), ss.digests(rg[0], rg[1])
			for k, w := range want {
				in := k == changed[victim].Labels.String() && smp.T >= rg[0] && smp.T <= rg[1]
				if g := got[k]; g.Samples != w.Samples || (g.Sum != w.Sum) != in {
					t.Fatalf("range [%d, %d], series %s (changed: %v): got %d samples sum %x, model %d sum %x", rg[0], rg[1], k, in, g.Samples, g.Sum, w.Samples, w.Sum)
				}
			}
		}
	})
}

// TestSampleDigest pins the digest function: other packages and other
// builds must compute the same values.
func TestSampleDigest(t *testing.T) {
	// mix64 is splitmix64's finalizer: the reference generator seeded with
	// 0 yields Mix64(k·0x9e3779b97f4a7c15) for k = 1, 2, 3.
	for k, want := range []uint64{0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f} {
		if got := Mix64(uint64(k+1) * 0x9e3779b97f4a7c15); got != want {
			t.Fatalf("mix64 output %d = %#x, want %#x (splitmix64 reference)", k, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		t    int64
		v    float64
		want uint64
	}{
		{"zero", 0, 0, 0x48218226ff3cd4bf},
		{"typical", 1_700_000_000_000, 42.5, 0x6962c7916bb12d8a},
		{"negative time", -1, -1, 0xeaf1d33a9a65cefc},
		{"stale marker", 1_700_000_000_000, math.Float64frombits(value.StaleNaN), 0x332ab23d9bfc4c26},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SampleDigest(tc.t, tc.v)
			if got != tc.want {
				t.Fatalf("SampleDigest(%d, %v) = %#x, want %#x", tc.t, tc.v, got, tc.want)
			}
			if SampleDigest(tc.t, math.Float64frombits(math.Float64bits(tc.v)^1)) == got || SampleDigest(tc.t+1, tc.v) == got {
				t.Fatal("digest insensitive to a changed sample")
			}
		})
	}
}

// checkChunkShapes checks every raw chunk in Badger: at most 120 samples,
// within one chunk range, keyed by the partition of its first sample, and
// bounds that are exact sample times.
func checkChunkShapes(t *testing.T, db *DB) {
	t.Helper()
	n := 0
	err := db.bdb.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixChunks, TierRaw}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			_, mint, _, err := parseChunkKey(k)
			if err != nil {
				return err
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			maxt, _, data, err := parseChunkValue(v)
			if err != nil {
				return err
			}
			xc, err := chunkFromBytes(data)
			if err != nil {
				return err
			}
			var ts []int64
			iter := xc.Iterator(nil)
			for iter.Next() != 0 {
				tt, _ := iter.At()
				ts = append(ts, tt)
			}
			switch {
			case len(ts) == 0 || len(ts) > samplesPerChunk:
				return fmt.Errorf("chunk %x has %d samples", k, len(ts))
			case ts[0] != mint || ts[len(ts)-1] != maxt:
				return fmt.Errorf("chunk %x: bounds [%d, %d], samples [%d, %d]", k, mint, maxt, ts[0], ts[len(ts)-1])
			case maxt >= rangeEnd(mint, db.chunkRange):
				return fmt.Errorf("chunk %x spans chunk ranges: [%d, %d]", k, mint, maxt)
			case !slices.IsSorted(ts):
				return fmt.Errorf("chunk %x not sorted", k)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no chunk in Badger")
	}
}

package storage

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// TestConcurrentAppendFlushEvict has writers append to series that go idle,
// are evicted by concurrent flushes and come back, while readers query.
// Every acknowledged sample must be readable at the end, before and after
// a restart.
func TestConcurrentAppendFlushEvict(t *testing.T) {
	cfg := testConfig(t.TempDir())
	db := openTest(t, cfg)
	const writers, rounds, perRound = 4, 60, 20
	base := int64(1_700_000_000_000)
	step := cfg.OutOfOrderWindow.Milliseconds() // each round moves a whole window ahead
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, writers*rounds+2)
	writeRound := func(r int) { // writers run concurrently within a round
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var batch []model.Series
				// Half the series are used every round, half every third
				// round: those go idle, get evicted and are re-created.
				for i := range perRound {
					if i%2 == 1 && r%3 != 0 {
						continue
					}
					ts := base + int64(r)*step + int64(w)
					batch = append(batch, model.Series{
						Labels:  labels.FromStrings("__name__", "c", "w", fmt.Sprint(w), "i", fmt.Sprint(i)),
						Samples: []model.Sample{{T: ts, V: float64(r)}},
					})
				}
				res, err := db.Append(ctx, batch)
				if err != nil {
					errc <- err
					return
				}
				if res.RejectedSamples > 0 {
					errc <- fmt.Errorf("writer %d round %d: %d refused: %+v", w, r, res.RejectedSamples, res.Rejections[0])
				}
			}()
		}
		wg.Wait()
	}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // flusher
		defer bg.Done()
		for ctx.Err() == nil {
			if err := db.Flush(); err != nil {
				errc <- err
				return
			}
		}
	}()
	go func() { // reader
		defer bg.Done()
		for ctx.Err() == nil {
			q, _ := db.Querier(math.MinInt64, math.MaxInt64)
			ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "c"))
			for ss.Next() {
			}
			if err := ss.Err(); err != nil && ctx.Err() == nil {
				errc <- err
				return
			}
		}
	}()
	for r := range rounds {
		writeRound(r)
		if r%2 == 1 { // besides the background flusher: make sure evictions happen
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	cancel()
	bg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	want := 0
	for r := range rounds {
		for i := range perRound {
			if i%2 == 0 || r%3 == 0 {
				want++
			}
		}
	}
	want *= writers
	count := func(when string) {
		got := 0
		for _, smps := range readAll(t, db, math.MinInt64, math.MaxInt64) {
			got += len(smps)
		}
		if got != want {
			t.Fatalf("%s: %d samples readable, %d acknowledged", when, got, want)
		}
	}
	count("after the run")
	if seriesRemoved(t, db) == 0 {
		t.Fatal("no series was ever evicted: the test does not exercise re-creation")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, cfg)
	defer db.Close()
	count("after restart")
}

// seriesRemoved reads vigil_storage_series_removed_total.
func seriesRemoved(t *testing.T, db *DB) float64 {
	var m dto.Metric
	if err := db.metrics.seriesRemoved.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestConcurrentRepairOps runs Backfill, DeleteSeries, SeriesDigests and
// SeriesSamples against concurrent appends, flushes (with evictions) and
// queries. Backfill and Append create the same new series at the same
// time (each must end up with one ref). At the end, reads and digests must
// match what was acknowledged, before and after a restart.
func TestConcurrentRepairOps(t *testing.T) {
	cfg := testConfig(t.TempDir())
	db := openTest(t, cfg)
	const rounds = 30
	base := int64(1_700_000_000_000)
	step := cfg.OutOfOrderWindow.Milliseconds()
	old := base - 2*PartitionDuration
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 100)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	// Each writer keeps its own model; they are merged at the end.
	type sampleModel map[string]map[int64]float64
	var mu sync.Mutex
	want := sampleModel{}
	lsets := map[string]labels.Labels{}
	record := func(batch []model.Series) {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range batch {
			k := s.Labels.String()
			lsets[k] = s.Labels
			if want[k] == nil {
				want[k] = map[int64]float64{}
			}
			for _, smp := range s.Samples {
				want[k][smp.T] = smp.V
			}
		}
	}
	push := func(what string, f func(context.Context, []model.Series) (model.PushResult, error), batch []model.Series) bool {
		res, err := f(ctx, batch)
		if err == nil && res.RejectedSamples > 0 {
			err = fmt.Errorf("%d refused: %+v", res.RejectedSamples, res.Rejections[0])
		}
		if err != nil {
			fail(fmt.Errorf("%s: %w", what, err))
			return false
		}
		record(batch)
		return true
	}

	var bg sync.WaitGroup
	bg.Add(3)
	go func() { // flusher
		defer bg.Done()
		for ctx.Err() == nil {
			if err := db.Flush(); err != nil {
				fail(err)
				return
			}
		}
	}()
	go func() { // reader
		defer bg.Done()
		for ctx.Err() == nil {
			q, _ := db.Querier(math.MinInt64, math.MaxInt64)
			ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
			for ss.Next() {
			}
			if err := ss.Err(); err != nil && ctx.Err() == nil {
				fail(err)
				return
			}
		}
	}()
	go func() { // digester
		defer bg.Done()
		for ctx.Err() == nil {
			err := db.SeriesDigests(ctx, old, math.MaxInt64, func(d SeriesDigest) error {
				if d.Samples <= 0 || d.Labels.IsEmpty() {
					return fmt.Errorf("bad digest %+v", d)
				}
				return nil
			})
			if err != nil && ctx.Err() == nil {
				fail(err)
				return
			}
		}
	}()

	for r := range rounds {
		var wg sync.WaitGroup
		now := base + int64(r)*step
		wg.Add(4)
		go func() { // appends to steady series, and to the round's new series
			defer wg.Done()
			var batch []model.Series
			for i := range 10 {
				batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "c", "i", fmt.Sprint(i)), Samples: []model.Sample{{T: now, V: float64(r)}}})
			}
			for j := range 5 {
				batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "p", "r", fmt.Sprint(r), "j", fmt.Sprint(j)), Samples: []model.Sample{{T: now + 1, V: 1}}})
			}
			push("append", db.Append, batch)
		}()
		go func() { // backfills old samples of the same new series
			defer wg.Done()
			var batch []model.Series
			for j := range 5 {
				var smps []model.Sample
				for k := range 30 {
					smps = append(smps, model.Sample{T: old + int64(r)*100_000 + int64(k)*1000, V: float64(k)})
				}
				batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "p", "r", fmt.Sprint(r), "j", fmt.Sprint(j)), Samples: smps})
			}
			push("backfill", db.Backfill, batch)
		}()
		go func() { // fills a group and deletes most of it
			defer wg.Done()
			g := fmt.Sprint(r)
			var batch []model.Series
			for j := range 3 {
				var smps []model.Sample
				for k := range 40 {
					smps = append(smps, model.Sample{T: old + PartitionDuration/2 + int64(r)*100_000 + int64(k)*1000, V: float64(k)})
				}
				batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "d", "g", g, "j", fmt.Sprint(j)), Samples: smps})
			}
			if !push("fill", db.Backfill, batch) {
				return
			}
			maxt := old + PartitionDuration/2 + int64(r)*100_000 + 29_500
			n, err := db.DeleteSeries(ctx, func(l labels.Labels) bool { return l.Get("__name__") == "d" && l.Get("g") == g }, maxt)
			if err != nil || n != 3 {
				fail(fmt.Errorf("delete group %s: %d series, %v", g, n, err))
				return
			}
			mu.Lock()
			for _, s := range batch {
				for ts := range want[s.Labels.String()] {
					if ts <= maxt {
						delete(want[s.Labels.String()], ts)
					}
				}
			}
			mu.Unlock()
			got, err := db.SeriesSamples(ctx, batch[0].Labels, math.MinInt64, math.MaxInt64)
			if err != nil || len(got) != 10 || got[0].T != maxt+500 {
				fail(fmt.Errorf("group %s after delete: %v %v", g, got, err))
			}
		}()
		go func() { // re-sends an earlier round's backfill: all duplicates
			defer wg.Done()
			if r == 0 {
				return
			}
			smps := []model.Sample{{T: old + int64(r-1)*100_000, V: 0}}
			res, err := db.Backfill(ctx, []model.Series{{Labels: labels.FromStrings("__name__", "p", "r", fmt.Sprint(r-1), "j", "0"), Samples: smps}})
			if err != nil || res.Duplicates != 1 {
				fail(fmt.Errorf("re-sent backfill: %+v %v", res, err))
			}
		}()
		wg.Wait()
	}
	cancel()
	bg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	ss := &sampleSet{data: want}
	for _, l := range lsets {
		ss.lsets = append(ss.lsets, l)
	}
	check := func(when string) {
		t.Helper()
		exp := map[string][]model.Sample{}
		for k, d := range want {
			for ts, v := range d {
				exp[k] = append(exp[k], model.Sample{T: ts, V: v})
			}
			slices.SortFunc(exp[k], func(a, b model.Sample) int { return cmp.Compare(a.T, b.T) })
		}
		compare(t, when, readAll(t, db, math.MinInt64, math.MaxInt64), exp)
		compareDigests(t, when+", digests", collectDigests(t, db, math.MinInt64, math.MaxInt64), ss.digests(math.MinInt64, math.MaxInt64))
		checkSeriesIndex(t, db)
	}
	check("after the run")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, cfg)
	defer db.Close()
	check("after restart")
}

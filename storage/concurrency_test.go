package storage

import (
	"context"
	"fmt"
	"math"
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

package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// BenchmarkAppend appends batches shaped like remote write from a scraper:
// many series, one sample each, timestamps advancing per round.
func BenchmarkAppend(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) { benchmarkAppend(b, n) })
	}
}

func benchmarkAppend(b *testing.B, nSeries int) {
	cfg := testConfig(b.TempDir())
	cfg.WALSync = SyncInterval
	cfg.ChunkRange = DefaultConfig().ChunkRange
	db := openTest(b, cfg)
	defer func() {
		b.StopTimer()
		db.Close()
	}()
	lsets := make([]labels.Labels, nSeries)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", fmt.Sprintf("node_metric_%d", i%50), "instance", fmt.Sprintf("host-%d:9100", i/100), "job", "node", "cpu", fmt.Sprint(i%8), "mode", "idle")
	}
	batch := make([]model.Series, nSeries)
	fill := func(n int) {
		ts := int64(1_700_000_000_000 + n*15_000)
		for i := range batch {
			batch[i] = model.Series{Labels: lsets[i], Samples: []model.Sample{{T: ts, V: float64(n)}}}
		}
	}
	fill(-1) // create the series outside the measurement
	if _, err := db.Append(context.Background(), batch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		fill(n)
		b.StartTimer()
		if _, err := db.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nSeries), "ns/sample")
	b.StopTimer()
}

// BenchmarkSeriesDigests digests one day of 30 s samples per series, read
// from Badger (backfilled as chunks, nothing in memory) or from the head.
func BenchmarkSeriesDigests(b *testing.B) {
	for _, bc := range []struct {
		source string
		series int
	}{{"badger", 2000}, {"head", 500}} {
		b.Run(fmt.Sprintf("source=%s/series=%d", bc.source, bc.series), func(b *testing.B) {
			benchmarkSeriesDigests(b, bc.source, bc.series)
		})
	}
}

func benchmarkSeriesDigests(b *testing.B, source string, nSeries int) {
	const perDay = 2880
	cfg := testConfig(b.TempDir())
	cfg.WALSync = SyncInterval
	cfg.ChunkRange = DefaultConfig().ChunkRange
	if source == "head" {
		cfg.OutOfOrderWindow = 3 * 24 * time.Hour
	}
	db := openTest(b, cfg)
	defer db.Close()
	ctx := context.Background()
	day := partitionStart(partitionOf(1_700_000_000_000))
	push := db.Backfill
	if source == "badger" { // a newer sample makes the whole day older than the window
		if _, err := db.Append(ctx, []model.Series{{Labels: labels.FromStrings("__name__", "anchor"), Samples: []model.Sample{{T: day + 2*PartitionDuration, V: 1}}}}); err != nil {
			b.Fatal(err)
		}
	} else {
		push = db.Append
	}
	for lo := 0; lo < nSeries; lo += 100 {
		for k0 := 0; k0 < perDay; k0 += 720 {
			var batch []model.Series
			for i := lo; i < min(lo+100, nSeries); i++ {
				lset := labels.FromStrings("__name__", fmt.Sprintf("node_metric_%d", i%50), "instance", fmt.Sprintf("host-%d:9100", i/50), "job", "node")
				smps := make([]model.Sample, 0, 720)
				for k := k0; k < k0+720; k++ {
					smps = append(smps, model.Sample{T: day + int64(k)*30_000, V: float64(k % 97)})
				}
				batch = append(batch, model.Series{Labels: lset, Samples: smps})
			}
			if res, err := push(ctx, batch); err != nil || res.RejectedSamples > 0 {
				b.Fatalf("load: %+v %v", res, err)
			}
		}
	}
	if source == "badger" && db.head.numSeries.Load() != 1 {
		b.Fatalf("%d series in the head", db.head.numSeries.Load())
	}
	b.ReportAllocs()
	b.ResetTimer()
	var samples int
	for n := 0; n < b.N; n++ {
		series := 0
		err := db.SeriesDigests(ctx, day, day+PartitionDuration-1, func(d SeriesDigest) error {
			series++
			samples += d.Samples
			return nil
		})
		if err != nil || series != nSeries {
			b.Fatalf("%d series, %v", series, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nSeries), "ns/series")
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
}

package storage

import (
	"context"
	"fmt"
	"testing"

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

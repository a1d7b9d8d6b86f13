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
	const nSeries = 10_000
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
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		ts := int64(1_700_000_000_000 + n*15_000)
		for i := range batch {
			batch[i] = model.Series{Labels: lsets[i], Samples: []model.Sample{{T: ts, V: float64(n)}}}
		}
		if _, err := db.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nSeries), "ns/sample")
	b.StopTimer()
}

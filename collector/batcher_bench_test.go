package collector

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-tsdb/vigil/model"
)

// BenchmarkBatcherPush measures the batching machinery: 128 scrape loops
// push 1,000-series batches back to back to a downstream that accepts at
// once (sub-benchmark "up"), or fails so that everything is spooled
// ("down"), enough to fill batches by size and the queue, as during a
// burst of scrapes. A scrape loop that pushes once per interval waits up
// to flush_interval instead; see TestBatcherFlushReasons.
func BenchmarkBatcherPush(b *testing.B) {
	for _, down := range []bool{false, true} {
		name := "up"
		if down {
			name = "down"
		}
		b.Run(name, func(b *testing.B) {
			cfg := DefaultBatcherConfig()
			cfg.Spool = testSpoolConfig(b.TempDir())
			cfg.Spool.MaxBytes = 4 << 30
			cfg.Spool.SegmentBytes = 16 << 20
			cfg.ReplayBackoff, cfg.MaxReplayBackoff = time.Hour, time.Hour
			sink := SinkFunc(func(_ context.Context, batch []model.Series) (model.PushResult, error) {
				if down {
					return model.PushResult{}, model.ErrUnavailable
				}
				return model.PushResult{Stored: model.CountSamples(batch)}, nil
			})
			bt, err := NewBatcher(cfg, sink, nil, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			defer bt.Close()
			batch := nodeBatch(1000, 1_700_000_000_000)
			b.SetParallelism(64) // × GOMAXPROCS pushing goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bt.Push(context.Background(), batch); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkSpoolAppend measures spooling full batches (encode, write,
// fsync) and replaying them (read, check, decode).
func BenchmarkSpoolAppend(b *testing.B) {
	cfg := testSpoolConfig(b.TempDir())
	cfg.MaxBytes = 1 << 30
	cfg.SegmentBytes = 16 << 20
	s, err := openSpool(cfg, slog.New(slog.DiscardHandler), nil, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	batch := nodeBatch(10_000, 1_700_000_000_000)
	b.ResetTimer()
	for b.Loop() {
		if err := s.append(batch)[0]; err != nil {
			b.Fatal(err)
		}
		e, _ := s.head()
		if _, err := s.read(e); err != nil {
			b.Fatal(err)
		}
		s.ack(e)
	}
	b.ReportMetric(float64(b.N)*10_000/b.Elapsed().Seconds(), "samples/s")
}

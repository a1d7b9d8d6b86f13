package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// BenchmarkRemoteWritePath measures the whole single-node write path in
// one process: HTTP remote write → decode → distributor → loopback gRPC →
// ingester → storage (WAL sync interval, so the disk does not dominate).
// Each request carries 10k series with one sample, as a scraper's remote
// write does.
func BenchmarkRemoteWritePath(b *testing.B) {
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", "127.0.0.1:0",
			"-self-scrape.interval=0", "-storage.wal-sync=interval", "-log.level=error"}, pw, io.Discard)
		pw.Close()
	}()
	buf := make([]byte, 4096)
	n, _ := pr.Read(buf)
	go io.Copy(io.Discard, pr)
	var base string
	fmt.Sscanf(string(bytes.SplitN(buf[:n], []byte("source:"), 2)[1]), "%s", &base)
	defer func() {
		cancel()
		<-done
	}()

	const nSeries = 10_000
	now := time.Now().UnixMilli()
	bodies := make([][]byte, 0, 64)
	for r := range 64 {
		req := prompb.WriteRequest{}
		for i := range nSeries {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels: []prompb.Label{
					{Name: "__name__", Value: fmt.Sprintf("node_metric_%d_total", i%50)},
					{Name: "cpu", Value: fmt.Sprint(i % 8)},
					{Name: "instance", Value: fmt.Sprintf("host-%d:9100", i/100)},
					{Name: "job", Value: "node"},
					{Name: "mode", Value: "idle"},
				},
				Samples: []prompb.Sample{{Timestamp: now - int64(64-r)*15_000, Value: float64(r * i)}},
			})
		}
		raw, _ := req.Marshal()
		bodies = append(bodies, snappy.Encode(nil, raw))
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		body := bodies[n%len(bodies)]
		if n >= len(bodies) {
			b.Fatal("benchmark ran past the prepared requests; use -benchtime 64x or less")
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", "snappy")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nSeries), "ns/sample")
	if testing.Verbose() {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(m), "\n") {
				if strings.Contains(line, "duration_seconds_sum") && strings.HasPrefix(line, "vigil_") {
					b.Log(line)
				}
			}
		}
	}
}

package integration

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/sdk"
)

// TestSDKKilledDistributor writes through the Go SDK to a cluster with two
// distributors (3 ingesters, RF 3) from four goroutines, and SIGKILLs one
// distributor halfway. The client knows both (a comma-separated address
// list): calls in flight on the killed one fail with Unavailable and are
// retried on the other, so every write returns success, and every
// acknowledged sample reads back exactly once.
func TestSDKKilledDistributor(t *testing.T) {
	logDuration(t)
	c, _, dq1 := startCluster(t, 3)
	dq2 := c.start(nodeSpec{name: "dq-2", target: "distributor,querier"})
	client, err := sdk.New(dq1.grpcAddr+","+dq2.grpcAddr, sdk.WithBackoff(50*time.Millisecond, time.Second), sdk.WithMaxRetries(20))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	const writers, seriesPer, rounds, killAt = 4, 25, 150, 50
	start := time.Now().Add(-time.Hour).UnixMilli() // rounds × 1 s, all within the hour before now
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		acked    [writers]int // rounds acknowledged, per writer
		failures []error
		killed   = make(chan struct{})
		reached  sync.WaitGroup // every writer past killAt rounds
	)
	reached.Add(writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			var once sync.Once // Done even if the writer gives up early
			defer once.Do(reached.Done)
			for r := range rounds {
				if r == killAt {
					once.Do(reached.Done)
					<-killed
				}
				batch := make([]sdk.Series, seriesPer)
				for s := range batch {
					batch[s] = sdk.Series{
						Labels:  sdk.Labels("__name__", "sdk_kill", "writer", strconv.Itoa(w), "s", strconv.Itoa(s)),
						Samples: []sdk.Sample{{T: start + int64(r)*1000, V: float64(r)}},
					}
				}
				res, err := client.Write(ctx, batch)
				if err == nil && res.Stored+res.Duplicates != seriesPer {
					err = fmt.Errorf("round %d: %+v", r, res)
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Errorf("writer %d round %d: %w", w, r, err))
				} else {
					acked[w]++
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, sdk.ErrUnavailable) {
					return
				}
			}
		})
	}
	// Kill dq-1 while the writers are at it: release them, then kill
	// after a few of their calls are under way.
	reached.Wait()
	close(killed)
	time.Sleep(20 * time.Millisecond)
	dq1.kill9()
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
	t.Logf("%d writers × %d rounds × %d series; dq-1 killed after round %d; acknowledged rounds per writer: %v", writers, rounds, seriesPer, killAt, acked)

	// Every acknowledged sample once, read through the surviving querier.
	at := time.Now()
	span := fmt.Sprintf("%ds", int(at.UnixMilli()-start)/1000+1)
	for w := range writers {
		counts := queryVector(t, dq2.URL(), fmt.Sprintf(`count_over_time(sdk_kill{writer="%d"}[%s])`, w, span), at)
		sums := queryVector(t, dq2.URL(), fmt.Sprintf(`sum_over_time(sdk_kill{writer="%d"}[%s])`, w, span), at)
		if len(counts) != seriesPer || len(sums) != seriesPer {
			t.Fatalf("writer %d: %d series counted, %d summed; want %d", w, len(counts), len(sums), seriesPer)
		}
		wantSum := strconv.Itoa(acked[w] * (acked[w] - 1) / 2)
		for k, v := range counts {
			if v != strconv.Itoa(acked[w]) || sums[k] != wantSum {
				t.Errorf("%s: %s samples summing to %s, want %d summing to %s", k, v, sums[k], acked[w], wantSum)
			}
		}
	}
}

package storage

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// crashBatch is batch number n of writer w: deterministic, so the parent
// can recompute what an acknowledgment covered.
func crashBatch(w, n int) []model.Series {
	base := int64(1_700_000_000_000) + int64(n)*1000
	var batch []model.Series
	for i := range 20 {
		batch = append(batch, model.Series{
			Labels:  labels.FromStrings("__name__", "crash_test", "writer", strconv.Itoa(w), "s", strconv.Itoa((n*7+i)%50)),
			Samples: []model.Sample{{T: base + int64(i), V: float64(n*1000 + i)}},
		})
	}
	return batch
}

// TestCrashChild is the writer process of TestCrashKill9; it only runs when
// that test starts it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("VIGIL_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestCrashKill9")
	}
	start, _ := strconv.Atoi(os.Getenv("VIGIL_CRASH_START"))
	cfg := testConfig(dir)
	cfg.FlushInterval = 200 * time.Millisecond
	cfg.OutOfOrderWindow = 48 * time.Hour // writers progress at different speeds
	cfg.WALSync = os.Getenv("VIGIL_CRASH_SYNC")
	db, err := Open(cfg, testLogger(), nil)
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(3)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go db.Run(ctx)
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := start; ; n++ {
				res, err := db.Append(ctx, crashBatch(w, n))
				if err != nil || res.RejectedSamples > 0 {
					fmt.Fprintln(os.Stderr, "append:", err, res)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %d %d\n", w, n)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashKill9 kills a process that writes acknowledged batches with
// SIGKILL at random points, restarts, and checks every acknowledged sample.
// Runs alternate between the WAL sync policies: both promise to survive a
// process crash.
func TestCrashKill9(t *testing.T) {
	runs := 8
	if testing.Short() {
		runs = 2
	}
	dir := t.TempDir()
	acked := map[[2]int]bool{}
	next := 0
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for run := range runs {
		policy := []string{SyncAlways, SyncInterval}[run%2]
		delay := time.Duration(300+r.IntN(1500)) * time.Millisecond
		n := 0
		killChild(t, "TestCrashChild", []string{"VIGIL_CRASH_DIR=" + dir, fmt.Sprintf("VIGIL_CRASH_START=%d", next), "VIGIL_CRASH_SYNC=" + policy}, delay, func(line string) {
			var w, b int
			if _, err := fmt.Sscanf(line, "ack %d %d", &w, &b); err != nil {
				t.Fatalf("child said %q", line)
			}
			acked[[2]int{w, b}] = true
			next = max(next, b+1)
			n++
		})
		t.Logf("run %d (wal sync %s): killed after %s, %d batches acknowledged", run, policy, delay, n)
		next += 10 // fresh batches next run; unacknowledged ones may or may not be there

		// Restart in this process and check every acknowledged sample.
		db := openTest(t, testConfig(dir))
		have := byTime(readAll(t, db, math.MinInt64, math.MaxInt64))
		missing := 0
		for key := range acked {
			for _, s := range crashBatch(key[0], key[1]) {
				if v, ok := have[s.Labels.String()][s.Samples[0].T]; !ok || v != s.Samples[0].V {
					if missing < 5 {
						t.Errorf("run %d: acknowledged sample %s @%d = %v lost", run, s.Labels, s.Samples[0].T, s.Samples[0].V)
					}
					missing++
				}
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if missing > 0 {
			t.Fatalf("run %d: %d acknowledged samples lost", run, missing)
		}
	}
	if len(acked) == 0 {
		t.Fatal("no batch was ever acknowledged")
	}
}

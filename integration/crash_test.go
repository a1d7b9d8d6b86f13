package integration

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSingleNodeKill9 writes through remote write from several clients,
// kills the vigil process with SIGKILL at a random moment, restarts it and
// checks that every acknowledged sample is there (design guarantee 1 for a
// single node: WAL with group-commit fsync, the default policy).
func TestSingleNodeKill9(t *testing.T) {
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	v := startVigil(t)
	base := v.URL()
	start := time.Now().Add(-time.Minute).UnixMilli()
	var (
		mu    sync.Mutex
		acked = map[string]int64{} // series → newest acknowledged sample index
	)
	var next atomic.Int64
	for round := range rounds {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; n < 100_000; n++ { // bounded; the kill ends it far sooner
					select {
					case <-stop:
						return
					default:
					}
					i := next.Add(1)
					series := fmt.Sprintf("w%d", w)
					code, _, err := tryPostRW(base, rwBody(t, rwSeries(start+i, float64(i), "__name__", "crash_metric", "writer", series)))
					if err != nil || code/100 != 2 {
						return // the process is gone; only acknowledged writes count
					}
					mu.Lock()
					acked[fmt.Sprintf("%s/%d", series, i)] = i
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(300+rand.IntN(1200)) * time.Millisecond)
		v.kill9()
		close(stop)
		wg.Wait()
		v.restart()
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		t.Logf("round %d: %d samples acknowledged so far", round, n)

		got := map[string]bool{}
		for _, w := range []string{"w0", "w1", "w2", "w3"} {
			for _, p := range rangeValues(t, base, fmt.Sprintf(`crash_metric{writer=%q}`, w), start, start+next.Load()+1) {
				got[fmt.Sprintf("%s/%d", w, int64(p))] = true
			}
		}
		lost := 0
		for k := range acked {
			if !got[k] {
				if lost < 5 {
					t.Errorf("acknowledged sample %s lost", k)
				}
				lost++
			}
		}
		if lost > 0 {
			t.Fatalf("round %d: %d of %d acknowledged samples lost", round, lost, len(acked))
		}
	}
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged")
	}
}

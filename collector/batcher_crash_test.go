package collector

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/model"
)

// crashConfig is the Batcher configuration of the kill -9 test: small
// batches and segments so that a run crosses many segment rolls, replays
// and deletions; limits high enough that nothing is ever dropped.
func crashConfig(dir string) BatcherConfig {
	cfg := testBatcherConfig(dir)
	cfg.MaxBatchSamples = 30
	cfg.FlushInterval = 5 * time.Millisecond
	cfg.Concurrency = 2
	cfg.PushTimeout = time.Second
	cfg.ReplayBackoff = 5 * time.Millisecond
	cfg.MaxReplayBackoff = 40 * time.Millisecond
	cfg.Spool.MaxBytes = 256 << 20
	cfg.Spool.SegmentBytes = 2048
	return cfg
}

// lineWriter serialises whole lines to a writer, flushed at once, so that
// a kill can only cut the last line.
type lineWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
	l.w.Flush()
}

// TestBatcherCrashChild is the process that TestBatcherKill9 kills; it
// only runs when started by it. Its downstream flips between accepting
// and failing, and prints every series it accepts before acknowledging;
// writers print every acknowledged batch.
func TestBatcherCrashChild(t *testing.T) {
	dir := os.Getenv("VIGIL_SPOOL_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestBatcherKill9")
	}
	start, _ := strconv.Atoi(os.Getenv("VIGIL_SPOOL_CRASH_START"))
	out := &lineWriter{w: bufio.NewWriter(os.Stdout)}
	var failing atomic.Bool
	down := SinkFunc(func(ctx context.Context, batch []model.Series) (model.PushResult, error) {
		if failing.Load() {
			return model.PushResult{}, model.ErrUnavailable
		}
		for _, s := range batch {
			out.printf("got %s %s %d\n", s.Labels.Get("w"), s.Labels.Get("i"), int(s.Samples[0].V))
		}
		return model.PushResult{Stored: model.CountSamples(batch)}, nil
	})
	b, err := NewBatcher(crashConfig(dir), down, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	// Outages of 50-400 ms alternate with up-times of 20-150 ms, so that
	// kills find the spool filling, replaying or empty.
	go func() {
		r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
		for {
			time.Sleep(time.Duration(20+r.IntN(130)) * time.Millisecond)
			failing.Store(true)
			time.Sleep(time.Duration(50+r.IntN(350)) * time.Millisecond)
			failing.Store(false)
		}
	}()
	out.printf("ready\n")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := start; n < start+1_000_000; n++ {
				if _, err := b.Push(context.Background(), writerBatch(w, n)); err != nil {
					fmt.Fprintln(os.Stderr, "push:", err)
					os.Exit(4)
				}
				out.printf("ack %d %d\n", w, n)
			}
		}()
	}
	// Never reached unless the parent fails to kill us.
	time.Sleep(60 * time.Second)
	os.Exit(5)
}

// TestBatcherKill9 kills a process that spools and replays with SIGKILL
// at random points, restarts the spool and checks that every batch whose
// Push was acknowledged reached the downstream, before the kill or by the
// replay after it, and that the replay keeps each writer's order.
func TestBatcherKill9(t *testing.T) {
	runs := 6
	if testing.Short() {
		runs = 2
	}
	dir := t.TempDir()
	tmp := t.TempDir() // the child's TestMain puts its etcd here; a killed child cannot clean up
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	next := 0
	for run := range runs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBatcherCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "VIGIL_SPOOL_CRASH_DIR="+dir,
			fmt.Sprintf("VIGIL_SPOOL_CRASH_START=%d", next), "TMPDIR="+tmp)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[[2]int]bool{}
		delivered := map[[3]int]int{} // writer, series, batch → copies
		sc := bufio.NewScanner(stdout)
		delay := time.Duration(200+r.IntN(1300)) * time.Millisecond
		var timer *time.Timer
		for sc.Scan() {
			line := sc.Text()
			var w, i, n int
			switch {
			case line == "ready":
				timer = time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
			case strings.HasPrefix(line, "ack "):
				if _, err := fmt.Sscanf(line, "ack %d %d", &w, &n); err == nil {
					acked[[2]int{w, n}] = true
					next = max(next, n+1)
				}
			case strings.HasPrefix(line, "got "):
				if _, err := fmt.Sscanf(line, "got %d %d %d", &w, &i, &n); err == nil {
					delivered[[3]int{w, i, n}]++
				}
			}
		}
		if timer == nil {
			cmd.Process.Kill()
		}
		_, _ = io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("run %d: child ended without being killed: %v\n%s", run, err, stderr.String())
		}
		next += 10

		// Restart on the same directory with a downstream that accepts.
		sink := &faultSink{}
		b, log := newTestBatcher(t, crashConfig(dir), sink)
		spooled, bytes, _ := b.spool.stats()
		eventually(t, 30*time.Second, "spool replayed", b.spool.empty)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		got, _, _ := sink.snapshot()
		last := map[int]int{}
		for _, s := range got {
			w, _ := strconv.Atoi(s.Labels.Get("w"))
			i, _ := strconv.Atoi(s.Labels.Get("i"))
			n := int(s.Samples[0].V)
			if n < last[w] {
				t.Fatalf("run %d: replay of writer %d went back from batch %d to %d", run, w, last[w], n)
			}
			last[w] = n
			delivered[[3]int{w, i, n}]++
		}
		lost, dups := 0, 0
		for k := range acked {
			for i := range 3 {
				switch c := delivered[[3]int{k[0], i, k[1]}]; {
				case c == 0:
					if lost < 5 {
						t.Errorf("run %d: acknowledged batch %d of writer %d, series %d, never delivered", run, k[1], k[0], i)
					}
					lost++
				case c > 1:
					dups++
				}
			}
		}
		t.Logf("run %d: killed %s after start; %d batches acknowledged, %d spooled batches (%d bytes) replayed after restart, %d series delivered twice, torn tail cut: %v",
			run, delay, len(acked), spooled, bytes, dups, strings.Contains(log.String(), "torn tail"))
		if strings.Contains(log.String(), "level=ERROR") {
			t.Fatalf("run %d: errors on restart after a kill:\n%s", run, log)
		}
		if lost > 0 {
			t.Fatalf("run %d: %d acknowledged series lost", run, lost)
		}
		if len(acked) == 0 {
			t.Fatalf("run %d: nothing was acknowledged", run)
		}
	}
}

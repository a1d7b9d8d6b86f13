package compactor

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/model/downsample"
	"github.com/vigil-tsdb/vigil/storage"
)

// crashConfig drops raw days ≤ from of the crash fixture at its clock, in
// the first pass.
func crashConfig() Config {
	cfg := DefaultConfig()
	cfg.RetentionRaw = 3 * 24 * time.Hour
	return cfg
}

// crashRedoFrom is the first day the child drops tier days of to make the
// next pass redo them: their raw days are kept.
var crashRedoFrom = crashFixture.from + 1

// TestCrashChild is the compactor process of TestCompactKill9; it only runs
// when that test starts it. It runs passes forever, each followed by
// dropping a random half of the tier days it may redo, so that a kill lands
// in compaction, in a tier write or in a drop.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("VIGIL_COMPACTOR_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestCompactKill9")
	}
	exit := func(code int, what string, err error) {
		fmt.Fprintln(os.Stderr, what, err)
		os.Exit(code)
	}
	db, err := storage.Open(testDBConfig(dir), testLogger(), nil)
	if err != nil {
		exit(3, "open:", err)
	}
	c, err := New(crashConfig(), db, testLogger(), nil)
	if err != nil {
		exit(3, "new:", err)
	}
	c.batchSeries = 10 // so that kills also land between the batches of a day
	ctx := context.Background()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	out := bufio.NewWriter(os.Stdout)
	for n := 0; ; n++ {
		st, err := c.RunOnce(ctx, time.UnixMilli(crashFixture.compactedAt()))
		if err != nil {
			exit(4, "pass:", err)
		}
		fmt.Fprintf(out, "pass %d compacted %d+%d dropped %d+%d+%d\n", n, len(st.Compacted[1]), len(st.Compacted[2]), len(st.Dropped[0]), len(st.Dropped[1]), len(st.Dropped[2]))
		out.Flush()
		for _, tier := range []uint8{storage.TierMinute, storage.TierHour} {
			days, err := db.TierDays(tier)
			if err != nil {
				exit(5, "tier days:", err)
			}
			for _, d := range days {
				if d >= crashRedoFrom && r.IntN(2) == 0 {
					if err := db.DropDay(ctx, tier, d); err != nil {
						exit(5, "drop:", err)
					}
				}
			}
		}
	}
}

// TestCompactKill9 kills a compacting process with SIGKILL at random points,
// several times over the same data directory; after a restart and one
// uninterrupted pass, every tier day equals (decoded windows, bit for bit)
// the result of an uninterrupted pass over a copy of the same data.
func TestCompactKill9(t *testing.T) {
	f := crashFixture
	now := f.compactedAt()

	refDir := f.copy(t)
	ref := openDB(t, refDir)
	runOnce(t, newCompactor(t, crashConfig(), ref), now)
	want := readAllTiers(t, ref)
	if err := ref.Close(); err != nil {
		t.Fatal(err)
	}
	if len(want[storage.TierRaw].days) == 0 || len(want[storage.TierMinute].days) < 4 {
		t.Fatalf("reference pass left too little to compare: %+v", want)
	}

	dir := f.copy(t)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	for run := range 6 {
		delay := 50*time.Millisecond + time.Duration(r.IntN(1950))*time.Millisecond
		passes, last := 0, ""
		killChild(t, "TestCrashChild", []string{"VIGIL_COMPACTOR_CRASH_DIR=" + dir}, delay, func(line string) {
			if strings.HasPrefix(line, "pass ") {
				passes++
				last = line
			}
		})
		t.Logf("run %d: killed after %s, %d passes completed (last: %q)", run, delay, passes, last)
	}

	db := openDB(t, dir)
	defer db.Close()
	st := runOnce(t, newCompactor(t, crashConfig(), db), now)
	t.Logf("pass after the kills: compacted 1m %v, 1h %v; dropped raw %v", st.Compacted[1], st.Compacted[2], st.Dropped[0])
	got := readAllTiers(t, db)
	for _, tier := range []uint8{storage.TierRaw, storage.TierMinute, storage.TierHour} {
		g, w := got[tier], want[tier]
		if !slices.Equal(g.days, w.days) {
			t.Fatalf("tier %d days %v, want %v", tier, g.days, w.days)
		}
		for _, d := range w.days {
			if tier == storage.TierRaw {
				continue
			}
			if !bytes.Equal(g.progress[d][4+16:], w.progress[d][4+16:]) {
				t.Errorf("tier %d day %s: progress after the cold mark and clock %x, want %x", tier, dayString(d), g.progress[d], w.progress[d])
			}
			gw, ww := g.windows[d], w.windows[d]
			if len(gw) != len(ww) {
				t.Errorf("tier %d day %s: %d series, want %d", tier, dayString(d), len(gw), len(ww))
				continue
			}
			for k, ws := range ww {
				if len(gw[k]) != len(ws) {
					t.Errorf("tier %d day %s %s: %d windows, want %d", tier, dayString(d), k, len(gw[k]), len(ws))
					continue
				}
				for i := range ws {
					if !sameWindow(gw[k][i], ws[i]) {
						t.Errorf("tier %d day %s %s window %d: %+v, want %+v", tier, dayString(d), k, i, gw[k][i], ws[i])
						break
					}
				}
			}
		}
	}
}

type tierContent struct {
	days     []int32
	progress map[int32][]byte
	windows  map[int32]map[string][]downsample.Window
}

func readAllTiers(t *testing.T, db *storage.DB) [3]tierContent {
	t.Helper()
	var out [3]tierContent
	for _, tier := range []uint8{storage.TierRaw, storage.TierMinute, storage.TierHour} {
		days, err := db.TierDays(tier)
		if err != nil {
			t.Fatal(err)
		}
		tc := tierContent{days: days, progress: map[int32][]byte{}, windows: map[int32]map[string][]downsample.Window{}}
		if tier != storage.TierRaw {
			for _, d := range days {
				v, ok, err := db.TierProgress(tier, d)
				if err != nil || !ok {
					t.Fatalf("progress of tier %d day %d: %v %v", tier, d, ok, err)
				}
				tc.progress[d] = v
				tc.windows[d] = readTierDay(t, db, tier, d)
			}
		}
		out[tier] = tc
	}
	return out
}

// killChild runs the test named test of this binary in a child process
// with env added, SIGKILLs it after delay, and hands each line the child
// printed to onLine. The test fails unless the child died of the signal.
func killChild(t *testing.T, test string, env []string, delay time.Duration, onLine func(string)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		onLine(sc.Text())
	}
	err = cmd.Wait()
	timer.Stop()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child ended without being killed: %v\n%s", err, stderr.String())
	}
}

package storage

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// The repair crash test: a child process backfills old samples and
// deletes series while it also appends and flushes; it is killed with
// SIGKILL at random points. Every acknowledged backfill must survive, and
// every acknowledged deletion must stay deleted. A deletion in flight when
// the process died is all or nothing (its tombstones are one WAL record).
const (
	repairOldBase   = int64(1_700_000_000_000)
	repairGroupBase = repairOldBase + 2*PartitionDuration
	repairLiveBase  = repairOldBase + 10*PartitionDuration
)

// repairBatch is backfill batch n: 20 old samples of one of 10 series.
func repairBatch(n int) model.Series {
	lset := labels.FromStrings("__name__", "repair", "kind", "bf", "s", strconv.Itoa(n%10))
	var smps []model.Sample
	for i := range 20 {
		smps = append(smps, model.Sample{T: repairOldBase + int64(n)*1000 + int64(i), V: float64(n*1000 + i)})
	}
	return model.Series{Labels: lset, Samples: smps}
}

// repairGroup is the data of delete group g: three series with 60 old
// samples and 10 samples from recent (a time near the head's newest).
func repairGroup(g int, recent int64) []model.Series {
	var out []model.Series
	for s := range 3 {
		lset := labels.FromStrings("__name__", "repair", "kind", "grp", "g", strconv.Itoa(g), "s", strconv.Itoa(s))
		var smps []model.Sample
		for k := range 60 {
			smps = append(smps, model.Sample{T: repairGroupBase + int64(g)*100_000 + int64(k)*1000, V: float64(g*1000 + k)})
		}
		for k := range 10 {
			smps = append(smps, model.Sample{T: recent + int64(k)*1000, V: -float64(g*1000 + k)})
		}
		out = append(out, model.Series{Labels: lset, Samples: smps})
	}
	return out
}

// TestRepairCrashChild is the process TestRepairCrashKill9 kills; it only
// runs when that test starts it.
func TestRepairCrashChild(t *testing.T) {
	dir := os.Getenv("VIGIL_REPAIR_DIR")
	if dir == "" {
		t.Skip("helper process for TestRepairCrashKill9")
	}
	start, _ := strconv.Atoi(os.Getenv("VIGIL_REPAIR_START"))
	cfg := testConfig(dir)
	cfg.FlushInterval = 200 * time.Millisecond
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
	say := func(f string, a ...any) {
		mu.Lock()
		fmt.Fprintf(out, f+"\n", a...)
		out.Flush()
		mu.Unlock()
	}
	fail := func(what string, err error, res model.PushResult) {
		fmt.Fprintln(os.Stderr, what, err, res)
		os.Exit(4)
	}
	live := max(repairLiveBase, db.head.maxt.Load()+1)
	var liveMu sync.Mutex
	go func() { // moves the head forward, so flushes evict and backfills are old
		lset := labels.FromStrings("__name__", "repair_live")
		for {
			liveMu.Lock()
			live += 500
			ts := live
			liveMu.Unlock()
			if _, err := db.Append(ctx, []model.Series{{Labels: lset, Samples: []model.Sample{{T: ts, V: 1}}}}); err != nil {
				fail("live append", err, model.PushResult{})
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for n := start; ; n++ {
		res, err := db.Backfill(ctx, []model.Series{repairBatch(n)})
		if err != nil || res.RejectedSamples > 0 {
			fail("backfill", err, res)
		}
		say("bf %d", n)
		if n%4 != 0 {
			continue
		}
		liveMu.Lock()
		recent := live - 30_000
		liveMu.Unlock()
		if res, err := db.Backfill(ctx, repairGroup(n, recent)); err != nil || res.RejectedSamples > 0 {
			fail("fill", err, res)
		}
		say("fill %d %d", n, recent)
		maxt := recent + 4500
		say("delstart %d %d", n, maxt)
		g := strconv.Itoa(n)
		nd, err := db.DeleteSeries(ctx, func(l labels.Labels) bool { return l.Get("kind") == "grp" && l.Get("g") == g }, maxt)
		if err != nil || nd != 3 {
			fail(fmt.Sprintf("delete (%d series)", nd), err, model.PushResult{})
		}
		say("del %d", n)
	}
}

type repairGroupState struct {
	recent, maxt int64 // the group's recent samples start at recent; deleted up to maxt
	delStart     bool  // a deletion was started
	deleted      bool  // and acknowledged
}

// TestRepairCrashKill9 runs TestRepairCrashChild, kills it with SIGKILL at
// random points, restarts the DB in this process and checks what the
// child acknowledged.
func TestRepairCrashKill9(t *testing.T) {
	runs := 6
	if testing.Short() {
		runs = 2
	}
	dir := t.TempDir()
	acked := map[int]bool{}
	groups := map[int]*repairGroupState{}
	next := 0
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	deletesSeen := 0
	for run := range runs {
		delay := time.Duration(400+r.IntN(1600)) * time.Millisecond
		lines := 0
		killChild(t, "TestRepairCrashChild", []string{"VIGIL_REPAIR_DIR=" + dir, fmt.Sprintf("VIGIL_REPAIR_START=%d", next)}, delay, func(line string) {
			f := strings.Fields(line)
			if len(f) < 2 {
				t.Fatalf("child said %q", line)
			}
			n, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("child said %q", line)
			}
			next = max(next, n+1)
			lines++
			switch f[0] {
			case "bf":
				acked[n] = true
			case "fill":
				rb, _ := strconv.ParseInt(f[2], 10, 64)
				groups[n] = &repairGroupState{recent: rb}
			case "delstart":
				groups[n].maxt, _ = strconv.ParseInt(f[2], 10, 64)
				groups[n].delStart = true
			case "del":
				groups[n].deleted = true
				deletesSeen++
			default:
				t.Fatalf("child said %q", line)
			}
		})
		t.Logf("run %d: killed after %s, %d acknowledgments", run, delay, lines)
		next += 4 // fresh batches next run

		db := openTest(t, testConfig(dir))
		have := byTime(readAll(t, db, math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "__name__", "repair")))
		problems := 0
		report := func(f string, a ...any) {
			if problems < 5 {
				t.Errorf("run %d: "+f, append([]any{run}, a...)...)
			}
			problems++
		}
		for n := range acked {
			in := repairBatch(n)
			for _, s := range in.Samples {
				if v, ok := have[in.Labels.String()][s.T]; !ok || v != s.V {
					report("acknowledged backfill %d: %s @%d lost", n, in.Labels, s.T)
				}
			}
		}
		for g, st := range groups {
			present, absent := 0, 0
			for _, in := range repairGroup(g, st.recent) {
				for _, s := range in.Samples {
					v, ok := have[in.Labels.String()][s.T]
					switch {
					case st.delStart && s.T <= st.maxt:
						if ok {
							present++
						} else {
							absent++
						}
					case !ok || v != s.V:
						report("group %d: %s @%d lost (deleted: %v)", g, in.Labels, s.T, st.deleted)
					}
				}
			}
			if st.delStart && !st.deleted {
				t.Logf("run %d: group %d was being deleted when killed: %d samples present, %d gone", run, g, present, absent)
				st.delStart, st.deleted = absent > 0, absent > 0 // what the restart decided is final
			}
			switch {
			case st.deleted && present > 0:
				report("group %d: %d samples back after an acknowledged deletion", g, present)
			case st.delStart && present > 0 && absent > 0:
				report("group %d: interrupted deletion half applied: %d samples present, %d gone", g, present, absent)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if problems > 0 {
			t.Fatalf("run %d: %d problems", run, problems)
		}
	}
	if len(acked) == 0 || deletesSeen == 0 {
		t.Fatalf("%d backfills and %d deletions acknowledged: the test checked nothing", len(acked), deletesSeen)
	}
}

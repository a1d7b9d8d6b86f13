package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/value"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-tsdb/vigil/model"
)

// testMembership is an in-memory collector ring shared by the managers of
// a test: Collectors is what every member sees at once.
type testMembership struct {
	mu    sync.Mutex
	names []string
	subs  []chan struct{}
}

func (m *testMembership) Collectors() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.names)
}

func (m *testMembership) URL(string) string { return "" }

func (m *testMembership) subscribe() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(chan struct{}, 1)
	m.subs = append(m.subs, c)
	return c
}

func (m *testMembership) set(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.names = slices.Clone(names)
	for _, c := range m.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// upLog records the `up` samples pushed by all managers of a test: target
// instance -> slot timestamp -> collectors that pushed it.
type upLog struct {
	mu    sync.Mutex
	slots map[string]map[int64][]string
	stale map[string]int // staleness markers of up, by instance
}

func (u *upLog) sink(collector string) Sink {
	return SinkFunc(func(_ context.Context, batch []model.Series) (model.PushResult, error) {
		u.mu.Lock()
		defer u.mu.Unlock()
		for _, s := range batch {
			if s.Labels.Get("__name__") != "up" {
				continue
			}
			inst := s.Labels.Get("instance")
			for _, smp := range s.Samples {
				if value.IsStaleNaN(smp.V) {
					u.stale[inst]++
					continue
				}
				if u.slots[inst] == nil {
					u.slots[inst] = map[int64][]string{}
				}
				u.slots[inst][smp.T] = append(u.slots[inst][smp.T], collector)
			}
		}
		return model.PushResult{Stored: model.CountSamples(batch)}, nil
	})
}

// check returns, per instance, the slots in [from, to] (ms) that nobody
// scraped, and the number of slots scraped by more than one collector.
func (u *upLog) check(interval time.Duration, from, to int64) (missing map[string][]int64, doubled int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	missing = map[string][]int64{}
	iv := interval.Milliseconds()
	for inst, slots := range u.slots {
		ts := slices.Sorted(maps.Keys(slots))
		if len(ts) == 0 {
			continue
		}
		off := ((ts[0] % iv) + iv) % iv
		for k := (from-off)/iv + 1; k*iv+off <= to; k++ {
			c := slots[k*iv+off]
			if len(c) == 0 {
				missing[inst] = append(missing[inst], k*iv+off)
			}
			if len(c) > 1 {
				doubled++
			}
		}
	}
	return missing, doubled
}

type testCollector struct {
	name   string
	m      *Manager
	cancel context.CancelFunc
	done   chan error
}

func startTestCollector(t *testing.T, name string, reg *Registry, cli *clientv3.Client, mem *testMembership, coordPrefix string, log *upLog) *testCollector {
	t.Helper()
	cfg := DefaultManagerConfig()
	cfg.HandoverOverlap = 1500 * time.Millisecond
	cfg.Settle = 100 * time.Millisecond
	cfg.LoadReportInterval = 300 * time.Millisecond
	cfg.LoadReportTTL = 5 * time.Second
	cfg.CoordPrefix = coordPrefix
	m, err := NewManager(cfg, name, reg, cli, mem, mem.subscribe(), testScraperConfig(), log.sink(name), nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &testCollector{name: name, m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- m.Run(ctx) }()
	t.Cleanup(c.stop)
	return c
}

func (c *testCollector) stop() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cancel = nil
	}
}

// owners returns what the collector believes owns each target.
func (c *testCollector) owners() map[string]string {
	out := map[string]string{}
	for _, ti := range c.m.Targets() {
		out[ti.Key] = ti.Owner
	}
	return out
}

// TestManagerHandover runs three managers over one registry with a shared
// in-memory membership and checks that every slot of every target is
// scraped across a graceful leave, a join and an abrupt stop, and that the
// managers agree on the owners.
func TestManagerHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("scrapes for ~20s")
	}
	ctx := testCtx(t)
	cli := newTestClient(t, etcdEndpoint)
	reg := testRegistry(t, cli)
	coordPrefix := "/test/coord-" + t.Name() + "/"

	const interval = time.Second
	var targets []string
	for i := range 12 {
		// Uneven sizes: one large target among small ones.
		n := 5
		if i == 0 {
			n = 300
		}
		var b strings.Builder
		for j := range n {
			fmt.Fprintf(&b, "m{i=\"%d\"} %d\n", j, j)
		}
		e := newTestExporter(t, b.String())
		tg := scrapeTestTarget(t, e.srv.URL, interval, 500*time.Millisecond, 0)
		tg.ID = ""
		if _, err := reg.Put(ctx, tg); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(e.srv.URL)
		targets = append(targets, u.Host)
	}

	log := &upLog{slots: map[string]map[int64][]string{}, stale: map[string]int{}}
	mem := &testMembership{}
	mem.set("c1", "c2", "c3")
	cs := map[string]*testCollector{}
	for _, n := range []string{"c1", "c2", "c3"} {
		cs[n] = startTestCollector(t, n, reg, cli, mem, coordPrefix, log)
	}
	agree := func(names ...string) {
		t.Helper()
		eventually(t, 10*time.Second, "collectors agree on the owners", func() bool {
			first := cs[names[0]].owners()
			if len(first) != len(targets) {
				return false
			}
			for _, o := range first {
				if !slices.Contains(names, o) {
					return false
				}
			}
			for _, n := range names[1:] {
				if !maps.Equal(first, cs[n].owners()) {
					return false
				}
			}
			return true
		})
	}
	agree("c1", "c2", "c3")
	from := time.Now().UnixMilli()
	time.Sleep(3 * time.Second)

	// The leader recorded the assignment, and the loads were reported.
	resp, err := cli.Get(ctx, coordPrefix, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, kv := range resp.Kvs {
		keys[strings.TrimPrefix(string(kv.Key), coordPrefix)] = true
	}
	for _, k := range []string{"assignment", "loads/c1", "loads/c2", "loads/c3"} {
		if !keys[k] {
			t.Errorf("coordination key %s%s missing; have %v", coordPrefix, k, keys)
		}
	}

	// Graceful leave of c2: the others take over before it stops.
	mem.set("c1", "c3")
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	if err := cs["c2"].m.Leave(lctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	cs["c2"].stop()
	agree("c1", "c3")
	time.Sleep(2 * time.Second)

	// A join.
	mem.set("c1", "c3", "c4")
	cs["c4"] = startTestCollector(t, "c4", reg, cli, mem, coordPrefix, log)
	agree("c1", "c3", "c4")
	time.Sleep(3 * time.Second)
	to := time.Now().Add(-interval).UnixMilli()

	missing, doubled := log.check(interval, from, to)
	if len(log.slots) != len(targets) {
		t.Errorf("up seen for %d targets, want %d", len(log.slots), len(targets))
	}
	for inst, ts := range missing {
		t.Errorf("%s: %d slots not scraped: %v", inst, len(ts), ts)
	}
	t.Logf("%d targets, %d slots scraped twice (handover overlap), window %s", len(targets), doubled, time.Duration(to-from)*time.Millisecond)
	if n := len(log.stale); n != 0 {
		t.Errorf("staleness markers for %d targets during handovers", n)
	}

	// Removing a target from the registry ends it with staleness markers.
	tg := cs["c1"].m.Targets()[0]
	if err := reg.Delete(ctx, tg.Target.Job, tg.Target.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "staleness marker of the removed target", func() bool {
		log.mu.Lock()
		defer log.mu.Unlock()
		return log.stale[tg.Target.Address] > 0
	})
}

func TestAssignmentRecord(t *testing.T) {
	members := []string{"b", "a", "c"}
	var tl []TargetLoad
	for i := range 200 {
		tl = append(tl, TargetLoad{ID: fmt.Sprintf("job/t%d", i), Series: 10 + i%7*100})
	}
	owners := Assign(members, tl, nil, 0.25)
	r := newRecord("a", members, owners, time.Unix(0, 0))
	keys := slices.Collect(maps.Keys(owners))
	if got := r.prev(keys); !maps.Equal(got, owners) {
		t.Fatalf("record does not decode to the assignment")
	}
	if !r.sameAssignment(members, owners) {
		t.Fatal("sameAssignment false for its own assignment")
	}
	if len(r.Moved) > len(owners)/2 {
		t.Errorf("%d of %d targets stored as moved: the record is not compact", len(r.Moved), len(owners))
	}
	// Stable: Assign with the decoded record as prev moves nothing.
	again, st := AssignStats(members, tl, r.prev(keys), 0.25)
	if !maps.Equal(again, owners) || st.Moved != 0 {
		t.Fatalf("assignment moved %d targets with its own record as prev", st.Moved)
	}
	var nilRec *assignmentRecord
	if nilRec.prev(keys) != nil || nilRec.sameAssignment(members, owners) {
		t.Fatal("nil record must decode to no prev")
	}
}

func TestLoadsChanged(t *testing.T) {
	for _, tc := range []struct {
		name      string
		last, cur map[string]int
		want      bool
	}{
		{name: "first report", last: nil, cur: map[string]int{}, want: true},
		{name: "same", last: map[string]int{"a": 100}, cur: map[string]int{"a": 100}, want: false},
		{name: "within 10%", last: map[string]int{"a": 100}, cur: map[string]int{"a": 109}, want: false},
		{name: "beyond 10%", last: map[string]int{"a": 100}, cur: map[string]int{"a": 111}, want: true},
		{name: "target added", last: map[string]int{"a": 100}, cur: map[string]int{"a": 100, "b": 1}, want: true},
		{name: "target replaced", last: map[string]int{"a": 100}, cur: map[string]int{"b": 100}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := loadsChanged(tc.last, tc.cur); got != tc.want {
				t.Fatalf("loadsChanged = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCoordStateLoads(t *testing.T) {
	st := coordState{Reports: map[string]loadReport{
		"old": {Time: time.Unix(100, 0), Series: map[string]int{"a": 1, "b": 2}},
		"new": {Time: time.Unix(200, 0), Series: map[string]int{"a": 10}},
	}}
	if got, want := st.loads(), map[string]int{"a": 10, "b": 2}; !maps.Equal(got, want) {
		t.Fatalf("loads = %v, want %v (newest report wins per target)", got, want)
	}
}

// FuzzCoordValue feeds arbitrary etcd values to the coordination decoders:
// they never panic, and what they accept survives a round trip.
func FuzzCoordValue(f *testing.F) {
	f.Add([]byte(`{"version":1,"writer":"a","time":"2026-01-01T00:00:00Z","members":["a","b"],"moved":{"j/t":"b"}}`))
	f.Add([]byte(`{"collector":"a","time":"2026-01-01T00:00:00Z","series":{"j/t":5}}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"series":{"x":-1}}`))
	f.Add([]byte(`{} {}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRecord(b); err == nil {
			if r.Version != 1 || r.Moved == nil || !slices.IsSorted(r.Members) {
				t.Fatalf("accepted record %+v", r)
			}
			keys := slices.Collect(maps.Keys(r.Moved))
			_ = r.prev(keys)
		}
		if r, err := decodeReport(b); err == nil {
			for k, n := range r.Series {
				if n < 0 {
					t.Fatalf("accepted negative series for %q", k)
				}
			}
		}
	})
}

// TestAssignmentRecordSize checks that the assignment record of 100,000
// targets over 50 collectors fits etcd's default request limit (1.5 MiB)
// with room to spare, after a join has moved targets.
func TestAssignmentRecordSize(t *testing.T) {
	if testing.Short() {
		t.Skip("assigns 100,000 targets twice")
	}
	var members []string
	for i := range 50 {
		members = append(members, fmt.Sprintf("collector-%02d", i))
	}
	tl := make([]TargetLoad, 100_000)
	for i := range tl {
		n := 10 + i%97
		if i%500 == 0 {
			n = 5000 // some heavy targets
		}
		tl[i] = TargetLoad{ID: fmt.Sprintf("node/10.%d.%d.%d:9100", i>>16&255, i>>8&255, i&255), Series: n}
	}
	owners := Assign(members, tl, nil, 0.25)
	joined := append(slices.Clone(members), "collector-50")
	owners2, st := AssignStats(joined, tl, owners, 0.25)
	for _, c := range []struct {
		name    string
		members []string
		owners  map[string]string
	}{{"fresh", members, owners}, {"after a join", joined, owners2}} {
		r := newRecord(c.members[0], c.members, c.owners, time.Now())
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: record of %d targets: %d bytes, %d stored as moved (join moved %d)", c.name, len(c.owners), len(b), len(r.Moved), st.Moved)
		if len(b) > 1<<20 {
			t.Errorf("%s: record is %d bytes, over 1 MiB", c.name, len(b))
		}
	}
}

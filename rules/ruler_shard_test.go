package rules

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"go.yaml.in/yaml/v3"

	"github.com/vigil-tsdb/vigil/model"
	"github.com/vigil-tsdb/vigil/ring"
)

func TestOwnershipSpreadAndStable(t *testing.T) {
	rulers := []string{"ruler-a", "ruler-b", "ruler-c"}
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = GroupKey(fmt.Sprintf("ns%d", i%7), fmt.Sprintf("group-%d", i))
	}
	owner := map[string]string{}
	load := map[string]int{}
	for _, k := range keys {
		owner[k] = ring.Rendezvous(rulers, k)
		load[owner[k]]++
		// The order of the member list does not matter.
		if o := ring.Rendezvous([]string{rulers[2], rulers[0], rulers[1]}, k); o != owner[k] {
			t.Fatalf("%s: owner %s with another member order, %s before", k, o, owner[k])
		}
	}
	mean := float64(len(keys)) / float64(len(rulers))
	for _, r := range rulers {
		t.Logf("%s owns %d of %d groups (mean %.1f)", r, load[r], len(keys), mean)
		if float64(load[r]) > 1.5*mean || float64(load[r]) < 0.5*mean {
			t.Errorf("%s owns %d groups, outside [0.5, 1.5] × the mean %.1f", r, load[r], mean)
		}
	}
	// ruler-b leaves: only its groups move, spread over the two others.
	rest := []string{"ruler-a", "ruler-c"}
	moved := map[string]int{}
	for _, k := range keys {
		o := ring.Rendezvous(rest, k)
		if owner[k] != "ruler-b" && o != owner[k] {
			t.Errorf("%s moved from %s to %s though %s stayed", k, owner[k], o, owner[k])
		}
		if owner[k] == "ruler-b" {
			moved[o]++
		}
	}
	t.Logf("ruler-b's %d groups went %v", load["ruler-b"], moved)
	if moved["ruler-a"] == 0 || moved["ruler-c"] == 0 {
		t.Errorf("ruler-b's groups all went to one ruler: %v", moved)
	}
	// ruler-b comes back: it takes back exactly its groups.
	for _, k := range keys {
		if o := ring.Rendezvous(rulers, k); o != owner[k] {
			t.Errorf("%s: owner %s after ruler-b came back, %s before", k, o, owner[k])
		}
	}
}

// countingPusher counts the pushed samples per series name.
type countingPusher struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *countingPusher) Push(_ context.Context, batch []model.Series) (model.PushResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range batch {
		p.n[s.Labels.Get("__name__")] += len(s.Samples)
	}
	return model.PushResult{}, nil
}

func recordingSnapshot(t *testing.T, n int) Snapshot {
	t.Helper()
	var snap Snapshot
	for i := range n {
		var g rulefmt.RuleGroup
		src := fmt.Sprintf("name: g%02d\ninterval: 1s\nrules:\n- record: rec_g%02d\n  expr: vector(1)\n", i, i)
		if err := yaml.Unmarshal([]byte(src), &g); err != nil {
			t.Fatal(err)
		}
		snap.Groups = append(snap.Groups, Group{Namespace: "team", RuleGroup: g})
	}
	snap.Revision = 1
	return snap
}

func evaluated(r *Ruler) []string {
	var out []string
	for _, g := range r.Groups() {
		out = append(out, GroupKey(g.File(), g.Name()))
	}
	slices.Sort(out)
	return out
}

func TestRulerHandover(t *testing.T) {
	cfg := DefaultRulerConfig()
	cfg.HandoverOverlap = 5 * time.Second
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Second})
	empty := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) { return storage.NoopQuerier(), nil })
	push := &countingPusher{n: map[string]int{}}
	reg := prometheus.NewRegistry()
	r, err := NewRuler(cfg, empty, engine, push, nil, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return clock }
	var mu sync.Mutex
	members := []string{"a", "b"}
	r.SetOwnership("a", func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(members) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	snap := recordingSnapshot(t, 12)
	if err := r.Apply(snap); err != nil {
		t.Fatal(err)
	}
	var mine, all []string
	for _, g := range snap.Groups {
		k := GroupKey(g.Namespace, g.RuleGroup.Name)
		all = append(all, k)
		if ring.Rendezvous([]string{"a", "b"}, k) == "a" {
			mine = append(mine, k)
		}
	}
	slices.Sort(all)
	if got := evaluated(r); !slices.Equal(got, mine) {
		t.Fatalf("evaluates %v, owns %v", got, mine)
	}
	if len(mine) == 0 || len(mine) == len(all) {
		t.Fatalf("a owns %d of %d groups: the test needs a split", len(mine), len(all))
	}
	if v := testutil.ToFloat64(r.owned); v != float64(len(mine)) {
		t.Errorf("vigil_ruler_groups %v, want %d", v, len(mine))
	}

	// b leaves: a takes b's groups at once.
	mu.Lock()
	members = []string{"a"}
	mu.Unlock()
	next, err := r.Resync()
	if err != nil {
		t.Fatal(err)
	}
	if got := evaluated(r); !slices.Equal(got, all) {
		t.Fatalf("after b left, evaluates %v, want all %v", got, all)
	}
	if !next.IsZero() {
		t.Errorf("no hand-over under way, next %v", next)
	}
	gained := len(all) - len(mine)
	if v := testutil.ToFloat64(r.moves.WithLabelValues("in")); v != float64(gained) {
		t.Errorf("moves in %v, want %d", v, gained)
	}

	// b comes back: a keeps evaluating b's groups for the overlap.
	clock = clock.Add(time.Minute)
	mu.Lock()
	members = []string{"a", "b"}
	mu.Unlock()
	if next, err = r.Resync(); err != nil {
		t.Fatal(err)
	}
	if got := evaluated(r); !slices.Equal(got, all) {
		t.Fatalf("during the overlap, evaluates %v, want all %v", got, all)
	}
	if want := clock.Add(cfg.HandoverOverlap); !next.Equal(want) {
		t.Errorf("hand-over ends at %v, want %v", next, want)
	}
	if v := testutil.ToFloat64(r.owned); v != float64(len(mine)) {
		t.Errorf("vigil_ruler_groups during the overlap %v, want %d (owned only)", v, len(mine))
	}
	clock = clock.Add(cfg.HandoverOverlap - time.Millisecond)
	if _, err = r.Resync(); err != nil {
		t.Fatal(err)
	}
	if got := evaluated(r); !slices.Equal(got, all) {
		t.Fatalf("1ms before the overlap ends, evaluates %v, want all", got)
	}
	clock = clock.Add(time.Millisecond)
	if next, err = r.Resync(); err != nil {
		t.Fatal(err)
	}
	if got := evaluated(r); !slices.Equal(got, mine) {
		t.Fatalf("after the overlap, evaluates %v, want %v", got, mine)
	}
	if !next.IsZero() {
		t.Errorf("hand-over over, next %v", next)
	}
	if v := testutil.ToFloat64(r.moves.WithLabelValues("out")); v != float64(gained) {
		t.Errorf("moves out %v, want %d", v, gained)
	}
	// The staleness markers of a group handed over are dropped; those of
	// an owned one are not.
	origin := func(k string) context.Context {
		ns, name, _ := strings.Cut(k, "/")
		return promql.NewOriginContext(context.Background(), map[string]any{"ruleGroup": map[string]string{"file": ns, "name": name}})
	}
	for _, k := range all {
		if got, want := r.handedOver(origin(k)), !slices.Contains(mine, k); got != want {
			t.Errorf("%s: handedOver %v, want %v", k, got, want)
		}
	}

	// Groups deleted from the store while handed over stop at once.
	mu.Lock()
	members = []string{"b"}
	mu.Unlock()
	clock = clock.Add(time.Minute)
	if _, err = r.Resync(); err != nil {
		t.Fatal(err)
	}
	if got := evaluated(r); !slices.Equal(got, mine) {
		t.Fatalf("a lost everything: during the overlap evaluates %v, want %v", got, mine)
	}
	if err := r.Apply(recordingSnapshot(t, 0)); err != nil {
		t.Fatal(err)
	}
	if got := evaluated(r); len(got) != 0 {
		t.Fatalf("groups deleted from the store still evaluated: %v", got)
	}
	if r.handedOver(origin(all[0])) {
		t.Errorf("a deleted group counts as handed over: its series would not be marked stale")
	}
}

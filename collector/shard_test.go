package collector

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// shardTargets returns n targets with uneven sizes, as the issue describes:
// mostly 10 series, 1–10% of 5,000, a random share (up to 20%) of medium
// ones (11–1,000) and 2% with an unknown count.
func shardTargets(r *rand.Rand, n int) []TargetLoad {
	heavyP := 0.01 + r.Float64()*0.09
	medP := r.Float64() * 0.2
	ts := make([]TargetLoad, n)
	for i := range ts {
		ts[i].ID = fmt.Sprintf("10.%d.%d.%d:%d", r.IntN(256), r.IntN(256), r.IntN(256), 9100+r.IntN(10))
		switch x := r.Float64(); {
		case x < heavyP:
			ts[i].Series = 5000
		case x < heavyP+medP:
			ts[i].Series = 11 + r.IntN(990)
		case x < heavyP+medP+0.02:
			ts[i].Series = 0
		default:
			ts[i].Series = 10
		}
	}
	return ts
}

func shardNames(r *rand.Rand, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("collector-%d-%x", i, r.Uint32())
	}
	return out
}

// shardScenario is one random instance: 300–5,000 targets, 2–20 collectors in
// names[:n]; names has three spare ones for joins.
type shardScenario struct {
	r       *rand.Rand
	targets []TargetLoad
	n       int
	names   []string
}

func newShardScenario(seed uint64) shardScenario {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	ts := shardTargets(r, 300+r.IntN(4701))
	n := 2 + r.IntN(19)
	return shardScenario{r: r, targets: ts, n: n, names: shardNames(r, n+3)}
}

// scenarios returns how many random instances a property test runs: fewer
// under -short and the race detector (which slows Assign down ten times).
func shardScenarios(full int) int {
	if testing.Short() || shardRaceEnabled {
		return max(full/5, 10)
	}
	return full
}

// shardOracle recomputes, simply and independently of shard.go, what an
// assignment must satisfy.
type shardOracle struct {
	weight       map[string]int64
	total        int64
	heavyWeights []int64 // weights of the targets heavier than the cap, heaviest first
	rest         int64   // load of the other targets
	shared       int     // collectors left for them
	mean         float64 // rest / shared
	cap          float64 // (1+eps) × mean
	capInt       int64   // ⌊cap⌋, at most rest (eps may be huge)
	lowerBound   int64   // no assignment of the rest has a smaller maximum load
	maxRest      int64   // heaviest of the rest
}

func newShardOracle(collectors []string, targets []TargetLoad, eps float64) shardOracle {
	if eps <= 0 || math.IsNaN(eps) || math.IsInf(eps, 0) {
		eps = DefaultEpsilon
	}
	series := map[string]int{}
	for _, t := range targets {
		if s, ok := series[t.ID]; !ok || t.Series > s {
			series[t.ID] = t.Series
		}
	}
	var known []int
	for _, s := range series {
		if s > 0 {
			known = append(known, min(s, MaxSeries))
		}
	}
	def := int64(DefaultSeries)
	if len(known) > 0 {
		slices.Sort(known)
		def = int64(known[(len(known)-1)/2]) // the lower median
	}
	o := shardOracle{weight: map[string]int64{}}
	var ws []int64
	for id, s := range series {
		w := def
		if s > 0 {
			w = int64(min(s, MaxSeries))
		}
		o.weight[id] = w
		o.total += w
		ws = append(ws, w)
	}
	slices.SortFunc(ws, func(a, b int64) int { return cmp.Compare(b, a) })
	o.rest = o.total
	o.shared = len(slices.Compact(slices.Sorted(slices.Values(collectors))))
	k := 0
	for ; k < len(ws) && o.shared >= 2 && float64(ws[k]) > (1+eps)*float64(o.rest)/float64(o.shared); k++ {
		o.rest -= ws[k]
		o.shared--
	}
	o.heavyWeights = ws[:k]
	if o.shared == 0 {
		return o
	}
	o.mean = float64(o.rest) / float64(o.shared)
	// The same float expression as the loop above and capOf: (1+eps) × mean
	// rounds differently (52 × (30785/52) = 30784.999…), and a cap one
	// below the heaviest target's weight would call it over the cap.
	o.cap = (1 + eps) * float64(o.rest) / float64(o.shared)
	o.capInt = o.rest
	if o.cap < float64(o.rest) {
		o.capInt = int64(o.cap)
	}
	rest := ws[k:]
	if len(rest) > 0 {
		o.maxRest = rest[0]
	}
	n := int64(o.shared)
	o.lowerBound = (o.rest + n - 1) / n
	// Among the j·n+1 heaviest targets some collector holds j+1, so at least
	// the j+1 lightest of them.
	for j := 0; j*o.shared < len(rest); j++ {
		var sum int64
		for _, w := range rest[j*o.shared-j : j*o.shared+1] {
			sum += w
		}
		o.lowerBound = max(o.lowerBound, sum)
	}
	return o
}

// limit is the cap the oracle expects to be enforced: the cap, or the lower
// bound when the cap is proven infeasible.
func (o shardOracle) limit() int64 {
	return max(o.capInt, o.lowerBound)
}

// sufficient reports whether the cap is guaranteed by construction: every
// shared target fits on the least loaded collector even when all the others
// are placed.
func (o shardOracle) sufficient() bool {
	n := float64(o.shared)
	w := float64(o.maxRest)
	return o.shared > 0 && (float64(o.rest)-w)/n+w <= float64(o.capInt)
}

// checkShard checks the invariants of one assignment against the oracle and
// returns the load of every collector.
func checkShard(t testing.TB, o shardOracle, collectors []string, prev, out map[string]string, st ShardStats) map[string]int64 {
	t.Helper()
	valid := map[string]bool{}
	for _, c := range collectors {
		valid[c] = true
	}
	if len(valid) == 0 {
		if len(out) != 0 {
			t.Fatalf("no collectors but %d owners", len(out))
		}
		return nil
	}
	if len(out) != len(o.weight) {
		t.Fatalf("%d owners for %d distinct targets", len(out), len(o.weight))
	}
	loads := map[string]int64{}
	count := map[string]int{}
	moved, movedSeries := 0, int64(0)
	for id, w := range o.weight {
		c, ok := out[id]
		if !ok || !valid[c] {
			t.Fatalf("target %q: owner %q (assigned %v), not a collector", id, c, ok)
		}
		loads[c] += w
		count[c]++
		if p, ok := prev[id]; ok && p != c {
			moved++
			movedSeries += w
		}
	}
	if st.Moved != moved || st.MovedSeries != movedSeries {
		t.Errorf("stats say %d moved (%d series), counted %d (%d)", st.Moved, st.MovedSeries, moved, movedSeries)
	}
	if st.Total != o.total || st.Targets != len(o.weight) || st.Collectors != len(valid) {
		t.Errorf("stats total/targets/collectors %d/%d/%d, want %d/%d/%d", st.Total, st.Targets, st.Collectors, o.total, len(o.weight), len(valid))
	}
	// Targets heavier than the cap each have a collector of their own; those
	// are the only single-target collectors above the cap.
	var dedicated []int64
	var maxShared, restLoad int64
	for c, l := range loads {
		if count[c] == 1 && float64(l) > o.cap {
			dedicated = append(dedicated, l)
			continue
		}
		maxShared = max(maxShared, l)
		restLoad += l
	}
	slices.SortFunc(dedicated, func(a, b int64) int { return cmp.Compare(b, a) })
	if !slices.Equal(dedicated, o.heavyWeights) {
		t.Fatalf("dedicated collectors carry %v, want the over-cap targets %v", dedicated, o.heavyWeights)
	}
	if st.Dedicated != len(o.heavyWeights) || restLoad != o.rest {
		t.Errorf("stats: %d dedicated, rest load %d; want %d, %d", st.Dedicated, restLoad, len(o.heavyWeights), o.rest)
	}
	if math.Abs(st.Mean-o.mean) > 1e-9*o.mean || st.Cap != o.capInt || st.Limit != o.limit() {
		t.Errorf("stats mean/cap/limit %v/%d/%d, want %v/%d/%d", st.Mean, st.Cap, st.Limit, o.mean, o.capInt, o.limit())
	}
	if st.MaxLoad != maxShared {
		t.Errorf("stats max load %d, counted %d", st.MaxLoad, maxShared)
	}
	if st.OverLimit != (maxShared > o.limit()) {
		t.Errorf("stats over limit %v with max %d, limit %d", st.OverLimit, maxShared, o.limit())
	}
	if o.sufficient() && float64(maxShared) > o.cap {
		t.Errorf("max load %d above the cap %.1f although every target fits (heaviest %d, mean %.1f)", maxShared, o.cap, o.maxRest, o.mean)
	}
	return loads
}

func TestAssignCases(t *testing.T) {
	tl := func(id string, s int) TargetLoad { return TargetLoad{ID: id, Series: s} }
	tests := []struct {
		name       string
		collectors []string
		targets    []TargetLoad
		eps        float64
		check      func(t *testing.T, out map[string]string, st ShardStats)
	}{
		{
			name:    "no collectors",
			targets: []TargetLoad{tl("a", 1)},
			check: func(t *testing.T, out map[string]string, _ ShardStats) {
				if len(out) != 0 {
					t.Errorf("got %v", out)
				}
			},
		},
		{
			name:       "one collector takes all",
			collectors: []string{"c1"},
			targets:    []TargetLoad{tl("a", 1), tl("b", 90000), tl("c", 0)},
			check: func(t *testing.T, out map[string]string, _ ShardStats) {
				if len(out) != 3 || out["a"] != "c1" || out["b"] != "c1" || out["c"] != "c1" {
					t.Errorf("got %v", out)
				}
			},
		},
		{
			name:       "no targets",
			collectors: []string{"c1", "c2"},
			check: func(t *testing.T, out map[string]string, st ShardStats) {
				if len(out) != 0 || st.MaxLoad != 0 {
					t.Errorf("got %v %+v", out, st)
				}
			},
		},
		{
			// 3 × 100 on 2 collectors: mean 150, cap 187, but some collector
			// must hold 200.
			name:       "infeasible cap is raised to the lower bound",
			collectors: []string{"c1", "c2"},
			targets:    []TargetLoad{tl("a", 100), tl("b", 100), tl("c", 100)},
			check: func(t *testing.T, _ map[string]string, st ShardStats) {
				if st.Cap != 187 || st.Limit != 200 || st.MaxLoad != 200 || st.OverLimit {
					t.Errorf("got %+v", st)
				}
			},
		},
		{
			// Total 14,000 on 4: cap 4,375 < 9,000, isolated. The rest,
			// 5,000 on 3: cap 2,083 < 4,000, isolated too. The rest, 1,000
			// on 2: cap 625.
			name:       "heavy targets get a collector of their own",
			collectors: []string{"c1", "c2", "c3", "c4"},
			targets:    append([]TargetLoad{tl("big", 9000), tl("big2", 4000)}, shardNTargets("small", 100, 10)...),
			check: func(t *testing.T, out map[string]string, st ShardStats) {
				if st.Dedicated != 2 || out["big"] == out["big2"] {
					t.Fatalf("got %+v", st)
				}
				for id, c := range out {
					if id != "big" && id != "big2" && (c == out["big"] || c == out["big2"]) {
						t.Errorf("%s shares %s with a heavy target", id, c)
					}
				}
				if st.Mean != 500 || st.Cap != 625 || st.MaxLoad > 625 {
					t.Errorf("got %+v", st)
				}
			},
		},
		{
			name:       "unknown series weigh the median of the known",
			collectors: []string{"c1", "c2"},
			targets:    []TargetLoad{tl("a", 10), tl("b", 20), tl("c", 1000), tl("d", 0), tl("e", -5)},
			check: func(t *testing.T, _ map[string]string, st ShardStats) {
				if st.Total != 10+20+1000+20+20 {
					t.Errorf("total %d", st.Total)
				}
			},
		},
		{
			name:       "nothing measured: DefaultSeries each",
			collectors: []string{"c1", "c2"},
			targets:    []TargetLoad{tl("a", 0), tl("b", 0)},
			check: func(t *testing.T, _ map[string]string, st ShardStats) {
				if st.Total != 2*DefaultSeries {
					t.Errorf("total %d", st.Total)
				}
			},
		},
		{
			name:       "duplicates count once, with the largest series",
			collectors: []string{"c1", "c2", "c1"},
			targets:    []TargetLoad{tl("a", 10), tl("a", 30), tl("b", 5), tl("a", 0)},
			check: func(t *testing.T, out map[string]string, st ShardStats) {
				if len(out) != 2 || st.Collectors != 2 || st.Targets != 2 || st.Total != 35 {
					t.Errorf("got %v %+v", out, st)
				}
			},
		},
		{
			name:       "eps <= 0 or NaN means the default",
			collectors: []string{"c1", "c2", "c3", "c4"},
			targets:    shardNTargets("t", 400, 10),
			eps:        math.NaN(),
			check: func(t *testing.T, _ map[string]string, st ShardStats) {
				if st.Cap != 1250 {
					t.Errorf("cap %d, want 1.25 × 1000", st.Cap)
				}
			},
		},
		{
			name:       "huge series are clamped",
			collectors: []string{"c1", "c2"},
			targets:    []TargetLoad{tl("a", math.MaxInt), tl("b", math.MaxInt), tl("c", 1)},
			check: func(t *testing.T, _ map[string]string, st ShardStats) {
				if st.Total != 2*MaxSeries+1 {
					t.Errorf("total %d", st.Total)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, st := AssignStats(tc.collectors, tc.targets, nil, tc.eps)
			checkShard(t, newShardOracle(tc.collectors, tc.targets, tc.eps), tc.collectors, nil, out, st)
			tc.check(t, out, st)
		})
	}
}

func shardNTargets(prefix string, n, series int) []TargetLoad {
	out := make([]TargetLoad, n)
	for i := range out {
		out[i] = TargetLoad{ID: fmt.Sprintf("%s-%d", prefix, i), Series: series}
	}
	return out
}

// TestAssignCap: on random uneven targets, no shared collector carries more
// than (1+ε) × the mean unless a lower bound proves that no assignment can,
// and then no more than that bound. Also after membership and load changes,
// which start from a previous assignment.
func TestAssignCap(t *testing.T) {
	var instances int
	var ratio, raised []float64
	for seed := range shardScenarios(300) {
		sc := newShardScenario(uint64(seed))
		eps := []float64{0.05, 0.1, 0.25, 0.25, 0.5}[seed%5]
		names := sc.names[:sc.n]
		prev, st := AssignStats(names, sc.targets, nil, eps)
		check := func(names []string, targets []TargetLoad, prev, out map[string]string, st ShardStats) {
			instances++
			o := newShardOracle(names, targets, eps)
			checkShard(t, o, names, prev, out, st)
			if st.OverLimit {
				t.Errorf("seed %d: max load %d over the limit %d (cap %d)", seed, st.MaxLoad, st.Limit, st.Cap)
			}
			if o.lowerBound <= o.capInt && float64(st.MaxLoad) > o.cap {
				t.Errorf("seed %d: max load %d over (1+%v) × mean %.1f, not proven infeasible", seed, st.MaxLoad, eps, o.mean)
			}
			if st.Limit > st.Cap {
				raised = append(raised, float64(st.MaxLoad)/o.mean)
			} else {
				ratio = append(ratio, float64(st.MaxLoad)/o.cap)
			}
		}
		check(names, sc.targets, nil, prev, st)
		// A collector joins, one leaves, loads change.
		out, st := AssignStats(sc.names[:sc.n+1], sc.targets, prev, eps)
		check(sc.names[:sc.n+1], sc.targets, prev, out, st)
		prev = out
		out, st = AssignStats(sc.names[1:sc.n+1], sc.targets, prev, eps)
		check(sc.names[1:sc.n+1], sc.targets, prev, out, st)
		changed := changeTargetLoads(sc.r, sc.targets)
		prev = out
		out, st = AssignStats(sc.names[1:sc.n+1], changed, prev, eps)
		check(sc.names[1:sc.n+1], changed, prev, out, st)
	}
	t.Logf("%d assignments; max load / ((1+ε) × mean) of shared collectors: %s", instances, shardPercentiles(ratio))
	t.Logf("cap proven infeasible (limit raised) in %d; their max load / mean: %s", len(raised), shardPercentiles(raised))
}

// changeTargetLoads returns a copy of targets where 10% changed their series
// count by -50%…+50%, 1% disappeared and 1% were added.
func changeTargetLoads(r *rand.Rand, targets []TargetLoad) []TargetLoad {
	var out []TargetLoad
	for _, t := range targets {
		switch x := r.IntN(100); {
		case x == 0:
			continue
		case x < 11:
			t.Series = t.Series * (50 + r.IntN(101)) / 100
		}
		out = append(out, t)
	}
	return append(out, shardTargets(r, len(targets)/100+1)...)
}

func shardPercentiles(xs []float64) string {
	if len(xs) == 0 {
		return "none"
	}
	xs = slices.Sorted(slices.Values(xs))
	at := func(p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	return fmt.Sprintf("p50 %.2f, p90 %.2f, p99 %.2f, max %.2f (n=%d)", at(0.5), at(0.9), at(0.99), xs[len(xs)-1], len(xs))
}

// TestAssignDeterministic: the same inputs in another order, with repeated
// entries, give the same assignment.
func TestAssignDeterministic(t *testing.T) {
	for seed := range shardScenarios(50) {
		sc := newShardScenario(uint64(seed))
		names := sc.names[:sc.n]
		prev := Assign(sc.names[1:sc.n+1], sc.targets, nil, 0.25)
		want := Assign(names, sc.targets, prev, 0.25)

		r := rand.New(rand.NewPCG(uint64(seed), 2))
		names2 := append(slices.Clone(names), names[r.IntN(len(names))])
		r.Shuffle(len(names2), func(i, j int) { names2[i], names2[j] = names2[j], names2[i] })
		targets2 := slices.Clone(sc.targets)
		for range 10 { // repeats of a target with fewer series count once
			d := targets2[r.IntN(len(targets2))]
			d.Series = r.IntN(max(d.Series, 1))
			targets2 = append(targets2, d)
		}
		r.Shuffle(len(targets2), func(i, j int) { targets2[i], targets2[j] = targets2[j], targets2[i] })
		got := Assign(names2, targets2, maps.Clone(prev), 0.25)
		if !maps.Equal(got, want) {
			t.Fatalf("seed %d: reordered input gives another assignment (%d of %d owners differ)", seed, ownersDiffer(got, want), len(want))
		}
	}
}

func ownersDiffer(a, b map[string]string) int {
	n := 0
	for k, v := range a {
		if b[k] != v {
			n++
		}
	}
	return n
}

// TestAssignStable: given its own result as prev, Assign moves nothing —
// after a fresh start, a join, a leave and load changes alike.
func TestAssignStable(t *testing.T) {
	for seed := range shardScenarios(100) {
		sc := newShardScenario(uint64(seed))
		stable := func(step string, names []string, targets []TargetLoad, prev map[string]string) map[string]string {
			a, st := AssignStats(names, targets, prev, 0.25)
			b, st2 := AssignStats(names, targets, a, 0.25)
			if st.OverLimit {
				t.Errorf("seed %d %s: over the limit", seed, step)
			}
			if st2.Moved != 0 || !maps.Equal(a, b) {
				t.Errorf("seed %d %s: same inputs with prev moved %d targets", seed, step, st2.Moved)
			}
			return a
		}
		a := stable("fresh", sc.names[:sc.n], sc.targets, nil)
		a = stable("join", sc.names[:sc.n+1], sc.targets, a)
		a = stable("leave", sc.names[1:sc.n+1], sc.targets, a)
		stable("loads", sc.names[1:sc.n+1], changeTargetLoads(sc.r, sc.targets), a)
	}
}

// TestAssignJoin measures the series moved when one collector joins N.
// Fair is the new collector's share, total/(N+1), what the issue calls the
// minimum; forced is the least any assignment must move for the collectors
// above the new cap (exact, by subset sum). The moved load is within twice
// the larger of the two.
func TestAssignJoin(t *testing.T) {
	var toFair, toBound, newLoad, noPrev []float64
	for seed := range shardScenarios(300) {
		sc := newShardScenario(uint64(seed))
		// Some history first: a leave, two joins, load changes.
		names := sc.names[1 : sc.n+2]
		prev := Assign(sc.names[:sc.n], sc.targets, nil, 0.25)
		prev = Assign(sc.names[1:sc.n], sc.targets, prev, 0.25)
		prev = Assign(sc.names[1:sc.n+1], sc.targets, prev, 0.25)
		targets := changeTargetLoads(sc.r, sc.targets)
		prev = Assign(sc.names[1:sc.n+1], targets, prev, 0.25)
		prev = Assign(names, targets, prev, 0.25)

		joined := append(slices.Clone(names), sc.names[sc.n+2])
		out, st := AssignStats(joined, targets, prev, 0.25)
		o := newShardOracle(joined, targets, 0.25)
		loads := checkShard(t, o, joined, prev, out, st)
		fair := float64(o.total) / float64(len(joined))
		forced := forcedMoves(o, prev, st.Limit)
		bound := max(fair, float64(forced))
		if float64(st.MovedSeries) > 2*bound {
			t.Errorf("seed %d: join of collector %d moved %d series, over 2 × max(fair %.0f, forced %d)", seed, len(joined), st.MovedSeries, fair, forced)
		}
		toFair = append(toFair, float64(st.MovedSeries)/fair)
		// For comparison: the same join without prev.
		before, after := Assign(names, targets, nil, 0.25), Assign(joined, targets, nil, 0.25)
		var movedNoPrev int64
		for id, w := range o.weight {
			if before[id] != after[id] {
				movedNoPrev += w
			}
		}
		noPrev = append(noPrev, float64(movedNoPrev)/fair)
		toBound = append(toBound, float64(st.MovedSeries)/bound)
		newLoad = append(newLoad, float64(loads[sc.names[sc.n+2]])/o.mean)
	}
	t.Logf("moved / (total/(N+1)): %s", shardPercentiles(toFair))
	t.Logf("moved / max(total/(N+1), forced): %s", shardPercentiles(toBound))
	t.Logf("load of the new collector / mean: %s", shardPercentiles(newLoad))
	t.Logf("without prev, moved / (total/(N+1)): %s", shardPercentiles(noPrev))
}

// forcedMoves returns the least load that must leave collectors that carry
// more than limit under prev: for each, the smallest subset of its targets
// whose removal brings it within limit (exact subset sum).
func forcedMoves(o shardOracle, prev map[string]string, limit int64) int64 {
	per := map[string][]int64{}
	for id, w := range o.weight {
		if c, ok := prev[id]; ok {
			per[c] = append(per[c], w)
		}
	}
	var total int64
	for _, ws := range per {
		var load, maxW int64
		for _, w := range ws {
			load += w
			maxW = max(maxW, w)
		}
		if need := load - limit; need > 0 {
			total += minSubsetSumAtLeast(ws, need, maxW)
		}
	}
	return total
}

func minSubsetSumAtLeast(ws []int64, need, maxW int64) int64 {
	top := need + maxW // the optimum is below need + the heaviest
	reach := make([]bool, top+1)
	reach[0] = true
	for _, w := range ws {
		for x := top; x >= w; x-- {
			reach[x] = reach[x] || reach[x-w]
		}
	}
	for x := need; x <= top; x++ {
		if reach[x] {
			return x
		}
	}
	return top
}

// TestAssignLeave: when a collector leaves, its targets move, and little
// else: the extra moved load is reported relative to the leaving
// collector's load.
func TestAssignLeave(t *testing.T) {
	var extra []float64
	for seed := range shardScenarios(300) {
		sc := newShardScenario(uint64(seed))
		if sc.n < 3 {
			continue
		}
		prev := Assign(sc.names[:sc.n], sc.targets, nil, 0.25)
		prev = Assign(sc.names[:sc.n+1], sc.targets, prev, 0.25)
		gone := sc.names[sc.r.IntN(sc.n+1)]
		names := slices.DeleteFunc(slices.Clone(sc.names[:sc.n+1]), func(n string) bool { return n == gone })
		out, st := AssignStats(names, sc.targets, prev, 0.25)
		o := newShardOracle(names, sc.targets, 0.25)
		checkShard(t, o, names, prev, out, st)
		var goneLoad, others int64
		for id, w := range o.weight {
			switch {
			case prev[id] == gone:
				goneLoad += w
			case out[id] != prev[id]:
				others += w
			}
		}
		if others > goneLoad {
			t.Errorf("seed %d: leave moved %d series of staying collectors, more than the %d of the one that left", seed, others, goneLoad)
		}
		if goneLoad > 0 {
			extra = append(extra, float64(others)/float64(goneLoad))
		}
	}
	t.Logf("extra moved load / load of the leaving collector: %s", shardPercentiles(extra))
}

func BenchmarkAssign(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	targets := shardTargets(r, 100_000)
	names := shardNames(r, 51)
	prev := Assign(names[:50], targets, nil, DefaultEpsilon)
	changed := changeTargetLoads(r, targets)
	for _, bc := range []struct {
		name       string
		collectors []string
		targets    []TargetLoad
		prev       map[string]string
	}{
		{"100k_targets_50_collectors/fresh", names[:50], targets, nil},
		{"100k_targets_50_collectors/unchanged", names[:50], targets, prev},
		{"100k_targets_50_collectors/join", names, targets, prev},
		{"100k_targets_50_collectors/leave", names[1:50], targets, prev},
		{"100k_targets_50_collectors/loads_changed", names[:50], changed, prev},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				Assign(bc.collectors, bc.targets, bc.prev, DefaultEpsilon)
			}
		})
	}
}

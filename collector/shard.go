package collector

// Sharding: which collector scrapes which target. The algorithm, its bound
// and measured figures are in docs/collector.md, section "Sharding".

import (
	"cmp"
	"math"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/vigil-tsdb/vigil/ring"
)

const (
	// DefaultEpsilon is the load tolerance Assign uses when given eps <= 0,
	// NaN or ±Inf: no collector carries more than (1+ε) × the mean load.
	DefaultEpsilon = 0.25
	// DefaultSeries is the weight of a target without a measured series
	// count when no target of the input has one either. When some have one,
	// an unmeasured target weighs their median (a new target is assumed
	// typical).
	DefaultSeries = 100
	// MaxSeries is the largest weight of one target; larger counts are
	// clamped, so that sums of loads cannot overflow.
	MaxSeries = 1 << 32
)

// TargetLoad is one scrape target as the sharding sees it.
type TargetLoad struct {
	ID string // target identity, unique across the registry
	// Series is the series count of the target's last scrape. 0 or negative
	// means unknown: the target then weighs the median of the known counts of
	// the input, or DefaultSeries when none is known.
	Series int
}

// ShardStats describes one assignment. Loads are series counts.
type ShardStats struct {
	Collectors int   // distinct collectors
	Targets    int   // distinct targets
	Total      int64 // total series load
	// Dedicated is the number of collectors that carry a single target
	// heavier than the cap (see Cap); they carry nothing else.
	Dedicated int
	// Mean is the mean load of the other (shared) collectors: the total load
	// of their targets divided by their number.
	Mean float64
	// Cap is ⌊(1+ε) × Mean⌋, the cap the issue asks for.
	Cap int64
	// Limit is the cap that was enforced: Cap, raised to a proven lower
	// bound of the best possible maximum load when Cap cannot be met by any
	// assignment (e.g. three targets of equal weight on two collectors).
	Limit int64
	// MaxLoad is the largest load of a shared collector.
	MaxLoad int64
	// OverLimit is true when the heuristic could not keep every shared
	// collector within Limit (some collector then carries more). It does not
	// happen when every shared target weighs at most
	// (Limit − Mean) × N/(N−1); see docs/collector.md.
	OverLimit bool
	// Moved and MovedSeries count the targets present in prev whose owner
	// changed, and their load.
	Moved       int
	MovedSeries int64
}

// Assign returns the owner of every target: a map from target ID to one of
// collectors. Every collector that calls it with the same inputs gets the
// same answer: the result does not depend on the order of collectors or
// targets, on map iteration order or on time.
//
// Targets go to their rendezvous-hash choice among collectors, moved as
// needed so that no collector carries more than (1+eps) × the mean series
// load; prev, the previous assignment (target ID → collector), makes a
// target stay where it is whenever that keeps the bound, so that membership
// and load changes move few targets. Assign(c, t, Assign(c, t, p, e), e)
// returns the same assignment (no moves) unless the bound could not be met.
// Collectors agree on the owners only if they pass equal inputs, prev and
// series counts included (docs/collector.md says how).
// A target heavier than the cap gets a collector of its own and the cap
// applies to the others. Duplicate collector names count once; a duplicate
// target ID counts once with its largest Series. Entries of prev for unknown
// targets or collectors are ignored. With no collectors the map is empty.
//
// Assign does not modify its arguments and the caller owns the returned map.
// It is safe for concurrent use; it costs O(targets × collectors) time.
func Assign(collectors []string, targets []TargetLoad, prev map[string]string, eps float64) map[string]string {
	owners, _ := AssignStats(collectors, targets, prev, eps)
	return owners
}

// AssignStats is Assign, also returning figures about the assignment (for
// metrics and the /targets page).
func AssignStats(collectors []string, targets []TargetLoad, prev map[string]string, eps float64) (map[string]string, ShardStats) {
	if eps <= 0 || math.IsNaN(eps) || math.IsInf(eps, 0) {
		eps = DefaultEpsilon
	}
	s := newShardState(collectors, targets, prev)
	st := ShardStats{Collectors: len(s.names), Targets: len(s.ids)}
	for _, w := range s.w {
		st.Total += w
	}
	if len(s.names) == 0 {
		return map[string]string{}, st
	}
	s.isolateHeavy(eps)
	s.run()

	out := make(map[string]string, len(s.ids))
	for i, id := range s.ids {
		out[id] = s.names[s.owner[i]]
		if p := s.prev[i]; p == prevGone || (p >= 0 && p != s.owner[i]) {
			st.Moved++
			st.MovedSeries += s.w[i]
		}
	}
	for c := range s.names {
		if s.dedicated[c] {
			st.Dedicated++
		} else {
			st.MaxLoad = max(st.MaxLoad, s.load[c])
		}
	}
	if n := len(s.names) - st.Dedicated; n > 0 {
		st.Mean = float64(s.restTotal) / float64(n)
	}
	st.Cap, st.Limit = s.nominalCap, s.limit
	st.OverLimit = st.MaxLoad > s.limit
	return out, st
}

// Values of shardState.prev besides collector numbers.
const (
	noPrev   = -1 // the target is not in prev
	prevGone = -2 // prev names a collector that is not in the input
)

// shardState is the working state of one Assign call. Collectors are
// numbered in name order, targets in (hash, ID) order; every loop below runs
// over these numbers, never over a map, which is what makes the result
// independent of input order.
type shardState struct {
	names     []string // collectors, sorted, distinct
	hc        []uint64 // hash of each name
	dedicated []bool   // collector carries one over-cap target only
	shared    []int    // collectors that are not dedicated, ascending
	load      []int64  // series per collector

	ids   []string // targets, distinct, in (hash, ID) order
	ht    []uint64 // hash of each ID
	w     []int64  // weight (series) of each target
	heavy []bool   // target has a dedicated collector
	prev  []int    // previous owner, or noPrev, prevGone
	owner []int    // current owner, -1 while unassigned
	home  []int    // rendezvous choice among shared collectors

	restTotal  int64 // load of the non-heavy targets
	nominalCap int64 // ⌊(1+ε) × restTotal/len(shared)⌋
	limit      int64 // enforced cap: max(nominalCap, lower bound)
	soft       int64 // new targets fill collectors up to this first: (1+ε/2) × mean
	pullLimit  int64 // a target is pulled home while its home stays within this: the mean
	repairs    int   // repair attempts left (bounds the work of a hard case)

	members [][]int // per collector: targets assigned to it, plus stale entries (see membersOf)
	mark    []int   // per target: generation of the last membersOf that saw it
	gen     int
}

func newShardState(collectors []string, targets []TargetLoad, prev map[string]string) *shardState {
	s := &shardState{names: slices.Clone(collectors)}
	slices.Sort(s.names)
	s.names = slices.Compact(s.names)
	s.hc = make([]uint64, len(s.names))
	for i, n := range s.names {
		s.hc[i] = xxhash.Sum64String(n)
	}
	s.dedicated = make([]bool, len(s.names))
	s.load = make([]int64, len(s.names))

	// Number targets in (hash, ID) order: a total order that does not depend
	// on the input order, cheaper to sort by than the IDs alone.
	type entry struct {
		h      uint64
		id     string
		series int
	}
	ts := make([]entry, len(targets))
	for i, t := range targets {
		ts[i] = entry{xxhash.Sum64String(t.ID), t.ID, t.Series}
	}
	slices.SortFunc(ts, func(a, b entry) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		if c := cmp.Compare(a.id, b.id); c != 0 {
			return c
		}
		return cmp.Compare(b.series, a.series) // largest first: it is kept
	})
	ts = slices.CompactFunc(ts, func(a, b entry) bool { return a.id == b.id })
	n := len(ts)
	s.ids = make([]string, n)
	s.ht = make([]uint64, n)
	s.w = make([]int64, n)
	s.heavy = make([]bool, n)
	s.prev = make([]int, n)
	s.owner = make([]int, n)
	s.home = make([]int, n)
	var known []int64
	for i, t := range ts {
		s.ids[i], s.ht[i] = t.id, t.h
		if t.series > 0 {
			s.w[i] = min(int64(t.series), MaxSeries)
			known = append(known, s.w[i])
		}
		s.prev[i], s.owner[i] = noPrev, -1
		if p, ok := prev[t.id]; ok {
			s.prev[i] = prevGone
			if c, found := slices.BinarySearch(s.names, p); found {
				s.prev[i] = c
			}
		}
	}
	def := int64(DefaultSeries)
	if len(known) > 0 {
		slices.Sort(known)
		def = known[(len(known)-1)/2]
	}
	for i := range s.w {
		if s.w[i] == 0 {
			s.w[i] = def
		}
	}
	return s
}

// score is the rendezvous (highest random weight) score of collector c for
// target t. A target prefers collectors in decreasing score; ties (equal
// 64-bit scores) go to the lower collector number.
func (s *shardState) score(c, t int) uint64 { return ring.RendezvousScore(s.hc[c], s.ht[t]) }

// capOf returns ⌊(1+eps) × total/n⌋, at most total.
func capOf(total int64, n int, eps float64) int64 {
	c := (1 + eps) * float64(total) / float64(n)
	if c >= float64(total) {
		return total
	}
	return int64(c)
}

// byWeight returns the target numbers ordered by decreasing weight, then ID.
func (s *shardState) byWeight(idx []int) []int {
	slices.SortFunc(idx, func(a, b int) int {
		if c := cmp.Compare(s.w[b], s.w[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	return idx
}

// isolateHeavy gives every target heavier than the cap a collector of its
// own, heaviest first, recomputing the cap of the remaining collectors and
// targets after each one (removing a target above the mean lowers the mean
// of the rest, which can make the next target too heavy). Each such target
// keeps its previous collector when it can, else takes the one with the
// least previous load. Then it sets the caps of the shared collectors and
// every other target's home. At least one collector stays shared.
func (s *shardState) isolateHeavy(eps float64) {
	order := make([]int, len(s.ids))
	for i := range order {
		order[i] = i
	}
	s.byWeight(order)
	rest, n := int64(0), len(s.names)
	for _, w := range s.w {
		rest += w
	}
	// prevLoad is the load each collector carried in prev, of targets not
	// isolated so far.
	prevLoad := make([]int64, len(s.names))
	for t, c := range s.prev {
		if c >= 0 {
			prevLoad[c] += s.w[t]
		}
	}
	k := 0
	for ; k < len(order) && n >= 2; k++ {
		t := order[k]
		if s.w[t] <= capOf(rest, n, eps) {
			break
		}
		if p := s.prev[t]; p >= 0 {
			prevLoad[p] -= s.w[t]
		}
		// Without a previous collector to keep, take the one whose previous
		// targets weigh least (they all have to move), ties to the highest
		// score.
		c := s.prev[t]
		if c < 0 || s.dedicated[c] {
			c = -1
			for d := range s.names {
				if s.dedicated[d] {
					continue
				}
				if c < 0 || prevLoad[d] < prevLoad[c] || (prevLoad[d] == prevLoad[c] && s.score(d, t) > s.score(c, t)) {
					c = d
				}
			}
		}
		s.dedicated[c] = true
		s.heavy[t] = true
		s.owner[t] = c
		s.load[c] = s.w[t]
		rest -= s.w[t]
		n--
	}
	for c := range s.names {
		if !s.dedicated[c] {
			s.shared = append(s.shared, c)
		}
	}
	s.restTotal = rest
	s.nominalCap = capOf(rest, n, eps)
	s.limit = max(s.nominalCap, lowerBound(s.w, order[k:], n))
	s.pullLimit = rest / int64(n)
	s.soft = s.pullLimit + (s.nominalCap-s.pullLimit)/2
	s.repairs = 64 + 4*n
	for _, t := range order[k:] {
		s.home[t] = s.best(t, s.shared, nil)
	}
}

// lowerBound returns a lower bound of the best possible maximum load of n
// collectors carrying the targets idx (sorted by decreasing weight): the
// mean rounded up, and for every k ≥ 0 the fact that among the k·n+1
// heaviest targets some collector gets k+1, so at least the k+1 lightest of
// them.
func lowerBound(w []int64, idx []int, n int) int64 {
	var total int64
	prefix := make([]int64, len(idx)+1)
	for i, t := range idx {
		total += w[t]
		prefix[i+1] = total
	}
	lb := (total + int64(n) - 1) / int64(n)
	for k := 0; k*n < len(idx); k++ {
		hi := k*n + 1 // the k·n+1 heaviest are idx[:hi]
		lb = max(lb, prefix[hi]-prefix[hi-k-1])
	}
	return lb
}

// best returns the collector of cs with the highest score for t among those
// that fit accepts (all when fit is nil); -1 if none.
func (s *shardState) best(t int, cs []int, fit func(c int) bool) int {
	bc, bs := -1, uint64(0)
	for _, c := range cs {
		if fit != nil && !fit(c) {
			continue
		}
		if sc := s.score(c, t); bc < 0 || sc > bs {
			bc, bs = c, sc
		}
	}
	return bc
}

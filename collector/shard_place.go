package collector

import (
	"cmp"
	"slices"
)

// run assigns every target that isolateHeavy left unassigned:
//
//  1. Each target stays with its previous owner, if that is a shared
//     collector.
//  2. Targets on a collector above the mean load go home while their home
//     stays within the mean (pullHome). This is what fills a new collector
//     and keeps the assignment close to plain rendezvous hashing.
//  3. A collector above the limit sheds targets until it is within it,
//     moving little load (evictionSet).
//  4. Unassigned targets, heaviest first, go to their home if it stays
//     within the soft limit (1+ε/2) × mean, else to the collector of highest
//     score that does; failing that the same with the limit; else to a
//     collector made room on by moving lighter targets (repair); else to the
//     least loaded collector (the limit is then exceeded). Filling only to
//     the soft limit leaves room, so that the lower cap after a collector
//     joins seldom forces a collector to shed.
//  5. pullHome again, so that the result is a fixed point: called again with
//     itself as prev, run moves nothing (unless the limit was exceeded).
func (s *shardState) run() {
	s.members = make([][]int, len(s.names))
	s.mark = make([]int, len(s.ids))
	for t := range s.ids {
		if c := s.prev[t]; !s.heavy[t] && c >= 0 && !s.dedicated[c] {
			s.assign(t, c)
		}
	}
	s.pullHome()
	for _, c := range s.shared {
		if s.load[c] > s.limit {
			s.shed(c)
		}
	}
	var queue []int
	for t := range s.ids {
		if s.owner[t] < 0 {
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		var evicted []int
		for _, t := range s.byWeight(queue) {
			evicted = s.place(t, evicted)
		}
		queue = evicted
	}
	s.pullHome()
}

func (s *shardState) assign(t, c int) {
	s.owner[t] = c
	s.load[c] += s.w[t]
	s.members[c] = append(s.members[c], t)
}

func (s *shardState) unassign(t int) {
	s.load[s.owner[t]] -= s.w[t]
	s.owner[t] = -1
}

// membersOf returns the targets assigned to c, in ascending order of their
// first assignment. It drops the stale entries of members[c] (targets that
// left, duplicates of targets that came back) in place.
func (s *shardState) membersOf(c int) []int {
	s.gen++
	out := s.members[c][:0]
	for _, t := range s.members[c] {
		if s.owner[t] == c && s.mark[t] != s.gen {
			s.mark[t] = s.gen
			out = append(out, t)
		}
	}
	s.members[c] = out
	return out
}

// shed unassigns targets of c until its load is within the limit, moving
// as little load as it can (see evictionSet).
func (s *shardState) shed(c int) {
	set, _ := s.evictionSet(c, slices.Clone(s.membersOf(c)), s.load[c]-s.limit)
	for _, t := range set {
		s.unassign(t)
	}
}

// evictionSet returns targets of cands (on collector c) whose load is at
// least need, with their load: the lighter of two choices, so that little
// load moves — the lightest targets until enough (then without those no
// longer needed), or the single lightest target that is enough by itself.
// Among targets of equal weight, guests (targets whose home is another
// collector) go first, then those with the lowest score for c: the ones
// rendezvous hashing holds least firmly. It reorders cands; ok is false when
// all of cands is not enough.
func (s *shardState) evictionSet(c int, cands []int, need int64) (set []int, ok bool) {
	slices.SortFunc(cands, func(a, b int) int {
		if d := cmp.Compare(s.w[a], s.w[b]); d != 0 {
			return d
		}
		if ga, gb := s.home[a] != c, s.home[b] != c; ga != gb {
			if ga {
				return -1
			}
			return 1
		}
		if d := cmp.Compare(s.score(c, a), s.score(c, b)); d != 0 {
			return d
		}
		return cmp.Compare(a, b)
	})
	var sum int64
	k := 0
	for ; k < len(cands) && sum < need; k++ {
		sum += s.w[cands[k]]
	}
	if sum < need {
		return nil, false
	}
	for _, t := range cands[:k] {
		if sum-s.w[t] >= need {
			sum -= s.w[t]
			continue
		}
		set = append(set, t)
	}
	// The first target at least as heavy as need, if it is a lighter move.
	if i, _ := slices.BinarySearchFunc(cands, need, func(t int, need int64) int { return cmp.Compare(s.w[t], need) }); i < len(cands) && s.w[cands[i]] < sum {
		return []int{cands[i]}, true
	}
	return set, true
}

// pullHome moves assigned targets from collectors above pullLimit (the mean
// load) to their home while the home stays within it, until no such move is
// left. A collector that loses a target is looked at again, since it may now
// take back targets of its own. A home never rises above the mean this way,
// so a move never enables a move out of the collector it went to: the result
// is a fixed point.
func (s *shardState) pullHome() {
	exiles := make([][]int, len(s.names))
	for t, c := range s.owner {
		if c >= 0 && !s.heavy[t] && c != s.home[t] {
			exiles[s.home[t]] = append(exiles[s.home[t]], t)
		}
	}
	queued := make([]bool, len(s.names))
	queue := slices.Clone(s.shared)
	for _, c := range queue {
		queued[c] = true
	}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		queued[c] = false
		keep := exiles[c][:0]
		for _, t := range exiles[c] {
			src := s.owner[t]
			if s.load[src] <= s.pullLimit || s.load[c]+s.w[t] > s.pullLimit {
				keep = append(keep, t)
				continue
			}
			s.unassign(t)
			s.assign(t, c)
			if !queued[src] {
				queued[src] = true
				queue = append(queue, src)
			}
		}
		exiles[c] = keep
	}
}

// place assigns the unassigned target t (step 4 of run) and returns evicted
// with the targets a repair unassigned appended.
func (s *shardState) place(t int, evicted []int) []int {
	w := s.w[t]
	for _, lim := range [...]int64{s.soft, s.limit} {
		if h := s.home[t]; s.load[h]+w <= lim {
			s.assign(t, h)
			return evicted
		}
		if c := s.best(t, s.shared, func(c int) bool { return s.load[c]+w <= lim }); c >= 0 {
			s.assign(t, c)
			return evicted
		}
	}
	if s.repairs > 0 {
		s.repairs--
		if c, ev := s.repair(t); c >= 0 {
			for _, e := range ev {
				s.unassign(e)
			}
			s.assign(t, c)
			return append(evicted, ev...)
		}
	}
	// No room anywhere: the least loaded collector, over the limit.
	c := s.shared[0]
	for _, d := range s.shared[1:] {
		if s.load[d] < s.load[c] {
			c = d
		}
	}
	s.assign(t, c)
	return evicted
}

// repair finds the collector on which t fits after moving away the least
// load of targets lighter than t, and returns it with those targets; -1 if
// there is none. Moving only lighter targets makes every chain of repairs
// shrink; the repair budget bounds their number.
func (s *shardState) repair(t int) (int, []int) {
	w := s.w[t]
	bestC, bestCost, bestScore := -1, int64(0), uint64(0)
	var bestSet []int
	for _, c := range s.shared {
		var light []int
		for _, e := range s.membersOf(c) {
			if s.w[e] < w {
				light = append(light, e)
			}
		}
		set, ok := s.evictionSet(c, light, s.load[c]+w-s.limit)
		if !ok {
			continue
		}
		var cost int64
		for _, e := range set {
			cost += s.w[e]
		}
		sc := s.score(c, t)
		if bestC < 0 || cost < bestCost || (cost == bestCost && sc > bestScore) {
			bestC, bestCost, bestScore, bestSet = c, cost, sc, set
		}
	}
	return bestC, bestSet
}

package rules

// Sharding of rule groups over the ruler ring (docs/alerting.md,
// "Sharding and hand-over").

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/vigil-tsdb/vigil/ring"
)

// GroupKey is the ownership key of a group: "<namespace>/<group>".
func GroupKey(namespace, group string) string { return namespace + "/" + group }

// SetOwnership makes the ruler evaluate only the groups it owns: those
// whose key (GroupKey) has self as rendezvous winner (ring.Rendezvous)
// among members(), the names of the active, healthy rulers. members is
// called under the ruler's lock at every Apply and Resync and must not
// block nor call the ruler. Without SetOwnership the ruler owns every
// group (the single node). Call it before Run and the first Apply.
func (r *Ruler) SetOwnership(self string, members func() []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.own.self, r.own.members = self, members
}

// Resync recomputes the owned groups after a membership change, or when a
// hand-over's overlap ended: gained groups start at once (their `for`
// state restored from ALERTS_FOR_STATE), lost ones keep being evaluated
// until HandoverOverlap after the change was first seen, then stop. It
// returns when the next hand-over under way ends (zero when none is).
func (r *Ruler) Resync() (time.Time, error) {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	return r.updateLocked(false)
}

// Follow calls Resync after each value of changes (a ring's Subscribe) and
// when a hand-over's overlap ends, until ctx ends or changes is closed.
func (r *Ruler) Follow(ctx context.Context, changes <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				return
			}
		case <-timer.C:
		}
		next, err := r.Resync()
		if err != nil {
			r.logger.Error("rule groups not re-applied after a ring change; retrying in 1s", "err", err)
			next = r.now().Add(time.Second)
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0) + 10*time.Millisecond)
		}
	}
}

// handedOver reports whether ctx is that of a rule group (the rule
// manager's origin context) that is stored but now evaluated by another
// ruler. Prometheus marks the series of a group it stops as stale, two
// intervals later, at the stop time: for a group handed over, whose series
// the new owner goes on writing, such markers would cut them (an instant
// query between the marker and the next sample would find nothing), so
// they are dropped. A group deleted from the store is marked stale.
func (r *Ruler) handedOver(ctx context.Context) bool {
	origin, _ := ctx.Value(promql.QueryOrigin{}).(map[string]any)
	g, _ := origin["ruleGroup"].(map[string]string)
	if g == nil {
		return false
	}
	k := GroupKey(g["file"], g["name"])
	r.mu.Lock()
	defer r.mu.Unlock()
	_, releasing := r.own.releasing[k]
	return r.own.known[k] && !r.own.owned[k] && !releasing
}

// ownership is the state of sharding: the stored groups, those owned and
// those being handed over. Not safe for concurrent use (Ruler.mu).
type ownership struct {
	self    string
	members func() []string // nil: own everything
	overlap time.Duration

	groups    []Group              // the latest snapshot's groups
	known     map[string]bool      // keys of groups, to tell a move from a new group
	owned     map[string]bool      // keys owned after the last compute
	releasing map[string]time.Time // lost keys → when their evaluation stops
	first     bool                 // no compute yet: nothing counts as a move
	evaluated []string             // keys evaluated after the last compute
}

func newOwnership(overlap time.Duration) ownership {
	return ownership{overlap: overlap, owned: map[string]bool{}, releasing: map[string]time.Time{}, known: map[string]bool{}, first: true}
}

// ownChange is the outcome of one compute.
type ownChange struct {
	evaluate []Group   // owned or being handed over, in key order
	owned    int       // owned groups
	gained   []string  // keys gained from another ruler
	lost     []string  // keys lost to another ruler (now being handed over)
	released []string  // keys whose hand-over ended (or that were deleted meanwhile)
	next     time.Time // when the next hand-over ends; zero when none
	same     bool      // the same keys are evaluated as after the previous compute
}

// setGroups replaces the stored groups (a new snapshot). Groups that were
// deleted stop at the next compute, handed over or not.
func (o *ownership) setGroups(gs []Group) {
	o.groups = slices.Clone(gs)
}

// compute returns the groups to evaluate at now.
func (o *ownership) compute(now time.Time) ownChange {
	var members []string
	if o.members != nil {
		members = o.members()
	}
	var ch ownChange
	owned := map[string]bool{}
	keys := make(map[string]bool, len(o.groups))
	for _, g := range o.groups {
		k := GroupKey(g.Namespace, g.RuleGroup.Name)
		keys[k] = true
		if o.members == nil || ring.Rendezvous(members, k) == o.self {
			owned[k] = true
		}
	}
	for k := range keys {
		was, is := o.owned[k], owned[k]
		switch {
		case is && !was && o.known[k] && !o.first:
			ch.gained = append(ch.gained, k)
			delete(o.releasing, k) // taken back during its hand-over: it never stopped
		case is:
			delete(o.releasing, k)
		case was && !o.first:
			ch.lost = append(ch.lost, k)
			o.releasing[k] = now.Add(o.overlap)
		}
	}
	for k, until := range o.releasing {
		if !keys[k] || !now.Before(until) {
			ch.released = append(ch.released, k)
			delete(o.releasing, k)
		} else if ch.next.IsZero() || until.Before(ch.next) {
			ch.next = until
		}
	}
	var evaluated []string
	for _, g := range o.groups {
		k := GroupKey(g.Namespace, g.RuleGroup.Name)
		if _, rel := o.releasing[k]; owned[k] || rel {
			ch.evaluate = append(ch.evaluate, g)
			evaluated = append(evaluated, k)
		}
	}
	slices.Sort(evaluated)
	ch.same = !o.first && slices.Equal(evaluated, o.evaluated)
	o.evaluated = evaluated
	slices.Sort(ch.gained)
	slices.Sort(ch.lost)
	slices.Sort(ch.released)
	ch.owned = len(owned)
	o.owned, o.known, o.first = owned, keys, false
	return ch
}

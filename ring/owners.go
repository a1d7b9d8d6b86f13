package ring

import (
	"fmt"
	"slices"
	"sort"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"
)

// hasher is the key and circle hash. Changing it moves every key: all nodes
// of a cluster must run the same one.
type hasher struct{}

func (hasher) Sum64(b []byte) uint64 { return xxhash.Sum64(b) }

type consistentMember string

func (m consistentMember) String() string { return string(m) }

// roleRing is the immutable ownership of one role, built once per member-set
// change. Owners is answered from precomputed tables, without locks.
type roleRing struct {
	names      []string       // active members of the role, sorted by name
	zones      []string       // zone of each name ("" when none announced)
	zoneCount  int            // distinct non-empty zones
	order      []int          // indexes into names, in consistent's successor order (by hash of the name)
	pos        map[string]int // name -> position in order
	owner      []int          // partition -> position in order of its owner
	partitions map[string]int // name -> partitions owned
	partCount  uint64
}

// buildRoleRing builds the ring of the given active members. names must be
// sorted; building from the sorted list (never incrementally) is what makes
// every node compute the same owners.
func buildRoleRing(names, zones []string, cfg Config) *roleRing {
	r := &roleRing{names: names, zones: zones, partCount: uint64(cfg.Partitions), partitions: map[string]int{}}
	if len(names) == 0 {
		return r
	}
	seen := map[string]bool{}
	for _, z := range zones {
		if z != "" && !seen[z] {
			seen[z] = true
			r.zoneCount++
		}
	}
	members := make([]consistent.Member, len(names))
	for i, n := range names {
		members[i] = consistentMember(n)
	}
	c := consistent.New(members, consistent.Config{
		Hasher:            hasher{},
		PartitionCount:    cfg.Partitions,
		ReplicationFactor: cfg.VirtualNodes,
		Load:              cfg.LoadFactor,
	})
	// consistent.GetClosestN walks the members in the order of the hash of
	// their names, starting at the partition owner; it recomputes and sorts
	// that order on every call. Precompute it once here.
	r.order = make([]int, len(names))
	for i := range names {
		r.order[i] = i
	}
	sort.SliceStable(r.order, func(a, b int) bool {
		return xxhash.Sum64String(names[r.order[a]]) < xxhash.Sum64String(names[r.order[b]])
	})
	r.pos = make(map[string]int, len(names))
	for p, i := range r.order {
		r.pos[names[i]] = p
	}
	r.owner = make([]int, cfg.Partitions)
	for p := range cfg.Partitions {
		o := c.GetPartitionOwner(p).String()
		r.owner[p] = r.pos[o]
		r.partitions[o]++
	}
	return r
}

// partition returns the partition of key.
func (r *roleRing) partition(key []byte) int {
	return Partition(key, int(r.partCount))
}

// Partition returns the ring partition of key among partitions; it does not
// depend on the members, so every node agrees on it.
func Partition(key []byte, partitions int) int {
	return int(xxhash.Sum64(key) % uint64(partitions))
}

// ownerNames returns the owners of key's partition (see partitionOwners).
func (r *roleRing) ownerNames(key []byte, n int) ([]string, error) {
	return r.partitionOwners(r.partition(key), n)
}

// partitionOwners returns the owner of partition p followed by the next
// n-1 members in successor order (consistent's GetClosestN). When members
// announce zones, successors in a zone already chosen are skipped while
// unchosen zones remain, so n replicas land in min(n, zones) zones.
func (r *roleRing) partitionOwners(p, n int) ([]string, error) {
	if n < 1 {
		return nil, fmt.Errorf("owners: n must be at least 1, got %d", n)
	}
	if n > len(r.names) {
		return nil, fmt.Errorf("owners: want %d, have %d: %w", n, len(r.names), ErrInsufficientMembers)
	}
	if p < 0 || p >= len(r.owner) {
		return nil, fmt.Errorf("owners: partition %d out of range [0, %d)", p, len(r.owner))
	}
	start := r.owner[p]
	out := make([]string, 0, n)
	if r.zoneCount < 2 {
		for i := range n {
			out = append(out, r.names[r.order[(start+i)%len(r.order)]])
		}
		return out, nil
	}
	var picked []int // positions in order
	usedZones := map[string]bool{}
	wantZones := min(n, r.zoneCount)
	for i := 0; i < len(r.order) && len(picked) < n; i++ {
		pos := (start + i) % len(r.order)
		z := r.zones[r.order[pos]]
		if len(usedZones) < wantZones && (z == "" || usedZones[z]) {
			continue
		}
		usedZones[z] = true
		picked = append(picked, pos)
	}
	// Fewer zones than replicas: fill up in successor order.
	for i := 0; i < len(r.order) && len(picked) < n; i++ {
		pos := (start + i) % len(r.order)
		if !slices.Contains(picked, pos) {
			picked = append(picked, pos)
		}
	}
	for _, pos := range picked {
		out = append(out, r.names[r.order[pos]])
	}
	return out, nil
}

// snapshot is the immutable view readers use: the member table and the
// per-role rings at one moment.
type snapshot struct {
	members []Member // sorted by name
	byName  map[string]int
	rings   map[Role]*roleRing
}

// buildSnapshot computes the rings from members (sorted by name), reusing a
// previous role ring when its active member set did not change.
func buildSnapshot(members []Member, cfg Config, prev *snapshot) *snapshot {
	s := &snapshot{members: members, byName: make(map[string]int, len(members)), rings: map[Role]*roleRing{}}
	for i, m := range members {
		s.byName[m.Name] = i
	}
	for _, role := range AllRoles {
		var names, zones []string
		for _, m := range members {
			if m.Roles.Has(role) && m.State == StateActive {
				names = append(names, m.Name)
				zones = append(zones, m.Zone)
			}
		}
		if prev != nil {
			if old := prev.rings[role]; old != nil && slices.Equal(old.names, names) && slices.Equal(old.zones, zones) {
				s.rings[role] = old
				continue
			}
		}
		s.rings[role] = buildRoleRing(names, zones, cfg)
	}
	return s
}

package ring

import (
	"fmt"
	"math/rand"
	"slices"
	"testing"

	"github.com/buraksezer/consistent"
)

func testMembers(names ...string) []Member {
	var out []Member
	for _, n := range names {
		out = append(out, Member{Name: n, Healthy: true, MemberMeta: MemberMeta{Roles: Roles(RoleIngester), State: StateActive}})
	}
	slices.SortFunc(out, func(a, b Member) int { return compareStrings(a.Name, b.Name) })
	return out
}

func keys(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{__name__="up", instance="host-%d:9100", job="node"}`, i)
	}
	return out
}

// The precomputed successor order must give exactly consistent's GetClosestN.
func TestOwnersMatchConsistent(t *testing.T) {
	cfg := DefaultConfig()
	names := []string{"ing-a", "ing-b", "ing-c", "ing-d", "ing-e"}
	r := buildRoleRing(names, nil, cfg)
	var members []consistent.Member
	for _, n := range names {
		members = append(members, consistentMember(n))
	}
	c := consistent.New(members, consistent.Config{Hasher: hasher{}, PartitionCount: cfg.Partitions, ReplicationFactor: cfg.VirtualNodes, Load: cfg.LoadFactor})
	for _, k := range keys(10000) {
		for _, n := range []int{1, 3, 5} {
			got, err := r.ownerNames(k, n)
			if err != nil {
				t.Fatal(err)
			}
			want, err := c.GetClosestN(k, n)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if got[i] != want[i].String() {
					t.Fatalf("key %s n=%d: got %v, want %v", k, n, got, want)
				}
			}
		}
	}
	if _, err := r.ownerNames([]byte("k"), 6); err == nil {
		t.Fatal("6 owners of 5 members")
	}
}

func primaryShares(t *testing.T, s *snapshot, ks [][]byte) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, k := range ks {
		names, err := s.rings[RoleIngester].ownerNames(k, 1)
		if err != nil {
			t.Fatal(err)
		}
		out[names[0]]++
	}
	return out
}

func TestDistributionAndMoves(t *testing.T) {
	cfg := DefaultConfig()
	ks := keys(10000)
	three := buildSnapshot(testMembers("ingester-1", "ingester-2", "ingester-3"), cfg, nil)
	four := buildSnapshot(testMembers("ingester-1", "ingester-2", "ingester-3", "ingester-4"), cfg, nil)
	shares := primaryShares(t, four, ks)
	for name, n := range shares {
		pct := 100 * float64(n) / float64(len(ks))
		t.Logf("4 members: %s owns %.1f%% of keys, %d partitions", name, pct, four.rings[RoleIngester].partitions[name])
		if pct < 18 || pct > 32 {
			t.Errorf("%s owns %.1f%% of keys, want 25%% ± 7", name, pct)
		}
	}
	moved := 0
	for _, k := range ks {
		a, _ := three.rings[RoleIngester].ownerNames(k, 1)
		b, _ := four.rings[RoleIngester].ownerNames(k, 1)
		if a[0] != b[0] {
			moved++
			if b[0] != "ingester-4" {
				t.Errorf("key moved from %s to %s, not to the new member", a[0], b[0])
			}
		}
	}
	pct := 100 * float64(moved) / float64(len(ks))
	t.Logf("adding a 4th member moved %d of %d keys (%.1f%%)", moved, len(ks), pct)
	if pct > 35 {
		t.Errorf("moved %.1f%% of keys, want ≤ 35%%", pct)
	}
}

// Arrival order must not matter: the snapshot is built from sorted names.
func TestDeterministicRebuild(t *testing.T) {
	cfg := DefaultConfig()
	names := []string{"a", "b", "c", "d", "e", "f"}
	ks := keys(2000)
	want := buildSnapshot(testMembers(names...), cfg, nil)
	rng := rand.New(rand.NewSource(1))
	for range 5 {
		rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		// Incremental history: grow one member at a time in a random order.
		var s *snapshot
		for i := range names {
			s = buildSnapshot(testMembers(names[:i+1]...), cfg, s)
		}
		for _, k := range ks {
			a, _ := want.rings[RoleIngester].ownerNames(k, 3)
			b, _ := s.rings[RoleIngester].ownerNames(k, 3)
			if !slices.Equal(a, b) {
				t.Fatalf("order %v: key %s owners %v, want %v", names, k, b, a)
			}
		}
	}
}

func TestOnlyActiveMembersOfTheRoleOwn(t *testing.T) {
	ms := testMembers("active-1", "active-2", "joining", "leaving", "querier", "dead-active")
	for i := range ms {
		switch ms[i].Name {
		case "joining":
			ms[i].State = StateJoining
		case "leaving":
			ms[i].State = StateLeaving
		case "querier":
			ms[i].Roles = Roles(RoleQuerier)
		case "dead-active":
			ms[i].Healthy = false // dead members keep their partitions until forgotten
		}
	}
	s := buildSnapshot(ms, DefaultConfig(), nil)
	want := []string{"active-1", "active-2", "dead-active"}
	if got := s.rings[RoleIngester].names; !slices.Equal(got, want) {
		t.Fatalf("ingester ring members %v, want %v", got, want)
	}
	total := 0
	for _, n := range s.rings[RoleIngester].partitions {
		total += n
	}
	if total != DefaultConfig().Partitions {
		t.Fatalf("partitions owned sum to %d", total)
	}
	for _, k := range keys(5000) {
		names, err := s.rings[RoleIngester].ownerNames(k, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(slices.Sorted(slices.Values(names)), want) {
			t.Fatalf("owners %v", names)
		}
	}
	if got := s.rings[RoleQuerier].names; !slices.Equal(got, []string{"querier"}) {
		t.Fatalf("querier ring %v", got)
	}
}

func BenchmarkOwners(b *testing.B) {
	s := buildSnapshot(testMembers("i1", "i2", "i3", "i4", "i5", "i6"), DefaultConfig(), nil)
	ks := keys(1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.rings[RoleIngester].ownerNames(ks[i%len(ks)], 3); err != nil {
			b.Fatal(err)
		}
	}
}

// With zones announced, the replicas of every partition span min(n, zones)
// zones; the first owner is the zone-unaware partition owner.
func TestOwnersZoneAware(t *testing.T) {
	cfg := DefaultConfig()
	names := []string{"a1", "a2", "a3", "b1", "b2", "c1", "c2", "c3", "c4"}
	zones := []string{"za", "za", "za", "zb", "zb", "zc", "zc", "zc", "zc"}
	zoneOf := map[string]string{}
	for i, n := range names {
		zoneOf[n] = zones[i]
	}
	zoned := buildRoleRing(names, zones, cfg)
	plain := buildRoleRing(names, nil, cfg)
	for p := range cfg.Partitions {
		got, err := zoned.partitionOwners(p, 3)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := plain.partitionOwners(p, 1)
		if got[0] != want[0] {
			t.Fatalf("partition %d: first owner %s, zone-unaware owner %s", p, got[0], want[0])
		}
		seen := map[string]bool{}
		for _, n := range got {
			seen[zoneOf[n]] = true
		}
		if len(seen) != 3 {
			t.Fatalf("partition %d: owners %v span zones %v", p, got, seen)
		}
		// Four replicas over three zones: all zones, no member twice.
		four, _ := zoned.partitionOwners(p, 4)
		if len(four) != 4 || len(slices.Compact(slices.Sorted(slices.Values(four)))) != 4 {
			t.Fatalf("partition %d: 4 owners %v", p, four)
		}
	}
	// Two zones, three replicas: both zones used, three distinct members.
	two := buildRoleRing([]string{"a1", "a2", "b1"}, []string{"za", "za", "zb"}, cfg)
	got, _ := two.partitionOwners(0, 3)
	if len(slices.Compact(slices.Sorted(slices.Values(got)))) != 3 {
		t.Fatalf("owners %v", got)
	}
}

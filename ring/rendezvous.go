package ring

import "github.com/cespare/xxhash/v2"

// Rendezvous returns the member with the highest rendezvous (highest
// random weight) score for key, ties to the lower name; "" when members is
// empty. It is the owner function of work that every node decides alone
// from the same member list: the collectors' scrape-target homes
// (docs/collector.md, "Sharding") and the rulers' rule groups
// (docs/alerting.md, "Sharding and hand-over"). When a member leaves, only
// the keys it won move, each to its second choice; when one joins, it takes
// only the keys it now wins. Safe for concurrent use; members is not kept.
func Rendezvous(members []string, key string) string {
	best, bestScore := "", uint64(0)
	hk := xxhash.Sum64String(key)
	for _, m := range members {
		sc := RendezvousScore(xxhash.Sum64String(m), hk)
		if best == "" || sc > bestScore || sc == bestScore && m < best {
			best, bestScore = m, sc
		}
	}
	return best
}

// RendezvousScore mixes a member's and a key's xxhash (Sum64String) into the
// member's score for the key; a key prefers members in decreasing score.
func RendezvousScore(hm, hk uint64) uint64 {
	x := hm ^ hk
	// splitmix64 finalizer: a bijection that spreads every input bit.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Package ring answers, for every Vigil process, who is in the cluster and
// who owns a key.
//
// Membership is a hashicorp/memberlist gossip cluster. Each member gossips a
// small binary record (MemberMeta: roles, state, gRPC and HTTP addresses,
// zone; see docs/ring.md for the format). Ownership is one
// buraksezer/consistent ring (consistent hashing with bounded loads) per
// role, rebuilt deterministically from the sorted list of active members of
// that role, so every node that sees the same members computes the same
// owners.
//
// Users depend on the small Ring interface (Owners, Members, Subscribe). The
// concrete *Cluster also lets the local node change its state (SetState),
// lets an operator drop a dead member (Forget), serves /ring (ServeHTTP) and
// runs the membership (Run, Close).
//
// Data flow: distributors ask Owners(RoleIngester, seriesKey, RF) where to
// write; queriers ask Members(RoleIngester) whom to fan out to; collectors
// ask Owners(RoleCollector, target, 1) which targets are theirs; ingesters
// join as joining, become active, and go leaving before hand-off.
package ring

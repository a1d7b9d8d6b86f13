package ring

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate connects memberlist to the Cluster. memberlist calls it from
// its own goroutines; every method takes c.mu and never calls back into
// memberlist (which may hold its node lock while calling).
type delegate struct{ c *Cluster }

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.PingDelegate  = (*delegate)(nil)
)

// NodeMeta implements memberlist.Delegate.
func (d *delegate) NodeMeta(limit int) []byte {
	d.c.mu.Lock()
	m := d.c.local
	d.c.mu.Unlock()
	b, err := m.Encode()
	if err != nil || len(b) > limit { // Validate in New and SetState make this unreachable
		d.c.logger.Error("encode local metadata", "err", err, "size", len(b), "limit", limit)
		return nil
	}
	return b
}

// NotifyMsg implements memberlist.Delegate: a forget broadcast.
func (d *delegate) NotifyMsg(b []byte) {
	st, err := decodeGossipState(b)
	if err != nil {
		d.c.logger.Warn("gossip message", "err", err)
		return
	}
	d.c.merge(st)
}

// GetBroadcasts implements memberlist.Delegate.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.c.queue.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate: dead members and tombstones,
// so that nodes joining later compute the same owners.
func (d *delegate) LocalState(bool) []byte {
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pruneTombstonesLocked(time.Now())
	var st gossipState
	for _, e := range c.table {
		if !e.Healthy {
			st.Dead = append(st.Dead, deadMember{Name: e.Name, Addr: e.GossipAddr, Meta: e.metaBytes, JoinedAt: e.joinedAt})
		}
	}
	for n, t := range c.tombstones {
		st.Forgotten = append(st.Forgotten, tombstone{Name: n, At: t})
	}
	return encodeGossipState(st)
}

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState(b []byte, _ bool) {
	st, err := decodeGossipState(b)
	if err != nil {
		d.c.logger.Warn("remote ring state", "err", err)
		return
	}
	d.c.merge(st)
}

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.c.onAlive(n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.c.onAlive(n) }

// NotifyLeave implements memberlist.EventDelegate. memberlist does not tell
// a graceful leave from a failure here (Node.State is not set), so the
// member's own last state decides: a member that announced leaving owns
// nothing and is removed (and tombstoned, so nodes that missed it drop it
// too); any other member is kept as dead and keeps its partitions until it
// returns or is forgotten.
func (d *delegate) NotifyLeave(n *memberlist.Node) {
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	e, ok := c.table[n.Name]
	if !ok {
		return
	}
	e.Healthy = false
	if e.State == StateLeaving {
		c.logger.Info("member left", "member", n.Name)
		c.applyTombstoneLocked(n.Name, time.Now())
		return
	}
	c.logger.Warn("member failed; it keeps its partitions until it returns or is forgotten", "member", n.Name, "state", e.State)
	c.changedLocked()
}

// AckPayload implements memberlist.PingDelegate.
func (d *delegate) AckPayload() []byte { return nil }

// NotifyPingComplete implements memberlist.PingDelegate: a heartbeat.
func (d *delegate) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	c := d.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.table[other.Name]; ok {
		e.LastHeartbeat = time.Now()
	}
}

func (c *Cluster) onAlive(n *memberlist.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.setAliveLocked(n, time.Now())
}

// merge applies a remote node's dead members and tombstones.
func (c *Cluster) merge(st gossipState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	now := time.Now()
	for _, t := range st.Forgotten {
		if now.Sub(t.At) <= c.cfg.ForgetRetention {
			c.applyTombstoneLocked(t.Name, t.At)
		}
	}
	changed := false
	for _, dm := range st.Dead {
		if _, ok := c.table[dm.Name]; ok {
			continue // alive here (memberlist knows better) or already dead
		}
		if t, ok := c.tombstones[dm.Name]; ok && !dm.JoinedAt.After(t) {
			continue
		}
		e := &entry{joinedAt: dm.JoinedAt}
		e.Name = dm.Name
		e.GossipAddr = dm.Addr
		c.setMetaLocked(e, dm.Meta)
		c.table[dm.Name] = e
		changed = true
	}
	if changed {
		c.changedLocked()
	}
}

// gossipState is the ring's own gossip: member failures and forgets, sent
// in push/pull exchanges and (forgets) as broadcasts. JSON, version 1.
type gossipState struct {
	V         int          `json:"v"`
	Dead      []deadMember `json:"dead,omitempty"`
	Forgotten []tombstone  `json:"forgotten,omitempty"`
}

type deadMember struct {
	Name     string    `json:"name"`
	Addr     string    `json:"addr"`
	Meta     []byte    `json:"meta"`
	JoinedAt time.Time `json:"joined_at"`
}

type tombstone struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

const (
	gossipStateVersion = 1
	maxGossipState     = 4 << 20
	maxNameLen         = 512
)

func encodeGossipState(st gossipState) []byte {
	st.V = gossipStateVersion
	slices.SortFunc(st.Dead, func(a, b deadMember) int { return compareStrings(a.Name, b.Name) })
	slices.SortFunc(st.Forgotten, func(a, b tombstone) int { return compareStrings(a.Name, b.Name) })
	b, _ := json.Marshal(st) // plain structs: cannot fail
	return b
}

// decodeGossipState parses state from another node; it does not retain b.
func decodeGossipState(b []byte) (gossipState, error) {
	var st gossipState
	if len(b) > maxGossipState {
		return st, fmt.Errorf("decode ring state: %d bytes: %w", len(b), ErrBadMeta)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return gossipState{}, fmt.Errorf("decode ring state: %w", err)
	}
	if st.V != gossipStateVersion {
		return gossipState{}, fmt.Errorf("decode ring state: version %d: %w", st.V, ErrBadMeta)
	}
	for _, d := range st.Dead {
		if d.Name == "" || len(d.Name) > maxNameLen || len(d.Meta) > MaxMetaSize {
			return gossipState{}, fmt.Errorf("decode ring state: dead member %.64q: %w", d.Name, ErrBadMeta)
		}
	}
	for _, t := range st.Forgotten {
		if t.Name == "" || len(t.Name) > maxNameLen {
			return gossipState{}, fmt.Errorf("decode ring state: tombstone %.64q: %w", t.Name, ErrBadMeta)
		}
	}
	return st, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// broadcast is a forget message in memberlist's broadcast queue.
type broadcast []byte

func (b broadcast) Invalidates(memberlist.Broadcast) bool { return false }
func (b broadcast) Message() []byte                       { return b }
func (b broadcast) Finished()                             {}

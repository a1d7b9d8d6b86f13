package ring

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Ring is what users of ownership and membership need.
//
// All methods are safe for concurrent use and never block on the network.
// Returned slices and Members are copies owned by the caller.
type Ring interface {
	// Owners returns the n members of role that own key: the owner of the
	// key's partition first, then its successors. Only active members own
	// keys; dead (unhealthy) members keep owning theirs until forgotten, so
	// callers check Member.Healthy. Fewer than n active members is
	// ErrInsufficientMembers.
	Owners(role Role, key []byte, n int) ([]Member, error)
	// PartitionOwners is Owners for a partition number (see Partition).
	PartitionOwners(role Role, partition, n int) ([]Member, error)
	// Partition returns the partition of key; it depends only on the
	// configured partition count, never on the members.
	Partition(key []byte) int
	// Partitions returns the configured partition count.
	Partitions() int
	// Members returns every known member with role, in any state and
	// health, sorted by name.
	Members(role Role) []Member
	// Subscribe returns a channel that receives a value after the member
	// table changed (changes are coalesced: capacity 1, non-blocking send).
	// The channel is closed by Close. Call it once per consumer.
	Subscribe() <-chan struct{}
}

var _ Ring = (*Cluster)(nil)

// Member is one member as seen by the local node.
type Member struct {
	Name       string `json:"name"`
	GossipAddr string `json:"gossip_address"`
	MemberMeta
	// Healthy is false once the failure detector declared the member dead.
	Healthy bool `json:"healthy"`
	// LastHeartbeat is when the local node last heard from the member (an
	// acked probe or a gossip update). In Owners results it is as of the
	// last change of the member table.
	LastHeartbeat time.Time `json:"last_heartbeat"`
	// MetaError says why the member's metadata could not be decoded (then
	// it has no roles).
	MetaError string `json:"meta_error,omitempty"`
}

// entry is the local table's record of a member.
type entry struct {
	Member
	joinedAt  time.Time // when last seen alive after being absent or dead
	metaBytes []byte
}

// Cluster is the local node's membership and ownership view. Create with
// New, run with Run; all methods are safe for concurrent use.
type Cluster struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
	// gossipAddr is the local node's advertised gossip host:port.
	gossipAddr string

	snap   atomic.Pointer[snapshot] // immutable; replaced on every table change
	joined chan struct{}            // closed once Run reached a seed (or had none)
	size   atomic.Int64             // members in the table

	mu         sync.Mutex // protects the fields below
	local      MemberMeta
	table      map[string]*entry
	tombstones map[string]time.Time // forgotten or gracefully left name -> when
	subs       []chan struct{}
	closed     bool
	status     map[string]func() any // AddStatus

	// lifeMu orders the calls into memberlist that must not follow
	// Shutdown (UpdateNode, Leave; memberlist panics on a leave after
	// shutdown). Taken before mu.
	lifeMu   sync.Mutex
	shutdown bool // protected by lifeMu
}

// New creates the local member and binds the gossip listener; Run joins
// the seeds. The node announces cfg's roles and initial state.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	local, err := cfg.meta()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		joined:     make(chan struct{}),
		cfg:        cfg,
		logger:     logger.With("component", "ring"),
		metrics:    m,
		local:      local,
		table:      map[string]*entry{},
		tombstones: map[string]time.Time{},
	}
	c.snap.Store(buildSnapshot(nil, cfg, nil))
	c.queue = &memberlist.TransmitLimitedQueue{NumNodes: c.numNodes, RetransmitMult: 4}

	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if cfg.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort
	}
	mc.GossipInterval = cfg.GossipInterval
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.PushPullInterval = cfg.PushPullInterval
	mc.SuspicionMult = cfg.SuspicionMult
	mc.DeadNodeReclaimTime = cfg.DeadNodeReclaimTime
	d := &delegate{c: c}
	mc.Delegate = d
	mc.Events = d
	mc.Ping = d
	mc.Logger = log.New(&logWriter{logger: c.logger}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start memberlist on %s: %w", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.BindPort)), err)
	}
	// The local node's address, read before anything can update it
	// (memberlist mutates its Node in place).
	ln := ml.LocalNode()
	c.gossipAddr = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
	c.mu.Lock()
	c.ml = ml
	c.mu.Unlock()
	return c, nil
}

// numNodes is the broadcast queue's cluster size; it must not take c.mu
// (the queue is used with c.mu held).
func (c *Cluster) numNodes() int { return max(int(c.size.Load()), 1) }

// Run joins the seeds (retrying every JoinRetryPeriod until one answers)
// and keeps the membership until ctx ends; then it leaves the cluster
// gracefully (memberlist Leave, so others drop this member at once) and
// closes. Changing the state to leaving before, and handing off data, is
// the caller's job.
func (c *Cluster) Run(ctx context.Context) error {
	defer c.Close()
	join := c.cfg.Join
	if len(c.cfg.JoinEtcd) > 0 {
		seeds, err := c.seedsFromEtcd(ctx)
		if err != nil {
			return err
		}
		join = append(slices.Clone(join), seeds...)
	}
	if len(join) > 0 {
		for {
			n, err := c.ml.Join(join)
			if err == nil || n > 0 {
				c.logger.Info("joined the cluster", "seeds_reached", n, "members", c.ml.NumMembers())
				break
			}
			c.logger.Warn("join the cluster", "seeds", strings.Join(join, ","), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(c.cfg.JoinRetryPeriod):
			}
		}
	}
	close(c.joined)
	prune := time.NewTicker(min(time.Minute, c.cfg.ForgetRetention/4+time.Millisecond))
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			c.leave()
			return nil
		case <-prune.C:
			c.mu.Lock()
			c.pruneTombstonesLocked(time.Now())
			c.mu.Unlock()
		}
	}
}

// seedsFromEtcd publishes this node's gossip address in etcd and returns
// the others'. The client lives as long as Run (it keeps the lease alive).
func (c *Cluster) seedsFromEtcd(ctx context.Context) ([]string, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.cfg.JoinEtcd, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client for seeds %v: %w", c.cfg.JoinEtcd, err)
	}
	context.AfterFunc(ctx, func() { cli.Close() })
	self := c.gossipAddr
	for {
		seeds, bad, err := etcdSeeds(ctx, cli, c.cfg.EtcdPrefix, c.cfg.NodeName, self)
		if err == nil {
			for _, b := range bad {
				c.logger.Warn("ignoring a seed in etcd", "entry", b)
			}
			c.logger.Info("published gossip address in etcd", "address", self, "seeds", strings.Join(seeds, ","))
			return seeds, nil
		}
		c.logger.Warn("seeds from etcd", "endpoints", strings.Join(c.cfg.JoinEtcd, ","), "err", err)
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(c.cfg.JoinRetryPeriod):
		}
	}
}

// leave announces state leaving (so that every node, including those that
// miss the leave message and only see the member die, drops it) and then
// leaves memberlist.
func (c *Cluster) leave() {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.shutdown {
		return
	}
	if err := c.setStateLocked(StateLeaving); err != nil {
		c.logger.Warn("announce leaving", "err", err)
	}
	if err := c.ml.Leave(c.cfg.LeaveTimeout); err != nil {
		c.logger.Warn("leave the cluster", "err", err)
	}
}

// Close stops gossiping without leaving (others will see this member die)
// and closes the Subscribe channels. It is safe to call more than once.
func (c *Cluster) Close() error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if c.shutdown {
		return nil
	}
	c.shutdown = true
	c.mu.Lock()
	c.closed = true
	for _, s := range c.subs {
		close(s)
	}
	c.subs = nil
	c.mu.Unlock()
	if err := c.ml.Shutdown(); err != nil {
		return fmt.Errorf("shut down memberlist: %w", err)
	}
	return nil
}

// Joined is closed once Run has joined a seed (memberlist then holds the
// seed's full member table) or found no seeds to join.
func (c *Cluster) Joined() <-chan struct{} { return c.joined }

// LocalName is this node's member name.
func (c *Cluster) LocalName() string { return c.cfg.NodeName }

// SetState changes the local node's state and gossips it. It blocks until
// the update was broadcast or the leave timeout passed; either way the new
// state is in effect locally and spreads to the other nodes.
func (c *Cluster) SetState(s State) error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	return c.setStateLocked(s)
}

// setStateLocked is SetState with c.lifeMu held.
func (c *Cluster) setStateLocked(s State) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	next := c.local
	next.State = s
	if err := next.Validate(); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("set state: %w", err)
	}
	c.local = next
	c.mu.Unlock()
	// UpdateNode only fails when its broadcast was not sent to enough nodes
	// within the timeout (metadata size is checked above). The new state is
	// already ours and still spreads by gossip and push/pull, so a slow
	// broadcast is logged, not returned.
	if err := c.ml.UpdateNode(c.cfg.LeaveTimeout); err != nil {
		c.logger.Warn("gossip state change slowly", "state", s, "err", err)
	}
	return nil
}

// Forget removes a dead member from the table of every node: its
// partitions move to the other members. Alive members cannot be forgotten
// (ErrMemberAlive); they leave by themselves. Forget does not block.
func (c *Cluster) Forget(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	e, ok := c.table[name]
	if !ok {
		return fmt.Errorf("forget %q: %w", name, ErrNoSuchMember)
	}
	if e.Healthy {
		return fmt.Errorf("forget %q: %w", name, ErrMemberAlive)
	}
	now := time.Now()
	c.applyTombstoneLocked(name, now)
	c.queue.QueueBroadcast(broadcast(encodeGossipState(gossipState{Forgotten: []tombstone{{Name: name, At: now}}})))
	c.logger.Info("forgot member", "member", name)
	return nil
}

// Owners implements Ring.
func (c *Cluster) Owners(role Role, key []byte, n int) ([]Member, error) {
	return c.PartitionOwners(role, c.Partition(key), n)
}

// Partition implements Ring.
func (c *Cluster) Partition(key []byte) int { return Partition(key, c.cfg.Partitions) }

// Partitions implements Ring.
func (c *Cluster) Partitions() int { return c.cfg.Partitions }

// PartitionOwners implements Ring.
func (c *Cluster) PartitionOwners(role Role, partition, n int) ([]Member, error) {
	s := c.snap.Load()
	r := s.rings[role]
	if r == nil {
		return nil, fmt.Errorf("owners of role %s: %w", role, ErrUnknownRole)
	}
	names, err := r.partitionOwners(partition, n)
	if err != nil {
		return nil, fmt.Errorf("owners of role %s: %w", role, err)
	}
	out := make([]Member, len(names))
	for i, name := range names {
		out[i] = s.members[s.byName[name]]
	}
	return out, nil
}

// Members implements Ring.
func (c *Cluster) Members(role Role) []Member {
	s := c.snap.Load()
	var out []Member
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range s.members {
		if !m.Roles.Has(role) {
			continue
		}
		if e, ok := c.table[m.Name]; ok {
			m.LastHeartbeat = e.LastHeartbeat
		}
		out = append(out, m)
	}
	return out
}

// AllMembers returns every member regardless of role (members without a
// decodable role included), sorted by name, as a copy.
func (c *Cluster) AllMembers() []Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Member, 0, len(c.table))
	for _, e := range c.table {
		out = append(out, e.Member)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PartitionsOwned returns how many partitions of role's ring each active
// member owns (a new map owned by the caller).
func (c *Cluster) PartitionsOwned(role Role) map[string]int {
	out := map[string]int{}
	if r := c.snap.Load().rings[role]; r != nil {
		for n, p := range r.partitions {
			out[n] = p
		}
	}
	return out
}

// Subscribe implements Ring.
func (c *Cluster) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		close(ch)
		return ch
	}
	c.subs = append(c.subs, ch)
	return ch
}

// changedLocked rebuilds the snapshot from the table and notifies
// subscribers. Called with c.mu held after every table change.
func (c *Cluster) changedLocked() {
	members := make([]Member, 0, len(c.table))
	for _, e := range c.table {
		members = append(members, e.Member)
	}
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	s := buildSnapshot(members, c.cfg, c.snap.Load())
	c.snap.Store(s)
	c.size.Store(int64(len(members)))
	c.metrics.update(s, c.cfg.NodeName)
	if c.closed {
		return
	}
	for _, ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// setAliveLocked records a member seen alive with the given metadata.
func (c *Cluster) setAliveLocked(n *memberlist.Node, now time.Time) {
	e, ok := c.table[n.Name]
	if !ok {
		e = &entry{}
		c.table[n.Name] = e
	}
	if !ok || !e.Healthy {
		e.joinedAt = now
	}
	e.Name = n.Name
	e.GossipAddr = n.Address()
	e.Healthy = true
	e.LastHeartbeat = now
	c.setMetaLocked(e, n.Meta)
	c.changedLocked()
}

func (c *Cluster) setMetaLocked(e *entry, meta []byte) {
	e.metaBytes = slices.Clone(meta)
	m, err := DecodeMemberMeta(meta)
	e.MemberMeta = m
	e.MetaError = ""
	if err != nil {
		e.MetaError = err.Error()
		c.logger.Warn("member metadata", "member", e.Name, "err", err)
	}
}

// applyTombstoneLocked records that name was forgotten (or left) at t and
// drops its entry if it is dead and joined before t.
func (c *Cluster) applyTombstoneLocked(name string, t time.Time) {
	if old, ok := c.tombstones[name]; !ok || t.After(old) {
		c.tombstones[name] = t
	}
	if e, ok := c.table[name]; ok && !e.Healthy && !e.joinedAt.After(t) {
		delete(c.table, name)
		c.changedLocked()
	}
}

func (c *Cluster) pruneTombstonesLocked(now time.Time) {
	for n, t := range c.tombstones {
		if now.Sub(t) > c.cfg.ForgetRetention {
			delete(c.tombstones, n)
		}
	}
}

// logWriter sends memberlist's log lines to slog at the level they carry.
type logWriter struct{ logger *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelDebug
	for prefix, l := range map[string]slog.Level{"[ERR]": slog.LevelError, "[WARN]": slog.LevelWarn, "[INFO]": slog.LevelInfo} {
		if strings.HasPrefix(line, prefix) {
			level = l
		}
	}
	w.logger.Log(context.Background(), level, line)
	return len(p), nil
}

package ring

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// Config configures membership (memberlist.*) and ownership (ring.*).
type Config struct {
	// Membership (memberlist).
	NodeName            string        `yaml:"node_name"`
	BindAddr            string        `yaml:"bind_addr"`
	BindPort            int           `yaml:"bind_port"`
	AdvertiseAddr       string        `yaml:"advertise_addr"`
	AdvertisePort       int           `yaml:"advertise_port"`
	Join                []string      `yaml:"join"`
	JoinEtcd            []string      `yaml:"join_etcd"`
	EtcdPrefix          string        `yaml:"etcd_prefix"`
	JoinRetryPeriod     time.Duration `yaml:"join_retry_period"`
	LeaveTimeout        time.Duration `yaml:"leave_timeout"`
	GossipInterval      time.Duration `yaml:"gossip_interval"`
	ProbeInterval       time.Duration `yaml:"probe_interval"`
	ProbeTimeout        time.Duration `yaml:"probe_timeout"`
	PushPullInterval    time.Duration `yaml:"push_pull_interval"`
	SuspicionMult       int           `yaml:"suspicion_mult"`
	DeadNodeReclaimTime time.Duration `yaml:"dead_node_reclaim_time"`

	// What this node announces (ring).
	Roles        []string `yaml:"roles"`
	GRPCAddr     string   `yaml:"grpc_address"`
	HTTPAddr     string   `yaml:"http_address"`
	Zone         string   `yaml:"zone"`
	InitialState string   `yaml:"initial_state"`

	// Ownership (ring).
	Partitions      int           `yaml:"partitions"`
	VirtualNodes    int           `yaml:"virtual_nodes"`
	LoadFactor      float64       `yaml:"load_factor"`
	ForgetRetention time.Duration `yaml:"forget_retention"`
}

// DefaultConfig returns a complete, working configuration for a LAN.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "vigil"
	}
	return Config{
		NodeName:            host,
		BindAddr:            "0.0.0.0",
		BindPort:            7946,
		JoinRetryPeriod:     5 * time.Second,
		LeaveTimeout:        5 * time.Second,
		GossipInterval:      200 * time.Millisecond,
		ProbeInterval:       time.Second,
		ProbeTimeout:        500 * time.Millisecond,
		PushPullInterval:    30 * time.Second,
		SuspicionMult:       4,
		DeadNodeReclaimTime: 0,
		InitialState:        StateJoining.String(),
		EtcdPrefix:          "/vigil/members/",
		Partitions:          1021,
		VirtualNodes:        200,
		LoadFactor:          1.25,
		ForgetRetention:     24 * time.Hour,
	}
}

type stringList struct{ p *[]string }

func (s stringList) String() string {
	if s.p == nil {
		return ""
	}
	return strings.Join(*s.p, ",")
}

func (s stringList) Set(v string) error {
	*s.p = nil
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*s.p = append(*s.p, f)
		}
	}
	return nil
}

// RegisterFlags registers the -memberlist.* and -ring.* flags with the
// values in c as defaults (call on a DefaultConfig()).
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.NodeName, "memberlist.node-name", c.NodeName, "Unique name of this node in the gossip cluster.")
	f.StringVar(&c.BindAddr, "memberlist.bind-addr", c.BindAddr, "Address to bind the gossip listener (TCP and UDP) to.")
	f.IntVar(&c.BindPort, "memberlist.bind-port", c.BindPort, "Port of the gossip listener (TCP and UDP).")
	f.StringVar(&c.AdvertiseAddr, "memberlist.advertise-addr", c.AdvertiseAddr, "Address other nodes use to reach this one (default: derived from the bind address).")
	f.IntVar(&c.AdvertisePort, "memberlist.advertise-port", c.AdvertisePort, "Port other nodes use to reach this one (default: the bind port).")
	f.Var(stringList{&c.Join}, "memberlist.join", "Comma-separated host:port seeds to join.")
	f.Var(stringList{&c.JoinEtcd}, "memberlist.join-etcd", "Comma-separated etcd endpoints: publish this node's gossip address there (under a lease) and join the addresses other nodes published, besides -memberlist.join.")
	f.StringVar(&c.EtcdPrefix, "memberlist.etcd-prefix", c.EtcdPrefix, "etcd key prefix of the published gossip addresses.")
	f.DurationVar(&c.JoinRetryPeriod, "memberlist.join-retry-period", c.JoinRetryPeriod, "How often to retry joining the seeds until one answers.")
	f.DurationVar(&c.LeaveTimeout, "memberlist.leave-timeout", c.LeaveTimeout, "How long to wait for the leave message to spread on shutdown.")
	f.DurationVar(&c.GossipInterval, "memberlist.gossip-interval", c.GossipInterval, "Interval between gossip rounds.")
	f.DurationVar(&c.ProbeInterval, "memberlist.probe-interval", c.ProbeInterval, "Interval between failure-detector probes.")
	f.DurationVar(&c.ProbeTimeout, "memberlist.probe-timeout", c.ProbeTimeout, "Timeout of one probe.")
	f.DurationVar(&c.PushPullInterval, "memberlist.push-pull-interval", c.PushPullInterval, "Interval between full state exchanges with a random node.")
	f.IntVar(&c.SuspicionMult, "memberlist.suspicion-mult", c.SuspicionMult, "Multiplier of the suspicion timeout before a silent node is declared dead.")
	f.DurationVar(&c.DeadNodeReclaimTime, "memberlist.dead-node-reclaim-time", c.DeadNodeReclaimTime, "After this long a dead node's name may be reused from another address (0: never).")
	f.Var(stringList{&c.Roles}, "ring.roles", "Comma-separated roles this node announces: ingester, distributor, querier, collector, ruler.")
	f.StringVar(&c.GRPCAddr, "ring.grpc-address", c.GRPCAddr, "gRPC host:port this node announces.")
	f.StringVar(&c.HTTPAddr, "ring.http-address", c.HTTPAddr, "HTTP host:port this node announces.")
	f.StringVar(&c.Zone, "ring.zone", c.Zone, "Availability zone this node announces.")
	f.StringVar(&c.InitialState, "ring.initial-state", c.InitialState, "State announced at start: joining or active.")
	f.IntVar(&c.Partitions, "ring.partitions", c.Partitions, "Number of ring partitions (a prime spreads keys best). All nodes must agree.")
	f.IntVar(&c.VirtualNodes, "ring.virtual-nodes", c.VirtualNodes, "Points on the hash circle per member. All nodes must agree.")
	f.Float64Var(&c.LoadFactor, "ring.load-factor", c.LoadFactor, "Bounded load: no member owns more than this times the mean partitions. All nodes must agree.")
	f.DurationVar(&c.ForgetRetention, "ring.forget-retention", c.ForgetRetention, "How long a forgotten member's tombstone is kept and gossiped.")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("memberlist.node-name is empty"))
	}
	if c.BindPort < 0 || c.BindPort > 65535 || c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		errs = append(errs, errors.New("memberlist ports must be in 0..65535"))
	}
	for name, d := range map[string]time.Duration{
		"memberlist.join-retry-period": c.JoinRetryPeriod, "memberlist.leave-timeout": c.LeaveTimeout,
		"memberlist.gossip-interval": c.GossipInterval, "memberlist.probe-interval": c.ProbeInterval,
		"memberlist.probe-timeout": c.ProbeTimeout, "memberlist.push-pull-interval": c.PushPullInterval,
		"ring.forget-retention": c.ForgetRetention,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %s", name, d))
		}
	}
	if len(c.JoinEtcd) > 0 && !strings.HasSuffix(c.EtcdPrefix, "/") {
		errs = append(errs, fmt.Errorf("memberlist.etcd-prefix %q must end with /", c.EtcdPrefix))
	}
	if c.SuspicionMult < 1 {
		errs = append(errs, fmt.Errorf("memberlist.suspicion-mult must be at least 1, got %d", c.SuspicionMult))
	}
	if _, err := c.meta(); err != nil {
		errs = append(errs, err)
	}
	if st, err := ParseState(c.InitialState); err == nil && st == StateLeaving {
		errs = append(errs, errors.New("ring.initial-state cannot be leaving"))
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("ring.partitions must be at least 1, got %d", c.Partitions))
	}
	if c.VirtualNodes < 1 {
		errs = append(errs, fmt.Errorf("ring.virtual-nodes must be at least 1, got %d", c.VirtualNodes))
	}
	// Below 1 consistent cannot place every partition (it panics).
	if c.LoadFactor < 1 {
		errs = append(errs, fmt.Errorf("ring.load-factor must be at least 1, got %g", c.LoadFactor))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid ring config: %w", err)
	}
	return nil
}

// meta builds the local node's initial metadata from the config.
func (c Config) meta() (MemberMeta, error) {
	roles, err := ParseRoles(strings.Join(c.Roles, ","))
	if err != nil {
		return MemberMeta{}, fmt.Errorf("ring.roles: %w", err)
	}
	st, err := ParseState(c.InitialState)
	if err != nil {
		return MemberMeta{}, fmt.Errorf("ring.initial-state: %w", err)
	}
	m := MemberMeta{Roles: roles, State: st, GRPCAddr: c.GRPCAddr, HTTPAddr: c.HTTPAddr, Zone: c.Zone}
	if _, err := m.Encode(); err != nil {
		return MemberMeta{}, err
	}
	return m, nil
}

package ring

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Role is one job a member does. A member may have several (Roles).
type Role uint8

// Roles known to format version 1 of the metadata.
const (
	RoleIngester    Role = 1 << 0
	RoleDistributor Role = 1 << 1
	RoleQuerier     Role = 1 << 2
	RoleCollector   Role = 1 << 3
	RoleRuler       Role = 1 << 4

	knownRoles = RoleIngester | RoleDistributor | RoleQuerier | RoleCollector | RoleRuler
)

// AllRoles lists the roles in a fixed order (for pages and metrics).
var AllRoles = []Role{RoleIngester, RoleDistributor, RoleQuerier, RoleCollector, RoleRuler}

var roleNames = map[Role]string{
	RoleIngester:    "ingester",
	RoleDistributor: "distributor",
	RoleQuerier:     "querier",
	RoleCollector:   "collector",
	RoleRuler:       "ruler",
}

func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole parses one role name ("ingester", ...).
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if n == s {
			return r, nil
		}
	}
	return 0, fmt.Errorf("parse role %q: %w", s, ErrUnknownRole)
}

// Roles is a set of roles.
type Roles uint8

// Has reports whether r is in the set.
func (rs Roles) Has(r Role) bool { return rs&Roles(r) != 0 }

// List returns the roles in the set in AllRoles order.
func (rs Roles) List() []Role {
	var out []Role
	for _, r := range AllRoles {
		if rs.Has(r) {
			out = append(out, r)
		}
	}
	return out
}

func (rs Roles) String() string {
	var names []string
	for _, r := range rs.List() {
		names = append(names, r.String())
	}
	return strings.Join(names, ",")
}

// ParseRoles parses a comma-separated list of role names.
func ParseRoles(s string) (Roles, error) {
	var rs Roles
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, err := ParseRole(f)
		if err != nil {
			return 0, err
		}
		rs |= Roles(r)
	}
	return rs, nil
}

// State is a member's own lifecycle state. Only StateActive members own keys.
type State uint8

// Member states (values are part of the metadata format).
const (
	StateJoining State = 1
	StateActive  State = 2
	StateLeaving State = 3
)

// AllStates lists the states in lifecycle order.
var AllStates = []State{StateJoining, StateActive, StateLeaving}

func (s State) String() string {
	switch s {
	case StateJoining:
		return "joining"
	case StateActive:
		return "active"
	case StateLeaving:
		return "leaving"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// ParseState parses "joining", "active" or "leaving".
func ParseState(s string) (State, error) {
	for _, st := range AllStates {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("parse state %q: %w", s, ErrUnknownState)
}

// Limits of the metadata format (docs/ring.md).
const (
	MetaVersion    = 1
	MaxMetaSize    = 512 // memberlist.MetaMaxSize
	maxAddrLen     = 200
	maxZoneLen     = 64
	metaHeaderSize = 3
)

// MemberMeta is what each member gossips about itself.
type MemberMeta struct {
	Roles    Roles  `json:"-"` // shown as names on /ring
	State    State  `json:"-"` // shown as a name on /ring
	GRPCAddr string `json:"grpc_address"`
	HTTPAddr string `json:"http_address"`
	Zone     string `json:"zone"`
}

// Validate checks the fields against the format's limits.
func (m MemberMeta) Validate() error {
	if m.Roles&^Roles(knownRoles) != 0 {
		return fmt.Errorf("roles %#x: %w", uint8(m.Roles), ErrUnknownRole)
	}
	if m.State < StateJoining || m.State > StateLeaving {
		return fmt.Errorf("state %d: %w", m.State, ErrUnknownState)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"grpc address", m.GRPCAddr, maxAddrLen}, {"http address", m.HTTPAddr, maxAddrLen}, {"zone", m.Zone, maxZoneLen}} {
		if len(f.v) > f.max {
			return fmt.Errorf("%s is %d bytes, more than %d: %w", f.name, len(f.v), f.max, ErrBadMeta)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("%s is not UTF-8: %w", f.name, ErrBadMeta)
		}
	}
	return nil
}

// Encode returns the version-1 binary form (docs/ring.md).
func (m MemberMeta) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode member metadata: %w", err)
	}
	b := make([]byte, 0, metaHeaderSize+3*binary.MaxVarintLen16+len(m.GRPCAddr)+len(m.HTTPAddr)+len(m.Zone))
	b = append(b, MetaVersion, byte(m.Roles), byte(m.State))
	for _, s := range []string{m.GRPCAddr, m.HTTPAddr, m.Zone} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("encode member metadata: %d bytes, more than %d: %w", len(b), MaxMetaSize, ErrBadMeta)
	}
	return b, nil
}

// DecodeMemberMeta parses metadata gossiped by another member. It never
// panics and does not retain b.
func DecodeMemberMeta(b []byte) (MemberMeta, error) {
	var m MemberMeta
	if len(b) > MaxMetaSize {
		return m, fmt.Errorf("decode member metadata: %d bytes, more than %d: %w", len(b), MaxMetaSize, ErrBadMeta)
	}
	if len(b) < metaHeaderSize {
		return m, fmt.Errorf("decode member metadata: %d bytes, need at least %d: %w", len(b), metaHeaderSize, ErrBadMeta)
	}
	version := b[0]
	if version == 0 {
		return m, fmt.Errorf("decode member metadata: version 0: %w", ErrBadMeta)
	}
	m.Roles = Roles(b[1])
	if version > MetaVersion {
		m.Roles &= Roles(knownRoles) // later versions may add roles we cannot serve
	}
	m.State = State(b[2])
	rest := b[metaHeaderSize:]
	fields := []*string{&m.GRPCAddr, &m.HTTPAddr, &m.Zone}
	for i, f := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || k != len(binary.AppendUvarint(nil, n)) { // also refuse non-minimal lengths
			return MemberMeta{}, fmt.Errorf("decode member metadata: field %d: bad length: %w", i, ErrBadMeta)
		}
		rest = rest[k:]
		if n > uint64(len(rest)) {
			return MemberMeta{}, fmt.Errorf("decode member metadata: field %d: length %d beyond end: %w", i, n, ErrBadMeta)
		}
		*f = string(rest[:n])
		rest = rest[n:]
	}
	if version == MetaVersion && len(rest) != 0 {
		return MemberMeta{}, fmt.Errorf("decode member metadata: %d trailing bytes: %w", len(rest), ErrBadMeta)
	}
	if err := m.Validate(); err != nil {
		return MemberMeta{}, fmt.Errorf("decode member metadata: %w", err)
	}
	return m, nil
}

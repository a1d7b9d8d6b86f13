package ring

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestMemberMetaRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		meta MemberMeta
	}{
		{"empty addresses", MemberMeta{Roles: Roles(RoleIngester), State: StateJoining}},
		{"all fields", MemberMeta{Roles: Roles(RoleIngester | RoleQuerier), State: StateActive, GRPCAddr: "10.0.0.1:9095", HTTPAddr: "10.0.0.1:9009", Zone: "eu-west-1a"}},
		{"every role", MemberMeta{Roles: Roles(knownRoles), State: StateLeaving, GRPCAddr: "[::1]:9095"}},
		{"no role", MemberMeta{State: StateActive}},
		{"longest fields", MemberMeta{Roles: Roles(RoleRuler), State: StateActive, GRPCAddr: strings.Repeat("g", maxAddrLen), HTTPAddr: strings.Repeat("h", maxAddrLen), Zone: strings.Repeat("z", maxZoneLen)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.meta.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxMetaSize {
				t.Fatalf("encoded %d bytes", len(b))
			}
			got, err := DecodeMemberMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.meta {
				t.Fatalf("got %+v, want %+v", got, tt.meta)
			}
		})
	}
}

func TestMemberMetaErrors(t *testing.T) {
	good, err := MemberMeta{Roles: Roles(RoleIngester), State: StateActive, GRPCAddr: "a:1", HTTPAddr: "a:2", Zone: "z"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"nil", nil, ErrBadMeta},
		{"short", good[:2], ErrBadMeta},
		{"version 0", mod(func(b []byte) []byte { b[0] = 0; return b }), ErrBadMeta},
		{"unknown role bit in v1", mod(func(b []byte) []byte { b[1] |= 0x80; return b }), ErrUnknownRole},
		{"state 0", mod(func(b []byte) []byte { b[2] = 0; return b }), ErrUnknownState},
		{"state 4", mod(func(b []byte) []byte { b[2] = 4; return b }), ErrUnknownState},
		{"truncated field", good[:len(good)-1], ErrBadMeta},
		{"length beyond end", mod(func(b []byte) []byte { b[3] = 100; return b }), ErrBadMeta},
		{"bad varint", append([]byte{1, 1, 2}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), ErrBadMeta},
		{"trailing bytes in v1", append(bytes.Clone(good), 0), ErrBadMeta},
		{"too large", make([]byte, MaxMetaSize+1), ErrBadMeta},
		{"invalid utf-8", []byte{1, 1, 2, 1, 0xff, 0, 0}, ErrBadMeta},
		{"zone too long", append([]byte{1, 1, 2, 0, 0, maxZoneLen + 1}, bytes.Repeat([]byte("z"), maxZoneLen+1)...), ErrBadMeta},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMemberMeta(tt.in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// A later format version keeps version 1 as its prefix: a v1 decoder reads
// it and ignores what it does not know, except an unknown state.
func TestMemberMetaLaterVersion(t *testing.T) {
	v2 := []byte{2, byte(RoleIngester) | 0x80, byte(StateActive), 3, 'a', ':', '1', 0, 1, 'z', 0xAA, 0xBB}
	got, err := DecodeMemberMeta(v2)
	if err != nil {
		t.Fatal(err)
	}
	want := MemberMeta{Roles: Roles(RoleIngester), State: StateActive, GRPCAddr: "a:1", Zone: "z"}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	v2[2] = 9
	if _, err := DecodeMemberMeta(v2); !errors.Is(err, ErrUnknownState) {
		t.Fatalf("unknown state in v2: got %v", err)
	}
}

func TestMemberMetaEncodeRejects(t *testing.T) {
	tests := []struct {
		name string
		meta MemberMeta
	}{
		{"no state", MemberMeta{Roles: Roles(RoleIngester)}},
		{"unknown role", MemberMeta{Roles: 0x40, State: StateActive}},
		{"address too long", MemberMeta{State: StateActive, GRPCAddr: strings.Repeat("a", maxAddrLen+1)}},
		{"zone too long", MemberMeta{State: StateActive, Zone: strings.Repeat("z", maxZoneLen+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.meta.Encode(); err == nil {
				t.Fatal("encoded an invalid record")
			}
		})
	}
}

func TestParseRoles(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Roles
		wantErr bool
	}{
		{"one", "ingester", Roles(RoleIngester), false},
		{"several with spaces", "ingester, querier,ruler", Roles(RoleIngester | RoleQuerier | RoleRuler), false},
		{"empty", "", 0, false},
		{"unknown", "ingester,storer", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRoles(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %v, %v", got, err)
			}
		})
	}
}

func FuzzMemberMeta(f *testing.F) {
	good, _ := MemberMeta{Roles: Roles(RoleIngester), State: StateActive, GRPCAddr: "a:1", HTTPAddr: "a:2", Zone: "z"}.Encode()
	f.Add(good)
	f.Add([]byte{2, 0xff, 2, 0, 0, 0, 1, 2, 3})
	f.Add([]byte{1, 1, 2, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMemberMeta(b)
		if err != nil {
			return
		}
		// Anything accepted re-encodes to a valid record that decodes the same.
		enc, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded %+v does not re-encode: %v", m, err)
		}
		m2, err := DecodeMemberMeta(enc)
		if err != nil || m2 != m {
			t.Fatalf("re-decode: %+v, %v; want %+v", m2, err, m)
		}
		if b[0] == MetaVersion && !bytes.Equal(enc, b) {
			t.Fatalf("version-1 record is not canonical: %x vs %x", b, enc)
		}
	})
}

func FuzzGossipState(f *testing.F) {
	f.Add(encodeGossipState(gossipState{Forgotten: []tombstone{{Name: "a"}}, Dead: []deadMember{{Name: "b", Meta: []byte{1, 1, 2, 0, 0, 0}}}}))
	f.Add([]byte(`{"v":1,"dead":[{"name":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeGossipState(b)
		if err != nil {
			return
		}
		for _, d := range st.Dead {
			if d.Name == "" || len(d.Meta) > MaxMetaSize {
				t.Fatalf("accepted bad dead member %+v", d)
			}
		}
	})
}

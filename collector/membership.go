package collector

import (
	"github.com/vigil-tsdb/vigil/ring"
)

// RingMembership is the collector role of a ring as a Membership: the
// active, healthy members with the collector role. A dead collector's
// targets move at once (it scrapes nothing; there is nothing to repair).
func RingMembership(r ring.Ring) Membership { return ringMembership{r} }

type ringMembership struct{ r ring.Ring }

func (m ringMembership) Collectors() []string {
	var out []string
	for _, mb := range m.r.Members(ring.RoleCollector) {
		if mb.Healthy && mb.State == ring.StateActive {
			out = append(out, mb.Name)
		}
	}
	return out
}

func (m ringMembership) URL(name string) string {
	for _, mb := range m.r.Members(ring.RoleCollector) {
		if mb.Name == name && mb.HTTPAddr != "" {
			return "http://" + mb.HTTPAddr
		}
	}
	return ""
}

// StaticMembership is a fixed set of collectors (the single node: itself).
type StaticMembership struct {
	Names []string
	URLs  map[string]string
}

// Collectors returns the names.
func (s StaticMembership) Collectors() []string { return append([]string(nil), s.Names...) }

// URL returns the URL of name from URLs.
func (s StaticMembership) URL(name string) string { return s.URLs[name] }

package collector

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
)

// FuzzAssign checks the invariants of Assign on arbitrary inputs: every
// target gets exactly one owner among the collectors; targets heavier than
// the cap have a collector of their own; the limit is the cap or a proven
// lower bound and is kept whenever the sufficient condition holds; the
// result does not depend on input order; given itself as prev it moves
// nothing; it does not panic on arbitrary prev entries.
//
// Inputs: the number of collectors, the first collector of the previous
// membership (names are c0, c1, …, so the two overlap as after joins and
// leaves), eps, targets as 3 bytes each (an ID byte — equal bytes are the
// same target — and a big-endian series count, 0 unknown, scaled up by
// the top bits so that a few targets are huge), and previous owners as one
// byte per target (a collector number, possibly unknown).
func FuzzAssign(f *testing.F) {
	f.Add(uint8(3), uint8(1), 0.25, []byte{1, 0, 10, 2, 0, 10, 3, 0x13, 0x88, 4, 0, 0}, []byte{0, 1, 2, 9})
	f.Add(uint8(2), uint8(0), 0.25, []byte{1, 0, 100, 2, 0, 100, 3, 0, 100}, []byte{})
	f.Add(uint8(5), uint8(2), 0.0, []byte{1, 0xff, 0xff, 2, 0x80, 0, 3, 0, 1, 4, 0, 1, 5, 0, 1, 6, 0, 1}, []byte{4, 4, 4, 4, 4, 4})
	f.Add(uint8(1), uint8(0), math.NaN(), []byte{7, 1, 1}, []byte{200})
	f.Add(uint8(20), uint8(3), 0.05, []byte{1, 0, 10, 1, 0, 20, 2, 0x40, 0, 3, 0x40, 0, 4, 0x40, 0, 5, 0, 50}, []byte{3, 5, 7})
	f.Fuzz(func(t *testing.T, ncoll, prevFirst uint8, eps float64, data, prevData []byte) {
		if len(data) > 3*512 { // IDs are one byte: 256 targets at most
			data = data[:3*512]
		}
		var names, prevNames []string
		for i := range int(ncoll) {
			names = append(names, fmt.Sprintf("c%d", i))
		}
		for i := int(prevFirst); i < int(prevFirst)+int(ncoll); i++ {
			prevNames = append(prevNames, fmt.Sprintf("c%d", i))
		}
		var targets []TargetLoad
		for i := 0; i+3 <= len(data); i += 3 {
			v := int(binary.BigEndian.Uint16(data[i+1:]))
			switch v >> 14 { // 1 in 4 up to 16 k, then ×64, ×4096
			case 2:
				v = (v & 0x3fff) << 6
			case 3:
				v = (v & 0x3fff) << 12
			}
			targets = append(targets, TargetLoad{ID: fmt.Sprintf("t%d", data[i]), Series: v})
		}
		garbage := map[string]string{}
		for i, b := range prevData {
			garbage[fmt.Sprintf("t%d", i)] = fmt.Sprintf("c%d", b)
		}
		o := newShardOracle(names, targets, eps)

		for _, prev := range []map[string]string{nil, garbage, Assign(prevNames, targets, garbage, eps)} {
			out, st := AssignStats(names, targets, prev, eps)
			checkShard(t, o, names, prev, out, st)

			rev := slices.Clone(targets)
			slices.Reverse(rev)
			rnames := slices.Clone(names)
			slices.Reverse(rnames)
			if again := Assign(rnames, rev, maps.Clone(prev), eps); !maps.Equal(again, out) {
				t.Fatalf("reversed input: %d owners differ", ownersDiffer(again, out))
			}
			if st.OverLimit {
				continue // best effort: stability is not promised
			}
			if again, st2 := AssignStats(names, targets, out, eps); st2.Moved != 0 || !maps.Equal(again, out) {
				t.Fatalf("prev = own result moved %d targets", st2.Moved)
			}
		}
	})
}

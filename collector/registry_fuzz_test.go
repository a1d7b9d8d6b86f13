package collector

import (
	"reflect"
	"testing"
)

// FuzzDecodeTarget feeds arbitrary etcd values to the decoder: it must never
// panic, and what it accepts must encode to normalized JSON that decodes to
// the same target and resolves without built-in defaults failing it twice
// differently. Seeds: testdata/fuzz/FuzzDecodeTarget.
func FuzzDecodeTarget(f *testing.F) {
	for _, s := range []string{
		`{"address":"10.0.0.7:9100"}`,
		"address: https://h.example/probe?target=x\nlabels: {rack: r1}\n",
		`{"address":"h:1","interval":"5s","timeout":"10s"}`,
		`{"address":"h:1","basic_auth":{"password":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tg, err := DecodeTarget(b)
		if err != nil {
			return
		}
		enc, err := EncodeTarget(tg)
		if err != nil {
			t.Fatalf("accepted target does not encode: %v (%+v)", err, tg)
		}
		again, err := DecodeTarget(enc)
		if err != nil {
			t.Fatalf("normalized value %s does not decode: %v", enc, err)
		}
		if !reflect.DeepEqual(again, tg) {
			t.Fatalf("round trip changed the target:\n%+v\n%+v", tg, again)
		}
		r1, err1 := Resolve(tg, nil)
		r2, err2 := Resolve(again, nil)
		if (err1 == nil) != (err2 == nil) || !reflect.DeepEqual(r1, r2) {
			t.Fatalf("resolution differs after the round trip: %v / %v", err1, err2)
		}
	})
}

package ingesterpb

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// FuzzPushRequest feeds arbitrary bytes to the ingester's push decoding
// (the gRPC codec, then ToSeries): it must never panic, and whatever it
// accepts must re-encode to a request that decodes to the same batch.
func FuzzPushRequest(f *testing.F) {
	seed := func(batch []model.Series) {
		b, err := Codec{}.Marshal(FromSeries(batch))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed([]model.Series{{Labels: labels.FromStrings("__name__", "up", "job", "node"), Samples: []model.Sample{{T: 1, V: 1}, {T: 2, V: 0}}}})
	seed([]model.Series{{Labels: labels.FromStrings("__name__", "a")}, {Labels: labels.FromStrings("z", "1", "__name__", "b"), Samples: []model.Sample{{T: -1, V: 2.5}}}})
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var req PushRequest
		if err := (Codec{}).Unmarshal(data, &req); err != nil {
			return
		}
		batch, err := ToSeries(&req)
		if err != nil {
			return
		}
		b, err := Codec{}.Marshal(FromSeries(batch))
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		var again PushRequest
		if err := (Codec{}).Unmarshal(b, &again); err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		batch2, err := ToSeries(&again)
		if err != nil || len(batch2) != len(batch) {
			t.Fatalf("round trip: %v, %d vs %d series", err, len(batch2), len(batch))
		}
		for i := range batch {
			if !labels.Equal(batch[i].Labels, batch2[i].Labels) || len(batch[i].Samples) != len(batch2[i].Samples) {
				t.Fatalf("series %d differs after round trip: %v vs %v", i, batch[i], batch2[i])
			}
		}
	})
}

package model

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

func TestLabelCodec(t *testing.T) {
	ls := labels.FromStrings("__name__", "up", "job", "node", "long", string(make([]byte, 300)))
	b := AppendLabels(nil, ls)
	if len(b) != EncodedLabelsSize(ls) {
		t.Fatalf("size %d, encoded %d", EncodedLabelsSize(ls), len(b))
	}
	var sb labels.ScratchBuilder
	got, err := DecodeLabels(b, &sb)
	if err != nil || !labels.Equal(got, ls) {
		t.Fatalf("got %v %v", got, err)
	}
	// The result must not alias the input buffer.
	for i := range b {
		b[i] = 'X'
	}
	if !labels.Equal(got, ls) {
		t.Fatalf("decoded labels changed with the buffer: %v", got)
	}
	for _, bad := range [][]byte{{5, 'a'}, {1, 'a', 9}, {0xff}} {
		if _, err := DecodeLabels(bad, &sb); err == nil {
			t.Errorf("DecodeLabels(%x) accepted garbage", bad)
		}
	}
}

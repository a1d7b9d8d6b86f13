package etcdwatch

import (
	"bytes"
	"context"
	"iter"
	"log/slog"
	"strings"
	"testing"
)

type testSnap struct {
	rev     int64
	invalid map[string]string
}

func (s testSnap) invalidKeys() iter.Seq2[string, string] {
	return func(yield func(string, string) bool) {
		for k, err := range s.invalid {
			if !yield(k, err) {
				return
			}
		}
	}
}

// TestDeliver: a receiver that does not keep up gets the newest snapshot,
// and an invalid key is logged once per new error.
func TestDeliver(t *testing.T) {
	var logs bytes.Buffer
	observed := 0
	w := &watcher[int, testSnap]{
		o: Options[int, testSnap]{
			Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
			InvalidMsg: "skipping invalid key",
			Invalid:    testSnap.invalidKeys,
			OnSnapshot: func(testSnap) { observed++ },
		},
		out:    make(chan testSnap, 1),
		logged: map[string]string{},
	}
	ctx := context.Background()
	for _, s := range []testSnap{
		{rev: 1, invalid: map[string]string{"/a": "bad"}},
		{rev: 2, invalid: map[string]string{"/a": "bad"}},              // same error: not logged again
		{rev: 3, invalid: map[string]string{"/a": "worse", "/b": "x"}}, // new errors
		{rev: 4}, // fixed
		{rev: 5, invalid: map[string]string{"/a": "worse"}}, // broken again: logged again
	} {
		w.deliver(ctx, s)
	}
	if got := (<-w.out).rev; got != 5 {
		t.Fatalf("received revision %d, want the newest, 5", got)
	}
	select {
	case s := <-w.out:
		t.Fatalf("a second snapshot (revision %d) was queued", s.rev)
	default:
	}
	if observed != 5 {
		t.Fatalf("OnSnapshot called %d times, want 5", observed)
	}
	if n := strings.Count(logs.String(), "skipping invalid key"); n != 4 {
		t.Fatalf("%d invalid-key logs, want 4 (bad, worse, x, worse again):\n%s", n, logs.String())
	}
}

// TestDeliverCanceled: deliver returns when ctx ends, even with a full
// channel.
func TestDeliverCanceled(t *testing.T) {
	w := &watcher[int, testSnap]{out: make(chan testSnap, 1), logged: map[string]string{}}
	w.out <- testSnap{rev: 1}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w.deliver(ctx, testSnap{rev: 2}) // must not block
}

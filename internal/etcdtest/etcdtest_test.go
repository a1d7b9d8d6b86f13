package etcdtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var endpoint string

func TestMain(m *testing.M) {
	code := Run(m, &endpoint)
	if code == 0 {
		if err := goleak.Find(LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestProxy writes through a proxy, cuts it, sees requests fail, and
// writes again once it is back up.
func TestProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := NewProxy(t, endpoint)
	c := NewClient(t, p.Addr())
	if _, err := c.Put(ctx, "/etcdtest/k", "v1"); err != nil {
		t.Fatalf("put through the proxy: %v", err)
	}

	p.SetDown(true)
	rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := c.Get(rctx, "/etcdtest/k")
	rcancel()
	if err == nil {
		t.Fatal("get through a proxy that is down succeeded")
	}

	p.SetDown(false)
	if _, err := c.Put(ctx, "/etcdtest/k", "v2"); err != nil {
		t.Fatalf("put after the proxy came back: %v", err)
	}
	resp, err := NewClient(t, endpoint).Get(ctx, "/etcdtest/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v2" {
		t.Fatalf("direct read: %v, want v2", resp.Kvs)
	}
}

package ring

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startEtcd runs an embedded single-member etcd for one test.
func startEtcd(t *testing.T) string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "ring-test"
	cfg.Dir = t.TempDir()
	cfg.LogLevel = "panic"
	cu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(freePort(t)))
	pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(freePort(t)))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); <-e.Server.StopNotify() })
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		t.Fatal("embedded etcd not ready")
	}
	return cu.String()
}

// Nodes given only -memberlist.join-etcd find each other through the
// addresses they publish; a malformed entry is skipped, not fatal.
func TestSeedsFromEtcd(t *testing.T) {
	endpoint := startEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Put(ctx, "/vigil/members/garbage", "not an address"); err != nil {
		t.Fatal(err)
	}
	viaEtcd := func(cfg *Config) { cfg.JoinEtcd = []string{endpoint} }
	a := startNodeWith(t, "ing-1", "ingester", viaEtcd)
	eventually(t, 30*time.Second, "ing-1 publishes its address", func() error {
		resp, err := cli.Get(ctx, "/vigil/members/ing-1")
		if err != nil || len(resp.Kvs) != 1 {
			return fmt.Errorf("entry not there yet (%v)", err)
		}
		return nil
	})
	b := startNodeWith(t, "ing-2", "ingester", viaEtcd)
	c := startNodeWith(t, "ing-3", "ingester", viaEtcd)
	for _, n := range []*testNode{a, b, c} {
		if err := n.c.SetState(StateActive); err != nil {
			t.Fatal(err)
		}
	}
	took := allSee(t, []*testNode{a, b, c}, "ing-1", "ing-2", "ing-3")
	t.Logf("three nodes joined through etcd in %s", took)
	// The entry is leased: it expires when the node dies.
	resp, err := cli.Get(ctx, "/vigil/members/ing-2")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease == 0 {
		t.Fatalf("ing-2's entry: %v %v", resp, err)
	}
}

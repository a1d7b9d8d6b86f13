package ring

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// seedTTL is the lease of a node's seed entry in etcd: it disappears this
// long after the node dies.
const seedTTL = 30 * time.Second

// etcdSeeds publishes self (the gossip host:port) under prefix+name with a
// lease kept alive until ctx ends, and returns the gossip addresses other
// nodes published. Entries that are not host:port are skipped and reported
// in bad. Seeds are only read at start: a node that misses a later joiner
// learns it through gossip.
func etcdSeeds(ctx context.Context, cli *clientv3.Client, prefix, name, self string) (seeds, bad []string, err error) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	g, err := cli.Grant(rctx, int64(math.Ceil(seedTTL.Seconds())))
	if err != nil {
		return nil, nil, fmt.Errorf("grant seed lease: %w", err)
	}
	if _, err := cli.Put(rctx, prefix+name, self, clientv3.WithLease(g.ID)); err != nil {
		return nil, nil, fmt.Errorf("publish seed %s: %w", prefix+name, err)
	}
	ka, err := cli.KeepAlive(ctx, g.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("keep seed lease alive: %w", err)
	}
	go func() {
		for range ka { // the client renews; drain until ctx ends or the lease is lost
		}
	}()
	resp, err := cli.Get(rctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("read seeds under %s: %w", prefix, err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Key) == prefix+name {
			continue
		}
		addr := strings.TrimSpace(string(kv.Value))
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			bad = append(bad, fmt.Sprintf("%s=%q: not host:port", kv.Key, kv.Value))
			continue
		}
		seeds = append(seeds, addr)
	}
	return seeds, bad, nil
}

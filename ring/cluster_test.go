package ring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// freePort returns a port free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type testNode struct {
	c      *Cluster
	reg    *prometheus.Registry
	port   int
	cancel context.CancelFunc
	done   chan error
}

// startNode starts a member with fast failure detection, joined to seeds.
func startNode(t *testing.T, name, roles string, seeds ...int) *testNode {
	t.Helper()
	return startNodeWith(t, name, roles, func(cfg *Config) {
		for _, s := range seeds {
			cfg.Join = append(cfg.Join, fmt.Sprintf("127.0.0.1:%d", s))
		}
	})
}

// startNodeWith is startNode with the seeds set by join.
func startNodeWith(t *testing.T, name, roles string, join func(*Config)) *testNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.BindAddr = "127.0.0.1"
	cfg.Roles = strings.Split(roles, ",")
	cfg.GRPCAddr = name + ":9095"
	cfg.Zone = "zone-" + name[len(name)-1:]
	cfg.GossipInterval = 50 * time.Millisecond
	cfg.ProbeInterval = 200 * time.Millisecond
	cfg.ProbeTimeout = 100 * time.Millisecond
	cfg.PushPullInterval = 500 * time.Millisecond
	cfg.SuspicionMult = 2
	cfg.JoinRetryPeriod = 100 * time.Millisecond
	cfg.LeaveTimeout = 2 * time.Second
	join(&cfg)
	var c *Cluster
	var err error
	reg := prometheus.NewRegistry()
	for range 5 { // a free port can be taken between freePort and bind
		cfg.BindPort = freePort(t)
		if c, err = New(cfg, slog.New(slog.DiscardHandler), reg); err == nil {
			break
		}
		reg = prometheus.NewRegistry()
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{c: c, reg: reg, port: cfg.BindPort, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- c.Run(ctx) }()
	t.Cleanup(n.stop)
	return n
}

// stop leaves gracefully and waits for Run.
func (n *testNode) stop() {
	n.cancel()
	<-n.done
	n.done <- nil // make stop idempotent
}

// eventually polls cond until it holds or the (generous) timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = cond(); err == nil {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
	return 0
}

func activeIngesters(c *Cluster) []string {
	var out []string
	for _, m := range c.Members(RoleIngester) {
		if m.State == StateActive && m.Healthy {
			out = append(out, m.Name)
		}
	}
	return out
}

// allSee waits until every node sees exactly want as active ingesters.
func allSee(t *testing.T, nodes []*testNode, want ...string) time.Duration {
	t.Helper()
	return eventually(t, 30*time.Second, fmt.Sprintf("all nodes see active ingesters %v", want), func() error {
		for _, n := range nodes {
			if got := activeIngesters(n.c); !slices.Equal(got, want) {
				return fmt.Errorf("%s sees %v", n.c.LocalName(), got)
			}
		}
		return nil
	})
}

func ownersOf(t *testing.T, c *Cluster, ks [][]byte, n int) [][]string {
	t.Helper()
	out := make([][]string, len(ks))
	for i, k := range ks {
		ms, err := c.Owners(RoleIngester, k, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			out[i] = append(out[i], m.Name)
		}
	}
	return out
}

func TestClusterConvergesAndAgrees(t *testing.T) {
	n1 := startNode(t, "node-1", "ingester,querier")
	n2 := startNode(t, "node-2", "ingester", n1.port)
	n3 := startNode(t, "node-3", "ingester,distributor", n1.port)
	nodes := []*testNode{n1, n2, n3}
	sub := n3.c.Subscribe()

	// Joining members own nothing.
	eventually(t, 30*time.Second, "3 members everywhere", func() error {
		for _, n := range nodes {
			if got := len(n.c.Members(RoleIngester)); got != 3 {
				return fmt.Errorf("%s sees %d", n.c.LocalName(), got)
			}
		}
		return nil
	})
	if _, err := n1.c.Owners(RoleIngester, []byte("k"), 1); !errors.Is(err, ErrInsufficientMembers) {
		t.Fatalf("owners with only joining members: %v", err)
	}

	start := time.Now()
	for _, n := range nodes {
		if err := n.c.SetState(StateActive); err != nil {
			t.Fatal(err)
		}
	}
	allSee(t, nodes, "node-1", "node-2", "node-3")
	t.Logf("3 nodes: active state converged in %s", time.Since(start))
	select {
	case <-sub:
	default:
		t.Fatal("no change notification")
	}

	ks := keys(10000)
	want := ownersOf(t, n1.c, ks, 3)
	for _, n := range nodes[1:] {
		if got := ownersOf(t, n.c, ks, 3); !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("%s computes other owners than node-1", n.c.LocalName())
		}
	}
	for _, o := range want {
		if len(o) != 3 || o[0] == o[1] || o[1] == o[2] || o[0] == o[2] {
			t.Fatalf("replica set %v", o)
		}
	}

	// A 4th active ingester: ≤ 35% of primaries move, all to it.
	n4 := startNode(t, "node-4", "ingester", n2.port)
	if err := n4.c.SetState(StateActive); err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, n4)
	conv := allSee(t, nodes, "node-1", "node-2", "node-3", "node-4")
	t.Logf("4th node converged on all nodes in %s", conv)
	after := ownersOf(t, n1.c, ks, 3)
	for _, n := range nodes[1:] {
		if got := ownersOf(t, n.c, ks, 3); !slices.EqualFunc(got, after, slices.Equal) {
			t.Fatalf("%s computes other owners than node-1 after the join", n.c.LocalName())
		}
	}
	moved := 0
	for i := range ks {
		if want[i][0] != after[i][0] {
			moved++
			if after[i][0] != "node-4" {
				t.Fatalf("key moved from %s to %s", want[i][0], after[i][0])
			}
		}
	}
	t.Logf("adding node-4 moved %.1f%% of primary owners", 100*float64(moved)/float64(len(ks)))
	if moved > len(ks)*35/100 || moved == 0 {
		t.Fatalf("moved %d of %d keys", moved, len(ks))
	}
	owned := n4.c.PartitionsOwned(RoleIngester)
	for name, p := range owned {
		t.Logf("4 nodes: %s owns %d partitions (%.1f%%)", name, p, 100*float64(p)/float64(n1.c.cfg.Partitions))
	}
	if v := gaugeValue(t, n4.c.metrics.partitionsOwned.WithLabelValues("ingester")); v != float64(owned["node-4"]) || v == 0 {
		t.Fatalf("vigil_ring_partitions_owned = %v, want %d", v, owned["node-4"])
	}
	if v := gaugeValue(t, n1.c.metrics.members.WithLabelValues("ingester", "active")); v != 4 {
		t.Fatalf("vigil_ring_members{ingester,active} = %v", v)
	}

	// Leaving owns nothing; a graceful leave removes the member everywhere.
	if err := n4.c.SetState(StateLeaving); err != nil {
		t.Fatal(err)
	}
	allSee(t, nodes, "node-1", "node-2", "node-3")
	if got := ownersOf(t, n2.c, ks, 3); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatal("after node-4 went leaving, owners differ from the 3-node ring")
	}
	n4.stop()
	eventually(t, 30*time.Second, "node-4 removed after leaving", func() error {
		for _, n := range nodes[:3] {
			if got := len(n.c.Members(RoleIngester)); got != 3 {
				return fmt.Errorf("%s sees %d", n.c.LocalName(), got)
			}
		}
		return nil
	})
}

func TestKilledMemberIsKeptUntilForgotten(t *testing.T) {
	n1 := startNode(t, "node-1", "ingester")
	n2 := startNode(t, "node-2", "ingester", n1.port)
	n3 := startNode(t, "node-3", "ingester", n1.port)
	nodes := []*testNode{n1, n2, n3}
	for _, n := range nodes {
		if err := n.c.SetState(StateActive); err != nil {
			t.Fatal(err)
		}
	}
	allSee(t, nodes, "node-1", "node-2", "node-3")
	ks := keys(2000)
	before := ownersOf(t, n1.c, ks, 3)

	// Kill node-3: Shutdown without Leave.
	killed := time.Now()
	if err := n3.c.Close(); err != nil {
		t.Fatal(err)
	}
	survivors := nodes[:2]
	detect := eventually(t, 30*time.Second, "node-3 detected dead", func() error {
		for _, n := range survivors {
			for _, m := range n.c.Members(RoleIngester) {
				if m.Name == "node-3" && !m.Healthy {
					continue
				}
				if m.Name == "node-3" {
					return fmt.Errorf("%s still sees node-3 healthy", n.c.LocalName())
				}
			}
		}
		return nil
	})
	t.Logf("node-3 detected dead on both survivors %s after the kill (%s since kill)", detect, time.Since(killed))
	// A dead member keeps its partitions: no data moves on a failure.
	for _, n := range survivors {
		if got := ownersOf(t, n.c, ks, 3); !slices.EqualFunc(got, before, slices.Equal) {
			t.Fatalf("%s: owners changed on failure", n.c.LocalName())
		}
	}
	if err := n1.c.Forget("node-1"); !errors.Is(err, ErrMemberAlive) {
		t.Fatalf("forget alive member: %v", err)
	}
	if err := n1.c.Forget("nobody"); !errors.Is(err, ErrNoSuchMember) {
		t.Fatalf("forget unknown member: %v", err)
	}

	// A node joining after the failure learns the dead member too.
	n5 := startNode(t, "node-5", "querier", n2.port)
	eventually(t, 30*time.Second, "late joiner learns dead node-3", func() error {
		for _, m := range n5.c.Members(RoleIngester) {
			if m.Name == "node-3" && !m.Healthy {
				return nil
			}
		}
		return errors.New("node-5 does not know node-3")
	})
	all := []*testNode{n1, n2, n5}
	// Forget through the HTTP endpoint of node-1; gossip carries it.
	srv := httptest.NewServer(n1.c)
	defer srv.Close()
	resp, err := http.PostForm(srv.URL+"/ring?format=json", url.Values{"forget": {"node-3"}})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST forget: %s", resp.Status)
	}
	d := eventually(t, 30*time.Second, "node-3 forgotten everywhere", func() error {
		for _, n := range all {
			for _, m := range n.c.AllMembers() {
				if m.Name == "node-3" {
					return fmt.Errorf("%s still has node-3", n.c.LocalName())
				}
			}
		}
		return nil
	})
	t.Logf("forget spread to all nodes in %s", d)
	want := ownersOf(t, n1.c, ks, 2)
	for _, n := range all {
		got := ownersOf(t, n.c, ks, 2)
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("%s: owners differ after forget", n.c.LocalName())
		}
		for _, o := range got {
			if slices.Contains(o, "node-3") {
				t.Fatal("forgotten node-3 still owns keys")
			}
		}
	}
	if _, err := n5.c.Owners(RoleIngester, []byte("k"), 3); !errors.Is(err, ErrInsufficientMembers) {
		t.Fatalf("3 owners of 2 members: %v", err)
	}
}

func TestRingHTTP(t *testing.T) {
	n1 := startNode(t, "node-1", "ingester,querier")
	if err := n1.c.SetState(StateActive); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n1.c)
	defer srv.Close()
	eventually(t, 10*time.Second, "local node active", func() error {
		if len(activeIngesters(n1.c)) != 1 {
			return errors.New("not yet")
		}
		return nil
	})

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ring", nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var v ringView
	err = json.NewDecoder(resp.Body).Decode(&v)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Members) != 1 || v.Members[0].Name != "node-1" || v.Members[0].State != "active" ||
		v.Members[0].PartitionsOwned["ingester"] != 1021 || !slices.Equal(v.Members[0].Roles, []string{"ingester", "querier"}) ||
		v.Members[0].GRPCAddr != "node-1:9095" || v.Members[0].Zone != "zone-1" {
		t.Fatalf("JSON view %+v", v)
	}

	resp, err = http.Get(srv.URL + "/ring")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"<table>", "node-1", "ingester, querier", "active", "zone-1", "ingester: 1021"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("HTML lacks %q:\n%s", want, body)
		}
	}

	tests := []struct {
		name   string
		form   url.Values
		status int
	}{
		{"missing name", url.Values{}, http.StatusBadRequest},
		{"unknown member", url.Values{"forget": {"nobody"}}, http.StatusNotFound},
		{"alive member", url.Values{"forget": {"node-1"}}, http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.PostForm(srv.URL+"/ring", tt.form)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("got %s, want %d", resp.Status, tt.status)
			}
		})
	}
}

func TestCloseTwiceAndSubscribe(t *testing.T) {
	n := startNode(t, "node-1", "collector")
	ch := n.c.Subscribe()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range ch { // ends when Close closes the channel
		}
	}()
	n.stop()
	if err := n.c.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := n.c.SetState(StateActive); !errors.Is(err, ErrClosed) {
		t.Fatalf("SetState after Close: %v", err)
	}
	if _, ok := <-n.c.Subscribe(); ok {
		t.Fatal("Subscribe after Close returned an open channel")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"default", func(*Config) {}, true},
		{"unknown role", func(c *Config) { c.Roles = []string{"storer"} }, false},
		{"leaving at start", func(c *Config) { c.InitialState = "leaving" }, false},
		{"load factor below 1", func(c *Config) { c.LoadFactor = 0.9 }, false},
		{"no partitions", func(c *Config) { c.Partitions = 0 }, false},
		{"empty name", func(c *Config) { c.NodeName = "" }, false},
		{"zero probe interval", func(c *Config) { c.ProbeInterval = 0 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			if err := c.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v", err)
			}
		})
	}
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterFlags go to every node of a test cluster: gossip on loopback with
// fast failure detection, and repair that runs and settles in seconds, so
// that a test sees detection, hand-off and repair within its time budget.
var clusterFlags = []string{
	"-self-scrape.interval=0",
	"-memberlist.bind-addr=127.0.0.1",
	"-memberlist.gossip-interval=100ms",
	"-memberlist.probe-interval=300ms",
	"-memberlist.probe-timeout=200ms",
	"-memberlist.suspicion-mult=3",
	"-memberlist.push-pull-interval=2s",
	"-memberlist.join-retry-period=500ms",
	"-memberlist.leave-timeout=2s",
	"-ingester.repair-interval=2s",
	"-ingester.repair-settle=2s",
	"-ingester.leave-wait=1s",
}

// cluster is a set of vigil processes gossiping on loopback. Its methods
// are called from the test goroutine only.
type cluster struct {
	t     *testing.T
	bin   string
	logs  string // directory of the process logs
	nodes []*clusterNode
}

// clusterNode is one vigil process of a cluster.
type clusterNode struct {
	*proc
	nodeName   string // -memberlist.node-name
	target     string // -target
	grpcAddr   string // gRPC listen address (what the ring announces unless overridden)
	gossipAddr string
	dataDir    string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a multi-process cluster; skipped with -short")
	}
	return &cluster{t: t, bin: vigilBinary(t), logs: t.TempDir()}
}

// nodeSpec describes a node to start. prepare, if set, is called with the
// node's addresses once its ports are chosen (before the process starts)
// and returns extra flags.
type nodeSpec struct {
	name    string
	target  string
	args    []string
	prepare func(n *clusterNode) []string
}

// start launches a node that joins every node started before it (the
// first node joins nobody), waits for its /-/ready and registers its
// teardown: nodes with the ingester role are SIGKILLed when the test ends
// (a cluster-wide SIGTERM would make each one hand its data off to the
// others as they shut down, which graceful-leave tests check on their
// own); other nodes must exit 0 on SIGTERM.
func (c *cluster) start(spec nodeSpec) *clusterNode {
	c.t.Helper()
	var seeds []string
	for _, n := range c.nodes {
		seeds = append(seeds, n.gossipAddr)
	}
	n := &clusterNode{nodeName: spec.name, target: spec.target, dataDir: c.t.TempDir()}
	ingester := slices.Contains(strings.Split(spec.target, ","), "ingester")
	n.proc = launch(c.t, 2, func(ports []int) *proc {
		gossip := freeGossipPort(c.t)
		n.grpcAddr, n.gossipAddr = loopback(ports[1]), loopback(gossip)
		args := []string{
			"-target=" + spec.target,
			"-memberlist.node-name=" + spec.name,
			"-memberlist.bind-port=" + strconv.Itoa(gossip),
			"-data.dir", n.dataDir,
			"-http.listen-address", loopback(ports[0]),
			"-grpc.listen-address", n.grpcAddr,
		}
		if len(seeds) > 0 {
			args = append(args, "-memberlist.join="+strings.Join(seeds, ","))
		}
		args = append(args, clusterFlags...)
		if spec.prepare != nil {
			args = append(args, spec.prepare(n)...)
		}
		args = append(args, spec.args...)
		return &proc{
			t:            c.t,
			name:         spec.name,
			path:         c.bin,
			args:         args,
			addr:         loopback(ports[0]),
			logPath:      filepath.Join(c.logs, spec.name+".log"),
			probe:        httpProbe("http://" + loopback(ports[0]) + "/-/ready"),
			readyTimeout: vigilReadyTimeout,
			cleanTerm:    true,
		}
	})
	if ingester {
		// Runs before the proc's own cleanup (cleanups run last-in first-out).
		c.t.Cleanup(func() {
			if n.running() {
				n.kill9()
			}
		})
	}
	c.nodes = append(c.nodes, n)
	return n
}

func (c *cluster) startIngester(name string, args ...string) *clusterNode {
	c.t.Helper()
	return c.start(nodeSpec{name: name, target: "ingester", args: args})
}

// running returns the nodes whose process runs.
func (c *cluster) running() []*clusterNode {
	var out []*clusterNode
	for _, n := range c.nodes {
		if n.running() {
			out = append(out, n)
		}
	}
	return out
}

// logLine returns the first line of the node's log that contains s, or "".
func (n *clusterNode) logLine(s string) string {
	b, err := os.ReadFile(n.logPath)
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// freeGossipPort returns a loopback port free for both TCP and UDP (gossip
// uses both on the same port).
func freeGossipPort(t testing.TB) int {
	t.Helper()
	for range 50 {
		port := freePorts(t, 1)[0]
		u, err := net.ListenPacket("udp", loopback(port))
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no loopback port free for both TCP and UDP")
	return 0
}

// ringMember is one member in a node's /ring?format=json.
type ringMember struct {
	Name            string         `json:"name"`
	Roles           []string       `json:"roles"`
	State           string         `json:"state"`
	Healthy         bool           `json:"healthy"`
	GRPCAddress     string         `json:"grpc_address"`
	PartitionsOwned map[string]int `json:"partitions_owned"`
}

func (m ringMember) grpc() string { return m.GRPCAddress }

// ringView is a node's /ring?format=json: an object with a member list
// (ring.Cluster's page) or a bare member list.
type ringView struct {
	Local      string       `json:"local"`
	Partitions int          `json:"partitions"`
	Members    []ringMember `json:"members"`
}

// ingesters returns the members with the ingester role, sorted by name.
func (v ringView) ingesters() []ringMember {
	var out []ringMember
	for _, m := range v.Members {
		if slices.Contains(m.Roles, "ingester") {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b ringMember) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ingesterSummary renders the ingester members as one comparable string.
func (v ringView) ingesterSummary() string {
	var parts []string
	for _, m := range v.ingesters() {
		parts = append(parts, fmt.Sprintf("%s:%s:healthy=%t:owns=%d", m.Name, m.State, m.Healthy, m.PartitionsOwned["ingester"]))
	}
	return strings.Join(parts, " ")
}

func (n *clusterNode) ring(ctx context.Context) (ringView, error) {
	body, err := n.get(ctx, "/ring?format=json")
	if err != nil {
		return ringView{}, err
	}
	var v ringView
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
		err = json.Unmarshal(b, &v.Members)
	} else {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		return ringView{}, fmt.Errorf("decode %s /ring: %w: %.300s", n.nodeName, err, body)
	}
	return v, nil
}

// get fetches path from the node's HTTP address and wants 200.
func (n *clusterNode) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", path, n.nodeName, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", path, n.nodeName, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s on %s: %s: %.300s", path, n.nodeName, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// ringAgreement checks that every running node sees the same ingester
// members and that want accepts them; it returns the common view.
func (c *cluster) ringAgreement(want func(ms []ringMember) error) (ringView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var first ringView
	var firstNode string
	for _, n := range c.running() {
		v, err := n.ring(ctx)
		if err != nil {
			return ringView{}, err
		}
		if firstNode == "" {
			first, firstNode = v, n.nodeName
			if err := want(v.ingesters()); err != nil {
				return ringView{}, fmt.Errorf("as seen by %s: %w (ring: %s)", n.nodeName, err, v.ingesterSummary())
			}
			continue
		}
		if a, b := first.ingesterSummary(), v.ingesterSummary(); a != b {
			return ringView{}, fmt.Errorf("nodes disagree:\n  %s: %s\n  %s: %s", firstNode, a, n.nodeName, b)
		}
	}
	return first, nil
}

// awaitRing waits until every running node sees the same ingesters and
// want accepts them, and returns how long that took.
func (c *cluster) awaitRing(timeout time.Duration, what string, want func(ms []ringMember) error) time.Duration {
	c.t.Helper()
	var v ringView
	took := eventually(c.t, timeout, 100*time.Millisecond, what, func() error {
		var err error
		v, err = c.ringAgreement(want)
		return err
	})
	c.t.Logf("ring: %s after %v on all %d running nodes: %s", what, took.Round(time.Millisecond), len(c.running()), v.ingesterSummary())
	return took
}

// activeIngesters wants exactly names as ingesters, each active, healthy
// and owning partitions.
func activeIngesters(names ...string) func(ms []ringMember) error {
	return func(ms []ringMember) error {
		var got []string
		for _, m := range ms {
			got = append(got, m.Name)
			if m.State != "active" || !m.Healthy || m.PartitionsOwned["ingester"] <= 0 {
				return fmt.Errorf("ingester %s is %s, healthy=%t, owns %d partitions; want active, healthy, owning", m.Name, m.State, m.Healthy, m.PartitionsOwned["ingester"])
			}
		}
		if !slices.Equal(got, names) {
			return fmt.Errorf("ingesters %v, want %v", got, names)
		}
		return nil
	}
}

// ingesterDead wants name listed as an unhealthy ingester.
func ingesterDead(name string) func(ms []ringMember) error {
	return func(ms []ringMember) error {
		for _, m := range ms {
			if m.Name == name {
				if m.Healthy {
					return fmt.Errorf("%s still healthy", name)
				}
				return nil
			}
		}
		return fmt.Errorf("%s not listed", name)
	}
}

// digest is an ingester's /ingester/digest answer.
type digest struct {
	Series  int64 `json:"series"`
	Samples int64 `json:"samples"`
}

// digest asks the ingester what it alone stores in [start, end] (ms).
func (n *clusterNode) digest(ctx context.Context, start, end int64) (digest, error) {
	body, err := n.get(ctx, fmt.Sprintf("/ingester/digest?start=%d&end=%d", start, end))
	if err != nil {
		return digest{}, err
	}
	var d digest
	if err := json.Unmarshal(body, &d); err != nil {
		return digest{}, fmt.Errorf("decode %s digest: %w: %.300s", n.nodeName, err, body)
	}
	return d, nil
}

// metricSum adds up every sample of the metric family name in the node's
// /metrics (for figures in the log; absent is 0).
func (n *clusterNode) metricSum(name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := n.get(ctx, "/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	for line := range strings.SplitSeq(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" {
			continue
		}
		switch rest[0] {
		case ' ':
		case '{':
			rest = rest[strings.LastIndex(rest, "}")+1:]
		default:
			continue // another family sharing the prefix
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s on %s: %q: %w", name, n.nodeName, line, err)
		}
		sum += v
	}
	return sum, nil
}

// logMetrics logs the sum of each metric on each of nodes.
func logMetrics(t *testing.T, nodes []*clusterNode, names ...string) {
	t.Helper()
	for _, n := range nodes {
		if !n.running() {
			continue
		}
		var parts []string
		for _, name := range names {
			v, err := n.metricSum(name)
			if err != nil {
				parts = append(parts, fmt.Sprintf("%s: %v", name, err))
				continue
			}
			parts = append(parts, fmt.Sprintf("%s=%g", name, v))
		}
		t.Logf("%s metrics: %s", n.nodeName, strings.Join(parts, " "))
	}
}

// forget asks the node to forget the dead member name (POST /ring).
func (n *clusterNode) forget(name string) error {
	req, err := http.NewRequest(http.MethodPost, n.URL()+"/ring?format=json", strings.NewReader(url.Values{"forget": {name}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST /ring forget=%s on %s: %w", name, n.nodeName, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /ring forget=%s on %s: %s: %.300s", name, n.nodeName, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// awaitDigests polls the ingesters' digests over [start, end] until want
// accepts them all, and returns how long it took. It logs the digests it
// ended with.
func awaitDigests(t *testing.T, ingesters []*clusterNode, start, end int64, timeout time.Duration, what string, want func(got map[string]digest) error) time.Duration {
	t.Helper()
	var last map[string]digest
	took := eventually(t, timeout, 250*time.Millisecond, what, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got := map[string]digest{}
		for _, n := range ingesters {
			d, err := n.digest(ctx, start, end)
			if err != nil {
				return err
			}
			got[n.nodeName] = d
		}
		last = got
		if err := want(got); err != nil {
			return fmt.Errorf("%w (digests %v)", err, got)
		}
		return nil
	})
	t.Logf("%s after %v: digests %v", what, took.Round(time.Millisecond), last)
	return took
}

// everyIngesterHolds wants each digest to hold exactly series series with
// samples between minSamples and maxSamples (equal unless some write was
// never acknowledged and may or may not have been stored).
func everyIngesterHolds(series, minSamples, maxSamples int64) func(map[string]digest) error {
	return func(got map[string]digest) error {
		for name, d := range got {
			if d.Series != series || d.Samples < minSamples || d.Samples > maxSamples {
				return fmt.Errorf("%s holds %d series, %d samples; want %d series, %d..%d samples", name, d.Series, d.Samples, series, minSamples, maxSamples)
			}
		}
		return nil
	}
}

// replicatedExactly wants the digests' series to add up to rf × series,
// every ingester to hold at least one series, and every series an
// ingester holds to be complete: samples = its series × samplesPerSeries
// (a range when unacknowledged writes may or may not have been stored).
// The sum is what the digest can tell about copies: it equals rf × series
// when every series has exactly rf copies (a series short of a copy and
// another over it would compensate, which per-ingester checks elsewhere
// exclude where ownership is known).
func replicatedExactly(rf, series, minPerSeries, maxPerSeries int64) func(map[string]digest) error {
	return func(got map[string]digest) error {
		var sum int64
		for name, d := range got {
			sum += d.Series
			if d.Series == 0 {
				return fmt.Errorf("%s holds no series", name)
			}
			if d.Samples < d.Series*minPerSeries || d.Samples > d.Series*maxPerSeries {
				return fmt.Errorf("%s holds %d series with %d samples; want %d..%d samples per series", name, d.Series, d.Samples, minPerSeries, maxPerSeries)
			}
		}
		if sum != rf*series {
			return fmt.Errorf("digests add up to %d series, want %d × %d = %d", sum, rf, series, rf*series)
		}
		return nil
	}
}

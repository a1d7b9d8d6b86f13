package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
)

// freeGossipPort returns a port free for both TCP and UDP on 127.0.0.1.
func freeGossipPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// grpcAddrs holds the gRPC address each distributor node printed.
var grpcAddrs sync.Map

// startClusterNode runs one cluster role in-process and returns its HTTP
// base URL and a stop function (a graceful shutdown: SIGTERM's path).
func startClusterNode(t *testing.T, name, target string, port int, seed int, extra ...string) (string, func() error) {
	t.Helper()
	args := append([]string{
		"-target", target, "-data.dir", t.TempDir(),
		"-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", "127.0.0.1:0",
		"-memberlist.node-name", name, "-memberlist.bind-addr", "127.0.0.1", "-memberlist.bind-port", strconv.Itoa(port),
		"-memberlist.join", "127.0.0.1:" + strconv.Itoa(seed),
		"-memberlist.gossip-interval", "50ms", "-memberlist.probe-interval", "200ms", "-memberlist.probe-timeout", "100ms",
		"-memberlist.push-pull-interval", "500ms", "-memberlist.join-retry-period", "100ms",
		"-ingester.repair-interval", "500ms", "-ingester.repair-settle", "0s", "-ingester.leave-wait", "500ms",
		"-ingester.handoff-timeout", "3s",
		"-self-scrape.interval", "0", "-log.level", "warn",
	}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	re := regexp.MustCompile(`Metrics:\s+(\S+)/metrics`)
	grpcRE := regexp.MustCompile(`Go SDK, gRPC \(vigil\.v1 Write[^)]*\):\s+(\S+)`)
	sc := bufio.NewScanner(pr)
	base := ""
	for sc.Scan() {
		if m := grpcRE.FindStringSubmatch(sc.Text()); m != nil {
			grpcAddrs.Store(name, m[1])
		}
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		cancel()
		t.Fatalf("%s printed no URL: %v", name, <-done)
	}
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return base, stop
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterInProcess wires four ingesters and a distributor+querier in
// one process: writes replicate to three ingesters each, queries merge the
// replicas, a graceful stop hands data off so every series ends at exactly
// three copies, and a failed ingester leaves the answers complete.
func TestClusterInProcess(t *testing.T) {
	ports := make([]int, 5)
	for i := range ports {
		ports[i] = freeGossipPort(t)
	}
	var ingURLs []string
	var ingStops []func() error
	for i := range 4 {
		u, stop := startClusterNode(t, fmt.Sprintf("ing-%d", i+1), "ingester", ports[i], ports[0], "-ring.zone", fmt.Sprintf("z%d", i%3))
		ingURLs, ingStops = append(ingURLs, u), append(ingStops, stop)
	}
	front, _ := startClusterNode(t, "front", "distributor,querier", ports[4], ports[0])
	waitFor(t, 30*time.Second, "front sees four active ingesters", func() error {
		var v struct {
			Members []struct{ Name, State string }
		}
		getJSON(t, front+"/ring?format=json", &v)
		n := 0
		for _, m := range v.Members {
			if strings.HasPrefix(m.Name, "ing-") && m.State == "active" {
				n++
			}
		}
		if n != 4 {
			return fmt.Errorf("%d active", n)
		}
		// The distributor's routes follow the ring asynchronously; /-/ready
		// says they can place writes.
		resp, err := http.Get(front + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("front /-/ready: %s", resp.Status)
		}
		return nil
	})

	const series = 300
	now := time.Now().Add(-time.Minute).UnixMilli()
	var body strings.Builder
	for i := range series {
		for k := range 3 {
			fmt.Fprintf(&body, "cluster_test{i=\"%d\"} %d %d\n", i, k, now+int64(k)*1000)
		}
	}
	resp, err := http.Post(front+"/api/v1/import/prometheus", "text/plain", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("write: %s", resp.Status)
	}
	// The same through gRPC Distributor.Push: one more sample per series.
	addr, _ := grpcAddrs.Load("front")
	conn, err := grpc.NewClient(addr.(string), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(ingesterpb.Codec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dc := ingesterpb.NewDistributorClient(conn)
	var batch []model.Series
	for i := range series {
		batch = append(batch, model.Series{Labels: labels.FromStrings("__name__", "cluster_test", "i", strconv.Itoa(i)), Samples: []model.Sample{{T: now + 3000, V: 3}}})
	}
	pr, err := dc.Push(context.Background(), ingesterpb.FromSeries(batch))
	if err != nil || pr.Stored != series {
		t.Fatalf("gRPC push: %v %v", pr, err)
	}
	bad := &ingesterpb.PushRequest{Series: []*ingesterpb.TimeSeries{{Labels: model.AppendLabels(nil, labels.FromStrings("__name__", "x")), TimestampsMs: []int64{1, 2}, Values: []float64{1}}}}
	if _, err := dc.Push(context.Background(), bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed gRPC push: %v, want InvalidArgument", err)
	}
	const perSeries = 4
	total := func() string { return query(t, front, "sum(count_over_time(cluster_test[10m]))") }
	if got := total(); got != strconv.Itoa(series*perSeries) {
		t.Fatalf("samples read back: %s, want %d", got, series*perSeries)
	}
	copies := func(urls []string) (uint64, error) {
		var sum uint64
		for _, u := range urls {
			var d struct{ Series, Samples uint64 }
			getJSON(t, u+"/ingester/digest", &d)
			sum += d.Series
		}
		return sum, nil
	}
	if n, _ := copies(ingURLs); n != 3*series {
		t.Fatalf("%d series copies over 4 ingesters, want %d", n, 3*series)
	}

	// Graceful stop of ing-4: hand-off, then every series on each of the
	// three left.
	start := time.Now()
	if err := ingStops[3](); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	t.Logf("ing-4 handed off and left in %s", time.Since(start).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "three copies on the three ingesters left", func() error {
		for _, u := range ingURLs[:3] {
			var d struct{ Series, Samples uint64 }
			getJSON(t, u+"/ingester/digest", &d)
			if d.Series != series || d.Samples != perSeries*series {
				return fmt.Errorf("%s holds %d series, %d samples", u, d.Series, d.Samples)
			}
		}
		return nil
	})
	if got := total(); got != strconv.Itoa(series*perSeries) {
		t.Fatalf("after hand-off: %s samples, want %d", got, series*perSeries)
	}

	// ing-3 stops but cannot hand off (RF=3 needs three other ingesters):
	// it must fail, and stay in the ring as a dead owner, not leave.
	if err := ingStops[2](); err == nil || !strings.Contains(err.Error(), "hand-off") {
		t.Fatalf("stop without enough ingesters for a hand-off: %v", err)
	}
	waitFor(t, 30*time.Second, "ing-3 seen dead, still an owner", func() error {
		var v struct {
			Members []struct {
				Name, State string
				Healthy     bool
			}
		}
		getJSON(t, front+"/ring?format=json", &v)
		for _, m := range v.Members {
			if m.Name == "ing-3" && !m.Healthy && m.State == "active" {
				return nil
			}
		}
		return fmt.Errorf("members %+v", v.Members)
	})
	if got := total(); got != strconv.Itoa(series*perSeries) {
		t.Fatalf("with ing-3 dead: %s samples, want %d", got, series*perSeries)
	}
}

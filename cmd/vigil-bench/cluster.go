package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clusterIngesters is the number of ingesters in the benchmark cluster,
// one per zone. With Vigil's default replication factor (3) every
// ingester holds a copy of every series.
const clusterIngesters = 3

// clusterRepairInterval keeps the ingesters' anti-entropy repair out of
// the measurement. Its first round would come 5 minutes after start (the
// default interval), inside a default-size push, and read every stored
// sample for its digests: background work at an arbitrary moment of the
// run, not the write path this row measures.
const clusterRepairInterval = 24 * time.Hour

func vigilClusterSystem(path string) *system {
	return &system{
		key: "cluster", name: "Vigil cluster", path: path,
		start:   startCluster,
		version: goBinaryVersion,
		diskNote: fmt.Sprintf("the %d ingesters' data dirs summed (each holds a copy of every series) after SIGTERM to the front "+
			"and SIGKILL to the ingesters: nothing is flushed, so this is mostly WAL, not comparable with Vigil's flushed figure", clusterIngesters),
		walDirs: []string{"wal"},
	}
}

// clusterNode is one process of the benchmark cluster.
type clusterNode struct {
	name, target, zone           string
	httpPort, grpcPort, gossPort int
	dir                          string // data dir
}

// startCluster starts clusterIngesters `vigil -target=ingester` processes
// in as many zones and one `-target=distributor,querier` front, all on
// 127.0.0.1, and waits until every process is ready and the front sees
// every ingester active. The deployment's front is the front node; its
// stop SIGTERMs the front and SIGKILLs the ingesters.
func startCluster(ctx context.Context, cfg *compareConfig, s *system, dir string, stderr io.Writer) (*deployment, error) {
	ports, err := freePorts(3 * (clusterIngesters + 1))
	if err != nil {
		return nil, err
	}
	var nodes []clusterNode
	var seeds []string
	for i := range clusterIngesters + 1 {
		n := clusterNode{
			name: fmt.Sprintf("ingester-%d", i+1), target: "ingester", zone: fmt.Sprintf("zone-%d", i+1),
			httpPort: ports[3*i], grpcPort: ports[3*i+1], gossPort: ports[3*i+2],
		}
		if i == clusterIngesters {
			n.name, n.target, n.zone = "front", "distributor,querier", ""
		} else {
			seeds = append(seeds, fmt.Sprintf("127.0.0.1:%d", n.gossPort))
		}
		n.dir = filepath.Join(dir, n.name)
		if err := os.MkdirAll(n.dir, 0o755); err != nil {
			return nil, fmt.Errorf("create data dir: %w", err)
		}
		nodes = append(nodes, n)
	}

	d := &deployment{}
	var ingesters []*server
	for _, n := range nodes {
		args := clusterArgs(n, seeds)
		base := fmt.Sprintf("http://127.0.0.1:%d", n.httpPort)
		srv, err := startServer(s.name+" "+n.name, s.path, args, filepath.Join(dir, n.name+".log"), base)
		if err != nil {
			d.kill()
			return nil, err
		}
		d.procs = append(d.procs, srv)
		if n.target == "ingester" {
			ingesters = append(ingesters, srv)
			d.dataDirs = append(d.dataDirs, n.dir)
		} else {
			d.front = srv
		}
		fmt.Fprintf(stderr, "   started %s %s (pid %d) on %s, data in %s\n", s.name, n.name, srv.pid(), base, n.dir)
	}
	d.stop = func(timeout time.Duration) error { return stopCluster(d.front, ingesters, timeout) }

	began := time.Now()
	if err := waitCluster(ctx, d, cfg.startTimeout); err != nil {
		d.kill()
		return nil, err
	}
	fmt.Fprintf(stderr, "   %s ready after %v: the front sees %d active ingesters\n", s.name, time.Since(began).Round(100*time.Millisecond), clusterIngesters)
	return d, nil
}

// clusterArgs is the command line of one cluster node.
func clusterArgs(n clusterNode, seeds []string) []string {
	args := []string{
		"-target=" + n.target,
		"-memberlist.node-name=" + n.name,
		"-memberlist.bind-addr=127.0.0.1",
		"-memberlist.bind-port=" + strconv.Itoa(n.gossPort),
		"-memberlist.join=" + strings.Join(seeds, ","),
		"-data.dir=" + n.dir,
		fmt.Sprintf("-http.listen-address=127.0.0.1:%d", n.httpPort),
		fmt.Sprintf("-grpc.listen-address=127.0.0.1:%d", n.grpcPort),
		"-self-scrape.interval=0",
	}
	if n.target == "ingester" {
		args = append(args, "-ring.zone="+n.zone, "-ingester.repair-interval="+clusterRepairInterval.String())
	}
	return args
}

// stopCluster sends SIGTERM to the front and waits for it, then SIGKILL
// to every ingester.
//
// The ingesters are killed, not stopped: a SIGTERMed ingester announces
// leaving and tries to hand its data off to the other owners
// (docs/cluster.md), which cannot complete here (with 3 ingesters and
// RF 3 no two of them can hold three copies) and would only spend
// -ingester.leave-wait plus -ingester.handoff-timeout (10 min) before it
// gives up. So the ingesters' head is not flushed either: their data dirs
// hold the WAL and whatever Badger tables the kill left.
func stopCluster(front *server, ingesters []*server, timeout time.Duration) error {
	var errs []error
	if err := front.stop(timeout); err != nil {
		errs = append(errs, fmt.Errorf("%w; log: %s", err, front.logTail(3)))
	}
	for _, ing := range ingesters {
		if ing.exited() {
			errs = append(errs, fmt.Errorf("%s had already exited: %v; log: %s", ing.name, ing.waitErr, ing.logTail(3)))
			continue
		}
		ing.kill()
		if !ing.exited() {
			errs = append(errs, fmt.Errorf("%s (pid %d) still running 10s after SIGKILL", ing.name, ing.pid()))
		}
	}
	return errors.Join(errs...)
}

// waitCluster polls until every process answers /-/ready and the front's
// ring shows every ingester active and healthy, in distinct zones.
func waitCluster(ctx context.Context, d *deployment, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for {
		notYet := clusterReady(ctx, client, d)
		if notYet == nil {
			return nil
		}
		for _, p := range d.procs {
			if p.exited() {
				return fmt.Errorf("%s exited before the cluster was ready (%v); log: %s", p.name, p.waitErr, p.logTail(5))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the cluster: %w; not ready: %v; front log: %s", ctx.Err(), notYet, d.front.logTail(5))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// clusterReady returns nil when the cluster is ready, else what it waits for.
func clusterReady(ctx context.Context, client *http.Client, d *deployment) error {
	for _, p := range d.procs {
		if _, err := getBody(ctx, client, p.baseURL+"/-/ready"); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	body, err := getBody(ctx, client, d.front.baseURL+"/ring?format=json")
	if err != nil {
		return err
	}
	active, err := activeIngesters(body)
	if err != nil {
		return err
	}
	if len(active) != clusterIngesters {
		return fmt.Errorf("the front sees %d active, healthy ingesters (%s), want %d", len(active), strings.Join(active, ", "), clusterIngesters)
	}
	return nil
}

// activeIngesters returns "name (zone)" for every ingester that a /ring
// JSON answer shows active and healthy, sorted. An ingester whose zone is
// already taken by another is an error: the cluster would not spread the
// replicas as intended.
func activeIngesters(ringJSON []byte) ([]string, error) {
	var v struct {
		Members []struct {
			Name    string   `json:"name"`
			Roles   []string `json:"roles"`
			State   string   `json:"state"`
			Healthy bool     `json:"healthy"`
			Zone    string   `json:"zone"`
		} `json:"members"`
	}
	if err := json.Unmarshal(ringJSON, &v); err != nil {
		return nil, fmt.Errorf("decode /ring: %w", err)
	}
	var out []string
	zones := map[string]string{}
	for _, m := range v.Members {
		if !slices.Contains(m.Roles, "ingester") || m.State != "active" || !m.Healthy {
			continue
		}
		if other, ok := zones[m.Zone]; ok {
			return nil, fmt.Errorf("ingesters %s and %s are both in zone %q", other, m.Name, m.Zone)
		}
		zones[m.Zone] = m.Name
		out = append(out, fmt.Sprintf("%s (%s)", m.Name, m.Zone))
	}
	slices.Sort(out)
	return out, nil
}

// getBody GETs url and returns the body of a 200 answer.
func getBody(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %.100s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// freePorts returns n distinct ports that were free on 127.0.0.1 for both
// TCP and UDP (memberlist listens on both). As with freePort, another
// process may take one before the server binds it; the server then fails
// to start and says so.
func freePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries >= 50*n {
			return nil, fmt.Errorf("find %d free ports: only %d after %d tries", n, len(out), tries)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		if !seen[port] {
			seen[port] = true
			out = append(out, port)
		}
	}
	return out, nil
}

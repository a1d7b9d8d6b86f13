package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The cluster tests run real vigil processes on loopback: ingesters
// (-target=ingester) and a distributor+querier node, replication factor 3
// (the default), gossip with fast failure detection and repair every 2 s
// (clusterFlags). A load generator remote-writes 200 series one sample per
// batch at increasing timestamps and records what was acknowledged; after
// the fault every acknowledged sample must read back (design guarantee 1),
// queries issued during the fault must be complete (guarantee 2), and
// membership changes must end with every series at RF copies (guarantee
// 3), measured through each ingester's /ingester/digest.

const (
	loadSeries = 200
	rf         = 3
)

// logDuration logs how long the test took, when it ends.
func logDuration(t *testing.T) {
	began := time.Now()
	t.Cleanup(func() { t.Logf("%s took %v", t.Name(), time.Since(began).Round(100*time.Millisecond)) })
}

// startCluster starts ingesters ing-1..ing-n and a distributor+querier
// node dq-1, and waits until every node sees every ingester active.
func startCluster(t *testing.T, n int, frontendArgs ...string) (*cluster, []*clusterNode, *clusterNode) {
	t.Helper()
	c := newCluster(t)
	var ings []*clusterNode
	var names []string
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("ing-%d", i)
		ings = append(ings, c.startIngester(name))
		names = append(names, name)
	}
	fe := c.start(nodeSpec{name: "dq-1", target: "distributor,querier", args: frontendArgs})
	c.awaitRing(60*time.Second, "every ingester active", activeIngesters(names...))
	return c, ings, fe
}

// finishLoad waits for the load, logs its figures and fails the test if a
// batch was never acknowledged (with at most RF-quorum ingesters down every
// write must succeed, after retries).
func finishLoad(t *testing.T, g *loadGen) loadStats {
	t.Helper()
	g.wait()
	st := g.stats()
	t.Logf("load: %s", st)
	if st.acked == 0 {
		t.Fatal("no batch was acknowledged")
	}
	if st.unacked > 0 {
		t.Errorf("%d of %d batches were never acknowledged after %d attempts each", st.unacked, st.batches, g.cfg.attempts)
	}
	return st
}

// digestRange is the range that holds every batch of st.
func digestRange(st loadStats) (int64, int64) { return st.first - 1, st.last + 1 }

// samplesPerSeries is how many samples a complete copy of a series holds:
// one per acknowledged batch, plus up to one per batch that was never
// acknowledged (it may or may not have been stored).
func samplesPerSeries(st loadStats) (int64, int64) {
	return int64(st.acked), int64(st.acked + st.unacked)
}

// earlier describes the batches finished so far: the digest range that
// holds them and the samples per series a complete copy has there.
type earlier struct {
	from, to int64
	lo, hi   int64 // acknowledged batches; all batches
}

func batchesSoFar(t *testing.T, g *loadGen) earlier {
	t.Helper()
	bs := g.snapshot()
	if len(bs) == 0 {
		t.Fatal("no batch finished yet")
	}
	e := earlier{from: bs[0].ts, to: bs[len(bs)-1].ts, hi: int64(len(bs))}
	for _, b := range bs {
		if b.acked {
			e.lo++
		}
	}
	return e
}

var repairMetrics = []string{"vigil_repair_rounds_total", "vigil_repair_samples_sent_total", "vigil_repair_series_deleted_total", "vigil_repair_conflicts_total", "vigil_repair_partitions_pending"}

// TestClusterKill9Ingester kills one of three ingesters with SIGKILL
// during writes: writes keep being acknowledged, queries during and after
// are complete, no acknowledged sample is lost; the ingester then restarts
// from its WAL and repair brings it back to a full copy.
func TestClusterKill9Ingester(t *testing.T) {
	logDuration(t)
	c, ings, fe := startCluster(t, 3)
	q := promAPI{name: "dq-1", base: fe.URL()}
	g := startLoad(t, fe.URL(), "kill9", defaultLoad(14*time.Second))
	d := startDuring(t, q, g, 500*time.Millisecond)

	time.Sleep(4 * time.Second)
	ings[1].kill9()
	c.awaitRing(30*time.Second, "ing-2 seen dead", ingesterDead("ing-2"))
	st := finishLoad(t, g)
	d.check(t, "with ing-2 killed")
	verifyAll(t, q, g, "after the kill")

	ings[1].restart()
	c.awaitRing(30*time.Second, "ing-2 back", activeIngesters("ing-1", "ing-2", "ing-3"))
	lo, hi := samplesPerSeries(st)
	from, to := digestRange(st)
	took := awaitDigests(t, ings, from, to, 90*time.Second, "every ingester holds a full copy after ing-2 restarted",
		everyIngesterHolds(loadSeries, loadSeries*lo, loadSeries*hi))
	verifyAll(t, q, g, "after ing-2 returned")
	logMetrics(t, ings, repairMetrics...)
	t.Logf("figures: %d acknowledged samples, 0 lost; ing-2 repaired %v after it was ready again", st.acked*loadSeries, took.Round(time.Millisecond))
}

// TestClusterAddIngester adds a fourth ingester under load: every node
// agrees on the new ownership, repair moves data so that every series ends
// at exactly RF copies, nothing is lost.
func TestClusterAddIngester(t *testing.T) {
	logDuration(t)
	c, ings, fe := startCluster(t, 3)
	q := promAPI{name: "dq-1", base: fe.URL()}
	g := startLoad(t, fe.URL(), "add", defaultLoad(16*time.Second))
	d := startDuring(t, q, g, 500*time.Millisecond)

	time.Sleep(4 * time.Second)
	before := batchesSoFar(t, g)
	joinAt := time.Now()
	ings = append(ings, c.startIngester("ing-4"))
	ready := time.Since(joinAt)
	converged := c.awaitRing(30*time.Second, "ing-4 owns partitions on every node", activeIngesters("ing-1", "ing-2", "ing-3", "ing-4"))
	// Data written before the join moves to its new owners while the
	// load goes on.
	awaitDigests(t, ings, before.from, before.to, 60*time.Second, "data written before the join at exactly 3 copies over 4 ingesters",
		replicatedExactly(rf, loadSeries, before.lo, before.hi))
	moved := time.Since(joinAt)
	st := finishLoad(t, g)
	d.check(t, "while ing-4 joined")

	lo, hi := samplesPerSeries(st)
	from, to := digestRange(st)
	took := awaitDigests(t, ings, from, to, 60*time.Second, "every series at exactly 3 copies over 4 ingesters",
		replicatedExactly(rf, loadSeries, lo, hi))
	verifyAll(t, q, g, "after ing-4 joined")
	logMetrics(t, ings, repairMetrics...)
	t.Logf("figures: ing-4 ready %v after its start, ring converged on every node %v after that; data from before the join at RF %v after the join began (under load); whole range at RF %v after the load ended",
		ready.Round(time.Millisecond), converged.Round(time.Millisecond), moved.Round(time.Millisecond), took.Round(time.Millisecond))
}

// TestClusterForgetDeadIngester kills one of four ingesters for good; an
// operator forgets it; repair brings every series back to RF copies on
// the three that remain (each then owns every series).
func TestClusterForgetDeadIngester(t *testing.T) {
	logDuration(t)
	c, ings, fe := startCluster(t, 4)
	q := promAPI{name: "dq-1", base: fe.URL()}
	g := startLoad(t, fe.URL(), "forget", defaultLoad(14*time.Second))
	d := startDuring(t, q, g, 500*time.Millisecond)

	time.Sleep(3 * time.Second)
	ings[3].kill9()
	detected := c.awaitRing(30*time.Second, "ing-4 seen dead", ingesterDead("ing-4"))
	before := batchesSoFar(t, g)
	forgetAt := time.Now()
	if err := ings[0].forget("ing-4"); err != nil {
		t.Fatal(err)
	}
	c.awaitRing(30*time.Second, "ing-4 forgotten", activeIngesters("ing-1", "ing-2", "ing-3"))
	// Repair restores RF for what was written before the forget while the
	// load goes on.
	awaitDigests(t, ings[:3], before.from, before.to, 60*time.Second, "data written before the forget on each of the 3 remaining ingesters",
		everyIngesterHolds(loadSeries, loadSeries*before.lo, loadSeries*before.hi))
	restored := time.Since(forgetAt)
	st := finishLoad(t, g)
	d.check(t, "while ing-4 died and was forgotten")

	lo, hi := samplesPerSeries(st)
	from, to := digestRange(st)
	took := awaitDigests(t, ings[:3], from, to, 60*time.Second, "each of the 3 remaining ingesters holds every series",
		everyIngesterHolds(loadSeries, loadSeries*lo, loadSeries*hi))
	verifyAll(t, q, g, "after ing-4 was forgotten")
	logMetrics(t, ings[:3], repairMetrics...)
	t.Logf("figures: death detected by every node %v after the kill; RF restored %v after the forget (under load); whole range at RF %v after the load ended",
		detected.Round(time.Millisecond), restored.Round(time.Millisecond), took.Round(time.Millisecond))
}

// TestClusterGracefulLeave sends SIGTERM to one of four ingesters under
// load: it hands its data off and exits 0, queries stay complete, and the
// three that remain end with every series.
func TestClusterGracefulLeave(t *testing.T) {
	logDuration(t)
	c, ings, fe := startCluster(t, 4)
	q := promAPI{name: "dq-1", base: fe.URL()}
	g := startLoad(t, fe.URL(), "leave", defaultLoad(16*time.Second))
	d := startDuring(t, q, g, 500*time.Millisecond)

	time.Sleep(3 * time.Second)
	before := batchesSoFar(t, g)
	leaveAt := time.Now()
	if err := ings[3].stop(); err != nil {
		t.Errorf("ing-4 did not exit 0 after SIGTERM: %v", err)
	}
	left := time.Since(leaveAt)
	if line := ings[3].logLine("hand-off complete"); line == "" {
		t.Errorf("ing-4 exited without logging \"hand-off complete\"")
	} else {
		t.Logf("ing-4: %s", line)
	}
	c.awaitRing(30*time.Second, "ing-4 gone", activeIngesters("ing-1", "ing-2", "ing-3"))
	// What was written before the SIGTERM is on every remaining ingester
	// (hand-off, or repair where hand-off left something).
	handedOff := awaitDigests(t, ings[:3], before.from, before.to, 30*time.Second, "data written before the SIGTERM on each of the 3 remaining ingesters",
		everyIngesterHolds(loadSeries, loadSeries*before.lo, loadSeries*before.hi))
	st := finishLoad(t, g)
	d.check(t, "while ing-4 left")

	lo, hi := samplesPerSeries(st)
	from, to := digestRange(st)
	took := awaitDigests(t, ings[:3], from, to, 90*time.Second, "each of the 3 remaining ingesters holds every series",
		everyIngesterHolds(loadSeries, loadSeries*lo, loadSeries*hi))
	verifyAll(t, q, g, "after ing-4 left")
	logMetrics(t, ings[:3], repairMetrics...)
	t.Logf("figures: ing-4 exited %v after SIGTERM; data from before the SIGTERM on every remaining ingester %v after the exit; whole range %v after the load ended",
		left.Round(time.Millisecond), handedOff.Round(time.Millisecond), took.Round(time.Millisecond))
}

// TestClusterPartitionedIngester cuts every other node off one ingester's
// gRPC (through a blackholing proxy; gossip still reaches it, so the ring
// keeps it healthy): writes and reads go on complete, and after heal
// repair fills the ingester's gap.
func TestClusterPartitionedIngester(t *testing.T) {
	logDuration(t)
	c := newCluster(t)
	proxy := startTCPProxy(t, "")
	ings := []*clusterNode{c.startIngester("ing-1"), c.startIngester("ing-2")}
	ings = append(ings, c.start(nodeSpec{name: "ing-3", target: "ingester", prepare: func(n *clusterNode) []string {
		proxy.setTarget(n.grpcAddr)
		return []string{"-ring.grpc-address=" + proxy.addr()}
	}}))
	fe := c.start(nodeSpec{name: "dq-1", target: "distributor,querier"})
	c.awaitRing(60*time.Second, "every ingester active", activeIngesters("ing-1", "ing-2", "ing-3"))
	view, err := fe.ring(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range view.ingesters() {
		if m.Name == "ing-3" && m.grpc() != proxy.addr() {
			t.Fatalf("ing-3 announces gRPC address %q, want the proxy's %s", m.grpc(), proxy.addr())
		}
	}

	q := promAPI{name: "dq-1", base: fe.URL()}
	g := startLoad(t, fe.URL(), "partition", defaultLoad(18*time.Second))
	d := startDuring(t, q, g, 500*time.Millisecond)
	time.Sleep(3 * time.Second)
	if _, proxied, _ := proxy.stats(); proxied == 0 {
		t.Fatal("no connection reached ing-3 through the proxy before the cut")
	}
	proxy.cut(cutBlackhole)
	cutAt := time.Now()
	beforeCut := len(g.snapshot())
	time.Sleep(8 * time.Second)
	during := g.snapshot()[beforeCut:]
	// The cut made a gap: ing-3 (whose HTTP is not behind the proxy)
	// lacks samples acknowledged during it.
	var inCut []batch
	for _, b := range during {
		if b.acked && b.ts > cutAt.Add(500*time.Millisecond).UnixMilli() {
			inCut = append(inCut, b)
		}
	}
	if len(inCut) == 0 {
		t.Fatal("no batch acknowledged during the cut")
	}
	gap, err := ings[2].digest(context.Background(), inCut[0].ts, inCut[len(inCut)-1].ts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ing-3 holds %d of %d samples acknowledged during the cut", gap.Samples, len(inCut)*loadSeries)
	if gap.Samples >= int64(len(inCut)*loadSeries) {
		t.Fatalf("the cut did not cut: ing-3 holds %d samples of the %d written during it", gap.Samples, len(inCut)*loadSeries)
	}
	proxy.heal()
	healAt := time.Now()
	var all int64
	for _, b := range during {
		if b.ts >= inCut[0].ts && b.ts <= inCut[len(inCut)-1].ts {
			all++
		}
	}
	filled := awaitDigests(t, ings[2:], inCut[0].ts, inCut[len(inCut)-1].ts, 60*time.Second, "ing-3's gap filled",
		everyIngesterHolds(loadSeries, int64(len(inCut)*loadSeries), all*loadSeries))
	st := finishLoad(t, g)
	d.check(t, "with ing-3 cut off")
	var slowest time.Duration
	for _, b := range during {
		slowest = max(slowest, b.latency)
	}
	_, _, dropped := proxy.stats()
	nonOK := 0
	for status, n := range st.statuses {
		if status/100 != 2 {
			nonOK += n
		}
	}
	t.Logf("during the %v cut: %d batches, slowest %v (with retries); %d connections blackholed; %d non-2xx answers before retries over the whole load, %d batches never acknowledged",
		healAt.Sub(cutAt).Round(time.Millisecond), len(during), slowest.Round(time.Millisecond), dropped, nonOK, st.unacked)

	lo, hi := samplesPerSeries(st)
	from, to := digestRange(st)
	took := awaitDigests(t, ings[2:], from, to, 90*time.Second, "ing-3 holds every series again",
		everyIngesterHolds(loadSeries, loadSeries*lo, loadSeries*hi))
	awaitDigests(t, ings, from, to, 10*time.Second, "every ingester holds every series",
		everyIngesterHolds(loadSeries, loadSeries*lo, loadSeries*hi))
	verifyAll(t, q, g, "after the partition healed")
	logMetrics(t, ings, repairMetrics...)
	t.Logf("figures: ing-3's gap filled %v after heal (under load); ing-3 complete %v after the load ended", filled.Round(time.Millisecond), took.Round(time.Millisecond))
}

// queryAnswer is what a query endpoint answered, undecoded beyond the
// envelope.
type queryAnswer struct {
	status    int
	state     string // "success" or "error"
	errorType string
	warnings  []string
	body      string
}

func rawQuery(ctx context.Context, base, path string, params url.Values) (queryAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		return queryAnswer{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return queryAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return queryAnswer{}, err
	}
	var env struct {
		Status    string   `json:"status"`
		ErrorType string   `json:"errorType"`
		Warnings  []string `json:"warnings"`
	}
	a := queryAnswer{status: resp.StatusCode, body: string(bytes.TrimSpace(body))}
	if err := json.Unmarshal(body, &env); err != nil {
		return a, fmt.Errorf("%s answered %d with a body that is not JSON: %.300s", path, resp.StatusCode, body)
	}
	a.state, a.errorType, a.warnings = env.Status, env.ErrorType, env.Warnings
	return a, nil
}

// TestClusterTwoIngestersDown kills two of three ingesters: writes fail
// with a retryable 503 and Retry-After, never 2xx; a strict querier
// answers 503 "unavailable", one with -querier.allow-partial=true answers
// with an "incomplete" warning. With one ingester back, writes succeed and
// queries are complete again.
func TestClusterTwoIngestersDown(t *testing.T) {
	logDuration(t)
	c, ings, fe := startCluster(t, 3)
	partial := c.start(nodeSpec{name: "q-partial", target: "querier", args: []string{"-querier.allow-partial=true"}})
	c.awaitRing(30*time.Second, "q-partial sees every ingester", activeIngesters("ing-1", "ing-2", "ing-3"))

	cfg := defaultLoad(20 * time.Second)
	cfg.maxBatches = 20
	g := startLoad(t, fe.URL(), "twodown", cfg)
	st := finishLoad(t, g)
	strict, lenient := promAPI{name: "dq-1", base: fe.URL()}, promAPI{name: "q-partial", base: partial.URL()}
	verifyAll(t, strict, g, "all up, strict querier")
	verifyAll(t, lenient, g, "all up, partial querier")

	ings[1].kill9()
	ings[2].kill9()
	idx := st.batches
	outage := func(phase string) {
		t.Helper()
		// Writes: never acknowledged, always retryable.
		codes := map[string]int{}
		for range 5 {
			status, retryAfter, err := postRemoteWrite(fe.URL(), g.body(idx, time.Now().UnixMilli()))
			idx++
			switch {
			case err != nil:
				t.Errorf("%s: write: %v", phase, err)
			case status/100 == 2:
				t.Errorf("%s: write acknowledged with %d while two of three replicas are down", phase, status)
			case status != http.StatusServiceUnavailable || retryAfter == "":
				t.Errorf("%s: write answered %d with Retry-After %q; want 503 with Retry-After", phase, status, retryAfter)
			}
			codes[fmt.Sprintf("%d/Retry-After=%s", status, retryAfter)]++
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("%s: writes answered %v", phase, codes)

		// Queries: an instant query, a raw range selector and a range
		// query over the data written while all were up.
		at := time.UnixMilli(st.last)
		queries := []struct {
			path   string
			params url.Values
		}{
			{"/api/v1/query", url.Values{"query": {g.selector()}, "time": {apiTime(at)}}},
			{"/api/v1/query", url.Values{"query": {fmt.Sprintf("%s[%dms]", g.selector(), st.last-st.first+1)}, "time": {apiTime(at)}}},
			{"/api/v1/query_range", url.Values{"query": {"sum(" + g.selector() + ")"}, "start": {apiTime(time.UnixMilli(st.first))}, "end": {apiTime(at)}, "step": {"0.1"}}},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		for _, qq := range queries {
			what := qq.path + " " + qq.params.Get("query")
			a, err := rawQuery(ctx, fe.URL(), qq.path, qq.params)
			switch {
			case err != nil:
				t.Errorf("%s: strict %s: %v", phase, what, err)
			case a.status != http.StatusServiceUnavailable || a.state != "error" || a.errorType != "unavailable":
				t.Errorf("%s: strict %s answered %d %s/%s, want 503 error/unavailable: %.300s", phase, what, a.status, a.state, a.errorType, a.body)
			default:
				t.Logf("%s: strict %s: %.200s", phase, what, a.body)
			}
			a, err = rawQuery(ctx, partial.URL(), qq.path, qq.params)
			incomplete := false
			for _, w := range a.warnings {
				incomplete = incomplete || strings.Contains(w, "incomplete")
			}
			switch {
			case err != nil:
				t.Errorf("%s: partial %s: %v", phase, what, err)
			case a.status != http.StatusOK || a.state != "success" || !incomplete:
				t.Errorf("%s: partial %s answered %d %s with warnings %q; want 200 success with an \"incomplete\" warning: %.300s", phase, what, a.status, a.state, a.warnings, a.body)
			default:
				t.Logf("%s: partial %s: warnings %q", phase, what, a.warnings)
			}
		}
	}
	outage("right after the kill")
	c.awaitRing(30*time.Second, "ing-2 and ing-3 seen dead", func(ms []ringMember) error {
		if err := ingesterDead("ing-2")(ms); err != nil {
			return err
		}
		return ingesterDead("ing-3")(ms)
	})
	outage("after both were declared dead")

	// Back to a quorum: once every node sees ing-2 alive again, writes are
	// acknowledged and both queriers answer complete. How long each takes
	// is measured (a client may first have to reconnect to ing-2).
	restartAt := time.Now()
	ings[1].restart()
	readyIn := time.Since(restartAt)
	seen := c.awaitRing(30*time.Second, "ing-2 alive again, ing-3 still dead", func(ms []ringMember) error {
		for _, m := range ms {
			if m.Name == "ing-2" && !m.Healthy {
				return fmt.Errorf("ing-2 not healthy yet")
			}
		}
		return ingesterDead("ing-3")(ms)
	})
	recovered := eventually(t, 30*time.Second, 100*time.Millisecond, "a write acknowledged with ing-2 back", func() error {
		status, _, err := postRemoteWrite(fe.URL(), g.body(idx, time.Now().UnixMilli()))
		idx++
		if err != nil {
			return err
		}
		if status/100 != 2 {
			return fmt.Errorf("write answered %d", status)
		}
		return nil
	})
	complete := map[string]time.Duration{}
	for _, qr := range []promAPI{strict, lenient} {
		var last error
		began := time.Now()
		complete[qr.name] = eventually(t, 30*time.Second, 100*time.Millisecond, qr.name+" answers complete with ing-2 back", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rc, err := readBatches(ctx, qr, g, g.snapshot())
			if err == nil && (rc.lost > 0 || rc.wrong > 0) {
				err = fmt.Errorf("%s", rc)
			}
			if err != nil && last == nil {
				t.Logf("%s, %v after every node saw ing-2 alive: not complete yet: %.300v", qr.name, time.Since(began).Round(time.Millisecond), err)
			}
			last = err
			return err
		})
		verifyAll(t, qr, g, "ing-2 back, "+qr.name)
	}
	t.Logf("figures: ing-2 ready %v after its restart began, alive on every node %v later; then writes acknowledged again after %v, complete answers after %v (dq-1) and %v (q-partial)",
		readyIn.Round(time.Millisecond), seen.Round(time.Millisecond), recovered.Round(time.Millisecond), complete["dq-1"].Round(time.Millisecond), complete["q-partial"].Round(time.Millisecond))
}

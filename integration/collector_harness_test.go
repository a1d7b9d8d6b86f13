package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The collector harness: a vigil cluster with an embedded etcd node, one
// ingester+querier backend, one distributor and collectors
// (-target=collector), a fleet of fake exporters in the test process, and a
// slot-accounting checker over the `up` series the collectors write.

const (
	// registryPrefix is the default -targets.prefix.
	registryPrefix = "/vigil/targets/"
	// coordPrefix is the default -collector.etcd-prefix: the collectors'
	// load reports (loads/<collector>) and assignment record.
	coordPrefix = "/vigil/collectors/"
)

// collectorFlags go to every collector: load reports every second so that
// Assign works from measured series within the tests' time budget.
var collectorFlags = []string{
	"-collector.load-report-interval=1s",
}

// collectorCluster is an etcd node, a backend (ingester,querier), a
// distributor and collectors. Methods are called from the test goroutine.
type collectorCluster struct {
	*cluster
	etcd       *clusterNode // -target=etcd; not in cluster.nodes (it does not gossip)
	etcdClient string       // http://127.0.0.1:port of the embedded etcd
	backend    *clusterNode // -target=ingester,querier
	dist       *clusterNode // -target=distributor
	collectors []*clusterNode
}

// newCollectorCluster starts etcd, the backend, the distributor and n
// collectors c-1..c-n, each with collectorFlags and then args.
func newCollectorCluster(t *testing.T, n int, args ...string) *collectorCluster {
	t.Helper()
	cc := &collectorCluster{cluster: newCluster(t)}
	cc.startEtcd()
	rf1 := []string{"-distributor.replication-factor=1"}
	cc.backend = cc.start(nodeSpec{name: "be-1", target: "ingester,querier", args: rf1})
	cc.dist = cc.start(nodeSpec{name: "dist-1", target: "distributor", args: rf1})
	cc.awaitRing(60*time.Second, "be-1 active", activeIngesters("be-1"))
	for i := 1; i <= n; i++ {
		cc.startCollector(fmt.Sprintf("c-%d", i), args...)
	}
	return cc
}

// startEtcd starts the -target=etcd node on fresh ports.
func (cc *collectorCluster) startEtcd() {
	cc.t.Helper()
	dataDir := cc.t.TempDir()
	e := &clusterNode{nodeName: "etcd", target: "etcd", dataDir: dataDir}
	e.proc = launch(cc.t, 3, func(ports []int) *proc {
		cc.etcdClient = "http://" + loopback(ports[1])
		return &proc{
			t:    cc.t,
			name: "etcd",
			path: cc.bin,
			args: []string{
				"-target=etcd",
				"-data.dir", dataDir,
				"-http.listen-address", loopback(ports[0]),
				"-etcd.listen-client-urls", cc.etcdClient,
				"-etcd.listen-peer-urls", "http://" + loopback(ports[2]),
				"-self-scrape.interval=0",
			},
			addr:         loopback(ports[0]),
			logPath:      filepath.Join(cc.logs, "etcd.log"),
			probe:        httpProbe("http://" + loopback(ports[0]) + "/-/ready"),
			readyTimeout: vigilReadyTimeout,
			cleanTerm:    true,
		}
	})
	cc.etcd = e
}

// startCollector starts a -target=collector node that joins the cluster.
func (cc *collectorCluster) startCollector(name string, args ...string) *clusterNode {
	cc.t.Helper()
	all := append([]string{"-etcd.endpoints=" + cc.etcdClient}, collectorFlags...)
	n := cc.start(nodeSpec{name: name, target: "collector", args: append(all, args...)})
	cc.collectors = append(cc.collectors, n)
	return n
}

// liveCollectors returns the collectors whose process runs.
func (cc *collectorCluster) liveCollectors() []*clusterNode {
	var out []*clusterNode
	for _, n := range cc.collectors {
		if n.running() {
			out = append(out, n)
		}
	}
	return out
}

func (cc *collectorCluster) querier() promAPI { return promAPI{name: "be-1", base: cc.backend.URL()} }

// --- fake exporters -------------------------------------------------------

// fakeExporter serves a constant exposition of `series` gauges: two
// scrapes of one slot by two collectors yield identical samples.
type fakeExporter struct {
	index    int
	series   int
	srv      *httptest.Server
	body     []byte
	requests atomic.Int64
}

func (e *fakeExporter) addr() string { return e.srv.Listener.Addr().String() }

// scrapeURL is the URL a collector scrapes (default scheme and path).
func (e *fakeExporter) scrapeURL() string { return "http://" + e.addr() + "/metrics" }

func (e *fakeExporter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/metrics" {
		http.NotFound(w, r)
		return
	}
	e.requests.Add(1)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write(e.body)
}

// exporterFleet is one fake exporter per target, each on its own loopback
// port, closed when the test ends.
type exporterFleet struct {
	exporters []*fakeExporter
}

// fakeValue is the constant value of series s of exporter i.
func fakeValue(i, s int) float64 { return float64(i)*100_000 + float64(s) }

// startExporterFleet starts len(sizes) exporters; exporter i serves
// sizes[i] series.
func startExporterFleet(t *testing.T, sizes []int) *exporterFleet {
	t.Helper()
	f := &exporterFleet{}
	for i, n := range sizes {
		var b bytes.Buffer
		b.WriteString("# HELP fake_series A constant series of a fake exporter.\n# TYPE fake_series gauge\n")
		for s := range n {
			fmt.Fprintf(&b, "fake_series{exporter=\"%d\",series=\"%d\"} %g\n", i, s, fakeValue(i, s))
		}
		e := &fakeExporter{index: i, series: n, body: b.Bytes()}
		e.srv = httptest.NewServer(e)
		t.Cleanup(e.srv.Close)
		f.exporters = append(f.exporters, e)
	}
	return f
}

func (f *exporterFleet) addrs() []string {
	out := make([]string, len(f.exporters))
	for i, e := range f.exporters {
		out[i] = e.addr()
	}
	return out
}

func (f *exporterFleet) urls() []string {
	out := make([]string, len(f.exporters))
	for i, e := range f.exporters {
		out[i] = e.scrapeURL()
	}
	return out
}

func (f *exporterFleet) totalSeries() int {
	n := 0
	for _, e := range f.exporters {
		n += e.series
	}
	return n
}

func (f *exporterFleet) requests() int64 {
	var n int64
	for _, e := range f.exporters {
		n += e.requests.Load()
	}
	return n
}

// byURL returns the exporter that serves u, or nil.
func (f *exporterFleet) byURL(u string) *fakeExporter {
	for _, e := range f.exporters {
		if e.scrapeURL() == u {
			return e
		}
	}
	return nil
}

// --- registry -------------------------------------------------------------

// registryAnswer is the envelope of the registry HTTP API.
type registryAnswer struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// registryDo sends one request to the registry API of the node at base.
func registryDo(ctx context.Context, base, method, path string, body []byte) (int, registryAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
	if err != nil {
		return 0, registryAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, registryAnswer{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, registryAnswer{}, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	var a registryAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return resp.StatusCode, a, fmt.Errorf("%s %s answered %s with a body that is not JSON: %.300s", method, path, resp.Status, b)
	}
	return resp.StatusCode, a, nil
}

// registerJob sets the job's defaults through the registry API.
func (cc *collectorCluster) registerJob(job, value string) {
	cc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, a, err := registryDo(ctx, cc.etcd.URL(), http.MethodPut, "/api/v1/registry/jobs/"+url.PathEscape(job), []byte(value))
	if err != nil || code != http.StatusOK {
		cc.t.Fatalf("PUT job %s %s: %d %+v %v", job, value, code, a, err)
	}
}

// registerTargets adds one target per address to job through the
// registry API (its defaults come from the job).
func (cc *collectorCluster) registerTargets(job string, addrs []string) {
	cc.t.Helper()
	began := time.Now()
	for _, a := range addrs {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		body, _ := json.Marshal(map[string]string{"job": job, "address": a})
		code, ans, err := registryDo(ctx, cc.etcd.URL(), http.MethodPost, "/api/v1/registry/targets", body)
		cancel()
		if err != nil || code != http.StatusOK {
			cc.t.Fatalf("add target %s: %d %+v %v", body, code, ans, err)
		}
	}
	cc.t.Logf("registered %d targets of job %s in %v", len(addrs), job, time.Since(began).Round(time.Millisecond))
}

// etcdPut writes key=value straight into etcd through its JSON gateway
// (/v3/kv/put), bypassing the registry's validation. The gateway keeps the
// test binary free of etcd's gRPC client, whose process-wide goroutines
// would trip TestMain's leak check.
func etcdPut(ctx context.Context, endpoint, key string, value []byte) error {
	body, _ := json.Marshal(map[string]string{
		"key":   base64.StdEncoding.EncodeToString([]byte(key)),
		"value": base64.StdEncoding.EncodeToString(value),
	})
	_, err := etcdGateway(ctx, endpoint, "/v3/kv/put", body)
	return err
}

// etcdRange returns every key under prefix and its value.
func etcdRange(ctx context.Context, endpoint, prefix string) (map[string][]byte, error) {
	end := []byte(prefix)
	end[len(end)-1]++
	body, _ := json.Marshal(map[string]string{
		"key":       base64.StdEncoding.EncodeToString([]byte(prefix)),
		"range_end": base64.StdEncoding.EncodeToString(end),
	})
	b, err := etcdGateway(ctx, endpoint, "/v3/kv/range", body)
	if err != nil {
		return nil, err
	}
	var out struct {
		KVs []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"kvs"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode etcd range answer: %w: %.300s", err, b)
	}
	kvs := map[string][]byte{}
	for _, kv := range out.KVs {
		k, err1 := base64.StdEncoding.DecodeString(kv.Key)
		v, err2 := base64.StdEncoding.DecodeString(kv.Value)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("decode etcd key/value %q: %v %v", kv.Key, err1, err2)
		}
		kvs[string(k)] = v
	}
	return kvs, nil
}

func etcdGateway(ctx context.Context, endpoint, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("etcd %s: %s: %.300s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// --- collector state ------------------------------------------------------

// scrapeTarget is one entry of a collector's /api/v1/targets: the
// Prometheus fields and Vigil's owner, state and series.
type scrapeTarget struct {
	Labels     map[string]string `json:"labels"`
	ScrapePool string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Health     string            `json:"health"`
	LastScrape string            `json:"lastScrape"`
	LastError  string            `json:"lastError"`
	Owner      string            `json:"owner"`
	State      string            `json:"state"`
	Series     float64           `json:"series"`
}

// collectorTargets returns the collector's /api/v1/targets: the targets it
// scrapes, or with all every registry target with its owner.
func collectorTargets(ctx context.Context, n *clusterNode, all bool) ([]scrapeTarget, error) {
	path := "/api/v1/targets"
	if all {
		path += "?scope=all"
	}
	body, err := n.get(ctx, path)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ActiveTargets []scrapeTarget `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w: %.300s", n.nodeName, path, err, body)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("%s %s: status %q: %.300s", n.nodeName, path, resp.Status, body)
	}
	return resp.Data.ActiveTargets, nil
}

// ownership is what the live collectors report about a set of targets.
type ownership struct {
	owner map[string]string                  // scrape URL → owner, as the first collector sees it (scope=all)
	local map[string]map[string]scrapeTarget // collector → scrape URL → its own entry
}

// ownedBy returns the scrape URLs owned by name, sorted.
func (o ownership) ownedBy(name string) []string {
	var out []string
	for u, owner := range o.owner {
		if owner == name {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// summary renders how many targets each collector owns.
func (o ownership) summary() string {
	count := map[string]int{}
	for _, owner := range o.owner {
		count[owner]++
	}
	var names []string
	for n := range count {
		names = append(names, n)
	}
	slices.Sort(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s:%d", n, count[n]))
	}
	return strings.Join(parts, " ")
}

// readOwnership asks every live collector for its own targets and for
// every target's owner, and checks that urls are settled: every live
// collector names the same live owner for each, each collector scrapes
// exactly the targets it owns (no handover in progress), and every owned
// target is up.
func (cc *collectorCluster) readOwnership(urls []string) (ownership, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	live := cc.liveCollectors()
	names := map[string]bool{}
	for _, n := range live {
		names[n.nodeName] = true
	}
	o := ownership{local: map[string]map[string]scrapeTarget{}}
	for _, n := range live {
		all, err := collectorTargets(ctx, n, true)
		if err != nil {
			return o, err
		}
		owners := map[string]string{}
		for _, st := range all {
			owners[st.ScrapeURL] = st.Owner
		}
		if o.owner == nil {
			o.owner = owners
		}
		for _, u := range urls {
			switch owner := owners[u]; {
			case owner == "":
				return o, fmt.Errorf("%s: target %s has no owner (scope=all lists %d targets)", n.nodeName, u, len(all))
			case !names[owner]:
				return o, fmt.Errorf("%s: target %s owned by %q, which is not a live collector", n.nodeName, u, owner)
			case owner != o.owner[u]:
				return o, fmt.Errorf("collectors disagree on %s: %s says %q, %s says %q", u, live[0].nodeName, o.owner[u], n.nodeName, owner)
			}
		}
		mine, err := collectorTargets(ctx, n, false)
		if err != nil {
			return o, err
		}
		m := map[string]scrapeTarget{}
		for _, st := range mine {
			m[st.ScrapeURL] = st
		}
		o.local[n.nodeName] = m
	}
	want := map[string]bool{}
	for _, u := range urls {
		want[u] = true
	}
	for name, m := range o.local {
		for u, st := range m {
			if !want[u] {
				continue
			}
			if o.owner[u] != name {
				return o, fmt.Errorf("%s still scrapes %s (owner %q, state %q): handover in progress", name, u, o.owner[u], st.State)
			}
			if st.Health != "up" {
				return o, fmt.Errorf("%s: target %s is %q (state %q, last scrape %q, error %q)", name, u, st.Health, st.State, st.LastScrape, st.LastError)
			}
		}
	}
	for _, u := range urls {
		if _, ok := o.local[o.owner[u]][u]; !ok {
			return o, fmt.Errorf("%s owns %s but does not list it among its targets", o.owner[u], u)
		}
	}
	return o, nil
}

// awaitSettled waits until readOwnership accepts urls and reports the same
// owners twice in a row at least hold apart, and returns the ownership.
func (cc *collectorCluster) awaitSettled(timeout, hold time.Duration, what string, urls []string) ownership {
	cc.t.Helper()
	var last ownership
	var since time.Time
	took := eventually(cc.t, timeout, 250*time.Millisecond, what, func() error {
		o, err := cc.readOwnership(urls)
		if err != nil {
			since = time.Time{}
			return err
		}
		if since.IsZero() || !maps.Equal(o.owner, last.owner) {
			last, since = o, time.Now()
			return fmt.Errorf("ownership changed (%s); waiting %v for it to hold", o.summary(), hold)
		}
		if time.Since(since) < hold {
			return fmt.Errorf("ownership (%s) held for %v of %v", o.summary(), time.Since(since).Round(time.Millisecond), hold)
		}
		last = o
		return nil
	})
	cc.t.Logf("%s after %v: %s", what, took.Round(time.Millisecond), last.summary())
	return last
}

// logSpoolMetrics logs the spool and batcher metrics of the collectors.
func logSpoolMetrics(t *testing.T, collectors []*clusterNode, when string) {
	t.Helper()
	t.Logf("collector metrics %s:", when)
	logMetrics(t, collectors, spoolMetricNames...)
}

var spoolMetricNames = []string{
	"vigil_collector_spool_bytes",
	"vigil_collector_spool_batches",
	"vigil_collector_spool_oldest_age_seconds",
	"vigil_collector_spool_replayed_samples_total",
	"vigil_collector_spool_dropped_samples_total",
	"vigil_collector_spool_corrupt_frames_total",
	"vigil_collector_batcher_spooled_samples_total",
	"vigil_collector_batcher_sent_samples_total",
}

// --- slot accounting ------------------------------------------------------

// slotClock is a target's slots: slot k starts at k*interval + offset (ms).
type slotClock struct{ interval, offset int64 }

// expectedSlotClock computes a target's slots as docs/collector.md
// ("Slots") specifies: FNV-1a 64 of job 0xff address 0xff metrics_path 0xff
// encoded params 0xff, modulo the interval. Computed here independently of
// the collector package, so the test checks the documented formula.
func expectedSlotClock(job, address, metricsPath string, params url.Values, interval time.Duration) slotClock {
	iv := interval.Milliseconds()
	h := fnv.New64a()
	for _, s := range []string{job, address, metricsPath, params.Encode()} {
		h.Write([]byte(s))
		h.Write([]byte{0xff})
	}
	return slotClock{interval: iv, offset: int64(h.Sum64() % uint64(iv))}
}

// slot returns the slot containing ms.
func (c slotClock) slot(ms int64) int64 {
	d := ms - c.offset
	k := d / c.interval
	if d%c.interval < 0 {
		k--
	}
	return k
}

func (c slotClock) start(k int64) int64 { return k*c.interval + c.offset }

// slotReport is the slot accounting of one target's `up` series.
type slotReport struct {
	instance   string
	series     int     // distinct label sets with this instance
	slots      int     // slots starting in [from, to]
	samples    int     // samples in [from, to]
	misaligned []int64 // timestamps that are not a slot start
	doubled    []int64 // slot starts with more than one sample
	notUp      int     // samples whose value is not 1
	missing    []int64 // starts of slots without a sample, outside the allowed gaps
	allowed    int     // slots without a sample inside the allowed gaps
	longestGap int64   // longest run of slots without a sample, ms (allowed ones included)
	gapAt      int64   // start of that run
	first      int64   // first sample in [from, to]; 0 if none
	last       int64   // last sample in [from, to]; 0 if none
}

// problems lists what violates exactly-one-sample-per-slot.
func (r *slotReport) problems() []string {
	var out []string
	if r.series != 1 {
		out = append(out, fmt.Sprintf("%d series", r.series))
	}
	if len(r.misaligned) > 0 {
		out = append(out, fmt.Sprintf("%d misaligned samples (first at %s)", len(r.misaligned), fmtMs(r.misaligned[0])))
	}
	if len(r.doubled) > 0 {
		out = append(out, fmt.Sprintf("%d slots with more than one sample (first at %s)", len(r.doubled), fmtMs(r.doubled[0])))
	}
	if len(r.missing) > 0 {
		out = append(out, fmt.Sprintf("%d missing slots outside the allowed gaps (first at %s)", len(r.missing), fmtMs(r.missing[0])))
	}
	if r.notUp > 0 {
		out = append(out, fmt.Sprintf("%d samples with up != 1", r.notUp))
	}
	return out
}

func (r *slotReport) String() string {
	s := fmt.Sprintf("%s: %d/%d slots, %d samples, %d allowed missing, longest gap %v", r.instance, r.slots-r.allowed-len(r.missing), r.slots, r.samples, r.allowed, time.Duration(r.longestGap)*time.Millisecond)
	if r.longestGap > 0 {
		s += " at " + fmtMs(r.gapAt)
	}
	if p := r.problems(); len(p) > 0 {
		s += "; " + strings.Join(p, "; ")
	}
	return s
}

func fmtMs(ms int64) string { return time.UnixMilli(ms).Format("15:04:05.000") }

// slotAccounting reads `up{job=job}` raw over [from, to] (ms) through the
// querier and accounts every target of addrs slot by slot. allow, if set,
// says whether a missing slot of a target is expected (a kill window).
func slotAccounting(ctx context.Context, q promAPI, job string, addrs []string, interval time.Duration, from, to int64, allow func(addr string, slotStart int64) bool) (map[string]*slotReport, error) {
	sel := fmt.Sprintf(`up{job=%q}[%dms]`, job, to-from+1)
	res, err := q.instant(ctx, sel, time.UnixMilli(to))
	if err != nil {
		return nil, err
	}
	if res.ResultType != "matrix" {
		return nil, fmt.Errorf("%s: result type %q, want matrix", sel, res.ResultType)
	}
	byInstance := map[string][]resultPoint{}
	series := map[string]int{}
	for _, s := range res.Series {
		inst := s.Labels.Get("instance")
		series[inst]++
		byInstance[inst] = append(byInstance[inst], s.Points...)
	}
	out := map[string]*slotReport{}
	for _, addr := range addrs {
		clock := expectedSlotClock(job, addr, "/metrics", nil, interval)
		r := &slotReport{instance: addr, series: series[addr]}
		perSlot := map[int64]int{}
		for _, p := range byInstance[addr] {
			if p.T < from || p.T > to {
				continue
			}
			r.samples++
			if r.first == 0 || p.T < r.first {
				r.first = p.T
			}
			r.last = max(r.last, p.T)
			if p.V != 1 {
				r.notUp++
			}
			k := clock.slot(p.T)
			if clock.start(k) != p.T {
				r.misaligned = append(r.misaligned, p.T)
				continue
			}
			perSlot[k]++
			if perSlot[k] == 2 {
				r.doubled = append(r.doubled, p.T)
			}
		}
		kFrom, kTo := clock.slot(from), clock.slot(to)
		if clock.start(kFrom) < from {
			kFrom++
		}
		var run int64
		for k := kFrom; k <= kTo; k++ {
			r.slots++
			if perSlot[k] > 0 {
				run = 0
				continue
			}
			if allow != nil && allow(addr, clock.start(k)) {
				r.allowed++
			} else {
				r.missing = append(r.missing, clock.start(k))
			}
			run++
			if run*clock.interval > r.longestGap {
				r.longestGap, r.gapAt = run*clock.interval, clock.start(k-run+1)
			}
		}
		out[addr] = r
	}
	return out, nil
}

// checkSlots runs slotAccounting, logs a summary (and every target with a
// gap or a problem) and fails the test for every problem. It returns the
// reports.
func checkSlots(t *testing.T, q promAPI, job string, addrs []string, interval time.Duration, from, to int64, allow func(addr string, slotStart int64) bool) map[string]*slotReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reps, err := slotAccounting(ctx, q, job, addrs, interval, from, to, allow)
	if err != nil {
		t.Fatalf("slot accounting of job %s: %v", job, err)
	}
	var slots, samples, allowed, missing int
	var longest int64
	for _, addr := range addrs {
		r := reps[addr]
		slots += r.slots
		samples += r.samples
		allowed += r.allowed
		missing += len(r.missing)
		longest = max(longest, r.longestGap)
		if p := r.problems(); len(p) > 0 {
			t.Errorf("job %s target %s", job, r)
		} else if r.longestGap > 0 {
			t.Logf("job %s target %s", job, r)
		}
	}
	t.Logf("slot accounting of job %s over %s..%s (%v, interval %v): %d targets, %d slots, %d samples, %d missing inside the allowed gaps, %d outside, longest gap %v",
		job, fmtMs(from), fmtMs(to), time.Duration(to-from)*time.Millisecond, interval, len(addrs), slots, samples, allowed, missing, time.Duration(longest)*time.Millisecond)
	return reps
}

// awaitUpAfter waits until every target of addrs has an `up` sample at or
// after ms (the data made it through to the querier).
func awaitUpAfter(t *testing.T, q promAPI, job string, addrs []string, interval time.Duration, ms int64, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, 500*time.Millisecond, fmt.Sprintf("every target of %s has up after %s", job, fmtMs(ms)), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		now := time.Now().UnixMilli()
		reps, err := slotAccounting(ctx, q, job, addrs, interval, ms, now, nil)
		if err != nil {
			return err
		}
		var late []string
		for _, a := range addrs {
			if reps[a].samples == 0 {
				late = append(late, a)
			}
		}
		if len(late) > 0 {
			return fmt.Errorf("%d targets without up since %s, e.g. %s", len(late), fmtMs(ms), late[0])
		}
		return nil
	})
}

// loadFigures sums, per collector, the series of the targets it owns as its
// /api/v1/targets reports them.
func loadFigures(o ownership) (loads map[string]float64, mean, maxLoad float64) {
	loads = map[string]float64{}
	for name, m := range o.local {
		loads[name] = 0
		for u, st := range m {
			if o.owner[u] == name {
				loads[name] += st.Series
			}
		}
	}
	for _, l := range loads {
		mean += l
		maxLoad = math.Max(maxLoad, l)
	}
	if len(loads) > 0 {
		mean /= float64(len(loads))
	}
	return loads, mean, maxLoad
}

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// The collector tests run the collector role (-target=collector) against
// an embedded etcd node (-target=etcd), one ingester+querier backend and one
// distributor, both with replication factor 1, and a fleet of fake
// exporters in the test process. Scrape targets are registered through the
// registry HTTP API. What the collectors wrote is checked slot by slot
// (checkSlots): every target's `up` samples sit on its slot starts, one per
// slot, none missing outside the gaps a test allows.

// smallFleet returns n sizes of 10 series.
func smallFleet(n int) []int {
	sizes := make([]int, n)
	for i := range sizes {
		sizes[i] = 10
	}
	return sizes
}

// TestCollectorShardLoad scrapes 300 targets of uneven sizes (10 to 5,000
// series, 58,250 in all) with three collectors and checks that once the
// load reports are in and ownership settled, the most loaded collector
// carries at most 1.25 × the mean (-collector.epsilon 0.25).
func TestCollectorShardLoad(t *testing.T) {
	logDuration(t)
	sizes := make([]int, 300)
	for i := range sizes {
		switch {
		case i%40 == 0:
			sizes[i] = 5000
		case i%40 == 20:
			sizes[i] = 1500
		case i%30 == 7:
			sizes[i] = 500
		default:
			sizes[i] = 10
		}
	}
	fleet := startExporterFleet(t, sizes)
	cc := newCollectorCluster(t, 3)
	const job = "shard"
	const interval = 10 * time.Second
	cc.registerJob(job, `{"interval": "10s"}`)
	cc.registerTargets(job, fleet.addrs())
	urls := fleet.urls()

	eventually(t, 60*time.Second, time.Second, "every collector published a load report", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		kvs, err := etcdRange(ctx, cc.etcdClient, coordPrefix+"loads/")
		if err != nil {
			return err
		}
		for _, n := range cc.liveCollectors() {
			if _, ok := kvs[coordPrefix+"loads/"+n.nodeName]; !ok {
				return fmt.Errorf("no key %sloads/%s (keys: %v)", coordPrefix, n.nodeName, slices.Sorted(maps.Keys(kvs)))
			}
		}
		return nil
	})
	// Hold longer than an interval plus the handover overlap: a move
	// caused by the first load reports must have finished.
	o := cc.awaitSettled(150*time.Second, 20*time.Second, "every target scraped, ownership settled", urls)
	settled := time.Now().UnixMilli()

	// Load reports as stored in etcd, for the log.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	kvs, err := etcdRange(ctx, cc.etcdClient, coordPrefix+"loads/")
	cancel()
	if err != nil {
		t.Fatalf("read load reports: %v", err)
	}
	for k, v := range kvs {
		t.Logf("load report %s: %d bytes: %.200s", k, len(v), v)
	}

	// Every target's measured series: its exposition, plus at most the 5
	// synthetic series.
	for name, m := range o.local {
		for u, st := range m {
			e := fleet.byURL(u)
			if e == nil || o.owner[u] != name {
				continue
			}
			if st.Series < float64(e.series) || st.Series > float64(e.series+5) {
				t.Errorf("%s reports %g series for %s, which serves %d", name, st.Series, u, e.series)
			}
		}
	}
	loads, mean, maxLoad := loadFigures(o)
	for _, n := range slices.Sorted(maps.Keys(loads)) {
		t.Logf("load of %s: %d targets, %.0f series (%.3f × mean)", n, len(o.ownedBy(n)), loads[n], loads[n]/mean)
	}
	t.Logf("figures: %d targets, %d exposition series; mean load %.0f, max %.0f = %.3f × mean (bound 1.25)", len(urls), fleet.totalSeries(), mean, maxLoad, maxLoad/mean)
	if maxLoad > 1.25*mean {
		t.Errorf("most loaded collector carries %.0f series = %.3f × the mean %.0f; want ≤ 1.25 × mean", maxLoad, maxLoad/mean, mean)
	}

	// Once settled, every slot of every target is scraped exactly once.
	time.Sleep(35 * time.Second)
	to := time.Now().Add(-5 * time.Second).UnixMilli()
	awaitUpAfter(t, cc.querier(), job, fleet.addrs(), interval, to, 30*time.Second)
	checkSlots(t, cc.querier(), job, fleet.addrs(), interval, settled, to, nil)
	t.Logf("exporters answered %d requests", fleet.requests())
	logMetrics(t, cc.liveCollectors(), "vigil_collector_scrape_total", "vigil_collector_scrape_samples_total", "vigil_collector_scrape_loops")
}

// TestCollectorHandover scrapes 30 targets at 1 s with three collectors,
// kills one with SIGKILL, adds a fourth, then stops one with SIGTERM. Every
// slot of every target has exactly one `up` sample, except slots of the
// killed collector's targets during the failure-detection window (measured
// and bounded by 15 s); the graceful changes leave no gap.
func TestCollectorHandover(t *testing.T) {
	logDuration(t)
	fleet := startExporterFleet(t, smallFleet(30))
	cc := newCollectorCluster(t, 3)
	const job = "handover"
	const interval = time.Second
	cc.registerJob(job, `{"interval": "1s"}`)
	cc.registerTargets(job, fleet.addrs())
	urls := fleet.urls()
	addrOf := map[string]string{}
	for _, e := range fleet.exporters {
		addrOf[e.scrapeURL()] = e.addr()
	}
	cc.awaitSettled(90*time.Second, 3*time.Second, "initial ownership settled", urls)
	from := time.Now().UnixMilli()
	time.Sleep(6 * time.Second)

	// Kill the collector that owns the most targets.
	o := cc.awaitSettled(10*time.Second, 0, "ownership before the kill", urls)
	var victim *clusterNode
	for _, n := range cc.liveCollectors() {
		if victim == nil || len(o.ownedBy(n.nodeName)) > len(o.ownedBy(victim.nodeName)) {
			victim = n
		}
	}
	victimAddrs := map[string]bool{}
	for _, u := range o.ownedBy(victim.nodeName) {
		victimAddrs[addrOf[u]] = true
	}
	if len(victimAddrs) == 0 {
		t.Fatalf("%s owns no target: %s", victim.nodeName, o.summary())
	}
	t.Logf("killing %s, which owns %d of %d targets (%s)", victim.nodeName, len(victimAddrs), len(urls), o.summary())
	killedAt := time.Now()
	victim.kill9()
	cc.awaitSettled(60*time.Second, 0, "survivors own and scrape every target", urls)
	recovered := time.Now()
	detection := recovered.Sub(killedAt)
	t.Logf("figures: %s's targets were scraped again by the survivors %v after the kill (as polled)", victim.nodeName, detection.Round(time.Millisecond))

	time.Sleep(6 * time.Second)
	added := cc.startCollector("c-4")
	o = cc.awaitSettled(60*time.Second, 3*time.Second, "c-4 joined and took its share", urls)
	if len(o.ownedBy(added.nodeName)) == 0 {
		t.Errorf("c-4 owns no target after it joined: %s", o.summary())
	}
	time.Sleep(6 * time.Second)

	var leaving *clusterNode
	for _, n := range cc.liveCollectors() {
		if n != added {
			leaving = n
			break
		}
	}
	t.Logf("stopping %s with SIGTERM; it owns %d targets", leaving.nodeName, len(o.ownedBy(leaving.nodeName)))
	if err := leaving.stop(); err != nil {
		t.Errorf("SIGTERM %s: %v", leaving.nodeName, err)
	}
	cc.awaitSettled(60*time.Second, 3*time.Second, "ownership settled after the SIGTERM", urls)
	time.Sleep(6 * time.Second)

	to := time.Now().Add(-3 * time.Second).UnixMilli()
	awaitUpAfter(t, cc.querier(), job, fleet.addrs(), interval, to, 30*time.Second)
	// A slot of the killed collector's targets may be missing from the slot
	// before the kill (a scrape whose push had not returned) until the
	// survivors were seen scraping them.
	allowFrom, allowTo := killedAt.Add(-2*interval).UnixMilli(), recovered.Add(interval).UnixMilli()
	reps := checkSlots(t, cc.querier(), job, fleet.addrs(), interval, from, to, func(addr string, slot int64) bool {
		return victimAddrs[addr] && slot >= allowFrom && slot <= allowTo
	})
	var gaps []time.Duration
	for a := range victimAddrs {
		gaps = append(gaps, time.Duration(reps[a].longestGap)*time.Millisecond)
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	t.Logf("figures: gap of the killed collector's %d targets: min %v, median %v, max %v; detection as polled %v",
		len(gaps), gaps[0], gaps[len(gaps)/2], gaps[len(gaps)-1], detection.Round(time.Millisecond))
	if maxGap := gaps[len(gaps)-1]; maxGap > 15*time.Second {
		t.Errorf("failure-detection gap %v, want ≤ 15s", maxGap)
	}
	var samples int
	for _, r := range reps {
		samples += r.samples
	}
	t.Logf("figures: exporters answered %d requests for %d stored slots since the start (extra scrapes are handover overlap and slots before/after the window)", fleet.requests(), samples)
	logMetrics(t, cc.liveCollectors(), "vigil_collector_scrape_total", "vigil_collector_scrape_loops")
	logMetrics(t, []*clusterNode{cc.backend}, "vigil_storage_duplicate_samples_total", "vigil_storage_rejected_samples_total")
}

// TestCollectorDistributorsDown kills the only distributor for two minutes
// while two collectors scrape 20 targets at 1 s; the collectors spool, and
// once the distributor is back (same flags, ports and name) and the spools
// are replayed, no slot of `up` is missing over the whole window.
func TestCollectorDistributorsDown(t *testing.T) {
	logDuration(t)
	fleet := startExporterFleet(t, smallFleet(20))
	cc := newCollectorCluster(t, 2)
	const job = "spool"
	const interval = time.Second
	cc.registerJob(job, `{"interval": "1s"}`)
	cc.registerTargets(job, fleet.addrs())
	cc.awaitSettled(90*time.Second, 3*time.Second, "ownership settled", fleet.urls())
	from := time.Now().UnixMilli()
	time.Sleep(5 * time.Second)

	cc.dist.kill9()
	down := time.Now()
	const outage = 2 * time.Minute
	for time.Since(down) < outage {
		time.Sleep(min(30*time.Second, outage-time.Since(down)))
		for _, n := range cc.collectors {
			if !n.running() {
				t.Fatalf("%s exited while the distributor was down: %v", n.nodeName, n.exitErr())
			}
		}
		logSpoolMetrics(t, cc.collectors, fmt.Sprintf("%v into the outage", time.Since(down).Round(time.Second)))
	}
	cc.dist.restart()
	up := time.Now()
	var spooled float64
	for _, n := range cc.collectors {
		v, err := n.metricSum("vigil_collector_batcher_spooled_samples_total")
		if err != nil {
			t.Fatal(err)
		}
		spooled += v
	}
	if spooled == 0 {
		t.Errorf("the collectors spooled no sample during a %v outage of the only distributor", outage)
	}
	took := eventually(t, 2*time.Minute, 500*time.Millisecond, "both spools replayed", func() error {
		for _, n := range cc.collectors {
			for _, m := range []string{"vigil_collector_spool_batches", "vigil_collector_spool_bytes"} {
				v, err := n.metricSum(m)
				if err != nil {
					return err
				}
				if v != 0 {
					return fmt.Errorf("%s: %s = %g", n.nodeName, m, v)
				}
			}
		}
		return nil
	})
	t.Logf("figures: outage %v; %g samples spooled; spools empty %v after the distributor was ready again", up.Sub(down).Round(time.Millisecond), spooled, took.Round(time.Millisecond))
	logSpoolMetrics(t, cc.collectors, "after the replay")
	for _, n := range cc.collectors {
		v, err := n.metricSum("vigil_collector_spool_dropped_samples_total")
		if err != nil {
			t.Fatal(err)
		}
		if v != 0 {
			t.Errorf("%s dropped %g spooled samples", n.nodeName, v)
		}
	}

	time.Sleep(3 * time.Second)
	to := time.Now().Add(-3 * time.Second).UnixMilli()
	awaitUpAfter(t, cc.querier(), job, fleet.addrs(), interval, to, 30*time.Second)
	checkSlots(t, cc.querier(), job, fleet.addrs(), interval, from, to, nil)
}

// TestCollectorEtcdDown kills the etcd node: the collectors keep their last
// snapshot and keep scraping, so every target has every slot of `up` for at
// least 20 s after etcd died; and a collector still stops cleanly within
// 30 s of SIGTERM while etcd is down.
func TestCollectorEtcdDown(t *testing.T) {
	logDuration(t)
	fleet := startExporterFleet(t, smallFleet(20))
	cc := newCollectorCluster(t, 2)
	const job = "etcddown"
	const interval = time.Second
	cc.registerJob(job, `{"interval": "1s"}`)
	cc.registerTargets(job, fleet.addrs())
	cc.awaitSettled(90*time.Second, 3*time.Second, "ownership settled", fleet.urls())
	from := time.Now().UnixMilli()
	time.Sleep(3 * time.Second)

	cc.etcd.kill9()
	killed := time.Now()
	for range 5 {
		time.Sleep(5 * time.Second)
		for _, n := range cc.collectors {
			if !n.running() {
				t.Fatalf("%s exited after etcd died: %v", n.nodeName, n.exitErr())
			}
		}
	}
	to := time.Now().Add(-3 * time.Second).UnixMilli()
	awaitUpAfter(t, cc.querier(), job, fleet.addrs(), interval, to, 30*time.Second)
	reps := checkSlots(t, cc.querier(), job, fleet.addrs(), interval, from, to, nil)
	want := killed.Add(20 * time.Second).UnixMilli()
	var earliest int64
	for _, a := range fleet.addrs() {
		r := reps[a]
		if earliest == 0 || r.last < earliest {
			earliest = r.last
		}
		if r.last < want {
			t.Errorf("target %s: last up sample at %s, want one at or after %s (20 s after etcd died)", a, fmtMs(r.last), fmtMs(want))
		}
	}
	t.Logf("figures: etcd killed at %s; the target scraped least recently has up at %s (%v after the kill)",
		fmtMs(killed.UnixMilli()), fmtMs(earliest), time.Duration(earliest-killed.UnixMilli())*time.Millisecond)
	for _, n := range cc.collectors {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := httpProbe(n.URL() + "/-/ready")(ctx)
		cancel()
		t.Logf("%s /-/ready with etcd down: %v", n.nodeName, err)
	}
	logMetrics(t, cc.collectors, "vigil_collector_registry_watch_errors_total", "vigil_collector_registry_resyncs_total", "vigil_collector_registry_reachable")
	// 25 s after the kill every collector's registry watch has noticed
	// (it probes every -targets.request-timeout, 10 s).
	for _, n := range cc.collectors {
		if v, err := n.metricSum("vigil_collector_registry_reachable"); err != nil || v != 0 {
			t.Errorf("%s: vigil_collector_registry_reachable = %v (%v) with etcd down for 25 s, want 0", n.nodeName, v, err)
		}
	}

	// A collector asked to stop while etcd is down exits, cleanly, within
	// the harness' SIGTERM grace (stopGrace, 30 s).
	leaving := cc.collectors[1]
	began := time.Now()
	if err := leaving.stop(); err != nil {
		t.Errorf("SIGTERM %s with etcd down: %v", leaving.nodeName, err)
		// The other collector would hang the same way at cleanup.
		for _, n := range cc.liveCollectors() {
			n.kill9()
		}
		return
	}
	t.Logf("figures: %s stopped by SIGTERM with etcd down in %v", leaving.nodeName, time.Since(began).Round(time.Millisecond))
}

// TestCollectorBadRegistryValues: the registry API refuses invalid values
// with 400 naming the problem and writes nothing; invalid values written
// straight into etcd do not crash or unready the collectors, are listed as
// invalid, and the valid targets keep being scraped (one more valid target
// written straight into etcd after them is picked up).
func TestCollectorBadRegistryValues(t *testing.T) {
	logDuration(t)
	fleet := startExporterFleet(t, smallFleet(11))
	cc := newCollectorCluster(t, 2)
	const job = "good"
	const interval = time.Second
	addrs, urls := fleet.addrs(), fleet.urls()
	cc.registerJob(job, `{"interval": "1s"}`)
	cc.registerTargets(job, addrs[:10])
	cc.awaitSettled(90*time.Second, 2*time.Second, "ownership settled", urls[:10])
	from := time.Now().UnixMilli()

	big := `{"job": "apibad", "address": "127.0.0.1:1", "labels": {"a": "` + strings.Repeat("x", 70<<10) + `"}}`
	for _, tc := range []struct {
		name, method, path, body, want string
	}{
		{"invalid URL", http.MethodPost, "/api/v1/registry/targets", `{"job": "apibad", "address": "http://exa mple.com:80/m"}`, "address"},
		{"URL with user info", http.MethodPost, "/api/v1/registry/targets", `{"job": "apibad", "address": "http://u:p@127.0.0.1:80/"}`, "address"},
		{"port out of range", http.MethodPost, "/api/v1/registry/targets", `{"job": "apibad", "address": "127.0.0.1:70000"}`, "address"},
		{"interval below timeout", http.MethodPost, "/api/v1/registry/targets", `{"job": "apibad", "address": "127.0.0.1:1", "interval": "1s", "timeout": "2s"}`, "timeout"},
		{"interval below 1s", http.MethodPost, "/api/v1/registry/targets", `{"job": "apibad", "address": "127.0.0.1:1", "interval": "500ms"}`, "interval"},
		{"unknown field", http.MethodPost, "/api/v1/registry/targets", `{"job": "apibad", "address": "127.0.0.1:1", "colour": "red"}`, "colour"},
		{"inline secret", http.MethodPost, "/api/v1/registry/targets", `{"job": "apibad", "address": "127.0.0.1:1", "bearer_token": "s3cret"}`, "bearer_token"},
		{"oversized target", http.MethodPost, "/api/v1/registry/targets", big, "65536"},
		{"job timeout above interval", http.MethodPut, "/api/v1/registry/jobs/apibad", `{"interval": "1s", "timeout": "5s"}`, "timeout"},
		{"oversized job", http.MethodPut, "/api/v1/registry/jobs/apibad", `{"labels": {"a": "` + strings.Repeat("x", 70<<10) + `"}}`, "65536"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		code, a, err := registryDo(ctx, cc.etcd.URL(), tc.method, tc.path, []byte(tc.body))
		cancel()
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case code != http.StatusBadRequest || a.ErrorType != "bad_data" || !strings.Contains(a.Error, tc.want):
			t.Errorf("%s: answered %d %s %q; want 400 bad_data naming %q", tc.name, code, a.ErrorType, a.Error, tc.want)
		default:
			t.Logf("%s: 400 %q", tc.name, a.Error)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	kvs, err := etcdRange(ctx, cc.etcdClient, registryPrefix)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	for k := range kvs {
		if strings.Contains(k, "apibad") {
			t.Errorf("a refused value was written: %s", k)
		}
	}

	// Invalid values straight into etcd.
	aliases := "address: 127.0.0.1:1\nparams:\n  a: &a [x, x, x, x, x, x, x, x, x]\n"
	for i, c := range "bcdefghi" {
		prev := string("abcdefghi"[i])
		aliases += fmt.Sprintf("  %c: &%c [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n", c, c, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	raw := []struct{ name, key, value string }{
		{"not JSON", "targets/rawbad/notjson", `{"address": "127.0.0.1:1"`},
		{"unknown field", "targets/rawbad/unknown", `{"address": "127.0.0.1:1", "colour": "red"}`},
		{"timeout above interval", "targets/rawbad/timeout", `{"address": "127.0.0.1:1", "interval": "1s", "timeout": "5s"}`},
		{"interval below 1s", "targets/rawbad/fast", `{"address": "127.0.0.1:1", "interval": "1ms"}`},
		{"oversized", "targets/rawbad/big", `{"address": "127.0.0.1:1", "labels": {"a": "` + strings.Repeat("x", 70<<10) + `"}}`},
		{"invalid URL", "targets/rawbad/url", `{"address": "http://[::1"}`},
		{"empty", "targets/rawbad/empty", ""},
		{"binary", "targets/rawbad/binary", "\x00\xff\xfe\x01\x02"},
		{"invalid UTF-8 label", "targets/rawbad/utf8", "{\"address\": \"127.0.0.1:1\", \"labels\": {\"a\": \"\xff\xfe\"}}"},
		{"other job", "targets/rawbad/job", `{"job": "other", "address": "127.0.0.1:1"}`},
		{"duplicate field", "targets/rawbad/dup", "address: 127.0.0.1:1\naddress: 127.0.0.1:2\n"},
		{"two documents", "targets/rawbad/docs", "address: 127.0.0.1:1\n---\naddress: 127.0.0.1:2\n"},
		{"alias bomb", "targets/rawbad/aliases", aliases},
		{"deep nesting", "targets/rawbad/deep", `{"address": "127.0.0.1:1", "params": {"a": ` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`},
		{"inline password", "targets/rawbad/secret", `{"address": "127.0.0.1:1", "basic_auth": {"username": "u", "password": "p"}}`},
		{"empty id", "targets/rawbad/", `{"address": "127.0.0.1:1"}`},
		{"unescaped job in key", "targets/raw bad/t", `{"address": "127.0.0.1:1"}`},
		{"invalid job value", "jobs/rawbadjob", `{"interval": "soon"}`},
		{"target of an invalid job", "targets/rawbadjob/t", `{"address": "127.0.0.1:1"}`},
		{"key outside the schema", "garbage/x", "x"},
	}
	for _, r := range raw {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := etcdPut(ctx, cc.etcdClient, registryPrefix+r.key, []byte(r.value))
		cancel()
		if err != nil {
			t.Fatalf("etcd put %s (%s): %v", r.key, r.name, err)
		}
	}
	rawAt := time.Now()
	t.Logf("wrote %d invalid values straight into etcd", len(raw))

	// A valid target written straight into etcd after them is scraped.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	err = etcdPut(ctx, cc.etcdClient, registryPrefix+"targets/"+job+"/raw-valid", []byte(fmt.Sprintf(`{"address": %q}`, addrs[10])))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	cc.awaitSettled(60*time.Second, 2*time.Second, "the target written straight into etcd is scraped", urls)
	rawValidFrom := time.Now().UnixMilli()

	// The collectors stay alive and ready.
	for i := 0; time.Since(rawAt) < 15*time.Second; i++ {
		for _, n := range cc.collectors {
			if !n.running() {
				t.Fatalf("%s exited after invalid registry values: %v", n.nodeName, n.exitErr())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := httpProbe(n.URL() + "/-/ready")(ctx)
			cancel()
			if err != nil {
				t.Errorf("%s not ready %v after invalid registry values: %v", n.nodeName, time.Since(rawAt).Round(time.Millisecond), err)
			}
		}
		time.Sleep(500 * time.Millisecond)
	}

	// The registry lists each of them as invalid; collectors scrape none.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	code, a, err := registryDo(ctx, cc.etcd.URL(), http.MethodGet, "/api/v1/registry/targets", nil)
	cancel()
	if err != nil || code != http.StatusOK {
		t.Fatalf("list registry: %d %+v %v", code, a, err)
	}
	var listing struct {
		Targets []struct {
			Job string `json:"job"`
			ID  string `json:"id"`
			URL string `json:"url"`
		} `json:"targets"`
		Invalid []struct {
			Key string `json:"Key"`
			Err string `json:"Err"`
		} `json:"invalid"`
	}
	if err := json.Unmarshal(a.Data, &listing); err != nil {
		t.Fatalf("decode registry listing: %v: %.300s", err, a.Data)
	}
	invalid := map[string]string{}
	for _, e := range listing.Invalid {
		invalid[e.Key] = e.Err
	}
	for _, r := range raw {
		key := registryPrefix + r.key
		if e, ok := invalid[key]; !ok {
			t.Errorf("%s (%s) is not listed as invalid", key, r.name)
		} else {
			t.Logf("invalid %s (%s): %.200s", key, r.name, e)
		}
		delete(invalid, key)
	}
	for k, e := range invalid {
		t.Logf("also listed as invalid: %s: %.200s", k, e)
	}
	if len(listing.Targets) != 11 {
		t.Errorf("registry lists %d valid targets, want 11: %+v", len(listing.Targets), listing.Targets)
	}
	known := map[string]bool{}
	for _, u := range urls {
		known[u] = true
	}
	for _, n := range cc.collectors {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		all, err := collectorTargets(ctx, n, true)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range all {
			if !known[st.ScrapeURL] {
				t.Errorf("%s lists target %s (owner %s), which is not one of the valid targets", n.nodeName, st.ScrapeURL, st.Owner)
			}
		}
	}
	logMetrics(t, cc.collectors, "vigil_collector_registry_invalid_targets", "vigil_collector_registry_watch_errors_total")

	to := time.Now().Add(-3 * time.Second).UnixMilli()
	awaitUpAfter(t, cc.querier(), job, addrs, interval, to, 30*time.Second)
	checkSlots(t, cc.querier(), job, addrs[:10], interval, from, to, nil)
	checkSlots(t, cc.querier(), job, addrs[10:], interval, rawValidFrom, to, nil)
}

// TestCollectorHarness checks the collector harness without collectors:
// the etcd node, the registry and etcd gateway helpers, the fake exporters,
// and the slot accounting against `up` series remote-written through the
// distributor with known gaps, misalignment and doubles.
func TestCollectorHarness(t *testing.T) {
	cc := newCollectorCluster(t, 0)
	fleet := startExporterFleet(t, []int{3, 1})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	e := fleet.exporters[0]
	body, err := (&clusterNode{proc: &proc{addr: e.addr()}, nodeName: "exporter-0"}).get(ctx, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if want := "fake_series{exporter=\"0\",series=\"2\"} 2\n"; !strings.HasSuffix(string(body), want) || strings.Count(string(body), "fake_series{") != 3 {
		t.Fatalf("exposition of exporter 0:\n%s\nwant 3 series ending with %q", body, want)
	}
	if n := e.requests.Load(); n != 1 {
		t.Fatalf("exporter 0 counted %d requests, want 1", n)
	}

	cc.registerJob("h", `{"interval": "2s"}`)
	cc.registerTargets("h", fleet.addrs())
	if err := etcdPut(ctx, cc.etcdClient, registryPrefix+"targets/h/raw", []byte("{junk")); err != nil {
		t.Fatal(err)
	}
	kvs, err := etcdRange(ctx, cc.etcdClient, registryPrefix)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"jobs/h", "targets/h/" + url.PathEscape(fleet.addrs()[0]), "targets/h/" + url.PathEscape(fleet.addrs()[1]), "targets/h/raw"} {
		if _, ok := kvs[registryPrefix+k]; !ok {
			t.Errorf("etcd lacks %s%s: %v", registryPrefix, k, slices.Sorted(maps.Keys(kvs)))
		}
	}
	if v := string(kvs[registryPrefix+"targets/h/raw"]); v != "{junk" {
		t.Errorf("raw value read back as %q", v)
	}

	// Slot accounting of known series.
	const job = "acct"
	const interval = 2 * time.Second
	addrs := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5"}
	clocks := map[string]slotClock{}
	for _, a := range addrs {
		clocks[a] = expectedSlotClock(job, a, "/metrics", nil, interval)
	}
	now := time.Now().UnixMilli()
	var series []prompb.TimeSeries
	add := func(a string, ts int64, v float64, extra ...string) {
		ls := []prompb.Label{{Name: "__name__", Value: "up"}, {Name: "instance", Value: a}, {Name: "job", Value: job}}
		for i := 0; i+1 < len(extra); i += 2 {
			ls = append(ls, prompb.Label{Name: extra[i], Value: extra[i+1]})
		}
		series = append(series, prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Timestamp: ts, Value: v}}})
	}
	k0 := map[string]int64{}
	for _, a := range addrs[:4] {
		c := clocks[a]
		k0[a] = c.slot(now-60_000) + 1
		for k := k0[a]; k <= k0[a]+20; k++ {
			switch {
			case a == addrs[1] && (k == k0[a]+5 || k == k0[a]+6):
				continue // two missing slots
			case a == addrs[2] && k == k0[a]+3:
				add(a, c.start(k), 0) // up 0
				add(a, c.start(k)+1, 1)
				continue // and a misaligned sample
			case a == addrs[3] && k == k0[a]+2:
				add(a, c.start(k), 1, "extra", "x") // a second series
			}
			add(a, c.start(k), 1)
		}
	}
	// One request per timestamp order is not needed: every sample is its
	// own series entry, in time order per series.
	raw, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cc.dist.URL()+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write: %s: %s", resp.Status, b)
	}

	// Window: the 21 slots of addrs[0]; the others' slots are shifted by
	// their offsets, so count them from their own reports.
	from, to := now-60_000, now
	allowB := clocks[addrs[1]].start(k0[addrs[1]] + 5)
	reps, err := slotAccounting(ctx, cc.querier(), job, addrs, interval, from, to, func(a string, slot int64) bool {
		return a == addrs[1] && slot == allowB
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		t.Logf("%s", reps[a])
	}
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", what, got, want)
		}
	}
	// Slots in [from, to] before k0 and after k0+20 have no samples: the
	// writes cover [start(k0), start(k0+20)] = about [now-60s, now-20s].
	for _, a := range addrs[:4] {
		r, c := reps[a], clocks[a]
		before := k0[a] - c.slot(from) - 1
		if c.start(c.slot(from)) >= from {
			before++
		}
		after := c.slot(to) - (k0[a] + 20)
		check(a+" slots", r.slots, before+21+after)
		check(a+" series", r.series, map[bool]int{true: 2, false: 1}[a == addrs[3]])
	}
	check("A problems", len(reps[addrs[0]].missing) > 0, true) // the slots after the writes
	check("A first", reps[addrs[0]].first, clocks[addrs[0]].start(k0[addrs[0]]))
	check("B allowed", reps[addrs[1]].allowed, 1)
	check("B gap covers both slots", reps[addrs[1]].longestGap >= 2*interval.Milliseconds(), true)
	check("C misaligned", len(reps[addrs[2]].misaligned), 1)
	check("C not up", reps[addrs[2]].notUp, 1)
	check("D doubled", len(reps[addrs[3]].doubled), 1)
	check("E samples", reps[addrs[4]].samples, 0)
	check("E missing", len(reps[addrs[4]].missing), reps[addrs[4]].slots)
	check("A clean within the written slots", func() int {
		n := 0
		for _, m := range reps[addrs[0]].missing {
			if m >= clocks[addrs[0]].start(k0[addrs[0]]) && m <= clocks[addrs[0]].start(k0[addrs[0]]+20) {
				n++
			}
		}
		return n
	}(), 0)
}

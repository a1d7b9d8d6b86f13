package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrapeMetrics returns a node's /metrics.
func scrapeMetrics(t *testing.T, base string) []byte {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ruleIterations reads prometheus_rule_group_iterations_total per group
// ("<namespace>;<group>") from a node's /metrics.
func ruleIterations(t *testing.T, base string) map[string]float64 {
	t.Helper()
	b := scrapeMetrics(t, base)
	out := map[string]float64{}
	re := regexp.MustCompile(`(?m)^prometheus_rule_group_iterations_total\{rule_group="([^"]+)"\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[m[1]] = v
	}
	return out
}

// evaluators returns, for each group, the rulers whose iteration count grew
// over d.
func evaluators(t *testing.T, rulers map[string]string, d time.Duration) map[string][]string {
	t.Helper()
	before := map[string]map[string]float64{}
	for name, base := range rulers {
		before[name] = ruleIterations(t, base)
	}
	time.Sleep(d)
	out := map[string][]string{}
	for name, base := range rulers {
		for g, v := range ruleIterations(t, base) {
			if v > before[name][g] {
				out[g] = append(out[g], name)
			}
		}
	}
	return out
}

// exactlyOne reports a group not evaluated by exactly one ruler.
func exactlyOne(ev map[string][]string, groups int) error {
	if len(ev) != groups {
		return fmt.Errorf("%d groups evaluated, want %d: %v", len(ev), groups, ev)
	}
	for g, rs := range ev {
		if len(rs) != 1 {
			return fmt.Errorf("group %s evaluated by %v", g, rs)
		}
	}
	return nil
}

// TestRulerRingHandover runs three rulers (querier,distributor,ruler) over
// one ingester and an etcd, all in-process: each of 12 groups of recording
// rules is evaluated by exactly one ruler; a ruler stopped gracefully hands
// its groups over without a missed evaluation slot (and the slots
// evaluated twice are stored once), after which each group again has
// exactly one ruler.
func TestRulerRingHandover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	const groups = 12
	client := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	startClusterNode(t, "etcd", "etcd", freeGossipPort(t), 1, "-etcd.listen-client-urls", client, "-etcd.listen-peer-urls", peer)

	var file strings.Builder
	file.WriteString("groups:\n")
	for i := range groups {
		fmt.Fprintf(&file, "- name: g%02d\n  interval: 1s\n  rules:\n  - record: rec_g%02d\n    expr: vector(1)\n", i, i)
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := runRules(context.Background(), []string{"upload", "-etcd.endpoints", client, "-namespace", "team", path}, &out, &errb); err != nil {
		t.Fatalf("upload rules: %v: %s", err, errb.String())
	}

	seed := freeGossipPort(t)
	ing, _ := startClusterNode(t, "ing-1", "ingester", seed, seed)
	rulers := map[string]string{}
	stops := map[string]func() error{}
	common := []string{"-etcd.endpoints", client, "-distributor.replication-factor", "1"}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("ruler-%d", i)
		rulers[name], stops[name] = startClusterNode(t, name, "querier,distributor,ruler", freeGossipPort(t), seed, common...)
	}
	front := rulers["ruler-1"]

	var ev map[string][]string
	waitFor(t, 60*time.Second, "each group evaluated by exactly one of three rulers", func() error {
		ev = evaluators(t, rulers, 2*time.Second)
		return exactlyOne(ev, groups)
	})
	perRuler := map[string]int{}
	for _, rs := range ev {
		perRuler[rs[0]]++
	}
	t.Logf("steady state, 3 rulers: groups per ruler %v", perRuler)
	if perRuler["ruler-2"] == 0 {
		t.Fatalf("ruler-2 owns no group: the hand-over would not be tested (%v)", perRuler)
	}

	// Every group evaluated at least once in the 2s before now: from 3s on,
	// each has a sample at every slot.
	time.Sleep(3 * time.Second)
	// Stop ruler-2 gracefully: it announces leaving, the others start its
	// groups at once, it stops them after the overlap.
	dupBefore := metricSum(t, ing, "vigil_storage_duplicate_samples_total")
	from := time.Now()
	if err := stops["ruler-2"](); err != nil {
		t.Fatalf("stop ruler-2: %v", err)
	}
	t.Logf("ruler-2 stopped in %s", time.Since(from).Round(time.Millisecond))
	// The slots evaluated by both: the ingester dropped their second copy.
	dup := metricSum(t, ing, "vigil_storage_duplicate_samples_total") - dupBefore
	t.Logf("hand-over of %d groups: %.0f samples written twice (%.1f slots per group), dropped as duplicates",
		perRuler["ruler-2"], dup, dup/float64(perRuler["ruler-2"]))
	if dup == 0 {
		t.Errorf("no slot was evaluated by both rulers: the hand-over was not make-before-break")
	}
	delete(rulers, "ruler-2")
	waitFor(t, 30*time.Second, "each group evaluated by exactly one of two rulers", func() error {
		ev = evaluators(t, rulers, 2*time.Second)
		return exactlyOne(ev, groups)
	})

	// Every slot from 2s before the stop to 2s ago has exactly one sample
	// in every group's series: none missed, none stored twice.
	at := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	window := int(at.Sub(from.Add(-2 * time.Second)).Seconds())
	for i := range groups {
		q := fmt.Sprintf(`count_over_time(rec_g%02d[%ds])`, i, window)
		if got := instantQuery(t, front, q, at); got != strconv.Itoa(window) {
			t.Errorf("%s: %s samples over the %ds around the move, want %d (one per slot)", q, got, window, window)
		}
	}
	if rej := metricSum(t, ing, "vigil_storage_rejected_samples_total"); rej != 0 {
		t.Errorf("the ingester refused %.0f samples", rej)
	}
	t.Logf("every group has %d samples over the %ds window around the move", window, window)
}

// instantQuery returns the value of the single series q yields at ts ("" for
// none).
func instantQuery(t *testing.T, base, q string, ts time.Time) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatInt(ts.Unix(), 10)}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Status string
		Data   struct {
			Result []struct{ Value [2]any }
		}
	}
	if err := json.Unmarshal(body, &res); err != nil || res.Status != "success" || len(res.Data.Result) > 1 {
		t.Fatalf("%s: %v: %.500s", q, err, body)
	}
	if len(res.Data.Result) == 0 {
		return ""
	}
	return fmt.Sprint(res.Data.Result[0].Value[1])
}

// metricSum is the sum of every series of metric name on a node's /metrics.
func metricSum(t *testing.T, base, name string) float64 {
	t.Helper()
	b := scrapeMetrics(t, base)
	sum := 0.0
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(?:\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

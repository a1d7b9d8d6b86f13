package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ruleGroupIterations reads prometheus_rule_group_iterations_total per
// group ("<namespace>;<group>") from a node's /metrics.
func ruleGroupIterations(ctx context.Context, n *clusterNode) (map[string]float64, error) {
	b, err := n.get(ctx, "/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	re := regexp.MustCompile(`(?m)^prometheus_rule_group_iterations_total\{rule_group="([^"]+)"\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, err
		}
		out[m[1]] = v
	}
	return out, nil
}

// groupEvaluators returns, for each group, the rulers whose iteration count
// grew over d; an error if a group is not evaluated by exactly one.
func groupEvaluators(rulers []*clusterNode, groups int, d time.Duration) (map[string][]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	before := map[string]map[string]float64{}
	for _, r := range rulers {
		it, err := ruleGroupIterations(ctx, r)
		if err != nil {
			return nil, err
		}
		before[r.nodeName] = it
	}
	time.Sleep(d)
	ev := map[string][]string{}
	for _, r := range rulers {
		it, err := ruleGroupIterations(ctx, r)
		if err != nil {
			return nil, err
		}
		for g, v := range it {
			if v > before[r.nodeName][g] {
				ev[g] = append(ev[g], r.nodeName)
			}
		}
	}
	if len(ev) != groups {
		return ev, fmt.Errorf("%d groups evaluated, want %d: %v", len(ev), groups, ev)
	}
	for g, rs := range ev {
		if len(rs) != 1 {
			return ev, fmt.Errorf("group %s evaluated by %v", g, rs)
		}
	}
	return ev, nil
}

// TestRulerRingKill runs three rulers (querier,distributor,ruler) as
// processes over one ingester and an etcd node, with 12 groups of
// recording rules at 1s: each group is evaluated by exactly one ruler; a
// ruler killed with SIGKILL loses its groups to the others once the ring
// declares it dead. The slots in that window are not evaluated: the test
// measures them, and checks that the other groups miss none and that each
// group again has exactly one ruler.
func TestRulerRingKill(t *testing.T) {
	const groups = 12
	cc := &collectorCluster{cluster: newCluster(t)}
	cc.startEtcd()
	var file strings.Builder
	file.WriteString("groups:\n")
	for i := range groups {
		fmt.Fprintf(&file, "- name: g%02d\n  interval: 1s\n  rules:\n  - record: rec_g%02d\n    expr: vector(1)\n", i, i)
	}
	resp, err := http.Post(cc.etcd.URL()+"/api/v1/rules/config/team", "application/yaml", strings.NewReader(file.String()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload rules: %s", resp.Status)
	}
	rf1 := []string{"-distributor.replication-factor=1"}
	cc.start(nodeSpec{name: "ing-1", target: "ingester", args: rf1})
	cc.awaitRing(60*time.Second, "ing-1 active", activeIngesters("ing-1"))
	var rulers []*clusterNode
	for i := 1; i <= 3; i++ {
		rulers = append(rulers, cc.start(nodeSpec{name: fmt.Sprintf("ruler-%d", i), target: "querier,distributor,ruler",
			args: append([]string{"-etcd.endpoints=" + cc.etcdClient}, rf1...)}))
	}
	var ev map[string][]string
	deadline := time.Now().Add(60 * time.Second)
	for ev, err = groupEvaluators(rulers, groups, 2*time.Second); err != nil; ev, err = groupEvaluators(rulers, groups, 2*time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("steady state with three rulers: %v", err)
		}
	}
	perRuler := map[string]int{}
	for _, rs := range ev {
		perRuler[rs[0]]++
	}
	t.Logf("steady state, 3 rulers: groups per ruler %v", perRuler)
	victim := rulers[0]
	for _, r := range rulers {
		if perRuler[r.nodeName] > perRuler[victim.nodeName] {
			victim = r
		}
	}
	// Every group evaluated at least once in the 2s before now: from 3s on,
	// each has a sample at every slot.
	time.Sleep(3 * time.Second)
	killed := time.Now()
	victim.kill9()
	var live []*clusterNode
	for _, r := range rulers {
		if r != victim {
			live = append(live, r)
		}
	}
	deadline = time.Now().Add(60 * time.Second)
	for _, err = groupEvaluators(live, groups, 2*time.Second); err != nil; _, err = groupEvaluators(live, groups, 2*time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("steady state after %s was killed: %v", victim.nodeName, err)
		}
	}
	t.Logf("every group has one ruler again %s after the kill", time.Since(killed).Round(100*time.Millisecond))

	// Slots from 2s before the kill to 2s ago, 3s after every group was
	// seen evaluated again (so the window holds the whole gap).
	time.Sleep(3 * time.Second)
	at := time.Now().Add(-2 * time.Second).Truncate(time.Second)
	window := int(at.Sub(killed.Add(-2 * time.Second)).Seconds())
	maxMissed := 0
	for g, rs := range ev {
		_, name, _ := strings.Cut(g, ";")
		q := fmt.Sprintf("count_over_time(rec_%s[%ds])", name, window)
		u := live[0].URL() + "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatInt(at.Unix(), 10)}}.Encode()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Data struct{ Result []struct{ Value [2]any } }
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if err != nil || len(res.Data.Result) != 1 {
			t.Fatalf("%s: %v %+v", q, err, res)
		}
		n, err := strconv.Atoi(fmt.Sprint(res.Data.Result[0].Value[1]))
		if err != nil {
			t.Fatal(err)
		}
		missed := window - n
		switch {
		case missed < 0:
			t.Errorf("%s: %d samples over %d slots: a slot stored twice", g, n, window)
		case rs[0] != victim.nodeName && missed != 0:
			t.Errorf("%s (on %s, not killed): %d of %d slots missed", g, rs[0], missed, window)
		case rs[0] == victim.nodeName:
			maxMissed = max(maxMissed, missed)
		}
	}
	t.Logf("the killed ruler's %d groups missed at most %d of %d slots (1s each); the others none", perRuler[victim.nodeName], maxMissed, window)
	if maxMissed > 15 {
		t.Errorf("the killed ruler's groups missed %d slots: more than the failure-detection window", maxMissed)
	}
}

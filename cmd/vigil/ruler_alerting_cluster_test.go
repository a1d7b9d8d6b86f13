package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// getData GETs an API path and decodes the "data" member into out; it
// returns the envelope's warnings.
func getData(t *testing.T, u string, out any) []string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Status   string
		Data     json.RawMessage
		Warnings []string
	}
	if err := json.Unmarshal(b, &env); err != nil || env.Status != "success" {
		t.Fatalf("GET %s: %s: %v: %.500s", u, resp.Status, err, b)
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatalf("GET %s: data: %v", u, err)
	}
	return env.Warnings
}

// clusterAlerts is /api/v1/alerts: alertname → state, and how many
// times each alertname is listed.
func clusterAlerts(t *testing.T, base string) (map[string]string, map[string]int) {
	var data struct {
		Alerts []struct {
			Labels map[string]string
			State  string
		}
	}
	getData(t, base+"/api/v1/alerts", &data)
	state, count := map[string]string{}, map[string]int{}
	for _, a := range data.Alerts {
		state[a.Labels["alertname"]] = a.State
		count[a.Labels["alertname"]]++
	}
	return state, count
}

// TestRulerRingAlerting: three rulers share 6 groups of alerting rules
// and elect one notifier; the notifier configuration is uploaded with
// `vigil alerting config upload`. Every alert is notified exactly once
// though three nodes' rulers send to the leader; a querier-only node
// answers /api/v1/rules and /api/v1/alerts with every ruler's groups and
// alerts, each once. Then the ruler that leads the notifiers is stopped:
// its groups move and another notifier leads, the alerts stay firing
// (their `for` not started over) and nothing is notified again.
func TestRulerRingAlerting(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	const groups = 6
	var mu sync.Mutex
	notified := map[string][]string{} // alertname → statuses notified
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Status string
			Alerts []struct{ Labels map[string]string }
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("webhook: %v", err)
		}
		mu.Lock()
		for _, a := range body.Alerts {
			notified[a.Labels["alertname"]] = append(notified[a.Labels["alertname"]], body.Status)
		}
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	notifications := func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]string{}
		for k, v := range notified {
			out[k] = slices.Clone(v)
		}
		return out
	}

	client := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	startClusterNode(t, "etcd", "etcd", freeGossipPort(t), 1, "-etcd.listen-client-urls", client, "-etcd.listen-peer-urls", peer)
	dir := t.TempDir()
	var file strings.Builder
	file.WriteString("groups:\n")
	for i := range groups {
		fmt.Fprintf(&file, "- name: g%02d\n  interval: 1s\n  rules:\n  - alert: A%02d\n    expr: vector(1)\n    for: 3s\n    labels: {severity: page}\n", i, i)
	}
	rulesPath := filepath.Join(dir, "rules.yaml")
	alertingPath := filepath.Join(dir, "alerting.yaml")
	if err := os.WriteFile(rulesPath, []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alertingPath, []byte(fmt.Sprintf(`route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
receivers: [{name: hook, webhook_configs: [{url: %q}]}]
`, hook.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if err := runRules(context.Background(), []string{"upload", "-etcd.endpoints", client, "-namespace", "team", rulesPath}, &out, &errb); err != nil {
		t.Fatalf("upload rules: %v: %s", err, errb.String())
	}

	seed := freeGossipPort(t)
	startClusterNode(t, "ing-1", "ingester", seed, seed)
	query, _ := startClusterNode(t, "query-1", "querier", freeGossipPort(t), seed)
	rulers := map[string]string{}
	stops := map[string]func() error{}
	common := []string{"-etcd.endpoints", client, "-distributor.replication-factor", "1", "-ruler.resend-delay", "1s",
		"-alerting.poll-interval", "200ms", "-alerting.leader-lease", "2s"}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("ruler-%d", i)
		rulers[name], stops[name] = startClusterNode(t, name, "querier,distributor,ruler", freeGossipPort(t), seed, common...)
	}
	out.Reset()
	errb.Reset()
	if err := runAlerting(context.Background(), []string{"config", "upload", "-url", rulers["ruler-1"], alertingPath}, &out, &errb); err != nil {
		t.Fatalf("vigil alerting config upload: %v: %s", err, errb.String())
	}
	t.Logf("vigil alerting config upload: %s", strings.TrimSpace(out.String()))

	// Steady state: one evaluator per group, every alert firing and
	// notified once.
	waitFor(t, 60*time.Second, "each group evaluated by exactly one of three rulers", func() error {
		return exactlyOne(evaluators(t, rulers, 2*time.Second), groups)
	})
	waitFor(t, 30*time.Second, "every alert notified", func() error {
		if got := notifications(); len(got) != groups {
			return fmt.Errorf("notified: %v", got)
		}
		return nil
	})
	time.Sleep(3 * time.Second) // three more resends from every ruler
	for name, st := range notifications() {
		if !slices.Equal(st, []string{"firing"}) {
			t.Errorf("%s notified %v, want exactly one firing notification", name, st)
		}
	}

	// The gathered APIs, on a node without a ruler.
	var rg struct {
		Groups []struct {
			Name, File string
			Rules      []struct{ State, Name string }
		}
	}
	if w := getData(t, query+"/api/v1/rules", &rg); len(w) > 0 {
		t.Errorf("/api/v1/rules warnings: %v", w)
	}
	var names []string
	for _, g := range rg.Groups {
		names = append(names, g.File+"/"+g.Name)
		if len(g.Rules) != 1 || g.Rules[0].State != "firing" {
			t.Errorf("group %s: rules %+v, want one firing alerting rule", g.Name, g.Rules)
		}
	}
	sort.Strings(names)
	if len(names) != groups || len(slices.Compact(slices.Clone(names))) != groups {
		t.Errorf("/api/v1/rules on the querier lists %v, want the %d groups once each", names, groups)
	}
	state, count := clusterAlerts(t, query)
	for i := range groups {
		a := fmt.Sprintf("A%02d", i)
		if state[a] != "firing" || count[a] != 1 {
			t.Errorf("/api/v1/alerts on the querier: %s is %q, listed %d times; want firing, once", a, state[a], count[a])
		}
	}
	var filtered struct{ Groups []struct{ Name string } }
	getData(t, query+"/api/v1/rules?rule_group[]=g03", &filtered)
	if len(filtered.Groups) != 1 || filtered.Groups[0].Name != "g03" {
		t.Errorf("/api/v1/rules?rule_group[]=g03: %+v", filtered.Groups)
	}

	// Stop the ruler whose notifier leads.
	var st struct {
		Leader string
	}
	getData(t, rulers["ruler-1"]+"/api/v1/alerting/status", &st)
	leaderName := ""
	for name, base := range rulers {
		if base == st.Leader {
			leaderName = name
		}
	}
	if leaderName == "" {
		t.Fatalf("the notifiers' leader %q is none of the rulers %v", st.Leader, rulers)
	}
	owned := 0
	for _, rs := range evaluators(t, rulers, 2*time.Second) {
		if rs[0] == leaderName {
			owned++
		}
	}
	from := time.Now()
	if err := stops[leaderName](); err != nil {
		t.Fatalf("stop %s: %v", leaderName, err)
	}
	t.Logf("stopped %s (notifier leader, %d of %d groups) in %s", leaderName, owned, groups, time.Since(from).Round(time.Millisecond))
	delete(rulers, leaderName)
	waitFor(t, 30*time.Second, "each group evaluated by exactly one of two rulers", func() error {
		return exactlyOne(evaluators(t, rulers, 2*time.Second), groups)
	})
	var newLeader string
	waitFor(t, 10*time.Second, "another notifier leads", func() error {
		var st2 struct{ Leader string }
		for _, base := range rulers {
			getData(t, base+"/api/v1/alerting/status", &st2)
			if st2.Leader != "" && st2.Leader != st.Leader {
				newLeader = st2.Leader
				return nil
			}
		}
		return fmt.Errorf("leader still %q", st2.Leader)
	})
	// The new leader holds every alert, from the states in etcd and the
	// rulers' resends (its own and forwarded).
	waitFor(t, 10*time.Second, "the new leader holds the 6 alerts", func() error {
		var gs []struct {
			Alerts   []struct{ Status string }
			Notified []string
		}
		getData(t, newLeader+"/api/v1/alerting/groups", &gs)
		firing := 0
		for _, g := range gs {
			for _, a := range g.Alerts {
				if a.Status == "firing" && len(g.Notified) == 1 {
					firing++
				}
			}
		}
		if firing != groups {
			return fmt.Errorf("%d notified alerts firing in %d groups", firing, len(gs))
		}
		return nil
	})
	time.Sleep(3 * time.Second) // more resends to the new leader
	state, count = clusterAlerts(t, query)
	for i := range groups {
		a := fmt.Sprintf("A%02d", i)
		if state[a] != "firing" || count[a] != 1 {
			t.Errorf("after the move: %s is %q, listed %d times; want still firing, once", a, state[a], count[a])
		}
	}
	for name, st := range notifications() {
		if !slices.Equal(st, []string{"firing"}) {
			t.Errorf("after the move: %s notified %v, want still exactly one firing notification", name, st)
		}
	}
	t.Logf("after the move: %d alerts firing, each notified once", len(state))
}

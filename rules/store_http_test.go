package rules

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/rulefmt"
	"go.yaml.in/yaml/v3"
)

func do(t *testing.T, method, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHandler(t *testing.T) {
	ctx := testCtx(t)
	s, c := testStore(t)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	base := srv.URL + "/api/v1/rules/config"

	code, body := do(t, "POST", base+"/team%20a", string(readTestdata(t, "node.yml")))
	if code != 200 || !strings.Contains(body, `"written":["node","capacity"]`) {
		t.Fatalf("POST: %d %s", code, body)
	}
	// The namespace comes back as a rule file that uploads again unchanged.
	code, body = do(t, "GET", base+"/team%20a", "")
	var rgs rulefmt.RuleGroups
	if code != 200 || yaml.Unmarshal([]byte(body), &rgs) != nil || len(rgs.Groups) != 2 || rgs.Groups[1].Rules[0].Expr != "up == 0" {
		t.Fatalf("GET namespace: %d %s", code, body)
	}
	if code, again := do(t, "POST", base+"/team%20a", body); code != 200 || !strings.Contains(again, `"unchanged":["capacity","node"]`) {
		t.Fatalf("re-POST of the GET: %d %s", code, again)
	}
	code, body = do(t, "GET", base+"/team%20a/node", "")
	if code != 200 || !strings.Contains(body, "alert: InstanceDown") || !strings.Contains(body, "severity: page") || strings.Contains(body, "DiskFilling") {
		t.Fatalf("GET group: %d %s", code, body)
	}
	if _, err := ParseFile("", []byte(body)); err != nil {
		t.Fatalf("GET group is not a rule file: %v", err)
	}
	// A bad file: 400 with rulefmt's line and column; nothing changed.
	code, body = do(t, "POST", base+"/team%20a", string(readTestdata(t, "bad_promql.yml")))
	var e struct{ Status, ErrorType, Error string }
	if code != 400 || json.Unmarshal([]byte(body), &e) != nil || e.ErrorType != "bad_data" ||
		!strings.HasPrefix(e.Error, `5:15: group "node", rule 1, "InstanceDown": could not parse expression`) {
		t.Fatalf("bad PromQL: %d %s", code, body)
	}
	if code, body = do(t, "POST", base+"/team%20a", "groups:\n- name: x\n  rules:\n  - record: a\n   expr: b\n"); code != 400 || !strings.Contains(body, "yaml: line") {
		t.Fatalf("bad YAML: %d %s", code, body)
	}
	if code, body = do(t, "POST", base+"/a%2Fb", string(readTestdata(t, "node.yml"))); code != 400 || !strings.Contains(body, "contains '/'") {
		t.Fatalf("namespace with /: %d %s", code, body)
	}
	if code, _ = do(t, "GET", base+"/team%20a/capacity", ""); code != 200 {
		t.Fatalf("capacity gone after a refused upload: %d", code)
	}
	// All namespaces, and an invalid value as a comment.
	if _, err := c.Put(ctx, s.Key("zz", "broken"), "groups: ["); err != nil {
		t.Fatal(err)
	}
	code, body = do(t, "GET", base, "")
	var all map[string][]rulefmt.RuleGroup
	if code != 200 || !strings.HasPrefix(body, "# invalid: "+s.cfg.Prefix+"zz/broken: ") || yaml.Unmarshal([]byte(body), &all) != nil ||
		len(all["team a"]) != 2 || len(all) != 1 {
		t.Fatalf("GET all: %d %s", code, body)
	}
	// 404s and deletes.
	for _, p := range []string{"/nope", "/team%20a/nope"} {
		if code, body = do(t, "GET", base+p, ""); code != 404 || !strings.Contains(body, `"errorType":"not_found"`) {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
		if code, _ = do(t, "DELETE", base+p, ""); code != 404 {
			t.Fatalf("DELETE %s: %d", p, code)
		}
	}
	if code, body = do(t, "DELETE", base+"/team%20a/capacity", ""); code != 200 || !strings.Contains(body, `"deleted":1`) {
		t.Fatalf("DELETE group: %d %s", code, body)
	}
	if code, body = do(t, "DELETE", base+"/team%20a", ""); code != 200 || !strings.Contains(body, `"deleted":1`) {
		t.Fatalf("DELETE namespace: %d %s", code, body)
	}
	if code, _ = do(t, "GET", base+"/team%20a", ""); code != 404 {
		t.Fatalf("GET a deleted namespace: %d", code)
	}
	// Prometheus' evaluation-state API is not ours.
	if code, _ = do(t, "GET", srv.URL+"/api/v1/rules", ""); code != 404 {
		t.Fatalf("GET /api/v1/rules answered %d", code)
	}
}

// etcd unreachable: 503, promptly (the request timeout).
func TestHandlerEtcdDown(t *testing.T) {
	proxy := newTCPProxy(t, etcdEndpoint)
	cfg := DefaultConfig()
	cfg.RequestTimeout = 500 * time.Millisecond
	s, err := New(cfg, newTestClient(t, proxy.addr()), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	proxy.setDown(true)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, r := range []struct{ method, path, body string }{
		{"GET", "", ""}, {"GET", "/ns", ""}, {"POST", "/ns", string(readTestdata(t, "node.yml"))}, {"DELETE", "/ns/g", ""},
	} {
		start := time.Now()
		code, body := do(t, r.method, srv.URL+"/api/v1/rules/config"+r.path, r.body)
		if code != 503 || !strings.Contains(body, `"errorType":"unavailable"`) {
			t.Fatalf("%s %s with etcd down: %d %s", r.method, r.path, code, body)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%s %s took %s", r.method, r.path, d)
		}
	}
}

package collector

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRegistryHTTP(t *testing.T) {
	r := testRegistry(t, newTestClient(t, etcdEndpoint))
	srv := httptest.NewServer(r.Handler())
	defer srv.Close()
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, b)
		}
		return resp.StatusCode, out
	}
	if code, out := do("PUT", "/api/v1/registry/jobs/node", `{"interval": "30s", "labels": {"env": "prod"}}`); code != 200 {
		t.Fatalf("put job: %d %v", code, out)
	}
	if code, out := do("POST", "/api/v1/registry/targets", "job: node\naddress: 10.0.0.1:9100\n"); code != 200 {
		t.Fatalf("add target (YAML): %d %v", code, out)
	}
	if code, out := do("POST", "/api/v1/registry/targets", `{"job": "node", "address": "http://web:8080/m"}`); code != 200 {
		t.Fatalf("add target (JSON URL): %d %v", code, out)
	}
	code, out := do("GET", "/api/v1/registry/targets", "")
	data, _ := out["data"].(map[string]any)
	targets, _ := data["targets"].([]any)
	if code != 200 || len(targets) != 2 {
		t.Fatalf("list: %d %v", code, out)
	}
	first := targets[0].(map[string]any)
	if first["url"] != "http://10.0.0.1:9100/metrics" || first["interval"] != "30s" {
		t.Fatalf("first target %v: job defaults must be applied", first)
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/api/v1/registry/targets", `{"address": "a:1"}`, "job"},
		{"POST", "/api/v1/registry/targets", `{"job": "node", "address": "a:1", "interval": "5x"}`, "interval"},
		{"POST", "/api/v1/registry/targets", `{"job": "node", "address": "a:1", "password": "p"}`, "password"},
		{"POST", "/api/v1/registry/targets", `{"job": "node", "address": "a:1", "colour": "red"}`, "colour"},
		{"PUT", "/api/v1/registry/jobs/node", `{"timeout": "1m", "interval": "10s"}`, "timeout"},
		{"DELETE", "/api/v1/registry/targets?job=node", "", "address"},
	} {
		code, out := do(tc.method, tc.path, tc.body)
		if code != 400 || out["errorType"] != "bad_data" || !strings.Contains(out["error"].(string), tc.want) {
			t.Errorf("%s %s %s: %d %v, want 400 naming %q", tc.method, tc.path, tc.body, code, out, tc.want)
		}
	}
	if code, out := do("DELETE", "/api/v1/registry/targets?job=node&address=10.0.0.1:9100", ""); code != 200 {
		t.Fatalf("delete by address: %d %v", code, out)
	}
	_, out = do("GET", "/api/v1/registry/targets", "")
	if n := len(out["data"].(map[string]any)["targets"].([]any)); n != 1 {
		t.Fatalf("%d targets after delete, want 1", n)
	}
}

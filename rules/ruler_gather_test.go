package rules

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeRuler answers /ruler/rules and /ruler/alerts with fixed JSON, as a
// ruler's Handler does.
func fakeRuler(t *testing.T, rules, alerts string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("type") == "bogus" {
			writeAPIError(w, http.StatusBadRequest, `invalid parameter "type"`)
			return
		}
		switch r.URL.Path {
		case "/ruler/rules":
			fmt.Fprintf(w, `{"status":"success","data":{"groups":%s}}`, rules)
		case "/ruler/alerts":
			fmt.Fprintf(w, `{"status":"success","data":{"alerts":%s}}`, alerts)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func gatherGet(t *testing.T, h http.Handler, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var env map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatalf("GET %s: %d %q", path, rec.Code, rec.Body.String())
	}
	return rec.Code, env
}

// TestGather: groups and alerts of several rulers merged, each once (the
// later evaluation of a group two rulers hold, the firing copy of an
// alert); a ruler that does not answer is a warning; none answering is
// 503; a ruler's 400 is passed on; no rulers is an empty answer.
func TestGather(t *testing.T) {
	g1 := `{"name":"g1","file":"ns","lastEvaluation":"2026-01-01T00:00:01Z","rules":[{"name":"old"}]}`
	g1new := `{"name":"g1","file":"ns","lastEvaluation":"2026-01-01T00:00:02Z","rules":[{"name":"new"}]}`
	g2 := `{"name":"g2","file":"ns","lastEvaluation":"2026-01-01T00:00:01Z","rules":[]}`
	a1 := `{"labels":{"alertname":"A","i":"1"},"state":"pending","activeAt":"2026-01-01T00:00:00Z"}`
	a1f := `{"labels":{"i":"1","alertname":"A"},"state":"firing","activeAt":"2026-01-01T00:00:05Z"}`
	r1 := fakeRuler(t, "["+g1+","+g2+"]", "["+a1+"]")
	r2 := fakeRuler(t, "["+g1new+"]", "["+a1f+"]")
	dead := httptest.NewServer(nil)
	deadURL := dead.URL
	dead.Close()
	peers := []Peer{{"r1", r1}, {"r2", r2}}
	h := Gather(func() []Peer { return peers }, &http.Client{}, 5*time.Second, slog.New(slog.DiscardHandler))

	sameJSON := func(what string, got any, want string) {
		t.Helper()
		var w any
		if err := json.Unmarshal([]byte(want), &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("%s:\n%v\nwant\n%v", what, got, w)
		}
	}
	_, env := gatherGet(t, h, "/api/v1/rules")
	sameJSON("rules", env["data"], `{"groups":[`+g1new+`,`+g2+`]}`)
	_, env = gatherGet(t, h, "/api/v1/alerts")
	sameJSON("alerts", env["data"], `{"alerts":[`+a1f+`]}`)

	peers = []Peer{{"r1", r1}, {"gone", deadURL}}
	code, env := gatherGet(t, h, "/api/v1/rules")
	if w, _ := env["warnings"].([]any); code != 200 || len(w) != 1 || !strings.Contains(w[0].(string), "ruler gone") {
		t.Errorf("one ruler down: %d %v, want 200 with a warning naming it", code, env)
	}
	peers = []Peer{{"gone", deadURL}}
	if code, env := gatherGet(t, h, "/api/v1/alerts"); code != 503 || !strings.Contains(env["error"].(string), "no ruler answered") {
		t.Errorf("every ruler down: %d %v, want 503", code, env)
	}
	peers = []Peer{{"r1", r1}}
	if code, env := gatherGet(t, h, "/api/v1/rules?type=bogus"); code != 400 || !strings.Contains(env["error"].(string), `invalid parameter "type"`) {
		t.Errorf("refused query: %d %v, want the ruler's 400", code, env)
	}
	peers = nil
	if code, env := gatherGet(t, h, "/api/v1/rules"); code != 200 || fmt.Sprint(env["data"]) != "map[groups:[]]" {
		t.Errorf("no rulers: %d %v, want an empty list", code, env)
	}
}

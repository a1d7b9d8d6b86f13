package collector

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	pmodel "github.com/prometheus/common/model"
)

var testScrapeTime = time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC)

// testTargetInfos returns, out of order: node/a scraped here (up), node/b
// owned by c2, web/x handed over to c2 (down, with errors), web/y owned by
// nobody.
func testTargetInfos(t *testing.T) []TargetInfo {
	t.Helper()
	info := func(job, id, addr, owner, ownerURL, state string, st *TargetStatus) TargetInfo {
		tg, err := Resolve(Target{Job: job, ID: id, Address: addr, ScrapeConfig: ScrapeConfig{
			Labels: map[string]string{"rack": `<script>alert("r1")</script>`},
		}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st != nil {
			st.Job, st.ID, st.ScrapeURL, st.Labels = job, id, tg.URL().String(), targetLabels(tg)
		}
		return TargetInfo{Key: job + "/" + id, Target: tg, Owner: owner, OwnerURL: ownerURL, State: state, Local: st}
	}
	return []TargetInfo{
		info("web", "y", "y:80", "", "", "", nil),
		info("web", "x", "x:80", "c2", "http://c2:8080", "handing over", &TargetStatus{
			Health: HealthDown, LastScrape: testScrapeTime, LastDuration: 2 * time.Second,
			LastError: "server returned HTTP status 500", PushError: "distributors unavailable",
		}),
		info("node", "b", "b:9100", "c2", "http://c2:8080", "", nil),
		info("node", "a", "a:9100", "c1", "http://c1:8080", "scraping", &TargetStatus{
			Health: HealthUp, LastScrape: testScrapeTime, LastDuration: 250 * time.Millisecond, Series: 42,
		}),
	}
}

func newTargetsServer(t *testing.T) *httptest.Server {
	t.Helper()
	infos := testTargetInfos(t)
	srv := httptest.NewServer(TargetsHandler("c1", func() []TargetInfo { return infos }))
	t.Cleanup(srv.Close)
	return srv
}

func getTargets(t *testing.T, srv *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestTargetsPrometheusClient reads /api/v1/targets with Prometheus' own
// client: what Grafana and promtool-style tools would see.
func TestTargetsPrometheusClient(t *testing.T) {
	srv := newTargetsServer(t)
	c, err := api.NewClient(api.Config{Address: srv.URL, Client: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := promv1.NewAPI(c).Targets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []promv1.ActiveTarget{{
		DiscoveredLabels: map[string]string{"__address__": "a:9100", "__metrics_path__": "/metrics", "__scheme__": "http", "job": "node"},
		Labels:           pmodel.LabelSet{"job": "node", "instance": "a:9100", "rack": `<script>alert("r1")</script>`},
		ScrapePool:       "node", ScrapeURL: "http://a:9100/metrics", GlobalURL: "http://a:9100/metrics",
		LastScrape: testScrapeTime, LastScrapeDuration: 0.25, Health: promv1.HealthGood,
	}, {
		DiscoveredLabels: map[string]string{"__address__": "x:80", "__metrics_path__": "/metrics", "__scheme__": "http", "job": "web"},
		Labels:           pmodel.LabelSet{"job": "web", "instance": "x:80", "rack": `<script>alert("r1")</script>`},
		ScrapePool:       "web", ScrapeURL: "http://x:80/metrics", GlobalURL: "http://x:80/metrics",
		LastError: "server returned HTTP status 500", LastScrape: testScrapeTime, LastScrapeDuration: 2, Health: promv1.HealthBad,
	}}
	if len(res.Active) != len(want) || len(res.Dropped) != 0 {
		t.Fatalf("got %d active, %d dropped targets, want %d and 0: %+v", len(res.Active), len(res.Dropped), len(want), res)
	}
	for i, got := range res.Active {
		got.LastScrape = got.LastScrape.UTC()
		if !jsonEqual(t, got, want[i]) {
			t.Errorf("target %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// TestTargetsJSON checks Vigil's fields and the filters, on both paths.
func TestTargetsJSON(t *testing.T) {
	srv := newTargetsServer(t)
	type target struct {
		ScrapeURL      string `json:"scrapeUrl"`
		LastScrape     string `json:"lastScrape"`
		Health         string `json:"health"`
		ScrapeInterval string `json:"scrapeInterval"`
		ScrapeTimeout  string `json:"scrapeTimeout"`
		Owner          string `json:"owner"`
		OwnerURL       string `json:"ownerUrl"`
		State          string `json:"state"`
		Series         int    `json:"series"`
		PushError      string `json:"pushError"`
	}
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Active  []target `json:"activeTargets"`
			Dropped []any    `json:"droppedTargets"`
		} `json:"data"`
	}
	for _, tc := range []struct {
		name, path string
		want       []string // hosts of the scrape URLs, in order
	}{
		{"api default: scraped here", "/api/v1/targets", []string{"a", "x"}},
		{"api scope=all", "/api/v1/targets?scope=all", []string{"a", "b", "x", "y"}},
		{"api scrapePool", "/api/v1/targets?scope=all&scrapePool=web", []string{"x", "y"}},
		{"api state=active", "/api/v1/targets?state=Active", []string{"a", "x"}},
		{"api state=dropped", "/api/v1/targets?state=dropped&scope=all", nil},
		{"api under a prefix", "/collector/api/v1/targets?job=node", []string{"a"}},
		{"page json default: all", "/targets?format=json", []string{"a", "b", "x", "y"}},
		{"page json scope=local job", "/targets?format=json&scope=local&job=web", []string{"x"}},
		{"unknown job", "/targets?format=json&job=nope", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := getTargets(t, srv, "GET", tc.path)
			body.Data.Active, body.Data.Dropped = nil, nil
			if err := json.Unmarshal([]byte(b), &body); err != nil || resp.StatusCode != 200 || body.Status != "success" {
				t.Fatalf("%d %s (%v)", resp.StatusCode, b, err)
			}
			if body.Data.Active == nil || body.Data.Dropped == nil || len(body.Data.Dropped) != 0 {
				t.Fatalf("want activeTargets and an empty droppedTargets array: %s", b)
			}
			var hosts []string
			for _, a := range body.Data.Active {
				hosts = append(hosts, strings.Split(strings.TrimPrefix(a.ScrapeURL, "http://"), ":")[0])
			}
			if !slices.Equal(hosts, tc.want) {
				t.Fatalf("got %v, want %v", hosts, tc.want)
			}
		})
	}
	_, b := getTargets(t, srv, "GET", "/api/v1/targets?scope=all")
	if err := json.Unmarshal([]byte(b), &body); err != nil {
		t.Fatal(err)
	}
	got := body.Data.Active
	wantA := target{"http://a:9100/metrics", "2025-03-01T12:00:00.0000005Z", "up", "15s", "10s", "c1", "http://c1:8080", "scraping", 42, ""}
	wantB := target{"http://b:9100/metrics", "0001-01-01T00:00:00Z", "unknown", "15s", "10s", "c2", "http://c2:8080", "", 0, ""}
	wantX := target{"http://x:80/metrics", "2025-03-01T12:00:00.0000005Z", "down", "15s", "10s", "c2", "http://c2:8080", "handing over", 0, "distributors unavailable"}
	if got[0] != wantA || got[1] != wantB || got[2] != wantX || got[3].Owner != "" || got[3].Health != "unknown" {
		t.Fatalf("scope=all:\n got %+v\nwant %+v, %+v, %+v, then an unowned unknown target", got, wantA, wantB, wantX)
	}
}

func TestTargetsPage(t *testing.T) {
	srv := newTargetsServer(t)
	for _, tc := range []struct {
		name, path    string
		want, notWant []string
	}{
		{
			name: "all", path: "/targets",
			want: []string{
				`&lt;script&gt;alert(&#34;r1&#34;)&lt;/script&gt;`, // label values escaped
				`<h2><a href="?job=node">node</a> (1/2 up)</h2>`,
				`<h2><a href="?job=web">web</a> (0/2 up)</h2>`,
				"<td>this collector</td>", `<a href="http://c2:8080/targets">c2</a>`, "<td>none</td>",
				"handing over", "not scraped here", "<td>never</td>", "<td>250ms</td>", "<td>42</td>",
				"server returned HTTP status 500", "push: distributors unavailable",
				`<a href="?scope=local">only those scraped here</a>`, `href="?format=json"`,
			},
			notWant: []string{"<script>"},
		},
		{
			name: "scraped here, one job", path: "/targets?scope=local&job=node",
			want:    []string{"http://a:9100/metrics", `<a href="?job=node&amp;scope=all">all registry targets</a>`, `<a href="?scope=local">all jobs</a>`},
			notWant: []string{"http://b:9100/metrics", "http://x:80/metrics", "<h2><a href=\"?job=web"},
		},
		{name: "no targets", path: "/targets?job=nope", want: []string{"No targets."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := getTargets(t, srv, "GET", tc.path)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			for _, s := range tc.want {
				if !strings.Contains(b, s) {
					t.Errorf("page lacks %q:\n%s", s, b)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(b, s) {
					t.Errorf("page has %q:\n%s", s, b)
				}
			}
		})
	}
}

func TestTargetsRefused(t *testing.T) {
	srv := newTargetsServer(t)
	for _, tc := range []struct {
		name, method, path string
		code               int
		want               string // in the body, or the Allow header for 405
	}{
		{"post page", "POST", "/targets", 405, "GET, HEAD"},
		{"delete api", "DELETE", "/api/v1/targets", 405, "GET, HEAD"},
		{"bad scope api", "GET", "/api/v1/targets?scope=everywhere", 400, `"errorType":"bad_data"`},
		{"bad state page json", "GET", "/targets?format=json&state=gone", 400, `"errorType":"bad_data"`},
		{"bad format", "GET", "/targets?format=xml", 400, `format "xml"`},
		{"head", "HEAD", "/targets", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := getTargets(t, srv, tc.method, tc.path)
			if resp.StatusCode != tc.code {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tc.code, b)
			}
			if tc.code == 405 && resp.Header.Get("Allow") != tc.want || tc.code != 405 && !strings.Contains(b, tc.want) {
				t.Fatalf("want %q: Allow %q, body %s", tc.want, resp.Header.Get("Allow"), b)
			}
		})
	}
}

package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/model"
)

// TestPrometheusInterop writes the same data to a real Prometheus (Debian's
// 2.42, remote-write receiver on, loopback only) and to the API over an
// in-memory storage, then asks both the same questions and requires
// byte-identical answers (for errors: the same status and errorType).
//
// Evaluation times sit between samples, so Prometheus 3.0's left-open
// range selectors cannot make 2.42 and the v0.315 engine differ. Queries
// that produce annotations are left out: 2.42 predates them.
func TestPrometheusInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Prometheus process")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus)")
	}

	// Data: 10 minutes every 15 s, ending a minute ago.
	base := time.Now().Add(-11 * time.Minute).Truncate(time.Minute)
	var batch []model.Series
	for _, s := range []struct {
		lbls []string
		f    func(i int) float64
	}{
		{[]string{"__name__", "up", "instance", "h1:9100", "job", "node"}, func(int) float64 { return 1 }},
		{[]string{"__name__", "up", "instance", "h2:9100", "job", "node"}, func(i int) float64 { return float64(i % 2) }},
		{[]string{"__name__", "http_requests_total", "code", "200", "handler", "/api", "job", "app"}, func(i int) float64 { return float64(i * i * 7) }},
		{[]string{"__name__", "http_requests_total", "code", "500", "handler", "/api", "job", "app"}, func(i int) float64 { return float64(i) / 3 }},
		{[]string{"__name__", "node_memory_bytes", "instance", "h1:9100", "kind", "<free> & \"used\""}, func(i int) float64 { return 1.5e9 + float64(i)*1e-7 }},
		{[]string{"__name__", "tiny", "job", "x"}, func(i int) float64 { return 1e-9 * float64(i+1) }},
	} {
		var tv []float64
		for i := 0; i <= 40; i++ {
			tv = append(tv, float64(base.Add(time.Duration(i)*15*time.Second).UnixMilli()), s.f(i))
		}
		batch = append(batch, series(s.lbls, tv...))
	}

	promURL := startPrometheus(t, bin)
	resp, err := http.Post(promURL+"/api/v1/write", "application/x-protobuf", bytes.NewReader(encodeRemoteWrite(t, batch)))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 204 {
		t.Fatalf("remote write to prometheus: %d %s", resp.StatusCode, b)
	}
	resp.Body.Close()

	a, _ := newTestAPI(t, nil, newMemStorage(batch...), nil)
	vigil := a.Handler()

	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(base.Add(d).UnixMilli())/1000) }
	at := sec(5*time.Minute + 7*time.Second + 250*time.Millisecond)
	start, end := sec(2*time.Minute+3*time.Second), sec(6*time.Minute+3*time.Second)
	queries := []struct {
		path   string
		params url.Values
	}{
		{"/api/v1/query", vals("query", "up", "time", at)},
		{"/api/v1/query", vals("query", `up{instance="h2:9100"} == 0`, "time", at)},
		{"/api/v1/query", vals("query", "rate(http_requests_total[1m])", "time", at)},
		{"/api/v1/query", vals("query", "sum by (job) (rate(http_requests_total[2m]))", "time", at)},
		{"/api/v1/query", vals("query", "increase(http_requests_total[5m])", "time", at)},
		{"/api/v1/query", vals("query", "node_memory_bytes", "time", at)},
		{"/api/v1/query", vals("query", "tiny", "time", at)},
		{"/api/v1/query", vals("query", "tiny * 1e30", "time", at)},
		{"/api/v1/query", vals("query", "http_requests_total[1m]", "time", at)},
		{"/api/v1/query", vals("query", "scalar(sum(up))", "time", at)},
		{"/api/v1/query", vals("query", "1/3", "time", at)},
		{"/api/v1/query", vals("query", "-1/0", "time", at)},
		{"/api/v1/query", vals("query", `"hello <world>"`, "time", at)},
		{"/api/v1/query", vals("query", "count_values(\"v\", up{instance=\"h1:9100\"})", "time", at)},
		{"/api/v1/query", vals("query", "absent(nothing)", "time", at)},
		{"/api/v1/query", vals("query", "nothing", "time", at)},
		{"/api/v1/query_range", vals("query", "up", "start", start, "end", end, "step", "30")},
		{"/api/v1/query_range", vals("query", "avg_over_time(http_requests_total[1m])", "start", start, "end", end, "step", "1m")},
		{"/api/v1/query_range", vals("query", "tiny", "start", start, "end", end, "step", "45.5")},
		{"/api/v1/query_range", vals("query", "time()", "start", start, "end", end, "step", "90")},
		{"/api/v1/series", vals("match[]", "up")},
		{"/api/v1/series", vals("match[]", "up", "match[]", `{job="app"}`)},
		{"/api/v1/series", vals("match[]", `{__name__=~".+"}`, "start", start, "end", end)},
		{"/api/v1/labels", nil},
		{"/api/v1/labels", vals("match[]", "up")},
		{"/api/v1/label/job/values", nil},
		{"/api/v1/label/kind/values", nil},
		{"/api/v1/label/__name__/values", vals("match[]", `{job=~"node|x"}`)},
		// Errors: the same status and errorType.
		{"/api/v1/query", vals("query", "sum(", "time", at)},
		{"/api/v1/query", vals("query", "up", "time", "garbage")},
		{"/api/v1/query", vals("query", "up * on() up", "time", at)},
		{"/api/v1/query_range", vals("query", "up", "start", start, "end", end, "step", "0")},
		{"/api/v1/query_range", vals("query", "up", "start", "0", "end", "100000", "step", "1")},
		{"/api/v1/query_range", vals("query", "up", "start", end, "end", start, "step", "10")},
		{"/api/v1/series", nil},
		{"/api/v1/series", vals("match[]", `{job=""}`)},
	}
	for _, q := range queries {
		name := q.path + "?" + q.params.Encode()
		wantCode, want := httpGet(t, promURL+q.path+"?"+q.params.Encode())
		gotCode, got := get(t, vigil, q.path, q.params)
		if wantCode != gotCode {
			t.Errorf("%s: status %d, Prometheus %d\nvigil: %s\nprometheus: %s", name, gotCode, wantCode, got, want)
			continue
		}
		if wantCode == 200 {
			// Byte-identical, except that Prometheus 2.x HTML-escapes
			// label names and values in results and /api/v1/series
			// (<, >, & as \u003c...) where 3.x, and Vigil, write them as
			// they are; the decoded JSON must be equal regardless.
			if got != want && htmlUnescaper.Replace(got) != htmlUnescaper.Replace(want) {
				t.Errorf("%s:\nvigil:      %s\nprometheus: %s", name, got, want)
			}
			var g, w any
			if err := json.Unmarshal([]byte(got), &g); err != nil {
				t.Errorf("%s: vigil answer is not JSON: %v", name, err)
			}
			_ = json.Unmarshal([]byte(want), &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s: decoded answers differ:\nvigil:      %s\nprometheus: %s", name, got, want)
			}
			continue
		}
		var g, w struct{ Status, ErrorType string }
		_ = json.Unmarshal([]byte(got), &g)
		_ = json.Unmarshal([]byte(want), &w)
		if g != w {
			t.Errorf("%s: vigil %+v, Prometheus %+v", name, g, w)
		}
	}
}

var htmlUnescaper = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&")

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
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

// startPrometheus runs bin on a free loopback port with a temporary data
// directory and no scrape targets, and stops it when the test ends.
func startPrometheus(t *testing.T, bin string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})
	u := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return u
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("prometheus at %s not ready after 30s:\n%s", u, logs.String())
	return ""
}

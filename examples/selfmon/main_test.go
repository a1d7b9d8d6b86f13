package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/vigil-tsdb/vigil/internal/vigiltest"
)

// TestSelfmon runs the program against a real single node for a few
// intervals and finds its own metrics in Vigil: a counter with one
// sample per push, a Go runtime gauge, its histogram's buckets and the
// SDK Writer's counters.
func TestSelfmon(t *testing.T) {
	dir := t.TempDir()
	n, err := vigiltest.Start(dir, "-self-scrape.interval=0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
	}()
	var log bytes.Buffer
	if err := run(context.Background(), []string{"-addr", n.GRPC, "-interval", "200ms", "-duration", "1500ms", "-job", "selfmon-test"}, &log); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	if strings.Contains(log.String(), "level=WARN") || strings.Contains(log.String(), "level=ERROR") {
		t.Errorf("selfmon logged problems:\n%s", log.String())
	}
	for _, tc := range []struct{ q, want string }{
		// Up to 8 pushes in 1.5 s at 200 ms, fewer on a loaded machine
		// (the ticker drops ticks): at least 3, whose last wrote 2.
		{`count(count_over_time(selfmon_pushes_total{job="selfmon-test"}[1m]))`, "1"},
		{`max_over_time(selfmon_pushes_total{job="selfmon-test"}[1m]) >= 2`, "pass"},
		{`count(go_goroutines{job="selfmon-test"})`, "1"},
		{`count(selfmon_push_duration_seconds_bucket{job="selfmon-test",le="+Inf"})`, "1"},
		{`vigil_sdk_writer_samples_total{job="selfmon-test",result="failed"}`, "0"},
		{`vigil_sdk_writer_samples_total{job="selfmon-test",result="stored"} > 100`, "pass"},
	} {
		got := instant(t, n.HTTP, tc.q)
		if tc.want == "pass" && got != "" || got == tc.want {
			continue
		}
		t.Errorf("%s = %q, want %s", tc.q, got, tc.want)
	}
}

// instant returns the first value of an instant query, "" if none.
func instant(t *testing.T, base, q string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string
		Error  string
		Data   struct{ Result []struct{ Value [2]any } }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Status != "success" {
		t.Fatalf("%s: %v %s", q, err, out.Error)
	}
	if len(out.Data.Result) == 0 {
		return ""
	}
	return fmt.Sprint(out.Data.Result[0].Value[1])
}

func TestSelfmonFlags(t *testing.T) {
	var log bytes.Buffer
	if err := run(context.Background(), []string{"-interval", "1ms"}, &log); err == nil || !strings.Contains(err.Error(), "-interval") {
		t.Errorf("interval 1ms: %v", err)
	}
	if err := run(context.Background(), []string{"-token-file", os.DevNull + "/missing"}, &log); err == nil || !strings.Contains(err.Error(), "-token-file") {
		t.Errorf("missing token file: %v", err)
	}
}

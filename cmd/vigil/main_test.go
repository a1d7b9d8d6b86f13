package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
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

// startRun runs run() in the background and returns the HTTP base URL it
// printed and a stop function that returns run's error.
func startRun(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, args, pw, io.Discard)
		pw.Close()
	}()
	urlRE := regexp.MustCompile(`Query API / Grafana data source:\s+(\S+)`)
	sc := bufio.NewScanner(pr)
	base := ""
	for sc.Scan() {
		if m := urlRE.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
			break
		}
	}
	go io.Copy(io.Discard, pr)
	if base == "" {
		cancel()
		t.Fatalf("run printed no URL: %v", <-done)
	}
	return base, func() error { cancel(); return <-done }
}

func query(t *testing.T, base, q string) string {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Data.Result) == 0 {
		return ""
	}
	return fmt.Sprint(out.Data.Result[0].Value[1])
}

// TestRunSelfScrapesAndRestarts is the single node end to end in one
// process: it starts its embedded etcd, registers its own /metrics, its
// collector scrapes it (visible on /api/v1/targets), it answers `up`,
// shuts down on cancel (flushing), and starts again on the same data with
// the data there.
func TestRunSelfScrapesAndRestarts(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-data.dir", dir, "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", "127.0.0.1:0", "-self-scrape.interval", "1s"}
	base, stop := startRun(t, args...)
	deadline := time.Now().Add(20 * time.Second)
	for query(t, base, `up{job="vigil"}`) != "1" {
		if time.Now().After(deadline) {
			t.Fatal("no self-scraped up=1 within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The page may lag the stored sample by the scrape's bookkeeping.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		at := activeTargets(t, base)
		if len(at) == 1 && at[0].ScrapePool == "vigil" && at[0].Health == "up" && at[0].State == "scraping" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/api/v1/targets: %+v, want the vigil target, up and scraping", at)
		}
	}
	before := query(t, base, `count_over_time(up[1h])`)
	if err := stop(); err != nil {
		t.Fatalf("run returned %v on shutdown", err)
	}
	// Without self-registration (the first run's lease was revoked on
	// shutdown) nothing scrapes any more: the count is what the first run
	// stored, at least what it answered before its last scrapes.
	base, stop = startRun(t, append(args, "-self-scrape.interval=0")...)
	defer stop()
	after := query(t, base, `count_over_time(up[1h])`)
	if a, b := atoi(t, after), atoi(t, before); a < b {
		t.Fatalf("after restart count_over_time(up[1h]) = %d, before %d", a, b)
	}
	time.Sleep(2500 * time.Millisecond)
	if again := query(t, base, `count_over_time(up[1h])`); again != after {
		t.Fatalf("count_over_time(up[1h]) grew from %s to %s with self-registration off", after, again)
	}
	// The same over the tiers: today's 1 m and 1 h windows are computed
	// from the head on the fly, the rest of the range read raw.
	for _, res := range []string{"1m", "1h", "raw", "auto"} {
		resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {`count_over_time(up[1h])`}, "resolution": {res}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"`+after+`"`) {
			t.Fatalf("resolution=%s: %d %s, want count %s", res, resp.StatusCode, body, after)
		}
	}
	resp, err := http.Get(base + "/api/v1/query?" + url.Values{"query": {`up`}, "resolution": {"5m"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `invalid parameter \"resolution\": unknown resolution \"5m\"`) {
		t.Fatalf("resolution=5m: %d %s, want 400 naming the parameter", resp.StatusCode, body)
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		yaml    string
		args    []string
		wantErr string
		check   func(Config) error
	}{
		{name: "defaults", check: func(c Config) error {
			if c.HTTPListenAddress != ":9009" || c.Storage.Dir != "data" || c.Storage.WALSync != "always" {
				return fmt.Errorf("%+v", c)
			}
			return nil
		}},
		{name: "yaml then flag wins", yaml: "data_dir: /x\nstorage:\n  wal_sync: interval\n", args: []string{"-data.dir", "/y"}, check: func(c Config) error {
			if c.Storage.Dir != "/y" || c.Storage.WALSync != "interval" {
				return fmt.Errorf("dir %s sync %s", c.Storage.Dir, c.Storage.WALSync)
			}
			return nil
		}},
		{name: "unknown yaml field", yaml: "no_such_field: 1\n", wantErr: "no_such_field"},
		{name: "bad wal sync", args: []string{"-storage.wal-sync", "sometimes"}, wantErr: `wal_sync is "sometimes"`},
		{name: "bad target", args: []string{"-target", "rulers"}, wantErr: `unknown role "rulers"`},
		{name: "ruler without querier", args: []string{"-target", "ruler,distributor", "-etcd.endpoints", "http://127.0.0.1:1"}, wantErr: "ruler role needs the querier and distributor"},
		{name: "ruler without etcd", args: []string{"-target", "querier,distributor,ruler"}, wantErr: "set -etcd.endpoints"},
		{name: "cluster ruler", args: []string{"-target", "querier,distributor,ruler", "-etcd.endpoints", "http://127.0.0.1:1", "-ruler.handover-overlap", "2s"}, check: func(c Config) error {
			if r := c.nodeRoles(); !r["ruler"] || !c.clusterMode() || c.Ruler.HandoverOverlap != 2*time.Second {
				return fmt.Errorf("roles %v cluster %v overlap %s", r, c.clusterMode(), c.Ruler.HandoverOverlap)
			}
			return nil
		}},
		{name: "self-scrape below 1s", args: []string{"-self-scrape.interval", "200ms"}, wantErr: "self-scrape.interval must be 0 or at least 1s"},
		{name: "bad collector epsilon", args: []string{"-collector.epsilon", "-1"}, wantErr: "collector.epsilon"},
		{name: "single node roles", check: func(c Config) error {
			r := c.nodeRoles()
			if !r["collector"] || !r["etcd"] || !r["ingester"] || !r["ruler"] || c.Collector.Batch.Spool.Dir != filepath.Join("data", "collector", "spool") {
				return fmt.Errorf("roles %v spool %s", r, c.Collector.Batch.Spool.Dir)
			}
			return nil
		}},
		{name: "single node with an external etcd", args: []string{"-etcd.endpoints", "http://127.0.0.1:1"}, check: func(c Config) error {
			if r := c.nodeRoles(); !r["collector"] || r["etcd"] {
				return fmt.Errorf("roles %v", r)
			}
			return nil
		}},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				write(tc.yaml)
				args = append([]string{"-config.file", file}, args...)
			}
			cfg, err := parseConfig(args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.check(cfg); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := parseConfig([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q is not a count: %v", s, err)
	}
	return n
}

type activeTarget struct {
	ScrapePool string `json:"scrapePool"`
	Health     string `json:"health"`
	State      string `json:"state"`
}

func activeTargets(t *testing.T, base string) []activeTarget {
	t.Helper()
	var out struct {
		Data struct {
			ActiveTargets []activeTarget `json:"activeTargets"`
		} `json:"data"`
	}
	resp, err := http.Get(base + "/api/v1/targets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Data.ActiveTargets
}

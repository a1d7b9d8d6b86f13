package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vigil targets against a real (embedded) etcd: the -target=etcd role.
func TestTargetsCommand(t *testing.T) {
	ctx := context.Background()
	client := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	e, err := startEtcd(ctx, EtcdConfig{Name: "t", ListenClientURLs: client, ListenPeerURLs: "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))},
		t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(); <-e.Server.StopNotify() })
	vt := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := runTargets(ctx, append(args[:1:1], append([]string{"-etcd.endpoints", client}, args[1:]...)...), &out, &errb)
		return out.String(), errb.String(), err
	}
	if out, _, err := vt("add", "-job", "node", "-interval", "30s", "-label", "env=prod", "10.0.0.1:9100", "http://web-1:8080/admin/metrics"); err != nil ||
		!strings.Contains(out, "added /vigil/targets/targets/node/10.0.0.1:9100") {
		t.Fatalf("add: %q %v", out, err)
	}
	out, _, err := vt("ls")
	if err != nil || !strings.Contains(out, "http://10.0.0.1:9100/metrics") || !strings.Contains(out, "env=prod") ||
		!strings.Contains(out, "http://web-1:8080/admin/metrics") || !strings.Contains(out, "30s") {
		t.Fatalf("ls: %q %v", out, err)
	}
	if _, _, err := vt("add", "-job", "node", "-interval", "5x", "h:1"); err == nil {
		t.Fatal("a bad interval was accepted")
	}
	if _, _, err := vt("add", "-job", "node", "-label", "__bad=x", "h:1"); err == nil || !strings.Contains(err.Error(), "__bad") {
		t.Fatalf("a reserved label: %v", err)
	}
	if out, _, err := vt("rm", "-job", "node", "10.0.0.1:9100"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("rm: %q %v", out, err)
	}
	if out, _, _ := vt("ls"); strings.Contains(out, "10.0.0.1") {
		t.Fatalf("removed target still listed: %q", out)
	}

	// import: a Prometheus configuration with a file_sd file beside it.
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sd.json", `[{"targets": ["10.0.9.1:9100"], "labels": {"rack": "r9"}}]`)
	write("prometheus.yml", "global: {scrape_interval: 20s}\nscrape_configs:\n- job_name: imported\n  static_configs: [{targets: ['10.0.8.1:9100']}]\n  file_sd_configs: [{files: [sd.json]}]\n")
	out, errOut, err := vt("import", "-dry-run", filepath.Join(dir, "prometheus.yml"))
	if err != nil || !strings.Contains(out, "target imported/10.0.9.1:9100") || !strings.Contains(errOut, "read once") {
		t.Fatalf("dry run: %q %q %v", out, errOut, err)
	}
	if out, _, _ := vt("ls"); strings.Contains(out, "10.0.8.1") {
		t.Fatal("a dry run wrote")
	}
	if out, _, err := vt("import", filepath.Join(dir, "prometheus.yml")); err != nil || !strings.Contains(out, "imported 1 jobs and 2 targets") {
		t.Fatalf("import: %q %v", out, err)
	}
	out, _, err = vt("ls")
	if err != nil || !strings.Contains(out, "http://10.0.8.1:9100/metrics") || !strings.Contains(out, "rack=r9") || !strings.Contains(out, "20s") {
		t.Fatalf("ls after import: %q %v", out, err)
	}
	write("relabel.yml", "scrape_configs:\n- job_name: r\n  relabel_configs: []\n")
	if _, _, err := vt("import", filepath.Join(dir, "relabel.yml")); err == nil || !strings.Contains(err.Error(), "relabel_configs") {
		t.Fatalf("relabelling was not refused: %v", err)
	}
	if _, _, err := vt("frobnicate"); err == nil {
		t.Fatal("an unknown command was accepted")
	}
}

// -target=etcd serves the registry API against its own etcd.
func TestEtcdRoleServesRegistryAPI(t *testing.T) {
	client := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	base, _ := startClusterNode(t, "etcd", "etcd", freeGossipPort(t), 1, "-etcd.listen-client-urls", client, "-etcd.listen-peer-urls", peer)
	resp, err := http.Post(base+"/api/v1/registry/targets", "application/json", strings.NewReader(`{"job": "node", "address": "10.1.1.1:9100"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("add: %s", resp.Status)
	}
	var out bytes.Buffer
	if err := runTargets(context.Background(), []string{"ls", "-etcd.endpoints", client}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "10.1.1.1:9100") {
		t.Fatalf("ls: %q %v", out.String(), err)
	}
}

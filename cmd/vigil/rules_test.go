package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const exampleRules = `groups:
  - name: node
    rules:
      - alert: InstanceDown
        expr: up == 0
        for: 5m
        labels:
          severity: page
        annotations:
          summary: "Instance {{ $labels.instance }} down"
`

// vigil rules against a real single node (its embedded etcd), and the
// node's /api/v1/rules/config.
func TestRulesCommand(t *testing.T) {
	ctx := context.Background()
	client := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	base, stop := startRun(t, "-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", "127.0.0.1:0",
		"-self-scrape.interval=0", "-etcd.listen-client-urls", client, "-etcd.listen-peer-urls", peer)
	defer stop()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	vr := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := runRules(ctx, append(args[:1:1], append([]string{"-etcd.endpoints", client}, args[1:]...)...), &out, &errb)
		return out.String(), errb.String(), err
	}
	node := write("node.yml", exampleRules)
	rec := write("rec.yml", "groups:\n- name: recording\n  interval: 1m\n  rules: [{record: 'job:up:sum', expr: sum by (job) (up)}]\n")
	bad := write("bad.yml", "groups:\n- name: node\n  rules:\n  - alert: X\n    expr: up ==\n")
	dup := write("dup.yml", "groups:\n- name: node\n  rules: [{record: 'a:b', expr: up}]\n")

	// check: offline (no etcd flag needed), every file reported.
	var out, errb bytes.Buffer
	err := runRules(ctx, []string{"check", node, bad, rec}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 files failed") ||
		!strings.Contains(out.String(), node+": SUCCESS: 1 groups, 1 rules") || !strings.Contains(out.String(), rec+": SUCCESS") ||
		!strings.Contains(errb.String(), bad+`:5:11: group "node", rule 1, "X": could not parse expression`) {
		t.Fatalf("check: %v\n%s\n%s", err, out.String(), errb.String())
	}
	if err := runRules(ctx, []string{"check", node}, io.Discard, io.Discard); err != nil {
		t.Fatalf("check of a good file: %v", err)
	}

	// upload: two files into one namespace; flags after the files work too.
	if out, _, err := vr("upload", node, rec, "-namespace", "prod"); err != nil || !strings.Contains(out, `namespace "prod": 2 groups written, 0 unchanged, 0 deleted`) {
		t.Fatalf("upload: %q %v", out, err)
	}
	if _, _, err := vr("upload", "-namespace", "prod", bad); err == nil || !strings.Contains(err.Error(), bad+":5:11: ") {
		t.Fatalf("upload of a bad file: %v", err)
	}
	if _, _, err := vr("upload", "-namespace", "prod", node, dup); err == nil || !strings.Contains(err.Error(), `group "node" is also in `+node) {
		t.Fatalf("upload of a group name twice: %v", err)
	}
	if _, _, err := vr("upload", node); err == nil || !strings.Contains(err.Error(), "-namespace is needed") {
		t.Fatalf("upload without a namespace: %v", err)
	}
	out2, _, err := vr("ls")
	if err != nil || !strings.Contains(out2, "prod") || !strings.Contains(out2, "recording") || !strings.Contains(out2, "recording  1m") {
		t.Fatalf("ls: %q %v", out2, err)
	}
	// The node's HTTP API sees the same store.
	resp, err := http.Get(base + "/api/v1/rules/config/prod/node")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "alert: InstanceDown") || !strings.Contains(string(body), "severity: page") {
		t.Fatalf("GET over the node: %s %s", resp.Status, body)
	}
	resp, err = http.Post(base+"/api/v1/rules/config/staging", "application/yaml", strings.NewReader("groups: [{name: x, rules: [{record: 'a:b', expr: 'up +'}]}]"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "could not parse expression") {
		t.Fatalf("POST of a bad file over the node: %s %s", resp.Status, body)
	}
	// Re-upload with one file: the other group goes.
	if out, _, err := vr("upload", "-namespace", "prod", node); err != nil || !strings.Contains(out, "0 groups written, 1 unchanged, 1 deleted") ||
		!strings.Contains(out, "deleted /vigil/rules/prod/recording") {
		t.Fatalf("re-upload: %q %v", out, err)
	}
	if out, _, err := vr("ls", "prod"); err != nil || strings.Contains(out, "recording") || !strings.Contains(out, "node") {
		t.Fatalf("ls prod: %q %v", out, err)
	}
	if _, _, err := vr("rm", "prod", "recording"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("rm of a missing group: %v", err)
	}
	if out, _, err := vr("rm", "prod"); err != nil || !strings.Contains(out, "removed 1 groups") {
		t.Fatalf("rm: %q %v", out, err)
	}
	if _, _, err := vr("ls", "prod"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("ls of a removed namespace: %v", err)
	}
	// Usage errors.
	if _, _, err := vr("rm"); err == nil || !strings.Contains(err.Error(), "wrong number of arguments") {
		t.Fatalf("rm without arguments: %v", err)
	}
	if _, _, err := vr("frobnicate"); err == nil {
		t.Fatal("an unknown command was accepted")
	}
	if err := runRules(ctx, []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}

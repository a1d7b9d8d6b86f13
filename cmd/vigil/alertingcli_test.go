package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestAlertingCommand runs `vigil alerting` against a single node: check
// and upload refuse a bad file with its line, upload stores a good one
// (and reports an unchanged one), show prints it with secrets redacted,
// status names the leader and the configuration in force.
func TestAlertingCommand(t *testing.T) {
	ctx := context.Background()
	client := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	peer := "http://127.0.0.1:" + strconv.Itoa(freeGossipPort(t))
	base, stop := startRun(t, "-data.dir", t.TempDir(), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", "127.0.0.1:0",
		"-self-scrape.interval=0", "-etcd.listen-client-urls", client, "-etcd.listen-peer-urls", peer, "-alerting.poll-interval", "100ms")
	defer stop()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yml", "route: {receiver: hook}\nreceivers:\n  - name: hook\n    webhook_configs: [{url: 'http://127.0.0.1:1/hook', bearer_token: tok-secret-1}]\n")
	bad := write("bad.yml", "route: {receiver: hook}\nreceivers:\n  - name: hook\n    webhook_configs: [{url: 'ftp://x'}]\n")
	cli := func(args ...string) (string, error) { // the flag goes after the command's words, before its files
		n := 1
		if args[0] == "config" {
			n = 2
		}
		full := append(append(append([]string{}, args[:n]...), "-url", base), args[n:]...)
		var out, errb bytes.Buffer
		err := runAlerting(ctx, full, &out, &errb)
		return out.String(), err
	}

	if _, err := cli("status"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli("config", "show"); err == nil || !strings.Contains(err.Error(), "no configuration is stored") {
		t.Errorf("show before any upload: %v", err)
	}
	if out, err := cli("config", "check", good); err != nil || !strings.Contains(out, "valid") {
		t.Errorf("check good: %q %v", out, err)
	}
	for _, cmd := range []string{"check", "upload"} {
		if _, err := cli("config", cmd, bad); err == nil || !strings.Contains(err.Error(), "bad.yml") || !strings.Contains(err.Error(), "line 4") {
			t.Errorf("%s bad: %v, want the file and line 4", cmd, err)
		}
	}
	if out, err := cli("config", "upload", good); err != nil || !strings.Contains(out, "stored at revision") {
		t.Fatalf("upload good: %q %v", out, err)
	}
	if out, err := cli("config", "upload", good); err != nil || !strings.Contains(out, "unchanged") {
		t.Errorf("upload again: %q %v", out, err)
	}
	out, err := cli("config", "show")
	if err != nil || !strings.Contains(out, "bearer_token: <secret>") || strings.Contains(out, "tok-secret-1") {
		t.Errorf("show: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, "the notifier runs the uploaded configuration", func() error {
		out, err := cli("status")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "this node leads: true") || !strings.Contains(out, "configuration in force: revision") {
			return &cliError{out}
		}
		return nil
	})
	if _, err := cli("frobnicate"); err == nil || !strings.Contains(err.Error(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %v", err)
	}
}

type cliError struct{ out string }

func (e *cliError) Error() string { return "status says:\n" + e.out }

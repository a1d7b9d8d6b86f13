package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"github.com/vigil-tsdb/vigil/internal/vigiltest"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Without delegated-auth kubeconfigs, outside a cluster and without
// --insecure-skip-delegated-auth, the adapter serves HTTPS but forbids
// every metrics request: it fails closed. Health paths stay open.
func TestRunFailsClosedWithoutDelegatedAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the API server")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port), "--cert-dir=" + t.TempDir(),
			"--vigil-url=http://127.0.0.1:1", "--refresh-interval=1h"}, &out)
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not return 30s after cancel")
		}
	}()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	base := "https://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := c.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready in 60s: %v; output:\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range []string{"/apis/custom.metrics.k8s.io/v1beta2", "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/anything"} {
		resp, err := c.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %s, want 403 Forbidden", p, resp.Status)
		}
	}
	if !strings.Contains(out.String(), `msg="vigil-adapter serving"`) {
		t.Errorf("no start line in:\n%s", out.String())
	}
}

// In a cluster (KUBERNETES_SERVICE_HOST set) whose service-account token
// cannot be read, delegated auth cannot work: the adapter refuses to
// start instead of answering 403 to everything with /readyz 200.
func TestRunFailsInClusterWithoutToken(t *testing.T) {
	if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
		t.Skip("this machine has a service-account token")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var out syncBuffer
	// Without the check it would serve: stop it after 10s.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = run(ctx, []string{"--bind-address=127.0.0.1", "--secure-port=" + strconv.Itoa(port), "--cert-dir=" + t.TempDir(), "--vigil-url=http://127.0.0.1:1"}, &out)
	if err == nil || !strings.Contains(err.Error(), "delegated auth: in-cluster config") || !strings.Contains(err.Error(), "serviceaccount/token") {
		t.Errorf("run: %v, want an in-cluster config error naming the token", err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - seriesQuery: 'x'\n    metricsQuery: 'sum(x)'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad rules", []string{"--config=" + rules}, rules + ":3: rules[0].metricsQuery: template must use <<.LabelMatchers>>"},
		{"missing rules file", []string{"--config=" + rules + ".missing"}, "read rules file"},
		{"bad max age", []string{"--max-age=0s"}, "--max-age 0s: must be positive"},
		{"bad discovery limit", []string{"--discovery-limit=0"}, "--discovery-limit 0: must be positive"},
		{"bad vigil url", []string{"--vigil-url=vigil:9009"}, `vigil url "vigil:9009"`},
		{"unknown flag", []string{"--no-such-flag"}, "unknown flag: --no-such-flag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), append(tc.args, "--secure-port=0"), &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

type syncBuffer = vigiltest.SyncBuffer

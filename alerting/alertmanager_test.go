package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireDebianBinary fails (not skips) the test when a binary of a Debian
// package is missing, as integration/harness_test.go does: `make deps`
// installs it and `make test` runs deps first.
func requireDebianBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH (%v): `make deps` installs the Debian package %s (make test runs deps first)", name, err, pkg)
	}
	return p
}

// lockedBuffer collects a process's output for the failure message.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAlertmanager runs Debian's prometheus-alertmanager on a free loopback
// port with a temporary config and storage, and kills it (by pid) at the
// end of the test. It returns the base URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	bin := requireDebianBinary(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		if base, ok := tryStartAlertmanager(t, bin, cfg, filepath.Join(dir, fmt.Sprint("data", attempt))); ok {
			return base
		}
	}
	t.Fatal("alertmanager did not start in 3 attempts")
	return ""
}

// tryStartAlertmanager starts one process on a port that was free a moment
// ago; false if it exited (another process took the port).
func tryStartAlertmanager(t *testing.T, bin, cfg, storage string) (string, bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+storage,
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=debug")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	base := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			t.Logf("alertmanager exited (%v):\n%s", err, out)
			return "", false
		default:
		}
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Cleanup(func() {
				_ = cmd.Process.Kill() // by pid
				<-exited
				if t.Failed() {
					t.Logf("alertmanager output:\n%s", out)
				}
			})
			return base, true
		}
	}
	_ = cmd.Process.Kill()
	<-exited
	t.Fatalf("alertmanager not ready at %s after 30s:\n%s", base, out)
	return "", false
}

// gettableAlert is the part of Alertmanager's GET /api/v2/alerts answer
// the test reads.
type gettableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Status       struct {
		State string `json:"state"`
	} `json:"status"`
}

func getAlerts(t *testing.T, base string) map[string]gettableAlert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var as []gettableAlert
	if err := json.NewDecoder(resp.Body).Decode(&as); err != nil {
		t.Fatalf("decode GET /api/v2/alerts: %v", err)
	}
	out := map[string]gettableAlert{}
	for _, a := range as {
		out[a.Labels["instance"]] = a
	}
	return out
}

func TestAlertmanagerInterop(t *testing.T) {
	base := startAlertmanager(t)
	// A second URL nobody listens on: Send succeeds when one accepts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	am, err := NewAlertmanager(&AlertmanagerConfig{URLs: []URL{URL(dead), URL(base + "/")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	n := testNotification()
	for i := range n.Alerts {
		n.Alerts[i].StartsAt = now.Add(-time.Duration(i+1) * time.Minute)
	}
	if err := am.Send(ctx, n); err != nil {
		t.Fatalf("push firing alerts: %v", err)
	}
	got := getAlerts(t, base)
	if len(got) != 2 {
		t.Fatalf("alertmanager holds %d alerts, want 2: %+v", len(got), got)
	}
	for _, sent := range n.Alerts {
		a, ok := got[sent.Labels["instance"]]
		if !ok {
			t.Errorf("alert %v missing", sent.Labels)
			continue
		}
		if fmt.Sprint(a.Labels) != fmt.Sprint(map[string]string(sent.Labels)) || fmt.Sprint(a.Annotations) != fmt.Sprint(map[string]string(sent.Annotations)) {
			t.Errorf("labels/annotations %v %v, sent %v %v", a.Labels, a.Annotations, sent.Labels, sent.Annotations)
		}
		if !a.StartsAt.Equal(sent.StartsAt) || a.GeneratorURL != sent.GeneratorURL || a.Status.State != "active" || !a.EndsAt.After(now) {
			t.Errorf("alert %s: startsAt %s (sent %s), generatorURL %q, state %q, endsAt %s",
				sent.Labels["instance"], a.StartsAt, sent.StartsAt, a.GeneratorURL, a.Status.State, a.EndsAt)
		}
	}

	// Resolve one: Alertmanager no longer lists it as an alert.
	r := testNotification()
	r.Status = StatusResolved
	r.Alerts = r.Alerts[:1]
	r.Alerts[0].Status, r.Alerts[0].StartsAt, r.Alerts[0].EndsAt = StatusResolved, n.Alerts[0].StartsAt, now.Add(-time.Second)
	if err := am.Send(ctx, r); err != nil {
		t.Fatalf("push resolved alert: %v", err)
	}
	got = getAlerts(t, base)
	if _, ok := got["a:9100"]; ok || len(got) != 1 {
		t.Errorf("after resolving a:9100, alertmanager lists %v", got)
	}

	// Nobody accepts: one error naming both, retryable.
	down, err := NewAlertmanager(&AlertmanagerConfig{URLs: []URL{URL(dead), URL(dead + "/prefix?token=do-not-leak")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	de := asDeliveryError(t, down.Send(ctx, n))
	if !de.Retryable || strings.Count(de.Error(), "connection refused") != 2 || strings.Contains(de.Error(), "do-not-leak") {
		t.Errorf("all down: %v", de)
	}
	// Alertmanager refuses an invalid alert (400): not retryable.
	bad := testNotification()
	bad.Alerts[0].Labels = KV{}
	one, err := NewAlertmanager(&AlertmanagerConfig{URLs: []URL{URL(base)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	de = asDeliveryError(t, one.Send(ctx, bad))
	if de.Retryable || de.Status != 400 {
		t.Errorf("invalid alert: %v (retryable %v status %d)", de, de.Retryable, de.Status)
	}
}

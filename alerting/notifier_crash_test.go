package alerting

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	crashPrefixEnv = "VIGIL_NOTIFIER_CRASH_PREFIX"
	crashURLEnv    = "VIGIL_NOTIFIER_CRASH_URL"
)

// crashYAML: one webhook, notified at once, flushed every second.
func crashYAML(url string) string {
	return fmt.Sprintf("route: {receiver: r, group_by: [alertname], group_wait: 0s, group_interval: 1s}\n"+
		"receivers: [{name: r, webhook_configs: [{url: %q, timeout: 60s}]}]\n", url)
}

func crashAlert() Alert {
	now := time.Now()
	return firingAlert(now, now.Add(-time.Minute), "alertname", "InstanceDown", "instance", "a:9100")
}

// TestNotifierCrashChild is the process TestNotifierKill9 kills: a
// notifier that enqueues a notification for an endpoint that never
// answers.
func TestNotifierCrashChild(t *testing.T) {
	prefix := os.Getenv(crashPrefixEnv)
	if prefix == "" {
		t.Skip("run by TestNotifierKill9")
	}
	n := newTestNotifier(t, testNotifierConfig(prefix), crashYAML(os.Getenv(crashURLEnv)), nil, nil)
	go n.Run(context.Background()) // ends with the process
	n.Ingest([]Alert{crashAlert()})
	fmt.Println("ingested")
	time.Sleep(60 * time.Second)
	os.Exit(5) // only if the parent failed to kill us
}

// TestNotifierKill9 SIGKILLs a notifier while its channel endpoint holds
// the request (between enqueue and acceptance); a new notifier on the same
// etcd, configured with an endpoint that answers, delivers the queued
// notification exactly once, and the ruler's next sends of the same alert
// do not notify again.
func TestNotifierKill9(t *testing.T) {
	if os.Getenv(crashPrefixEnv) != "" {
		t.Skip("in the child")
	}
	prefix := testPrefix(t)
	hit := make(chan struct{}, 1)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hit <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })

	cmd := exec.Command(os.Args[0], "-test.run=^TestNotifierCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashPrefixEnv+"="+prefix, crashURLEnv+"="+hang.URL, childEtcdEnv+"="+etcdEndpoint(t))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case <-hit: // the child enqueued and is sending
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the child never reached the endpoint\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child ended without being killed: %v\n%s", err, stderr.String())
	}

	c := newEtcdClient(t)
	if q, g := queueLen(t, c, prefix+"queue/"), queueLen(t, c, prefix+"groups/"); q != 1 || g != 1 {
		t.Fatalf("after the kill: %d queue entries and %d group states, want 1 and 1", q, g)
	}

	good := newEndpoint(t, realClock{}, "")
	n := newTestNotifier(t, testNotifierConfig(prefix), crashYAML(good.srv.URL), nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	n.Ingest([]Alert{crashAlert()}) // the ruler's next evaluation
	eventually(t, 20*time.Second, "queued notification delivered", func() bool { return len(good.received()) > 0 })
	for range 3 { // three more evaluations, with flushes every second
		time.Sleep(time.Second)
		n.Ingest([]Alert{crashAlert()})
	}
	time.Sleep(time.Second)
	got := good.received()
	if len(got) != 1 || webhookSummary(got[0].Body) != "firing:1" {
		t.Fatalf("deliveries after the restart: %v, want one firing notification", got)
	}
	if q := queueLen(t, c, prefix+"queue/"); q != 0 {
		t.Errorf("%d queue entries left", q)
	}
}

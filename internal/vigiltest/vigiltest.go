// Package vigiltest runs the real vigil binary for tests and runnable
// examples outside cmd/vigil (the SDK's examples, examples/): it builds
// cmd/vigil once per test process, starts a single node on free loopback
// ports with its own data directory, and stops it.
package vigiltest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Node is a running single-node vigil.
type Node struct {
	HTTP string // base URL of the HTTP API, "http://127.0.0.1:port"
	GRPC string // address of the gRPC API, "127.0.0.1:port"
	Dir  string // data directory
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

var build struct {
	once sync.Once
	path string
	err  error
}

// binary builds cmd/vigil into dir (once per process), or returns
// $VIGIL_BIN.
func binary(dir string) (string, error) {
	build.once.Do(func() {
		if p := os.Getenv("VIGIL_BIN"); p != "" {
			build.path = p
			return
		}
		out := filepath.Join(dir, "vigil")
		b, err := exec.Command("go", "build", "-o", out, "github.com/vigil-tsdb/vigil/cmd/vigil").CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build cmd/vigil: %w\n%s", err, b)
			return
		}
		build.path = out
	})
	return build.path, build.err
}

var (
	httpRE = regexp.MustCompile(`Query API / Grafana data source:\s+(\S+)`)
	grpcRE = regexp.MustCompile(`Go SDK, gRPC \(vigil\.v1 [^)]*\):\s+(\S+)`)
)

// Start builds vigil if needed and starts a single node in dir (created
// if missing; the binary is built there too) with the extra flags, and
// waits up to a minute until it prints its URLs. Its log is dir/vigil.log.
func Start(dir string, args ...string) (*Node, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	bin, err := binary(dir)
	if err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "vigil.log"))
	if err != nil {
		return nil, err
	}
	n := &Node{Dir: filepath.Join(dir, "data"), done: make(chan struct{}), log: log}
	n.cmd = exec.Command(bin, append([]string{"-data.dir", n.Dir, "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", "127.0.0.1:0"}, args...)...)
	n.cmd.Stderr = log
	out, err := n.cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	if err := n.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { n.cmd.Wait(); log.Close(); close(n.done) }()
	found := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := httpRE.FindStringSubmatch(sc.Text()); m != nil {
				n.HTTP = m[1]
			}
			if m := grpcRE.FindStringSubmatch(sc.Text()); m != nil {
				n.GRPC = m[1]
			}
			if n.HTTP != "" && n.GRPC != "" {
				found <- nil
				break
			}
		}
		if n.HTTP == "" || n.GRPC == "" {
			found <- errors.New("vigil exited without printing its URLs")
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case err = <-found:
	case <-time.After(time.Minute):
		err = errors.New("vigil printed no URLs in a minute")
	}
	if err != nil {
		n.Stop()
		b, _ := os.ReadFile(log.Name())
		return nil, fmt.Errorf("%w; its log:\n%s", err, lastLines(string(b), 20))
	}
	return n, nil
}

// Stop sends SIGTERM and waits up to 30 s for the exit, then SIGKILLs.
func (n *Node) Stop() error {
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		return errors.New("vigil did not stop within 30s of SIGTERM; killed")
	}
	if st := n.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("vigil exited with %s", st)
	}
	return nil
}

func lastLines(s string, k int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-k):], "\n")
}

// SyncBuffer is a bytes.Buffer safe for concurrent use: a log sink that
// tests read while the code under test writes.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

package storage

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/model"
)

// killChild runs the test named test of this binary in a child process
// with env added, SIGKILLs it after delay, and hands each line the child
// printed to onLine. The test fails unless the child died of the signal.
func killChild(t *testing.T, test string, env []string, delay time.Duration, onLine func(string)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		onLine(sc.Text())
	}
	err = cmd.Wait()
	timer.Stop()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("child ended without being killed: %v\n%s", err, stderr.String())
	}
}

// byTime indexes read samples by series and timestamp.
func byTime(got map[string][]model.Sample) map[string]map[int64]float64 {
	have := make(map[string]map[int64]float64, len(got))
	for k, smps := range got {
		m := make(map[int64]float64, len(smps))
		for _, s := range smps {
			m[s.T] = s.V
		}
		have[k] = m
	}
	return have
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// deployment is the running processes of one system under test: one for a
// single-node system, several for a cluster. compare pushes to and queries
// front; CPU and RSS are summed over procs, disk over dataDirs.
type deployment struct {
	front    *server   // takes the remote write and the queries
	procs    []*server // every process, front included
	dataDirs []string  // where the stored data is

	// stop settles the data on disk and ends every process within about
	// timeout; nil means SIGTERM to front and wait for its exit.
	stop func(timeout time.Duration) error
}

// startSingle starts a one-process system from its args in dir/data and
// waits until its query API answers.
func startSingle(ctx context.Context, cfg *compareConfig, s *system, dir string, stderr io.Writer) (*deployment, error) {
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	httpPort, err1 := freePort()
	grpcPort, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	args, err := s.args(data, dir, httpPort, grpcPort)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	srv, err := startServer(s.name, s.path, args, filepath.Join(dir, "server.log"), base)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "   started %s (pid %d) on %s, data in %s\n", s.name, srv.pid(), base, data)
	if err := srv.waitReady(ctx, cfg.startTimeout); err != nil {
		srv.kill()
		return nil, err
	}
	return &deployment{front: srv, procs: []*server{srv}, dataDirs: []string{data}}, nil
}

// kill sends SIGKILL to every process still running and waits for them.
// Safe to call more than once.
func (d *deployment) kill() {
	for _, p := range d.procs {
		p.kill()
	}
}

// shutdown runs d.stop, or stops the front with SIGTERM.
func (d *deployment) shutdown(timeout time.Duration) error {
	if d.stop != nil {
		return d.stop(timeout)
	}
	if err := d.front.stop(timeout); err != nil {
		return fmt.Errorf("%w; log: %s", err, d.front.logTail(3))
	}
	return nil
}

// cpuSeconds is the user + system CPU time of every process so far.
func (d *deployment) cpuSeconds() (float64, error) {
	var sum float64
	for _, p := range d.procs {
		c, err := cpuSeconds(p.pid())
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p.name, err)
		}
		sum += c
	}
	return sum, nil
}

// peakRSS is the sum of every process' VmHWM. The peaks need not have
// been at the same moment, so this is an upper bound of the peak of the
// sum.
func (d *deployment) peakRSS() (int64, error) {
	var sum int64
	for _, p := range d.procs {
		r, err := peakRSS(p.pid())
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p.name, err)
		}
		sum += r
	}
	return sum, nil
}

// exitedCPU is the user + system CPU time of every process over its whole
// life; ok is false unless all have exited.
func (d *deployment) exitedCPU() (sum float64, ok bool) {
	for _, p := range d.procs {
		if !p.exited() || p.cmd.ProcessState == nil {
			return 0, false
		}
		sum += (p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()).Seconds()
	}
	return sum, true
}

// diskUsage sums the disk usage of the data dirs, and separately of the
// subdirectories named in caches within each.
func (d *deployment) diskUsage(caches []string) (total, cache int64, err error) {
	for _, dir := range d.dataDirs {
		n, err := diskUsage(dir)
		if err != nil {
			return 0, 0, err
		}
		total += n
		for _, c := range caches {
			n, err := diskUsage(filepath.Join(dir, c))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return 0, 0, err
			}
			cache += n
		}
	}
	return total, cache, nil
}

// logTail is the last n lines of the front's log and of every other
// process that has exited, for error messages.
func (d *deployment) logTail(n int) string {
	parts := []string{d.front.logTail(n)}
	for _, p := range d.procs {
		if p != d.front && p.exited() {
			parts = append(parts, fmt.Sprintf("%s exited (%v): %s", p.name, p.waitErr, p.logTail(n)))
		}
	}
	return strings.Join(parts, "; ")
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/vigil-tsdb/vigil/loadgen"
)

// ErrRunFailed is returned when a live run completed but lost samples or
// saw failures; the report says which.
var ErrRunFailed = errors.New("the run failed (see the report)")

// runLive runs `vigil-bench run MODE`, or `vigil-bench mixed|scrape|query`
// (mode given): flags, the run, the report directory.
func runLive(ctx context.Context, mode string, args []string, stdout, stderr io.Writer) error {
	name := "run " + mode
	if mode == "" {
		if len(args) == 0 {
			return errors.New("run: name a mode: push, scrape, query or mixed")
		}
		mode, args = args[0], args[1:]
		name = "run " + mode
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := loadgen.DefaultLiveConfig()
	cfg.Mode = mode
	cfg.RegisterFlags(fs)
	out := fs.String("out", "", "report directory (default ./vigil-bench-report-<UTC time>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	dir := *out
	if dir == "" {
		dir = "vigil-bench-report-" + time.Now().UTC().Format("20060102-150405")
	}
	fmt.Fprintf(stderr, "vigil-bench %s against %s for %v; report in %s\n", mode, cfg.URL, cfg.Duration, dir)
	res, err := loadgen.RunLive(ctx, cfg, stderr)
	if res == nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	files, werr := writeLiveReport(dir, res, err)
	if werr != nil {
		return errors.Join(err, werr)
	}
	s := summarize(res, err)
	fmt.Fprintf(stdout, "%s: %s\n", mode, s.headline())
	for _, f := range files {
		fmt.Fprintln(stdout, filepath.Join(dir, f))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if !s.Passed {
		return ErrRunFailed
	}
	return nil
}

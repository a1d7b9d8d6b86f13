package loadgen

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// reporter writes the progress line: on a terminal it rewrites one line
// with carriage returns twice a second, elsewhere (a log file, CI) it
// writes a plain line every few seconds.
type reporter struct {
	w     io.Writer // nil: report nothing
	total int64
	st    *stats
	tty   bool
	every time.Duration
	began time.Time

	done chan struct{}
	wg   sync.WaitGroup
}

const (
	ttyEvery  = 500 * time.Millisecond
	lineEvery = 5 * time.Second
)

func newReporter(w io.Writer, total int64, st *stats) *reporter {
	r := &reporter{w: w, total: total, st: st, every: lineEvery, done: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			r.tty, r.every = true, ttyEvery
		}
	}
	return r
}

func (r *reporter) start(began time.Time) {
	r.began = began
	if r.w == nil {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.every)
		defer t.Stop()
		for {
			select {
			case <-r.done:
				return
			case now := <-t.C:
				r.print(now.Sub(r.began), false)
			}
		}
	}()
}

// stop ends the reporting goroutine and writes the final line.
func (r *reporter) stop(elapsed time.Duration) {
	close(r.done)
	r.wg.Wait()
	if r.w != nil {
		r.print(elapsed, true)
	}
}

func (r *reporter) print(elapsed time.Duration, final bool) {
	n := r.st.samples.Load()
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(n) / s
	}
	line := fmt.Sprintf("sent %s/%s samples (%3.0f%%)  %s samples/s  %5.1fs  requests %d  retries %d  errors %d",
		Human(float64(n)), Human(float64(r.total)), 100*float64(n)/float64(max(r.total, 1)),
		Human(rate), elapsed.Seconds(), r.st.requests.Load(), r.st.retries.Load(), r.st.errors.Load())
	switch {
	case r.tty && final:
		fmt.Fprintf(r.w, "\r%s\033[K\n", line)
	case r.tty:
		fmt.Fprintf(r.w, "\r%s\033[K", line)
	default:
		fmt.Fprintln(r.w, line)
	}
}

// Human formats n with a k/M/G suffix and three significant digits.
func Human(n float64) string {
	switch {
	case n >= 1e9:
		return trim3(n/1e9) + "G"
	case n >= 1e6:
		return trim3(n/1e6) + "M"
	case n >= 1e3:
		return trim3(n/1e3) + "k"
	}
	return trim3(n)
}

func trim3(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprintf("%.2f", x)
}

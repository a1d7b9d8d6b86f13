package collector

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/vigil-tsdb/vigil/model"
)

// class is what a downstream answer means for the batch.
type pushClass string

const (
	classDelivered pushClass = "delivered"
	classRefused   pushClass = "refused"   // never worth retrying: counted, logged, dropped
	classRetryable pushClass = "retryable" // spooled and sent again later
)

// classify sorts a downstream error. Anything not known to be the
// request's own fault is retryable: losing data is worse than delaying it.
func classifyPush(err error) pushClass {
	switch {
	case err == nil:
		return classDelivered
	case errors.Is(err, model.ErrBadData), errors.Is(err, model.ErrTooLarge):
		return classRefused
	default: // model.ErrUnavailable, model.ErrOverloaded, deadlines, unknown
		return classRetryable
	}
}

// replay sends the spooled batches, oldest first, until ctx is done. It
// probes with the oldest batches (merged up to MaxBatchSamples), backing
// off while the downstream fails, and deletes batches only after the
// downstream acknowledged them.
func (b *Batcher) replay(ctx context.Context) {
	defer b.replayer.Done()
	backoff := b.cfg.ReplayBackoff
	solo := 0 // send this many next pushes one frame at a time
	for {
		b.spool.enforceAge()
		limit := maxReplayFrames
		if solo > 0 {
			limit = 1
		}
		entries := b.spool.oldest(b.cfg.MaxBatchSamples, limit)
		if len(entries) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-b.spool.notify:
			}
			continue
		}
		series, used, err := b.readSpooled(entries)
		switch {
		case errors.Is(err, errEntryGone):
			continue
		case errors.Is(err, errSpoolCorrupt):
			b.spool.discard(entries[0], dropCorrupt, err)
			continue
		case err != nil:
			b.logger.Error("cannot read spooled batch; will retry", "err", err)
			if !b.sleep(ctx, &backoff) {
				return
			}
			continue
		}
		samples := 0
		for _, e := range used {
			samples += e.meta.Samples
		}
		pctx, cancel := context.WithTimeout(ctx, b.cfg.PushTimeout)
		res, err := b.downstream.Push(pctx, series)
		cancel()
		switch classifyPush(err) {
		case classDelivered:
			backoff = b.cfg.ReplayBackoff
			for _, e := range used {
				b.spool.ack(e)
			}
			b.noteResult(res, samples)
			solo = max(0, solo-1)
		case classRefused:
			if len(used) > 1 {
				// Find the refused frame: send these one by one.
				b.metrics.downstreamErrors.WithLabelValues(string(classRefused)).Inc()
				solo = len(used)
				continue
			}
			b.noteRefusal(err, samples)
			b.spool.discard(used[0], dropRefused, err)
			solo = max(0, solo-1)
		case classRetryable:
			if ctx.Err() != nil {
				return
			}
			b.metrics.downstreamErrors.WithLabelValues(string(classRetryable)).Inc()
			b.logger.Debug("downstream still unavailable; will probe again with the oldest spooled batches", "err", err, "backoff", backoff)
			if !b.sleep(ctx, &backoff) {
				return
			}
		}
	}
}

// readSpooled reads entries in order until one fails. The error is that
// of the first entry; a later failing entry only ends the list (it is
// handled when it becomes the oldest).
func (b *Batcher) readSpooled(entries []spoolEntry) ([]model.Series, []spoolEntry, error) {
	var series []model.Series
	for i, e := range entries {
		s, err := b.spool.read(e)
		if err != nil {
			if i == 0 {
				return nil, nil, err
			}
			return series, entries[:i], nil
		}
		series = append(series, s...)
	}
	return series, entries, nil
}

// sleep waits for a jittered *backoff (between half and all of it), then
// doubles *backoff up to MaxReplayBackoff. It returns false if ctx ended.
func (b *Batcher) sleep(ctx context.Context, backoff *time.Duration) bool {
	d := *backoff/2 + rand.N(*backoff/2+1)
	*backoff = min(2**backoff, b.cfg.MaxReplayBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// noteResult accounts the per-sample rejections of an accepted batch.
func (b *Batcher) noteResult(res model.PushResult, samples int) {
	if res.RejectedSamples == 0 {
		return
	}
	for reason, n := range res.ByReason {
		b.metrics.rejected.WithLabelValues(string(reason)).Add(float64(n))
	}
	args := []any{"rejected", res.RejectedSamples, "samples", samples}
	if len(res.Rejections) > 0 {
		r := res.Rejections[0]
		args = append(args, "example_reason", r.Reason, "example_series", r.Series, "example", r.Message)
	}
	b.rejectLog.log(b.logger, slog.LevelWarn, "downstream rejected samples", args...)
}

// noteRefusal accounts a batch the downstream refused as a whole.
func (b *Batcher) noteRefusal(err error, samples int) {
	b.metrics.downstreamErrors.WithLabelValues(string(classRefused)).Inc()
	reason := "bad_data"
	if errors.Is(err, model.ErrTooLarge) {
		reason = "too_large"
	}
	b.metrics.rejected.WithLabelValues(reason).Add(float64(samples))
	b.rejectLog.log(b.logger, slog.LevelWarn, "downstream refused a batch; dropping it", "samples", samples, "err", err)
}

// rateLimitedLog logs at most once per period and says how many lines it
// held back, so that a bad target flushed every 100 ms does not flood the log.
type rateLimitedLog struct {
	every time.Duration

	mu         sync.Mutex // protects last and suppressed
	last       time.Time
	suppressed int
}

func (r *rateLimitedLog) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "similar_lines_suppressed", n)
	}
	l.Log(context.Background(), level, msg, args...)
}

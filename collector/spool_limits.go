package collector

import (
	"fmt"
	"math"
	"time"
)

// The spool's limits: dropping the oldest batches, and saying so.

// dropSummary describes batches dropped together.
type dropSummary struct {
	batches, samples int
	bytes            int64
	minT, maxT       int64 // sample time range, when samples > 0
	from, to         int64 // when the first and last were spooled
}

// add sums up o, dropped after d.
func (d *dropSummary) add(o dropSummary) {
	if d.batches == 0 {
		d.from = o.from
	}
	d.batches += o.batches
	d.samples += o.samples
	d.bytes += o.bytes
	d.to = o.to
	if o.samples > 0 {
		d.minT, d.maxT = min(d.minT, o.minT), max(d.maxT, o.maxT)
	}
}

// logAttrs are the attributes of the log line that reports the drop.
func (d dropSummary) logAttrs() []any {
	a := []any{"batches", d.batches, "samples", d.samples, "bytes", d.bytes,
		"spooled_from", spoolTime(d.from), "spooled_to", spoolTime(d.to)}
	if d.samples > 0 {
		a = append(a, "first_sample", spoolTime(d.minT), "last_sample", spoolTime(d.maxT))
	}
	return a
}

// dropWhileLocked drops the oldest entries while cond holds, counts them
// in the dropped metric and moves the cursor.
func (s *spool) dropWhileLocked(reason string, cond func(spoolEntry) bool) dropSummary {
	d := dropSummary{minT: math.MaxInt64, maxT: math.MinInt64}
	for len(s.entries) > 0 && cond(s.entries[0]) {
		e := s.popLocked()
		if d.batches == 0 {
			d.from = e.meta.AppendedAt
		}
		d.to = e.meta.AppendedAt
		d.batches++
		d.samples += e.meta.Samples
		d.bytes += e.size
		if e.meta.Samples > 0 {
			d.minT, d.maxT = min(d.minT, e.meta.MinT), max(d.maxT, e.meta.MaxT)
		}
	}
	if d.batches > 0 {
		s.metrics.dropped.WithLabelValues(reason).Add(float64(d.samples))
		s.writeCursorLocked()
	}
	return d
}

// dropForLimitLocked drops the oldest entries while cond holds, as a
// limit requires, and logs it.
func (s *spool) dropForLimitLocked(reason string, cond func(spoolEntry) bool) {
	d := s.dropWhileLocked(reason, cond)
	if d.batches == 0 {
		return
	}
	if s.drops.pending == nil {
		s.drops.pending = map[string]*pendingDrop{}
	}
	p := s.drops.pending[reason]
	if p == nil {
		p = &pendingDrop{dropSummary: dropSummary{minT: math.MaxInt64, maxT: math.MinInt64}}
		s.drops.pending[reason] = p
	}
	p.add(d)
	p.events++
	s.flushDropLogLocked(false)
}

// dropLog turns drops into log lines: at once when no line was logged for
// dropLogPeriod, otherwise summed up into one line per reason once the
// period is over (checked on every drop and age check) or on close. A full
// spool drops at every append; a line each would flood the log during a
// long outage.
type dropLog struct {
	last    time.Time               // when the last lines were logged
	pending map[string]*pendingDrop // by reason, not logged yet
}

type pendingDrop struct {
	dropSummary
	events int
}

const dropLogPeriod = 10 * time.Second

func (s *spool) flushDropLogLocked(force bool) {
	if len(s.drops.pending) == 0 {
		return
	}
	now := s.now()
	if !force && !s.drops.last.IsZero() && now.Sub(s.drops.last) < dropLogPeriod {
		return
	}
	for _, reason := range []string{dropMaxAge, dropMaxBytes} {
		p := s.drops.pending[reason]
		if p == nil {
			continue
		}
		limit := fmt.Sprint(s.cfg.MaxBytes, " bytes")
		if reason == dropMaxAge {
			limit = s.cfg.MaxAge.String()
		}
		attrs := []any{"reason", reason, "limit", limit}
		if p.events > 1 {
			attrs = append(attrs, "drops_summed_up", p.events)
		}
		s.logger.Error("spool limit exceeded; dropped the oldest spooled data", append(attrs, p.logAttrs()...)...)
	}
	clear(s.drops.pending)
	s.drops.last = now
}

func (s *spool) enforceAgeLocked(now time.Time) {
	cutoff := now.Add(-s.cfg.MaxAge).UnixMilli()
	s.dropForLimitLocked(dropMaxAge, func(e spoolEntry) bool { return e.meta.AppendedAt < cutoff })
}

// enforceAge drops the batches spooled longer than MaxAge ago.
func (s *spool) enforceAge() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enforceAgeLocked(s.now())
	s.flushDropLogLocked(false)
}

package collector

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-tsdb/vigil/model"
)

// SpoolConfig configures the on-disk spool of a Batcher (flags
// -collector.spool.*). docs/collector.md describes the format and limits.
type SpoolConfig struct {
	Dir          string        `yaml:"dir"`
	MaxBytes     int64         `yaml:"max_bytes"`
	MaxAge       time.Duration `yaml:"max_age"`
	SegmentBytes int64         `yaml:"segment_bytes"`
}

// DefaultSpoolConfig returns a complete, working configuration.
func DefaultSpoolConfig() SpoolConfig {
	return SpoolConfig{
		Dir:          filepath.Join("data", "collector", "spool"),
		MaxBytes:     1 << 30,
		MaxAge:       24 * time.Hour,
		SegmentBytes: 16 << 20,
	}
}

// RegisterFlags adds the -collector.spool.* flags, with the current values
// as defaults.
func (c *SpoolConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Dir, "collector.spool.dir", c.Dir, "directory of the collector's spool (batches kept while the distributors are unavailable)")
	f.Int64Var(&c.MaxBytes, "collector.spool.max-bytes", c.MaxBytes, "spooled bytes kept at most; beyond it the oldest batches are dropped")
	f.DurationVar(&c.MaxAge, "collector.spool.max-age", c.MaxAge, "spooled batches older than this are dropped")
	f.Int64Var(&c.SegmentBytes, "collector.spool.segment-bytes", c.SegmentBytes, "size at which the spool starts a new segment file")
}

// Validate reports the first invalid field.
func (c SpoolConfig) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("collector.spool.dir must be set")
	case c.MaxBytes <= 0:
		return errors.New("collector.spool.max-bytes must be positive")
	case c.MaxAge <= 0:
		return errors.New("collector.spool.max-age must be positive")
	case c.SegmentBytes <= 0 || c.SegmentBytes > c.MaxBytes:
		return errors.New("collector.spool.segment-bytes must be positive and at most collector.spool.max-bytes")
	}
	return nil
}

// Drop reasons (vigil_collector_spool_dropped_samples_total{reason}).
const (
	dropMaxBytes   = "max_bytes"
	dropMaxAge     = "max_age"
	dropRefused    = "refused"
	dropCorrupt    = "corrupt"
	dropWriteError = "write_error"
)

var (
	errSpoolClosed = errors.New("spool closed")
	// errEntryGone: the entry was dropped (limits) while it was being read.
	errEntryGone = errors.New("spool entry no longer present")
	// errSpoolCorrupt wraps a frame that fails its check when replayed.
	errSpoolCorrupt = errors.New("corrupt spool frame")
)

// spoolEntry is one spooled batch.
type spoolEntry struct {
	seg  uint64
	off  int64 // of the frame in the segment file
	size int64 // frame bytes
	meta frameMeta
}

// spool is a FIFO of batches in segment files. Its methods are safe for
// concurrent use; it starts no goroutine. Appends come from one goroutine
// (the Batcher's committer), reads and acknowledgments from another (the
// replayer).
type spool struct {
	cfg     SpoolConfig
	logger  *slog.Logger
	metrics *spoolMetrics
	now     func() time.Time
	notify  chan struct{} // cap 1; signalled after every append

	encMu sync.Mutex // serialises appends; protects enc and buf
	enc   spoolEncoder
	buf   []byte // frames being appended

	mu         sync.Mutex // protects everything below
	entries    []spoolEntry
	bytes      int64          // sum of entries' sizes
	segLive    map[uint64]int // segments on disk → live entries in them
	active     *os.File       // segment being appended to, nil until the next append
	activeSeg  uint64
	activeSize int64
	nextSeg    uint64
	cursor     *os.File
	cursorErr  bool // a cursor write failed (logged once)
	drops      dropLog
	closed     bool
	// The current episode: since the spool last became non-empty.
	busySince               time.Time
	busyBatches, busySample int
}

func segmentPath(dir string, n uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", n))
}

// openSpool opens (creating) the spool directory, cuts a torn tail, skips
// corrupt data and indexes every batch not yet acknowledged.
func openSpool(cfg SpoolConfig, logger *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*spool, error) {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	s := &spool{cfg: cfg, logger: logger, now: now, notify: make(chan struct{}, 1), segLive: map[uint64]int{}}
	s.metrics = newSpoolMetrics(s)
	segs, err := listSpoolSegments(cfg.Dir)
	if err != nil {
		return nil, err
	}
	curSeg, curOff := s.readCursor()
	for i, n := range segs {
		if n < curSeg {
			// Fully acknowledged; its deletion was lost in a crash.
			if err := os.Remove(segmentPath(cfg.Dir, n)); err != nil {
				return nil, fmt.Errorf("remove acknowledged spool segment %d: %w", n, err)
			}
			continue
		}
		if err := s.loadSegment(n, i == len(segs)-1, curSeg, curOff); err != nil {
			return nil, err
		}
	}
	s.nextSeg = max(curSeg+1, 1)
	if len(segs) > 0 {
		s.nextSeg = max(s.nextSeg, segs[len(segs)-1]+1)
	}
	if s.cursor, err = os.OpenFile(filepath.Join(cfg.Dir, "cursor"), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, fmt.Errorf("open spool cursor: %w", err)
	}
	if err := s.metrics.register(reg); err != nil {
		s.cursor.Close()
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) > 0 {
		s.busySince = s.now()
		first, last := s.entries[0].meta, s.entries[len(s.entries)-1].meta
		logger.Info("spool holds batches to replay", "batches", len(s.entries), "bytes", s.bytes,
			"spooled_from", spoolTime(first.AppendedAt), "spooled_to", spoolTime(last.AppendedAt))
	}
	s.dropForLimitLocked(dropMaxBytes, func(spoolEntry) bool { return s.bytes > cfg.MaxBytes })
	s.writeCursorLocked()
	return s, nil
}

// listSpoolSegments returns the segment numbers in dir, ascending.
func listSpoolSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list spool segments: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

// loadSegment indexes the frames of segment n at or after the cursor.
func (s *spool) loadSegment(n uint64, last bool, curSeg uint64, curOff int64) error {
	path := segmentPath(s.cfg.Dir, n)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read spool segment %d: %w", n, err)
	}
	if len(data) < segmentHeaderSize || [segmentHeaderSize]byte(data[:segmentHeaderSize]) != segmentHeader {
		if last && len(data) <= segmentHeaderSize {
			s.logger.Warn("removing spool segment torn while being created (expected after a crash)", "segment", n, "bytes", len(data))
		} else {
			s.metrics.corrupt.Inc()
			s.logger.Error("removing spool segment with a bad header; its data is lost", "segment", n, "bytes", len(data))
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove spool segment %d: %w", n, err)
		}
		return nil
	}
	good, bad, tail := scanSpoolFrames(data[segmentHeaderSize:])
	for _, r := range bad {
		s.metrics.corrupt.Inc()
		s.logger.Error("skipping corrupt data in spool segment; the batches in it are lost",
			"segment", n, "offset", segmentHeaderSize+r.Off, "bytes", r.Len, "err", r.Err)
	}
	if tail != nil {
		off := segmentHeaderSize + tail.Off
		if last {
			s.logger.Warn("cutting torn tail of the last spool segment (expected after a crash)",
				"segment", n, "offset", off, "bytes", tail.Len, "reason", tail.Err)
			if err := truncateSync(path, off); err != nil {
				return err
			}
		} else {
			s.metrics.corrupt.Inc()
			s.logger.Error("skipping corrupt end of spool segment; the batches in it are lost",
				"segment", n, "offset", off, "bytes", tail.Len, "err", tail.Err)
		}
	}
	for _, f := range good {
		off := segmentHeaderSize + f.Off
		if n == curSeg && off < curOff {
			continue // acknowledged
		}
		s.entries = append(s.entries, spoolEntry{seg: n, off: off, size: f.Size, meta: f.Meta})
		s.bytes += f.Size
		s.segLive[n]++
	}
	if s.segLive[n] == 0 {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove spent spool segment %d: %w", n, err)
		}
	}
	return nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open spool segment to cut its tail: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("cut spool segment tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync spool segment after cutting its tail: %w", err)
	}
	return nil
}

// readCursor returns the position of the oldest unacknowledged frame, or
// (0, 0) — the start of the oldest segment — if there is no valid cursor.
func (s *spool) readCursor() (uint64, int64) {
	b, err := os.ReadFile(filepath.Join(s.cfg.Dir, "cursor"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0
	}
	if err != nil || len(b) != 20 || crc32.Checksum(b[:16], spoolCRC) != binary.LittleEndian.Uint32(b[16:]) {
		s.logger.Warn("spool cursor unreadable; replaying from the oldest segment (batches may be sent twice)", "err", err, "bytes", len(b))
		return 0, 0
	}
	return binary.LittleEndian.Uint64(b), int64(binary.LittleEndian.Uint64(b[8:]))
}

// writeCursorLocked records the position of the oldest live frame. No
// fsync: a stale cursor after a crash only means duplicates.
func (s *spool) writeCursorLocked() {
	seg, off := s.nextSeg, int64(0)
	if len(s.entries) > 0 {
		seg, off = s.entries[0].seg, s.entries[0].off
	}
	var b [20]byte
	binary.LittleEndian.PutUint64(b[:], seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], spoolCRC))
	if _, err := s.cursor.WriteAt(b[:], 0); err != nil && !s.cursorErr {
		s.cursorErr = true
		s.logger.Warn("cannot write spool cursor; after a restart acknowledged batches may be sent again", "err", err)
	}
}

// append writes each batch as one frame, all with one write and one
// fsync, and returns an error per batch (nil: spooled). It drops the
// oldest batches first if the limits require it; a batch larger than
// MaxBytes on its own is dropped instead.
func (s *spool) append(batches ...[]model.Series) []error {
	errs := make([]error, len(batches))
	s.encMu.Lock()
	defer s.encMu.Unlock()
	now := s.now()
	type framed struct {
		batch     int
		off, size int64 // in buf
		meta      frameMeta
	}
	var (
		frames []framed
		buf    = s.buf[:0]
	)
	for i, batch := range batches {
		start := len(buf)
		var (
			meta frameMeta
			err  error
		)
		buf, meta, err = s.enc.appendFrame(buf, batch, now.UnixMilli())
		if err == nil && int64(len(buf)-start) > s.cfg.MaxBytes {
			s.logger.Error("batch larger than the whole spool; dropping it", "bytes", len(buf)-start, "max_bytes", s.cfg.MaxBytes,
				"samples", meta.Samples, "first_sample", spoolTime(meta.MinT), "last_sample", spoolTime(meta.MaxT))
			s.metrics.dropped.WithLabelValues(dropMaxBytes).Add(float64(meta.Samples))
			err = fmt.Errorf("%d bytes, spool max-bytes %d: %w", len(buf)-start, s.cfg.MaxBytes, errFrameTooLarge)
			buf = buf[:start]
		} else if err != nil {
			s.metrics.dropped.WithLabelValues(dropWriteError).Add(float64(model.CountSamples(batch)))
		}
		if err != nil {
			errs[i] = err
			continue
		}
		frames = append(frames, framed{batch: i, off: int64(start), size: int64(len(buf) - start), meta: meta})
	}
	s.buf = buf
	if cap(buf) > 64<<20 {
		s.buf = nil // an outsized batch: do not keep its buffer
	}
	if len(frames) == 0 {
		return errs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		for _, f := range frames {
			errs[f.batch] = errSpoolClosed
		}
		return errs
	}
	s.enforceAgeLocked(now)
	total := int64(len(buf))
	s.dropForLimitLocked(dropMaxBytes, func(spoolEntry) bool { return s.bytes+total > s.cfg.MaxBytes })
	for total > s.cfg.MaxBytes { // only if the spool is empty: drop the oldest of this group
		f := frames[0]
		frames = frames[1:]
		total -= f.size
		s.metrics.dropped.WithLabelValues(dropMaxBytes).Add(float64(f.meta.Samples))
		s.logger.Error("spool limit exceeded; dropped a batch while spooling it", "limit", fmt.Sprint(s.cfg.MaxBytes, " bytes"),
			"bytes", f.size, "samples", f.meta.Samples)
	}
	first := frames[0].off
	if err := s.writeLocked(buf[first:]); err != nil {
		for _, f := range frames {
			errs[f.batch] = err
			s.metrics.dropped.WithLabelValues(dropWriteError).Add(float64(f.meta.Samples))
		}
		return errs
	}
	if len(s.entries) == 0 {
		s.busySince, s.busyBatches, s.busySample = now, 0, 0
	}
	for _, f := range frames {
		s.entries = append(s.entries, spoolEntry{seg: s.activeSeg, off: s.activeSize + f.off - first, size: f.size, meta: f.meta})
		s.bytes += f.size
		s.segLive[s.activeSeg]++
		s.busyBatches++
		s.busySample += f.meta.Samples
	}
	s.activeSize += total
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return errs
}

// writeLocked writes frames (whole ones) to the active segment, starting
// one if needed, and fsyncs it. After a failure the segment is cut back and closed, so
// the next append starts a new one.
func (s *spool) writeLocked(frames []byte) error {
	if s.active != nil && s.activeSize >= s.cfg.SegmentBytes {
		s.closeActiveLocked()
	}
	if s.active == nil {
		if err := s.startSegmentLocked(); err != nil {
			return err
		}
	}
	_, err := s.active.WriteAt(frames, s.activeSize)
	if err == nil {
		err = s.active.Sync()
	}
	if err != nil {
		_ = s.active.Truncate(s.activeSize) // best effort; a survivor is replayed as a duplicate
		seg := s.activeSeg
		s.closeActiveLocked()
		return fmt.Errorf("write spool segment %d: %w", seg, err)
	}
	return nil
}

func (s *spool) startSegmentLocked() error {
	n := s.nextSeg
	s.nextSeg++ // also after a failure: never retry a name that may exist
	path := segmentPath(s.cfg.Dir, n)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create spool segment %d: %w", n, err)
	}
	_, err = f.Write(segmentHeader[:])
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = spoolSyncDir(s.cfg.Dir)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create spool segment %d: %w", n, err)
	}
	s.active, s.activeSeg, s.activeSize = f, n, segmentHeaderSize
	s.segLive[n] = 0
	return nil
}

func spoolSyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// closeActiveLocked closes the active segment (already fsynced) and
// removes it if it holds nothing live.
func (s *spool) closeActiveLocked() {
	if s.active == nil {
		return
	}
	s.active.Close()
	s.active = nil
	s.removeIfSpentLocked(s.activeSeg)
}

func (s *spool) removeIfSpentLocked(seg uint64) {
	if n, ok := s.segLive[seg]; !ok || n > 0 || (s.active != nil && seg == s.activeSeg) {
		return
	}
	delete(s.segLive, seg)
	if err := os.Remove(segmentPath(s.cfg.Dir, seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.logger.Warn("cannot remove spent spool segment; it is removed at the next start", "segment", seg, "err", err)
	}
}

// popLocked removes the oldest entry. When the spool becomes empty the
// active segment goes too, so an empty spool holds no segment.
func (s *spool) popLocked() spoolEntry {
	e := s.entries[0]
	s.entries[0] = spoolEntry{}
	s.entries = s.entries[1:]
	s.bytes -= e.size
	s.segLive[e.seg]--
	s.removeIfSpentLocked(e.seg)
	if len(s.entries) == 0 {
		s.closeActiveLocked()
	}
	return e
}

// oldest returns the oldest entries, as many as fit in maxSamples (at
// least one) and at most maxEntries; nil if the spool is empty.
func (s *spool) oldest(maxSamples, maxEntries int) []spoolEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var es []spoolEntry
	samples := 0
	for _, e := range s.entries {
		if len(es) == maxEntries || len(es) > 0 && samples+e.meta.Samples > maxSamples {
			break
		}
		es = append(es, e)
		samples += e.meta.Samples
	}
	return es
}

// head returns the oldest entry.
func (s *spool) head() (spoolEntry, bool) {
	es := s.oldest(0, 1)
	if len(es) == 0 {
		return spoolEntry{}, false
	}
	return es[0], true
}

func (s *spool) isHeadLocked(e spoolEntry) bool {
	return len(s.entries) > 0 && s.entries[0].seg == e.seg && s.entries[0].off == e.off
}

// isLiveLocked reports whether e is among the oldest maxReplayFrames
// entries (the only ones read).
func (s *spool) isLiveLocked(e spoolEntry) bool {
	for _, x := range s.entries[:min(len(s.entries), maxReplayFrames)] {
		if x.seg == e.seg && x.off == e.off {
			return true
		}
	}
	return false
}

// maxReplayFrames bounds how many frames one replayed push merges.
const maxReplayFrames = 256

// read returns the batch of e, one of the oldest maxReplayFrames entries.
// Errors: errEntryGone if e was dropped meanwhile, errSpoolCorrupt if its
// frame fails its check, others for I/O failures.
func (s *spool) read(e spoolEntry) ([]model.Series, error) {
	s.mu.Lock()
	if !s.isLiveLocked(e) {
		s.mu.Unlock()
		return nil, errEntryGone
	}
	// Opened under the lock so that the file cannot be removed in between;
	// an open file stays readable after removal.
	f, err := os.Open(segmentPath(s.cfg.Dir, e.seg))
	s.mu.Unlock()
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("spool segment %d: %v: %w", e.seg, err, errSpoolCorrupt)
	}
	if err != nil {
		return nil, fmt.Errorf("open spool segment %d: %w", e.seg, err)
	}
	defer f.Close()
	buf := make([]byte, e.size)
	if _, err := f.ReadAt(buf, e.off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("segment %d offset %d: frame cut short: %w", e.seg, e.off, errSpoolCorrupt)
		}
		return nil, fmt.Errorf("read spool segment %d: %w", e.seg, err)
	}
	payload, err := checkSpoolFrame(buf)
	if err != nil {
		return nil, fmt.Errorf("segment %d offset %d: %v: %w", e.seg, e.off, err, errSpoolCorrupt)
	}
	batch, _, err := decodeBatch(payload)
	if err != nil {
		return nil, fmt.Errorf("segment %d offset %d: %v: %w", e.seg, e.off, err, errSpoolCorrupt)
	}
	return batch, nil
}

// ack removes e, which the downstream acknowledged, if it is still the
// oldest entry. It returns false if e was dropped meanwhile.
func (s *spool) ack(e spoolEntry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isHeadLocked(e) {
		return false
	}
	s.popLocked()
	s.metrics.replayed.Add(float64(e.meta.Samples))
	s.writeCursorLocked()
	if len(s.entries) == 0 {
		s.logger.Info("spool replayed; sending batches directly again", "batches", s.busyBatches,
			"samples", s.busySample, "spooled_for", s.now().Sub(s.busySince).Round(time.Millisecond))
	}
	return true
}

// discard removes e, if it is still the oldest entry, counting its samples
// as dropped for reason; cause goes to the log.
func (s *spool) discard(e spoolEntry, reason string, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isHeadLocked(e) {
		return
	}
	if reason == dropCorrupt {
		s.metrics.corrupt.Inc()
	}
	d := s.dropWhileLocked(reason, func(x spoolEntry) bool { return x.seg == e.seg && x.off == e.off })
	s.logger.Error("spooled batch discarded", append([]any{"reason", reason, "segment", e.seg, "offset", e.off, "err", cause}, d.logAttrs()...)...)
}

// stats returns the number of batches, their bytes and the age of the
// oldest (0 if empty).
func (s *spool) stats() (batches int, bytes int64, oldest time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.entries) > 0 {
		oldest = max(0, s.now().Sub(spoolTime(s.entries[0].meta.AppendedAt)))
	}
	return len(s.entries), s.bytes, oldest
}

// empty reports whether the spool holds no batch.
func (s *spool) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries) == 0
}

// close fsyncs and closes the files; the spool refuses appends afterwards.
func (s *spool) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.flushDropLogLocked(true)
	var errs []error
	if s.active != nil {
		errs = append(errs, s.active.Sync())
		s.closeActiveLocked()
	}
	s.writeCursorLocked()
	errs = append(errs, s.cursor.Sync(), s.cursor.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close spool: %w", err)
	}
	return nil
}

func spoolTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

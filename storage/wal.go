package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Sync policies for the WAL (Config.WALSync).
const (
	// SyncAlways: a write is acknowledged only after its records are
	// fsynced. Concurrent writers share one fsync (group commit). Survives
	// process and machine crashes. The default.
	SyncAlways = "always"
	// SyncInterval: a write is acknowledged once its records are written to
	// the operating system; fsync runs every WALSyncInterval. Survives a
	// process crash (kill -9) but may lose the last interval on power loss.
	SyncInterval = "interval"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const frameHeader = 8 // uint32le length, uint32le crc32c(payload)

// wal is a segmented write-ahead log with group commit. Append buffers a
// framed record and returns a ticket; Wait(ticket) blocks until the record
// is as durable as the policy promises. One background goroutine writes
// (and with SyncAlways fsyncs) whatever accumulated while the previous write
// was in flight, so one fsync covers every waiting writer.
type wal struct {
	dir         string
	policy      string
	segmentSize int64
	logger      *slog.Logger
	metrics     *walMetrics

	mu      sync.Mutex // protects everything below
	cond    *sync.Cond // signalled on every state change below
	buf     []byte     // framed records not yet handed to the file
	spare   []byte     // the previous buffer, reused
	seq     uint64     // ticket of the last appended record
	done    uint64     // records up to this ticket are durable per policy
	busy    bool       // the writer goroutine is writing outside mu
	err     error      // sticky: once a write fails, every later Wait fails
	closing bool
	seg     int      // current segment number
	f       *os.File // current segment
	size    int64    // bytes in the current segment

	wg     sync.WaitGroup
	stopCh chan struct{}
}

func segmentName(dir string, n int) string { return filepath.Join(dir, fmt.Sprintf("%08d", n)) }

// listSegments returns the segment numbers in dir, ascending.
func listSegments(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list wal segments: %w", err)
	}
	var segs []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || e.IsDir() {
			continue
		}
		segs = append(segs, n)
	}
	sort.Ints(segs)
	return segs, nil
}

// openWAL starts a new segment numbered first (replay must have run before).
func openWAL(dir string, first int, policy string, syncInterval time.Duration, segmentSize int64, logger *slog.Logger, m *walMetrics) (*wal, error) {
	w := &wal{dir: dir, policy: policy, segmentSize: segmentSize, logger: logger, metrics: m, stopCh: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	if err := w.openSegment(first); err != nil {
		return nil, err
	}
	w.wg.Add(1)
	go w.writer()
	if policy == SyncInterval {
		w.wg.Add(1)
		go w.syncer(syncInterval)
	}
	return w, nil
}

func (w *wal) openSegment(n int) error {
	f, err := os.OpenFile(segmentName(w.dir, n), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create wal segment %d: %w", n, err)
	}
	if err := syncDir(w.dir); err != nil {
		f.Close()
		return err
	}
	w.f, w.seg, w.size = f, n, 0
	w.metrics.segment.Set(float64(n))
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir for sync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Append frames payload into the buffer and returns its ticket. It never
// blocks on I/O.
func (w *wal) Append(payload []byte) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.closing {
		return 0, errWALClosed
	}
	w.buf = appendFrame(w.buf, payload)
	w.seq++
	w.cond.Broadcast()
	return w.seq, nil
}

var errWALClosed = errors.New("wal closed")

// appendFrame appends payload framed as len:uint32le crc32c:uint32le payload.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

// Wait blocks until the record with ticket t is durable per the policy.
func (w *wal) Wait(t uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.done < t && w.err == nil {
		w.cond.Wait()
	}
	if w.done >= t {
		return nil
	}
	return w.err
}

func (w *wal) writer() {
	defer w.wg.Done()
	for {
		w.mu.Lock()
		for len(w.buf) == 0 && !w.closing {
			w.cond.Wait()
		}
		if len(w.buf) == 0 && w.closing {
			w.mu.Unlock()
			return
		}
		data, target, f := w.buf, w.seq, w.f
		w.buf, w.spare = w.spare[:0], nil
		w.busy = true
		w.mu.Unlock()

		start := time.Now()
		_, err := f.Write(data)
		if err == nil && w.policy == SyncAlways {
			err = f.Sync()
			w.metrics.fsyncs.Inc()
		}
		w.metrics.writeDuration.Observe(time.Since(start).Seconds())
		w.metrics.bytes.Add(float64(len(data)))

		w.mu.Lock()
		w.busy = false
		w.spare = data
		if err != nil {
			w.err = fmt.Errorf("write wal segment %d: %w", w.seg, err)
			w.logger.Error("wal write failed; refusing further writes", "err", err)
		} else {
			w.done = target
			w.size += int64(len(data))
			if w.size >= w.segmentSize {
				if _, err := w.rollLocked(); err != nil {
					w.err = err
				}
			}
		}
		w.cond.Broadcast()
		w.mu.Unlock()
	}
}

func (w *wal) syncer(every time.Duration) {
	defer w.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stopCh:
			return
		case <-t.C:
		}
		w.mu.Lock()
		if w.busy || w.err != nil {
			w.mu.Unlock()
			continue
		}
		err := w.f.Sync()
		w.metrics.fsyncs.Inc()
		if err != nil {
			w.err = fmt.Errorf("sync wal segment %d: %w", w.seg, err)
			w.cond.Broadcast()
		}
		w.mu.Unlock()
	}
}

// rollLocked fsyncs and closes the current segment and opens the next.
// w.mu is held and the writer is not busy.
func (w *wal) rollLocked() (int, error) {
	if err := w.f.Sync(); err != nil {
		return 0, fmt.Errorf("sync wal segment %d: %w", w.seg, err)
	}
	if err := w.f.Close(); err != nil {
		return 0, fmt.Errorf("close wal segment %d: %w", w.seg, err)
	}
	if err := w.openSegment(w.seg + 1); err != nil {
		return 0, err
	}
	return w.seg, nil
}

// Roll waits until every appended record is written, then starts a new
// segment and returns its number: all records appended before the call are
// in segments below it. The caller keeps new appends out meanwhile.
func (w *wal) Roll() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for (len(w.buf) > 0 || w.busy) && w.err == nil {
		w.cond.Wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	return w.rollLocked()
}

// Truncate removes the segments numbered below first.
func (w *wal) Truncate(first int) error {
	segs, err := listSegments(w.dir)
	if err != nil {
		return err
	}
	for _, n := range segs {
		if n >= first {
			break
		}
		if err := os.Remove(segmentName(w.dir, n)); err != nil {
			return fmt.Errorf("remove wal segment %d: %w", n, err)
		}
	}
	w.metrics.truncations.Inc()
	return nil
}

// Close writes and syncs what is buffered and stops the goroutines.
func (w *wal) Close() error {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return nil
	}
	w.closing = true
	w.cond.Broadcast()
	w.mu.Unlock()
	close(w.stopCh)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	serr := w.f.Sync()
	cerr := w.f.Close()
	if w.err == nil {
		w.err = errWALClosed
	}
	w.cond.Broadcast()
	return errors.Join(serr, cerr)
}

// replayWAL calls fn with every record payload in segments numbered from
// on, oldest first. A torn
// or corrupt tail of the last segment (a crash mid-write) is cut off and
// logged; corruption anywhere else is an error naming segment and offset.
// It returns the number the next segment should have.
func replayWAL(dir string, from int, logger *slog.Logger, fn func(seg int, payload []byte) error) (int, error) {
	all, err := listSegments(dir)
	if err != nil {
		return 0, err
	}
	var segs []int
	for _, n := range all {
		if n >= from { // older ones are covered by Badger and the head checkpoint
			segs = append(segs, n)
		}
	}
	if len(segs) > 0 {
		logger.Info("replaying WAL", "segments", len(segs), "first", segs[0], "last", segs[len(segs)-1])
	}
	lastLog := time.Now()
	for i, n := range segs {
		last := i == len(segs)-1
		if time.Since(lastLog) > 5*time.Second {
			logger.Info("replaying WAL", "segment", n, "done", i, "of", len(segs))
			lastLog = time.Now()
		}
		good, rerr := replaySegment(segmentName(dir, n), func(p []byte) error { return fn(n, p) })
		if rerr == nil {
			continue
		}
		var ce *corruptionError
		if !errors.As(rerr, &ce) {
			return 0, rerr
		}
		if !last {
			return 0, fmt.Errorf("wal segment %d is corrupt at offset %d and is not the last segment: %w (move it away to start without it, losing its data)", n, good, ce.err)
		}
		logger.Warn("cutting torn tail of last wal segment (expected after a crash)", "segment", n, "offset", good, "reason", ce.err)
		if err := os.Truncate(segmentName(dir, n), good); err != nil {
			return 0, fmt.Errorf("truncate wal segment %d at %d: %w", n, good, err)
		}
	}
	if len(all) == 0 {
		return max(1, from), nil
	}
	return max(all[len(all)-1]+1, from), nil
}

type corruptionError struct{ err error }

func (e *corruptionError) Error() string { return e.err.Error() }

// replaySegment returns the offset after the last good record.
func replaySegment(path string, fn func([]byte) error) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open wal segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var (
		off     int64
		hdr     [frameHeader]byte
		payload []byte
	)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if err == io.EOF {
				return off, nil
			}
			return off, &corruptionError{fmt.Errorf("short frame header: %w", err)}
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n > maxRecordLen {
			return off, &corruptionError{fmt.Errorf("record length %d over limit", n)}
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return off, &corruptionError{fmt.Errorf("short record: %w", err)}
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return off, &corruptionError{errors.New("checksum mismatch")}
		}
		if err := fn(payload); err != nil {
			return off, err
		}
		off += int64(frameHeader + n)
	}
}

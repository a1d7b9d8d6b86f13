package collector

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

// spoolLog collects log output for assertions.
type spoolLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *spoolLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *spoolLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newSpoolLog() (*slog.Logger, *spoolLog) {
	l := &spoolLog{}
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo})), l
}

// spoolClock is a settable clock.
type spoolClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *spoolClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *spoolClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testSpoolConfig(dir string) SpoolConfig {
	return SpoolConfig{Dir: dir, MaxBytes: 1 << 20, MaxAge: time.Hour, SegmentBytes: 4096}
}

// numberedBatch is batch n of a test: 4 series whose values carry n.
func numberedBatch(n int) []model.Series {
	batch := make([]model.Series, 4)
	for i := range batch {
		batch[i] = model.Series{
			Labels:  labels.FromStrings("__name__", "spool_test", "i", string(rune('a'+i))),
			Samples: []model.Sample{{T: 1e12 + int64(n)*1000, V: float64(n)}},
		}
	}
	return batch
}

// batchNumber recovers n from a numberedBatch.
func batchNumber(t testing.TB, batch []model.Series) int {
	t.Helper()
	if len(batch) != 4 || len(batch[0].Samples) != 1 {
		t.Fatalf("not a numbered batch: %v", batch)
	}
	return int(batch[0].Samples[0].V)
}

func openTestSpool(t *testing.T, cfg SpoolConfig, now func() time.Time) (*spool, *spoolLog) {
	t.Helper()
	logger, log := newSpoolLog()
	if now == nil {
		now = time.Now
	}
	s, err := openSpool(cfg, logger, prometheus.NewRegistry(), now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s, log
}

// drain reads and acknowledges every batch, returning their numbers.
func drain(t *testing.T, s *spool, limit int) []int {
	t.Helper()
	var got []int
	for range limit {
		e, ok := s.head()
		if !ok {
			break
		}
		batch, err := s.read(e)
		if err != nil {
			t.Fatalf("read %+v: %v", e, err)
		}
		got = append(got, batchNumber(t, batch))
		if !s.ack(e) {
			t.Fatalf("ack of the head %+v refused", e)
		}
	}
	return got
}

func appendN(t *testing.T, s *spool, from, to int) {
	t.Helper()
	for n := from; n < to; n++ {
		if err := s.append(numberedBatch(n))[0]; err != nil {
			t.Fatal(err)
		}
	}
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func seq(from, to int) []int {
	var s []int
	for n := from; n < to; n++ {
		s = append(s, n)
	}
	return s
}

func TestSpoolRestartKeepsUnacknowledged(t *testing.T) {
	dir := t.TempDir()
	cfg := testSpoolConfig(dir)
	cfg.SegmentBytes = 1024
	s, _ := openTestSpool(t, cfg, nil)
	appendN(t, s, 0, 60)
	if n := len(segmentFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments; the test wants several", n)
	}
	if got := drain(t, s, 25); !equalInts(got, seq(0, 25)) {
		t.Fatalf("first reads %v", got)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}

	s, _ = openTestSpool(t, cfg, nil)
	batches, bytes, _ := s.stats()
	if batches != 35 || bytes <= 0 {
		t.Fatalf("after restart: %d batches, %d bytes; want 35", batches, bytes)
	}
	appendN(t, s, 60, 70)
	if got := drain(t, s, 100); !equalInts(got, seq(25, 70)) {
		t.Fatalf("after restart read %v", got)
	}
	if files := segmentFiles(t, dir); len(files) != 0 {
		t.Fatalf("empty spool left segments %v", files)
	}
	if v := valueOf(t, s.metrics.replayed); v != 45*4 {
		t.Fatalf("replayed samples %v, want %d", v, 45*4)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s, _ = openTestSpool(t, cfg, nil)
	if !s.empty() {
		t.Fatal("spool not empty after everything was acknowledged")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSpoolTornTail(t *testing.T) {
	last := len(realFrame(t, numberedBatch(4)))
	for _, cut := range []int{1, 4, frameHeaderSize - 1, frameHeaderSize, frameHeaderSize + 1, last / 2, last - 1} {
		dir := t.TempDir()
		cfg := testSpoolConfig(dir)
		cfg.SegmentBytes = 1 << 20
		s, _ := openTestSpool(t, cfg, nil)
		appendN(t, s, 0, 4)
		_, before, _ := s.stats()
		appendN(t, s, 4, 5)
		if _, after, _ := s.stats(); after-before != int64(last) {
			t.Fatalf("last frame is %d bytes, expected %d", after-before, last)
		}
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
		files := segmentFiles(t, dir)
		fi, err := os.Stat(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(files[0], fi.Size()-int64(cut)); err != nil {
			t.Fatal(err)
		}

		s, log := openTestSpool(t, cfg, nil)
		if !strings.Contains(log.String(), "torn tail") || valueOf(t, s.metrics.corrupt) != 0 {
			t.Fatalf("cut %d: log %q, corrupt %v", cut, log, valueOf(t, s.metrics.corrupt))
		}
		if fi2, _ := os.Stat(files[0]); fi2.Size() != fi.Size()-int64(last) {
			t.Fatalf("cut %d: segment is %d bytes after recovery, want %d", cut, fi2.Size(), fi.Size()-int64(last))
		}
		appendN(t, s, 5, 6)
		if err := s.close(); err != nil {
			t.Fatal(err)
		}
		s, _ = openTestSpool(t, cfg, nil)
		if got := drain(t, s, 10); !equalInts(got, []int{0, 1, 2, 3, 5}) {
			t.Fatalf("cut %d: read %v", cut, got)
		}
	}
}

func TestSpoolCorruptData(t *testing.T) {
	fsize := int64(len(realFrame(t, numberedBatch(0)))) // every numbered batch encodes to the same size
	at := func(frame, byteInFrame int64) int64 { return segmentHeaderSize + frame*fsize + byteInFrame }
	tests := []struct {
		name   string
		seg    int   // which segment file to damage
		off    int64 // byte to damage
		val    byte
		want   []int
		torn   bool
		reopen bool
	}{
		{name: "payload of frame 2", off: at(2, 30), val: 0xee, want: []int{0, 1, 3, 4, 5, 6, 7}},
		{name: "marker of frame 2", off: at(2, 0), val: 0, want: []int{0, 1, 3, 4, 5, 6, 7}},
		{name: "length of frame 1", off: at(1, 6), val: 0x40, want: []int{0, 2, 3, 4, 5, 6, 7}},
		{name: "crc of frame 0", off: at(0, 9), val: 0x11, want: []int{1, 2, 3, 4, 5, 6, 7}},
		{name: "last frame of an older segment", off: at(3, 50), val: 0x99, want: []int{0, 1, 2, 4, 5, 6, 7}},
		{name: "segment header", off: 2, val: 'X', want: []int{4, 5, 6, 7}},
		{name: "last frame of the last segment is a torn tail", seg: 1, off: at(3, 50), val: 0x99, want: []int{0, 1, 2, 3, 4, 5, 6}, torn: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testSpoolConfig(dir)
			cfg.SegmentBytes = segmentHeaderSize + 4*fsize // 4 frames per segment
			s, _ := openTestSpool(t, cfg, nil)
			appendN(t, s, 0, 8)
			if err := s.close(); err != nil {
				t.Fatal(err)
			}
			files := segmentFiles(t, dir)
			if len(files) != 2 {
				t.Fatalf("%d segments, want 2", len(files))
			}
			damage(t, files[tc.seg], tc.off, tc.val)

			s, log := openTestSpool(t, cfg, nil)
			wantCorrupt := 1.0
			if tc.torn {
				wantCorrupt = 0
			}
			if got := valueOf(t, s.metrics.corrupt); got != wantCorrupt {
				t.Fatalf("corrupt frames %v, want %v; log:\n%s", got, wantCorrupt, log)
			}
			if !tc.torn && !strings.Contains(log.String(), "level=ERROR") {
				t.Fatalf("no error logged:\n%s", log)
			}
			if got := drain(t, s, 20); !equalInts(got, tc.want) {
				t.Fatalf("read %v, want %v", got, tc.want)
			}
		})
	}
}

// realFrame encodes batch as the spool does now (the append time is part
// of the frame and its varint length).
func realFrame(t *testing.T, batch []model.Series) []byte {
	t.Helper()
	frame, _, err := encodeFrame(batch, time.Now().UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

func damage(t *testing.T, path string, off int64, val byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{val}, off); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolCorruptOnReplay damages a frame after the spool indexed it.
func TestSpoolCorruptOnReplay(t *testing.T) {
	dir := t.TempDir()
	cfg := testSpoolConfig(dir)
	cfg.SegmentBytes = 1 << 20
	s, log := openTestSpool(t, cfg, nil)
	appendN(t, s, 0, 3)
	e, _ := s.head()
	damage(t, segmentFiles(t, dir)[0], e.off+e.size+40, 0xab) // frame 1
	if got := drain(t, s, 1); !equalInts(got, []int{0}) {
		t.Fatalf("read %v", got)
	}
	e, _ = s.head()
	if _, err := s.read(e); !errors.Is(err, errSpoolCorrupt) {
		t.Fatalf("read of damaged frame: %v", err)
	}
	s.discard(e, dropCorrupt, errSpoolCorrupt)
	if got := drain(t, s, 5); !equalInts(got, []int{2}) {
		t.Fatalf("read %v", got)
	}
	if v := valueOf(t, s.metrics.dropped.WithLabelValues(dropCorrupt)); v != 4 {
		t.Fatalf("dropped corrupt samples %v, want 4", v)
	}
	if !strings.Contains(log.String(), "spooled batch discarded") {
		t.Fatalf("log:\n%s", log)
	}
}

func TestSpoolMaxBytes(t *testing.T) {
	frame := realFrame(t, numberedBatch(0))
	dir := t.TempDir()
	cfg := testSpoolConfig(dir)
	cfg.MaxBytes = int64(len(frame))*3 + int64(len(frame))/2
	cfg.SegmentBytes = int64(len(frame)) * 2
	s, log := openTestSpool(t, cfg, nil)
	for n := range 10 {
		appendN(t, s, n, n+1)
		if _, b, _ := s.stats(); b > cfg.MaxBytes {
			t.Fatalf("after batch %d: %d bytes, limit %d", n, b, cfg.MaxBytes)
		}
	}
	if v := valueOf(t, s.metrics.dropped.WithLabelValues(dropMaxBytes)); v != 7*4 {
		t.Fatalf("dropped %v samples, want 28", v)
	}
	for _, want := range []string{"dropped the oldest spooled data", "reason=max_bytes", "samples=4", "first_sample=", "spooled_from="} {
		if !strings.Contains(log.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	// A batch bigger than the whole spool is refused, the spool kept.
	if err := s.append(nodeBatch(1000, 1))[0]; !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("oversized batch: %v", err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	// The first drop is logged at once, the next six (within 10 s) in one
	// line on close.
	if n := strings.Count(log.String(), "spool limit exceeded"); n != 2 || !strings.Contains(log.String(), "drops_summed_up=6 batches=6 samples=24") {
		t.Fatalf("%d drop lines:\n%s", n, log)
	}
	// Dropped data stays dropped after a restart, and disk use is bounded.
	var disk int64
	for _, f := range segmentFiles(t, dir) {
		fi, _ := os.Stat(f)
		disk += fi.Size()
	}
	if disk > cfg.MaxBytes+cfg.SegmentBytes {
		t.Fatalf("%d bytes on disk, limit %d + one segment", disk, cfg.MaxBytes)
	}
	s, _ = openTestSpool(t, cfg, nil)
	if got := drain(t, s, 20); !equalInts(got, []int{7, 8, 9}) {
		t.Fatalf("read %v, want the newest three", got)
	}
}

func TestSpoolMaxAge(t *testing.T) {
	clock := &spoolClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	cfg := testSpoolConfig(dir)
	cfg.MaxAge = 90 * time.Minute
	s, log := openTestSpool(t, cfg, clock.now)
	for n := range 4 {
		appendN(t, s, n, n+1)
		clock.advance(20 * time.Minute)
	}
	// Spooled at 0, 20, 40 and 60 minutes; at 120 two are older than 90m.
	clock.advance(40 * time.Minute)
	s.enforceAge()
	if n, _, age := s.stats(); n != 2 || age != 80*time.Minute {
		t.Fatalf("%d batches, oldest %s; want 2, 80m", n, age)
	}
	if v := valueOf(t, s.metrics.dropped.WithLabelValues(dropMaxAge)); v != 8 {
		t.Fatalf("dropped %v samples, want 8", v)
	}
	for _, want := range []string{"reason=max_age", "batches=2", "spooled_from=2030-01-01T00:00:00.000Z", "spooled_to=2030-01-01T00:20:00.000Z", "first_sample=2001-09-09T01:46:40.000Z"} {
		if !strings.Contains(log.String(), want) {
			t.Fatalf("log lacks %q:\n%s", want, log)
		}
	}
	// Appending enforces the age too.
	clock.advance(time.Hour)
	appendN(t, s, 4, 5)
	if got := drain(t, s, 5); !equalInts(got, []int{4}) {
		t.Fatalf("read %v", got)
	}
}

func TestSpoolBadCursorAndSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := testSpoolConfig(dir)
	cfg.SegmentBytes = 1 << 20
	s, _ := openTestSpool(t, cfg, nil)
	appendN(t, s, 0, 5)
	drain(t, s, 2)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cursor"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segmentPath(dir, 0), []byte("not a segment at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, log := openTestSpool(t, cfg, nil)
	// Without a cursor the acknowledged batches come again: duplicates, never loss.
	if got := drain(t, s, 10); !equalInts(got, seq(0, 5)) {
		t.Fatalf("read %v", got)
	}
	if !strings.Contains(log.String(), "cursor unreadable") || !strings.Contains(log.String(), "bad header") {
		t.Fatalf("log:\n%s", log)
	}
	if _, err := os.Stat(segmentPath(dir, 0)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bad segment not removed: %v", err)
	}
}

// valueOf reads the value of a single counter or gauge (a vector's child).
func valueOf(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	close(ch)
	m, ok := <-ch
	if !ok {
		t.Fatal("collector has no metric")
	}
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	switch {
	case pb.Counter != nil:
		return pb.Counter.GetValue()
	case pb.Gauge != nil:
		return pb.Gauge.GetValue()
	}
	t.Fatalf("not a counter or gauge: %v", &pb)
	return 0
}

// TestSpoolAppendGroup spools several batches with one write and fsync.
func TestSpoolAppendGroup(t *testing.T) {
	frame := realFrame(t, numberedBatch(0))
	dir := t.TempDir()
	cfg := testSpoolConfig(dir)
	cfg.MaxBytes = int64(len(frame))*2 + int64(len(frame))/2
	cfg.SegmentBytes = cfg.MaxBytes
	s, log := openTestSpool(t, cfg, nil)
	errs := s.append(numberedBatch(0), nodeBatch(1000, 1), numberedBatch(1))
	if errs[0] != nil || !errors.Is(errs[1], errFrameTooLarge) || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	// Four at once do not fit: the oldest of the group go, the newest stay.
	errs = s.append(numberedBatch(2), numberedBatch(3), numberedBatch(4), numberedBatch(5))
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(log.String(), "dropped a batch while spooling it") {
		t.Fatalf("log:\n%s", log)
	}
	if v := valueOf(t, s.metrics.dropped.WithLabelValues(dropMaxBytes)); v != 1000+4*4 {
		t.Fatalf("dropped %v samples, want %d", v, 1000+4*4)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s, _ = openTestSpool(t, cfg, nil)
	if got := drain(t, s, 10); !equalInts(got, []int{4, 5}) {
		t.Fatalf("read %v", got)
	}
}

package collector

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/model"
)

const nodeExposition = `# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.25
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 1234.5
node_cpu_seconds_total{cpu="0",mode="user"} 99
`

// fnv1aParts is FNV-1a 64 written out, to pin the offset formula that every
// collector (and every future version) must compute alike.
func fnv1aParts(parts ...string) uint64 {
	h := uint64(14695981039346656037)
	for _, p := range parts {
		for _, c := range []byte(p + "\xff") {
			h ^= uint64(c)
			h *= 1099511628211
		}
	}
	return h
}

func TestSlotClock(t *testing.T) {
	base := Target{Job: "node", Address: "10.0.0.7:9100", ScrapeConfig: ScrapeConfig{
		MetricsPath: "/metrics", Interval: Duration(15 * time.Second),
		Params: map[string][]string{"module": {"if_mib"}, "a": {"1", "2"}},
	}}
	c := SlotClockOf(base)
	wantOff := int64(fnv1aParts("node", "10.0.0.7:9100", "/metrics", "a=1&a=2&module=if_mib") % 15000)
	if c.Interval != 15000 || c.Offset != wantOff {
		t.Fatalf("clock %+v, want interval 15000 offset %d", c, wantOff)
	}
	same := base
	same.Params = map[string][]string{"a": {"1", "2"}, "module": {"if_mib"}}
	same.ID, same.Labels = "other-id", map[string]string{"x": "y"}
	if SlotClockOf(same) != c {
		t.Fatalf("id, labels or map order changed the clock: %+v vs %+v", SlotClockOf(same), c)
	}

	// Different targets spread over the interval.
	offsets := map[int64]bool{}
	for i := range 200 {
		tg := base
		tg.Address = "10.0.0." + url.PathEscape(string(rune('a'+i%26))) + ":" + string(rune('0'+i/26))
		oc := SlotClockOf(tg)
		if oc.Offset < 0 || oc.Offset >= oc.Interval {
			t.Fatalf("offset %d outside [0, %d)", oc.Offset, oc.Interval)
		}
		offsets[oc.Offset] = true
	}
	if len(offsets) < 190 {
		t.Fatalf("200 targets got only %d distinct offsets", len(offsets))
	}

	tests := []struct {
		name  string
		clock SlotClock
	}{
		{"15s", c},
		{"1s offset 0", SlotClock{Interval: 1000, Offset: 0}},
		{"7ms offset 6", SlotClock{Interval: 7, Offset: 6}},
		{"1h", SlotClock{Interval: 3_600_000, Offset: 1_234_567}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := tc.clock
			for range 10000 {
				ms := rng.Int64N(4e12) - 1e12 // before and after the epoch
				k := cl.At(ms)
				if !(cl.Start(k) <= ms && ms < cl.Start(k+1)) {
					t.Fatalf("At(%d) = %d: slot [%d, %d)", ms, k, cl.Start(k), cl.Start(k+1))
				}
				n := cl.Next(ms)
				if !(cl.Start(n) >= ms && cl.Start(n-1) < ms) {
					t.Fatalf("Next(%d) = %d starting %d", ms, n, cl.Start(n))
				}
				if cl.Start(k)-cl.Offset != k*cl.Interval || cl.At(cl.Start(k)) != k || cl.Next(cl.Start(k)) != k {
					t.Fatalf("slot %d does not round-trip", k)
				}
			}
		})
	}
}

func TestScraperRunSlotAligned(t *testing.T) {
	e := newTestExporter(t, nodeExposition)
	sink := newScrapeSink()
	s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, 300*time.Millisecond, 200*time.Millisecond, 0), sink)
	cl := s.Slots()
	from := cl.Next(time.Now().UnixMilli()) + 1
	if err := s.Run(context.Background(), from, from+3); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Run returned")
	}
	batches := sink.all()
	reqs := e.requestLog()
	if len(batches) != 3 || len(reqs) != 3 {
		t.Fatalf("got %d batches and %d requests for 3 slots (%+v)", len(batches), len(reqs), s.Status())
	}
	for i, b := range batches {
		k := from + int64(i)
		for _, ser := range b {
			if ser.Samples[0].T != cl.Start(k) {
				t.Fatalf("slot %d: %s stamped %d, want the slot start %d", k, ser.Labels, ser.Samples[0].T, cl.Start(k))
			}
		}
		if up := oneSample(t, b, "up"); up.V != 1 {
			t.Fatalf("slot %d: up = %v", k, up.V)
		}
		if len(staleMarkers(b)) != 0 {
			t.Fatalf("slot %d: unexpected staleness markers", k)
		}
		// The request went out at the slot start, not before, and well
		// within the slot.
		at := reqs[i].at.UnixMilli()
		if at < cl.Start(k) || at >= cl.Start(k+1) {
			t.Fatalf("slot %d [%d, %d): request at %d", k, cl.Start(k), cl.Start(k+1), at)
		}
	}
	if n := gatherValue(t, reg, "vigil_collector_scrape_total", "result", "success"); n != 3 {
		t.Fatalf("success scrapes = %v", n)
	}
	if n := gatherValue(t, reg, "vigil_collector_scrape_samples_total"); n != 9 {
		t.Fatalf("samples = %v, want 9 (3 series x 3)", n)
	}
	st := s.Status()
	if st.Health != HealthUp || st.LastSlot != from+2 || st.Series != 3 || st.LastError != "" || !st.LastSlotTime.Equal(time.UnixMilli(cl.Start(from+2))) {
		t.Fatalf("status %+v", st)
	}
	if err := s.Run(context.Background(), from, from+1); !errors.Is(err, ErrScraperReused) {
		t.Fatalf("second Run: %v", err)
	}
}

// withoutDuration drops the value of scrape_duration_seconds, the one
// sample that differs between two scrapes of a static exporter, and, with
// added, of scrape_series_added, which differs on a new owner's first
// scrape (it knows no series yet).
func withoutDuration(b []model.Series, added ...bool) []model.Series {
	out := make([]model.Series, len(b))
	for i, s := range b {
		out[i] = s
		switch s.Labels.Get(model.MetricNameLabel) {
		case "scrape_duration_seconds":
			out[i].Samples = []model.Sample{{T: s.Samples[0].T, V: -1}}
		case "scrape_series_added":
			if len(added) > 0 && added[0] {
				out[i].Samples = []model.Sample{{T: s.Samples[0].T, V: -1}}
			}
		}
	}
	return out
}

func equalBatches(a, b []model.Series) bool {
	return slices.EqualFunc(a, b, func(x, y model.Series) bool {
		return labels.Equal(x.Labels, y.Labels) && slices.EqualFunc(x.Samples, y.Samples, func(p, q model.Sample) bool {
			return p.T == q.T && math.Float64bits(p.V) == math.Float64bits(q.V)
		})
	})
}

func TestScrapersOfOneSlotAgree(t *testing.T) {
	e := newTestExporter(t, nodeExposition)
	tg := scrapeTestTarget(t, e.srv.URL, 300*time.Millisecond, 200*time.Millisecond, 0)
	sa, sb := newScrapeSink(), newScrapeSink()
	a, _ := newTestScraper(t, testScraperConfig(), tg, sa)
	b, _ := newTestScraper(t, testScraperConfig(), tg, sb)
	from := a.Slots().Next(time.Now().UnixMilli()) + 1
	done := make(chan error, 2)
	go func() { done <- a.Run(context.Background(), from, from+3) }()
	go func() { done <- b.Run(context.Background(), from, from+3) }()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	ba, bb := sa.all(), sb.all()
	if len(ba) != 3 || len(bb) != 3 {
		t.Fatalf("batches: %d and %d", len(ba), len(bb))
	}
	for i := range ba {
		if !equalBatches(withoutDuration(ba[i]), withoutDuration(bb[i])) {
			t.Fatalf("slot %d differs:\n%v\n%v", from+int64(i), ba[i], bb[i])
		}
	}
}

// TestScraperHandover runs the make-before-break protocol: the new owner
// starts at slot h while the old one stops after h. Every slot is scraped,
// h twice with the same samples, and the old owner writes no markers.
func TestScraperHandover(t *testing.T) {
	e := newTestExporter(t, nodeExposition)
	tg := scrapeTestTarget(t, e.srv.URL, 300*time.Millisecond, 200*time.Millisecond, 0)
	oldSink, newSink := newScrapeSink(), newScrapeSink()
	old, _ := newTestScraper(t, testScraperConfig(), tg, oldSink)
	nw, _ := newTestScraper(t, testScraperConfig(), tg, newSink)
	cl := old.Slots()
	from := cl.Next(time.Now().UnixMilli()) + 1
	h := from + 2
	ctx := context.Background()
	go old.Run(ctx, from, math.MaxInt64)
	oldSink.waitFor(t, 1, 5*time.Second)
	go nw.Run(ctx, h, math.MaxInt64)
	old.StopAfter(h)
	<-old.Done()
	newSink.waitFor(t, 3, 5*time.Second)
	nw.Stop(true)
	<-nw.Done()

	slotOf := func(b []model.Series) int64 { return cl.At(b[0].Samples[0].T) }
	ob, nb := oldSink.all(), newSink.all()
	var oldSlots, newSlots []int64
	for _, b := range ob {
		if len(staleMarkers(b)) != 0 {
			t.Fatalf("old owner wrote staleness markers: %v", b)
		}
		oldSlots = append(oldSlots, slotOf(b))
	}
	if !slices.Equal(oldSlots, []int64{from, from + 1, h}) {
		t.Fatalf("old owner scraped slots %v, want %d..%d", oldSlots, from, h)
	}
	scrapes, final := nb[:len(nb)-1], nb[len(nb)-1]
	for i, b := range scrapes {
		newSlots = append(newSlots, slotOf(b))
		if len(staleMarkers(b)) != 0 {
			t.Fatalf("new owner's scrape %d has markers", i)
		}
	}
	if newSlots[0] != h || newSlots[len(newSlots)-1] != h+int64(len(newSlots))-1 {
		t.Fatalf("new owner scraped slots %v, want %d onwards without gaps", newSlots, h)
	}
	if !equalBatches(withoutDuration(ob[len(ob)-1], true), withoutDuration(scrapes[0], true)) {
		t.Fatalf("slot %d differs between owners:\n%v\n%v", h, ob[len(ob)-1], scrapes[0])
	}
	// The final stop marks every series of the last scrape, synthetic ones
	// too, at the next slot's start.
	last := scrapes[len(scrapes)-1]
	if len(final) != len(last) || len(staleMarkers(final)) != len(last) {
		t.Fatalf("final batch %v does not mark the %d series of the last scrape", final, len(last))
	}
	wantT := cl.Start(newSlots[len(newSlots)-1] + 1)
	for _, s := range final {
		if s.Samples[0].T != wantT {
			t.Fatalf("marker of %s at %d, want %d", s.Labels, s.Samples[0].T, wantT)
		}
	}
	if pushed := newSink.times[len(nb)-1].UnixMilli(); pushed < wantT {
		t.Fatalf("markers for %d pushed early, at %d", wantT, pushed)
	}
}

func TestScraperStop(t *testing.T) {
	tests := []struct {
		name        string
		stop        func(s *Scraper, cancel context.CancelFunc)
		wantMarkers bool
	}{
		{"final", func(s *Scraper, _ context.CancelFunc) { s.Stop(true) }, true},
		{"handover", func(s *Scraper, _ context.CancelFunc) { s.Stop(false) }, false},
		{"context canceled", func(_ *Scraper, cancel context.CancelFunc) { cancel() }, false},
		{"final then handover: first call wins", func(s *Scraper, _ context.CancelFunc) { s.Stop(true); s.Stop(false) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestExporter(t, nodeExposition)
			sink := newScrapeSink()
			s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, 300*time.Millisecond, 200*time.Millisecond, 0), sink)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go s.Run(ctx, s.Slots().Next(time.Now().UnixMilli()), math.MaxInt64)
			sink.waitFor(t, 2, 5*time.Second)
			tc.stop(s, cancel)
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return")
			}
			bs := sink.all()
			var marked []labels.Labels
			for i, b := range bs {
				if m := staleMarkers(b); len(m) > 0 {
					if i != len(bs)-1 || len(m) != len(b) {
						t.Fatalf("batch %d of %d mixes markers and samples: %v", i, len(bs), b)
					}
					marked = m
				}
			}
			if !tc.wantMarkers {
				if marked != nil {
					t.Fatalf("markers written: %v", marked)
				}
				return
			}
			prev := bs[len(bs)-2]
			if len(marked) != len(prev) {
				t.Fatalf("%d markers for %d series", len(marked), len(prev))
			}
			for _, ser := range prev {
				if !slices.ContainsFunc(marked, func(l labels.Labels) bool { return labels.Equal(l, ser.Labels) }) {
					t.Fatalf("no marker for %s", ser.Labels)
				}
			}
			if n := gatherValue(t, reg, "vigil_collector_scrape_stale_markers_total"); n != float64(len(prev)) {
				t.Fatalf("stale markers metric %v", n)
			}
		})
	}
}

// TestScraperMissedSlots: a sink that blocks for longer than an interval
// makes the loop skip the slots that passed, not scrape them late.
func TestScraperMissedSlots(t *testing.T) {
	e := newTestExporter(t, nodeExposition)
	sink := newScrapeSink()
	sink.delay = 625 * time.Millisecond // 2.5 intervals: the next scrape falls mid-slot
	s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, 250*time.Millisecond, 200*time.Millisecond, 0), sink)
	from := s.Slots().Next(time.Now().UnixMilli())
	if err := s.Run(context.Background(), from, from+6); err != nil {
		t.Fatal(err)
	}
	cl := s.Slots()
	var slots []int64
	for _, b := range sink.all() {
		slots = append(slots, cl.At(b[0].Samples[0].T))
	}
	missed := gatherValue(t, reg, "vigil_collector_scrape_total", "result", "missed")
	if len(slots) < 2 || len(slots) > 4 || float64(len(slots))+missed != 6 {
		t.Fatalf("scraped slots %v and %v missed, want 6 in all with skips", slots, missed)
	}
	for i := 1; i < len(slots); i++ {
		if slots[i] <= slots[i-1]+1 {
			t.Fatalf("slots %v: a blocked push must skip slots", slots)
		}
	}
	for i, r := range e.requestLog() {
		if at := r.at.UnixMilli(); at >= cl.Start(slots[i]+1) {
			t.Fatalf("slot %d scraped late, at %d", slots[i], at)
		}
	}
}

func TestNewScraperRejects(t *testing.T) {
	good := scrapeTestTarget(t, "http://127.0.0.1:9100", time.Second, 500*time.Millisecond, 1)
	sink, m := newScrapeSink(), &ScrapeMetrics{}
	tests := []struct {
		name string
		edit func(tg *Target, cfg *ScraperConfig)
	}{
		{"unresolved", func(tg *Target, _ *ScraperConfig) { tg.Retries = nil }},
		{"no job", func(tg *Target, _ *ScraperConfig) { tg.Job = "" }},
		{"timeout above interval", func(tg *Target, _ *ScraperConfig) { tg.Timeout = Duration(2 * time.Second) }},
		{"negative sample limit", func(_ *Target, c *ScraperConfig) { c.SampleLimit = -1 }},
		{"bad fallback", func(_ *Target, c *ScraperConfig) { c.FallbackContentType = "text/html" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tg, cfg := good, DefaultScraperConfig()
			tc.edit(&tg, &cfg)
			if _, err := NewScraper(cfg, tg, sink, m, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := NewScraper(DefaultScraperConfig(), good, sink, m, nil); err != nil {
		t.Fatal(err)
	}
}

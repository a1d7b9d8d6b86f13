package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-tsdb/vigil/sdk"
)

// PushJob is the job label of live-pushed series.
const PushJob = "vigil-bench-push"

// LivePushStats counts what the live push did; the fields are read while
// it runs.
type LivePushStats struct {
	Sent     atomic.Int64 // samples sent (in requests made, acknowledged or not)
	Acked    atomic.Int64 // samples the server acknowledged
	Failed   atomic.Int64 // samples in requests that failed after the retries
	Rejected atomic.Int64 // samples the server refused one by one (SDK results)
	Requests atomic.Int64 // acknowledged requests
	Bytes    atomic.Int64 // compressed remote-write bodies of acknowledged requests
	Retries  atomic.Int64
	Errors   atomic.Int64 // failed attempts, retried or not
	Late     atomic.Int64 // acknowledged samples that were sent out of order
	Churned  atomic.Int64 // series replaced by churn
	Behind   atomic.Int64 // host groups sent more than an interval after they were due
	// NotSent counts samples due before the deadline that were never sent:
	// their host group's turn came after the deadline (the senders fell
	// behind) or the run was interrupted. Not failures: the load was not
	// sustained.
	NotSent atomic.Int64
	// LateDropped counts late (out-of-order) samples still held when the
	// drain's time ran out; they are part of NotSent.
	LateDropped atomic.Int64
	Rounds      atomic.Int64 // rounds completed, summed over senders

	mu     sync.Mutex
	errors []string // first few error messages; guarded by mu
}

func (s *LivePushStats) noteError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errors) < 10 {
		s.errors = append(s.errors, err.Error())
	}
}

// ErrorMessages returns the first errors seen.
func (s *LivePushStats) ErrorMessages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errors...)
}

// livePush is one live push: Series series, each getting a sample every
// Interval at real time, until Duration or MaxSamples.
type livePush struct {
	cfg      LiveConfig
	gen      *Generator
	start    time.Time
	deadline time.Time
	budget   atomic.Int64 // samples that may still be sent
	stats    *LivePushStats
	rec      *Recorder
	verify   map[int]bool // slots whose samples are recorded
	base     [][]prompb.Label
	instIdx  []int // position of the instance label in base[i]
	hosts    int
	perRound float64 // series churned per round
}

// minStep is the shortest time between two groups of hosts of a sender.
const minStep = 100 * time.Millisecond

// livePushSample is one sample with the labels it is sent under.
type livePushSample struct {
	slot   int
	labels []prompb.Label
	s      prompb.Sample
	late   bool
}

func newLivePush(cfg LiveConfig, start time.Time, stats *LivePushStats, rec *Recorder) *livePush {
	p := cfg.Push
	start = start.Truncate(time.Millisecond)
	lp := &livePush{
		cfg: cfg, start: start, deadline: start.Add(cfg.Duration), stats: stats, rec: rec,
		gen:   NewGenerator(p.Series, cfg.Seed, start, p.Interval),
		hosts: (p.Series + SeriesPerHost - 1) / SeriesPerHost,
	}
	rounds := int64((cfg.Duration + p.Interval - 1) / p.Interval)
	limit := int64(p.Series) * rounds
	if p.MaxSamples > 0 && p.MaxSamples < limit {
		limit = p.MaxSamples
	}
	lp.budget.Store(limit)
	lp.perRound = p.Churn * p.Interval.Minutes()
	lp.verify = pickSlots(p.Series, verifyCount(p.Series, cfg.VerifyFraction, cfg.VerifyMinSeries, cfg.VerifyMaxSeries), cfg.Seed)
	lp.base = make([][]prompb.Label, p.Series)
	lp.instIdx = make([]int, p.Series)
	for i := range lp.base {
		ls := append([]prompb.Label(nil), lp.gen.Labels(i)...)
		for j := range ls {
			switch ls[j].Name {
			case "job":
				ls[j].Value = PushJob
			case "instance":
				lp.instIdx[i] = j
			}
		}
		lp.base[i] = ls
	}
	return lp
}

// hostsChurned is how many host replacements happened up to round r.
func (lp *livePush) hostsChurned(r int) int {
	if lp.perRound <= 0 {
		return 0
	}
	return int(float64(r)*lp.perRound) / SeriesPerHost
}

// generation is host h's incarnation at round r: how often it was
// replaced, round-robin over the hosts.
func (lp *livePush) generation(h, r int) int {
	n := lp.hostsChurned(r)
	g := n / lp.hosts
	if h < n%lp.hosts {
		g++
	}
	return g
}

// labelsFor returns slot i's labels in generation g.
func (lp *livePush) labelsFor(i, g int) []prompb.Label {
	if g == 0 {
		return lp.base[i]
	}
	ls := append([]prompb.Label(nil), lp.base[i]...)
	inst := ls[lp.instIdx[i]].Value
	host, port, _ := strings.Cut(inst, ":")
	ls[lp.instIdx[i]].Value = fmt.Sprintf("%s-r%d:%s", host, g, port)
	return ls
}

// run sends until the deadline, the budget or ctx ends. Failed requests
// are counted, not fatal: the run goes on and the report shows them.
func (lp *livePush) run(ctx context.Context) error {
	p := lp.cfg.Push
	senders := min(p.Concurrency, lp.hosts)
	var client *sdk.Client
	if p.Protocol == ProtocolSDK {
		c, err := sdk.New(lp.cfg.grpcAddr(), sdk.WithMaxRetries(p.MaxRetries))
		if err != nil {
			return fmt.Errorf("live push: %w", err)
		}
		defer c.Close()
		client = c
	}
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: senders, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	defer transport.CloseIdleConnections()
	httpClient := newHTTPClient(0, transport, lp.cfg.AllowRemote)
	writeURL := strings.TrimRight(lp.cfg.URL, "/") + "/api/v1/write"

	// Senders stop issuing at the deadline; a request issued before it
	// has one request timeout past the deadline to finish (its retries
	// included), whatever the caller's schedule.
	ctx, cancel := context.WithDeadline(ctx, lp.deadline.Add(p.RequestTimeout))
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	for w := range senders {
		ls := &liveSender{
			lp: lp, w: w, senders: senders,
			hLo: w * lp.hosts / senders, hHi: (w + 1) * lp.hosts / senders,
			rng: rand.New(rand.NewPCG(uint64(lp.cfg.Seed), uint64(w)+1)),
		}
		if client != nil {
			ls.writer = client.NewWriter(sdk.WriterOptions{MaxBatchSamples: p.BatchSize, FlushInterval: p.Interval, Concurrency: 1,
				MaxBufferedSamples: 2 * p.BatchSize})
		} else {
			ls.rw = &sender{cfg: Config{MaxRetries: p.MaxRetries, RequestTimeout: p.RequestTimeout}, url: writeURL, client: httpClient, stats: &stats{}}
		}
		g.Go(func() error { return ls.run(gctx) })
	}
	return g.Wait()
}

// liveSender owns hosts [hLo, hHi) and their series.
type liveSender struct {
	lp         *livePush
	w, senders int // this sender's index, and how many there are
	hLo, hHi   int
	rng        *rand.Rand
	rw         *sender     // remote write
	writer     *sdk.Writer // SDK
	sdkLbls    map[string][]sdk.Label
	enc        liveEncoder
	pending    map[int][]livePushSample // round → late samples due then
	churned    map[int]int              // host → generation seen
}

func (s *liveSender) run(ctx context.Context) error {
	lp, p := s.lp, s.lp.cfg.Push
	s.pending = map[int][]livePushSample{}
	s.churned = map[int]int{}
	defer func() {
		if s.writer != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.RequestTimeout)
			defer cancel()
			if err := s.writer.Close(cctx); err != nil {
				lp.stats.noteError(err)
			}
		}
	}()
	// The sender's hosts are spread over the interval in `steps` groups,
	// as a fleet's scrapes are: a group's samples are due (and stamped)
	// at its phase, so the load is even rather than one burst per round.
	// Senders are offset from each other by a fraction of a step.
	nh := s.hHi - s.hLo
	steps := max(min(nh, int(p.Interval/minStep)), 1)
	step := p.Interval / time.Duration(steps)
	offset := step * time.Duration(s.w) / time.Duration(s.senders)
	var cur []livePushSample
	for t := 0; ; t++ {
		r, j := t/steps, t%steps
		phase := offset + time.Duration(j)*step
		due := lp.start.Add(time.Duration(r)*p.Interval + phase)
		if !due.Before(lp.deadline) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			tm := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				tm.Stop()
				s.countNotSent(t, steps, step, offset)
				return s.drain(ctx)
			case <-tm.C:
			}
		} else if -wait > p.Interval {
			lp.stats.Behind.Add(1)
		}
		if ctx.Err() != nil || !time.Now().Before(lp.deadline) {
			// Behind past the deadline (or interrupted): what is still
			// due is not sent, and counted.
			s.countNotSent(t, steps, step, offset)
			break
		}
		// Hosts of group j: local indexes i with i*steps/nh == j.
		hLo := s.hLo + (j*nh+steps-1)/steps
		hHi := s.hLo + ((j+1)*nh+steps-1)/steps
		lo, hi := hLo*SeriesPerHost, min(hHi*SeriesPerHost, p.Series)
		if lo < hi && lp.budget.Add(-int64(hi-lo)) < 0 {
			break
		}
		for h := hLo; h < hHi; h++ {
			if g := lp.generation(h, r); g != s.churned[h] {
				s.churned[h] = g
				lp.stats.Churned.Add(int64(min((h+1)*SeriesPerHost, p.Series) - h*SeriesPerHost))
			}
		}
		cur = cur[:0]
		for i := lo; i < hi; i++ {
			smp := livePushSample{slot: i, labels: lp.labelsFor(i, s.churned[i/SeriesPerHost]), s: lp.gen.Next(i)}
			smp.s.Timestamp += phase.Milliseconds()
			if p.OOOFraction > 0 && s.rng.Float64() < p.OOOFraction {
				smp.late = true
				d := 1 + s.rng.IntN(p.OOOMaxDelay)
				s.pending[t+d*steps] = append(s.pending[t+d*steps], smp)
				continue
			}
			cur = append(cur, smp)
		}
		s.send(ctx, cur)
		if late := s.pending[t]; len(late) > 0 {
			delete(s.pending, t)
			s.send(ctx, late)
		}
		if j == steps-1 {
			lp.stats.Rounds.Add(1)
		}
	}
	return s.drain(ctx)
}

// drain sends the late samples still held, oldest round first, with a
// context that outlives a cancelled run by one request timeout.
func (s *liveSender) drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.lp.cfg.Push.RequestTimeout)
	defer cancel()
	for len(s.pending) > 0 && ctx.Err() == nil {
		first := -1
		for r := range s.pending {
			if first < 0 || r < first {
				first = r
			}
		}
		late := s.pending[first]
		delete(s.pending, first)
		s.send(ctx, late)
	}
	var dropped int64
	for r, late := range s.pending {
		dropped += int64(len(late))
		delete(s.pending, r)
	}
	s.lp.stats.LateDropped.Add(dropped)
	s.lp.stats.NotSent.Add(dropped)
	return nil
}

// countNotSent adds to NotSent the samples of the groups from turn t on
// that were due before the deadline, as far as the budget allows: they
// will not be sent. It takes them from the budget so that no other
// sender counts them as sendable.
func (s *liveSender) countNotSent(t, steps int, step, offset time.Duration) {
	lp, p := s.lp, s.lp.cfg.Push
	nh := s.hHi - s.hLo
	// Bounded: one turn per group and round until the deadline.
	for ; ; t++ {
		r, j := t/steps, t%steps
		due := lp.start.Add(time.Duration(r)*p.Interval + offset + time.Duration(j)*step)
		if !due.Before(lp.deadline) {
			return
		}
		hLo := s.hLo + (j*nh+steps-1)/steps
		hHi := s.hLo + ((j+1)*nh+steps-1)/steps
		lo, hi := hLo*SeriesPerHost, min(hHi*SeriesPerHost, p.Series)
		if lo >= hi {
			continue
		}
		if lp.budget.Add(-int64(hi-lo)) < 0 {
			return
		}
		lp.stats.NotSent.Add(int64(hi - lo))
	}
}

// send sends samples in batches and records what was acknowledged.
func (s *liveSender) send(ctx context.Context, samples []livePushSample) {
	bs := s.lp.cfg.Push.BatchSize
	for i := 0; i < len(samples); i += bs {
		batch := samples[i:min(i+bs, len(samples))]
		s.lp.stats.Sent.Add(int64(len(batch)))
		var ok bool
		if s.writer != nil {
			ok = s.sendSDK(ctx, batch)
		} else {
			ok = s.sendRW(ctx, batch)
		}
		if !ok {
			s.lp.stats.Failed.Add(int64(len(batch)))
			continue
		}
		s.lp.stats.Acked.Add(int64(len(batch)))
		for _, smp := range batch {
			if smp.late {
				s.lp.stats.Late.Add(1)
			}
			if s.lp.verify[smp.slot] {
				s.lp.rec.Add(smp.labels, smp.s)
			}
		}
	}
}

func (s *liveSender) sendRW(ctx context.Context, batch []livePushSample) bool {
	body, err := s.enc.encode(batch)
	if err != nil {
		s.lp.stats.noteError(err)
		return false
	}
	before := [...]int64{s.rw.stats.retries.Load(), s.rw.stats.errors.Load()}
	err = s.rw.send(ctx, body, len(batch))
	s.lp.stats.Retries.Add(s.rw.stats.retries.Load() - before[0])
	s.lp.stats.Errors.Add(s.rw.stats.errors.Load() - before[1])
	if err != nil {
		s.lp.stats.noteError(err)
		return false
	}
	s.lp.stats.Requests.Add(1)
	s.lp.stats.Bytes.Add(int64(len(body)))
	return true
}

// sendSDK adds the batch to the Writer and flushes it: the batch counts as
// acknowledged only if the flush succeeded and the server refused none of
// its samples (a refused sample cannot be told apart within the batch).
func (s *liveSender) sendSDK(ctx context.Context, batch []livePushSample) bool {
	if s.sdkLbls == nil {
		s.sdkLbls = map[string][]sdk.Label{}
	}
	before := s.writer.Stats()
	for _, smp := range batch {
		key := labelsKey(smp.labels)
		ls, ok := s.sdkLbls[key]
		if !ok {
			ls = make([]sdk.Label, len(smp.labels))
			for j, l := range smp.labels {
				ls[j] = sdk.Label{Name: l.Name, Value: l.Value}
			}
			s.sdkLbls[key] = ls
		}
		if err := s.writer.Add(ctx, ls, smp.s.Timestamp, smp.s.Value); err != nil {
			s.lp.stats.noteError(err)
			s.lp.stats.Errors.Add(1)
			_ = s.writer.Flush(ctx)
			return false
		}
	}
	fctx, cancel := context.WithTimeout(ctx, s.lp.cfg.Push.RequestTimeout)
	defer cancel()
	err := s.writer.Flush(fctx)
	after := s.writer.Stats()
	if err != nil {
		s.lp.stats.noteError(err)
		s.lp.stats.Errors.Add(1)
		return false
	}
	s.lp.stats.Requests.Add(after.Batches - before.Batches)
	if rej := after.Rejected - before.Rejected; rej > 0 {
		s.lp.stats.Rejected.Add(rej)
		s.lp.stats.noteError(fmt.Errorf("sdk write: the server refused %d of %d samples", rej, len(batch)))
		return false
	}
	return true
}

// labelsKey identifies a label set.
func labelsKey(ls []prompb.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name)
		b.WriteByte(0xff)
		b.WriteString(l.Value)
		b.WriteByte(0xff)
	}
	return b.String()
}

// liveEncoder builds remote-write bodies of single samples, reusing its
// buffers. The returned body is valid until the next call.
type liveEncoder struct {
	req  prompb.WriteRequest
	raw  []byte
	comp []byte
}

func (e *liveEncoder) encode(batch []livePushSample) ([]byte, error) {
	ts := e.req.Timeseries[:0]
	for i := range batch {
		ts = append(ts, prompb.TimeSeries{Labels: batch[i].labels, Samples: []prompb.Sample{batch[i].s}})
	}
	e.req.Timeseries = ts
	size := e.req.Size()
	if cap(e.raw) < size {
		e.raw = make([]byte, size)
	}
	raw := e.raw[:size]
	m, err := e.req.MarshalToSizedBuffer(raw)
	if err != nil {
		return nil, fmt.Errorf("marshal write request: %w", err)
	}
	raw = raw[size-m:]
	if need := snappy.MaxEncodedLen(len(raw)); cap(e.comp) < need {
		e.comp = make([]byte, need)
	}
	e.comp = snappy.Encode(e.comp[:cap(e.comp)], raw)
	return e.comp, nil
}

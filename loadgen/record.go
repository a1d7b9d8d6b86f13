package loadgen

import (
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/prompb"
)

// AckedSeries is one pushed series chosen for verification, with every
// sample of it that the server acknowledged.
type AckedSeries struct {
	Labels  map[string]string
	Samples map[int64]float64 // timestamp (ms) → value
}

// Selector is the series' PromQL selector: every label matched exactly.
func (s *AckedSeries) Selector() string {
	names := make([]string, 0, len(s.Labels))
	for n := range s.Labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteString("=")
		b.WriteString(quotePromQL(s.Labels[n]))
	}
	b.WriteByte('}')
	return b.String()
}

// quotePromQL quotes a label value for a PromQL matcher.
func quotePromQL(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

// Recorder keeps the acknowledged samples of the series chosen for
// verification. Safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	series map[string]*AckedSeries // by Selector; guarded by mu
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{series: map[string]*AckedSeries{}} }

// Add records acknowledged samples of one series.
func (r *Recorder) Add(labels []prompb.Label, samples ...prompb.Sample) {
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		m[l.Name] = l.Value
	}
	s := &AckedSeries{Labels: m}
	key := s.Selector()
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.series[key]; ok {
		s = old
	} else {
		s.Samples = map[int64]float64{}
		r.series[key] = s
	}
	for _, smp := range samples {
		s.Samples[smp.Timestamp] = smp.Value
	}
}

// Series returns the recorded series sorted by selector. The caller must
// not modify them while samples are still being added.
func (r *Recorder) Series() []*AckedSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.series))
	for k := range r.series {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*AckedSeries, len(keys))
	for i, k := range keys {
		out[i] = r.series[k]
	}
	return out
}

// Samples is the number of samples recorded.
func (r *Recorder) Samples() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, s := range r.series {
		n += int64(len(s.Samples))
	}
	return n
}

// pickSlots chooses k of n slots at random (seeded), without repeats.
func pickSlots(n, k int, seed int64) map[int]bool {
	k = min(k, n)
	out := make(map[int]bool, k)
	if k == n {
		for i := range n {
			out[i] = true
		}
		return out
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	// k < n: each draw succeeds with probability ≥ 1/n; bounded anyway.
	for tries := 0; len(out) < k && tries < 100*n+1000; tries++ {
		out[rng.IntN(n)] = true
	}
	return out
}

// verifyCount is how many of n series a run verifies.
func verifyCount(n int, fraction float64, minSeries, maxSeries int) int {
	if fraction <= 0 {
		return 0
	}
	k := int(float64(n)*fraction + 0.999999)
	k = max(k, min(minSeries, n))
	if maxSeries > 0 {
		k = min(k, maxSeries)
	}
	return min(k, n)
}

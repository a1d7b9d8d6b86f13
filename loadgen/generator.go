package loadgen

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// Generator produces node_exporter-shaped series: series i belongs to host
// i/SeriesPerHost (instance "host-<n>:9100", job "node") and is that host's
// catalog entry i%SeriesPerHost; the last host is cut short when the series
// count is not a multiple of SeriesPerHost.
//
// Every series has its own random state derived from the seed and its index,
// so the values do not depend on the order in which series are advanced or on
// how they are split among goroutines: the same seed always gives the same
// samples. Next may be called concurrently for different series, never for
// the same one.
type Generator struct {
	start      int64 // ms timestamp of sample 0
	intervalMs int64
	labels     [][]prompb.Label // per series, shared, read-only
	state      []seriesState
}

type seriesState struct {
	rng  uint64  // splitmix64 state
	v    float64 // last value
	rate float64 // counter: per-second rate; gauge: unused
	k    int     // samples produced so far
	tmpl uint16  // index into catalog
}

// NewGenerator returns a generator of n series whose sample k has timestamp
// start + k×interval (milliseconds).
func NewGenerator(n int, seed int64, start time.Time, interval time.Duration) *Generator {
	g := &Generator{
		start:      start.UnixMilli(),
		intervalMs: interval.Milliseconds(),
		labels:     make([][]prompb.Label, n),
		state:      make([]seriesState, n),
	}
	hosts := (n + SeriesPerHost - 1) / SeriesPerHost
	uptimes := make([]float64, hosts)
	for h := range uptimes {
		r := splitmix(uint64(seed) ^ 0x9e3779b97f4a7c15*uint64(h+1) ^ 0x5851f42d4c957f2d)
		// Between one hour and 200 days, in whole seconds.
		uptimes[h] = math.Round(3600 + unit(&r)*200*86400)
	}
	job := prompb.Label{Name: "job", Value: "node"}
	for h := 0; h < hosts; h++ {
		host := fmt.Sprintf("host-%d", h)
		instance := prompb.Label{Name: "instance", Value: host + ":9100"}
		for t := 0; t < SeriesPerHost; t++ {
			i := h*SeriesPerHost + t
			if i >= n {
				break
			}
			tm := &catalog[t]
			ls := make([]prompb.Label, 0, 3+len(tm.labels)/2)
			ls = append(ls, prompb.Label{Name: "__name__", Value: tm.name}, instance, job)
			for j := 0; j < len(tm.labels); j += 2 {
				v := tm.labels[j+1]
				if tm.labels[j] == "nodename" {
					v = host
				}
				ls = append(ls, prompb.Label{Name: tm.labels[j], Value: v})
			}
			sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
			g.labels[i] = ls

			st := &g.state[i]
			st.tmpl = uint16(t)
			st.rng = splitmix(uint64(seed)*0xbf58476d1ce4e5b9 + uint64(i)*0x94d049bb133111eb + 1)
			st.v, st.rate = g.initial(st, tm, uptimes[h])
		}
	}
	return g
}

// NumSeries is the number of series.
func (g *Generator) NumSeries() int { return len(g.state) }

// Hosts is the number of hosts the series belong to.
func (g *Generator) Hosts() int { return (len(g.state) + SeriesPerHost - 1) / SeriesPerHost }

// Labels returns series i's labels, sorted by name. The slice is shared:
// callers must not modify it.
func (g *Generator) Labels(i int) []prompb.Label { return g.labels[i] }

// Next returns series i's next sample: the first call gives sample 0.
func (g *Generator) Next(i int) prompb.Sample {
	st := &g.state[i]
	tm := &catalog[st.tmpl]
	ts := g.start + int64(st.k)*g.intervalMs
	if st.k > 0 {
		st.v = g.step(st, tm)
	}
	st.k++
	v := st.v
	if tm.kind == clock {
		// node_time_seconds: the exporter's clock read a little after the
		// scrape started, with nanosecond resolution.
		v = float64(ts)/1000 + math.Round(unit(&st.rng)*5e6)/1e9
	}
	return prompb.Sample{Timestamp: ts, Value: v}
}

func (g *Generator) initial(st *seriesState, tm *template, uptime float64) (v, rate float64) {
	switch tm.kind {
	case counter:
		if tm.pStep > 0 {
			// Rare events: a handful since boot.
			return math.Floor(unit(&st.rng) * 20 * tm.hi), 0
		}
		rate = tm.lo + unit(&st.rng)*(tm.hi-tm.lo)
		return quantize(rate*uptime*(0.8+0.4*unit(&st.rng)), tm.quantum), rate
	case gauge:
		return quantize(tm.lo+unit(&st.rng)*(tm.hi-tm.lo), tm.quantum), 0
	case constant:
		return quantize(tm.lo+unit(&st.rng)*(tm.hi-tm.lo), tm.quantum), 0
	case bootTime:
		return math.Round(float64(g.start)/1000 - uptime), 0
	}
	return 0, 0
}

func (g *Generator) step(st *seriesState, tm *template) float64 {
	if tm.pStep > 0 && unit(&st.rng) >= tm.pStep {
		return st.v
	}
	switch tm.kind {
	case counter:
		if tm.pStep > 0 {
			return st.v + 1 + math.Floor(unit(&st.rng)*tm.hi)
		}
		// Load varies from one interval to the next by ±50 %.
		inc := st.rate * float64(g.intervalMs) / 1000 * (0.5 + unit(&st.rng))
		return quantize(st.v+inc, tm.quantum)
	case gauge:
		v := st.v + (2*unit(&st.rng)-1)*tm.walk*(tm.hi-tm.lo)
		v = math.Min(math.Max(v, tm.lo), tm.hi)
		return quantize(v, tm.quantum)
	}
	return st.v
}

// quantize rounds v to a multiple of q. Multiples of fractional quanta are
// formed by dividing (not multiplying) so that 0.01 steps print as short
// decimals, as node_exporter's values do.
func quantize(v, q float64) float64 {
	switch {
	case q == 0:
		return v
	case q >= 1:
		return math.Round(v/q) * q
	default:
		inv := math.Round(1 / q)
		return math.Round(v*inv) / inv
	}
}

// splitmix advances a splitmix64 state and returns the new state; it is
// also used to scramble seeds.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	z := x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit returns a uniform float in [0, 1) and advances *s.
func unit(s *uint64) float64 {
	*s += 0x9e3779b97f4a7c15
	z := *s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11) / (1 << 53)
}

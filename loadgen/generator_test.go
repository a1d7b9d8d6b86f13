package loadgen

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

var testStart = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// run advances every series of g by k samples, series-major or round-major.
func run(g *Generator, k int, roundMajor bool) [][]prompb.Sample {
	out := make([][]prompb.Sample, g.NumSeries())
	if roundMajor {
		for r := 0; r < k; r++ {
			for i := range out {
				out[i] = append(out[i], g.Next(i))
			}
		}
		return out
	}
	for i := len(out) - 1; i >= 0; i-- { // also reverse the series order
		for r := 0; r < k; r++ {
			out[i] = append(out[i], g.Next(i))
		}
	}
	return out
}

func equalSamples(a, b [][]prompb.Sample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			// Compare bits: NaN never appears, but -0 vs 0 would matter.
			if a[i][j].Timestamp != b[i][j].Timestamp || math.Float64bits(a[i][j].Value) != math.Float64bits(b[i][j].Value) {
				return false
			}
		}
	}
	return true
}

func TestGeneratorDeterminism(t *testing.T) {
	const n, k = 350, 40
	tests := []struct {
		name       string
		seedA      int64
		seedB      int64
		roundMajor bool
		wantEqual  bool
	}{
		{name: "same seed, same order", seedA: 7, seedB: 7, roundMajor: true, wantEqual: true},
		{name: "same seed, other order", seedA: 7, seedB: 7, roundMajor: false, wantEqual: true},
		{name: "other seed", seedA: 7, seedB: 8, roundMajor: true, wantEqual: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := run(NewGenerator(n, tc.seedA, testStart, 15*time.Second), k, true)
			b := run(NewGenerator(n, tc.seedB, testStart, 15*time.Second), k, tc.roundMajor)
			if got := equalSamples(a, b); got != tc.wantEqual {
				t.Fatalf("samples equal = %v, want %v", got, tc.wantEqual)
			}
		})
	}
}

func TestGeneratorTimestamps(t *testing.T) {
	g := NewGenerator(3, 1, testStart, 15*time.Second)
	for k := 0; k < 5; k++ {
		for i := 0; i < 3; i++ {
			s := g.Next(i)
			want := testStart.Add(time.Duration(k) * 15 * time.Second).UnixMilli()
			if s.Timestamp != want {
				t.Fatalf("series %d sample %d: timestamp %d, want %d", i, k, s.Timestamp, want)
			}
		}
	}
}

func TestCatalogShape(t *testing.T) {
	if SeriesPerHost != 100 {
		t.Fatalf("SeriesPerHost = %d, want 100", SeriesPerHost)
	}
	names := map[string]bool{}
	for _, tm := range catalog {
		names[tm.name] = true
		if !strings.HasPrefix(tm.name, "node_") {
			t.Errorf("metric %q is not node_exporter-shaped", tm.name)
		}
	}
	if len(names) < 45 || len(names) > 60 {
		t.Errorf("%d metric names, want about 50", len(names))
	}
}

func TestSeriesLabels(t *testing.T) {
	tests := []struct {
		name      string
		series    int
		wantHosts int
	}{
		{name: "whole hosts", series: 1000, wantHosts: 10},
		{name: "last host cut short", series: 1050, wantHosts: 11},
		{name: "less than a host", series: 7, wantHosts: 1},
	}
	// Extra labels each metric family must carry.
	wantExtra := []struct {
		prefix string
		labels []string
	}{
		{"node_cpu_seconds_total", []string{"cpu", "mode"}},
		{"node_filesystem_", []string{"device", "fstype", "mountpoint"}},
		{"node_network_", []string{"device"}},
		{"node_disk_", []string{"device"}},
		{"node_uname_info", []string{"machine", "nodename", "release", "sysname"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGenerator(tc.series, 1, testStart, 15*time.Second)
			if g.NumSeries() != tc.series || g.Hosts() != tc.wantHosts {
				t.Fatalf("NumSeries, Hosts = %d, %d, want %d, %d", g.NumSeries(), g.Hosts(), tc.series, tc.wantHosts)
			}
			seen := map[string]bool{}
			perHost := map[string]int{}
			for i := 0; i < g.NumSeries(); i++ {
				ls := g.Labels(i)
				m := map[string]string{}
				var key strings.Builder
				for j, l := range ls {
					if j > 0 && ls[j-1].Name >= l.Name {
						t.Fatalf("series %d: labels not sorted or duplicated: %v", i, ls)
					}
					if l.Value == "" {
						t.Fatalf("series %d: empty value for %s", i, l.Name)
					}
					m[l.Name] = l.Value
					key.WriteString(l.Name + "=" + l.Value + ",")
				}
				if seen[key.String()] {
					t.Fatalf("series %d duplicates labels %s", i, key.String())
				}
				seen[key.String()] = true
				if m["job"] != "node" || !strings.HasPrefix(m["instance"], "host-") || !strings.HasSuffix(m["instance"], ":9100") {
					t.Fatalf("series %d: bad instance/job in %v", i, m)
				}
				perHost[m["instance"]]++
				for _, w := range wantExtra {
					if !strings.HasPrefix(m["__name__"], w.prefix) {
						continue
					}
					for _, l := range w.labels {
						if m[l] == "" {
							t.Errorf("series %d (%s): missing label %s", i, m["__name__"], l)
						}
					}
				}
			}
			if len(perHost) != tc.wantHosts {
				t.Fatalf("%d distinct instances, want %d", len(perHost), tc.wantHosts)
			}
			for h, c := range perHost {
				if c > SeriesPerHost {
					t.Fatalf("%s has %d series, more than %d", h, c, SeriesPerHost)
				}
			}
		})
	}
}

func TestValueShapes(t *testing.T) {
	const k = 500
	g := NewGenerator(2*SeriesPerHost, 3, testStart, 15*time.Second)
	all := run(g, k, true)
	for i, ss := range all {
		tm := catalog[i%SeriesPerHost]
		changes := 0
		for j := 1; j < len(ss); j++ {
			prev, cur := ss[j-1].Value, ss[j].Value
			if cur != prev {
				changes++
			}
			switch tm.kind {
			case counter:
				if cur < prev {
					t.Fatalf("%s (series %d) decreased at sample %d: %v -> %v", tm.name, i, j, prev, cur)
				}
			case gauge:
				if cur < tm.lo || cur > tm.hi {
					t.Fatalf("%s (series %d) left [%v, %v]: %v", tm.name, i, tm.lo, tm.hi, cur)
				}
			case constant, bootTime:
				if cur != prev {
					t.Fatalf("%s (series %d) is constant but changed: %v -> %v", tm.name, i, prev, cur)
				}
			case clock:
				if d := cur - float64(ss[j].Timestamp)/1000; d < 0 || d > 0.01 {
					t.Fatalf("%s is %v s off its timestamp", tm.name, d)
				}
			}
			if tm.quantum >= 1 && cur != math.Round(cur/tm.quantum)*tm.quantum {
				t.Fatalf("%s value %v is not a multiple of %v", tm.name, cur, tm.quantum)
			}
		}
		// Busy counters and gauges without pStep move nearly every sample;
		// rare-event counters must move at least once in 500 but not often.
		switch {
		case tm.kind == counter && tm.pStep == 0 && tm.hi >= 1:
			if changes < k*9/10 {
				t.Errorf("%s (series %d) changed only %d times in %d samples", tm.name, i, changes, k)
			}
		case tm.kind == counter && tm.pStep > 0:
			if changes > k/2 {
				t.Errorf("rare counter %s (series %d) changed %d times in %d samples", tm.name, i, changes, k)
			}
		}
	}
}

func TestQuantize(t *testing.T) {
	tests := []struct {
		name string
		v, q float64
		want float64
	}{
		{name: "none", v: 1.234567, q: 0, want: 1.234567},
		{name: "hundredths", v: 12345.6789, q: 0.01, want: 12345.68},
		{name: "pages", v: 10000, q: 4096, want: 8192},
		{name: "integer", v: 2.5, q: 1, want: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := quantize(tc.v, tc.q); got != tc.want {
				t.Fatalf("quantize(%v, %v) = %v, want %v", tc.v, tc.q, got, tc.want)
			}
		})
	}
}

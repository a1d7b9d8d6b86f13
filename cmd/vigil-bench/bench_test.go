package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-tsdb/vigil/loadgen"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    float64
		wantErr bool
	}{
		{name: "plain", stat: "123 (prometheus) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 1000 200",
			want: 3.0},
		{name: "spaces and parens in name", stat: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1000 1 0 0 20 0 1 0 1 1 1",
			want: 10.01},
		{name: "truncated", stat: "7 (x) R 1 2 3", wantErr: true},
		{name: "no name", stat: "garbage", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU(tc.stat)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOwnProcessReadings(t *testing.T) {
	pid := os.Getpid()
	if _, err := cpuSeconds(pid); err != nil {
		t.Fatal(err)
	}
	rss, err := peakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 {
		t.Fatalf("peak RSS %d bytes is implausibly small", rss)
	}
}

func TestParseStatusKB(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{name: "found", in: "Name:\tx\nVmPeak:\t  10 kB\nVmHWM:\t   2048 kB\n", want: 2048 * 1024},
		{name: "missing", in: "Name:\tx\n", wantErr: true},
		{name: "bad unit", in: "VmHWM:\t 5 MB\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatusKB(strings.NewReader(tc.in), "VmHWM")
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestDiskUsageCountsBlocksAndLinksOnce(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), bytes.Repeat([]byte("x"), 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	empty, err := diskUsage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	one, err := diskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if one-empty < 100_000 {
		t.Fatalf("usage %d for a 100 kB file", one-empty)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Skip("no hard links here:", err)
	}
	two, err := diskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if two != one {
		t.Fatalf("hard link counted twice: %d then %d", one, two)
	}
}

func TestResultSize(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    int
		wantErr bool
	}{
		{name: "vector", body: `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"]},{"metric":{},"value":[1,"3"]}]}}`, want: 2},
		{name: "empty vector", body: `{"status":"success","data":{"resultType":"vector","result":[]}}`, want: 0},
		{name: "matrix", body: `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"2"]]}]}}`, want: 1},
		{name: "series", body: `{"status":"success","data":[{"__name__":"a"},{"__name__":"b"},{"__name__":"c"}]}`, want: 3},
		{name: "api error", body: `{"status":"error","errorType":"bad_data","error":"parse error"}`, wantErr: true},
		{name: "not json", body: `<html>`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resultSize([]byte(tc.body))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		in   []time.Duration
		want time.Duration
	}{
		{name: "odd", in: []time.Duration{5 * ms, 1 * ms, 3 * ms}, want: 3 * ms},
		{name: "even", in: []time.Duration{4 * ms, 1 * ms, 2 * ms, 100 * ms}, want: 3 * ms},
		{name: "empty", in: nil, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := median(tc.in); got != tc.want {
				t.Fatalf("median = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMonthPartitions(t *testing.T) {
	tests := []struct {
		name        string
		first, last time.Time
		want        string
	}{
		{name: "one month", first: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), last: time.Date(2026, 11, 23, 11, 30, 0, 0, time.UTC), want: "2026_11"},
		{name: "across new year", first: time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), last: time.Date(2027, 1, 1, 0, 30, 0, 0, time.UTC), want: "2026_12,2027_01"},
		{name: "local time zone is ignored", first: time.Date(2026, 12, 1, 0, 30, 0, 0, time.FixedZone("x", 3600)), last: time.Date(2026, 12, 1, 2, 0, 0, 0, time.FixedZone("x", 3600)), want: "2026_11,2026_12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(monthPartitions(tc.first, tc.last), ","); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestCompareFlags(t *testing.T) {
	tests := []struct {
		name        string
		args        []string
		wantSeries  int
		wantSamples int
		wantSystems string
		wantErr     bool
	}{
		{name: "defaults", args: nil, wantSeries: 100_000, wantSamples: 360, wantSystems: "vigil,vm,prom,cluster"},
		{name: "small", args: []string{"-small"}, wantSeries: 10_000, wantSamples: 360, wantSystems: "vigil,vm,prom,cluster"},
		{name: "without the cluster", args: []string{"-cluster=false"}, wantSeries: 100_000, wantSamples: 360, wantSystems: "vigil,vm,prom"},
		{name: "cluster only", args: []string{"-systems", "cluster"}, wantSeries: 100_000, wantSamples: 360, wantSystems: "cluster"},
		{name: "nothing left", args: []string{"-systems", "cluster", "-cluster=false"}, wantErr: true},
		{name: "small with explicit series", args: []string{"-small", "-series", "2000", "-systems", "vm,prom"}, wantSeries: 2000, wantSamples: 360, wantSystems: "vm,prom"},
		{name: "unknown system", args: []string{"-systems", "vm,influx"}, wantErr: true},
		{name: "duplicate system", args: []string{"-systems", "vm,vm"}, wantErr: true},
		{name: "bad load", args: []string{"-concurrency", "0"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := parseCompareFlags(tc.args, &bytes.Buffer{})
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if cfg.load.Series != tc.wantSeries || cfg.load.Samples != tc.wantSamples || strings.Join(cfg.systems, ",") != tc.wantSystems {
				t.Fatalf("got %d × %d on %v", cfg.load.Series, cfg.load.Samples, cfg.systems)
			}
		})
	}
}

func TestReportRatiosAndErrors(t *testing.T) {
	cfg, err := parseCompareFlags([]string{"-small"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(sys *system, rate float64, disk int64) *measurement {
		m := &measurement{sys: sys, ingested: true, haveDisk: true, diskBytes: disk}
		m.push = loadgen.Result{Samples: 1_000_000, Duration: time.Duration(float64(time.Second) * 1e6 / rate)}
		m.cpuSeconds = 2
		for range dashboardQueries(time.Time{}, 100) {
			m.queries = append(m.queries, queryResult{median: 2 * time.Millisecond, series: 1})
		}
		return m
	}
	v := mk(vigilSystem("/x/vigil"), 200_000, 1_000_000)
	vm := mk(victoriaMetricsSystem("vm"), 400_000, 500_000)
	prom := mk(prometheusSystem("prom"), 100_000, 2_000_000)
	v.queries[0] = queryResult{err: errors.New("empty result")}
	skipped := &measurement{sys: vigilClusterSystem("/x/vigil"), skipped: true}
	var out bytes.Buffer
	writeReport(&out, cfg, []*measurement{v, skipped, vm, prom}, time.Minute)
	s := out.String()
	for _, want := range []string{
		"| figure | Vigil | VictoriaMetrics | Prometheus | Vigil/VM | Vigil/Prom |\n",
		"| ingest, samples/s (higher is better) | 200000 | 400000 | 100000 | 0.50× | 2.00× |",
		"| disk, bytes per sample, whole data dir | 1.000 | 0.500 | 2.000 | 2.00× | 0.50× |",
		"error: empty result",
		"ingest vs VictoriaMetrics: 0.50× (target ≥ 0.50×): met",
		"CPU per sample vs Prometheus: 1.00× (target ≤ 1.00×): met",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("report lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "cluster") {
		t.Errorf("a skipped cluster shows in the report:\n%s", s)
	}

	// With the cluster: its column, its ratio to single-node Vigil, and
	// the ≥ 0.33× target.
	for _, tc := range []struct {
		name    string
		rate    float64
		verdict string
		ratio   string
	}{
		{name: "below target", rate: 60_000, verdict: "0.30× (target ≥ 0.33×): NOT met", ratio: "0.30×"},
		{name: "at target", rate: 66_000, verdict: "0.33× (target ≥ 0.33×): met", ratio: "0.33×"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mk(vigilClusterSystem("/x/vigil"), tc.rate, 9_000_000)
			c.queries[1] = queryResult{err: errors.New("HTTP 503")}
			var out bytes.Buffer
			writeReport(&out, cfg, []*measurement{v, c, vm, prom}, time.Minute)
			s := out.String()
			for _, want := range []string{
				"| figure | Vigil | VictoriaMetrics | Prometheus | Vigil cluster | Vigil/VM | Vigil/Prom | cluster/Vigil |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
				fmt.Sprintf("| ingest, samples/s (higher is better) | 200000 | 400000 | 100000 | %.0f | 0.50× | 2.00× | %s |", tc.rate, tc.ratio),
				"| disk, bytes per sample, whole data dir | 1.000 | 0.500 | 2.000 | 9.000 | 2.00× | 0.50× | not flushed |",
				"| 2.00 | 2.00 | 2.00 | error: HTTP 503 | 1.00× | 1.00× | — |",
				"cluster ingest (3 ingesters, RF 3) vs single-node Vigil: " + tc.verdict,
				"- Vigil cluster: 3 × `vigil -target=ingester`",
			} {
				if !strings.Contains(s, want) {
					t.Errorf("report lacks %q:\n%s", want, s)
				}
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	got := shellQuote([]string{"./bin/vigil-bench", "compare", "-systems", "vm,prom", "it's", ""})
	want := `./bin/vigil-bench compare -systems vm,prom 'it'\''s' ''`
	if got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestParseMachineCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    float64
		wantErr bool
	}{
		{name: "busy fields only", stat: "cpu  100 20 30 5000 70 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n", want: 1.56},
		{name: "not the cpu line", stat: "intr 1 2 3\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMachineCPU(tc.stat)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

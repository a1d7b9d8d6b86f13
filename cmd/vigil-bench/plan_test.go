package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/loadgen"
	"github.com/vigil-tsdb/vigil/model"
)

// testFigures are round figures for the hand computations below.
func testFigures() planFigures {
	return planFigures{
		ingesterCPU:               figure{1.0 / 20_000, "t"}, // 20 k samples/s per core
		distFixedCPU:              figure{10e-6, "t"},        // 10 µs per client sample
		distReplicaCPU:            figure{5e-6, "t"},         // + 5 µs per replica
		rssBytesPerSeries:         figure{327_680, "t"},      // 320 KiB
		bytesPerSample:            figure{2, "t"},
		bytesPerWindow1m:          figure{20, "t"},
		bytesPerWindow1h:          figure{40, "t"},
		walBytesPerSample:         figure{10, "t"},
		walSeconds:                300,
		remoteWriteBytesPerSample: figure{16, "t"},
		pushBytesPerSample:        figure{100, "t"},
	}
}

// TestPlanArithmetic checks computePlan against sizes computed by hand.
//
// Case "RAM binds": 10 hosts × 600 series = 6,000 series at 15 s:
// 400 samples/s in, × RF 3 = 1,200 stored. Headroom 0.25 on 4 cores and
// 2 GiB and 1 Gbit/s: 3 usable cores, 1.5 GiB = 1,610,612,736 B usable
// RAM, 0.75 × 125,000,000 = 93,750,000 B/s usable network.
// Ingester CPU 1,200 × 1/20,000 = 0.06 cores → 1 node. RAM 6,000 × 3 ×
// 327,680 = 5,898,240,000 B ÷ 1,610,612,736 = 3.66 → 4 nodes; network
// (replication below) → 1; max(1, 4, 1, RF 3) = 4, rounded up to a
// multiple of 3 → 6 ingesters. Distributor CPU per client sample 10 + 3 ×
// 5 = 25 µs: 400 × 25 µs = 0.01 cores → 1, network → 1, at least 2 → 2. Disk, retention 2d:raw,10d:1m,30d:1h, each plus the day
// being filled (3, 11, 31 days): raw 1,200 × 3 × 86,400 × 2 B =
// 622,080,000; 1 m 18,000 copies × 11 × 1,440 × 20 B = 5,702,400,000;
// 1 h 18,000 × 31 × 24 × 40 B = 535,680,000; WAL 1,200 × 300 s × 10 B =
// 3,600,000; all 6,863,760,000 B. Network: remote write 400 × 16 =
// 6,400 B/s, collectors' pushes 400 × 100 = 40,000 B/s, replication
// 1,200 × 100 = 120,000 B/s.
//
// Case "CPU and network bind": 100 hosts × 1,000 = 100,000 series at
// 250 ms: 400,000 samples/s in, × RF 2 = 800,000 stored. Headroom 0.5 on
// 4 cores, 64 GiB and 0.25 Gbit/s: 2 cores, 32 GiB = 34,359,738,368 B,
// 0.5 × 31,250,000 = 15,625,000 B/s usable. Ingester CPU 800,000 ÷
// 20,000 = 40 cores ÷ 2 = 20 nodes exactly; RAM 100,000 × 2 × 327,680 =
// 65,536,000,000 B ÷ 34,359,738,368 = 1.91 → 2; network 80,000,000 B/s
// of replication (below) ÷ 15,625,000 = 5.12 → 6; max(20, 2, 6, 2) = 20,
// a multiple of 2 → 20. Distributor 10 + 2 × 5 = 20 µs × 400,000 =
// 8 cores ÷ 2 = 4; network: the larger direction is the 80,000,000 B/s
// out → 6; max(2, 4, 6) = 6. Retention 1d:raw only (2 days): raw 800,000 × 2 ×
// 86,400 × 2 B = 276,480,000,000; WAL 800,000 × 300 × 10 = 2,400,000,000;
// all 278,880,000,000 B. Replication 800,000 × 100 = 80,000,000 B/s.
func TestPlanArithmetic(t *testing.T) {
	mustRet := func(s string) []tierRetention {
		r, err := parseRetention(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name string
		cfg  planConfig
		want planResult
		disk []float64 // per tier, in --retention order
	}{
		{
			name: "RAM binds",
			cfg: planConfig{hosts: 10, seriesPerHost: 600, interval: 15 * time.Second, retention: mustRet("2d:raw,10d:1m,30d:1h"),
				rf: 3, headroom: 0.25, coresPerNode: 4, ramPerNodeGiB: 2, netPerNodeGbit: 1},
			want: planResult{series: 6000, clientSPS: 400, storedSPS: 1200, ingesterCores: 0.06, distCores: 0.01,
				usableCores: 3, usableRAM: 1_610_612_736, usableNet: 93_750_000,
				ingestersByCPU: 1, ingestersByRAM: 4, ingestersByNet: 1, ingesters: 6,
				distributorsByCPU: 1, distributorsByNet: 1, distributors: 2, queriers: 2,
				headRAM: 5_898_240_000, walBytes: 3_600_000, disk: 6_863_760_000, remoteWriteIn: 6400, pushIn: 40_000, replication: 120_000},
			disk: []float64{622_080_000, 5_702_400_000, 535_680_000},
		},
		{
			name: "CPU and network bind",
			cfg: planConfig{hosts: 100, seriesPerHost: 1000, interval: 250 * time.Millisecond, retention: mustRet("1d:raw"),
				rf: 2, headroom: 0.5, coresPerNode: 4, ramPerNodeGiB: 64, netPerNodeGbit: 0.25},
			want: planResult{series: 100_000, clientSPS: 400_000, storedSPS: 800_000, ingesterCores: 40, distCores: 8,
				usableCores: 2, usableRAM: 34_359_738_368, usableNet: 15_625_000,
				ingestersByCPU: 20, ingestersByRAM: 2, ingestersByNet: 6, ingesters: 20,
				distributorsByCPU: 4, distributorsByNet: 6, distributors: 6, queriers: 2,
				headRAM: 65_536_000_000, walBytes: 2_400_000_000, disk: 278_880_000_000, remoteWriteIn: 6_400_000, pushIn: 40_000_000, replication: 80_000_000},
			disk: []float64{276_480_000_000},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := computePlan(tc.cfg, testFigures())
			w := tc.want
			for _, c := range []struct {
				name      string
				got, want float64
			}{
				{"series", got.series, w.series}, {"clientSPS", got.clientSPS, w.clientSPS}, {"storedSPS", got.storedSPS, w.storedSPS},
				{"ingesterCores", got.ingesterCores, w.ingesterCores}, {"distCores", got.distCores, w.distCores},
				{"usableCores", got.usableCores, w.usableCores}, {"usableRAM", got.usableRAM, w.usableRAM},
				{"usableNet", got.usableNet, w.usableNet},
				{"ingestersByCPU", float64(got.ingestersByCPU), float64(w.ingestersByCPU)},
				{"ingestersByRAM", float64(got.ingestersByRAM), float64(w.ingestersByRAM)},
				{"ingestersByNet", float64(got.ingestersByNet), float64(w.ingestersByNet)},
				{"ingesters", float64(got.ingesters), float64(w.ingesters)},
				{"distributorsByCPU", float64(got.distributorsByCPU), float64(w.distributorsByCPU)},
				{"distributorsByNet", float64(got.distributorsByNet), float64(w.distributorsByNet)},
				{"distributors", float64(got.distributors), float64(w.distributors)},
				{"queriers", float64(got.queriers), float64(w.queriers)},
				{"headRAM", got.headRAM, w.headRAM}, {"walBytes", got.walBytes, w.walBytes}, {"disk", got.disk, w.disk},
				{"remoteWriteIn", got.remoteWriteIn, w.remoteWriteIn}, {"pushIn", got.pushIn, w.pushIn},
				{"replication", got.replication, w.replication},
			} {
				if !near(c.got, c.want, 1e-9) {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			if len(got.tiers) != len(tc.disk) {
				t.Fatalf("%d tiers, want %d", len(got.tiers), len(tc.disk))
			}
			for i, td := range got.tiers {
				if !near(td.bytes, tc.disk[i], 1e-9) {
					t.Errorf("tier %s: %v bytes, want %v", td.tier, td.bytes, tc.disk[i])
				}
			}
		})
	}
}

func near(got, want, rel float64) bool {
	if want == 0 {
		return got == 0
	}
	return math.Abs(got-want) <= rel*math.Abs(want)
}

// TestPlanDefaultFigures checks the derivation of the default CPU figures
// by hand: the cluster's 9.96 CPU s per M client samples at RF 3 is
// k × (22.8 + 3 × (7.9 + 46.3)) = k × 185.4, so k = 5.3722e-8 s; an
// ingester needs 46.3 k = 2.4873 µs per stored sample (402,040 samples/s
// per core), a distributor 22.8 k = 1.2249 µs per client sample plus
// 7.9 k = 0.4244 µs per replica, 2.4981 µs at RF 3 (400,311 per core).
// RSS: (1,209,276 − 462,224) kB × 1024 ÷ 300,000 = 2,549.94 B per series
// at 60 samples; fixed 462,224 kB × 1024 − 100,000 × 2,549.94 =
// 218,323,627 B; (812,300 kB × 1024 − 218,323,627) ÷ 100,000 = 6,134.72 B.
func TestPlanDefaultFigures(t *testing.T) {
	f := defaultPlanFigures()
	ing, dist := f.cpuPerSample(3)
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"ingester CPU", ing, 2.487313915857605e-06},
		{"distributor fixed CPU", f.distFixedCPU.v, 1.2248543689320388e-06},
		{"distributor CPU per replica", f.distReplicaCPU.v, 4.244012944983819e-07},
		{"distributor CPU at RF 3", dist, 2.4980582524271846e-06},
		{"RSS per series copy", f.rssBytesPerSeries.v, 6134.715733333333},
		{"1m window", f.bytesPerWindow1m.v, 78.5e6 / 95_600_806 * 93_201_946 / 4_464_000},
		{"1h window", f.bytesPerWindow1h.v, 78.5e6 / 95_600_806 * 2_398_860 / 74_400},
	} {
		if !near(c.got, c.want, 1e-9) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for _, fg := range []figure{f.ingesterCPU, f.distFixedCPU, f.distReplicaCPU, f.rssBytesPerSeries, f.bytesPerSample,
		f.bytesPerWindow1m, f.bytesPerWindow1h, f.walBytesPerSample, f.remoteWriteBytesPerSample, f.pushBytesPerSample} {
		if !(fg.v > 0) || fg.source == "" {
			t.Errorf("default figure %+v: want a positive value and a source", fg)
		}
	}
}

// TestPlanNetworkFigures measures the bytes per sample of a remote-write
// body (what loadgen.Push sends, to a server that counts them) and of the
// gRPC push a distributor sends an ingester, on loadgen's series, and fails
// when the defaults are more than 3 % off, so that they cannot rot.
func TestPlanNetworkFigures(t *testing.T) {
	var body atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body.Add(n)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg := loadgen.DefaultConfig()
	cfg.Series, cfg.Samples, cfg.BatchSize, cfg.Concurrency, cfg.Interval = 10_000, 3, 2_000, 2, 10*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := loadgen.Push(ctx, cfg, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Samples != cfg.TotalSamples() || res.Bytes != body.Load() {
		t.Fatalf("pushed %d samples, %d bytes; want %d samples, the server saw %d bytes", res.Samples, res.Bytes, cfg.TotalSamples(), body.Load())
	}
	rw := float64(res.Bytes) / float64(res.Samples)

	gen := loadgen.NewGenerator(cfg.Series, cfg.Seed, time.Unix(1_700_000_000, 0), cfg.Interval)
	var sb labels.ScratchBuilder
	total := 0
	for lo := 0; lo < gen.NumSeries(); lo += cfg.BatchSize {
		var batch []model.Series
		for i := lo; i < min(lo+cfg.BatchSize, gen.NumSeries()); i++ {
			sb.Reset()
			for _, l := range gen.Labels(i) {
				sb.Add(l.Name, l.Value)
			}
			s := gen.Next(i)
			batch = append(batch, model.Series{Labels: sb.Labels(), Samples: []model.Sample{{T: s.Timestamp, V: s.Value}}})
		}
		b, err := ingesterpb.FromSeries(batch).MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
	}
	push := float64(total) / float64(gen.NumSeries())
	t.Logf("remote write %.2f B per sample, gRPC push %.2f B per sample", rw, push)

	f := defaultPlanFigures()
	if !near(f.remoteWriteBytesPerSample.v, rw, 0.03) {
		t.Errorf("default remote-write bytes per sample %v, measured %.2f: update defaultPlanFigures and docs/capacity.md", f.remoteWriteBytesPerSample.v, rw)
	}
	if !near(f.pushBytesPerSample.v, push, 0.03) {
		t.Errorf("default push bytes per sample %v, measured %.2f: update defaultPlanFigures and docs/capacity.md", f.pushBytesPerSample.v, push)
	}
}

func TestPlanRetention(t *testing.T) {
	r, err := parseRetention("365d:1h, 7d:raw ,30d:1m")
	if err != nil {
		t.Fatal(err)
	}
	want := []tierRetention{{"raw", 7 * 24 * time.Hour, 0}, {"1m", 30 * 24 * time.Hour, time.Minute}, {"1h", 365 * 24 * time.Hour, time.Hour}}
	if fmt.Sprint(r) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", r, want)
	}
	// Equal retentions are allowed (1.5 d = 36 h); a tier may be left out.
	r, err = parseRetention("36h:raw,1.5d:1h")
	if err != nil || len(r) != 2 || r[0].keep != 36*time.Hour || r[1].tier != "1h" || r[1].keep != 36*time.Hour {
		t.Errorf("36h:raw,1.5d:1h: got %v, %v", r, err)
	}
}

// TestPlanFlagErrors checks that every invalid flag is refused with an
// error naming it, through run as a user calls it.
func TestPlanFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"hosts zero", []string{"--hosts", "0"}, "--hosts 0: must be positive"},
		{"series negative", []string{"--series-per-host", "-5"}, "--series-per-host -5: must be positive"},
		{"fleet too large", []string{"--hosts", "1000000000", "--series-per-host", "10000"}, "--hosts 1000000000 × --series-per-host 10000: more than 1e+12 series"},
		{"interval zero", []string{"--interval", "0s"}, "--interval 0s: must be at least 1ms"},
		{"interval syntax", []string{"--interval", "10"}, "-interval"},
		{"rf zero", []string{"--rf", "0"}, "--rf 0: must be positive"},
		{"headroom one", []string{"--headroom", "1"}, "--headroom 1: must be at least 0 and below 1"},
		{"headroom negative", []string{"--headroom", "-0.1"}, "--headroom -0.1"},
		{"headroom NaN", []string{"--headroom", "NaN"}, "--headroom NaN"},
		{"cores zero", []string{"--cores-per-node", "0"}, "--cores-per-node 0: must be positive"},
		{"ram zero", []string{"--ram-per-node", "0"}, "--ram-per-node 0: must be a positive number of GiB"},
		{"ram infinite", []string{"--ram-per-node", "+Inf"}, "--ram-per-node +Inf"},
		{"net zero", []string{"--net-per-node", "0"}, "--net-per-node 0: must be a positive number of Gbit/s"},
		{"unknown tier", []string{"--retention", "7d:raw,30d:5m"}, `--retention "7d:raw,30d:5m": unknown tier "5m" (want raw, 1m or 1h)`},
		{"no colon", []string{"--retention", "7d"}, `--retention "7d": "7d" is not DURATION:TIER`},
		{"empty part", []string{"--retention", "7d:raw,"}, `--retention "7d:raw,": "" is not DURATION:TIER`},
		{"no raw", []string{"--retention", "30d:1m"}, `--retention "30d:1m": no raw tier`},
		{"twice", []string{"--retention", "7d:raw,8d:raw"}, "tier raw given twice"},
		{"bad duration", []string{"--retention", "7x:raw"}, `tier raw: bad duration "7x"`},
		{"bad days", []string{"--retention", "sevend:raw"}, `tier raw: bad duration "sevend"`},
		{"zero duration", []string{"--retention", "0d:raw"}, "tier raw: retention 0d must be positive"},
		{"coarser shorter", []string{"--retention", "7d:raw,3d:1m"}, "tier 1m kept 3 d, shorter than tier raw (7 d)"},
		{"unknown flag", []string{"--nodes", "3"}, "flag provided but not defined: -nodes"},
		{"extra argument", []string{"now"}, `unexpected arguments ["now"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"plan"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if stdout.Len() > 0 {
				t.Errorf("printed a plan despite the error:\n%s", stdout.String())
			}
		})
	}
}

// TestPlanFromErrors checks --from's refusals, each naming the problem.
func TestPlanFromErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, json, want string
	}{
		{"not JSON", `version: 1`, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"no member", `{"ingest": {}}`, `no "plan_input" object`},
		{"null member", `{"plan_input": null}`, `no "plan_input" object`},
		{"member not an object", `{"plan_input": 3}`, "plan_input: "},
		{"no version", `{"plan_input": {"bytes_per_sample": 3}}`, "plan_input: version 0: this vigil-bench reads version 1"},
		{"future version", `{"plan_input": {"version": 2}}`, "plan_input: version 2"},
		{"unknown field", `{"plan_input": {"version": 1, "bytes_per_sampel": 3}}`, `unknown field "bytes_per_sampel"`},
		{"string figure", `{"plan_input": {"version": 1, "bytes_per_sample": "3"}}`, "bytes_per_sample: want a float64, got a JSON string"},
		{"fractional rf", `{"plan_input": {"version": 1, "rf": 1.5, "samples_per_second_per_core": 1}}`, "rf: want a int"},
		{"zero figure", `{"plan_input": {"version": 1, "bytes_per_sample": 0}}`, "bytes_per_sample 0: must be positive"},
		{"negative figure", `{"plan_input": {"version": 1, "rss_bytes_per_series": -8000}}`, "rss_bytes_per_series -8000: must be positive"},
		{"cpu without rf", `{"plan_input": {"version": 1, "samples_per_second_per_core": 300000}}`, "rf is required"},
		{"distributor without rf", `{"plan_input": {"version": 1, "distributor_samples_per_second_per_core": 300000}}`, "rf is required"},
		{"rf alone", `{"plan_input": {"version": 1, "rf": 3}}`, "rf given without"},
		{"rf zero", `{"plan_input": {"version": 1, "rf": 0, "samples_per_second_per_core": 1}}`, "rf 0: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if err := os.WriteFile(p, []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), []string{"plan", "--from", p}, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--from") {
				t.Fatalf("error %v, want one naming --from and containing %q", err, tc.want)
			}
		})
	}
	err := run(context.Background(), []string{"plan", "--from", filepath.Join(dir, "missing.json")}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: error %v, want one naming the file", err)
	}
}

// TestPlanFrom reads a summary with a plan_input beside other members:
// the single node's 400,000 samples/s per core at RF 1 splits as
// 2.5 µs = k × (22.8 + 7.9 + 46.3) = 77 k, k = 3.2468e-8 s: an ingester
// 46.3 k = 1.5032 µs per sample (665,227 per core), a distributor
// 22.8 k + 3 × 7.9 k = 1.5097 µs per client sample at RF 3; the
// ingester's own figure then overrides the split one.
func TestPlanFrom(t *testing.T) {
	p := filepath.Join(t.TempDir(), "summary.json")
	summary := `{"mode": "mixed", "lost_samples": 0,
	  "plan_input": {"version": 1, "source": "mixed, test box", "samples_per_second_per_core": 400000, "rf": 1,
	    "rss_bytes_per_series": 4096, "bytes_per_sample": 1.5}}`
	if err := os.WriteFile(p, []byte(summary), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := readPlanInput(p)
	if err != nil {
		t.Fatal(err)
	}
	def := defaultPlanFigures()
	f := in.apply(def, p)
	ing, dist := f.cpuPerSample(3)
	if !near(ing, 1.5032467532467531e-06, 1e-9) || !near(dist, 7.402597402597403e-07+3*2.564935064935065e-07, 1e-9) {
		t.Errorf("split: ingester %v, distributor %v per sample", ing, dist)
	}
	if f.rssBytesPerSeries.v != 4096 || f.bytesPerSample.v != 1.5 || f.pushBytesPerSample != def.pushBytesPerSample {
		t.Errorf("figures not applied as given: %+v", f)
	}
	if !strings.Contains(f.bytesPerSample.source, p) || !strings.Contains(f.bytesPerSample.source, "mixed, test box") {
		t.Errorf("source %q: want the file and its source text", f.bytesPerSample.source)
	}
	override := `{"plan_input": {"version": 1, "samples_per_second_per_core": 400000, "rf": 1, "ingester_samples_per_second_per_core": 250000}}`
	if err := os.WriteFile(p, []byte(override), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err = readPlanInput(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := in.apply(def, p).ingesterCPU.v; !near(got, 4e-6, 1e-9) {
		t.Errorf("ingester_samples_per_second_per_core 250000: %v s per sample, want 4e-6", got)
	}

	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"plan", "--from", p, "--hosts", "1000"}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "--from "+p+": ingester_samples_per_second_per_core") {
		t.Errorf("the report does not name the file as the ingester figure's source:\n%s", stdout.String())
	}
}

// TestPlanOutput runs the brief's plan and checks that the report shows
// what computePlan computed, in rounded units, and every figure's source.
func TestPlanOutput(t *testing.T) {
	var stdout bytes.Buffer
	args := []string{"plan", "--hosts", "100000", "--series-per-host", "1000", "--interval", "10s", "--retention", "7d:raw,30d:1m,365d:1h", "--rf", "3"}
	if err := run(context.Background(), args, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	cfg := defaultPlanConfig()
	r := computePlan(cfg, defaultPlanFigures())
	for _, want := range []string{
		"**100 M active series**", "**10 M samples/s** from the clients", "**30 M samples/s stored** with RF 3",
		"raw 7 d, 1m windows 30 d, 1h windows 365 d",
		fmt.Sprintf("| **ingesters** | **%d** |", r.ingesters),
		fmt.Sprintf("| **distributors** | **%d** |", r.distributors),
		"| disk, raw samples | " + dec(r.tiers[0].bytes, "B") + " |",
		"| **disk, all** | **" + dec(r.disk, "B") + "** |",
		"docs/benchmarks.md, cluster follow-up run 2026-11-23 17:28 UTC",
		"TestPlanNetworkFigures",
		"Command: `vigil-bench plan --hosts 100000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestPlanUnits(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{si(100e6), "100 M"}, {si(402_040.1), "402 k"}, {si(999.96), "1 k"}, {si(74.63), "74.6"}, {si(0.5), "0.5"},
		{dec(67_853_000_000_000, "B"), "67.9 TB"}, {dec(1.5e15, "B"), "1.5 PB"}, {dec(512, "B"), "512 B"},
		{netRate(1.25e9), "1.25 GB/s (10 Gbit/s)"},
		{gib(2 << 30), "2 GiB"}, {gib(3 << 40), "3 TiB"}, {kib(8472.49), "8.27 KiB"},
		{group(100000), "100,000"}, {group(999), "999"}, {group(-1234), "-1,234"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// planInputVersion is the version of the plan_input object this build
// reads. docs/capacity.md documents the fields.
const planInputVersion = 1

// planInput is the plan_input object of a JSON file (-from): the figures
// a capacity run measured. Every figure is optional (absent: the default
// is used, and the report says so); a present one must be positive. A
// capacity tester's summary.json carries it as its top-level member
// "plan_input" beside its own members, which plan ignores.
type planInput struct {
	Version int    `json:"version"`
	Source  string `json:"source"` // free text: run, machine, date; quoted in the report

	// SamplesPerSecondPerCore is client samples per second per core busy,
	// all Vigil processes summed, measured at replication factor RF (a
	// single node: 1). Split into ingester and distributor work by the
	// profile's shares (splitCPU).
	SamplesPerSecondPerCore *float64 `json:"samples_per_second_per_core"`
	// RF is the replication factor of the run; required with
	// SamplesPerSecondPerCore or DistributorSamplesPerSecondPerCore.
	RF *int `json:"rf"`
	// IngesterSamplesPerSecondPerCore is samples stored per second per
	// ingester core (every replica counts), from per-process CPU.
	IngesterSamplesPerSecondPerCore *float64 `json:"ingester_samples_per_second_per_core"`
	// DistributorSamplesPerSecondPerCore is client samples per second per
	// distributor core at RF, from per-process CPU.
	DistributorSamplesPerSecondPerCore *float64 `json:"distributor_samples_per_second_per_core"`

	RSSBytesPerSeries         *float64 `json:"rss_bytes_per_series"`
	BytesPerSample            *float64 `json:"bytes_per_sample"`
	BytesPerWindow1m          *float64 `json:"bytes_per_window_1m"`
	BytesPerWindow1h          *float64 `json:"bytes_per_window_1h"`
	WALBytesPerSample         *float64 `json:"wal_bytes_per_sample"`
	RemoteWriteBytesPerSample *float64 `json:"remote_write_bytes_per_sample"`
	PushBytesPerSample        *float64 `json:"push_bytes_per_sample"`
}

// readPlanInput reads the plan_input member of the JSON object in path.
func readPlanInput(path string) (*planInput, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePlanInput(data)
}

// parsePlanInput decodes data: a JSON object whose member plan_input is a
// planInput. Unknown members inside plan_input are errors (a misspelt
// figure would otherwise fall back to its default unnoticed); other
// top-level members are ignored.
func parsePlanInput(data []byte) (*planInput, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	raw, ok := top["plan_input"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, errors.New(`no "plan_input" object (docs/capacity.md describes it)`)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var in planInput
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("plan_input: %w", explainJSON(err))
	}
	if err := in.validate(); err != nil {
		return nil, fmt.Errorf("plan_input: %w", err)
	}
	return &in, nil
}

// explainJSON rewords encoding/json's errors to name the plan_input field.
func explainJSON(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s: want a %s, got a JSON %s", te.Field, te.Type, te.Value)
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown field %s (known: %s)", msg, strings.Join(planInputFields(), ", "))
	}
	if errors.Is(err, io.EOF) {
		return errors.New("empty")
	}
	return err
}

func planInputFields() []string {
	return []string{"version", "source", "samples_per_second_per_core", "rf",
		"ingester_samples_per_second_per_core", "distributor_samples_per_second_per_core",
		"rss_bytes_per_series", "bytes_per_sample", "bytes_per_window_1m", "bytes_per_window_1h",
		"wal_bytes_per_sample", "remote_write_bytes_per_sample", "push_bytes_per_sample"}
}

func (in *planInput) validate() error {
	if in.Version != planInputVersion {
		return fmt.Errorf("version %d: this vigil-bench reads version %d (a missing version reads as 0)", in.Version, planInputVersion)
	}
	for _, f := range in.numbers() {
		if f.p != nil && !(*f.p > 0) {
			return fmt.Errorf("%s %v: must be positive", f.name, *f.p)
		}
	}
	cpuAtRF := in.SamplesPerSecondPerCore != nil || in.DistributorSamplesPerSecondPerCore != nil
	switch {
	case in.RF != nil && *in.RF <= 0:
		return fmt.Errorf("rf %d: must be positive", *in.RF)
	case cpuAtRF && in.RF == nil:
		return errors.New("rf is required with samples_per_second_per_core or distributor_samples_per_second_per_core: the replication factor they were measured at")
	case !cpuAtRF && in.RF != nil:
		return errors.New("rf given without samples_per_second_per_core or distributor_samples_per_second_per_core, the figures it qualifies")
	}
	return nil
}

type namedNumber struct {
	name string
	p    *float64
}

func (in *planInput) numbers() []namedNumber {
	return []namedNumber{
		{"samples_per_second_per_core", in.SamplesPerSecondPerCore},
		{"ingester_samples_per_second_per_core", in.IngesterSamplesPerSecondPerCore},
		{"distributor_samples_per_second_per_core", in.DistributorSamplesPerSecondPerCore},
		{"rss_bytes_per_series", in.RSSBytesPerSeries},
		{"bytes_per_sample", in.BytesPerSample},
		{"bytes_per_window_1m", in.BytesPerWindow1m},
		{"bytes_per_window_1h", in.BytesPerWindow1h},
		{"wal_bytes_per_sample", in.WALBytesPerSample},
		{"remote_write_bytes_per_sample", in.RemoteWriteBytesPerSample},
		{"push_bytes_per_sample", in.PushBytesPerSample},
	}
}

// apply returns f with the figures in replaced, each with its source.
// path names the file in the sources.
func (in *planInput) apply(f planFigures, path string) planFigures {
	src := func(field string) string {
		s := fmt.Sprintf("--from %s: %s", path, field)
		if in.Source != "" {
			s += fmt.Sprintf(" (%q)", in.Source)
		}
		return s
	}
	if p := in.SamplesPerSecondPerCore; p != nil {
		ing, fixed, rep := splitCPU(1 / *p, *in.RF)
		s := src(fmt.Sprintf("samples_per_second_per_core %.4g at rf %d, split by the profile's role shares", *p, *in.RF))
		f.ingesterCPU = figure{ing, s}
		f.distFixedCPU, f.distReplicaCPU = figure{fixed, s}, figure{rep, s}
	}
	if p := in.IngesterSamplesPerSecondPerCore; p != nil {
		f.ingesterCPU = figure{1 / *p, src("ingester_samples_per_second_per_core")}
	}
	if p := in.DistributorSamplesPerSecondPerCore; p != nil {
		fixed, rep := splitDistributorCPU(1 / *p, *in.RF)
		s := src(fmt.Sprintf("distributor_samples_per_second_per_core %.4g at rf %d", *p, *in.RF))
		f.distFixedCPU, f.distReplicaCPU = figure{fixed, s}, figure{rep, s}
	}
	set := func(dst *figure, p *float64, field string) {
		if p != nil {
			*dst = figure{*p, src(field)}
		}
	}
	set(&f.rssBytesPerSeries, in.RSSBytesPerSeries, "rss_bytes_per_series")
	set(&f.bytesPerSample, in.BytesPerSample, "bytes_per_sample")
	set(&f.bytesPerWindow1m, in.BytesPerWindow1m, "bytes_per_window_1m")
	set(&f.bytesPerWindow1h, in.BytesPerWindow1h, "bytes_per_window_1h")
	set(&f.walBytesPerSample, in.WALBytesPerSample, "wal_bytes_per_sample")
	set(&f.remoteWriteBytesPerSample, in.RemoteWriteBytesPerSample, "remote_write_bytes_per_sample")
	set(&f.pushBytesPerSample, in.PushBytesPerSample, "push_bytes_per_sample")
	return f
}

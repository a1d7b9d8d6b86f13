package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-tsdb/vigil/api"
	"github.com/vigil-tsdb/vigil/distributor"
	"github.com/vigil-tsdb/vigil/ingester"
	"github.com/vigil-tsdb/vigil/querier"
	"github.com/vigil-tsdb/vigil/storage"
)

// Config is the whole configuration of a vigil process: the YAML file's
// schema, with every field also a flag.
type Config struct {
	Target             string        `yaml:"target"`
	DataDir            string        `yaml:"data_dir"`
	HTTPListenAddress  string        `yaml:"http_listen_address"`
	GRPCListenAddress  string        `yaml:"grpc_listen_address"`
	SelfScrapeInterval time.Duration `yaml:"self_scrape_interval"`
	LogLevel           string        `yaml:"log_level"`
	LogFormat          string        `yaml:"log_format"`

	Storage     storage.Config     `yaml:"storage"`
	Ingester    ingester.Config    `yaml:"ingester"`
	Distributor distributor.Config `yaml:"distributor"`
	Querier     querier.Config     `yaml:"querier"`
	API         api.Config         `yaml:"api"`
}

// DefaultConfig is what `vigil` with no arguments runs.
func DefaultConfig() Config {
	return Config{
		Target:             "all",
		DataDir:            "data",
		HTTPListenAddress:  ":9009",
		GRPCListenAddress:  ":9095",
		SelfScrapeInterval: 15 * time.Second,
		LogLevel:           "info",
		LogFormat:          "logfmt",
		Storage:            storage.DefaultConfig(),
		Ingester:           ingester.DefaultConfig(),
		Distributor:        distributor.DefaultConfig(),
		Querier:            querier.DefaultConfig(),
		API:                api.DefaultConfig(),
	}
}

// RegisterFlags adds every flag, with c's values as defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet, configFile *string) {
	f.StringVar(configFile, "config.file", "", "optional YAML configuration file; flags given on the command line override it")
	f.StringVar(&c.Target, "target", c.Target, `roles to run: "all" (single node: ingester, distributor, querier, API in one process)`)
	f.StringVar(&c.DataDir, "data.dir", c.DataDir, "directory for the WAL and Badger data")
	f.StringVar(&c.HTTPListenAddress, "http.listen-address", c.HTTPListenAddress, "address of the HTTP API, UI and /metrics")
	f.StringVar(&c.GRPCListenAddress, "grpc.listen-address", c.GRPCListenAddress, "address of the gRPC API (ingester service)")
	f.DurationVar(&c.SelfScrapeInterval, "self-scrape.interval", c.SelfScrapeInterval, "how often Vigil scrapes its own /metrics into itself (job=\"vigil\"); 0 disables")
	f.StringVar(&c.LogLevel, "log.level", c.LogLevel, "log level: debug, info, warn, error")
	f.StringVar(&c.LogFormat, "log.format", c.LogFormat, "log format: logfmt or json")
	c.Storage.RegisterFlags(f)
	c.Distributor.RegisterFlags(f)
	c.Querier.RegisterFlags(f)
	c.API.RegisterFlags(f)
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.Target != "all" {
		errs = append(errs, fmt.Errorf("target %q is not supported yet; use \"all\"", c.Target))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data.dir must be set"))
	}
	if c.SelfScrapeInterval < 0 {
		errs = append(errs, errors.New("self-scrape.interval must not be negative"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "logfmt" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log.format %q: want logfmt or json", c.LogFormat))
	}
	for _, err := range []error{c.Storage.Validate(), c.Distributor.Validate(), c.Querier.Validate(), c.API.Validate()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// parseConfig builds the configuration from defaults, then the YAML file
// if -config.file is given, then the flags on the command line.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	cfg, _, err := parseConfigFlags(args, stderr)
	return cfg, err
}

// parseConfigFlags is parseConfig that also returns every flag's final
// value, for /api/v1/status/flags.
func parseConfigFlags(args []string, stderr io.Writer) (Config, map[string]string, error) {
	cfg, fs, err := parseConfigSet(args, stderr)
	flags := map[string]string{}
	if fs != nil {
		fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = f.Value.String() })
	}
	return cfg, flags, err
}

func parseConfigSet(args []string, stderr io.Writer) (Config, *flag.FlagSet, error) {
	cfg := DefaultConfig()
	var file string
	fs := newFlagSet(&cfg, &file, stderr)
	if err := fs.Parse(args); err != nil {
		return cfg, nil, err
	}
	if fs.NArg() > 0 {
		return cfg, nil, fmt.Errorf("unexpected arguments %q (flags only; see -h)", fs.Args())
	}
	if file != "" {
		cfg = DefaultConfig()
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, nil, fmt.Errorf("read config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, nil, fmt.Errorf("parse config file %s: %w", file, err)
		}
		// Flags given explicitly win over the file.
		fs = newFlagSet(&cfg, &file, stderr)
		if err := fs.Parse(args); err != nil {
			return cfg, nil, err
		}
	}
	cfg.Storage.Dir = cfg.DataDir
	if err := cfg.Validate(); err != nil {
		return cfg, nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, fs, nil
}

func newFlagSet(cfg *Config, file *string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: vigil [flags]\n\nWith no flags, runs single-node Vigil: every role in one process, data in ./data,\nHTTP API on :9009, gRPC on :9095.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	cfg.RegisterFlags(fs, file)
	return fs
}

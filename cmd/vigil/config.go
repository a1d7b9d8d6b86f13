package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vigil-tsdb/vigil/alerting"
	"github.com/vigil-tsdb/vigil/api"
	"github.com/vigil-tsdb/vigil/collector"
	"github.com/vigil-tsdb/vigil/compactor"
	"github.com/vigil-tsdb/vigil/distributor"
	"github.com/vigil-tsdb/vigil/ingester"
	"github.com/vigil-tsdb/vigil/querier"
	"github.com/vigil-tsdb/vigil/ring"
	"github.com/vigil-tsdb/vigil/rules"
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

	Storage     storage.Config           `yaml:"storage"`
	Ingester    ingester.Config          `yaml:"ingester"`
	Distributor distributor.Config       `yaml:"distributor"`
	Querier     querier.Config           `yaml:"querier"`
	Compactor   compactor.Config         `yaml:"compactor"`
	API         api.Config               `yaml:"api"`
	Ring        ring.Config              `yaml:"ring"`
	Etcd        EtcdConfig               `yaml:"etcd"`
	Targets     collector.RegistryConfig `yaml:"targets"`
	Rules       rules.Config             `yaml:"rules"`
	Ruler       rules.RulerConfig        `yaml:"ruler"`
	Alerting    alerting.NotifierConfig  `yaml:"alerting"`
	// AlertingConfigFile is a notifier configuration stored in etcd at start.
	AlertingConfigFile string          `yaml:"alerting_config_file"`
	Collector          CollectorConfig `yaml:"collector"`
	SDK                SDKConfig       `yaml:"sdk"`
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
		Compactor:          compactor.DefaultConfig(),
		API:                api.DefaultConfig(),
		Ring:               ring.DefaultConfig(),
		Etcd:               defaultEtcdConfig(),
		Targets:            collector.DefaultRegistryConfig(),
		Rules:              rules.DefaultConfig(),
		Ruler:              rules.DefaultRulerConfig(),
		Alerting:           alerting.DefaultNotifierConfig(),
		Collector:          defaultCollectorConfig(),
		SDK:                defaultSDKConfig(),
	}
}

// RegisterFlags adds every flag, with c's values as defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet, configFile *string) {
	f.StringVar(configFile, "config.file", "", "optional YAML configuration file; flags given on the command line override it")
	f.StringVar(&c.Target, "target", c.Target, `roles to run, comma-separated: ingester, distributor, querier, collector, ruler, etcd, or all. "all" without -memberlist.join is the single node (every role, with an embedded etcd unless -etcd.endpoints is set); in a cluster "all" is ingester,distributor,querier. ruler needs querier and distributor on the same node and an etcd (-etcd.endpoints)`)
	f.StringVar(&c.DataDir, "data.dir", c.DataDir, "directory for the WAL and Badger data")
	f.StringVar(&c.HTTPListenAddress, "http.listen-address", c.HTTPListenAddress, "address of the HTTP API, UI and /metrics")
	f.StringVar(&c.GRPCListenAddress, "grpc.listen-address", c.GRPCListenAddress, "address of the gRPC API (ingester service)")
	f.DurationVar(&c.SelfScrapeInterval, "self-scrape.interval", c.SelfScrapeInterval, "scrape interval of the node's own /metrics, which it registers as a target of job \"vigil\" when it knows an etcd (at least 1s; 0: do not register)")
	f.StringVar(&c.LogLevel, "log.level", c.LogLevel, "log level: debug, info, warn, error")
	f.StringVar(&c.LogFormat, "log.format", c.LogFormat, "log format: logfmt or json")
	c.Storage.RegisterFlags(f)
	c.Ingester.RegisterFlags(f)
	c.Distributor.RegisterFlags(f)
	c.Querier.RegisterFlags(f)
	c.Compactor.RegisterFlags(f)
	c.API.RegisterFlags(f)
	c.Ring.RegisterFlags(f)
	c.Etcd.RegisterFlags(f)
	c.Targets.RegisterFlags(f)
	c.Rules.RegisterFlags(f)
	c.Ruler.RegisterFlags(f)
	c.Alerting.RegisterFlags(f)
	f.StringVar(&c.AlertingConfigFile, "alerting.config-file", c.AlertingConfigFile, "a notifier configuration (route tree, inhibition rules, receivers; YAML, docs/alerting.md) to validate and store in etcd at start, as vigil alerting config upload does; empty: the stored one stays")
	c.Collector.RegisterFlags(f)
	c.SDK.RegisterFlags(f)
}

// parseTarget returns the roles of a -target value.
func parseTarget(target string) (map[string]bool, error) {
	roles := map[string]bool{}
	for _, r := range strings.Split(target, ",") {
		switch r = strings.TrimSpace(r); r {
		case "all":
			roles["ingester"], roles["distributor"], roles["querier"] = true, true, true
		case "ingester", "distributor", "querier", "collector", "ruler", "etcd":
			roles[r] = true
		case "":
		default:
			return nil, fmt.Errorf("target %q: unknown role %q (want ingester, distributor, querier, collector, ruler, etcd or all)", target, r)
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("target %q names no role", target)
	}
	return roles, nil
}

// nodeRoles returns the roles this process runs: the single node adds the
// collector, the ruler (which owns every rule group: no ring), and an
// embedded etcd unless -etcd.endpoints names one.
func (c Config) nodeRoles() map[string]bool {
	roles, err := parseTarget(c.Target)
	if err != nil {
		return map[string]bool{}
	}
	if !c.clusterMode() && strings.TrimSpace(c.Target) == "all" {
		roles["collector"], roles["ruler"] = true, true
		if c.Etcd.Endpoints == "" {
			roles["etcd"] = true
		}
	}
	return roles
}

// clusterMode reports whether the process joins a cluster (memberlist,
// ring, replication) rather than being the single node.
func (c Config) clusterMode() bool {
	roles, err := parseTarget(c.Target)
	if err != nil || (len(roles) == 1 && roles["etcd"]) {
		return false
	}
	return strings.TrimSpace(c.Target) != "all" || len(c.Ring.Join) > 0
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if _, err := parseTarget(c.Target); err != nil {
		errs = append(errs, err)
	}
	roles := c.nodeRoles()
	if roles["etcd"] {
		errs = append(errs, c.Etcd.Validate())
	}
	if c.clusterMode() {
		errs = append(errs, c.Ring.Validate())
		if roles["ingester"] && c.Distributor.ReplicationFactor > 1 && c.Ring.NodeName == "" {
			errs = append(errs, errors.New("memberlist.node-name must be set"))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data.dir must be set"))
	}
	if c.SelfScrapeInterval != 0 && c.SelfScrapeInterval < time.Second {
		errs = append(errs, errors.New("self-scrape.interval must be 0 or at least 1s"))
	}
	if roles["collector"] {
		errs = append(errs, c.Collector.Validate())
	}
	if roles["ruler"] && c.clusterMode() {
		// The ruler evaluates on its own node's querier and writes through
		// its own distributor; its rules are in etcd.
		if !roles["querier"] || !roles["distributor"] {
			errs = append(errs, fmt.Errorf("target %q: the ruler role needs the querier and distributor roles on the same node (e.g. -target=querier,distributor,ruler)", c.Target))
		}
		if c.Etcd.Endpoints == "" && !roles["etcd"] {
			errs = append(errs, errors.New("the ruler role reads its rules from etcd: set -etcd.endpoints"))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "logfmt" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log.format %q: want logfmt or json", c.LogFormat))
	}
	for _, err := range []error{c.Targets.Validate(), c.Rules.Validate(), c.Ruler.Validate(), c.Alerting.Validate(), c.Storage.Validate(), c.Ingester.Validate(), c.Distributor.Validate(), c.Querier.Validate(), c.Compactor.Validate(), c.API.Validate(), c.SDK.Validate()} {
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
	if cfg.Collector.Batch.Spool.Dir == "" {
		cfg.Collector.Batch.Spool.Dir = filepath.Join(cfg.DataDir, "collector", "spool")
	}
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

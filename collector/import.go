package collector

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxImportBytes bounds a Prometheus configuration or file_sd file.
const maxImportBytes = 16 << 20

// ImportOptions control ImportPrometheus.
type ImportOptions struct {
	// BaseDir resolves relative file_sd paths (the configuration's
	// directory, as Prometheus does).
	BaseDir string
	// SkipUnsupported turns fields Vigil does not support (relabelling,
	// service discovery other than static and file) into warnings instead
	// of errors.
	SkipUnsupported bool
	// ReadFile reads file_sd files; nil means os.ReadFile.
	ReadFile func(path string) ([]byte, error)
	// Glob expands file_sd patterns; nil means filepath.Glob.
	Glob func(pattern string) ([]string, error)
}

// Imported is what a Prometheus configuration becomes: one job value per
// scrape_config (its defaults) and its targets, plus warnings about what
// was translated approximately or skipped.
type Imported struct {
	Jobs     []Job
	Targets  []Target
	Warnings []string
}

// promScrapeConfig is the subset of Prometheus' scrape_config that maps to
// the registry. Fields not listed are refused (or skipped, with a warning).
type promScrapeConfig struct {
	JobName        string              `yaml:"job_name"`
	ScrapeInterval string              `yaml:"scrape_interval"`
	ScrapeTimeout  string              `yaml:"scrape_timeout"`
	MetricsPath    string              `yaml:"metrics_path"`
	Scheme         string              `yaml:"scheme"`
	Params         map[string][]string `yaml:"params"`
	HonorLabels    *bool               `yaml:"honor_labels"`
	BasicAuth      *struct {
		Username     string `yaml:"username"`
		Password     string `yaml:"password"`
		PasswordFile string `yaml:"password_file"`
	} `yaml:"basic_auth"`
	BearerToken     string `yaml:"bearer_token"`
	BearerTokenFile string `yaml:"bearer_token_file"`
	TLSConfig       *struct {
		CAFile             string `yaml:"ca_file"`
		CertFile           string `yaml:"cert_file"`
		KeyFile            string `yaml:"key_file"`
		ServerName         string `yaml:"server_name"`
		InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	} `yaml:"tls_config"`
	StaticConfigs []promTargetGroup `yaml:"static_configs"`
	FileSDConfigs []struct {
		Files           []string `yaml:"files"`
		RefreshInterval string   `yaml:"refresh_interval"`
	} `yaml:"file_sd_configs"`
}

type promTargetGroup struct {
	Targets []string          `yaml:"targets" json:"targets"`
	Labels  map[string]string `yaml:"labels" json:"labels"`
}

// supportedScrapeFields are the keys of promScrapeConfig.
var supportedScrapeFields = []string{
	"job_name", "scrape_interval", "scrape_timeout", "metrics_path", "scheme", "params", "honor_labels",
	"basic_auth", "bearer_token", "bearer_token_file", "tls_config", "static_configs", "file_sd_configs",
}

// ignoredScrapeFields change nothing Vigil stores and are dropped with a
// warning even without SkipUnsupported.
var ignoredScrapeFields = []string{"honor_timestamps", "sample_limit", "body_size_limit", "label_limit", "scrape_protocols"}

// ImportPrometheus converts the scrape_configs of a Prometheus
// configuration file (static_configs and file_sd_configs; file_sd files are
// read once, now) into registry jobs and targets. Secrets are references
// in the registry: password_file, bearer_token_file and the tls_config
// files become refs named after the file's base name (copy the files into
// every collector's secrets directory); inline secrets are refused.
func ImportPrometheus(b []byte, opts ImportOptions) (Imported, error) {
	if len(b) > maxImportBytes {
		return Imported{}, fmt.Errorf("configuration is %d bytes, at most %d", len(b), maxImportBytes)
	}
	if opts.ReadFile == nil {
		opts.ReadFile = os.ReadFile
	}
	if opts.Glob == nil {
		opts.Glob = filepath.Glob
	}
	var doc struct {
		Global struct {
			ScrapeInterval string `yaml:"scrape_interval"`
			ScrapeTimeout  string `yaml:"scrape_timeout"`
		} `yaml:"global"`
		ScrapeConfigs []yaml.Node `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Imported{}, fmt.Errorf("parse Prometheus configuration: %w", err)
	}
	var out Imported
	seen := map[string]bool{}
	for i := range doc.ScrapeConfigs {
		n := &doc.ScrapeConfigs[i]
		where := fmt.Sprintf("scrape_configs[%d] (line %d)", i, n.Line)
		var sc promScrapeConfig
		if err := n.Decode(&sc); err != nil {
			return Imported{}, fmt.Errorf("%s: %w", where, err)
		}
		if sc.JobName == "" {
			return Imported{}, fmt.Errorf("%s: job_name is missing", where)
		}
		where = fmt.Sprintf("job %q (line %d)", sc.JobName, n.Line)
		if seen[sc.JobName] {
			return Imported{}, fmt.Errorf("%s: job_name given twice", where)
		}
		seen[sc.JobName] = true
		if err := checkFields(n, where, opts.SkipUnsupported, &out.Warnings); err != nil {
			return Imported{}, err
		}
		job, err := importJob(sc, doc.Global.ScrapeInterval, doc.Global.ScrapeTimeout, where, &out.Warnings)
		if err != nil {
			return Imported{}, err
		}
		groups := slices.Clone(sc.StaticConfigs)
		for _, fsd := range sc.FileSDConfigs {
			gs, err := readFileSD(fsd.Files, opts, where)
			if err != nil {
				return Imported{}, err
			}
			groups = append(groups, gs...)
		}
		if len(sc.FileSDConfigs) > 0 {
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s: file_sd_configs were read once, now; later changes to those files are not followed (re-run the import or register the targets)", where))
		}
		out.Jobs = append(out.Jobs, job)
		for _, g := range groups {
			for _, addr := range g.Targets {
				t := Target{Job: sc.JobName, Address: addr}
				if len(g.Labels) > 0 {
					t.Labels = map[string]string{}
					for k, v := range g.Labels {
						t.Labels[k] = v
					}
				}
				if err := t.normalize(); err != nil {
					return Imported{}, fmt.Errorf("%s: target %q: %w", where, addr, err)
				}
				if _, err := Resolve(t, &job); err != nil {
					return Imported{}, fmt.Errorf("%s: target %q: %w", where, addr, err)
				}
				out.Targets = append(out.Targets, t)
			}
		}
	}
	if len(doc.ScrapeConfigs) == 0 {
		return Imported{}, errors.New("the configuration has no scrape_configs")
	}
	return out, nil
}

// checkFields refuses (or warns about) scrape_config keys Vigil does not
// translate.
func checkFields(n *yaml.Node, where string, skip bool, warnings *[]string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: not a mapping", where)
	}
	var unsupported []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		switch {
		case slices.Contains(supportedScrapeFields, k):
		case slices.Contains(ignoredScrapeFields, k):
			*warnings = append(*warnings, fmt.Sprintf("%s: %s is not imported (Vigil's collectors use their own limits)", where, k))
		default:
			unsupported = append(unsupported, fmt.Sprintf("%s (line %d)", k, n.Content[i].Line))
		}
	}
	if len(unsupported) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s: not supported by the registry: %s (only static_configs and file_sd_configs targets with their labels; no relabelling)", where, strings.Join(unsupported, ", "))
	if !skip {
		return errors.New(msg + "; use -skip-unsupported to import the rest")
	}
	*warnings = append(*warnings, msg+": skipped")
	return nil
}

func importJob(sc promScrapeConfig, globalInterval, globalTimeout, where string, warnings *[]string) (Job, error) {
	j := Job{Name: sc.JobName}
	c := &j.ScrapeConfig
	var err error
	if iv := first(sc.ScrapeInterval, globalInterval); iv != "" {
		if c.Interval, err = parseDuration(iv); err != nil {
			return Job{}, fmt.Errorf("%s: scrape_interval: %w", where, err)
		}
	}
	if to := first(sc.ScrapeTimeout, globalTimeout); to != "" {
		if c.Timeout, err = parseDuration(to); err != nil {
			return Job{}, fmt.Errorf("%s: scrape_timeout: %w", where, err)
		}
		if c.Interval != 0 && c.Timeout > c.Interval {
			c.Timeout = c.Interval // Prometheus caps the global timeout at the job's interval too
		}
	}
	c.MetricsPath, c.Scheme, c.HonorLabels = sc.MetricsPath, sc.Scheme, sc.HonorLabels
	if len(sc.Params) > 0 {
		c.Params = sc.Params
	}
	secret := func(field, path string) string {
		name := filepath.Base(path)
		*warnings = append(*warnings, fmt.Sprintf("%s: %s %s became the secret reference %q: copy the file into every collector's secrets directory under that name", where, field, path, name))
		return name
	}
	if ba := sc.BasicAuth; ba != nil {
		if ba.Password != "" {
			return Job{}, fmt.Errorf("%s: basic_auth.password is inline; the registry holds no secrets: use password_file", where)
		}
		if ba.PasswordFile == "" {
			return Job{}, fmt.Errorf("%s: basic_auth needs password_file", where)
		}
		c.BasicAuth = &BasicAuth{Username: ba.Username, PasswordRef: secret("basic_auth.password_file", ba.PasswordFile)}
	}
	if sc.BearerToken != "" {
		return Job{}, fmt.Errorf("%s: bearer_token is inline; the registry holds no secrets: use bearer_token_file", where)
	}
	if sc.BearerTokenFile != "" {
		c.BearerTokenRef = secret("bearer_token_file", sc.BearerTokenFile)
	}
	if tc := sc.TLSConfig; tc != nil {
		c.TLS = &TLSConfig{ServerName: tc.ServerName, InsecureSkipVerify: tc.InsecureSkipVerify}
		if tc.CAFile != "" {
			c.TLS.CARef = secret("tls_config.ca_file", tc.CAFile)
		}
		if tc.CertFile != "" {
			c.TLS.CertRef = secret("tls_config.cert_file", tc.CertFile)
		}
		if tc.KeyFile != "" {
			c.TLS.KeyRef = secret("tls_config.key_file", tc.KeyFile)
		}
	}
	if err := validateName(j.Name); err != nil {
		return Job{}, fmt.Errorf("%s: job_name: %w", where, err)
	}
	if _, err := Resolve(Target{Job: j.Name, Address: "check:1"}, &j); err != nil {
		return Job{}, fmt.Errorf("%s: %w", where, err)
	}
	return j, nil
}

// readFileSD reads file_sd files (JSON or YAML lists of target groups).
func readFileSD(patterns []string, opts ImportOptions, where string) ([]promTargetGroup, error) {
	var out []promTargetGroup
	for _, p := range patterns {
		if !filepath.IsAbs(p) && opts.BaseDir != "" {
			p = filepath.Join(opts.BaseDir, p)
		}
		files, err := opts.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("%s: file_sd pattern %q: %w", where, p, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: file_sd pattern %q matches no file", where, p)
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := opts.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			gs, err := decodeFileSD(b)
			if err != nil {
				return nil, fmt.Errorf("%s: file_sd file %s: %w", where, f, err)
			}
			out = append(out, gs...)
		}
	}
	return out, nil
}

// decodeFileSD decodes one file_sd file: a list of {targets, labels}, in
// JSON or YAML, strictly (unknown keys are errors).
func decodeFileSD(b []byte) ([]promTargetGroup, error) {
	if len(b) > maxImportBytes {
		return nil, fmt.Errorf("%d bytes, at most %d", len(b), maxImportBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var gs []promTargetGroup
	if err := dec.Decode(&gs); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	for i, g := range gs {
		if len(g.Targets) == 0 {
			return nil, fmt.Errorf("group %d has no targets", i)
		}
	}
	return gs, nil
}

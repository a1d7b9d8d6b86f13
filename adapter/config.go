package adapter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Config is the rules file (docs/kubernetes.md, "Rules"). The zero value
// is the default naming scheme alone.
type Config struct {
	// RateWindow is the range of rate() for counters under the default
	// naming (default 2m).
	RateWindow Duration `yaml:"rateWindow"`
	// DisableDefaults turns the default naming scheme off: only Rules.
	DisableDefaults bool           `yaml:"disableDefaults"`
	Rules           []Rule         `yaml:"rules"`
	External        []ExternalRule `yaml:"external"`
}

// Rule exposes the series matching SeriesQuery as custom metrics.
type Rule struct {
	SeriesQuery  string   `yaml:"seriesQuery"`
	Resources    []string `yaml:"resources"`
	Name         NameRule `yaml:"name"`
	MetricsQuery string   `yaml:"metricsQuery"`

	matchers []string           // SeriesQuery's matchers, rendered
	tmpl     *template.Template // MetricsQuery, nil: the default naming's query
	re       *regexp.Regexp     // Name.Matches, nil: the default naming
}

// NameRule maps series names to metric names.
type NameRule struct {
	Matches string `yaml:"matches"`
	As      string `yaml:"as"`
}

// ExternalRule exposes a PromQL expression as an external metric.
type ExternalRule struct {
	Name       string `yaml:"name"`
	Query      string `yaml:"query"`
	Namespaced bool   `yaml:"namespaced"`

	expr parser.Expr
}

// Duration is a time.Duration written as "2m" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 2m", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ConfigError is a rules file error with its line (0: the whole file).
type ConfigError struct {
	File  string
	Line  int
	Field string // "rules[0].metricsQuery"
	Err   error
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// LoadConfig reads and validates a rules file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rules file: %w", err)
	}
	return ParseConfig(path, b)
}

var (
	yamlLineRE   = regexp.MustCompile(`^line (\d+): (.*)$`)
	metricNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_.-]*[a-z0-9])?$`)
	promParser   = parser.NewParser(parser.Options{})
)

// ParseConfig decodes b strictly (unknown and duplicate keys are errors)
// and validates every rule: selectors and PromQL parse, templates render,
// names are valid and unique. name is used in error messages.
func ParseConfig(name string, b []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &ConfigError{File: name, Line: extra.Line, Err: errors.New("more than one YAML document")}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, yamlError(name, err)
	}
	if cfg.RateWindow == 0 {
		cfg.RateWindow = Duration(2 * time.Minute)
	}
	fail := func(err error, path ...any) error {
		return &ConfigError{File: name, Line: lineOf(&root, path...), Field: fieldName(path), Err: err}
	}
	if cfg.RateWindow < Duration(time.Second) {
		return nil, fail(fmt.Errorf("%v is shorter than 1s", time.Duration(cfg.RateWindow)), "rateWindow")
	}
	for i := range cfg.Rules {
		if err := cfg.Rules[i].compile(fail, i); err != nil {
			return nil, err
		}
	}
	seen := map[string]int{}
	for i := range cfg.External {
		e := &cfg.External[i]
		if !metricNameRE.MatchString(e.Name) {
			return nil, fail(fmt.Errorf("%q is not a valid metric name (lower case letters, digits, '_', '.', '-')", e.Name), "external", i, "name")
		}
		if j, ok := seen[e.Name]; ok {
			return nil, fail(fmt.Errorf("%q is already the name of external[%d]", e.Name, j), "external", i, "name")
		}
		seen[e.Name] = i
		if strings.TrimSpace(e.Query) == "" {
			return nil, fail(errors.New("missing"), "external", i, "query")
		}
		expr, err := promParser.ParseExpr(e.Query)
		if err != nil {
			return nil, fail(fmt.Errorf("not valid PromQL: %v", err), "external", i, "query")
		}
		if len(selectorsOf(expr)) == 0 {
			return nil, fail(errors.New("has no series selector: the HPA's selector could not apply and its freshness could not be known"), "external", i, "query")
		}
		e.expr = expr
	}
	return &cfg, nil
}

func (r *Rule) compile(fail func(error, ...any) error, i int) error {
	if strings.TrimSpace(r.SeriesQuery) == "" {
		return fail(errors.New("missing"), "rules", i, "seriesQuery")
	}
	ms, err := promParser.ParseMetricSelector(r.SeriesQuery)
	if err != nil {
		return fail(fmt.Errorf("not a series selector: %v", err), "rules", i, "seriesQuery")
	}
	for _, m := range ms {
		r.matchers = append(r.matchers, m.String())
	}
	if len(r.Resources) == 0 {
		for _, res := range knownResources {
			r.Resources = append(r.Resources, res.label)
		}
	}
	seen := map[string]bool{}
	for j, l := range r.Resources {
		if resourceByLabel(l) == nil {
			return fail(fmt.Errorf("unknown object label %q; known: %s", l, knownLabels()), "rules", i, "resources", j)
		}
		if seen[l] {
			return fail(fmt.Errorf("%q listed twice", l), "rules", i, "resources", j)
		}
		seen[l] = true
	}
	if r.Name.Matches != "" {
		if r.re, err = regexp.Compile(r.Name.Matches); err != nil {
			return fail(fmt.Errorf("not a regexp: %v", err), "rules", i, "name", "matches")
		}
		if r.Name.As == "" {
			return fail(errors.New("missing: what to name the matching series"), "rules", i, "name")
		}
	} else if r.Name.As != "" {
		return fail(errors.New("as without matches"), "rules", i, "name", "as")
	}
	if r.MetricsQuery == "" {
		return nil
	}
	if !strings.Contains(r.MetricsQuery, "<<.LabelMatchers>>") {
		return fail(errors.New("template must use <<.LabelMatchers>> (the object and the selectors)"), "rules", i, "metricsQuery")
	}
	if !strings.Contains(r.MetricsQuery, "<<.GroupBy>>") {
		return fail(errors.New("template must use <<.GroupBy>> (one value per object)"), "rules", i, "metricsQuery")
	}
	r.tmpl, err = template.New("metricsQuery").Delims("<<", ">>").Option("missingkey=error").Parse(r.MetricsQuery)
	if err != nil {
		return fail(fmt.Errorf("template: %v", strings.TrimPrefix(err.Error(), "template: ")), "rules", i, "metricsQuery")
	}
	// Render with sample values: the result must be PromQL.
	q, err := render(r.tmpl, "some_metric", []string{`namespace="ns"`, `pod="p"`}, []string{"pod", "namespace"})
	if err != nil {
		return fail(err, "rules", i, "metricsQuery")
	}
	if _, err := promParser.ParseExpr(q); err != nil {
		return fail(fmt.Errorf("renders to invalid PromQL %q: %v", q, err), "rules", i, "metricsQuery")
	}
	return nil
}

// templateData is what a metricsQuery template sees.
type templateData struct {
	Series        string
	LabelMatchers string
	GroupBy       string
}

func render(t *template.Template, series string, matchers, groupBy []string) (string, error) {
	var b strings.Builder
	err := t.Execute(&b, templateData{Series: series, LabelMatchers: strings.Join(matchers, ","), GroupBy: strings.Join(groupBy, ",")})
	if err != nil {
		return "", fmt.Errorf("template: %v", strings.TrimPrefix(err.Error(), "template: "))
	}
	return b.String(), nil
}

// yamlError turns yaml.v3's "yaml: unmarshal errors:\n  line 3: ..." into
// a ConfigError with the first line number.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			var line int
			fmt.Sscan(m[1], &line)
			return &ConfigError{File: name, Line: line, Err: errors.New(m[2])}
		}
		return &ConfigError{File: name, Err: errors.New(msg)}
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		var line int
		fmt.Sscan(m[1], &line)
		return &ConfigError{File: name, Line: line, Err: errors.New(m[2])}
	}
	return &ConfigError{File: name, Err: errors.New(msg)}
}

// lineOf finds the line of a path (map keys and sequence indexes) in a
// YAML document: the value's line, or the nearest ancestor's.
func lineOf(root *yaml.Node, path ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for j := 0; j+1 < len(n.Content); j += 2 {
					if n.Content[j].Value == k {
						next = n.Content[j+1]
						line = n.Content[j].Line
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
		if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
			line = n.Line
		}
	}
	return line
}

func fieldName(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	return b.String()
}

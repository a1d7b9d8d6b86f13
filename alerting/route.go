package alerting

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Route defaults, as Alertmanager's.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
)

// RoutingConfig is the notifier's configuration file: the route tree, the
// inhibition rules and the receivers (Config), in the spirit of
// Alertmanager's:
//
//	route:
//	  receiver: ops
//	  group_by: [alertname, job]
//	  routes:
//	    - matchers: ['severity="page"']
//	      receiver: pager
//	inhibit_rules:
//	  - source_matchers: ['severity="page"']
//	    target_matchers: ['severity="warning"']
//	    equal: [alertname]
//	receivers: [...]
type RoutingConfig struct {
	Route        *Route         `yaml:"route" json:"route"`
	InhibitRules []*InhibitRule `yaml:"inhibit_rules,omitempty" json:"inhibit_rules,omitempty"`
	Config       `yaml:",inline"`
}

// Route is one node of the routing tree. Unset fields are inherited from
// the parent; the root's defaults are Alertmanager's.
type Route struct {
	Receiver       string         `yaml:"receiver,omitempty" json:"receiver,omitempty"`
	GroupBy        []string       `yaml:"group_by,omitempty" json:"group_by,omitempty"`
	GroupWait      *time.Duration `yaml:"group_wait,omitempty" json:"group_wait,omitempty"`
	GroupInterval  *time.Duration `yaml:"group_interval,omitempty" json:"group_interval,omitempty"`
	RepeatInterval *time.Duration `yaml:"repeat_interval,omitempty" json:"repeat_interval,omitempty"`
	// Matchers are Prometheus label matchers (`severity="page"`,
	// `job=~"node|db"`), all of which an alert must match. The root
	// route matches every alert and takes none.
	Matchers Matchers `yaml:"matchers,omitempty" json:"matchers,omitempty"`
	// Continue: after this route matched, the following siblings are tried
	// too.
	Continue bool     `yaml:"continue,omitempty" json:"continue,omitempty"`
	Routes   []*Route `yaml:"routes,omitempty" json:"routes,omitempty"`

	// Set by ParseRoutingConfig: the path from the root ("0", "0.1", …) and
	// the values inherited.
	id       string
	groupAll bool // group_by: ['...']
	opts     routeOpts
}

// routeOpts are a route's effective settings, inheritance applied.
type routeOpts struct {
	receiver                                 string
	groupBy                                  []string
	groupWait, groupInterval, repeatInterval time.Duration
}

// InhibitRule mutes the alerts matching TargetMatchers while an alert
// matching SourceMatchers fires with the same values of the Equal labels.
type InhibitRule struct {
	SourceMatchers Matchers `yaml:"source_matchers" json:"source_matchers"`
	TargetMatchers Matchers `yaml:"target_matchers" json:"target_matchers"`
	Equal          []string `yaml:"equal,omitempty" json:"equal,omitempty"`
}

// Matchers is a list of label matchers, each written as in a Prometheus
// selector (`name="value"`, `!=`, `=~`, `!~`); one string may hold several,
// comma-separated. They are parsed by Prometheus' selector parser.
type Matchers []string

// parseMatchers parses each string as the inside of a selector.
func parseMatchers(ms Matchers) ([]*labels.Matcher, error) {
	var out []*labels.Matcher
	for _, s := range ms {
		got, err := selectorParser.ParseMetricSelector("{" + s + "}")
		if err != nil {
			return nil, fmt.Errorf("matcher %q: %w", s, err)
		}
		if len(got) == 0 {
			return nil, fmt.Errorf("matcher %q: empty", s)
		}
		out = append(out, got...)
	}
	return out, nil
}

var selectorParser = parser.NewParser(parser.Options{})

// matchAll reports whether kv satisfies every matcher (a missing label is
// the empty value, as in Prometheus).
func matchAll(ms []*labels.Matcher, kv KV) bool {
	for _, m := range ms {
		if !m.Matches(kv[m.Name]) {
			return false
		}
	}
	return true
}

// compiledRoute is a Route with its matchers parsed.
type compiledRoute struct {
	*Route
	matchers []*labels.Matcher
	children []*compiledRoute
}

// compiledInhibit is an InhibitRule with its matchers parsed.
type compiledInhibit struct {
	source, target []*labels.Matcher
	equal          []string
}

// ParseRoutingConfig decodes the notifier's YAML strictly (an unknown field
// is an error with its line), fills in defaults and validates routes,
// matchers, inhibition rules and receivers; every route's receiver must
// exist. Every problem is reported with its line and path.
func ParseRoutingConfig(data []byte) (*RoutingConfig, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse notifier config: %w", err)
	}
	cfg := &RoutingConfig{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse notifier config: %w", err)
	}
	cfg.SetDefaults()
	if err := cfg.validateRouting(&root); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadRoutingFile reads and parses the notifier's configuration file.
func LoadRoutingFile(path string) (*RoutingConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read notifier config: %w", err)
	}
	cfg, err := ParseRoutingConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks a RoutingConfig with defaults set (SetDefaults).
func (c *RoutingConfig) Validate() error { return c.validateRouting(nil) }

func (c *RoutingConfig) validateRouting(root *yaml.Node) error {
	var list []problem
	ck := checker{list: &list}
	if err := c.Config.validate(root); err != nil {
		// Receivers' problems come back as joined ConfigErrors with lines.
		var errs []error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		} else {
			errs = []error{err}
		}
		return errors.Join(append(errs, c.routeProblems(root, ck, &list)...)...)
	}
	if errs := c.routeProblems(root, ck, &list); len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}

func (c *RoutingConfig) routeProblems(root *yaml.Node, ck checker, list *[]problem) []error {
	if c.Route == nil {
		ck.errorf("route", "missing route")
	} else {
		c.checkRoute(ck.in("route"), c.Route, true)
	}
	for i, r := range c.InhibitRules {
		ic := ck.in("inhibit_rules", i)
		if r == nil {
			ic.errorf("", "empty inhibit rule")
			continue
		}
		if len(r.SourceMatchers) == 0 {
			ic.errorf("source_matchers", "missing source_matchers")
		} else if _, err := parseMatchers(r.SourceMatchers); err != nil {
			ic.errorf("source_matchers", "%v", err)
		}
		if len(r.TargetMatchers) == 0 {
			ic.errorf("target_matchers", "missing target_matchers")
		} else if _, err := parseMatchers(r.TargetMatchers); err != nil {
			ic.errorf("target_matchers", "%v", err)
		}
		for j, l := range r.Equal {
			if !labelName.MatchString(l) {
				ic.in("equal", j).errorf("", "%q is not a valid label name", l)
			}
		}
	}
	errs := make([]error, len(*list))
	for i, p := range *list {
		errs[i] = &ConfigError{Line: lineOf(root, p.path), Path: formatPath(p.path), Msg: p.msg}
	}
	return errs
}

func (c *RoutingConfig) checkRoute(ck checker, r *Route, isRoot bool) {
	if r == nil {
		ck.errorf("", "empty route")
		return
	}
	if isRoot && len(r.Matchers) > 0 {
		ck.errorf("matchers", "the root route matches every alert and takes no matchers")
	}
	if isRoot && r.Continue {
		ck.errorf("continue", "the root route cannot continue")
	}
	if _, err := parseMatchers(r.Matchers); err != nil {
		ck.errorf("matchers", "%v", err)
	}
	switch {
	case r.Receiver == "" && isRoot:
		ck.errorf("receiver", "the root route needs a receiver")
	case r.Receiver != "" && c.Receiver(r.Receiver) == nil:
		ck.errorf("receiver", "receiver %q is not defined in receivers", r.Receiver)
	}
	seen := map[string]bool{}
	for i, l := range r.GroupBy {
		switch {
		case l == "...":
			if len(r.GroupBy) > 1 {
				ck.in("group_by", i).errorf("", "'...' groups by all labels and must be alone")
			}
		case !labelName.MatchString(l):
			ck.in("group_by", i).errorf("", "%q is not a valid label name", l)
		case seen[l]:
			ck.in("group_by", i).errorf("", "label %q listed twice", l)
		}
		seen[l] = true
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
	}{{"group_wait", r.GroupWait}, {"group_interval", r.GroupInterval}, {"repeat_interval", r.RepeatInterval}} {
		if d.v != nil && (*d.v < 0 || (*d.v == 0 && d.field != "group_wait")) {
			ck.errorf(d.field, "%s must be positive, got %s", d.field, *d.v)
		}
	}
	for i, ch := range r.Routes {
		c.checkRoute(ck.in("routes", i), ch, false)
	}
}

// SetDefaults fills in the receivers' defaults and each route's effective
// settings (inherited from its parent, Alertmanager's defaults at the root).
func (c *RoutingConfig) SetDefaults() {
	c.Config.SetDefaults()
	if c.Route == nil {
		return
	}
	c.Route.setDefaults(routeOpts{groupWait: DefaultGroupWait, groupInterval: DefaultGroupInterval, repeatInterval: DefaultRepeatInterval}, "0")
}

func (r *Route) setDefaults(parent routeOpts, id string) {
	r.id = id
	o := parent
	if r.Receiver != "" {
		o.receiver = r.Receiver
	}
	if r.GroupBy != nil {
		o.groupBy = slices.Clone(r.GroupBy)
		slices.Sort(o.groupBy)
	}
	if r.GroupWait != nil {
		o.groupWait = *r.GroupWait
	}
	if r.GroupInterval != nil {
		o.groupInterval = *r.GroupInterval
	}
	if r.RepeatInterval != nil {
		o.repeatInterval = *r.RepeatInterval
	}
	r.groupAll = slices.Contains(o.groupBy, "...")
	r.opts = o
	for i, ch := range r.Routes {
		if ch != nil {
			ch.setDefaults(o, fmt.Sprintf("%s.%d", id, i))
		}
	}
}

// compile parses the matchers of a validated config.
func (c *RoutingConfig) compile() (*compiledRoute, []compiledInhibit, error) {
	root, err := compileRoute(c.Route)
	if err != nil {
		return nil, nil, err
	}
	var inh []compiledInhibit
	for i, r := range c.InhibitRules {
		s, err := parseMatchers(r.SourceMatchers)
		if err != nil {
			return nil, nil, fmt.Errorf("inhibit_rules[%d]: %w", i, err)
		}
		t, err := parseMatchers(r.TargetMatchers)
		if err != nil {
			return nil, nil, fmt.Errorf("inhibit_rules[%d]: %w", i, err)
		}
		inh = append(inh, compiledInhibit{source: s, target: t, equal: r.Equal})
	}
	return root, inh, nil
}

func compileRoute(r *Route) (*compiledRoute, error) {
	ms, err := parseMatchers(r.Matchers)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", r.id, err)
	}
	cr := &compiledRoute{Route: r, matchers: ms}
	for _, ch := range r.Routes {
		cc, err := compileRoute(ch)
		if err != nil {
			return nil, err
		}
		cr.children = append(cr.children, cc)
	}
	return cr, nil
}

// match returns the routes an alert goes to, depth first as Alertmanager:
// the deepest matching routes, the first matching sibling unless it
// continues.
func (r *compiledRoute) match(kv KV) []*compiledRoute {
	if !matchAll(r.matchers, kv) {
		return nil
	}
	var out []*compiledRoute
	for _, ch := range r.children {
		got := ch.match(kv)
		out = append(out, got...)
		if len(got) > 0 && !ch.Continue {
			break
		}
	}
	if len(out) == 0 {
		out = []*compiledRoute{r}
	}
	return out
}

// groupLabels returns the labels of kv that the route groups by.
func (r *compiledRoute) groupLabels(kv KV) KV {
	out := KV{}
	if r.groupAll {
		for k, v := range kv {
			out[k] = v
		}
		return out
	}
	for _, l := range r.opts.groupBy {
		if v, ok := kv[l]; ok && v != "" {
			out[l] = v
		}
	}
	return out
}

// matchersString renders a route's matchers as Alertmanager renders route
// keys: {a="b",c=~"d"}.
func (r *compiledRoute) matchersString() string {
	parts := make([]string, len(r.matchers))
	for i, m := range r.matchers {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// groupKey is the aggregation group's identity: the route and the group
// labels, "<route id>{matchers}:{labels}".
func groupKey(r *compiledRoute, gl KV) string {
	var b strings.Builder
	b.WriteString(r.id)
	b.WriteString(r.matchersString())
	b.WriteString(":{")
	for i, p := range gl.SortedPairs() {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", p.Name, p.Value)
	}
	b.WriteString("}")
	return b.String()
}

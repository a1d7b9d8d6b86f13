package adapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	kresource "k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	"k8s.io/metrics/pkg/apis/external_metrics"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
)

// Options are the provider's knobs besides the rules file.
type Options struct {
	RefreshInterval time.Duration    // rediscovery period (default 1m)
	DiscoveryWindow time.Duration    // a series counts if it has a sample this recent (default 10m)
	MaxAge          time.Duration    // values use samples this recent; older objects are errors (default 5m)
	DiscoveryLimit  int              // metric names kept per discovery query (default 10000)
	Now             func() time.Time // the clock: query and freshness time (default time.Now)
}

func (o *Options) defaults() {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = time.Minute
	}
	if o.DiscoveryWindow <= 0 {
		o.DiscoveryWindow = 10 * time.Minute
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 5 * time.Minute
	}
	if o.DiscoveryLimit <= 0 {
		o.DiscoveryLimit = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// defaultLookback is Vigil's (and Prometheus') default lookback delta.
// Freshness is looked up over MaxAge plus this, so that a value just
// older than MaxAge is found, reported stale and logged rather than
// missing.
const defaultLookback = 5 * time.Minute

// Provider serves custom and external metrics from Vigil. Its methods
// are safe for concurrent use; Run refreshes the list of custom metrics.
type Provider struct {
	client *Client
	cfg    *Config
	opts   Options
	log    *slog.Logger

	mu      sync.RWMutex
	metrics map[metricKey]*metricDef    // guarded by mu; replaced whole by refresh
	list    []provider.CustomMetricInfo // guarded by mu; never mutated once published

	external     map[string]*ExternalRule // immutable
	externalList []provider.ExternalMetricInfo
}

var (
	_ provider.CustomMetricsProvider   = (*Provider)(nil)
	_ provider.ExternalMetricsProvider = (*Provider)(nil)
)

type metricKey struct {
	gr   schema.GroupResource
	name string
}

// metricDef is how one discovered metric of one resource is queried.
type metricDef struct {
	series  string
	res     *resource
	counter bool               // default query: rate() of a counter
	tmpl    *template.Template // a rule's metricsQuery; nil: the default query
	extra   []string           // a rule's seriesQuery matchers other than the name
}

// NewProvider returns a provider over client with cfg (nil: the default
// naming alone). It discovers nothing until Refresh or Run.
func NewProvider(cfg *Config, client *Client, opts Options, logger *slog.Logger) *Provider {
	if cfg == nil {
		cfg = &Config{RateWindow: Duration(2 * time.Minute)}
	}
	opts.defaults()
	p := &Provider{client: client, cfg: cfg, opts: opts, log: logger, metrics: map[metricKey]*metricDef{}, external: map[string]*ExternalRule{}}
	for i := range cfg.External {
		e := &cfg.External[i]
		p.external[e.Name] = e
		p.externalList = append(p.externalList, provider.ExternalMetricInfo{Metric: e.Name})
	}
	return p
}

// Run refreshes the metric list now and every RefreshInterval until ctx
// is done. A failed refresh keeps the previous list and is logged.
func (p *Provider) Run(ctx context.Context) error {
	t := time.NewTicker(p.opts.RefreshInterval)
	defer t.Stop()
	for {
		if err := p.Refresh(ctx); err != nil && ctx.Err() == nil {
			p.log.Error("metric discovery failed; keeping the previous list", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Refresh rediscovers the custom metrics from the series Vigil has seen
// in the discovery window.
func (p *Provider) Refresh(ctx context.Context) error {
	now := p.opts.Now()
	defs := map[metricKey]*metricDef{}
	if !p.cfg.DisableDefaults {
		for _, res := range knownResources {
			names, err := p.discover(ctx, res.discoverySelector(nil), now, "resource", res.gr.String())
			if err != nil {
				return fmt.Errorf("discover %s metrics: %w", res.gr, err)
			}
			gauges := map[string]bool{}
			for _, n := range names {
				if !strings.HasSuffix(n, "_total") {
					gauges[n] = true
					defs[metricKey{res.gr, n}] = &metricDef{series: n, res: res}
				}
			}
			for _, n := range names {
				if name, ok := strings.CutSuffix(n, "_total"); ok && name != "" {
					if gauges[name] {
						p.log.Debug("counter not exposed: a gauge has its name", "series", n, "resource", res.gr.String())
						continue
					}
					defs[metricKey{res.gr, name}] = &metricDef{series: n, res: res, counter: true}
				}
			}
		}
	}
	byRule := map[metricKey]bool{}
	for i := range p.cfg.Rules {
		r := &p.cfg.Rules[i]
		var extra []string
		for _, m := range r.matchers {
			if !strings.HasPrefix(m, model.MetricNameLabel) {
				extra = append(extra, m)
			}
		}
		for _, l := range r.Resources {
			res := resourceByLabel(l)
			names, err := p.discover(ctx, res.discoverySelector(r.matchers), now, "rule", i, "resource", res.gr.String())
			if err != nil {
				return fmt.Errorf("discover metrics of rules[%d] for %s: %w", i, res.gr, err)
			}
			for _, n := range names {
				// A counter is a counter whatever the rule calls it: without a
				// metricsQuery it is served as a rate.
				_, counter := strings.CutSuffix(n, "_total")
				name := n
				if r.re != nil {
					if !r.re.MatchString(n) {
						continue
					}
					name = r.re.ReplaceAllString(n, r.Name.As)
					if !metricNameRE.MatchString(name) {
						p.log.Warn("rule names a series with an invalid metric name; skipped", "rule", i, "series", n, "name", name,
							"want", "lower case letters, digits, '_', '.', '-'")
						continue
					}
				} else if cut, ok := strings.CutSuffix(n, "_total"); ok && cut != "" {
					name = cut
				}
				k := metricKey{res.gr, name}
				if byRule[k] {
					continue // the first rule wins
				}
				byRule[k] = true
				defs[k] = &metricDef{series: n, res: res, counter: counter && r.tmpl == nil, tmpl: r.tmpl, extra: extra}
			}
		}
	}
	list := make([]provider.CustomMetricInfo, 0, len(defs))
	for k, d := range defs {
		list = append(list, provider.CustomMetricInfo{GroupResource: k.gr, Namespaced: d.res.namespaced, Metric: k.name})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].GroupResource != list[j].GroupResource {
			return list[i].GroupResource.String() < list[j].GroupResource.String()
		}
		return list[i].Metric < list[j].Metric
	})
	p.mu.Lock()
	p.metrics, p.list = defs, list
	p.mu.Unlock()
	p.log.Debug("metric discovery done", "metrics", len(list))
	return nil
}

// discover returns the metric names of the series matching selector with
// a sample in the discovery window, at most DiscoveryLimit of them (the
// first in name order); a cut list is logged. what names the query in
// the log.
func (p *Provider) discover(ctx context.Context, selector string, now time.Time, what ...any) ([]string, error) {
	names, err := p.client.MetricNames(ctx, selector, now, p.opts.DiscoveryWindow)
	if err != nil {
		return nil, err
	}
	if len(names) > p.opts.DiscoveryLimit {
		p.log.Warn("too many metric names; list cut", append(what, "selector", selector, "names", len(names), "kept", p.opts.DiscoveryLimit, "dropped", len(names)-p.opts.DiscoveryLimit)...)
		names = names[:p.opts.DiscoveryLimit]
	}
	return names, nil
}

// ListAllMetrics implements provider.CustomMetricsProvider.
func (p *Provider) ListAllMetrics() []provider.CustomMetricInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.list
}

// ListAllExternalMetrics implements provider.ExternalMetricsProvider.
func (p *Provider) ListAllExternalMetrics() []provider.ExternalMetricInfo {
	return p.externalList
}

func (p *Provider) lookup(info provider.CustomMetricInfo) (*metricDef, error) {
	res := resourceFor(info.GroupResource)
	if res == nil {
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	p.mu.RLock()
	d := p.metrics[metricKey{res.gr, info.Metric}]
	p.mu.RUnlock()
	if d == nil || d.res.namespaced != info.Namespaced && res.label != "namespace" {
		return nil, provider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	return d, nil
}

// queries renders the value and the freshness query of d for the given
// object matchers. The value query is to run with MaxAge as lookback,
// the freshness query with a longer one (fetch).
func (p *Provider) queries(d *metricDef, matchers []string) (value, fresh string, err error) {
	gb := d.res.groupBy()
	switch {
	case d.tmpl != nil:
		value, err = render(d.tmpl, d.series, matchers, gb)
		if err != nil {
			return "", "", apierrors.NewInternalError(fmt.Errorf("metricsQuery of %s: %w", d.series, err))
		}
	case d.counter:
		value = fmt.Sprintf("sum by (%s) (rate(%s{%s}[%s]))", strings.Join(gb, ","), d.series, strings.Join(matchers, ","), modelDuration(time.Duration(p.cfg.RateWindow)))
	default:
		value = fmt.Sprintf("sum by (%s) (%s{%s})", strings.Join(gb, ","), d.series, strings.Join(matchers, ","))
	}
	expr, err := promParser.ParseExpr(value)
	if err != nil {
		return "", "", apierrors.NewInternalError(fmt.Errorf("query of %s %q: %w", d.series, value, err))
	}
	value = freshOnly(expr).String()
	fresh = fmt.Sprintf("max by (%s) (timestamp(%s{%s}))", strings.Join(gb, ","), d.series, strings.Join(matchers, ","))
	return value, fresh, nil
}

// freshOnly rewrites expr, in place, so that run with MaxAge as lookback
// it uses only series with a sample that recent: instant selectors are
// bounded by the lookback itself; a function of a range, such as
// rate(x[2m]), becomes (rate(x[2m]) and x), which drops the series whose
// newest sample is older than the lookback but still inside the range.
func freshOnly(e parser.Expr) parser.Expr {
	switch n := e.(type) {
	case *parser.Call:
		for i, a := range n.Args {
			n.Args[i] = freshOnly(a)
		}
		if n.Func.Name == "absent_over_time" {
			return n // its answer is for series that are not there
		}
		for _, a := range n.Args {
			ms, ok := a.(*parser.MatrixSelector)
			if !ok {
				continue
			}
			vs, ok := ms.VectorSelector.(*parser.VectorSelector)
			if !ok {
				continue
			}
			plain := &parser.VectorSelector{Name: vs.Name, LabelMatchers: vs.LabelMatchers,
				OriginalOffset: vs.OriginalOffset, Timestamp: vs.Timestamp, StartOrEnd: vs.StartOrEnd}
			return &parser.ParenExpr{Expr: &parser.BinaryExpr{Op: parser.LAND, LHS: n, RHS: plain,
				VectorMatching: &parser.VectorMatching{Card: parser.CardManyToMany}}}
		}
	case *parser.BinaryExpr:
		n.LHS, n.RHS = freshOnly(n.LHS), freshOnly(n.RHS)
	case *parser.AggregateExpr:
		n.Expr = freshOnly(n.Expr)
		if n.Param != nil {
			n.Param = freshOnly(n.Param)
		}
	case *parser.ParenExpr:
		n.Expr = freshOnly(n.Expr)
	case *parser.UnaryExpr:
		n.Expr = freshOnly(n.Expr)
	case *parser.SubqueryExpr:
		n.Expr = freshOnly(n.Expr)
	case *parser.StepInvariantExpr:
		n.Expr = freshOnly(n.Expr)
	}
	return e
}

// objectMatchers are the matchers of a request: the rule's, the
// namespace, the object (name or any), and both selectors.
func objectMatchers(d *metricDef, namespace, name string, selector, metricSelector k8slabels.Selector) ([]string, error) {
	ms := append([]string{}, d.extra...)
	if d.res.label == "namespace" {
		if name == "" {
			name = namespace
		}
	} else if d.res.namespaceLabel() {
		ms = append(ms, (&labels.Matcher{Type: labels.MatchEqual, Name: "namespace", Value: namespace}).String())
	}
	if name != "" {
		ms = append(ms, (&labels.Matcher{Type: labels.MatchEqual, Name: d.res.label, Value: name}).String())
	} else {
		ms = append(ms, d.res.label+`!=""`)
	}
	sel, err := selectorMatchers(selector, "label selector")
	if err != nil {
		return nil, err
	}
	msel, err := selectorMatchers(metricSelector, "metric label selector")
	if err != nil {
		return nil, err
	}
	return append(append(ms, matcherStrings(sel)...), matcherStrings(msel)...), nil
}

type objectValue struct {
	name   string
	value  float64
	newest time.Time
}

// fetch runs the value query, which sees only samples within MaxAge,
// and the freshness query, which looks back MaxAge plus Vigil's default
// lookback, and pairs them by object: an object whose newest sample is
// older than MaxAge is left out of vals, logged and named in stale.
func (p *Provider) fetch(ctx context.Context, d *metricDef, info provider.CustomMetricInfo, namespace string, matchers []string) (vals []objectValue, stale []string, err error) {
	valueQ, freshQ, err := p.queries(d, matchers)
	if err != nil {
		return nil, nil, err
	}
	now := p.opts.Now()
	values, err := p.client.Query(ctx, valueQ, now, p.opts.MaxAge)
	if err != nil {
		return nil, nil, vigilStatus(err)
	}
	fresh, err := p.client.Query(ctx, freshQ, now, p.opts.MaxAge+defaultLookback)
	if err != nil {
		return nil, nil, vigilStatus(err)
	}
	newest := map[string]time.Time{}
	for _, s := range fresh {
		newest[s.Labels[d.res.label]] = time.UnixMilli(int64(math.Round(s.Value * 1000)))
	}
	staleObject := func(obj string, ts time.Time) {
		age := now.Sub(ts)
		p.log.Warn("stale metric value; left out", "metric", info.Metric, "resource", info.GroupResource.String(), "namespace", namespace, "object", obj,
			"newest_sample", ts.UTC().Format(time.RFC3339), "age", age.Round(time.Second).String(), "max_age", p.opts.MaxAge.String())
		stale = append(stale, fmt.Sprintf("%s: newest sample is %v old, max age %v", obj, age.Round(time.Second), p.opts.MaxAge))
	}
	seen := map[string]bool{}
	for _, s := range values {
		obj := s.Labels[d.res.label]
		seen[obj] = true
		ts, ok := newest[obj]
		switch {
		case !ok:
			p.log.Warn("metric value without a sample time; left out", "metric", info.Metric, "resource", info.GroupResource.String(), "namespace", namespace, "object", obj, "query", freshQ)
			stale = append(stale, fmt.Sprintf("%s: no sample time", obj))
			continue
		case now.Sub(ts) > p.opts.MaxAge:
			staleObject(obj, ts)
			continue
		case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
			p.log.Warn("metric value is not a number; left out", "metric", info.Metric, "object", obj, "value", s.Value)
			continue
		}
		vals = append(vals, objectValue{name: obj, value: s.Value, newest: ts})
	}
	// Objects with only old samples have no value at all: report them.
	var old []string
	for obj, ts := range newest {
		if !seen[obj] && now.Sub(ts) > p.opts.MaxAge {
			old = append(old, obj)
		}
	}
	sort.Strings(old)
	for _, obj := range old {
		staleObject(obj, newest[obj])
	}
	return vals, stale, nil
}

// GetMetricByName implements provider.CustomMetricsProvider.
func (p *Provider) GetMetricByName(ctx context.Context, name types.NamespacedName, info provider.CustomMetricInfo, metricSelector k8slabels.Selector) (*custom_metrics.MetricValue, error) {
	d, err := p.lookup(info)
	if err != nil {
		return nil, err
	}
	ms, err := objectMatchers(d, name.Namespace, name.Name, nil, metricSelector)
	if err != nil {
		return nil, err
	}
	vals, stale, err := p.fetch(ctx, d, info, name.Namespace, ms)
	if err != nil {
		return nil, err
	}
	if len(vals) == 0 {
		if len(stale) > 0 {
			return nil, staleStatus(info, name.Namespace, stale)
		}
		return nil, provider.NewMetricNotFoundForSelectorError(info.GroupResource, info.Metric, name.Name, metricSelector)
	}
	if len(vals) > 1 {
		return nil, apierrors.NewInternalError(fmt.Errorf("metric %s of %s %s: the query returned %d values for one object", info.Metric, info.GroupResource, name.Name, len(vals)))
	}
	v := p.metricValue(d, info, name.Namespace, vals[0], metricSelector)
	return &v, nil
}

// GetMetricBySelector implements provider.CustomMetricsProvider.
func (p *Provider) GetMetricBySelector(ctx context.Context, namespace string, selector k8slabels.Selector, info provider.CustomMetricInfo, metricSelector k8slabels.Selector) (*custom_metrics.MetricValueList, error) {
	d, err := p.lookup(info)
	if err != nil {
		return nil, err
	}
	ms, err := objectMatchers(d, namespace, "", selector, metricSelector)
	if err != nil {
		return nil, err
	}
	vals, stale, err := p.fetch(ctx, d, info, namespace, ms)
	if err != nil {
		return nil, err
	}
	if len(vals) == 0 {
		if len(stale) > 0 {
			return nil, staleStatus(info, namespace, stale)
		}
		return nil, provider.NewMetricNotFoundForSelectorError(info.GroupResource, info.Metric, "*", selector)
	}
	out := &custom_metrics.MetricValueList{}
	for _, v := range vals {
		out.Items = append(out.Items, p.metricValue(d, info, namespace, v, metricSelector))
	}
	sort.Slice(out.Items, func(i, j int) bool { return out.Items[i].DescribedObject.Name < out.Items[j].DescribedObject.Name })
	return out, nil
}

func (p *Provider) metricValue(d *metricDef, info provider.CustomMetricInfo, namespace string, v objectValue, metricSelector k8slabels.Selector) custom_metrics.MetricValue {
	mv := custom_metrics.MetricValue{
		DescribedObject: custom_metrics.ObjectReference{Kind: d.res.kind, APIVersion: d.res.apiVersion, Name: v.name},
		Metric:          custom_metrics.MetricIdentifier{Name: info.Metric},
		Timestamp:       metav1.NewTime(v.newest),
		Value:           quantity(v.value),
	}
	if d.res.namespaceLabel() {
		mv.DescribedObject.Namespace = namespace
	}
	if d.counter {
		w := int64(time.Duration(p.cfg.RateWindow) / time.Second)
		mv.WindowSeconds = &w
	}
	if metricSelector != nil && !metricSelector.Empty() {
		if ls, err := metav1.ParseToLabelSelector(metricSelector.String()); err == nil {
			mv.Metric.Selector = ls
		}
	}
	return mv
}

// GetExternalMetric implements provider.ExternalMetricsProvider.
func (p *Provider) GetExternalMetric(ctx context.Context, namespace string, metricSelector k8slabels.Selector, info provider.ExternalMetricInfo) (*external_metrics.ExternalMetricValueList, error) {
	rule := p.external[info.Metric]
	if rule == nil {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "external.metrics.k8s.io", Resource: "externalmetrics"}, info.Metric)
	}
	ms, err := selectorMatchers(metricSelector, "metric label selector")
	if err != nil {
		return nil, err
	}
	if rule.Namespaced {
		ms = append(ms, &labels.Matcher{Type: labels.MatchEqual, Name: "namespace", Value: namespace})
	}
	// Parse anew: the AST is changed below and requests run concurrently.
	expr, err := promParser.ParseExpr(rule.Query)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("external metric %s: %w", info.Metric, err))
	}
	var freshQs []string
	for _, vs := range selectorsOf(expr) {
		for _, m := range ms {
			vs.LabelMatchers = append(vs.LabelMatchers, labels.MustNewMatcher(m.Type, m.Name, m.Value))
		}
		plain := &parser.VectorSelector{Name: vs.Name, LabelMatchers: vs.LabelMatchers}
		freshQs = append(freshQs, "max(timestamp("+plain.String()+"))")
	}
	query := freshOnly(expr).String()
	now := p.opts.Now()
	values, err := p.client.Query(ctx, query, now, p.opts.MaxAge)
	if err != nil {
		return nil, vigilStatus(err)
	}
	// The value is as fresh as its stalest input; looked up further back
	// than MaxAge so that an input just too old is reported, not missing.
	var oldest time.Time
	for _, q := range freshQs {
		r, err := p.client.Query(ctx, q, now, p.opts.MaxAge+defaultLookback)
		if err != nil {
			return nil, vigilStatus(err)
		}
		if len(r) == 0 {
			continue // an input without data in the lookback: `or`-style expressions
		}
		ts := time.UnixMilli(int64(math.Round(r[0].Value * 1000)))
		if oldest.IsZero() || ts.Before(oldest) {
			oldest = ts
		}
	}
	if oldest.IsZero() && len(values) == 0 {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "external.metrics.k8s.io", Resource: info.Metric}, fmt.Sprintf("%s with selector %q (no data for %s)", info.Metric, metricSelector, query))
	}
	if age := now.Sub(oldest); oldest.IsZero() || age > p.opts.MaxAge {
		reason := fmt.Sprintf("newest sample is %v old, max age %v", age.Round(time.Second), p.opts.MaxAge)
		if oldest.IsZero() {
			reason = "no sample time"
		}
		p.log.Warn("stale external metric value", "metric", info.Metric, "selector", metricSelector.String(), "query", query, "reason", reason)
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("external metric %s with selector %q: %s", info.Metric, metricSelector, reason))
	}
	if len(values) == 0 {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: "external.metrics.k8s.io", Resource: info.Metric}, fmt.Sprintf("%s with selector %q (no data for %s)", info.Metric, metricSelector, query))
	}
	out := &external_metrics.ExternalMetricValueList{}
	for _, s := range values {
		if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) {
			p.log.Warn("external metric value is not a number; left out", "metric", info.Metric, "labels", s.Labels, "value", s.Value)
			continue
		}
		ls := map[string]string{}
		for k, v := range s.Labels {
			if k != model.MetricNameLabel {
				ls[k] = v
			}
		}
		out.Items = append(out.Items, external_metrics.ExternalMetricValue{MetricName: info.Metric, MetricLabels: ls, Timestamp: metav1.NewTime(oldest), Value: quantity(s.Value)})
	}
	return out, nil
}

// quantity is v in milli-units where that fits an int64 (the HPA reads
// MilliValue), else v parsed from its decimal form.
func quantity(v float64) kresource.Quantity {
	if m := math.Round(v * 1000); math.Abs(m) < 1<<62 {
		return *kresource.NewMilliQuantity(int64(m), kresource.DecimalSI)
	}
	q, err := kresource.ParseQuantity(strconv.FormatFloat(v, 'g', -1, 64))
	if err != nil { // not reached for finite v: 'g' gives "1e+16"
		return *kresource.NewMilliQuantity(math.MaxInt64, kresource.DecimalSI)
	}
	return q
}

func staleStatus(info provider.CustomMetricInfo, namespace string, stale []string) error {
	where := info.GroupResource.String()
	if namespace != "" {
		where += " in namespace " + namespace
	}
	return apierrors.NewServiceUnavailable(fmt.Sprintf("metric %s of %s: no fresh value (%s)", info.Metric, where, strings.Join(stale, "; ")))
}

// vigilStatus maps an error of a query to Vigil to a Kubernetes status.
// Vigil rejecting the query (400 bad_data, 422 execution) is the
// adapter's fault, not the caller's: InternalError, with Vigil's reason.
// Anything else (unreachable, timeout, overloaded) is ServiceUnavailable.
func vigilStatus(err error) error {
	var ae *APIError
	if errors.As(err, &ae) && (ae.StatusCode == http.StatusBadRequest || ae.StatusCode == http.StatusUnprocessableEntity) {
		return apierrors.NewInternalError(err)
	}
	return apierrors.NewServiceUnavailable(err.Error())
}

// modelDuration formats d as PromQL does ("2m", "90s").
func modelDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

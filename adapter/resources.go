package adapter

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
)

// resource is a Kubernetes object type that series can describe through
// a label of the same name.
type resource struct {
	label      string // series label naming the object: "pod"
	gr         schema.GroupResource
	kind       string
	apiVersion string
	namespaced bool
}

// knownResources is the table of docs/kubernetes.md, "Default naming".
// Discovery asks about each, in this order.
var knownResources = []*resource{
	{"pod", schema.GroupResource{Resource: "pods"}, "Pod", "v1", true},
	{"service", schema.GroupResource{Resource: "services"}, "Service", "v1", true},
	{"deployment", schema.GroupResource{Group: "apps", Resource: "deployments"}, "Deployment", "apps/v1", true},
	{"statefulset", schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "StatefulSet", "apps/v1", true},
	{"daemonset", schema.GroupResource{Group: "apps", Resource: "daemonsets"}, "DaemonSet", "apps/v1", true},
	{"replicaset", schema.GroupResource{Group: "apps", Resource: "replicasets"}, "ReplicaSet", "apps/v1", true},
	{"job_name", schema.GroupResource{Group: "batch", Resource: "jobs"}, "Job", "batch/v1", true},
	{"cronjob", schema.GroupResource{Group: "batch", Resource: "cronjobs"}, "CronJob", "batch/v1", true},
	{"ingress", schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, "Ingress", "networking.k8s.io/v1", true},
	{"persistentvolumeclaim", schema.GroupResource{Resource: "persistentvolumeclaims"}, "PersistentVolumeClaim", "v1", true},
	{"namespace", schema.GroupResource{Resource: "namespaces"}, "Namespace", "v1", false},
	{"node", schema.GroupResource{Resource: "nodes"}, "Node", "v1", false},
}

func resourceByLabel(l string) *resource {
	for _, r := range knownResources {
		if r.label == l {
			return r
		}
	}
	return nil
}

// resourceFor finds the resource of a request's group-resource; a
// request without a group ("deployments") matches the one resource of
// that plural.
func resourceFor(gr schema.GroupResource) *resource {
	var byPlural []*resource
	for _, r := range knownResources {
		if r.gr == gr {
			return r
		}
		if r.gr.Resource == gr.Resource {
			byPlural = append(byPlural, r)
		}
	}
	if gr.Group == "" && len(byPlural) == 1 {
		return byPlural[0]
	}
	return nil
}

func knownLabels() string {
	var ls []string
	for _, r := range knownResources {
		ls = append(ls, r.label)
	}
	return strings.Join(ls, ", ")
}

// namespaceLabel tells whether queries on r also match and group by the
// namespace label: namespaced objects other than the namespace itself.
func (r *resource) namespaceLabel() bool { return r.namespaced && r.label != "namespace" }

// discoverySelector is the series selector of r's objects, with the
// extra matchers (a rule's seriesQuery).
func (r *resource) discoverySelector(extra []string) string {
	ms := append([]string{}, extra...)
	ms = append(ms, r.label+`!=""`)
	if r.namespaceLabel() {
		ms = append(ms, `namespace!=""`)
	}
	return "{" + strings.Join(ms, ",") + "}"
}

func (r *resource) groupBy() []string {
	if r.namespaceLabel() {
		return []string{r.label, "namespace"}
	}
	return []string{r.label}
}

var invalidLabelChar = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// labelName turns a Kubernetes label key into the Prometheus label name
// that Prometheus' labelmap of __meta_kubernetes_pod_label_(.+) gives it.
func labelName(key string) string {
	n := invalidLabelChar.ReplaceAllString(key, "_")
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		n = "_" + n
	}
	return n
}

// selectorMatchers turns a Kubernetes label selector into PromQL label
// matchers (docs/kubernetes.md, "Selectors are label matchers"). An
// operator without a PromQL equivalent is a BadRequest status.
func selectorMatchers(sel k8slabels.Selector, what string) ([]*labels.Matcher, error) {
	if sel == nil || sel.Empty() {
		return nil, nil
	}
	reqs, selectable := sel.Requirements()
	if !selectable {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("%s %q selects nothing", what, sel.String()))
	}
	var out []*labels.Matcher
	for _, r := range reqs {
		name := labelName(r.Key())
		vals := r.Values().List()
		var m *labels.Matcher
		var err error
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals:
			m, err = labels.NewMatcher(labels.MatchEqual, name, vals[0])
		case selection.NotEquals:
			m, err = labels.NewMatcher(labels.MatchNotEqual, name, vals[0])
		case selection.In, selection.NotIn:
			q := make([]string, len(vals))
			for i, v := range vals {
				q[i] = regexp.QuoteMeta(v)
			}
			t := labels.MatchRegexp
			if r.Operator() == selection.NotIn {
				t = labels.MatchNotRegexp
			}
			m, err = labels.NewMatcher(t, name, strings.Join(q, "|"))
		case selection.Exists:
			m, err = labels.NewMatcher(labels.MatchNotEqual, name, "")
		case selection.DoesNotExist:
			m, err = labels.NewMatcher(labels.MatchEqual, name, "")
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s %q: operator %q has no PromQL label matcher (use =, !=, in, notin, exists, !exists)", what, sel.String(), r.Operator()))
		}
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("%s %q: %v", what, sel.String(), err))
		}
		out = append(out, m)
	}
	return out, nil
}

func matcherStrings(ms []*labels.Matcher) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

// selectorsOf returns the vector selectors of expr, those inside range
// selectors included.
func selectorsOf(expr parser.Expr) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

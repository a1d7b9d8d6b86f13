package adapter_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	cmv1beta1 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta1"
	cmv1beta2 "k8s.io/metrics/pkg/apis/custom_metrics/v1beta2"
	"k8s.io/metrics/pkg/client/custom_metrics"
	"k8s.io/metrics/pkg/client/external_metrics"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/vigil-tsdb/vigil/adapter"
	"github.com/vigil-tsdb/vigil/internal/vigiltest"
)

const rulesYAML = `
rules:
  - seriesQuery: '{__name__=~"inflight_.*",namespace!="",pod!=""}'
    resources: [pod]
    name: {matches: '^inflight_(.*)$', as: 'inflight_${1}_doubled'}
    metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>}) * 2'
  - seriesQuery: '{__name__="http_requests_total",namespace!="",pod!=""}'
    resources: [pod]
    name: {matches: '^http_(.*)_total$', as: 'web_${1}'}
  - seriesQuery: '{__name__="node_memory_used_bytes",node!=""}'
    resources: [node]
    name: {matches: '^node_(.*)$', as: 'Node/${1}'}
external:
  - name: mixed_inflight
    query: 'sum(inflight_requests{namespace="batch"})'
  - name: queue_messages_ready
    query: 'sum by (queue) (queue_messages_ready)'
  - name: stale_queue
    query: 'sum(stale_gauge)'
`

// env is one real Vigil, filled over remote write, and one adapter on a
// loopback HTTPS port, shared by the subtests of TestAdapter (the API
// server libraries register process-wide state: one server per process).
type env struct {
	vigil *vigiltest.Node
	t0    time.Time // the adapter's clock: every query is evaluated at t0
	rest  *rest.Config
	logs  *syncBuffer
}

func TestAdapter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts vigil and the API server")
	}
	e := setup(t)
	t.Run("PodsBySelector", e.testPodsBySelector)
	t.Run("DeploymentObject", e.testDeploymentObject)
	t.Run("Node", e.testNode)
	t.Run("Namespace", e.testNamespace)
	t.Run("External", e.testExternal)
	t.Run("Rule", e.testRule)
	t.Run("V1beta1", e.testV1beta1)
	t.Run("Stale", e.testStale)
	t.Run("Errors", e.testErrors)
	t.Run("MixedFreshness", e.testMixedFreshness)
	t.Run("CounterRule", e.testCounterRule)
	t.Run("RuleNames", e.testRuleNames)
	t.Run("VigilTimeout", e.testVigilTimeout)
	t.Run("DefaultMaxAge", e.testDefaultMaxAge)
	t.Run("DiscoveryWindow", e.testDiscoveryWindow)
	t.Run("DiscoveryLimit", e.testDiscoveryLimit)
	t.Run("Discovery", e.testDiscovery) // last: it writes a new series
}

func setup(t *testing.T) *env {
	node, err := vigiltest.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.Stop(); err != nil {
			t.Error(err)
		}
	})
	e := &env{vigil: node, t0: time.Now().Truncate(time.Second).Add(-time.Second), logs: &syncBuffer{}}

	// Counters: 18 samples 10 s apart up to t0, slopes per pod.
	var series []prompb.TimeSeries
	counter := func(slope float64, ls ...string) {
		ts := prompb.TimeSeries{Labels: promLabels(append([]string{"__name__", "http_requests_total"}, ls...)...)}
		for i := range 18 {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: e.t0.Add(time.Duration(i-17) * 10 * time.Second).UnixMilli(), Value: slope * 10 * float64(i)})
		}
		series = append(series, ts)
	}
	counter(0.3, "namespace", "shop", "pod", "web-1", "app", "web")
	counter(0.5, "namespace", "shop", "pod", "web-2", "app", "web")
	counter(1, "namespace", "shop", "pod", "api-1", "app", "api")
	counter(7, "namespace", "other", "pod", "web-1", "app", "web")
	gauge := func(v float64, age time.Duration, ls ...string) {
		series = append(series, prompb.TimeSeries{Labels: promLabels(ls...), Samples: []prompb.Sample{
			{Timestamp: e.t0.Add(-age - 20*time.Second).UnixMilli(), Value: v - 1},
			{Timestamp: e.t0.Add(-age).UnixMilli(), Value: v},
		}})
	}
	gauge(4, 5*time.Second, "__name__", "inflight_requests", "namespace", "shop", "deployment", "web", "pod", "web-1")
	gauge(6, 5*time.Second, "__name__", "inflight_requests", "namespace", "shop", "deployment", "web", "pod", "web-2")
	gauge(100, 5*time.Second, "__name__", "inflight_requests", "namespace", "shop", "deployment", "api", "pod", "api-1")
	gauge(1.5e9, 10*time.Second, "__name__", "node_memory_used_bytes", "node", "n1")
	gauge(2.25e9, 10*time.Second, "__name__", "node_memory_used_bytes", "node", "n2")
	gauge(40, 3*time.Second, "__name__", "queue_messages_ready", "queue", "orders", "vhost", "a")
	gauge(2, 3*time.Second, "__name__", "queue_messages_ready", "queue", "orders", "vhost", "b")
	gauge(7, 3*time.Second, "__name__", "queue_messages_ready", "queue", "billing", "vhost", "a")
	gauge(3, 4*time.Minute, "__name__", "stale_gauge", "namespace", "shop", "pod", "web-1", "app", "web")
	// One deployment, one fresh and one stale pod: only the fresh one counts.
	gauge(4, 5*time.Second, "__name__", "inflight_requests", "namespace", "batch", "deployment", "mix", "pod", "mix-1", "app", "mix")
	gauge(100, 4*time.Minute, "__name__", "inflight_requests", "namespace", "batch", "deployment", "mix", "pod", "mix-2", "app", "mix")
	// Older than Vigil's 5m lookback: stale at the default max age.
	gauge(8, 6*time.Minute, "__name__", "old_gauge", "namespace", "shop", "pod", "web-1")
	// Older than the 10m discovery window.
	gauge(9, 11*time.Minute, "__name__", "ancient_gauge", "namespace", "shop", "pod", "web-1")
	// A scraped series: job is the scrape job, not a Kubernetes Job.
	gauge(5, 5*time.Second, "__name__", "scraped_gauge", "namespace", "shop", "pod", "web-1", "job", "kubernetes-pods")
	remoteWrite(t, node.HTTP, series)

	cfg, err := adapter.ParseConfig("rules.yaml", []byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	client, err := adapter.NewClient(node.HTTP, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := adapter.NewProvider(cfg, client, adapter.Options{
		RefreshInterval: time.Second, DiscoveryWindow: 10 * time.Minute, MaxAge: 2 * time.Minute,
		Now: func() time.Time { return e.t0 },
	}, logger)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	so := adapter.NewServerOptions()
	so.SecureServing.Listener = ln
	so.SecureServing.ServerCert.CertDirectory = t.TempDir()
	so.SkipDelegatedAuth = true
	srv, err := adapter.NewServer("vigil-adapter-test", so, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errc <- p.Run(ctx) }()
	go func() { defer wg.Done(); errc <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Errorf("adapter stopped with %v", err)
			}
		}
		if t.Failed() {
			t.Logf("adapter log:\n%s", e.logs.String())
		}
	})
	e.rest = &rest.Config{Host: "https://" + ln.Addr().String(), TLSClientConfig: rest.TLSClientConfig{Insecure: true}, Timeout: 20 * time.Second}

	// Ready: HTTPS answers and the first discovery has run.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var list metav1.APIResourceList
		if code, err := e.getJSON("/apis/custom.metrics.k8s.io/v1beta2", &list); err == nil && code == 200 && hasResource(&list, "pods/http_requests") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("adapter not ready with pods/http_requests discovered within 60s; log:\n%s", e.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return e
}

// v1beta2 is what kube-aggregator offers the HPA controller as preferred
// (versionPriority 200 in deploy/kubernetes/apiservice.yaml).
type fixedVersion schema.GroupVersion

func (v fixedVersion) PreferredVersion() (schema.GroupVersion, error) {
	return schema.GroupVersion(v), nil
}
func (fixedVersion) Invalidate() {}

func (e *env) customClient(version string) custom_metrics.CustomMetricsClient {
	m := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Version: "v1"}, {Group: "apps", Version: "v1"}})
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Node"}, meta.RESTScopeRoot)
	m.Add(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, meta.RESTScopeRoot)
	return custom_metrics.NewForConfig(e.rest, m, fixedVersion{Group: "custom.metrics.k8s.io", Version: version})
}

func (e *env) testPodsBySelector(t *testing.T) {
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	got, err := e.customClient("v1beta2").NamespacedMetrics("shop").GetForObjects(schema.GroupKind{Kind: "Pod"}, sel, "http_requests", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	want := e.query(t, `sum by (pod, namespace) (rate(http_requests_total{namespace="shop",app="web"}[2m]))`, "pod")
	if len(want) != 2 {
		t.Fatalf("direct query: %d pods, want web-1 and web-2: %v", len(want), want)
	}
	if len(got.Items) != len(want) {
		t.Fatalf("adapter: %d items, direct query %d: %+v", len(got.Items), len(want), got.Items)
	}
	for _, it := range got.Items {
		w, ok := want[it.DescribedObject.Name]
		if !ok {
			t.Errorf("adapter returned pod %q the direct query did not", it.DescribedObject.Name)
			continue
		}
		if it.DescribedObject.Kind != "Pod" || it.DescribedObject.Namespace != "shop" {
			t.Errorf("described object %+v, want a Pod in shop", it.DescribedObject)
		}
		if it.Value.MilliValue() != milli(w) {
			t.Errorf("pod %s: adapter %s, direct %v", it.DescribedObject.Name, it.Value.String(), w)
		}
		if !it.Timestamp.Time.Equal(e.t0) {
			t.Errorf("pod %s: timestamp %v, want the newest sample's %v", it.DescribedObject.Name, it.Timestamp.Time, e.t0)
		}
		if it.WindowSeconds == nil || *it.WindowSeconds != 120 {
			t.Errorf("pod %s: window %v, want 120 s", it.DescribedObject.Name, it.WindowSeconds)
		}
	}
	// Sanity of the data itself: 0.3/s and 0.5/s.
	if milli(want["web-1"]) != 300 || milli(want["web-2"]) != 500 {
		t.Errorf("direct rates %v, want web-1 0.3 and web-2 0.5", want)
	}
}

func (e *env) testDeploymentObject(t *testing.T) {
	got, err := e.customClient("v1beta2").NamespacedMetrics("shop").GetForObject(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", "inflight_requests", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	want := e.query(t, `sum by (deployment, namespace) (inflight_requests{namespace="shop",deployment="web"})`, "deployment")["web"]
	if got.Value.MilliValue() != milli(want) || want != 10 {
		t.Errorf("deployment web: adapter %s, direct %v (want 10)", got.Value.String(), want)
	}
	if got.DescribedObject.Kind != "Deployment" || got.DescribedObject.APIVersion != "apps/v1" || got.DescribedObject.Name != "web" {
		t.Errorf("described object %+v", got.DescribedObject)
	}
	if wantTS := e.t0.Add(-5 * time.Second); !got.Timestamp.Time.Equal(wantTS) {
		t.Errorf("timestamp %v, want the newest sample's %v", got.Timestamp.Time, wantTS)
	}
}

func (e *env) testNode(t *testing.T) {
	got, err := e.customClient("v1beta2").RootScopedMetrics().GetForObject(schema.GroupKind{Kind: "Node"}, "n1", "node_memory_used_bytes", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	want := e.query(t, `sum by (node) (node_memory_used_bytes{node="n1"})`, "node")["n1"]
	if got.Value.MilliValue() != milli(want) || want != 1.5e9 {
		t.Errorf("node n1: adapter %s, direct %v (want 1.5e9)", got.Value.String(), want)
	}
	if got.DescribedObject.Kind != "Node" || got.DescribedObject.Namespace != "" {
		t.Errorf("described object %+v", got.DescribedObject)
	}
}

func (e *env) testNamespace(t *testing.T) {
	got, err := e.customClient("v1beta2").RootScopedMetrics().GetForObject(schema.GroupKind{Kind: "Namespace"}, "shop", "inflight_requests", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	want := e.query(t, `sum by (namespace) (inflight_requests{namespace="shop"})`, "namespace")["shop"]
	if got.Value.MilliValue() != milli(want) || want != 110 {
		t.Errorf("namespace shop: adapter %s, direct %v (want 110)", got.Value.String(), want)
	}
	if got.DescribedObject.Kind != "Namespace" || got.DescribedObject.Name != "shop" {
		t.Errorf("described object %+v", got.DescribedObject)
	}
}

func (e *env) testExternal(t *testing.T) {
	emc, err := external_metrics.NewForConfig(e.rest)
	if err != nil {
		t.Fatal(err)
	}
	sel := labels.SelectorFromSet(labels.Set{"queue": "orders"})
	got, err := emc.NamespacedMetrics("shop").List("queue_messages_ready", sel)
	if err != nil {
		t.Fatal(err)
	}
	want := e.query(t, `sum by (queue) (queue_messages_ready{queue="orders"})`, "queue")
	if len(got.Items) != 1 || len(want) != 1 {
		t.Fatalf("adapter %+v, direct %v: want one value", got.Items, want)
	}
	it := got.Items[0]
	if it.Value.MilliValue() != milli(want["orders"]) || want["orders"] != 42 || it.MetricLabels["queue"] != "orders" {
		t.Errorf("adapter %s %v, direct %v (want 42)", it.Value.String(), it.MetricLabels, want)
	}
	if wantTS := e.t0.Add(-3 * time.Second); !it.Timestamp.Time.Equal(wantTS) {
		t.Errorf("timestamp %v, want the newest sample's %v", it.Timestamp.Time, wantTS)
	}
	// Without a selector: both queues.
	all, err := emc.NamespacedMetrics("shop").List("queue_messages_ready", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 2 {
		t.Errorf("no selector: %d values, want 2 queues: %+v", len(all.Items), all.Items)
	}
}

func (e *env) testRule(t *testing.T) {
	got, err := e.customClient("v1beta2").NamespacedMetrics("shop").GetForObject(schema.GroupKind{Kind: "Pod"}, "web-2", "inflight_requests_doubled", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	want := e.query(t, `sum by (pod, namespace) (inflight_requests{namespace="shop",pod="web-2"}) * 2`, "pod")["web-2"]
	if got.Value.MilliValue() != milli(want) || want != 12 {
		t.Errorf("rule metric of web-2: adapter %s, direct %v (want 12)", got.Value.String(), want)
	}
	// The rule is for pods only: no deployment metric of that name.
	_, err = e.customClient("v1beta2").NamespacedMetrics("shop").GetForObject(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", "inflight_requests_doubled", labels.Everything())
	if !apierrors.IsNotFound(err) {
		t.Errorf("rule metric for a deployment: %v, want 404", err)
	}
}

func (e *env) testV1beta1(t *testing.T) {
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	got, err := e.customClient("v1beta1").NamespacedMetrics("shop").GetForObjects(schema.GroupKind{Kind: "Pod"}, sel, "http_requests", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != 2 {
		t.Fatalf("v1beta1: %d items, want 2", len(got.Items))
	}
	var raw cmv1beta1.MetricValueList
	if code, err := e.getJSON("/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/*/http_requests?labelSelector=app%3Dweb", &raw); err != nil || code != 200 {
		t.Fatalf("raw v1beta1: %d %v", code, err)
	}
	if raw.Kind != "MetricValueList" || raw.APIVersion != "custom.metrics.k8s.io/v1beta1" || len(raw.Items) != 2 || raw.Items[0].MetricName != "http_requests" {
		t.Errorf("raw v1beta1 list: %+v", raw)
	}
	var raw2 cmv1beta2.MetricValueList
	if code, err := e.getJSON("/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-2/http_requests", &raw2); err != nil || code != 200 || len(raw2.Items) != 1 {
		t.Fatalf("raw v1beta2 one pod: %d %v %+v", code, err, raw2)
	}
	if raw2.Items[0].Value.MilliValue() != 500 {
		t.Errorf("pod web-2: %s, want 0.5", raw2.Items[0].Value.String())
	}
}

func (e *env) testStale(t *testing.T) {
	_, err := e.customClient("v1beta2").NamespacedMetrics("shop").GetForObject(schema.GroupKind{Kind: "Pod"}, "web-1", "stale_gauge", labels.Everything())
	if !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("stale pod metric: %v, want 503 ServiceUnavailable", err)
	}
	if !strings.Contains(err.Error(), "newest sample is 4m0s old, max age 2m0s") {
		t.Errorf("error %q does not say why", err)
	}
	// By selector: the only pod is stale.
	_, err = e.customClient("v1beta2").NamespacedMetrics("shop").GetForObjects(schema.GroupKind{Kind: "Pod"}, labels.Everything(), "stale_gauge", labels.Everything())
	if !apierrors.IsServiceUnavailable(err) {
		t.Errorf("stale pods by selector: %v, want 503", err)
	}
	emc, err := external_metrics.NewForConfig(e.rest)
	if err != nil {
		t.Fatal(err)
	}
	_, err = emc.NamespacedMetrics("shop").List("stale_queue", labels.Everything())
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "4m0s old") {
		t.Errorf("stale external metric: %v, want 503 saying 4m0s old", err)
	}
	logs := e.logs.String()
	for _, want := range []string{
		`msg="stale metric value; left out" metric=stale_gauge resource=pods namespace=shop object=web-1`,
		`age=4m0s max_age=2m0s`,
		`msg="stale external metric value" metric=stale_queue`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func (e *env) testErrors(t *testing.T) {
	cmc := e.customClient("v1beta2")
	_, err := cmc.NamespacedMetrics("shop").GetForObject(schema.GroupKind{Kind: "Pod"}, "web-1", "no_such_metric", labels.Everything())
	if !apierrors.IsNotFound(err) {
		t.Errorf("unknown metric: %v, want 404 NotFound", err)
	}
	_, err = cmc.NamespacedMetrics("shop").GetForObject(schema.GroupKind{Kind: "Pod"}, "no-such-pod", "http_requests", labels.Everything())
	if !apierrors.IsNotFound(err) {
		t.Errorf("known metric, unknown pod: %v, want 404 NotFound", err)
	}
	emc, err := external_metrics.NewForConfig(e.rest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emc.NamespacedMetrics("shop").List("no_such_external", labels.Everything()); !apierrors.IsNotFound(err) {
		t.Errorf("unknown external metric: %v, want 404", err)
	}
	for _, tc := range []struct {
		name, path string
		code       int
		reason     metav1.StatusReason
		msg        string
	}{
		{"malformed label selector", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests?labelSelector=" + url.QueryEscape("app in (web"), 400, metav1.StatusReasonBadRequest, ""},
		{"operator without a matcher", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests?labelSelector=" + url.QueryEscape("app>1"), 400, metav1.StatusReasonBadRequest, `operator "gt" has no PromQL label matcher`},
		{"external: operator without a matcher", "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_messages_ready?labelSelector=" + url.QueryEscape("queue<3"), 400, metav1.StatusReasonBadRequest, `has no PromQL label matcher`},
		{"malformed metric label selector", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests?metricLabelSelector=" + url.QueryEscape("a in ("), 400, metav1.StatusReasonBadRequest, `metricLabelSelector "a in ("`},
		{"external: malformed selector", "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_messages_ready?labelSelector=" + url.QueryEscape("queue in (a"), 400, metav1.StatusReasonBadRequest, ""},
		{"unknown resource", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/widgets.example.com/*/http_requests", 404, metav1.StatusReasonNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st metav1.Status
			code, err := e.getJSON(tc.path, &st)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || st.Kind != "Status" || st.Status != metav1.StatusFailure || st.Reason != tc.reason || int(st.Code) != tc.code {
				t.Errorf("HTTP %d %+v, want %d Status with reason %s", code, st, tc.code, tc.reason)
			}
			if !strings.Contains(st.Message, tc.msg) {
				t.Errorf("message %q lacks %q", st.Message, tc.msg)
			}
		})
	}
}

func (e *env) testDiscovery(t *testing.T) {
	var list metav1.APIResourceList
	if _, err := e.getJSON("/apis/custom.metrics.k8s.io/v1beta2", &list); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pods/http_requests", "pods/inflight_requests", "deployments.apps/inflight_requests", "nodes/node_memory_used_bytes", "pods/scraped_gauge"} {
		if !hasResource(&list, want) {
			t.Errorf("discovery lacks %s", want)
		}
	}
	for _, notWant := range []string{"pods/http_requests_total", "pods/late_gauge", "nodes/http_requests", "pods/ancient_gauge", "jobs.batch/scraped_gauge"} {
		if hasResource(&list, notWant) {
			t.Errorf("discovery has %s", notWant)
		}
	}
	start := time.Now()
	remoteWrite(t, e.vigil.HTTP, []prompb.TimeSeries{{
		Labels:  promLabels("__name__", "late_gauge", "namespace", "shop", "pod", "web-1"),
		Samples: []prompb.Sample{{Timestamp: e.t0.Add(-2 * time.Second).UnixMilli(), Value: 1}},
	}})
	for !hasResource(&list, "pods/late_gauge") {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("pods/late_gauge not discovered 30s after it was written (refresh interval 1s)")
		}
		time.Sleep(200 * time.Millisecond)
		list = metav1.APIResourceList{}
		if _, err := e.getJSON("/apis/custom.metrics.k8s.io/v1beta2", &list); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("new series discovered %v after the write", time.Since(start).Round(time.Millisecond))
	got, err := e.customClient("v1beta2").NamespacedMetrics("shop").GetForObject(schema.GroupKind{Kind: "Pod"}, "web-1", "late_gauge", labels.Everything())
	if err != nil || got.Value.MilliValue() != 1000 {
		t.Errorf("late_gauge of web-1: %v %v, want 1", got, err)
	}
}

// A deployment with a fresh pod (4, 5 s old) and a stale one (100, 4 m
// old, max age 2m): the value is the fresh pod's alone, the stale pod is
// left out of the list and logged, and the external metric over both
// sums only the fresh one.
func (e *env) testMixedFreshness(t *testing.T) {
	cmc := e.customClient("v1beta2")
	got, err := cmc.NamespacedMetrics("batch").GetForObject(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "mix", "inflight_requests", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if got.Value.MilliValue() != 4000 {
		t.Errorf("deployment mix: %s, want 4 (the fresh pod only; 104 includes the stale one)", got.Value.String())
	}
	if wantTS := e.t0.Add(-5 * time.Second); !got.Timestamp.Time.Equal(wantTS) {
		t.Errorf("timestamp %v, want %v", got.Timestamp.Time, wantTS)
	}
	pods, err := cmc.NamespacedMetrics("batch").GetForObjects(schema.GroupKind{Kind: "Pod"}, labels.SelectorFromSet(labels.Set{"app": "mix"}), "inflight_requests", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].DescribedObject.Name != "mix-1" || pods.Items[0].Value.MilliValue() != 4000 {
		t.Errorf("pods of mix: %+v, want mix-1 = 4 alone", pods.Items)
	}
	if want := `msg="stale metric value; left out" metric=inflight_requests resource=pods namespace=batch object=mix-2`; !strings.Contains(e.logs.String(), want) {
		t.Errorf("log lacks %q", want)
	}
	emc, err := external_metrics.NewForConfig(e.rest)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := emc.NamespacedMetrics("batch").List("mixed_inflight", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if len(ext.Items) != 1 || ext.Items[0].Value.MilliValue() != 4000 {
		t.Errorf("external mixed_inflight: %+v, want 4", ext.Items)
	}
}

// A rule that renames a counter without a metricsQuery still serves its
// rate.
func (e *env) testCounterRule(t *testing.T) {
	got, err := e.customClient("v1beta2").NamespacedMetrics("shop").GetForObject(schema.GroupKind{Kind: "Pod"}, "web-2", "web_requests", labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if got.Value.MilliValue() != 500 {
		t.Errorf("web_requests of web-2: %s, want the rate 0.5 (not the counter's value)", got.Value.String())
	}
	if got.WindowSeconds == nil || *got.WindowSeconds != 120 {
		t.Errorf("window %v, want 120 s", got.WindowSeconds)
	}
}

// A rule's name.as result that is not a valid metric name is skipped and
// logged.
func (e *env) testRuleNames(t *testing.T) {
	var list metav1.APIResourceList
	if _, err := e.getJSON("/apis/custom.metrics.k8s.io/v1beta2", &list); err != nil {
		t.Fatal(err)
	}
	for _, r := range list.APIResources {
		if strings.Contains(r.Name, "Node/") {
			t.Errorf("discovery has %s", r.Name)
		}
	}
	if want := `msg="rule names a series with an invalid metric name; skipped" rule=2 series=node_memory_used_bytes name=Node/memory_used_bytes`; !strings.Contains(e.logs.String(), want) {
		t.Errorf("log lacks %q", want)
	}
}

// A timeout that is not a whole number of seconds reaches Vigil as one.
func (e *env) testVigilTimeout(t *testing.T) {
	c, err := adapter.NewClient(e.vigil.HTTP, 2500*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Query(context.Background(), `sum(inflight_requests{namespace="shop"})`, e.t0, 0)
	if err != nil {
		t.Fatalf("query with a 2.5s timeout: %v", err)
	}
	if len(got) != 1 || got[0].Value != 110 {
		t.Errorf("got %+v, want 110", got)
	}
}

// directProvider is a provider on the same Vigil with its own options and
// log, called without the API server (one per process).
func (e *env) directProvider(t *testing.T, opts adapter.Options) (*adapter.Provider, *syncBuffer) {
	t.Helper()
	c, err := adapter.NewClient(e.vigil.HTTP, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	if opts.Now == nil {
		opts.Now = func() time.Time { return e.t0 }
	}
	p := adapter.NewProvider(nil, c, opts, slog.New(slog.NewTextHandler(logs, nil)))
	if err := p.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("provider log:\n%s", logs.String())
		}
	})
	return p, logs
}

var podsGR = schema.GroupResource{Resource: "pods"}

// With the default flags (max age 5m, Vigil's lookback) a gauge 6 m old
// is a logged 503, not a silent 404.
func (e *env) testDefaultMaxAge(t *testing.T) {
	p, logs := e.directProvider(t, adapter.Options{})
	info := provider.CustomMetricInfo{GroupResource: podsGR, Namespaced: true, Metric: "old_gauge"}
	_, err := p.GetMetricByName(context.Background(), types.NamespacedName{Namespace: "shop", Name: "web-1"}, info, labels.Everything())
	if !apierrors.IsServiceUnavailable(err) || !strings.Contains(err.Error(), "newest sample is 6m0s old, max age 5m0s") {
		t.Errorf("6m old gauge at default max age: %v, want 503 saying 6m0s old", err)
	}
	if want := `object=web-1 newest_sample=`; !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "age=6m0s max_age=5m0s") {
		t.Errorf("log lacks the stale line: %s", logs.String())
	}
}

// Discovery looks at the window only: a metric whose newest sample
// leaves it drops out at the next refresh.
func (e *env) testDiscoveryWindow(t *testing.T) {
	var mu sync.Mutex
	now := e.t0
	p, _ := e.directProvider(t, adapter.Options{DiscoveryWindow: 10 * time.Minute, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	has := func(m string) bool {
		for _, i := range p.ListAllMetrics() {
			if i.GroupResource == podsGR && i.Metric == m {
				return true
			}
		}
		return false
	}
	if !has("stale_gauge") || has("ancient_gauge") {
		t.Errorf("at t0: stale_gauge (4m old) %v, ancient_gauge (11m old) %v; want true, false", has("stale_gauge"), has("ancient_gauge"))
	}
	mu.Lock()
	now = e.t0.Add(7 * time.Minute)
	mu.Unlock()
	if err := p.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if has("stale_gauge") || !has("http_requests") {
		t.Errorf("7m later: stale_gauge (11m old) %v, http_requests (7m old) %v; want false, true", has("stale_gauge"), has("http_requests"))
	}
}

func (e *env) testDiscoveryLimit(t *testing.T) {
	p, logs := e.directProvider(t, adapter.Options{DiscoveryLimit: 2})
	n := 0
	for _, i := range p.ListAllMetrics() {
		if i.GroupResource == podsGR {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d pod metrics with a limit of 2", n)
	}
	if !strings.Contains(logs.String(), `msg="too many metric names; list cut" resource=pods`) {
		t.Errorf("cut not logged: %s", logs.String())
	}
}

// query runs expr against Vigil directly at t0 and returns the values by
// the label by.
func (e *env) query(t *testing.T, expr, by string) map[string]float64 {
	t.Helper()
	u := e.vigil.HTTP + "/api/v1/query?" + url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(e.t0.UnixMilli())/1000, 'f', 3, 64)}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v %s", expr, err, r.Status)
	}
	out := map[string]float64{}
	for _, s := range r.Data.Result {
		v, err := strconv.ParseFloat(s.Value[1].(string), 64)
		if err != nil {
			t.Fatal(err)
		}
		out[s.Metric[by]] = v
	}
	return out
}

func (e *env) getJSON(path string, v any) (int, error) {
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(e.rest.Host + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return resp.StatusCode, fmt.Errorf("%s: %w: %.300s", path, err, b)
	}
	return resp.StatusCode, nil
}

func hasResource(l *metav1.APIResourceList, name string) bool {
	for _, r := range l.APIResources {
		if r.Name == name {
			return true
		}
	}
	return false
}

func milli(v float64) int64 { return int64(math.Round(v * 1000)) }

func promLabels(nv ...string) []prompb.Label {
	var ls []prompb.Label
	for i := 0; i+1 < len(nv); i += 2 {
		ls = append(ls, prompb.Label{Name: nv[i], Value: nv[i+1]})
	}
	// Remote write wants labels sorted by name.
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
	return ls
}

func remoteWrite(t *testing.T, base string, series []prompb.TimeSeries) {
	t.Helper()
	b, err := (&prompb.WriteRequest{Timeseries: series}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, b)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("remote write: %s: %s", resp.Status, body)
	}
}

type syncBuffer = vigiltest.SyncBuffer

package adapter_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigil-tsdb/vigil/adapter"
)

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		line int
		want string // in the error, after "rules.yaml:<line>: "
	}{
		{"unknown top-level field", "rateWindow: 2m\nrulez: []\n", 2, "field rulez not found"},
		{"unknown rule field", "rules:\n  - seriesQuery: 'x{pod!=\"\"}'\n    metricQuery: 'x'\n", 3, "field metricQuery not found"},
		{"duplicate key", "rules:\n  - seriesQuery: 'x'\n    seriesQuery: 'y'\n", 3, `mapping key "seriesQuery" already defined at line 2`},
		{"bad duration", "rateWindow: two minutes\n", 1, `"two minutes" is not a duration`},
		{"tiny rate window", "\nrateWindow: 10ms\n", 2, "rateWindow: 10ms is shorter than 1s"},
		{"missing seriesQuery", "rules:\n  - resources: [pod]\n", 2, "rules[0].seriesQuery: missing"},
		{"bad seriesQuery", "rules:\n  - seriesQuery: 'rate(x[5m])'\n", 2, "rules[0].seriesQuery: not a series selector"},
		{"unknown resource", "rules:\n  - seriesQuery: 'x'\n    resources:\n      - pod\n      - widget\n", 5, `rules[0].resources[1]: unknown object label "widget"; known: pod, service`},
		{"job is a scrape job", "rules:\n  - seriesQuery: 'x'\n    resources: [job]\n", 3, `rules[0].resources[0]: unknown object label "job"; known: pod, service, deployment, statefulset, daemonset, replicaset, job_name`},
		{"resource twice", "rules:\n  - seriesQuery: 'x'\n    resources: [pod, pod]\n", 3, `rules[0].resources[1]: "pod" listed twice`},
		{"bad name regexp", "rules:\n  - seriesQuery: 'x'\n    name:\n      matches: '(x'\n      as: y\n", 4, "rules[0].name.matches: not a regexp"},
		{"matches without as", "rules:\n  - seriesQuery: 'x'\n    name:\n      matches: '(x)'\n", 3, "rules[0].name: missing"},
		{"no LabelMatchers", "rules:\n  - seriesQuery: 'x'\n    metricsQuery: 'sum by (<<.GroupBy>>) (x)'\n", 3, "rules[0].metricsQuery: template must use <<.LabelMatchers>>"},
		{"no GroupBy", "rules:\n  - seriesQuery: 'x'\n    metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'\n", 3, "rules[0].metricsQuery: template must use <<.GroupBy>>"},
		{"template syntax", "rules:\n  - seriesQuery: 'x'\n    metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>}) <<if>>'\n", 3, "rules[0].metricsQuery: template"},
		{"unknown template field", "rules:\n  - seriesQuery: 'x'\n    metricsQuery: 'sum by (<<.GroupBy>>) (<<.Serie>>{<<.LabelMatchers>>})'\n", 3, "can't evaluate field Serie"},
		{"renders to bad PromQL", "rules:\n  - seriesQuery: 'x'\n    metricsQuery: 'sum by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>}'\n", 3, "renders to invalid PromQL"},
		{"external bad name", "external:\n  - name: Queue Depth\n    query: 'x'\n", 2, `external[0].name: "Queue Depth" is not a valid metric name`},
		{"external duplicate", "external:\n  - name: q\n    query: 'x'\n  - name: q\n    query: 'y'\n", 4, `external[1].name: "q" is already the name of external[0]`},
		{"external bad PromQL", "external:\n  - name: q\n    query: 'sum(x'\n", 3, "external[0].query: not valid PromQL"},
		{"external no selector", "external:\n  - name: q\n    query: 'vector(1)'\n", 3, "external[0].query: has no series selector"},
		{"external missing query", "external:\n  - name: q\n", 2, "external[0].query: missing"},
		{"two documents", "rules: []\n---\nrules: []\n", 2, "more than one YAML document"},
		{"not YAML", "rules: [\n", 1, "did not find expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapter.ParseConfig("rules.yaml", []byte(tc.yaml))
			var ce *adapter.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T), want a *ConfigError", err, err)
			}
			if ce.Line != tc.line {
				t.Errorf("line %d, want %d: %v", ce.Line, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "rules.yaml:") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

func TestParseConfigValid(t *testing.T) {
	for _, src := range []string{"", "rules: []\n", rulesYAML, docsExample} {
		cfg, err := adapter.ParseConfig("rules.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if cfg.RateWindow == 0 {
			t.Errorf("%q: rate window not defaulted", src)
		}
	}
}

// docsExample is the rules example of docs/kubernetes.md.
const docsExample = `
rateWindow: 2m
disableDefaults: false
rules:
  - seriesQuery: '{__name__=~"http_request_duration_seconds_bucket",namespace!="",pod!=""}'
    resources: [pod, deployment]
    name:
      matches: '^(.*)_seconds_bucket$'
      as: '${1}_p99_seconds'
    metricsQuery: 'histogram_quantile(0.99, sum by (le, <<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>}[5m])))'
external:
  - name: queue_messages_ready
    query: 'sum by (queue) (rabbitmq_queue_messages_ready)'
    namespaced: false
`

// FuzzParseConfig: the rules decoder never panics, and what it accepts is
// usable (every error is a ConfigError with the file name).
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"", rulesYAML, docsExample, "rules:\n  - seriesQuery: 'x'\n    metricsQuery: '<<.GroupBy>><<.LabelMatchers>>'\n",
		"external:\n  - name: q\n    query: 'sum(x'\n", "rateWindow: 1h\n", "rules: [{seriesQuery: '{a=\"b\"}', resources: [node]}]\n", "\t- :\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := adapter.ParseConfig("f.yaml", b)
		if err != nil {
			var ce *adapter.ConfigError
			if !errors.As(err, &ce) || ce.File != "f.yaml" {
				t.Fatalf("error %v (%T) is not a ConfigError of f.yaml", err, err)
			}
			return
		}
		if cfg.RateWindow <= 0 {
			t.Fatalf("accepted rate window %v", cfg.RateWindow)
		}
		// Accepted twice the same way: decoding is deterministic.
		if _, err := adapter.ParseConfig("f.yaml", b); err != nil {
			t.Fatalf("accepted once, then rejected: %v", err)
		}
	})
}

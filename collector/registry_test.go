package collector

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func targetIDs(s Snapshot) []string {
	var ids []string
	for _, t := range s.Targets {
		ids = append(ids, t.Job+"/"+t.ID)
	}
	return ids
}

func TestRegistryConfig(t *testing.T) {
	cfg := DefaultRegistryConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := fs.Parse([]string{"-targets.prefix=/x/", "-targets.request-timeout=3s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Prefix != "/x/" || cfg.RequestTimeout != 3*time.Second {
		t.Fatalf("flags not applied: %+v", cfg)
	}
	for _, tc := range []struct {
		name string
		mod  func(*RegistryConfig)
	}{
		{name: "prefix without trailing slash", mod: func(c *RegistryConfig) { c.Prefix = "/vigil" }},
		{name: "zero timeout", mod: func(c *RegistryConfig) { c.RequestTimeout = 0 }},
		{name: "max backoff below backoff", mod: func(c *RegistryConfig) { c.MaxRetryBackoff = time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultRegistryConfig()
			tc.mod(&c)
			if c.Validate() == nil {
				t.Fatal("invalid config accepted")
			}
		})
	}
}

func TestRegistryPutListDelete(t *testing.T) {
	ctx := testCtx(t)
	r := testRegistry(t, newTestClient(t, etcdEndpoint))

	if err := r.PutJob(ctx, Job{Name: "node", ScrapeConfig: ScrapeConfig{Interval: Duration(30 * time.Second), Labels: map[string]string{"team": "infra"}}}); err != nil {
		t.Fatal(err)
	}
	key, err := r.Put(ctx, Target{Job: "node", Address: "http://10.0.0.7:9100/metrics", ScrapeConfig: ScrapeConfig{Labels: map[string]string{"rack": "r1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := r.cfg.Prefix + "targets/node/10.0.0.7:9100%2Fmetrics"; key != want {
		t.Fatalf("key = %s, want %s", key, want)
	}
	// A job name that needs escaping.
	if _, err := r.Put(ctx, Target{Job: "team a/web", ID: "web-1", Address: "web-1:8080"}); err != nil {
		t.Fatal(err)
	}
	s, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targetIDs(s), []string{"node/10.0.0.7:9100%2Fmetrics", "team a/web/web-1"}; !slices.Equal(got, want) {
		t.Fatalf("targets = %v, want %v", got, want)
	}
	node := s.Targets[0]
	if node.Interval != Duration(30*time.Second) || node.Labels["team"] != "infra" || node.Labels["rack"] != "r1" || node.URL().String() != "http://10.0.0.7:9100/metrics" {
		t.Fatalf("resolved target = %+v", node)
	}
	if len(s.Invalid) != 0 || s.Revision == 0 {
		t.Fatalf("snapshot = %+v", s)
	}
	// The stored value is normalized JSON.
	resp, err := r.client.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(resp.Kvs[0].Value), `{"job":"node","address":"10.0.0.7:9100","scheme":"http","metrics_path":"/metrics","labels":{"rack":"r1"}}`; got != want {
		t.Fatalf("stored %s, want %s", got, want)
	}

	if err := r.Delete(ctx, "node", node.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "node", "missing"); err != nil {
		t.Fatalf("delete of a missing target: %v", err)
	}
	s, err = r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := targetIDs(s); !slices.Equal(got, []string{"team a/web/web-1"}) {
		t.Fatalf("after delete: %v", got)
	}
}

func TestRegistryPutRejects(t *testing.T) {
	ctx := testCtx(t)
	r := testRegistry(t, newTestClient(t, etcdEndpoint))
	if err := r.PutJob(ctx, Job{Name: "slow", ScrapeConfig: ScrapeConfig{Interval: Duration(5 * time.Second)}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		t       Target
		wantErr string
	}{
		{name: "no job", t: Target{Address: "h:1"}, wantErr: "job: is empty"},
		{name: "no address", t: Target{Job: "j"}, wantErr: "address: is required"},
		{name: "timeout above own interval", t: Target{Job: "j", Address: "h:1", ScrapeConfig: ScrapeConfig{Interval: Duration(time.Second), Timeout: Duration(2 * time.Second)}}, wantErr: "timeout: 2s is longer"},
		{name: "timeout above the job's interval", t: Target{Job: "slow", Address: "h:1", ScrapeConfig: ScrapeConfig{Timeout: Duration(8 * time.Second)}}, wantErr: `job "slow": timeout: 8s is longer than the interval 5s`},
		{name: "id with slash", t: Target{Job: "j", ID: "a/b", Address: "h:1"}, wantErr: "id \"a/b\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Put(ctx, tc.t)
			if !errors.Is(err, ErrInvalidTarget) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want ErrInvalidTarget with %q", err, tc.wantErr)
			}
		})
	}
	if err := r.PutJob(ctx, Job{Name: "bad", ScrapeConfig: ScrapeConfig{Labels: map[string]string{"__x": "y"}}}); !errors.Is(err, ErrInvalidTarget) {
		t.Fatalf("PutJob of an invalid job: %v", err)
	}
	s, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Targets) != 0 || len(s.Invalid) != 0 {
		t.Fatalf("rejected writes reached etcd: %+v", s)
	}
}

// TestRegistryInvalidValues writes bad values with the plain etcd client (as
// an operator with etcdctl would): they are skipped, reported and counted,
// and valid targets keep flowing through the same watch.
func TestRegistryInvalidValues(t *testing.T) {
	ctx := testCtx(t)
	c := newTestClient(t, etcdEndpoint)
	reg := prometheus.NewRegistry()
	cfg := testRegistry(t, c).cfg
	r, err := NewRegistry(cfg, c, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Prefix
	put := func(k, v string) {
		t.Helper()
		if _, err := c.Put(ctx, p+k, v); err != nil {
			t.Fatal(err)
		}
	}
	put("targets/a/good-1", `{"address":"h:1"}`)
	put("targets/a/bad-json", `{"address":`)
	put("targets/a/unknown-field", `{"address":"h:2","color":"red"}`)

	snaps := r.Watch(ctx)
	var last Snapshot
	waitFor := func(what string, cond func(Snapshot) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !cond(last) {
			select {
			case s, ok := <-snaps:
				if !ok {
					t.Fatal("watch ended")
				}
				last = s
			case <-deadline:
				t.Fatalf("%s: not within 30s; last snapshot %+v", what, last)
			}
		}
	}
	waitFor("initial snapshot", func(s Snapshot) bool { return s.Revision > 0 })
	if got := targetIDs(last); !slices.Equal(got, []string{"a/good-1"}) || len(last.Invalid) != 2 {
		t.Fatalf("initial: targets %v, invalid %+v", got, last.Invalid)
	}
	if !strings.Contains(last.Invalid[1].Err, "color: unknown field") || last.Invalid[1].Key != p+"targets/a/unknown-field" {
		t.Fatalf("invalid entry = %+v", last.Invalid[1])
	}

	put("targets/a/good-2", "address: h:3\ninterval: 30s\n") // YAML by hand is fine
	put("jobs/b", `{"interval":"2s"}`)
	put("targets/b/too-slow", `{"address":"h:4","timeout":"5s"}`) // valid alone, not with job b
	put("targets/b/job-mismatch", `{"job":"c","address":"h:5"}`)
	put("stray", "x")
	put("targets/a/oversized", `{"address":"h:6","labels":{"a":"`+strings.Repeat("x", MaxValueBytes)+`"}}`)
	waitFor("good-2 and 5 invalid", func(s Snapshot) bool {
		return slices.Equal(targetIDs(s), []string{"a/good-1", "a/good-2"}) && len(s.Invalid) == 6
	})
	if got := metricValue(t, r.metrics.invalid); got != 6 {
		t.Fatalf("invalid gauge = %v", got)
	}
	if got := metricValue(t, r.metrics.targets.WithLabelValues("a")); got != 2 {
		t.Fatalf("targets{job=a} = %v", got)
	}
	wantErrs := map[string]string{
		"targets/b/too-slow":     "timeout: 5s is longer than the interval 2s",
		"targets/b/job-mismatch": `job: "c" differs from the key's job "b"`,
		"stray":                  "not a registry key",
		"targets/a/oversized":    "limit is 65536",
	}
	for _, inv := range last.Invalid {
		if want, ok := wantErrs[strings.TrimPrefix(inv.Key, p)]; ok && !strings.Contains(inv.Err, want) {
			t.Errorf("%s: err %q, want %q", inv.Key, inv.Err, want)
		}
	}

	// A bad job value makes its targets invalid, not others'.
	put("jobs/a", `{"interval":"fast"}`)
	waitFor("job a invalid", func(s Snapshot) bool { return len(s.Targets) == 0 && len(s.Invalid) == 9 })
	// Fixing values brings them back.
	put("jobs/a", `{"interval":"20s"}`)
	put("targets/a/bad-json", `{"address":"h:7"}`)
	waitFor("fixed", func(s Snapshot) bool {
		return slices.Equal(targetIDs(s), []string{"a/bad-json", "a/good-1", "a/good-2"}) && len(s.Invalid) == 5
	})
	if last.Targets[1].Interval != Duration(20*time.Second) || last.Targets[2].Interval != Duration(30*time.Second) {
		t.Fatalf("job defaults not applied: %+v", last.Targets)
	}
}

// metricValue reads a gauge or counter.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

package rules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func groupNames(s Snapshot) []string {
	var out []string
	for _, g := range s.Groups {
		out = append(out, g.Namespace+"/"+g.RuleGroup.Name)
	}
	return out
}

func TestStoreRoundTripAndReplace(t *testing.T) {
	ctx := testCtx(t)
	s, c := testStore(t)
	res, err := s.PutNamespace(ctx, "team a", readTestdata(t, "node.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Written, []string{"node", "capacity"}) || len(res.Deleted) != 0 || res.Revision == 0 {
		t.Fatalf("first upload: %+v", res)
	}
	// One key per group, names escaped.
	kv, err := c.Get(ctx, s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, k := range kv.Kvs {
		keys = append(keys, string(k.Key))
	}
	if want := []string{s.cfg.Prefix + "team%20a/capacity", s.cfg.Prefix + "team%20a/node"}; !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	snap, err := s.Get(ctx, "team a", "node")
	if err != nil {
		t.Fatal(err)
	}
	g := snap.Groups[0].RuleGroup
	if len(snap.Groups) != 1 || g.Name != "node" || len(g.Rules) != 2 || g.Rules[0].Alert != "InstanceDown" ||
		g.Rules[0].Expr != "up == 0" || time.Duration(g.Rules[0].For) != 5*time.Minute || g.Rules[0].Labels["severity"] != "page" ||
		time.Duration(g.Interval) != 30*time.Second {
		t.Fatalf("read back %+v", snap.Groups)
	}
	// The same file again changes nothing.
	if res, err := s.PutNamespace(ctx, "team a", readTestdata(t, "node.yml")); err != nil || len(res.Written) != 0 || len(res.Unchanged) != 2 {
		t.Fatalf("same upload: %+v %v", res, err)
	}
	// Replace: capacity is gone from the file, so from the store; node changed.
	file := "groups:\n- name: node\n  rules:\n  - alert: InstanceDown\n    expr: up == 0\n    for: 10m\n- name: new\n  rules: [{record: 'x:y', expr: sum(up)}]\n"
	res, err = s.PutNamespace(ctx, "team a", []byte(file))
	if err != nil || !slices.Equal(res.Written, []string{"node", "new"}) || !slices.Equal(res.Deleted, []string{"capacity"}) {
		t.Fatalf("replace: %+v %v", res, err)
	}
	// Another namespace is untouched by the replacement.
	if _, err := s.PutNamespace(ctx, "other", []byte("groups: [{name: capacity, rules: [{record: 'a:b', expr: up}]}]")); err != nil {
		t.Fatal(err)
	}
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"other/capacity", "team a/new", "team a/node"}; !slices.Equal(groupNames(all), want) || len(all.Invalid) != 0 {
		t.Fatalf("list %v %v, want %v", groupNames(all), all.Invalid, want)
	}
	if ns := all.Namespaces(); len(ns["team a"]) != 2 || time.Duration(ns["team a"][1].RuleGroup.Rules[0].For) != 10*time.Minute {
		t.Fatalf("namespaces: %+v", ns)
	}

	// PutGroup adds one group and leaves the others.
	if _, err := s.PutGroup(ctx, "other", []byte("groups: [{name: more, rules: [{record: 'c:d', expr: up}]}]")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutGroup(ctx, "other", readTestdata(t, "node.yml")); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "2 groups, want exactly one") {
		t.Fatalf("PutGroup with two groups: %v", err)
	}
	if snap, err := s.Get(ctx, "other", ""); err != nil || !slices.Equal(groupNames(snap), []string{"other/capacity", "other/more"}) {
		t.Fatalf("other: %v %v", groupNames(snap), err)
	}

	// Delete one group, then a namespace; missing ones are ErrNotFound.
	if n, err := s.Delete(ctx, "team a", "new"); err != nil || n != 1 {
		t.Fatalf("delete group: %d %v", n, err)
	}
	if _, err := s.Delete(ctx, "team a", "new"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete a missing group: %v", err)
	}
	if n, err := s.Delete(ctx, "other", ""); err != nil || n != 2 {
		t.Fatalf("delete namespace: %d %v", n, err)
	}
	if _, err := s.Get(ctx, "other", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get a deleted namespace: %v", err)
	}
	if _, err := s.Get(ctx, "team a", "capacity"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get a replaced-away group: %v", err)
	}
	if _, err := s.Delete(ctx, "a/b", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a namespace with /: %v", err)
	}
}

// A refused file changes nothing, and says where it is wrong.
func TestStoreRefusesBadFiles(t *testing.T) {
	ctx := testCtx(t)
	reg := prometheus.NewRegistry()
	s, _ := testStore(t)
	s2, err := New(s.cfg, s.client, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.PutNamespace(ctx, "ns", readTestdata(t, "node.yml")); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"bad_yaml.yml":        "yaml: line 3:",
		"bad_promql.yml":      "5:15: group \"node\", rule 1",
		"unknown_field.yml":   "line 6: field fore not found",
		"duplicate_group.yml": "6:5: groupname: \"node\" is repeated",
		"bad_template.yml":    "unclosed action",
		"empty_groups.yml":    "no rule groups",
	} {
		_, err := s2.PutNamespace(ctx, "ns", readTestdata(t, file))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v, want ErrInvalid with %q", file, err, want)
		}
	}
	snap, err := s2.Get(ctx, "ns", "")
	if err != nil || !slices.Equal(groupNames(snap), []string{"ns/capacity", "ns/node"}) {
		t.Fatalf("after refusals: %v %v", groupNames(snap), err)
	}
	if got := metricValue(t, s2.metrics.ops.WithLabelValues("put_namespace", "invalid")); got != 6 {
		t.Fatalf("invalid put_namespace = %v, want 6", got)
	}
	if got := metricValue(t, s2.metrics.ops.WithLabelValues("put_namespace", "success")); got != 1 {
		t.Fatalf("successful put_namespace = %v, want 1", got)
	}
}

// A group over 1 MiB encoded is refused; one just under it is stored.
func TestStoreSizeLimit(t *testing.T) {
	ctx := testCtx(t)
	s, _ := testStore(t)
	file := func(n int) []byte {
		return fmt.Appendf(nil, "groups:\n- name: big\n  rules:\n  - alert: Big\n    expr: up == 0\n    annotations:\n      text: %s\n", strings.Repeat("x", n))
	}
	if _, err := s.PutNamespace(ctx, "ns", file(MaxGroupBytes)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "over the limit of 1048576") {
		t.Fatalf("oversized group: %v", err)
	}
	if _, err := s.PutNamespace(ctx, "ns", file(MaxGroupBytes-200)); err != nil {
		t.Fatalf("a group just under the limit: %v", err)
	}
	// Two such groups do not fit one etcd transaction: refused before etcd.
	two := fmt.Appendf(nil, "groups:\n- name: a\n  rules: [{alert: A, expr: up, annotations: {t: %s}}]\n- name: b\n  rules: [{alert: B, expr: up, annotations: {t: %s}}]\n",
		strings.Repeat("x", 800<<10), strings.Repeat("y", 800<<10))
	if _, err := s.PutNamespace(ctx, "ns2", two); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "one etcd transaction") {
		t.Fatalf("oversized namespace: %v", err)
	}
}

// Values written by hand that do not decode are listed apart; the valid
// groups are still there, for List, Get and Watch.
func TestStoreInvalidValues(t *testing.T) {
	ctx := testCtx(t)
	s, c := testStore(t)
	if _, err := s.PutNamespace(ctx, "ns", readTestdata(t, "node.yml")); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{
		s.cfg.Prefix + "ns/broken":     "groups: [{name: broken, rules: [{record: r, expr: 'up =='}]}]",
		s.cfg.Prefix + "ns/renamed":    "groups: [{name: other, rules: []}]",
		s.cfg.Prefix + "ns/a/b":        "groups: [{name: b, rules: []}]",
		s.cfg.Prefix + "ns/not%2fyaml": ":::",
	}
	for k, v := range bad {
		if _, err := c.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, snap Snapshot) {
		t.Helper()
		if !slices.Equal(groupNames(snap), []string{"ns/capacity", "ns/node"}) {
			t.Fatalf("%s: groups %v", what, groupNames(snap))
		}
		if len(snap.Invalid) != len(bad) {
			t.Fatalf("%s: invalid %+v, want %d", what, snap.Invalid, len(bad))
		}
		for _, inv := range snap.Invalid {
			if bad[inv.Key] == "" || inv.Err == "" {
				t.Fatalf("%s: unexpected invalid entry %+v", what, inv)
			}
		}
		errs := map[string]string{}
		for _, inv := range snap.Invalid {
			errs[strings.TrimPrefix(inv.Key, s.cfg.Prefix)] = inv.Err
		}
		for k, want := range map[string]string{
			"ns/broken":     "could not parse expression",
			"ns/renamed":    `the value's group is "other", the key's "renamed"`,
			"ns/a/b":        "not a rule group key",
			"ns/not%2fyaml": "canonical escaping",
		} {
			if !strings.Contains(errs[k], want) {
				t.Fatalf("%s: %s: %q lacks %q", what, k, errs[k], want)
			}
		}
	}
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("list", all)
	if got := metricValue(t, s.metrics.invalid); got != float64(len(bad)) {
		t.Fatalf("vigil_rules_invalid_groups = %v", got)
	}
	if got := metricValue(t, s.metrics.groups); got != 2 {
		t.Fatalf("vigil_rules_groups = %v", got)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.Watch(wctx)
	select {
	case snap := <-w:
		check("watch", snap)
	case <-time.After(30 * time.Second):
		t.Fatal("no snapshot from Watch")
	}
	// Get of the namespace lists the invalid ones too; a replacement
	// removes them (they are keys of the namespace the file does not have).
	if snap, err := s.Get(ctx, "ns", ""); err != nil || len(snap.Invalid) != 4 || len(snap.Groups) != 2 {
		t.Fatalf("get ns: %v %+v %v", groupNames(snap), snap.Invalid, err)
	}
	res, err := s.PutNamespace(ctx, "ns", readTestdata(t, "node.yml"))
	if err != nil || len(res.Deleted) != 4 {
		t.Fatalf("replace over invalid keys: %+v %v", res, err)
	}
	cancel()
	for range w { // drained and closed when the watch ends
	}
}

// metricValue is the value of a gauge or counter.
func metricValue(t *testing.T, c prometheus.Metric) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	if m.Gauge != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}

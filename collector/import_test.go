package collector

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestImportPrometheus(t *testing.T) {
	b, err := os.ReadFile("testdata/import/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	im, err := ImportPrometheus(b, ImportOptions{BaseDir: "testdata/import"})
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Jobs) != 2 || im.Jobs[0].Name != "node" || im.Jobs[1].Name != "api" {
		t.Fatalf("jobs %+v", im.Jobs)
	}
	node, api := im.Jobs[0], im.Jobs[1]
	if time.Duration(node.Interval) != 30*time.Second || time.Duration(node.Timeout) != 5*time.Second {
		t.Fatalf("node job: interval %v timeout %v (global interval must apply)", node.Interval, node.Timeout)
	}
	if api.Scheme != "https" || api.MetricsPath != "/admin/metrics" || api.BasicAuth == nil || api.BasicAuth.PasswordRef != "api-password" ||
		api.TLS == nil || api.TLS.CARef != "ca.pem" || api.TLS.ServerName != "api.internal" || api.HonorLabels == nil || !*api.HonorLabels {
		t.Fatalf("api job %+v", api)
	}
	var addrs []string
	for _, tg := range im.Targets {
		addrs = append(addrs, tg.Job+"/"+tg.Address+"/"+tg.Labels["env"]+tg.Labels["rack"])
	}
	want := []string{"node/10.0.0.1:9100/prod", "node/10.0.0.2:9100/prod", "node/10.0.1.1:9100/r1", "node/10.0.1.2:9100/", "node/10.0.2.1:9100/r2", "api/api-1:8443/"}
	if !slices.Equal(addrs, want) {
		t.Fatalf("targets %v\nwant    %v", addrs, want)
	}
	joined := strings.Join(im.Warnings, "\n")
	for _, w := range []string{"file_sd_configs were read once", `"api-password"`, `"ca.pem"`} {
		if !strings.Contains(joined, w) {
			t.Errorf("no warning about %s in:\n%s", w, joined)
		}
	}
}

func TestImportPrometheusErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`[{"targets": ["a:1"], "labelz": {}}]`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cfg, want string
		skip            bool
	}{
		{"no scrape configs", "global: {}\n", "no scrape_configs", false},
		{"relabelling refused", "scrape_configs:\n- job_name: x\n  relabel_configs: []\n  static_configs: [{targets: ['a:1']}]\n", "relabel_configs (line 3)", false},
		{"relabelling skipped on request", "scrape_configs:\n- job_name: x\n  relabel_configs: []\n  static_configs: [{targets: ['a:1']}]\n", "", true},
		{"kubernetes_sd refused", "scrape_configs:\n- job_name: x\n  kubernetes_sd_configs: [{role: pod}]\n", "kubernetes_sd_configs", false},
		{"inline password", "scrape_configs:\n- job_name: x\n  basic_auth: {username: u, password: p}\n", "password is inline", false},
		{"inline bearer token", "scrape_configs:\n- job_name: x\n  bearer_token: t\n", "bearer_token is inline", false},
		{"bad interval", "scrape_configs:\n- job_name: x\n  scrape_interval: 5x\n", "scrape_interval", false},
		{"duplicate job", "scrape_configs:\n- job_name: x\n- job_name: x\n", "given twice", false},
		{"bad address", "scrape_configs:\n- job_name: x\n  static_configs: [{targets: ['no-port']}]\n", `target "no-port"`, false},
		{"reserved label", "scrape_configs:\n- job_name: x\n  static_configs: [{targets: ['a:1'], labels: {__x: y}}]\n", "__x", false},
		{"file_sd unknown key", "scrape_configs:\n- job_name: x\n  file_sd_configs: [{files: [bad.json]}]\n", "labelz", false},
		{"file_sd no match", "scrape_configs:\n- job_name: x\n  file_sd_configs: [{files: [none-*.json]}]\n", "matches no file", false},
		{"not yaml", "scrape_configs: [", "parse Prometheus configuration", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ImportPrometheus([]byte(tc.cfg), ImportOptions{BaseDir: dir, SkipUnsupported: tc.skip})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// The importer reads operator files: any input gives a result or an error,
// never a panic, and every imported target resolves against its job.
func FuzzImportPrometheus(f *testing.F) {
	if b, err := os.ReadFile("testdata/import/prometheus.yml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("scrape_configs:\n- job_name: x\n  static_configs: [{targets: ['a:1'], labels: {k: v}}]\n"))
	f.Add([]byte("scrape_configs:\n- job_name: x\n  file_sd_configs: [{files: [a.json]}]\n"))
	files := map[string][]byte{"a.json": []byte(`[{"targets": ["b:2"]}]`)}
	opts := ImportOptions{
		ReadFile: func(p string) ([]byte, error) {
			if b, ok := files[filepath.Base(p)]; ok {
				return b, nil
			}
			return nil, os.ErrNotExist
		},
		Glob: func(p string) ([]string, error) { return []string{p}, nil },
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		im, err := ImportPrometheus(b, opts)
		if err != nil {
			return
		}
		jobs := map[string]*Job{}
		for i := range im.Jobs {
			jobs[im.Jobs[i].Name] = &im.Jobs[i]
		}
		for _, tg := range im.Targets {
			if _, err := Resolve(tg, jobs[tg.Job]); err != nil {
				t.Fatalf("imported target %+v does not resolve: %v", tg, err)
			}
		}
	})
}

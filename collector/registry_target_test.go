package collector

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeTarget(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Target
		wantErr string // substring; "" means valid
	}{
		{name: "json minimal", in: `{"address":"10.0.0.7:9100"}`, want: Target{Address: "10.0.0.7:9100"}},
		{name: "yaml minimal", in: "address: 10.0.0.7:9100\n", want: Target{Address: "10.0.0.7:9100"}},
		{
			name: "json full",
			in: `{"job":"node","address":"h:1","scheme":"https","metrics_path":"/m","params":{"module":["a","b"],"x":"y"},
			      "interval":"30s","timeout":"5s","retries":0,"labels":{"rack":"r1","port":9100},"honor_labels":true,
			      "basic_auth":{"username":"u","password_ref":"node-pw"},"tls":{"ca_ref":"ca.pem","server_name":"h","insecure_skip_verify":false}}`,
			want: Target{Job: "node", Address: "h:1", ScrapeConfig: ScrapeConfig{
				Scheme: "https", MetricsPath: "/m", Params: map[string][]string{"module": {"a", "b"}, "x": {"y"}},
				Interval: Duration(30 * time.Second), Timeout: Duration(5 * time.Second), Retries: ptr(0),
				Labels: map[string]string{"rack": "r1", "port": "9100"}, HonorLabels: ptr(true),
				BasicAuth: &BasicAuth{Username: "u", PasswordRef: "node-pw"}, TLS: &TLSConfig{CARef: "ca.pem", ServerName: "h"},
			}},
		},
		{name: "prometheus duration", in: `{"address":"h:1","interval":"1d"}`, wantErr: "interval: 24h0m0s: must be between"},
		{name: "url split", in: `{"address":"https://h.example/probe?target=x&module=m"}`, want: Target{Address: "h.example:443", ScrapeConfig: ScrapeConfig{
			Scheme: "https", MetricsPath: "/probe", Params: map[string][]string{"target": {"x"}, "module": {"m"}}}}},
		{name: "url with port", in: `{"address":"http://[::1]:9100"}`, want: Target{Address: "[::1]:9100", ScrapeConfig: ScrapeConfig{Scheme: "http"}}},
		{name: "null is unset", in: `{"address":"h:1","interval":null}`, want: Target{Address: "h:1"}},

		{name: "empty", in: "  \n", wantErr: "empty value"},
		{name: "not a mapping", in: `["h:1"]`, wantErr: "want a mapping"},
		{name: "malformed json", in: `{"address":`, wantErr: "malformed value"},
		{name: "two documents", in: "address: h:1\n---\naddress: h:2\n", wantErr: "more than one document"},
		{name: "unknown field", in: `{"address":"h:1","intervall":"15s"}`, wantErr: "intervall: unknown field"},
		{name: "field case matters", in: `{"Address":"h:1"}`, wantErr: "Address: unknown field"},
		{name: "duplicate field", in: `{"address":"h:1","address":"h:2"}`, wantErr: "address: given twice"},
		{name: "empty address", in: `{"address":""}`, wantErr: "address: is required"},
		{name: "missing address", in: `{"scheme":"http"}`, wantErr: "address: is required"},
		{name: "no port", in: `{"address":"h"}`, wantErr: "address: \"h\": want host:port"},
		{name: "port zero", in: `{"address":"h:0"}`, wantErr: "port must be 1-65535"},
		{name: "port too big", in: `{"address":"h:70000"}`, wantErr: "port must be 1-65535"},
		{name: "bad url scheme", in: `{"address":"ftp://h:21"}`, wantErr: "address: scheme \"ftp\""},
		{name: "credentials in url", in: `{"address":"http://u:p@h:1"}`, wantErr: "credentials in the URL"},
		{name: "url conflicts with scheme", in: `{"address":"https://h:1","scheme":"http"}`, wantErr: "conflicts with the scheme field"},
		{name: "bad duration", in: `{"address":"h:1","interval":"5x"}`, wantErr: `interval: "5x" is not a duration`},
		{name: "duration as number", in: `{"address":"h:1","interval":15}`, wantErr: `interval: "15" is not a duration`},
		{name: "negative duration", in: `{"address":"h:1","timeout":"-1s"}`, wantErr: "timeout: \"-1s\": must be positive"},
		{name: "interval too short", in: `{"address":"h:1","interval":"500ms"}`, wantErr: "interval: 500ms: must be between 1s and 1h0m0s"},
		{name: "timeout too short", in: `{"address":"h:1","timeout":"10ms"}`, wantErr: "timeout: 10ms: must be at least"},
		{name: "timeout above interval", in: `{"address":"h:1","interval":"5s","timeout":"10s"}`, wantErr: "timeout: 10s is longer than the interval 5s"},
		{name: "retries not int", in: `{"address":"h:1","retries":"2"}`, wantErr: "retries: \"2\": want an integer"},
		{name: "retries too many", in: `{"address":"h:1","retries":11}`, wantErr: "retries: 11: must be between 0 and 10"},
		{name: "honor_labels not bool", in: `{"address":"h:1","honor_labels":"yes"}`, wantErr: "honor_labels: \"yes\": want true or false"},
		{name: "bad scheme", in: `{"address":"h:1","scheme":"gopher"}`, wantErr: "scheme: \"gopher\""},
		{name: "bad metrics path", in: `{"address":"h:1","metrics_path":"metrics"}`, wantErr: "metrics_path: \"metrics\": must start with /"},
		{name: "query in path", in: `{"address":"h:1","metrics_path":"/m?x=1"}`, wantErr: "metrics_path"},
		{name: "invalid label name", in: `{"address":"h:1","labels":{"a-b":"x"}}`, wantErr: `labels: "a-b" is not a valid label name`},
		{name: "reserved label", in: `{"address":"h:1","labels":{"__address__":"x"}}`, wantErr: `labels: "__address__": names starting with __ are reserved`},
		{name: "job label", in: `{"address":"h:1","labels":{"job":"x"}}`, wantErr: `labels: "job": the job label`},
		{name: "empty label value", in: `{"address":"h:1","labels":{"a":""}}`, wantErr: `labels: "a": empty value`},
		{name: "label value list", in: `{"address":"h:1","labels":{"a":["x"]}}`, wantErr: `labels: a: want a string value`},
		{name: "inline password", in: `{"address":"h:1","basic_auth":{"username":"u","password":"hunter2"}}`, wantErr: "basic_auth: password: inline secrets are not accepted; use password_ref"},
		{name: "inline bearer", in: `{"address":"h:1","bearer_token":"t"}`, wantErr: "bearer_token: inline secrets are not accepted; use bearer_token_ref"},
		{name: "missing password ref", in: `{"address":"h:1","basic_auth":{"username":"u"}}`, wantErr: "basic_auth.password_ref: is required"},
		{name: "path as ref", in: `{"address":"h:1","bearer_token_ref":"../etc/shadow"}`, wantErr: "bearer_token_ref: \"../etc/shadow\""},
		{name: "basic and bearer", in: `{"address":"h:1","basic_auth":{"password_ref":"a"},"bearer_token_ref":"b"}`, wantErr: "bearer_token_ref: not together with basic_auth"},
		{name: "cert without key", in: `{"address":"h:1","tls":{"cert_ref":"c"}}`, wantErr: "tls: cert_ref and key_ref go together"},
		{name: "tls with http", in: `{"address":"h:1","scheme":"http","tls":{"ca_ref":"c"}}`, wantErr: "tls: only with scheme https"},
		{name: "unknown tls field", in: `{"address":"h:1","tls":{"verify":true}}`, wantErr: "tls: verify: unknown field"},
		{name: "alias", in: "labels: &l {a: b}\naddress: h:1\n", wantErr: "anchors and aliases"},
		{name: "oversized", in: `{"address":"h:1","labels":{"a":"` + strings.Repeat("x", MaxValueBytes) + `"}}`, wantErr: "limit is 65536"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeTarget([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
			// Normalized JSON decodes to the same target.
			enc, err := EncodeTarget(got)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			again, err := DecodeTarget(enc)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip of %s: %+v, %v", enc, again, err)
			}
		})
	}
}

func TestDecodeJob(t *testing.T) {
	j, err := DecodeJob([]byte("interval: 30s\nlabels: {team: infra}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Interval != Duration(30*time.Second) || j.Labels["team"] != "infra" {
		t.Fatalf("job = %+v", j)
	}
	for in, wantErr := range map[string]string{
		`{"address":"h:1"}`:                    "address: unknown field",
		`{"job":"x"}`:                          "job: unknown field",
		`{"interval":"2s","timeout":"3s"}`:     "timeout: 3s is longer than the interval 2s",
		`{"labels":{"instance":"i","0a":"x"}}`: `"0a" is not a valid label name`,
	} {
		if _, err := DecodeJob([]byte(in)); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("DecodeJob(%s) err = %v, want %q", in, err, wantErr)
		}
	}
}

func TestResolve(t *testing.T) {
	job := &Job{Name: "node", ScrapeConfig: ScrapeConfig{
		Scheme: "https", Interval: Duration(30 * time.Second), Retries: ptr(3),
		Labels: map[string]string{"team": "infra", "env": "prod"}, Params: map[string][]string{"a": {"1"}},
		BearerTokenRef: "job-token", TLS: &TLSConfig{CARef: "ca"},
	}}
	tests := []struct {
		name    string
		target  Target
		job     *Job
		check   func(t *testing.T, r Target)
		wantErr string
	}{
		{
			name:   "built-in defaults",
			target: Target{Job: "x", Address: "h:1"},
			check: func(t *testing.T, r Target) {
				want := Target{Job: "x", Address: "h:1", ScrapeConfig: ScrapeConfig{
					Scheme: "http", MetricsPath: "/metrics", Interval: Duration(15 * time.Second),
					Timeout: Duration(10 * time.Second), Retries: ptr(1), HonorLabels: ptr(false)}}
				if !reflect.DeepEqual(r, want) {
					t.Fatalf("got %+v, want %+v", r, want)
				}
				if got := r.URL().String(); got != "http://h:1/metrics" {
					t.Fatalf("URL = %s", got)
				}
			},
		},
		{
			name:   "default timeout is capped by a short interval",
			target: Target{Job: "x", Address: "h:1", ScrapeConfig: ScrapeConfig{Interval: Duration(2 * time.Second)}},
			check: func(t *testing.T, r Target) {
				if r.Timeout != Duration(2*time.Second) {
					t.Fatalf("timeout = %s", r.Timeout)
				}
			},
		},
		{
			name:   "job defaults and merges",
			target: Target{Job: "node", Address: "h:1", ScrapeConfig: ScrapeConfig{Labels: map[string]string{"env": "dev", "rack": "r1"}, Params: map[string][]string{"b": {"2"}}, Retries: ptr(0)}},
			job:    job,
			check: func(t *testing.T, r Target) {
				if r.Scheme != "https" || r.Interval != Duration(30*time.Second) || r.Timeout != Duration(10*time.Second) || *r.Retries != 0 {
					t.Fatalf("scalars: %+v", r)
				}
				if !reflect.DeepEqual(r.Labels, map[string]string{"team": "infra", "env": "dev", "rack": "r1"}) {
					t.Fatalf("labels = %v", r.Labels)
				}
				if !reflect.DeepEqual(r.Params, map[string][]string{"a": {"1"}, "b": {"2"}}) {
					t.Fatalf("params = %v", r.Params)
				}
				if r.BearerTokenRef != "job-token" || r.TLS == nil || r.TLS.CARef != "ca" {
					t.Fatalf("auth: %+v", r)
				}
			},
		},
		{
			name:   "target auth replaces the job's as a whole",
			target: Target{Job: "node", Address: "h:1", ScrapeConfig: ScrapeConfig{BasicAuth: &BasicAuth{Username: "u", PasswordRef: "pw"}}},
			job:    job,
			check: func(t *testing.T, r Target) {
				if r.BearerTokenRef != "" || r.BasicAuth == nil || r.BasicAuth.PasswordRef != "pw" {
					t.Fatalf("auth: %+v", r)
				}
			},
		},
		{
			name:    "target timeout above the job's interval",
			target:  Target{Job: "node", Address: "h:1", ScrapeConfig: ScrapeConfig{Timeout: Duration(40 * time.Second)}},
			job:     job,
			wantErr: `with the defaults of job "node": timeout: 40s is longer than the interval 30s`,
		},
		{
			name:    "job tls with a target that says http",
			target:  Target{Job: "node", Address: "h:1", ScrapeConfig: ScrapeConfig{Scheme: "http"}},
			job:     job,
			wantErr: "tls: only with scheme https",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.target
			beforeLabels := len(tc.target.Labels)
			r, err := Resolve(tc.target, tc.job)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
			if len(tc.target.Labels) != beforeLabels || !reflect.DeepEqual(before, tc.target) {
				t.Fatal("Resolve modified its input")
			}
			if r.Labels != nil {
				r.Labels["mutated"] = "x"
				if _, ok := tc.target.Labels["mutated"]; ok {
					t.Fatal("resolved target shares its labels map with the input")
				}
				if tc.job != nil {
					if _, ok := tc.job.Labels["mutated"]; ok {
						t.Fatal("resolved target shares its labels map with the job")
					}
				}
			}
		})
	}
}

func TestDefaultID(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Target
		want string
	}{
		{name: "address only", t: Target{Address: "10.0.0.7:9100"}, want: "10.0.0.7:9100"},
		{name: "with path", t: Target{Address: "web-1:8080", ScrapeConfig: ScrapeConfig{MetricsPath: "/admin/metrics"}}, want: "web-1:8080%2Fadmin%2Fmetrics"},
		{name: "ipv6", t: Target{Address: "[::1]:9100"}, want: "%5B::1%5D:9100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := DefaultID(tc.t); got != tc.want {
				t.Fatalf("DefaultID = %q, want %q", got, tc.want)
			}
			if strings.Contains(DefaultID(tc.t), "/") {
				t.Fatal("id holds a /")
			}
		})
	}
}

package adapter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8slabels "k8s.io/apimachinery/pkg/labels"
)

func TestSelectorMatchers(t *testing.T) {
	for _, tc := range []struct {
		name, sel string
		want      string // matchers joined by ","; "!" prefix: a BadRequest containing the rest
	}{
		{"empty", "", ""},
		{"equals", "app=web", `app="web"`},
		{"double equals", "app==web", `app="web"`},
		{"not equals", "app!=web", `app!="web"`},
		{"in, regex-quoted and sorted", "app in (web.v2,api)", `app=~"api|web\\.v2"`},
		{"notin", "tier notin (db)", `tier!~"db"`},
		{"exists", "canary", `canary!=""`},
		{"does not exist", "!canary", `canary=""`},
		{"label key sanitized", "app.kubernetes.io/name=web", `app_kubernetes_io_name="web"`},
		{"several", "app=web,tier!=db", `app="web",tier!="db"`},
		{"greater than", "replicas>1", `!operator "gt" has no PromQL label matcher`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, err := k8slabels.Parse(tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			ms, err := selectorMatchers(sel, "label selector")
			if want, ok := strings.CutPrefix(tc.want, "!"); ok {
				if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want a BadRequest with %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(matcherStrings(ms), ","); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLabelName(t *testing.T) {
	for in, want := range map[string]string{"app": "app", "app.kubernetes.io/name": "app_kubernetes_io_name", "9lives": "_9lives", "a-b": "a_b"} {
		if got := labelName(in); got != want {
			t.Errorf("labelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/query":
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`<html>bad gateway</html>`))
		}
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Query(context.Background(), "sum(", time.Now())
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Type != "bad_data" || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("query error %v, want the API's bad_data", err)
	}
	if !apierrors.IsBadRequest(vigilStatus(err)) {
		t.Errorf("bad_data maps to %v, want BadRequest", vigilStatus(err))
	}
	_, err = c.LabelValues(context.Background(), "__name__", []string{`{a="b"}`}, time.Now(), time.Now())
	if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Type != "invalid_answer" {
		t.Errorf("label values error %v, want invalid_answer 502", err)
	}
	if !apierrors.IsServiceUnavailable(vigilStatus(err)) {
		t.Errorf("502 maps to %v, want ServiceUnavailable", vigilStatus(err))
	}
	if _, err := NewClient("vigil:9009", 0, nil); err == nil {
		t.Error("NewClient accepted a URL without scheme")
	}
	// Unreachable: a clear error naming the URL, mapped to 503.
	dead, _ := NewClient("http://127.0.0.1:1", time.Second, nil)
	_, err = dead.Query(context.Background(), "up", time.Now())
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1") || !apierrors.IsServiceUnavailable(vigilStatus(err)) {
		t.Errorf("unreachable: %v", err)
	}
}

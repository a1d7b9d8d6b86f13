package adapter

import (
	"context"
	"errors"
	"math"
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
		switch r.FormValue("query") {
		case "sum(":
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}`))
		case "exec":
			w.WriteHeader(http.StatusUnprocessableEntity)
			w.Write([]byte(`{"status":"error","errorType":"execution","error":"too many samples"}`))
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
	// Vigil rejecting a query the adapter wrote is the adapter's fault:
	// 500, not the caller's 400.
	_, err = c.Query(context.Background(), "sum(", time.Now(), 0)
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Type != "bad_data" || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("query error %v, want the API's bad_data", err)
	}
	if st := vigilStatus(err); !apierrors.IsInternalError(st) || !strings.Contains(st.Error(), "parse error") {
		t.Errorf("bad_data maps to %v, want InternalError with Vigil's reason", st)
	}
	_, err = c.Query(context.Background(), "exec", time.Now(), 0)
	if !apierrors.IsInternalError(vigilStatus(err)) {
		t.Errorf("422 execution maps to %v, want InternalError", vigilStatus(err))
	}
	_, err = c.MetricNames(context.Background(), `{a="b"}`, time.Now(), time.Minute)
	if !errors.As(err, &ae) || ae.StatusCode != 502 || ae.Type != "invalid_answer" {
		t.Errorf("metric names error %v, want invalid_answer 502", err)
	}
	if !apierrors.IsServiceUnavailable(vigilStatus(err)) {
		t.Errorf("502 maps to %v, want ServiceUnavailable", vigilStatus(err))
	}
	if _, err := NewClient("vigil:9009", 0, nil); err == nil {
		t.Error("NewClient accepted a URL without scheme")
	}
	// Unreachable: a clear error naming the URL, mapped to 503.
	dead, _ := NewClient("http://127.0.0.1:1", time.Second, nil)
	_, err = dead.Query(context.Background(), "up", time.Now(), 0)
	if err == nil || !strings.Contains(err.Error(), "http://127.0.0.1:1") || !apierrors.IsServiceUnavailable(vigilStatus(err)) {
		t.Errorf("unreachable: %v", err)
	}
}

// Durations go to Vigil as seconds: it does not parse Go's "2.5s".
func TestClientDurationParams(t *testing.T) {
	got := make(chan [2]string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- [2]string{r.FormValue("timeout"), r.FormValue("lookback_delta")}
		w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL, 2500*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Query(context.Background(), "up", time.Now(), 90*time.Second+500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != [2]string{"2.5", "90.5"} {
		t.Errorf("timeout, lookback_delta = %q, want 2.5 and 90.5", p)
	}
}

func TestQuantity(t *testing.T) {
	for _, v := range []float64{0, 1.5, -2.25, 0.0004, 1.5e9, 9.2e15, 1e16, -1e16, 3.7e18, 1e300, -1e300, 123456789012345678} {
		q := quantity(v)
		if q.Sign() != signOf(v) && math.Abs(v) >= 0.0005 {
			t.Errorf("quantity(%g) = %s: wrong sign", v, q.String())
		}
		got := q.AsApproximateFloat64()
		if want := math.Round(v*1000) / 1000; math.Abs(got-want) > math.Abs(want)*1e-12 {
			t.Errorf("quantity(%g) = %s (%g), want %g", v, q.String(), got, want)
		}
	}
	if q := quantity(1.5); q.MilliValue() != 1500 {
		t.Errorf("quantity(1.5) = %d milli", q.MilliValue())
	}
}

func signOf(v float64) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

func TestFreshOnly(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`sum by (pod) (x{a="b"})`, `sum by (pod) (x{a="b"})`},
		{`sum by (pod) (rate(x_total{a="b"}[2m]))`, `sum by (pod) ((rate(x_total{a="b"}[2m]) and x_total{a="b"}))`},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m]))) * 2`, `histogram_quantile(0.99, sum by (le) ((rate(h_bucket[5m]) and h_bucket))) * 2`},
		{`absent_over_time(x[5m])`, `absent_over_time(x[5m])`},
		{`max_over_time(x[5m] offset 1m)`, `(max_over_time(x[5m] offset 1m) and x offset 1m)`},
	} {
		e, err := promParser.ParseExpr(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got := freshOnly(e).String()
		if got != tc.want {
			t.Errorf("freshOnly(%s) = %s, want %s", tc.in, got, tc.want)
		}
		if _, err := promParser.ParseExpr(got); err != nil {
			t.Errorf("freshOnly(%s) = %s: not PromQL: %v", tc.in, got, err)
		}
	}
}

package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sample is one element of an instant vector: its labels, value and the
// time Vigil reports with it (the evaluation time for an expression, the
// sample's own time only under timestamp()).
type Sample struct {
	Labels map[string]string
	Value  float64
	Time   time.Time
}

// APIError is an error answer of Vigil's HTTP API ({"status":"error"}).
type APIError struct {
	Op         string // "query", "label values"
	StatusCode int
	Type       string // errorType: bad_data, execution, timeout, unavailable, ...
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("vigil %s: %d %s: %s", e.Op, e.StatusCode, e.Type, e.Message)
}

// ErrUnexpectedResult is returned when Vigil's answer does not have the
// shape the adapter asked for (a matrix or scalar for an instant vector).
var ErrUnexpectedResult = errors.New("unexpected result type")

// Client talks to Vigil's Prometheus-compatible HTTP query API. It is
// safe for concurrent use; every call is bounded by the client's timeout
// and by ctx.
type Client struct {
	base    *url.URL
	http    *http.Client
	timeout time.Duration
}

// NewClient returns a client for the API at baseURL ("http://vigil:9009").
// timeout bounds each request (0: 10 s).
func NewClient(baseURL string, timeout time.Duration, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("vigil url %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("vigil url %q: want http://host:port or https://host:port", baseURL)
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, http: hc, timeout: timeout}, nil
}

// Query runs an instant query at ts and returns its vector. A scalar
// result is returned as one sample without labels. lookback (0: Vigil's
// default, 5m) is how old the newest sample of a series may be for an
// instant selector to select it: the query's lookback_delta.
func (c *Client) Query(ctx context.Context, expr string, ts time.Time, lookback time.Duration) ([]Sample, error) {
	// Seconds as a number: Vigil (like Prometheus) does not parse Go's
	// "2.5s" or "1m30s".
	form := url.Values{"query": {expr}, "time": {formatTime(ts)}, "timeout": {formatSeconds(c.timeout)}}
	if lookback > 0 {
		form.Set("lookback_delta", formatSeconds(lookback))
	}
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := c.post(ctx, "query", "/api/v1/query", form, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &vec); err != nil {
			return nil, fmt.Errorf("vigil query %q: decode vector: %w", expr, err)
		}
		out := make([]Sample, 0, len(vec))
		for _, s := range vec {
			t, v, err := decodePoint(s.Value)
			if err != nil {
				return nil, fmt.Errorf("vigil query %q: %w", expr, err)
			}
			out = append(out, Sample{Labels: s.Metric, Value: v, Time: t})
		}
		return out, nil
	case "scalar":
		var p [2]json.RawMessage
		if err := json.Unmarshal(data.Result, &p); err != nil {
			return nil, fmt.Errorf("vigil query %q: decode scalar: %w", expr, err)
		}
		t, v, err := decodePoint(p)
		if err != nil {
			return nil, fmt.Errorf("vigil query %q: %w", expr, err)
		}
		return []Sample{{Labels: map[string]string{}, Value: v, Time: t}}, nil
	default:
		return nil, fmt.Errorf("vigil query %q: %w %q (want vector or scalar)", expr, ErrUnexpectedResult, data.ResultType)
	}
}

// MetricNames returns the sorted metric names of the series matching
// selector that have a sample in (end-window, end]. Vigil's label values
// endpoint ignores its time range, so this is an instant query,
// group by (__name__) of the selector, whose lookback is the window.
func (c *Client) MetricNames(ctx context.Context, selector string, end time.Time, window time.Duration) ([]string, error) {
	vec, err := c.Query(ctx, "group by (__name__) ("+selector+")", end, window)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(vec))
	for _, s := range vec {
		if n := s.Labels["__name__"]; n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

func (c *Client) post(ctx context.Context, op, path string, form url.Values, data any) error {
	return c.do(ctx, op, http.MethodPost, path, form, data)
}

func (c *Client) do(ctx context.Context, op, method, path string, form url.Values, data any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := *c.base
	u.Path += path
	var body io.Reader
	if method == http.MethodGet {
		u.RawQuery = form.Encode()
	} else {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("vigil %s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("vigil %s at %s: %w", op, c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("vigil %s: read answer: %w", op, err)
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return &APIError{Op: op, StatusCode: resp.StatusCode, Type: "invalid_answer", Message: fmt.Sprintf("not an API answer: %.200q", b)}
	}
	if env.Status != "success" {
		return &APIError{Op: op, StatusCode: resp.StatusCode, Type: env.ErrorType, Message: env.Error}
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		return fmt.Errorf("vigil %s: decode data: %w", op, err)
	}
	return nil
}

func decodePoint(p [2]json.RawMessage) (time.Time, float64, error) {
	var sec float64
	if err := json.Unmarshal(p[0], &sec); err != nil {
		return time.Time{}, 0, fmt.Errorf("sample time %s: %w", p[0], err)
	}
	var s string
	if err := json.Unmarshal(p[1], &s); err != nil {
		return time.Time{}, 0, fmt.Errorf("sample value %s: %w", p[1], err)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("sample value %q: %w", s, err)
	}
	return time.UnixMilli(int64(math.Round(sec * 1000))), v, nil
}

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	maxResponseBody = 64 << 10 // read at most this much of an answer
	maxExcerpt      = 256      // bytes of an answer quoted in an error
)

// httpClient is the HTTP side shared by the HTTP channels: one client per
// channel, no redirects followed (a redirected POST is not an acceptance,
// and DingTalk answers a throttled robot with a 302), errors that never
// quote the URL (it may hold an access token).
type httpClient struct {
	kind   string
	client *http.Client
}

func newHTTPClient(kind string) *httpClient {
	return &httpClient{kind: kind, client: &http.Client{
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// httpResult is an HTTP answer, whatever its status.
type httpResult struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request. rawURL holds secrets; errors name endpoint (its
// redacted form) instead. A transport failure is a retryable
// DeliveryError; any HTTP answer is returned for the caller to judge.
func (h *httpClient) do(ctx context.Context, method, rawURL string, header http.Header, body []byte) (*httpResult, error) {
	endpoint := redactURL(rawURL)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, &DeliveryError{Channel: h.kind, Endpoint: endpoint, Message: "build request: invalid URL or method"}
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, &DeliveryError{Channel: h.kind, Endpoint: endpoint, Retryable: true, Err: transportCause(ctx, err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, &DeliveryError{Channel: h.kind, Endpoint: endpoint, Retryable: true, Status: resp.StatusCode,
			Message: "read response", Err: transportCause(ctx, err)}
	}
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	return &httpResult{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// transportCause strips the *url.Error around err: its text repeats the URL,
// secrets included.
func transportCause(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// postJSON marshals v and posts it.
func (h *httpClient) postJSON(ctx context.Context, rawURL string, header http.Header, v any) (*httpResult, []byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, nil, &DeliveryError{Channel: h.kind, Endpoint: redactURL(rawURL), Message: "encode payload", Err: err}
	}
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json; charset=utf-8")
	res, err := h.do(ctx, http.MethodPost, rawURL, header, body)
	return res, body, err
}

// checkStatus turns a non-2xx answer into a DeliveryError: 408, 429 and
// 5xx are retryable (with Retry-After if given), everything else is not.
func (h *httpClient) checkStatus(rawURL string, res *httpResult) error {
	if res.status >= 200 && res.status < 300 {
		return nil
	}
	e := &DeliveryError{Channel: h.kind, Endpoint: redactURL(rawURL), Status: res.status, Message: excerpt(res.body)}
	switch {
	case res.status == http.StatusTooManyRequests, res.status == http.StatusRequestTimeout, res.status >= 500:
		e.Retryable = true
		e.RetryAfter = parseRetryAfter(res.header.Get("Retry-After"), time.Now())
	case res.status >= 300 && res.status < 400:
		e.Message = "redirected to " + redactURL(res.header.Get("Location"))
	}
	return e
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 {
			return 0
		}
		if s > 86400 {
			s = 86400
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// excerpt is the start of a response body, fit to quote in an error.
func excerpt(body []byte) string {
	s := strings.TrimSpace(string(body))
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == '\t' {
			return ' '
		}
		return r
	}, s)
	return truncateUTF8(s, maxExcerpt, "…")
}

// errcodeAnswer is the answer of DingTalk's and WeCom's APIs.
type errcodeAnswer struct {
	ErrCode *int   `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// checkErrcode reads an errcode answer of a 2xx response: errcode 0 is
// acceptance; retryable maps an errcode to (retryable, retry after).
func (h *httpClient) checkErrcode(rawURL string, res *httpResult, retryable func(code int) (bool, time.Duration)) error {
	var a errcodeAnswer
	if err := json.Unmarshal(res.body, &a); err != nil || a.ErrCode == nil {
		// Not the API's answer (a proxy's page?): not an acceptance, and
		// perhaps a transient state.
		return &DeliveryError{Channel: h.kind, Endpoint: redactURL(rawURL), Status: res.status, Retryable: true,
			Message: "answer without errcode: " + excerpt(res.body)}
	}
	if *a.ErrCode == 0 {
		return nil
	}
	e := &DeliveryError{Channel: h.kind, Endpoint: redactURL(rawURL), Status: res.status, Code: *a.ErrCode, Message: a.ErrMsg}
	e.Retryable, e.RetryAfter = retryable(*a.ErrCode)
	return e
}

// mentionValues collects the comma-separated values of the label or
// annotation name of every alert, after the fixed ones, without duplicates.
func mentionValues(fixed []string, alerts Alerts, name string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(v string) {
		v = strings.TrimSpace(v)
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, v := range fixed {
		add(v)
	}
	for _, a := range alerts {
		for _, src := range []KV{a.Labels, a.Annotations} {
			for v := range strings.SplitSeq(src[name], ",") {
				add(v)
			}
		}
	}
	return out
}

func nonNil(kv KV) KV {
	if kv == nil {
		return KV{}
	}
	return kv
}

package collector

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigil-tsdb/vigil/model"
)

// Built-in defaults and limits of target values (docs/targets.md).
const (
	DefaultScheme      = "http"
	DefaultMetricsPath = "/metrics"
	DefaultInterval    = 15 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultRetries     = 1

	MinInterval     = time.Second
	MaxInterval     = time.Hour
	MinTimeout      = 100 * time.Millisecond
	MaxRetries      = 10
	MaxValueBytes   = 64 << 10
	MaxLabels       = 32
	maxLabelName    = 1024
	maxLabelValue   = 4096
	maxNameBytes    = 255 // job names, ids, secret names
	maxParamsValues = 256
)

// Duration is a time.Duration that reads and writes as a string ("15s",
// "1m30s"; Prometheus' "1d"/"1w" forms are accepted on input).
type Duration time.Duration

// MarshalText writes the duration as Go formats it ("1m30s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// String returns the duration as Go formats it.
func (d Duration) String() string { return time.Duration(d).String() }

func parseDuration(s string) (Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return Duration(d), nil
	}
	d, err := promParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (want e.g. 15s, 1m30s)", s)
	}
	return Duration(d), nil
}

// BasicAuth names the password secret; the username is not a secret.
type BasicAuth struct {
	Username    string `json:"username,omitempty"`
	PasswordRef string `json:"password_ref"`
}

// TLSConfig names the secrets used for https scrapes.
type TLSConfig struct {
	CARef              string `json:"ca_ref,omitempty"`
	CertRef            string `json:"cert_ref,omitempty"`
	KeyRef             string `json:"key_ref,omitempty"`
	ServerName         string `json:"server_name,omitempty"`
	InsecureSkipVerify bool   `json:"insecure_skip_verify,omitempty"`
}

// ScrapeConfig holds the fields a job and a target share. A zero field is
// unset: it takes the job's value, then the built-in default (Resolve).
type ScrapeConfig struct {
	Scheme         string              `json:"scheme,omitempty"`
	MetricsPath    string              `json:"metrics_path,omitempty"`
	Params         map[string][]string `json:"params,omitempty"`
	Interval       Duration            `json:"interval,omitempty"`
	Timeout        Duration            `json:"timeout,omitempty"`
	Retries        *int                `json:"retries,omitempty"`
	Labels         map[string]string   `json:"labels,omitempty"`
	HonorLabels    *bool               `json:"honor_labels,omitempty"`
	BasicAuth      *BasicAuth          `json:"basic_auth,omitempty"`
	BearerTokenRef string              `json:"bearer_token_ref,omitempty"`
	TLS            *TLSConfig          `json:"tls,omitempty"`
}

// Target is one scrape target. As decoded from etcd it holds only what its
// value sets; after Resolve every ScrapeConfig field is set.
type Target struct {
	Job     string `json:"job,omitempty"`
	ID      string `json:"-"` // from the key; DefaultID(t) when written by tools
	Address string `json:"address"`
	ScrapeConfig
}

// Job holds the defaults of one job; Name comes from the key.
type Job struct {
	Name string `json:"-"`
	ScrapeConfig
}

// URL is the address to scrape. Only meaningful on a resolved target.
func (t Target) URL() *url.URL {
	u := &url.URL{Scheme: t.Scheme, Host: t.Address, Path: t.MetricsPath}
	if len(t.Params) > 0 {
		u.RawQuery = url.Values(t.Params).Encode()
	}
	return u
}

// DefaultID derives a target's id from what identifies it: the address and,
// if the target sets one, its metrics path, escaped to one key segment.
func DefaultID(t Target) string {
	return url.PathEscape(t.Address + t.MetricsPath)
}

// DecodeTarget decodes and validates one target value (JSON or YAML) as
// stored in etcd. Errors name the field. Job defaults are not applied.
func DecodeTarget(b []byte) (Target, error) {
	var t Target
	if err := decodeValue(b, targetFields(&t)); err != nil {
		return Target{}, err
	}
	if err := t.normalize(); err != nil {
		return Target{}, err
	}
	return t, nil
}

// DecodeJob decodes and validates one job value (JSON or YAML).
func DecodeJob(b []byte) (Job, error) {
	var j Job
	if err := decodeValue(b, scrapeFields(&j.ScrapeConfig)); err != nil {
		return Job{}, err
	}
	j.ScrapeConfig.compact()
	if err := j.ScrapeConfig.validate(); err != nil {
		return Job{}, err
	}
	return j, nil
}

// EncodeTarget validates t and returns its normalized JSON value.
func EncodeTarget(t Target) ([]byte, error) {
	if err := t.normalize(); err != nil {
		return nil, err
	}
	return marshalCompact(t)
}

// EncodeJob validates j and returns its normalized JSON value.
func EncodeJob(j Job) ([]byte, error) {
	if err := j.ScrapeConfig.validate(); err != nil {
		return nil, err
	}
	return marshalCompact(j)
}

func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode value: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// normalize splits a URL address into its fields and validates the target.
// It modifies t in place (t is a copy owned by the caller's caller).
func (t *Target) normalize() error {
	if t.Job != "" {
		if err := validateName(t.Job); err != nil {
			return fmt.Errorf("job: %w", err)
		}
	}
	if t.Address == "" {
		return fmt.Errorf("address: is required")
	}
	if strings.Contains(t.Address, "://") {
		if err := t.splitURL(); err != nil {
			return fmt.Errorf("address: %w", err)
		}
	}
	if err := validateHostPort(t.Address); err != nil {
		return fmt.Errorf("address: %w", err)
	}
	t.ScrapeConfig.compact()
	return t.ScrapeConfig.validate()
}

func (t *Target) splitURL() error {
	u, err := url.Parse(t.Address)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %w", t.Address, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q: want http or https", u.Scheme)
	case u.User != nil:
		return fmt.Errorf("credentials in the URL are not accepted; use basic_auth.password_ref")
	case u.Fragment != "" || strings.Contains(t.Address, "#"):
		return fmt.Errorf("a URL fragment is not accepted")
	case u.Host == "":
		return fmt.Errorf("%q has no host", t.Address)
	}
	if t.Scheme != "" && t.Scheme != u.Scheme {
		return fmt.Errorf("scheme %q conflicts with the scheme field %q", u.Scheme, t.Scheme)
	}
	t.Scheme = u.Scheme
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(strings.Trim(u.Host, "[]"), port)
	}
	t.Address = host
	if u.Path != "" {
		if t.MetricsPath != "" && t.MetricsPath != u.Path {
			return fmt.Errorf("path %q conflicts with the metrics_path field %q", u.Path, t.MetricsPath)
		}
		t.MetricsPath = u.Path
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		for k, vs := range q {
			if old, ok := t.Params[k]; ok && !slices.Equal(old, vs) {
				return fmt.Errorf("query parameter %q conflicts with params", k)
			}
			if t.Params == nil {
				t.Params = map[string][]string{}
			}
			t.Params[k] = vs
		}
	}
	return nil
}

func validateHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: want host:port or an http(s) URL", a)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", a)
	}
	if strings.ContainsAny(host, "/?#@ \t\r\n") || !utf8.ValidString(host) {
		return fmt.Errorf("%q: invalid host", a)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return fmt.Errorf("%q: port must be 1-65535", a)
	}
	return nil
}

// validate checks the fields a job and a target share, each on its own; the
// combination with job defaults is checked by Resolve.
func (c *ScrapeConfig) validate() error {
	switch c.Scheme {
	case "", "http", "https":
	default:
		return fmt.Errorf("scheme: %q: want http or https", c.Scheme)
	}
	if p := c.MetricsPath; p != "" {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") || !utf8.ValidString(p) {
			return fmt.Errorf("metrics_path: %q: must start with / and hold no ? or # (use params)", p)
		}
	}
	n := 0
	for k, vs := range c.Params {
		if k == "" || !utf8.ValidString(k) {
			return fmt.Errorf("params: invalid parameter name %q", k)
		}
		if len(vs) == 0 {
			return fmt.Errorf("params: %s: no values", k)
		}
		n += len(vs)
	}
	if n > maxParamsValues {
		return fmt.Errorf("params: %d values, limit is %d", n, maxParamsValues)
	}
	if c.Interval != 0 && (c.Interval < Duration(MinInterval) || c.Interval > Duration(MaxInterval)) {
		return fmt.Errorf("interval: %s: must be between %s and %s", c.Interval, MinInterval, MaxInterval)
	}
	if c.Timeout != 0 && c.Timeout < Duration(MinTimeout) {
		return fmt.Errorf("timeout: %s: must be at least %s", c.Timeout, MinTimeout)
	}
	if c.Interval != 0 && c.Timeout > c.Interval {
		return fmt.Errorf("timeout: %s is longer than the interval %s", c.Timeout, c.Interval)
	}
	if c.Retries != nil && (*c.Retries < 0 || *c.Retries > MaxRetries) {
		return fmt.Errorf("retries: %d: must be between 0 and %d", *c.Retries, MaxRetries)
	}
	if err := validateLabels(c.Labels); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	if c.BasicAuth != nil {
		if c.BasicAuth.PasswordRef == "" {
			return fmt.Errorf("basic_auth.password_ref: is required")
		}
		if err := validateRef(c.BasicAuth.PasswordRef); err != nil {
			return fmt.Errorf("basic_auth.password_ref: %w", err)
		}
		if !utf8.ValidString(c.BasicAuth.Username) || strings.ContainsRune(c.BasicAuth.Username, ':') {
			return fmt.Errorf("basic_auth.username: must be UTF-8 without ':'")
		}
		if c.BearerTokenRef != "" {
			return fmt.Errorf("bearer_token_ref: not together with basic_auth")
		}
	}
	if c.BearerTokenRef != "" {
		if err := validateRef(c.BearerTokenRef); err != nil {
			return fmt.Errorf("bearer_token_ref: %w", err)
		}
	}
	if t := c.TLS; t != nil {
		for _, r := range []struct{ name, v string }{{"ca_ref", t.CARef}, {"cert_ref", t.CertRef}, {"key_ref", t.KeyRef}} {
			if r.v != "" {
				if err := validateRef(r.v); err != nil {
					return fmt.Errorf("tls.%s: %w", r.name, err)
				}
			}
		}
		if (t.CertRef == "") != (t.KeyRef == "") {
			return fmt.Errorf("tls: cert_ref and key_ref go together")
		}
		if !utf8.ValidString(t.ServerName) || len(t.ServerName) > maxNameBytes {
			return fmt.Errorf("tls.server_name: invalid")
		}
		if c.Scheme == "http" {
			return fmt.Errorf("tls: only with scheme https")
		}
	}
	return nil
}

func validateLabels(ls map[string]string) error {
	if len(ls) > MaxLabels {
		return fmt.Errorf("%d labels, limit is %d", len(ls), MaxLabels)
	}
	for _, name := range slices.Sorted(maps.Keys(ls)) {
		v := ls[name]
		switch {
		case strings.HasPrefix(name, "__"):
			return fmt.Errorf("%q: names starting with __ are reserved", name)
		case name == "job":
			return fmt.Errorf("%q: the job label is the job name", name)
		case len(name) > maxLabelName:
			return fmt.Errorf("name of %d bytes, limit is %d", len(name), maxLabelName)
		case !model.IsValidLabelName(name) || !isLegacyLabelName(name):
			return fmt.Errorf("%q is not a valid label name", name)
		case v == "":
			return fmt.Errorf("%q: empty value", name)
		case !utf8.ValidString(v):
			return fmt.Errorf("%q: value is not valid UTF-8", name)
		case len(v) > maxLabelValue:
			return fmt.Errorf("%q: value of %d bytes, limit is %d", name, len(v), maxLabelValue)
		}
	}
	return nil
}

func isLegacyLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' && i > 0) {
			return false
		}
	}
	return true
}

// validateRef checks a secret name: a file name in the collector's secrets
// directory, never a path.
func validateRef(s string) error {
	if s == "" || len(s) > maxNameBytes || s[0] == '.' {
		return fmt.Errorf("%q: want 1-%d bytes of [A-Za-z0-9._-], not starting with '.'", s, maxNameBytes)
	}
	for _, c := range s {
		if !(c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%q: want 1-%d bytes of [A-Za-z0-9._-], not starting with '.'", s, maxNameBytes)
		}
	}
	return nil
}

// validateName checks a job name or a target id.
func validateName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty")
	case len(s) > maxNameBytes:
		return fmt.Errorf("%d bytes, limit is %d", len(s), maxNameBytes)
	case !utf8.ValidString(s):
		return fmt.Errorf("not valid UTF-8")
	}
	return nil
}

// Resolve applies the job's defaults and then the built-in ones to a decoded
// target and checks the result. It is pure: t and j are not modified and the
// returned target shares no maps with them. j may be nil (no job value).
func Resolve(t Target, j *Job) (Target, error) {
	var d ScrapeConfig
	if j != nil {
		d = j.ScrapeConfig
	}
	r := t
	r.Scheme = first(t.Scheme, d.Scheme, DefaultScheme)
	r.MetricsPath = first(t.MetricsPath, d.MetricsPath, DefaultMetricsPath)
	r.Interval = first(t.Interval, d.Interval, Duration(DefaultInterval))
	r.Timeout = first(t.Timeout, d.Timeout, min(Duration(DefaultTimeout), r.Interval))
	r.Retries = ptr(*first(t.Retries, d.Retries, ptr(DefaultRetries)))
	r.HonorLabels = ptr(*first(t.HonorLabels, d.HonorLabels, ptr(false)))
	r.Labels = mergeMaps(d.Labels, t.Labels)
	r.Params = nil
	if len(d.Params) > 0 || len(t.Params) > 0 {
		r.Params = map[string][]string{}
		for k, v := range d.Params {
			r.Params[k] = slices.Clone(v)
		}
		for k, v := range t.Params {
			r.Params[k] = slices.Clone(v)
		}
	}
	r.BearerTokenRef = ""
	r.BasicAuth = nil
	switch {
	case t.BasicAuth != nil || t.BearerTokenRef != "":
		r.BasicAuth, r.BearerTokenRef = clonePtr(t.BasicAuth), t.BearerTokenRef
	default:
		r.BasicAuth, r.BearerTokenRef = clonePtr(d.BasicAuth), d.BearerTokenRef
	}
	r.TLS = clonePtr(first(t.TLS, d.TLS, nil))
	if err := r.ScrapeConfig.validate(); err != nil {
		return Target{}, fmt.Errorf("with the defaults of job %q: %w", t.Job, err)
	}
	return r, nil
}

func first[T comparable](vs ...T) T {
	var zero T
	for _, v := range vs {
		if v != zero {
			return v
		}
	}
	return zero
}

func ptr[T any](v T) *T { return &v }

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func mergeMaps(a, b map[string]string) map[string]string {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	m := make(map[string]string, len(a)+len(b))
	maps.Copy(m, a)
	maps.Copy(m, b)
	return m
}

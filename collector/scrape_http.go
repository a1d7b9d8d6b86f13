package collector

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// userAgent is sent with every scrape.
const userAgent = "vigil-collector"

// maxSecretBytes bounds what is read of one secret file.
const maxSecretBytes = 1 << 20

// fetcher gets the body of one target over HTTP, with retries within the
// slot. Used by one goroutine (the scraper's Run) at a time.
type fetcher struct {
	target     Target
	url        string
	timeout    time.Duration
	retries    int
	backoff    time.Duration
	maxBackoff time.Duration
	bodyLimit  int64
	metrics    *ScrapeMetrics

	client    *http.Client
	transport *http.Transport
	// TLS files; the transport is rebuilt when one of them changes.
	ca, cert, key *secretFile
	tlsLoaded     bool
	password      *secretFile
	bearer        *secretFile

	gz       *gzip.Reader
	sizeHint int // size of the last body, to size the next buffer
}

func newFetcher(cfg ScraperConfig, t Target, m *ScrapeMetrics) (*fetcher, error) {
	f := &fetcher{
		target:     t,
		url:        t.URL().String(),
		timeout:    time.Duration(t.Timeout),
		retries:    *t.Retries,
		backoff:    cfg.RetryBackoff,
		maxBackoff: cfg.MaxRetryBackoff,
		bodyLimit:  cfg.BodySizeLimit,
		metrics:    m,
		sizeHint:   4096,
	}
	if _, err := http.NewRequest(http.MethodGet, f.url, http.NoBody); err != nil {
		return nil, fmt.Errorf("new scraper of %s: %w", t.Address, err)
	}
	secret := func(name string) *secretFile {
		if name == "" {
			return nil
		}
		return &secretFile{dir: cfg.SecretsDir, name: name}
	}
	if t.BasicAuth != nil {
		f.password = secret(t.BasicAuth.PasswordRef)
	}
	f.bearer = secret(t.BearerTokenRef)
	if t.TLS != nil {
		f.ca, f.cert, f.key = secret(t.TLS.CARef), secret(t.TLS.CertRef), secret(t.TLS.KeyRef)
	}
	return f, nil
}

// fetchResult is the outcome of one slot's attempts.
type fetchResult struct {
	body        []byte
	contentType string
	start       time.Time // start of the last attempt
	attempts    int
	err         error
}

// fetch gets the body, retrying failures that may pass (connection errors,
// timeouts, 5xx, 408, 429) up to the target's retries with exponential
// backoff. Every attempt ends by the target's timeout, retries also by
// deadline (the end of the slot); a retry starts only if its backoff ends
// with at least a tenth of the timeout left before deadline. The first
// attempt always gets the whole timeout: a slot whose scrape began late
// (a slow push before it) must not report the target down for lack of time.
func (f *fetcher) fetch(ctx context.Context, deadline time.Time) fetchResult {
	res := fetchResult{start: time.Now()}
	if res.err = f.prepare(); res.err != nil {
		return res
	}
	wait := f.backoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if time.Until(deadline) < wait+f.timeout/10 {
				return res
			}
			f.metrics.retries.Inc()
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				res.err = ctx.Err()
				return res
			case <-t.C:
			}
			wait = min(2*wait, f.maxBackoff)
		}
		res.start = time.Now()
		end := res.start.Add(f.timeout)
		if attempt > 0 {
			end = minTime(end, deadline)
		}
		actx, cancel := context.WithDeadline(ctx, end)
		res.body, res.contentType, res.err = f.fetchOnce(actx)
		cancel()
		res.attempts++
		if res.err != nil && ctx.Err() == nil && isTimeout(res.err) {
			res.err = fmt.Errorf("%w after %s: %w", ErrScrapeTimeout, time.Since(res.start).Round(time.Millisecond), res.err)
		}
		if res.err == nil || attempt >= f.retries || ctx.Err() != nil || !retryable(res.err) {
			return res
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// statusError is a response other than 200.
type statusError struct {
	code   int
	status string
}

func (e *statusError) Error() string { return "server returned HTTP status " + e.status }

// errNoRetry marks failures that a retry within the slot cannot fix.
var errNoRetry = errors.New("not retryable")

func retryable(err error) bool {
	var se *statusError
	var sec *secretError
	switch {
	case errors.As(err, &se):
		return se.code >= 500 || se.code == http.StatusTooManyRequests || se.code == http.StatusRequestTimeout
	case errors.Is(err, ErrBodySizeLimit), errors.Is(err, errNoRetry), errors.As(err, &sec):
		return false
	}
	return true
}

func (f *fetcher) fetchOnce(ctx context.Context) (body []byte, contentType string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, http.NoBody)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", errNoRetry, err)
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(f.timeout.Seconds(), 'f', -1, 64))
	if err := f.authorize(req); err != nil {
		return nil, "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer func() {
		// Drain a little so the connection can be reused, not a whole
		// oversized body.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return nil, "", &statusError{code: resp.StatusCode, status: resp.Status}
	}
	var r io.Reader = resp.Body
	switch enc := strings.ToLower(resp.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		if f.gz == nil {
			f.gz, err = gzip.NewReader(resp.Body)
		} else {
			err = f.gz.Reset(resp.Body)
		}
		if err != nil {
			return nil, "", fmt.Errorf("gzip body: %w", err)
		}
		r = f.gz
	default:
		return nil, "", fmt.Errorf("%w: unsupported Content-Encoding %q", errNoRetry, enc)
	}
	if f.bodyLimit > 0 {
		r = io.LimitReader(r, f.bodyLimit+1)
	}
	buf := bytes.NewBuffer(make([]byte, 0, f.sizeHint))
	n, err := io.Copy(buf, r)
	if err != nil {
		return nil, "", fmt.Errorf("read body: %w", err)
	}
	if f.bodyLimit > 0 && n > f.bodyLimit {
		return nil, "", fmt.Errorf("%w: more than %d bytes", ErrBodySizeLimit, f.bodyLimit)
	}
	f.metrics.bodyBytes.Add(float64(n))
	if n > 0 {
		f.sizeHint = int(n) + int(n)/8
	}
	return buf.Bytes(), resp.Header.Get("Content-Type"), nil
}

// authorize adds basic auth or the bearer token, read from their secret
// files (re-read when they change).
func (f *fetcher) authorize(req *http.Request) error {
	switch {
	case f.password != nil:
		if _, err := f.password.load(); err != nil {
			return err
		}
		req.SetBasicAuth(f.target.BasicAuth.Username, strings.TrimSpace(string(f.password.data)))
	case f.bearer != nil:
		if _, err := f.bearer.load(); err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(f.bearer.data)))
	}
	return nil
}

// prepare builds the transport on first use and again whenever a TLS
// secret file changed, so a rotated certificate is used from the next
// scrape on.
func (f *fetcher) prepare() error {
	changed := !f.tlsLoaded
	for _, s := range []*secretFile{f.ca, f.cert, f.key} {
		if s == nil {
			continue
		}
		c, err := s.load()
		if err != nil {
			return err
		}
		changed = changed || c
	}
	if !changed {
		return nil
	}
	tc, err := f.tlsConfig()
	if err != nil {
		f.tlsLoaded = false // build again next time, even if no file changes
		return err
	}
	tr := &http.Transport{
		Proxy:               nil, // targets are reached directly, as Prometheus does without proxy_url
		DialContext:         (&net.Dialer{Timeout: f.timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: f.timeout,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true, // gzip is asked for and decoded here, to limit the decoded size
	}
	if f.transport != nil {
		f.transport.CloseIdleConnections()
	}
	f.transport = tr
	f.client = &http.Client{Transport: tr, Timeout: f.timeout}
	f.tlsLoaded = true
	return nil
}

func (f *fetcher) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	t := f.target.TLS
	if t == nil {
		return tc, nil
	}
	tc.ServerName = t.ServerName
	tc.InsecureSkipVerify = t.InsecureSkipVerify
	if f.ca != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(f.ca.data) {
			return nil, &secretError{name: f.ca.name, err: errors.New("no PEM certificate in it")}
		}
		tc.RootCAs = pool
	}
	if f.cert != nil && f.key != nil {
		c, err := tls.X509KeyPair(f.cert.data, f.key.data)
		if err != nil {
			return nil, &secretError{name: f.cert.name + "+" + f.key.name, err: err}
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

func (f *fetcher) close() {
	if f.transport != nil {
		f.transport.CloseIdleConnections()
	}
}

// secretError: a secret file could not be used.
type secretError struct {
	name string
	err  error
}

func (e *secretError) Error() string { return fmt.Sprintf("secret %q: %v", e.name, e.err) }
func (e *secretError) Unwrap() error { return e.err }

// secretFile is one file of the secrets directory, read again when its
// identity (inode), size or modification time changes: a file replaced by
// a Kubernetes secret volume update or rewritten in place.
type secretFile struct {
	dir, name string
	fi        os.FileInfo
	data      []byte
}

// load reads the file if it changed since the last load, and reports
// whether it did.
func (s *secretFile) load() (changed bool, err error) {
	if s.dir == "" {
		return false, &secretError{name: s.name, err: errors.New("no secrets directory configured (-collector.scrape.secrets-dir)")}
	}
	path := filepath.Join(s.dir, s.name)
	fi, err := os.Stat(path)
	if err != nil {
		return false, &secretError{name: s.name, err: err}
	}
	if s.fi != nil && os.SameFile(s.fi, fi) && fi.Size() == s.fi.Size() && fi.ModTime().Equal(s.fi.ModTime()) {
		return false, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return false, &secretError{name: s.name, err: err}
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxSecretBytes+1))
	if err != nil {
		return false, &secretError{name: s.name, err: err}
	}
	if len(data) > maxSecretBytes {
		return false, &secretError{name: s.name, err: fmt.Errorf("larger than %d bytes", maxSecretBytes)}
	}
	s.fi, s.data = fi, data
	return true, nil
}

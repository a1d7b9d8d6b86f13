package collector

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestScrapeRetries(t *testing.T) {
	tests := []struct {
		name         string
		failFirst    int
		retries      int
		wantUp       float64
		wantRequests int
		wantResult   string
	}{
		{"recovers on the last retry", 2, 2, 1, 3, resultSuccess},
		{"retries exhausted", 2, 1, 0, 2, resultHTTP},
		{"no retries", 1, 0, 0, 1, resultHTTP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestExporter(t, nodeExposition)
			e.set(func(r *exporterReply) { r.failFirst = tc.failFirst })
			sink := newScrapeSink()
			s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, time.Second, 300*time.Millisecond, tc.retries), sink)
			scrapeNow(s, 0)
			if up := oneSample(t, sink.last(t), "up"); up.V != tc.wantUp {
				t.Fatalf("up = %v", up.V)
			}
			if n := len(e.requestLog()); n != tc.wantRequests {
				t.Fatalf("%d requests", n)
			}
			if n := gatherValue(t, reg, "vigil_collector_scrape_retries_total"); n != float64(tc.wantRequests-1) {
				t.Fatalf("retries metric %v", n)
			}
			if n := gatherValue(t, reg, "vigil_collector_scrape_total", "result", tc.wantResult); n != 1 {
				t.Fatalf("result %s counted %v times", tc.wantResult, n)
			}
			if st := s.Status(); tc.wantUp == 0 && !strings.Contains(st.LastError, "503") {
				t.Fatalf("status error %q", st.LastError)
			}
		})
	}
}

func TestScrapeTimeout(t *testing.T) {
	t.Run("one attempt", func(t *testing.T) {
		e := newTestExporter(t, nodeExposition)
		e.set(func(r *exporterReply) { r.delay = 3 * time.Second })
		sink := newScrapeSink()
		s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, time.Second, 200*time.Millisecond, 0), sink)
		began := time.Now()
		scrapeNow(s, 0)
		if d := time.Since(began); d < 200*time.Millisecond || d > 900*time.Millisecond {
			t.Fatalf("scrape took %s with a 200ms timeout", d)
		}
		b := sink.last(t)
		if oneSample(t, b, "up").V != 0 || len(findSeries(b, "node_load1")) != 0 {
			t.Fatalf("timed-out scrape: %v", b)
		}
		st := s.Status()
		if st.Health != HealthDown || !strings.Contains(st.LastError, "timed out") {
			t.Fatalf("status %+v", st)
		}
		if n := gatherValue(t, reg, "vigil_collector_scrape_total", "result", resultTimeout); n != 1 {
			t.Fatalf("timeouts counted %v", n)
		}
	})
	t.Run("retries stop at the end of the slot", func(t *testing.T) {
		e := newTestExporter(t, nodeExposition)
		e.set(func(r *exporterReply) { r.delay = 3 * time.Second })
		sink := newScrapeSink()
		s, _ := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, time.Second, 300*time.Millisecond, 10), sink)
		k := scrapeNow(s, 0)
		end := s.Slots().Start(k + 1)
		// Retries go on until less than a backoff (at most 100ms here) and
		// a tenth of the timeout are left, and never past the slot's end.
		if now := time.Now().UnixMilli(); now > end+100 || now < end-300 {
			t.Fatalf("scrape of slot %d ended at %d, %dms before the slot's end", k, now, end-now)
		}
		reqs := e.requestLog()
		// At least one retry; how many fit depends on how much of the slot
		// was left when the scrape began, which a loaded machine shortens.
		if len(reqs) < 2 {
			t.Fatalf("%d attempts in a slot of 1-2s with a 300ms timeout", len(reqs))
		}
		for _, r := range reqs {
			if r.at.UnixMilli() >= end {
				t.Fatalf("attempt at %d after the slot end %d", r.at.UnixMilli(), end)
			}
		}
		if oneSample(t, sink.last(t), "up").V != 0 {
			t.Fatal("up != 0")
		}
	})
}

func TestScrapeRequestAndGzip(t *testing.T) {
	e := newTestExporter(t, nodeExposition)
	e.set(func(r *exporterReply) { r.gzip = true })
	sink := newScrapeSink()
	s, reg := newTestScraper(t, testScraperConfig(), scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0), sink)
	scrapeNow(s, 0)
	b := sink.last(t)
	if oneSample(t, b, "up").V != 1 || oneSample(t, b, "node_cpu_seconds_total", "mode", "idle").V != 1234.5 {
		t.Fatalf("gzip scrape: %v", b)
	}
	h := e.requestLog()[0].header
	acc := h.Get("Accept")
	if !strings.HasPrefix(acc, "application/openmetrics-text;version=1.0.0") || !strings.Contains(acc, "text/plain;version=0.0.4") {
		t.Fatalf("Accept: %q", acc)
	}
	if h.Get("Accept-Encoding") != "gzip" || h.Get("X-Prometheus-Scrape-Timeout-Seconds") != "0.5" || h.Get("User-Agent") != userAgent {
		t.Fatalf("headers %v", h)
	}
	// The body counter sees the uncompressed size.
	if n := gatherValue(t, reg, "vigil_collector_scrape_body_bytes_total"); n != float64(len(nodeExposition)) {
		t.Fatalf("body bytes %v, want %d", n, len(nodeExposition))
	}
}

func TestScrapeBodyLimit(t *testing.T) {
	tests := []struct {
		name   string
		limit  int64
		gzip   bool
		wantUp float64
	}{
		{"at the limit", int64(len(nodeExposition)), false, 1},
		{"one byte over", int64(len(nodeExposition)) - 1, false, 0},
		{"gzip, limit on the decoded size", int64(len(nodeExposition)) - 1, true, 0},
		{"gzip within", int64(len(nodeExposition)), true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestExporter(t, nodeExposition)
			e.set(func(r *exporterReply) { r.gzip = tc.gzip })
			sink := newScrapeSink()
			cfg := testScraperConfig()
			cfg.BodySizeLimit = tc.limit
			s, reg := newTestScraper(t, cfg, scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 2), sink)
			scrapeNow(s, 0)
			if up := oneSample(t, sink.last(t), "up").V; up != tc.wantUp {
				t.Fatalf("up = %v (%s)", up, s.Status().LastError)
			}
			if tc.wantUp == 0 {
				if n := gatherValue(t, reg, "vigil_collector_scrape_total", "result", resultBodyLimit); n != 1 {
					t.Fatalf("body_limit counted %v", n)
				}
				if len(e.requestLog()) != 1 {
					t.Fatal("a body over the limit was retried")
				}
				if !strings.Contains(s.Status().LastError, "body size limit") {
					t.Fatalf("error %q", s.Status().LastError)
				}
			}
		})
	}
}

func TestScrapeSampleLimit(t *testing.T) {
	var sb strings.Builder
	for i := range 10 {
		fmt.Fprintf(&sb, "m{i=\"%d\"} %d\n", i, i)
	}
	e := newTestExporter(t, nodeExposition)
	sink := newScrapeSink()
	cfg := testScraperConfig()
	cfg.SampleLimit = 5
	s, reg := newTestScraper(t, cfg, scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0), sink)
	scrapeNow(s, 0) // 3 samples: within the limit
	if oneSample(t, sink.last(t), "up").V != 1 {
		t.Fatal("3 samples failed a limit of 5")
	}
	e.set(func(r *exporterReply) { r.body = sb.String() })
	scrapeNow(s, 1)
	b := sink.last(t)
	if oneSample(t, b, "up").V != 0 || oneSample(t, b, "scrape_samples_scraped").V != 10 || len(findSeries(b, "m")) != 0 {
		t.Fatalf("over the limit: %v", b)
	}
	// The series of the last good scrape are stale now, as in Prometheus.
	if n := len(staleMarkers(b)); n != 3 {
		t.Fatalf("%d markers, want 3: %v", n, b)
	}
	if n := gatherValue(t, reg, "vigil_collector_scrape_total", "result", resultSampleLimit); n != 1 {
		t.Fatalf("sample_limit counted %v", n)
	}
	if !strings.Contains(s.Status().LastError, "sample limit") {
		t.Fatalf("error %q", s.Status().LastError)
	}
}

func writeSecretFile(t *testing.T, dir, name, content string) {
	t.Helper()
	// Write and rename, as a Kubernetes secret volume update does.
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func TestScrapeAuth(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		setup  func(tg *Target)
		header func(secret string) string
	}{
		{"basic", func(tg *Target) { tg.BasicAuth = &BasicAuth{Username: "prom", PasswordRef: "pw"} },
			func(s string) string {
				r, _ := http.NewRequest("GET", "/", nil)
				r.SetBasicAuth("prom", s)
				return r.Header.Get("Authorization")
			}},
		{"bearer", func(tg *Target) { tg.BearerTokenRef = "token" },
			func(s string) string { return "Bearer " + s }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := "first-secret"
			e := newTestExporter(t, nodeExposition)
			e.set(func(r *exporterReply) {
				r.check = func(req *http.Request) int {
					if req.Header.Get("Authorization") != tc.header(want) {
						return http.StatusUnauthorized
					}
					return 0
				}
			})
			tg := scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0)
			tc.setup(&tg)
			ref := "pw"
			if tg.BearerTokenRef != "" {
				ref = tg.BearerTokenRef
			}
			sink := newScrapeSink()
			cfg := testScraperConfig()
			cfg.SecretsDir = dir
			s, reg := newTestScraper(t, cfg, tg, sink)

			scrapeNow(s, 0) // no secret file yet
			if st := s.Status(); st.Health != HealthDown || !strings.Contains(st.LastError, `secret "`+ref+`"`) {
				t.Fatalf("missing secret: %+v", st)
			}
			if n := gatherValue(t, reg, "vigil_collector_scrape_total", "result", resultSecret); n != 1 {
				t.Fatalf("secret failures %v", n)
			}
			writeSecretFile(t, dir, ref, want+"\n") // trailing newline is trimmed
			scrapeNow(s, 1)
			if st := s.Status(); st.Health != HealthUp {
				t.Fatalf("with the secret: %+v", st)
			}
			// Rotation: the server wants the new secret, the file changes.
			want = "second-secret"
			scrapeNow(s, 2)
			if s.Status().Health != HealthDown {
				t.Fatal("old secret accepted after the server changed it")
			}
			writeSecretFile(t, dir, ref, want)
			scrapeNow(s, 3)
			if st := s.Status(); st.Health != HealthUp {
				t.Fatalf("rotated secret not used: %+v", st)
			}
		})
	}
	t.Run("no secrets directory", func(t *testing.T) {
		e := newTestExporter(t, nodeExposition)
		tg := scrapeTestTarget(t, e.srv.URL, time.Second, 500*time.Millisecond, 0)
		tg.BearerTokenRef = "token"
		s, _ := newTestScraper(t, testScraperConfig(), tg, newScrapeSink())
		scrapeNow(s, 0)
		if st := s.Status(); !strings.Contains(st.LastError, "no secrets directory") || len(e.requestLog()) != 0 {
			t.Fatalf("%+v", st)
		}
	})
}

// newClientCert makes a self-signed certificate for client authentication and
// returns it as PEM.
func newClientCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vigil-collector-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func TestScrapeTLS(t *testing.T) {
	clientCert, clientKey := newClientCert(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(clientCert)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ctText)
		w.Write([]byte(nodeExposition))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	serverCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	dir := t.TempDir()
	writeSecretFile(t, dir, "client.crt", string(clientCert))
	writeSecretFile(t, dir, "client.key", string(clientKey))
	tg := scrapeTestTarget(t, srv.URL, time.Second, 500*time.Millisecond, 0)
	tg.TLS = &TLSConfig{CARef: "ca.pem", CertRef: "client.crt", KeyRef: "client.key"}
	cfg := testScraperConfig()
	cfg.SecretsDir = dir
	sink := newScrapeSink()
	s, _ := newTestScraper(t, cfg, tg, sink)

	writeSecretFile(t, dir, "ca.pem", "not a certificate")
	scrapeNow(s, 0)
	if st := s.Status(); !strings.Contains(st.LastError, "no PEM certificate") {
		t.Fatalf("bad CA: %+v", st)
	}
	// A CA that did not sign the server's certificate.
	writeSecretFile(t, dir, "ca.pem", string(clientCert))
	scrapeNow(s, 1)
	if st := s.Status(); st.Health != HealthDown || !strings.Contains(st.LastError, "certificate") {
		t.Fatalf("wrong CA: %+v", st)
	}
	// The right CA, picked up because the file changed.
	writeSecretFile(t, dir, "ca.pem", string(serverCA))
	scrapeNow(s, 2)
	if st := s.Status(); st.Health != HealthUp || st.Series != 3 {
		t.Fatalf("mutual TLS: %+v", st)
	}
	// Without the client certificate the server refuses the handshake.
	tg.TLS = &TLSConfig{CARef: "ca.pem"}
	s2, _ := newTestScraper(t, cfg, tg, newScrapeSink())
	scrapeNow(s2, 0)
	if st := s2.Status(); st.Health != HealthDown {
		t.Fatalf("no client certificate: %+v", st)
	}
}

func TestSecretFileReload(t *testing.T) {
	dir := t.TempDir()
	f := &secretFile{dir: dir, name: "s"}
	if _, err := f.load(); err == nil {
		t.Fatal("missing file loaded")
	}
	for i, content := range []string{"a", "a", "bb", "cc"} {
		if i != 1 {
			writeSecretFile(t, dir, "s", content)
		}
		changed, err := f.load()
		if err != nil {
			t.Fatal(err)
		}
		if want := i != 1; changed != want || string(f.data) != content {
			t.Fatalf("step %d: changed=%v data=%q", i, changed, f.data)
		}
	}
	big := strings.Repeat("x", maxSecretBytes+1)
	writeSecretFile(t, dir, "s", big)
	if _, err := f.load(); err == nil || !strings.Contains(err.Error(), strconv.Itoa(maxSecretBytes)) {
		t.Fatalf("oversized secret: %v", err)
	}
}

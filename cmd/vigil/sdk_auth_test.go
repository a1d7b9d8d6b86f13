package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"iter"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/vigil-tsdb/vigil/sdk"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir and
// returns the paths and a pool that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vigil test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestSDKAuth serves the public API on its own TLS port with bearer
// tokens: the right token over TLS writes, every wrong way in is refused
// with the reason, the internal port does not serve the public API, a
// SIGHUP swaps the tokens (and a bad token file keeps the old ones), a
// stream open too long ends with ResourceExhausted, and the calls are
// counted in vigil_sdk_requests_total.
func TestSDKAuth(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	tokenFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokenFile, []byte("# writers\nalpha-token\n\nbeta-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	grpcAddr, publicAddr := freeAddr(t), freeAddr(t)
	base, stop := startRun(t, "-data.dir", filepath.Join(dir, "data"), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", grpcAddr,
		"-sdk.listen-address", publicAddr, "-sdk.tls-cert-file", certFile, "-sdk.tls-key-file", keyFile,
		"-sdk.bearer-token-file", tokenFile, "-sdk.stream-max-duration", "1s", "-self-scrape.interval", "0")
	defer func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	tlsCfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	client := func(opts ...sdk.Option) *sdk.Client {
		c, err := sdk.New(publicAddr, append([]sdk.Option{sdk.WithMaxRetries(0)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	now := time.Now().UnixMilli()
	write := func(c *sdk.Client, v float64) error {
		_, err := c.Write(ctx, []sdk.Series{{Labels: sdk.Labels("__name__", "sdk_auth", "v", "x"), Samples: []sdk.Sample{{T: now + int64(v), V: v}}}})
		return err
	}

	if err := write(client(sdk.WithTLS(tlsCfg), sdk.WithBearerToken("beta-token")), 1); err != nil {
		t.Fatalf("TLS and a listed token: %v", err)
	}
	// An address list: each node's certificate is checked against its
	// own host.
	listed, err := sdk.New(publicAddr+","+publicAddr, sdk.WithMaxRetries(0), sdk.WithTLS(tlsCfg), sdk.WithBearerToken("alpha-token"))
	if err != nil {
		t.Fatal(err)
	}
	defer listed.Close()
	if err := write(listed, 1); err != nil {
		t.Fatalf("TLS through an address list: %v", err)
	}
	waitQuery(t, base, `count_over_time(sdk_auth[1m])`, "1")

	refused := func(name string, c *sdk.Client, code codes.Code, want string) {
		t.Helper()
		err := write(c, 2)
		var e *sdk.Error
		if !errors.As(err, &e) || e.Code != code || !strings.Contains(e.Message, want) {
			t.Errorf("%s: error %v, want %s saying %q", name, err, code, want)
		}
		if code == codes.Unauthenticated && (!errors.Is(err, sdk.ErrDenied) || errors.Is(err, sdk.ErrUnavailable)) {
			t.Errorf("%s: %v is not classified as ErrDenied only", name, err)
		}
	}
	refused("no token", client(sdk.WithTLS(tlsCfg)), codes.Unauthenticated, "no bearer token")
	refused("unknown token", client(sdk.WithTLS(tlsCfg), sdk.WithBearerToken("gamma-token")), codes.Unauthenticated, "not accepted")
	refused("plaintext to the TLS port", client(sdk.WithBearerToken("alpha-token")), codes.Unavailable, "")
	refused("an untrusted certificate", client(sdk.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}), sdk.WithBearerToken("alpha-token")), codes.Unavailable, "certificate")
	internal, err := sdk.New(grpcAddr, sdk.WithMaxRetries(0), sdk.WithBearerToken("alpha-token"))
	if err != nil {
		t.Fatal(err)
	}
	defer internal.Close()
	refused("the internal port", internal, codes.Unimplemented, "")

	// SIGHUP: gamma replaces alpha and beta.
	if err := os.WriteFile(tokenFile, []byte("gamma-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	gamma := client(sdk.WithTLS(tlsCfg), sdk.WithBearerToken("gamma-token"))
	deadline := time.Now().Add(10 * time.Second)
	for write(gamma, 3) != nil {
		if time.Now().After(deadline) {
			t.Fatal("gamma-token not accepted 10 s after SIGHUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	refused("a token removed by the reload", client(sdk.WithTLS(tlsCfg), sdk.WithBearerToken("beta-token")), codes.Unauthenticated, "not accepted")
	// A token file without tokens is refused; gamma stays.
	if err := os.WriteFile(tokenFile, []byte("# none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, base, `vigil_sdk_config_reloads_total{result="failure"}`, 1)
	if err := write(gamma, 4); err != nil {
		t.Errorf("after a failed reload: %v", err)
	}

	// A stream open longer than -sdk.stream-max-duration (1 s) ends with
	// ResourceExhausted, not with OK: the client must not take it for
	// complete. The second message comes 3 s after the first: the limit
	// ends the stream while it is idle.
	var slow iter.Seq[[]sdk.Series] = func(yield func([]sdk.Series) bool) {
		for i := range 3 {
			if i > 0 {
				time.Sleep(3 * time.Second)
			}
			if !yield([]sdk.Series{{Labels: sdk.Labels("__name__", "sdk_auth_stream"), Samples: []sdk.Sample{{T: now + int64(i), V: float64(i)}}}}) {
				return
			}
		}
	}
	_, err = gamma.WriteStream(ctx, slow)
	var e *sdk.Error
	if !errors.As(err, &e) || e.Code != codes.ResourceExhausted || e.Retryable || !strings.Contains(e.Message, "-sdk.stream-max-duration") {
		t.Errorf("stream longer than its limit: %v, want ResourceExhausted naming -sdk.stream-max-duration", err)
	}

	// 3 refusals above, and those of gamma before the reload took effect.
	waitMetric(t, base, `vigil_sdk_requests_total{code="Unauthenticated",method="Write",service="Write"}`, 3)
	waitMetric(t, base, `vigil_sdk_requests_total{code="ResourceExhausted",method="WriteStream",service="Write"}`, 1)
	waitMetric(t, base, `vigil_sdk_request_duration_seconds_count{method="Write",service="Write"}`, 6)

	// SIGHUP re-reads the certificate too: a new one (new key, new CA)
	// is served to new connections.
	_, _, pool2 := selfSigned(t, dir) // overwrites cert.pem and key.pem
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, base, `vigil_sdk_config_reloads_total{result="failure"}`, 2) // the token file is still empty
	if err := os.WriteFile(tokenFile, []byte("gamma-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitMetric(t, base, `vigil_sdk_config_reloads_total{result="success"}`, 2)
	if err := write(client(sdk.WithTLS(&tls.Config{RootCAs: pool2, MinVersion: tls.VersionTLS12}), sdk.WithBearerToken("gamma-token")), 5); err != nil {
		t.Errorf("the reloaded certificate: %v", err)
	}
	refused("the replaced certificate", client(sdk.WithTLS(tlsCfg), sdk.WithBearerToken("gamma-token")), codes.Unavailable, "certificate")
}

// TestSDKUnknownService: a node without the role of a public service
// answers Unimplemented naming the role that serves it.
func TestSDKUnknownService(t *testing.T) {
	p, err := newPublicAPI(defaultSDKConfig(), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(p.serverOptions(false, map[string]bool{"ingester": true})...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Stop()
	c, err := sdk.New(ln.Addr().String(), sdk.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	_, err = c.Write(ctx, []sdk.Series{{Labels: sdk.Labels("__name__", "x"), Samples: []sdk.Sample{{T: 1, V: 1}}}})
	want := "this node does not serve vigil.v1.Write (its roles: ingester): call a node running the distributor"
	if e := (*sdk.Error)(nil); !errors.As(err, &e) || e.Code != codes.Unimplemented || e.Message != want {
		t.Errorf("Write: %v, want Unimplemented %q", err, want)
	}
	_, err = c.Query(ctx, "up", time.Now())
	if e := (*sdk.Error)(nil); !errors.As(err, &e) || e.Code != codes.Unimplemented || !strings.Contains(e.Message, "running the querier") {
		t.Errorf("Query: %v", err)
	}
}

// waitMetric polls /metrics until the series (name and labels as
// exposed) has at least the value atLeast.
func waitMetric(t *testing.T, base, series string, atLeast float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	last := "absent"
	for {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				last = v
				if f, err := strconv.ParseFloat(v, 64); err == nil && f >= atLeast {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics: %s is %s, want at least %g", series, last, atLeast)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSDKConfigErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spaced := filepath.Join(dir, "spaced")
	if err := os.WriteFile(spaced, []byte("ok\ntwo words\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"-data.dir", filepath.Join(dir, "data"), "-http.listen-address", "127.0.0.1:0", "-grpc.listen-address", "127.0.0.1:0"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-sdk.tls-cert-file", "c.pem"}, "must be set together"},
		{[]string{"-sdk.tls-cert-file", "c.pem", "-sdk.tls-key-file", "k.pem"}, "needs sdk.listen-address"},
		{[]string{"-sdk.stream-max-duration", "10ms"}, "at least 1s"},
		{[]string{"-sdk.bearer-token-file", empty}, "needs sdk.listen-address"},
		{[]string{"-sdk.listen-address", "127.0.0.1:0", "-sdk.bearer-token-file", filepath.Join(dir, "missing")}, "sdk.bearer-token-file"},
		{[]string{"-sdk.listen-address", "127.0.0.1:0", "-sdk.bearer-token-file", empty}, "no tokens"},
		{[]string{"-sdk.listen-address", "127.0.0.1:0", "-sdk.bearer-token-file", spaced}, "line 2"},
		{[]string{"-sdk.listen-address", "127.0.0.1:0", "-sdk.tls-cert-file", filepath.Join(dir, "c.pem"), "-sdk.tls-key-file", filepath.Join(dir, "k.pem")}, "sdk.tls-cert-file/sdk.tls-key-file"},
	} {
		err := run(context.Background(), append(append([]string{}, common...), tc.args...), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}

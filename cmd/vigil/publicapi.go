package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
)

// SDKConfig configures the public gRPC API, vigil.v1 (docs/sdk.md): where
// it is served, TLS and bearer tokens.
type SDKConfig struct {
	// ListenAddress serves the public services on their own port; empty
	// serves them on the gRPC port, next to the internal RPCs.
	ListenAddress string `yaml:"listen_address"`
	// TLSCertFile and TLSKeyFile turn on TLS for ListenAddress (PEM).
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// BearerTokenFile lists the accepted tokens, one per line; empty
	// accepts every caller.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// StreamMaxDuration bounds one WriteStream.
	StreamMaxDuration time.Duration `yaml:"stream_max_duration"`
}

func defaultSDKConfig() SDKConfig { return SDKConfig{StreamMaxDuration: 10 * time.Minute} }

// RegisterFlags adds the -sdk.* flags.
func (c *SDKConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.ListenAddress, "sdk.listen-address", c.ListenAddress, "serve the public gRPC API (vigil.v1, the Go SDK's) on this address only, with TLS if -sdk.tls-cert-file is set; empty: on -grpc.listen-address, plaintext, next to the internal RPCs")
	f.StringVar(&c.TLSCertFile, "sdk.tls-cert-file", c.TLSCertFile, "PEM certificate (chain) of -sdk.listen-address; re-read on SIGHUP")
	f.StringVar(&c.TLSKeyFile, "sdk.tls-key-file", c.TLSKeyFile, "PEM private key of -sdk.tls-cert-file")
	f.StringVar(&c.BearerTokenFile, "sdk.bearer-token-file", c.BearerTokenFile, "file of accepted bearer tokens, one per line (# comments); the public gRPC API answers Unauthenticated without one of them. Re-read on SIGHUP")
	f.DurationVar(&c.StreamMaxDuration, "sdk.stream-max-duration", c.StreamMaxDuration, "longest a WriteStream may stay open, idle or not; it then ends with ResourceExhausted (what it stored stays stored; the client writes the rest in a new stream)")
}

// Validate reports the first problem.
func (c SDKConfig) Validate() error {
	switch {
	case (c.TLSCertFile == "") != (c.TLSKeyFile == ""):
		return errors.New("sdk.tls-cert-file and sdk.tls-key-file must be set together")
	case c.TLSCertFile != "" && c.ListenAddress == "":
		return errors.New("sdk.tls-cert-file needs sdk.listen-address: the gRPC port also carries the internal RPCs, which are plaintext")
	case c.BearerTokenFile != "" && c.ListenAddress == "":
		return errors.New("sdk.bearer-token-file needs sdk.listen-address: on the shared gRPC port the internal RPCs (Push, Select) take no token, so a token would protect nothing")
	case c.StreamMaxDuration < time.Second:
		return errors.New("sdk.stream-max-duration must be at least 1s")
	}
	return nil
}

// publicPrefix starts the full method name of every public RPC.
const publicPrefix = "/vigil.v1."

// publicAPI is what the services of vigil.v1 share on the server: bearer
// tokens, TLS certificates (both re-read by reload) and metrics. Its
// interceptors leave the internal RPCs alone.
type publicAPI struct {
	cfg      SDKConfig
	logger   *slog.Logger
	tokens   atomic.Pointer[[][]byte] // nil: no token needed
	cert     atomic.Pointer[tls.Certificate]
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	reloads  *prometheus.CounterVec
}

// newPublicAPI reads the token and certificate files: a node does not
// start with an unreadable one.
func newPublicAPI(cfg SDKConfig, logger *slog.Logger, reg prometheus.Registerer) (*publicAPI, error) {
	p := &publicAPI{
		cfg:    cfg,
		logger: logger,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_sdk_requests_total",
			Help: "Calls of the public gRPC API (vigil.v1) by service, method and status code.",
		}, []string{"service", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_sdk_request_duration_seconds",
			Help:    "Duration of calls of the public gRPC API (vigil.v1); a stream counts from open to close.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}, []string{"service", "method"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_sdk_config_reloads_total",
			Help: "Re-reads of -sdk.bearer-token-file and the TLS files on SIGHUP, by result (success, failure).",
		}, []string{"result"}),
	}
	if err := p.load(); err != nil {
		return nil, err
	}
	reg.MustRegister(p.requests, p.duration, p.reloads)
	return p, nil
}

// load reads the token and certificate files, changing nothing on error.
func (p *publicAPI) load() error {
	var tokens [][]byte
	if p.cfg.BearerTokenFile != "" {
		b, err := os.ReadFile(p.cfg.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("sdk.bearer-token-file: %w", err)
		}
		if tokens, err = parseTokens(b); err != nil {
			return fmt.Errorf("sdk.bearer-token-file %s: %w", p.cfg.BearerTokenFile, err)
		}
	}
	var cert *tls.Certificate
	if p.cfg.TLSCertFile != "" {
		c, err := tls.LoadX509KeyPair(p.cfg.TLSCertFile, p.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("sdk.tls-cert-file/sdk.tls-key-file: %w", err)
		}
		cert = &c
	}
	if tokens != nil {
		p.tokens.Store(&tokens)
	}
	p.cert.Store(cert)
	return nil
}

// reload re-reads the files (SIGHUP); on error the old ones stay in use.
func (p *publicAPI) reload() {
	if p.cfg.BearerTokenFile == "" && p.cfg.TLSCertFile == "" {
		return
	}
	if err := p.load(); err != nil {
		p.reloads.WithLabelValues("failure").Inc()
		p.logger.Error("reload of the public API's tokens and certificate failed; the old ones stay in use", "err", err)
		return
	}
	p.reloads.WithLabelValues("success").Inc()
	p.logger.Info("reloaded the public API's tokens and certificate")
}

// parseTokens reads one token per line; blank lines and # comments are
// skipped. A file without tokens would lock every client out: an error.
func parseTokens(b []byte) ([][]byte, error) {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("line %d: a token has no spaces", n)
		}
		out = append(out, []byte(line))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no tokens (one per line)")
	}
	return out, nil
}

// serverOptions are those of a gRPC server that carries the public API:
// the internal server when it has no port of its own, or its own server
// (with TLS if ownTLS). A public service the node's roles do not serve
// answers Unimplemented naming the role that does.
func (p *publicAPI) serverOptions(ownTLS bool, roles map[string]bool) []grpc.ServerOption {
	opts := append(ingesterpb.ServerOptions(), grpc.ChainUnaryInterceptor(p.unary), grpc.ChainStreamInterceptor(p.stream),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			return unknownService(ss, roles)
		}))
	if ownTLS {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				return p.cert.Load(), nil
			},
		})))
	}
	return opts
}

// unknownService answers a call of a service this server does not have.
func unknownService(ss grpc.ServerStream, roles map[string]bool) error {
	method, _ := grpc.MethodFromServerStream(ss)
	role := map[string]string{"Write": "distributor", "Query": "querier", "Targets": "collector (the target registry)"}
	service, _, _ := strings.Cut(strings.TrimPrefix(method, publicPrefix), "/")
	if strings.HasPrefix(method, publicPrefix) && role[service] != "" {
		var have []string
		for _, r := range []string{"ingester", "distributor", "querier", "collector", "etcd"} {
			if roles[r] {
				have = append(have, r)
			}
		}
		return status.Errorf(codes.Unimplemented, "this node does not serve vigil.v1.%s (its roles: %s): call a node running the %s", service, strings.Join(have, ","), role[service])
	}
	return status.Errorf(codes.Unimplemented, "unknown method %s", method)
}

func (p *publicAPI) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, publicPrefix) {
		return handler(ctx, req)
	}
	start := time.Now()
	var resp any
	err := p.authorize(ctx)
	if err == nil {
		resp, err = handler(ctx, req)
	}
	p.observe(info.FullMethod, start, err)
	return resp, err
}

func (p *publicAPI) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !strings.HasPrefix(info.FullMethod, publicPrefix) {
		return handler(srv, ss)
	}
	start := time.Now()
	err := p.authorize(ss.Context())
	if err == nil {
		err = handler(srv, ss)
	}
	p.observe(info.FullMethod, start, err)
	return err
}

// authorize checks the call's bearer token when tokens are configured.
func (p *publicAPI) authorize(ctx context.Context) error {
	tokens := p.tokens.Load()
	if tokens == nil {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	if len(auth) == 0 {
		return status.Error(codes.Unauthenticated, "no bearer token: send metadata \"authorization: Bearer <token>\" (sdk.WithBearerToken)")
	}
	tok, ok := strings.CutPrefix(auth[0], "Bearer ")
	if !ok {
		return status.Error(codes.Unauthenticated, "authorization metadata is not \"Bearer <token>\"")
	}
	for _, t := range *tokens {
		if subtle.ConstantTimeCompare([]byte(tok), t) == 1 {
			return nil
		}
	}
	return status.Error(codes.Unauthenticated, "bearer token not accepted (not in -sdk.bearer-token-file)")
}

func (p *publicAPI) observe(fullMethod string, start time.Time, err error) {
	service, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, publicPrefix), "/")
	p.requests.WithLabelValues(service, method, status.Code(err).String()).Inc()
	p.duration.WithLabelValues(service, method).Observe(time.Since(start).Seconds())
}

package sdk

import (
	"context"
	"crypto/tls"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// WithTLS makes the connection use TLS with cfg (nil: the system's root
// CAs and the address's host name). Without it the connection is
// plaintext.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) {
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		o.tls = cfg
	}
}

// WithBearerToken sends "authorization: Bearer <token>" with every call,
// for a server started with -sdk.bearer-token-file. Without WithTLS the
// token crosses the network in clear text: use that only on loopback or
// a network you trust.
func WithBearerToken(token string) Option {
	return func(o *options) { o.token = token }
}

// transportOptions are the dial options for o's TLS and token.
func (o *options) transportOptions() []grpc.DialOption {
	creds := insecure.NewCredentials()
	if o.tls != nil {
		creds = credentials.NewTLS(o.tls)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearerToken(o.token)))
	}
	return opts
}

// bearerToken is per-call credentials carrying a bearer token.
type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

// RequireTransportSecurity is false so that a token can be used over a
// plaintext loopback connection; WithBearerToken's doc says when not to.
func (bearerToken) RequireTransportSecurity() bool { return false }

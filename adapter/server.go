package adapter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/endpoints/handlers/responsewriters"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/rest"
	openapicommon "k8s.io/kube-openapi/pkg/common"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/cmd/options"
	generatedcore "sigs.k8s.io/custom-metrics-apiserver/pkg/generated/openapi/core"
	generatedcustommetrics "sigs.k8s.io/custom-metrics-apiserver/pkg/generated/openapi/custommetrics"
	generatedexternalmetrics "sigs.k8s.io/custom-metrics-apiserver/pkg/generated/openapi/externalmetrics"
)

// ServerOptions are the aggregated API server's flags: the library's
// secure serving, delegated authentication and authorization, audit and
// features (custom-metrics-apiserver's options, as AdapterBase installs
// them), plus the switch that turns delegated auth off for tests.
type ServerOptions struct {
	*options.CustomMetricsAdapterServerOptions
	// SkipDelegatedAuth serves every request without authentication or
	// authorization (the library's nil options). Tests and local use only.
	SkipDelegatedAuth bool
}

// NewServerOptions returns the library's defaults. NewServer makes the
// delegated-auth kubeconfigs optional only out of a cluster.
func NewServerOptions() *ServerOptions {
	return &ServerOptions{CustomMetricsAdapterServerOptions: options.NewCustomMetricsAdapterServerOptions()}
}

// delegatedAuthOptional sets whether delegated auth may go without an API
// server: only out of a cluster (rest.ErrNotInCluster), where the server
// then starts and forbids every metrics request. In a cluster whose
// in-cluster config cannot be read (no service-account token) it is an
// error: the library would otherwise degrade to 403 for everything while
// /readyz says 200.
func (o *ServerOptions) delegatedAuthOptional() error {
	if o.Authentication == nil || o.Authorization == nil {
		return nil
	}
	if o.Authentication.RemoteKubeConfigFile != "" && o.Authorization.RemoteKubeConfigFile != "" {
		return nil
	}
	_, err := rest.InClusterConfig()
	switch {
	case errors.Is(err, rest.ErrNotInCluster):
		o.Authentication.RemoteKubeConfigFileOptional = true
		o.Authorization.RemoteKubeConfigFileOptional = true
		return nil
	case err != nil:
		return fmt.Errorf("delegated auth: in-cluster config: %w (or pass --authentication-kubeconfig and --authorization-kubeconfig)", err)
	}
	o.Authentication.RemoteKubeConfigFileOptional = false
	o.Authorization.RemoteKubeConfigFileOptional = false
	return nil
}

// AddFlags registers the library's flags and --insecure-skip-delegated-auth.
func (o *ServerOptions) AddFlags(fs *pflag.FlagSet) {
	o.CustomMetricsAdapterServerOptions.AddFlags(fs)
	fs.BoolVar(&o.SkipDelegatedAuth, "insecure-skip-delegated-auth", false,
		"serve every request without authentication or authorization (tests and local experiments only; never behind kube-aggregator)")
}

// Server is the aggregated API server serving p's metrics.
type Server struct {
	server *apiserver.CustomMetricsAdapterServer
}

// NewServer builds the server. It binds the secure port (or uses
// o.SecureServing.Listener) and writes a self-signed certificate to the
// cert dir when none is given, as AdapterBase does. Unlike AdapterBase it
// needs no connection to a Kubernetes API server: the provider resolves
// resources from its own table, and delegated auth uses one only if a
// kubeconfig or the in-cluster config is there.
func NewServer(name string, o *ServerOptions, p *Provider) (*Server, error) {
	if o.SkipDelegatedAuth {
		o.Authentication, o.Authorization = nil, nil
	}
	if err := o.delegatedAuthOptional(); err != nil {
		return nil, err
	}
	if errs := o.Validate(); len(errs) > 0 {
		return nil, utilerrors.NewAggregate(errs)
	}
	defs := func(ref openapicommon.ReferenceCallback) map[string]openapicommon.OpenAPIDefinition {
		out := map[string]openapicommon.OpenAPIDefinition{}
		for _, get := range []openapicommon.GetOpenAPIDefinitions{generatedcore.GetOpenAPIDefinitions, generatedcustommetrics.GetOpenAPIDefinitions, generatedexternalmetrics.GetOpenAPIDefinitions} {
			for k, v := range get(ref) {
				out[k] = v
			}
		}
		return out
	}
	cfg := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(defs, openapinamer.NewDefinitionNamer(apiserver.Scheme))
	cfg.OpenAPIConfig.Info.Title, cfg.OpenAPIConfig.Info.Version = name, "1.0.0"
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(defs, openapinamer.NewDefinitionNamer(apiserver.Scheme))
	cfg.OpenAPIV3Config.Info.Title, cfg.OpenAPIV3Config.Info.Version = name, "1.0.0"
	cfg.EnableMetrics = o.EnableMetrics
	cfg.BuildHandlerChainFunc = func(h http.Handler, c *genericapiserver.Config) http.Handler {
		return genericapiserver.DefaultBuildHandlerChain(checkMetricSelector(h), c)
	}

	// The steps of options.ApplyTo, without the core client it builds
	// only for priority and fairness (off in these options).
	if err := o.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		return nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	if err := o.SecureServing.ApplyTo(&cfg.SecureServing, &cfg.LoopbackClientConfig); err != nil {
		return nil, fmt.Errorf("secure serving: %w", err)
	}
	if err := o.Authentication.ApplyTo(&cfg.Authentication, cfg.SecureServing, nil); err != nil {
		return nil, fmt.Errorf("delegated authentication: %w", err)
	}
	if err := o.Authorization.ApplyTo(&cfg.Authorization); err != nil {
		return nil, fmt.Errorf("delegated authorization: %w", err)
	}
	if err := o.Audit.ApplyTo(&cfg.Config); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := o.Features.ApplyTo(&cfg.Config, nil, nil); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	c := &apiserver.Config{GenericConfig: &cfg.Config}
	s, err := c.Complete(nil).New(name, p, p)
	if err != nil {
		return nil, fmt.Errorf("build API server: %w", err)
	}
	return &Server{server: s}, nil
}

// checkMetricSelector answers a malformed metricLabelSelector with a 400
// BadRequest status. The library parses it after the provider is chosen
// and returns the parse error as a 500. It runs inside the chain, after
// authentication and authorization.
func checkMetricSelector(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sel := r.URL.Query().Get("metricLabelSelector"); sel != "" {
			if _, err := labels.Parse(sel); err != nil {
				st := apierrors.NewBadRequest(fmt.Sprintf("metricLabelSelector %q: %v", sel, err))
				responsewriters.ErrorNegotiated(st, apiserver.Codecs, schema.GroupVersion{}, w, r)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	return s.server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-tsdb/vigil/model"
)

// Pusher stores a decoded batch; the distributor implements it. It
// validates labels, values, timestamps and limits, stores the valid part,
// and reports what it refused in the PushResult. An error means nothing was
// stored, and is of a model error class (ErrBadData, ErrTooLarge,
// ErrOverloaded, ErrUnavailable); anything else is treated as unavailable.
// The batch is owned by the caller again when Push returns. Push may block
// until the data is durable and is called concurrently.
type Pusher interface {
	Push(ctx context.Context, batch []model.Series) (model.PushResult, error)
}

// StatusReader reports cardinality for /api/v1/status/tsdb: the totals
// and the top limit entries of each list. Called concurrently.
type StatusReader interface {
	TSDBStatus(ctx context.Context, limit int) (model.TSDBStatus, error)
}

// Resolutions prepares a query for the resolution it may read
// (docs/downsampling.md, "Reads"): given the query, the request's
// resolution parameter ("" for auto: auto, raw, 1m or 1h) and the query's
// time range and step, it returns the context and query text to run. An
// error says what is wrong with the parameter or the query. Called
// concurrently.
type Resolutions interface {
	Prepare(ctx context.Context, query, resolution string, start, end time.Time, step time.Duration) (context.Context, string, error)
}

// Build information reported by /api/v1/status/buildinfo, set at link
// time: go build -ldflags "-X github.com/vigil-tsdb/vigil/api.Version=1.2.3
// -X github.com/vigil-tsdb/vigil/api.Revision=$(git rev-parse HEAD) ...".
// An empty Version falls back to the module version Go recorded.
var (
	Version   string
	Revision  string
	Branch    string
	BuildUser string
	BuildDate string
)

// API serves the HTTP endpoints. Create it with New; it is safe for
// concurrent use.
type API struct {
	cfg       Config
	pusher    Pusher            // nil: this node takes no writes
	queryable storage.Queryable // nil: this node answers no queries
	engine    promql.QueryEngine
	status    StatusReader // nil: no cardinality report
	tiers     Resolutions  // nil: raw data only
	ready     func() error
	gatherer  prometheus.Gatherer
	logger    *slog.Logger
	metrics   *metrics
	parser    parser.Parser
	now       func() time.Time // replaced in tests

	// Optional sources for /api/v1/status/config and flags, set before
	// Handler is first called.
	configYAML func() string
	flags      map[string]string

	mux *http.ServeMux

	writeSlots chan struct{} // one token per push request in progress
}

// New returns an API over its dependencies. pusher, queryable with engine,
// status, ready and gatherer may be nil: the endpoints that need a missing
// dependency answer 503 saying so (ready nil means always ready; gatherer
// nil means no /metrics). logger nil discards logs; reg nil registers no
// metrics.
func New(cfg Config, pusher Pusher, queryable storage.Queryable, engine promql.QueryEngine, status StatusReader,
	ready func() error, gatherer prometheus.Gatherer, logger *slog.Logger, reg prometheus.Registerer,
) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate api config: %w", err)
	}
	if (queryable == nil) != (engine == nil) {
		return nil, errors.New("create api: queryable and engine must be given together")
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if ready == nil {
		ready = func() error { return nil }
	}
	a := &API{
		cfg:       cfg,
		pusher:    pusher,
		queryable: queryable,
		engine:    engine,
		status:    status,
		ready:     ready,
		gatherer:  gatherer,
		logger:    logger,
		metrics:   newMetrics(reg),
		parser:    parser.NewParser(parser.Options{}),
		now:       time.Now,
		flags:     map[string]string{},
	}
	a.writeSlots = make(chan struct{}, cfg.MaxConcurrentWrites)
	a.mux = a.routes()
	return a, nil
}

// SetResolutions lets queries read the downsampled tiers (the resolution
// parameter). Call it before serving.
func (a *API) SetResolutions(r Resolutions) { a.tiers = r }

// prepare applies the resolution parameter res to query q.
func (a *API) prepare(ctx context.Context, q, res string, start, end time.Time, step time.Duration) (context.Context, string, error) {
	if a.tiers == nil {
		if res != "" && res != "auto" && res != "raw" {
			return ctx, q, fmt.Errorf("resolution %q: this node keeps no downsampled tiers", res)
		}
		return ctx, q, nil
	}
	return a.tiers.Prepare(ctx, q, res, start, end, step)
}

// SetStatusSources sets what /api/v1/status/config (the YAML returned by
// configYAML) and /api/v1/status/flags report. Call it before serving.
func (a *API) SetStatusSources(configYAML func() string, flags map[string]string) {
	a.configYAML = configYAML
	if flags != nil {
		a.flags = flags
	}
}

// Handler returns the handler for every route of the API.
func (a *API) Handler() http.Handler { return a.mux }

func (a *API) routes() *http.ServeMux {
	mux := http.NewServeMux()
	handle := func(name string, h http.HandlerFunc, patterns ...string) {
		ih := a.metrics.instrument(name, h)
		for _, p := range patterns {
			mux.Handle(p, ih)
		}
	}
	getPost := func(path string) []string { return []string{"GET " + path, "POST " + path} }

	// Push protocols.
	handle("/api/v1/write", a.gateWrite(a.handleRemoteWrite), "POST /api/v1/write")
	handle("/api/v1/import/prometheus", a.gateWrite(a.handleTextImport),
		"POST /api/v1/import/prometheus", "POST /api/v1/import/prometheus/{path...}")
	handle("/write", a.gateWrite(a.handleLineProtocol), "POST /write")
	handle("/api/v2/write", a.gateWrite(a.handleLineProtocol), "POST /api/v2/write")
	handle("/ping", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, "GET /ping", "HEAD /ping")

	// Query API.
	handle("/api/v1/query", a.apiHandler(a.gateQuery(a.query)), getPost("/api/v1/query")...)
	handle("/api/v1/query_range", a.apiHandler(a.gateQuery(a.queryRange)), getPost("/api/v1/query_range")...)
	handle("/api/v1/query_exemplars", a.apiHandler(a.gateQuery(a.queryExemplars)), getPost("/api/v1/query_exemplars")...)
	handle("/api/v1/format_query", a.apiHandler(a.formatQuery), getPost("/api/v1/format_query")...)
	handle("/api/v1/series", a.apiHandler(a.gateQuery(a.series)), getPost("/api/v1/series")...)
	handle("/api/v1/labels", a.apiHandler(a.gateQuery(a.labelNames)), getPost("/api/v1/labels")...)
	handle("/api/v1/label/:name/values", a.apiHandler(a.gateQuery(a.labelValues)), "GET /api/v1/label/{name}/values")
	handle("/api/v1/metadata", a.apiHandler(a.metadata), "GET /api/v1/metadata")

	// Status.
	handle("/api/v1/status/buildinfo", a.apiHandler(a.buildInfo), "GET /api/v1/status/buildinfo")
	handle("/api/v1/status/tsdb", a.apiHandler(a.tsdbStatus), "GET /api/v1/status/tsdb")
	handle("/api/v1/status/config", a.apiHandler(a.statusConfig), "GET /api/v1/status/config")
	handle("/api/v1/status/flags", a.apiHandler(a.statusFlags), "GET /api/v1/status/flags")

	// Operations.
	if a.gatherer != nil {
		handle("/metrics", promhttp.HandlerFor(a.gatherer, promhttp.HandlerOpts{
			ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelError),
			EnableOpenMetrics: true,
		}).ServeHTTP, "GET /metrics")
	}
	handle("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "Vigil is Healthy.")
	}, "GET /-/healthy", "HEAD /-/healthy")
	handle("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "Vigil is not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "Vigil is Ready.")
	}, "GET /-/ready", "HEAD /-/ready")
	return mux
}

// gateWrite answers 503 with Retry-After while the node is not ready or
// has no Pusher, so that senders keep their data and retry.
func (a *API) gateWrite(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.pusher == nil {
			a.writeError(w, r, fmt.Errorf("%w: this node does not accept writes (no distributor)", model.ErrUnavailable))
			return
		}
		if err := a.ready(); err != nil {
			a.writeError(w, r, fmt.Errorf("%w: not ready: %v", model.ErrUnavailable, err))
			return
		}
		if !a.acquireWriteSlot(r) {
			a.metrics.rejected.WithLabelValues(reasonOverloaded).Inc()
			a.writeError(w, r, fmt.Errorf("%w: %d write requests in progress and none finished within %s; retry later",
				model.ErrOverloaded, cap(a.writeSlots), a.cfg.WriteQueueTimeout))
			return
		}
		defer func() {
			<-a.writeSlots
			a.metrics.writesInFlight.Dec()
		}()
		h(w, r)
	}
}

// acquireWriteSlot waits up to WriteQueueTimeout for a write slot.
func (a *API) acquireWriteSlot(r *http.Request) bool {
	select {
	case a.writeSlots <- struct{}{}:
		a.metrics.writesInFlight.Inc()
		return true
	default:
	}
	t := time.NewTimer(a.cfg.WriteQueueTimeout)
	defer t.Stop()
	a.metrics.writesQueued.Inc()
	defer a.metrics.writesQueued.Dec()
	select {
	case a.writeSlots <- struct{}{}:
		a.metrics.writesInFlight.Inc()
		return true
	case <-t.C:
		return false
	case <-r.Context().Done():
		return false
	}
}

// gateQuery answers "unavailable" while the node is not ready (its data
// may be incomplete, e.g. during WAL replay) or has no query engine.
func (a *API) gateQuery(f apiFunc) apiFunc {
	return func(r *http.Request) apiResult {
		if e := a.queryGate(); e != nil {
			return apiResult{err: e}
		}
		return f(r)
	}
}

// queryGate is why the node answers no queries now, or nil.
func (a *API) queryGate() *apiError {
	if a.queryable == nil {
		return &apiError{errUnavailable, errors.New("this node does not answer queries (no querier)")}
	}
	if err := a.ready(); err != nil {
		return &apiError{errUnavailable, fmt.Errorf("not ready: %w", err)}
	}
	return nil
}

// buildInfoData is Prometheus' PrometheusVersion.
type buildInfoData struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

func currentBuildInfo() buildInfoData {
	bi := buildInfoData{
		Version: Version, Revision: Revision, Branch: Branch,
		BuildUser: BuildUser, BuildDate: BuildDate, GoVersion: runtime.Version(),
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		if bi.Version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			bi.Version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && bi.Revision == "" {
				bi.Revision = s.Value
			}
		}
	}
	if bi.Version == "" {
		bi.Version = "devel"
	}
	return bi
}

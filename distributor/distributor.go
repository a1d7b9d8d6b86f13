package distributor

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
)

// Config configures validation, limits and replication.
type Config struct {
	Limits model.Limits `yaml:"limits"`
	// PushTimeout bounds one push to an ingester.
	PushTimeout time.Duration `yaml:"push_timeout"`
	// ReplicationFactor is how many ingesters store each series in a
	// cluster; a write is acknowledged once ReplicationFactor/2+1 did.
	ReplicationFactor int `yaml:"replication_factor"`
}

// DefaultConfig returns working defaults.
func DefaultConfig() Config {
	return Config{Limits: model.DefaultLimits(), PushTimeout: 10 * time.Second, ReplicationFactor: 3}
}

// RegisterFlags adds the distributor and limit flags.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.Limits.MaxLabelsPerSeries, "limits.max-labels-per-series", c.Limits.MaxLabelsPerSeries, "labels per series at most, __name__ included (0 = unlimited)")
	f.IntVar(&c.Limits.MaxLabelNameLength, "limits.max-label-name-length", c.Limits.MaxLabelNameLength, "bytes per label name at most")
	f.IntVar(&c.Limits.MaxLabelValueLength, "limits.max-label-value-length", c.Limits.MaxLabelValueLength, "bytes per label value at most")
	f.IntVar(&c.Limits.MaxSamplesPerRequest, "limits.max-samples-per-request", c.Limits.MaxSamplesPerRequest, "samples per write request at most; larger requests are refused whole with 413")
	f.DurationVar(&c.Limits.MaxFuture, "limits.max-future", c.Limits.MaxFuture, "how far past the server's clock a sample timestamp may be")
	f.BoolVar(&c.Limits.RejectNaNInf, "limits.reject-nan-inf", c.Limits.RejectNaNInf, "refuse NaN (other than the staleness marker) and ±Inf sample values")
	f.DurationVar(&c.PushTimeout, "distributor.push-timeout", c.PushTimeout, "timeout of one push to an ingester")
	f.IntVar(&c.ReplicationFactor, "distributor.replication-factor", c.ReplicationFactor, "ingesters that store each series (cluster mode); writes need RF/2+1 of them")
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.PushTimeout <= 0 {
		return fmt.Errorf("distributor: push_timeout must be positive")
	}
	if c.ReplicationFactor < 1 {
		return fmt.Errorf("distributor: replication_factor must be at least 1, got %d", c.ReplicationFactor)
	}
	if c.Limits.MaxLabelsPerSeries < 0 || c.Limits.MaxSamplesPerRequest < 0 || c.Limits.MaxLabelNameLength < 0 || c.Limits.MaxLabelValueLength < 0 {
		return fmt.Errorf("distributor: limits must not be negative")
	}
	return nil
}

// Target is one ingester a series is sent to.
type Target struct {
	Name    string // unique: the ring member name
	Addr    string // gRPC address
	Healthy bool   // false: known down; counted as a failed replica without a call
}

// Router places series. Route returns the replica set of the series whose
// encoded label set (model.AppendLabels) is key; the result may be shared
// between calls and must not be modified. Quorum is how many of a replica
// set must store a series before a write is acknowledged.
type Router interface {
	Route(key []byte) ([]Target, error)
	Quorum() int
}

// Clients gives the gRPC client of an ingester address.
type Clients interface {
	Get(addr string) (ingesterpb.IngesterClient, error)
}

// Distributor validates batches and replicates them to ingesters.
type Distributor struct {
	cfg     Config
	router  Router
	clients Clients
	logger  *slog.Logger
	now     func() time.Time

	pushBufs sync.Pool // *ingesterpb.PushBuffer

	received        prometheus.Counter
	rejected        *prometheus.CounterVec
	duration        prometheus.Histogram
	ingesterPushes  *prometheus.CounterVec
	quorumFailures  prometheus.Counter
	replicasPending prometheus.Gauge
}

// New returns a distributor that writes through router and clients.
func New(cfg Config, router Router, clients Clients, logger *slog.Logger, reg prometheus.Registerer) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &Distributor{
		cfg: cfg, router: router, clients: clients, logger: logger, now: time.Now,
		pushBufs:        sync.Pool{New: func() any { return new(ingesterpb.PushBuffer) }},
		received:        f.NewCounter(prometheus.CounterOpts{Name: "vigil_distributor_received_samples_total", Help: "Samples received in write requests."}),
		rejected:        f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_distributor_rejected_samples_total", Help: "Samples refused, by reason."}, []string{"reason"}),
		duration:        f.NewHistogram(prometheus.HistogramOpts{Name: "vigil_distributor_push_duration_seconds", Help: "Duration of a push, validation to quorum acknowledgment.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
		ingesterPushes:  f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_distributor_ingester_pushes_total", Help: "Pushes to ingesters, by ingester and result (ok, failed, skipped: known down)."}, []string{"ingester", "result"}),
		quorumFailures:  f.NewCounter(prometheus.CounterOpts{Name: "vigil_distributor_quorum_failures_total", Help: "Write requests refused because a series could not reach its write quorum."}),
		replicasPending: f.NewGauge(prometheus.GaugeOpts{Name: "vigil_distributor_replica_pushes_in_flight", Help: "Pushes to ingesters still running, including those that continue after their request was acknowledged."}),
	}, nil
}

// group is the part of a batch bound for one ingester.
type group struct {
	target Target
	series []int // indexes into the request's series
}

// reply is one ingester's answer.
type reply struct {
	g   *group
	res model.PushResult
	err error
}

// Push validates batch and stores its valid part on every replica. It
// returns once each series is stored by a quorum of its replicas, or as
// soon as one cannot be: then the error is model.ErrUnavailable and nothing
// may be assumed stored (a retry is safe: replicas that did store drop the
// repeat as exact duplicates). Pushes to the remaining replicas continue in
// the background, bounded by the push timeout. Refused samples are
// reported in the result.
func (d *Distributor) Push(ctx context.Context, batch []model.Series) (model.PushResult, error) {
	start := time.Now()
	defer func() { d.duration.Observe(time.Since(start).Seconds()) }()
	var res model.PushResult
	n := model.CountSamples(batch)
	d.received.Add(float64(n))
	if max := d.cfg.Limits.MaxSamplesPerRequest; max > 0 && n > max {
		return res, fmt.Errorf("%d samples in one request, limit is %d: %w", n, max, model.ErrTooLarge)
	}
	valid := d.cfg.Limits.Filter(batch, d.now().UnixMilli(), &res)
	d.countRejected(res)
	if len(valid) == 0 {
		return res, nil
	}
	// Labels are encoded once; every ingester's request shares the
	// encoded series, which stay untouched until the last push returns.
	pb := d.pushBufs.Get().(*ingesterpb.PushBuffer)
	req := pb.Fill(valid)
	groups, owners, err := d.split(req)
	if err != nil {
		d.pushBufs.Put(pb)
		return model.PushResult{}, err
	}
	replies := make(chan reply, len(groups))
	var wg sync.WaitGroup
	for _, g := range groups {
		if !g.target.Healthy {
			d.ingesterPushes.WithLabelValues(g.target.Name, "skipped").Inc()
			replies <- reply{g: g, err: fmt.Errorf("ingester %s is down", g.target.Name)}
			continue
		}
		wg.Add(1)
		d.replicasPending.Inc()
		go func() {
			defer wg.Done()
			defer d.replicasPending.Dec()
			replies <- d.pushTo(ctx, g, req)
		}()
	}
	go func() { wg.Wait(); d.pushBufs.Put(pb) }()
	return d.await(ctx, res, req, groups, owners, replies)
}

// split groups the series of req by ingester. owners[i] is the size of
// series i's replica set.
func (d *Distributor) split(req *ingesterpb.PushRequest) (map[string]*group, []int, error) {
	groups := map[string]*group{}
	owners := make([]int, len(req.Series))
	for i, ts := range req.Series {
		targets, err := d.router.Route(ts.Labels)
		if err != nil {
			return nil, nil, fmt.Errorf("place series: %v: %w", err, model.ErrUnavailable)
		}
		owners[i] = len(targets)
		for _, t := range targets {
			g := groups[t.Name]
			if g == nil {
				g = &group{target: t}
				groups[t.Name] = g
			}
			g.series = append(g.series, i)
		}
	}
	return groups, owners, nil
}

// pushTo sends g's series to its ingester.
func (d *Distributor) pushTo(ctx context.Context, g *group, req *ingesterpb.PushRequest) (r reply) {
	r.g = g
	// The push outlives an early acknowledgment (quorum reached) or a
	// client that went away: a replica left behind costs a repair.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.PushTimeout)
	defer cancel()
	c, err := d.clients.Get(g.target.Addr)
	if err != nil {
		r.err = err
		return r
	}
	sub := &ingesterpb.PushRequest{Series: make([]*ingesterpb.TimeSeries, len(g.series))}
	for j, i := range g.series {
		sub.Series[j] = req.Series[i]
	}
	resp, err := c.Push(pctx, sub)
	if err != nil {
		r.err = fmt.Errorf("push to ingester %s: %w", g.target.Name, ingesterpb.FromStatus(err))
		return r
	}
	r.res = ingesterpb.ToResult(resp)
	return r
}

// await collects replies until every series reached its quorum or one
// cannot any more.
func (d *Distributor) await(ctx context.Context, res model.PushResult, req *ingesterpb.PushRequest, groups map[string]*group, owners []int, replies <-chan reply) (model.PushResult, error) {
	quorum := d.router.Quorum()
	acked := make([]int, len(owners))
	failed := make([]int, len(owners))
	missing := len(owners) // series below quorum
	var replicaRes model.PushResult
	assigned := 0 // series×replica answers merged into replicaRes
	var errs []string
	for range len(groups) {
		var r reply
		select {
		case r = <-replies:
		case <-ctx.Done():
			return model.PushResult{}, fmt.Errorf("waiting for ingesters: %w", ctx.Err())
		}
		if r.err != nil {
			d.ingesterPushes.WithLabelValues(r.g.target.Name, "failed").Inc()
			errs = append(errs, r.err.Error())
			for _, i := range r.g.series {
				failed[i]++
				if owners[i]-failed[i] < min(quorum, owners[i]) {
					d.quorumFailures.Inc()
					return model.PushResult{}, fmt.Errorf("series %s: %d of %d replicas failed, %d must store it (%s): %w",
						seriesString(req.Series[i]), failed[i], owners[i], quorum, strings.Join(errs, "; "), model.ErrUnavailable)
				}
			}
			continue
		}
		d.ingesterPushes.WithLabelValues(r.g.target.Name, "ok").Inc()
		replicaRes.Merge(r.res)
		assigned += len(r.g.series)
		for _, i := range r.g.series {
			acked[i]++
			if acked[i] == min(quorum, owners[i]) {
				missing--
			}
		}
		if missing == 0 {
			break
		}
	}
	if missing > 0 { // unreachable: every reply either acks or fails
		return model.PushResult{}, fmt.Errorf("write quorum not reached: %w", model.ErrUnavailable)
	}
	scaled := scaleResult(replicaRes, len(owners), assigned)
	d.countRejected(scaled)
	res.Merge(scaled)
	return res, nil
}

// scaleResult turns the sum of several replicas' results into one result
// for the batch: every series was answered by assigned/series replicas on
// average, so counts are divided by that. Exact when replicas agree (the
// usual case); rejection examples are deduplicated.
func scaleResult(r model.PushResult, series, assigned int) model.PushResult {
	if assigned <= series {
		return r
	}
	scale := func(n int) int { return (n*series + assigned - 1) / assigned }
	out := model.PushResult{Stored: scale(r.Stored), Duplicates: scale(r.Duplicates)}
	seen := map[model.Rejection]bool{}
	for reason, n := range r.ByReason {
		if out.ByReason == nil {
			out.ByReason = map[model.Reason]int{}
		}
		out.ByReason[reason] = scale(n)
		out.RejectedSamples += out.ByReason[reason]
	}
	for _, rej := range r.Rejections {
		if !seen[rej] {
			seen[rej] = true
			out.Rejections = append(out.Rejections, rej)
		}
	}
	return out
}

func seriesString(ts *ingesterpb.TimeSeries) string {
	var sb labels.ScratchBuilder
	lset, err := model.DecodeLabels(ts.Labels, &sb)
	if err != nil {
		return "(undecodable labels)"
	}
	return lset.String()
}

func (d *Distributor) countRejected(r model.PushResult) {
	for reason, n := range r.ByReason {
		d.rejected.WithLabelValues(string(reason)).Add(float64(n))
	}
}

// Single routes every series to one ingester: the single-node wiring.
type Single struct{ Target Target }

// Route implements Router.
func (s Single) Route([]byte) ([]Target, error) { return []Target{s.Target}, nil }

// Quorum implements Router.
func (Single) Quorum() int { return 1 }

package distributor

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vigil-tsdb/vigil/ingester/ingesterpb"
	"github.com/vigil-tsdb/vigil/model"
)

// Config configures validation and limits.
type Config struct {
	Limits model.Limits `yaml:"limits"`
	// PushTimeout bounds one push to an ingester.
	PushTimeout time.Duration `yaml:"push_timeout"`
}

// DefaultConfig returns working defaults.
func DefaultConfig() Config {
	return Config{Limits: model.DefaultLimits(), PushTimeout: 30 * time.Second}
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
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.PushTimeout <= 0 {
		return fmt.Errorf("distributor: push_timeout must be positive")
	}
	if c.Limits.MaxLabelsPerSeries < 0 || c.Limits.MaxSamplesPerRequest < 0 || c.Limits.MaxLabelNameLength < 0 || c.Limits.MaxLabelValueLength < 0 {
		return fmt.Errorf("distributor: limits must not be negative")
	}
	return nil
}

// Distributor validates batches and forwards them to an ingester.
type Distributor struct {
	cfg    Config
	client ingesterpb.IngesterClient
	logger *slog.Logger
	now    func() time.Time

	pushBufs sync.Pool // *ingesterpb.PushBuffer

	received prometheus.Counter
	rejected *prometheus.CounterVec
	duration prometheus.Histogram
}

// New returns a distributor that writes to client.
func New(cfg Config, client ingesterpb.IngesterClient, logger *slog.Logger, reg prometheus.Registerer) (*Distributor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	return &Distributor{
		cfg: cfg, client: client, logger: logger, now: time.Now,
		pushBufs: sync.Pool{New: func() any { return new(ingesterpb.PushBuffer) }},
		received: f.NewCounter(prometheus.CounterOpts{Name: "vigil_distributor_received_samples_total", Help: "Samples received in write requests."}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{Name: "vigil_distributor_rejected_samples_total", Help: "Samples refused, by reason."}, []string{"reason"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{Name: "vigil_distributor_push_duration_seconds", Help: "Duration of a push, validation to ingester acknowledgment.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}, nil
}

// Push validates batch and stores its valid part. Refused samples are
// reported in the result; an error means nothing of the batch may be
// assumed stored (model error classes: ErrTooLarge, ErrUnavailable, ...).
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
	ctx, cancel := context.WithTimeout(ctx, d.cfg.PushTimeout)
	defer cancel()
	// The request is marshalled by the time Push returns, so its arrays go
	// back to the pool right after.
	pb := d.pushBufs.Get().(*ingesterpb.PushBuffer)
	defer d.pushBufs.Put(pb)
	resp, err := d.client.Push(ctx, pb.Fill(valid))
	if err != nil {
		return model.PushResult{}, fmt.Errorf("push to ingester: %w", ingesterpb.FromStatus(err))
	}
	ir := ingesterpb.ToResult(resp)
	d.countRejected(ir)
	res.Merge(ir)
	return res, nil
}

func (d *Distributor) countRejected(r model.PushResult) {
	for reason, n := range r.ByReason {
		d.rejected.WithLabelValues(string(reason)).Add(float64(n))
	}
}

// Package collector scrapes targets and pushes their samples towards the
// distributors. This part is the target registry: scrape targets and per-job
// defaults stored in etcd (docs/targets.md), read as complete snapshots that
// the scrape scheduler splits over the collector ring.
package collector

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-tsdb/vigil/internal/etcdwatch"
)

var (
	// ErrStaticTarget is returned by Register for a key an operator wrote
	// without a lease: self-registration never takes over such a target.
	ErrStaticTarget = errors.New("target is registered statically")
	// ErrInvalidTarget wraps every validation error of Put and Register.
	ErrInvalidTarget = errors.New("invalid target")
	// ErrLeaseNotFound is returned by KeepAliveLease and RevokeLease for a
	// lease that ended or that holds no target of this registry.
	ErrLeaseNotFound = errors.New("lease not found")
)

// RegistryConfig configures the target registry (flags -targets.*).
type RegistryConfig struct {
	Prefix          string        `yaml:"prefix"`
	RequestTimeout  time.Duration `yaml:"request_timeout"`
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
}

// DefaultRegistryConfig returns a complete, working configuration.
func DefaultRegistryConfig() RegistryConfig {
	return RegistryConfig{
		Prefix:          "/vigil/targets/",
		RequestTimeout:  10 * time.Second,
		RetryBackoff:    500 * time.Millisecond,
		MaxRetryBackoff: 30 * time.Second,
	}
}

// RegisterFlags adds the -targets.* flags, with the current values as defaults.
func (c *RegistryConfig) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Prefix, "targets.prefix", c.Prefix, "etcd key prefix of the target registry (docs/targets.md)")
	f.DurationVar(&c.RequestTimeout, "targets.request-timeout", c.RequestTimeout, "timeout of one etcd request of the target registry")
	f.DurationVar(&c.RetryBackoff, "targets.retry-backoff", c.RetryBackoff, "first wait before re-reading the registry after an etcd error")
	f.DurationVar(&c.MaxRetryBackoff, "targets.max-retry-backoff", c.MaxRetryBackoff, "longest wait between re-reads of the registry while etcd fails")
}

// Validate reports the first invalid field.
func (c RegistryConfig) Validate() error {
	switch {
	case !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("targets.prefix %q: must start and end with /", c.Prefix)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("targets.request-timeout must be positive")
	case c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff:
		return fmt.Errorf("targets.retry-backoff must be positive and at most targets.max-retry-backoff")
	}
	return nil
}

// Registry reads and writes the targets in etcd. Its methods are safe for
// concurrent use; it owns no goroutine except those of Watch and Register,
// which end with their contexts (and Register's unregister).
type Registry struct {
	cfg     RegistryConfig
	client  *clientv3.Client
	logger  *slog.Logger
	metrics *registryMetrics
}

// NewRegistry returns a registry over client; client stays owned by the
// caller and must outlive the registry's watches and registrations.
func NewRegistry(cfg RegistryConfig, client *clientv3.Client, logger *slog.Logger, reg prometheus.Registerer) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, fmt.Errorf("target registry: no etcd client")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newRegistryMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Registry{cfg: cfg, client: client, logger: logger, metrics: m}, nil
}

// Snapshot is the complete registry at one etcd revision. Receivers must
// treat it as read-only (Jobs shares maps with the watcher's cache); the
// registry never modifies a delivered snapshot.
type Snapshot struct {
	Revision int64
	Targets  []Target       // resolved (job defaults applied), sorted by job then id
	Jobs     map[string]Job // job values that decoded
	Invalid  []InvalidEntry // sorted by key
}

// InvalidEntry is a key under the prefix that was skipped, and why.
type InvalidEntry struct {
	Key string
	Err string
}

// TargetKey is the etcd key of a target.
func (r *Registry) TargetKey(job, id string) string {
	return r.cfg.Prefix + "targets/" + url.PathEscape(job) + "/" + id
}

// JobKey is the etcd key of a job's defaults.
func (r *Registry) JobKey(job string) string {
	return r.cfg.Prefix + "jobs/" + url.PathEscape(job)
}

// keyKind is what parseKey found.
type keyKind int

const (
	keyInvalid keyKind = iota
	keyJob
	keyTarget
)

// parseKey splits a key under the prefix into its kind, job and id.
func (r *Registry) parseKey(key string) (kind keyKind, job, id string, err error) {
	rest, ok := strings.CutPrefix(key, r.cfg.Prefix)
	if !ok {
		return keyInvalid, "", "", fmt.Errorf("key outside the prefix %q", r.cfg.Prefix)
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 2 && parts[0] == "jobs":
		kind = keyJob
	case len(parts) == 3 && parts[0] == "targets":
		kind, id = keyTarget, parts[2]
		if err := validateName(id); err != nil {
			return keyInvalid, "", "", fmt.Errorf("target id: %w", err)
		}
	default:
		return keyInvalid, "", "", fmt.Errorf("not a registry key: want %sjobs/<job> or %stargets/<job>/<id>", r.cfg.Prefix, r.cfg.Prefix)
	}
	job, err = url.PathUnescape(parts[1])
	if err == nil && url.PathEscape(job) != parts[1] {
		err = fmt.Errorf("%q is not the canonical escaping of %q", parts[1], job)
	}
	if err == nil {
		err = validateName(job)
	}
	if err != nil {
		return keyInvalid, "", "", fmt.Errorf("job in key: %w", err)
	}
	return kind, job, id, nil
}

// prepare validates t for writing: it fills job and id, normalizes, checks
// the combination with the job's current defaults and returns key and value.
func (r *Registry) prepare(ctx context.Context, t Target) (string, string, error) {
	if err := validateName(t.Job); err != nil {
		return "", "", fmt.Errorf("%w: job: %w", ErrInvalidTarget, err)
	}
	if err := t.normalize(); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidTarget, err)
	}
	if t.ID == "" {
		t.ID = DefaultID(t)
	}
	if err := validateName(t.ID); err != nil || strings.Contains(t.ID, "/") {
		return "", "", fmt.Errorf("%w: id %q: must be 1-%d bytes without /", ErrInvalidTarget, t.ID, maxNameBytes)
	}
	job, err := r.getJob(ctx, t.Job)
	if err != nil {
		return "", "", err
	}
	if _, err := Resolve(t, job); err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidTarget, err)
	}
	v, err := EncodeTarget(t)
	if err != nil {
		return "", "", fmt.Errorf("%w: %w", ErrInvalidTarget, err)
	}
	return r.TargetKey(t.Job, t.ID), string(v), nil
}

func (r *Registry) getJob(ctx context.Context, name string) (*Job, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	resp, err := r.client.Get(ctx, r.JobKey(name))
	if err != nil {
		return nil, fmt.Errorf("read job %q: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	j, err := DecodeJob(resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("%w: job %q has an invalid value, fix it first: %w", ErrInvalidTarget, name, err)
	}
	return &j, nil
}

// Put validates t (with its job's current defaults) and stores it; an
// existing target with the same key is replaced (and becomes static if it
// was leased). It returns the key written.
func (r *Registry) Put(ctx context.Context, t Target) (string, error) {
	key, val, err := r.prepare(ctx, t)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if _, err := r.client.Put(ctx, key, val); err != nil {
		return "", fmt.Errorf("put target %s: %w", key, err)
	}
	return key, nil
}

// Delete removes one target. Deleting a missing target is not an error.
func (r *Registry) Delete(ctx context.Context, job, id string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	key := r.TargetKey(job, id)
	if _, err := r.client.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete target %s: %w", key, err)
	}
	return nil
}

// PutJob validates and stores a job's defaults. Targets that the new
// defaults make invalid are reported by watchers, not refused here.
func (r *Registry) PutJob(ctx context.Context, j Job) error {
	if err := validateName(j.Name); err != nil {
		return fmt.Errorf("%w: job name: %w", ErrInvalidTarget, err)
	}
	v, err := EncodeJob(j)
	if err != nil {
		return fmt.Errorf("%w: job %q: %w", ErrInvalidTarget, j.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if _, err := r.client.Put(ctx, r.JobKey(j.Name), string(v)); err != nil {
		return fmt.Errorf("put job %q: %w", j.Name, err)
	}
	return nil
}

// DeleteJob removes a job's defaults (not its targets).
func (r *Registry) DeleteJob(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	if _, err := r.client.Delete(ctx, r.JobKey(name)); err != nil {
		return fmt.Errorf("delete job %q: %w", name, err)
	}
	return nil
}

// List reads the whole registry at the current revision.
func (r *Registry) List(ctx context.Context) (Snapshot, error) {
	st := etcdwatch.NewEntries(r.decodeEntry)
	rev, err := r.load(ctx, st)
	if err != nil {
		return Snapshot{}, err
	}
	return snapshotOf(st, rev), nil
}

// load replaces st's content with a fresh read of the prefix and returns
// the read's revision. Entries whose key and mod revision did not change
// keep their decoded value (and are not logged again).
func (r *Registry) load(ctx context.Context, st *registryState) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
	defer cancel()
	resp, err := r.client.Get(ctx, r.cfg.Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("read registry %s: %w", r.cfg.Prefix, err)
	}
	st.Reset(resp)
	return resp.Header.Revision, nil
}

// entry is one decoded key.
type entry struct {
	kind   keyKind
	job    string
	target Target // keyTarget
	jobVal Job    // keyJob
	err    error  // set when the key or value is invalid
}

func (r *Registry) decodeEntry(key string, val []byte, _ int64) *entry {
	e := &entry{}
	kind, job, id, err := r.parseKey(key)
	e.kind, e.job = kind, job
	switch {
	case err != nil:
		e.err = err
	case kind == keyJob:
		e.jobVal, e.err = DecodeJob(val)
		e.jobVal.Name = job
	case kind == keyTarget:
		e.target, e.err = DecodeTarget(val)
		if e.err == nil && e.target.Job != "" && e.target.Job != job {
			e.err = fmt.Errorf("job: %q differs from the key's job %q", e.target.Job, job)
		}
		e.target.Job, e.target.ID = job, id
	}
	return e
}

// registryState is the decoded content of the prefix, owned by one reader.
type registryState = etcdwatch.Entries[*entry]

// snapshotOf resolves every target of st against its job and returns a
// new, independent snapshot.
func snapshotOf(st *registryState, rev int64) Snapshot {
	s := Snapshot{Revision: rev, Jobs: map[string]Job{}}
	badJobs := map[string]string{}
	for k, e := range st.All() {
		if e.kind != keyJob {
			continue
		}
		if e.err != nil {
			badJobs[e.job] = k
			continue
		}
		s.Jobs[e.job] = e.jobVal
	}
	for k, e := range st.All() {
		switch {
		case e.err != nil:
			s.Invalid = append(s.Invalid, InvalidEntry{Key: k, Err: e.err.Error()})
		case e.kind != keyTarget:
		case badJobs[e.job] != "":
			s.Invalid = append(s.Invalid, InvalidEntry{Key: k, Err: fmt.Sprintf("job %q has an invalid value at %s", e.job, badJobs[e.job])})
		default:
			var job *Job
			if j, ok := s.Jobs[e.job]; ok {
				job = &j
			}
			t, err := Resolve(e.target, job)
			if err != nil {
				s.Invalid = append(s.Invalid, InvalidEntry{Key: k, Err: err.Error()})
				continue
			}
			s.Targets = append(s.Targets, t)
		}
	}
	slices.SortFunc(s.Targets, func(a, b Target) int {
		return cmp.Or(strings.Compare(a.Job, b.Job), strings.Compare(a.ID, b.ID))
	})
	slices.SortFunc(s.Invalid, func(a, b InvalidEntry) int { return strings.Compare(a.Key, b.Key) })
	return s
}

package rules

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/rulefmt"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-tsdb/vigil/internal/etcdwatch"
)

const (
	// maxTxnOps is etcd's default --max-txn-ops: a namespace replacement
	// (its puts and deletes) is one transaction.
	maxTxnOps = 128
	// maxTxnBytes keeps a replacement under etcd's default request limit
	// (--max-request-bytes, 1.5 MiB) with room for the keys and framing.
	maxTxnBytes = 1<<20 + 384<<10
	// replaceAttempts bounds the retries of a replacement that raced with
	// another writer of the same namespace.
	replaceAttempts = 5
)

// Config configures the rule store (flags -rules.*).
type Config struct {
	Prefix          string        `yaml:"prefix"`
	RequestTimeout  time.Duration `yaml:"request_timeout"`
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
}

// DefaultConfig returns a complete, working configuration.
func DefaultConfig() Config {
	return Config{
		Prefix:          "/vigil/rules/",
		RequestTimeout:  10 * time.Second,
		RetryBackoff:    500 * time.Millisecond,
		MaxRetryBackoff: 30 * time.Second,
	}
}

// RegisterFlags adds the -rules.* flags, with the current values as defaults.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.StringVar(&c.Prefix, "rules.prefix", c.Prefix, "etcd key prefix of the rule store (docs/alerting.md)")
	f.DurationVar(&c.RequestTimeout, "rules.request-timeout", c.RequestTimeout, "timeout of one etcd request of the rule store")
	f.DurationVar(&c.RetryBackoff, "rules.retry-backoff", c.RetryBackoff, "first wait before re-reading the rule store after an etcd error")
	f.DurationVar(&c.MaxRetryBackoff, "rules.max-retry-backoff", c.MaxRetryBackoff, "longest wait between re-reads of the rule store while etcd fails")
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case !strings.HasPrefix(c.Prefix, "/") || !strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("rules.prefix %q: must start and end with /", c.Prefix)
	case c.RequestTimeout <= 0:
		return errors.New("rules.request-timeout must be positive")
	case c.RetryBackoff <= 0 || c.MaxRetryBackoff < c.RetryBackoff:
		return errors.New("rules.retry-backoff must be positive and at most rules.max-retry-backoff")
	}
	return nil
}

// Store reads and writes rule groups in etcd, one key per group:
// <prefix><namespace>/<group>, names path-escaped, the value a rule file
// holding that group (EncodeGroupValue). Its methods are safe for
// concurrent use; it owns no goroutine except those of Watch, which end
// with their contexts.
type Store struct {
	cfg     Config
	client  *clientv3.Client
	logger  *slog.Logger
	metrics *storeMetrics
}

// New returns a store over client; client stays owned by the caller and
// must outlive the store's watches.
func New(cfg Config, client *clientv3.Client, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil {
		return nil, errors.New("rule store: no etcd client")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newStoreMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, client: client, logger: logger, metrics: m}, nil
}

// Group is one stored, valid rule group.
type Group struct {
	Namespace   string
	RuleGroup   rulefmt.RuleGroup
	Value       []byte // the stored YAML (a rule file with this one group)
	ModRevision int64
}

// InvalidEntry is a key under the prefix that was skipped, and why.
type InvalidEntry struct {
	Key       string `json:"key"`
	Namespace string `json:"namespace,omitempty"` // "" when the key itself is invalid
	Group     string `json:"group,omitempty"`
	Err       string `json:"error"`
}

// Snapshot is the stored groups at one etcd revision. Receivers must treat
// it as read-only: Watch shares Groups' values between snapshots.
type Snapshot struct {
	Revision int64
	Groups   []Group        // sorted by namespace, then group name
	Invalid  []InvalidEntry // sorted by key
}

// Namespaces returns the groups by namespace, each list in Groups' order.
func (s Snapshot) Namespaces() map[string][]Group {
	out := map[string][]Group{}
	for _, g := range s.Groups {
		out[g.Namespace] = append(out[g.Namespace], g)
	}
	return out
}

// Key is the etcd key of a group.
func (s *Store) Key(ns, group string) string {
	return s.namespacePrefix(ns) + escapeName(group)
}

func (s *Store) namespacePrefix(ns string) string {
	return s.cfg.Prefix + escapeName(ns) + "/"
}

// parseKey splits a key under the prefix into namespace and group.
func (s *Store) parseKey(key string) (ns, group string, err error) {
	rest, ok := strings.CutPrefix(key, s.cfg.Prefix)
	if !ok {
		return "", "", fmt.Errorf("key outside the prefix %q", s.cfg.Prefix)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 2 {
		return "", "", fmt.Errorf("not a rule group key: want %s<namespace>/<group>", s.cfg.Prefix)
	}
	if ns, err = unescapeName(parts[0]); err != nil {
		return "", "", fmt.Errorf("namespace in key: %w", err)
	}
	if group, err = unescapeName(parts[1]); err != nil {
		return "", "", fmt.Errorf("group in key: %w", err)
	}
	return ns, group, nil
}

// PutResult says what a write changed.
type PutResult struct {
	Revision  int64    `json:"revision"`  // of the write (0 when nothing changed)
	Written   []string `json:"written"`   // groups put (new or changed)
	Unchanged []string `json:"unchanged"` // groups whose stored value was already this one
	Deleted   []string `json:"deleted"`   // groups of the namespace the file no longer has
}

// PutNamespace checks file (a Prometheus rule file, ParseFile) and makes
// its groups the namespace's groups in one transaction: changed and new
// groups are put, groups the file no longer has are deleted. A file that
// fails the checks changes nothing; its error is a *FileError (ErrInvalid)
// with rulefmt's line and column.
func (s *Store) PutNamespace(ctx context.Context, ns string, file []byte) (PutResult, error) {
	rgs, err := ParseFile("", file)
	if err != nil {
		s.metrics.op("put_namespace", err)
		return PutResult{}, err
	}
	return s.ReplaceNamespace(ctx, ns, rgs.Groups)
}

// ReplaceNamespace is PutNamespace for parsed groups (of one or several
// files). Each group is encoded and checked again as a stored value.
func (s *Store) ReplaceNamespace(ctx context.Context, ns string, groups []rulefmt.RuleGroup) (PutResult, error) {
	res, err := s.replaceNamespace(ctx, ns, groups)
	s.metrics.op("put_namespace", err)
	return res, err
}

func (s *Store) replaceNamespace(ctx context.Context, ns string, groups []rulefmt.RuleGroup) (PutResult, error) {
	if err := ValidateName(ns); err != nil {
		return PutResult{}, fmt.Errorf("%w: namespace %q: %w", ErrInvalid, ns, err)
	}
	if len(groups) == 0 {
		return PutResult{}, fmt.Errorf("%w: namespace %q: the file has no rule groups (delete the namespace to remove it)", ErrInvalid, ns)
	}
	values, err := encodeGroups(groups)
	if err != nil {
		return PutResult{}, err
	}
	total := 0
	for _, v := range values {
		total += len(v)
	}
	if total > maxTxnBytes {
		return PutResult{}, fmt.Errorf("%w: namespace %q: %d bytes of groups, over the %d one etcd transaction may carry; split it into several namespaces", ErrInvalid, ns, total, maxTxnBytes)
	}
	prefix := s.namespacePrefix(ns)
	for range replaceAttempts {
		cur, rev, err := s.readRange(ctx, prefix)
		if err != nil {
			return PutResult{}, err
		}
		var res PutResult
		var ops []clientv3.Op
		for _, g := range groups {
			key := s.Key(ns, g.Name)
			if old, ok := cur[key]; ok && string(old) == string(values[g.Name]) {
				res.Unchanged = append(res.Unchanged, g.Name)
				continue
			}
			ops = append(ops, clientv3.OpPut(key, string(values[g.Name])))
			res.Written = append(res.Written, g.Name)
		}
		for _, key := range slices.Sorted(maps.Keys(cur)) {
			_, group, err := s.parseKey(key)
			if err == nil {
				if _, keep := values[group]; keep {
					continue
				}
			} else {
				group = strings.TrimPrefix(key, prefix) // an invalid key: the replacement removes it too
			}
			ops = append(ops, clientv3.OpDelete(key))
			res.Deleted = append(res.Deleted, group)
		}
		if len(ops) == 0 {
			return res, nil
		}
		if len(ops) > maxTxnOps {
			return PutResult{}, fmt.Errorf("%w: namespace %q: %d group puts and deletes, over the %d operations of one etcd transaction; split it into several namespaces", ErrInvalid, ns, len(ops), maxTxnOps)
		}
		tctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		// Nothing in the namespace changed since the read (a key created
		// since then has a newer mod revision), else read and try again.
		resp, err := s.client.Txn(tctx).
			If(clientv3.Compare(clientv3.ModRevision(prefix), "<", rev+1).WithPrefix()).
			Then(ops...).Commit()
		cancel()
		if err != nil {
			return PutResult{}, fmt.Errorf("replace namespace %q: %w", ns, err)
		}
		if resp.Succeeded {
			res.Revision = resp.Header.Revision
			return res, nil
		}
	}
	return PutResult{}, fmt.Errorf("%w: namespace %q: %d attempts", ErrConflict, ns, replaceAttempts)
}

// encodeGroups encodes each group and decodes it again, so that every
// value written is one DecodeGroupValue accepts.
func encodeGroups(groups []rulefmt.RuleGroup) (map[string][]byte, error) {
	values := make(map[string][]byte, len(groups))
	for _, g := range groups {
		if err := ValidateName(g.Name); err != nil {
			return nil, fmt.Errorf("%w: group name %q: %w", ErrInvalid, g.Name, err)
		}
		if _, dup := values[g.Name]; dup {
			return nil, fmt.Errorf("%w: group %q: more than one group of that name", ErrInvalid, g.Name)
		}
		v, err := EncodeGroupValue(g)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if len(v) > MaxGroupBytes {
			return nil, fmt.Errorf("%w: group %q: %d bytes encoded, over the limit of %d", ErrInvalid, g.Name, len(v), MaxGroupBytes)
		}
		if _, err := DecodeGroupValue(v); err != nil {
			return nil, fmt.Errorf("%w: group %q: %w", ErrInvalid, g.Name, err)
		}
		values[g.Name] = v
	}
	return values, nil
}

// PutGroup checks file, a rule file with exactly one group, and stores that
// group in the namespace, leaving its other groups alone.
func (s *Store) PutGroup(ctx context.Context, ns string, file []byte) (PutResult, error) {
	res, err := s.putGroup(ctx, ns, file)
	s.metrics.op("put_group", err)
	return res, err
}

func (s *Store) putGroup(ctx context.Context, ns string, file []byte) (PutResult, error) {
	if err := ValidateName(ns); err != nil {
		return PutResult{}, fmt.Errorf("%w: namespace %q: %w", ErrInvalid, ns, err)
	}
	rgs, err := ParseFile("", file)
	if err != nil {
		return PutResult{}, err
	}
	if len(rgs.Groups) != 1 {
		return PutResult{}, fmt.Errorf("%w: the file has %d groups, want exactly one", ErrInvalid, len(rgs.Groups))
	}
	g := rgs.Groups[0]
	values, err := encodeGroups(rgs.Groups)
	if err != nil {
		return PutResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.client.Put(ctx, s.Key(ns, g.Name), string(values[g.Name]))
	if err != nil {
		return PutResult{}, fmt.Errorf("put group %q of namespace %q: %w", g.Name, ns, err)
	}
	return PutResult{Revision: resp.Header.Revision, Written: []string{g.Name}}, nil
}

// Get reads one namespace (group "") or one group. It returns ErrNotFound
// when there is no key; stored values that do not decode are in Invalid.
func (s *Store) Get(ctx context.Context, ns, group string) (Snapshot, error) {
	snap, err := s.get(ctx, ns, group)
	s.metrics.op("get", err)
	return snap, err
}

func (s *Store) get(ctx context.Context, ns, group string) (Snapshot, error) {
	if err := ValidateName(ns); err != nil {
		return Snapshot{}, fmt.Errorf("%w: namespace %q: %w", ErrInvalid, ns, err)
	}
	key, opts, what := s.namespacePrefix(ns), []clientv3.OpOption{clientv3.WithPrefix()}, fmt.Sprintf("namespace %q", ns)
	if group != "" {
		if err := ValidateName(group); err != nil {
			return Snapshot{}, fmt.Errorf("%w: group %q: %w", ErrInvalid, group, err)
		}
		key, opts, what = s.Key(ns, group), nil, fmt.Sprintf("group %q of namespace %q", group, ns)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, key, opts...)
	if err != nil {
		return Snapshot{}, fmt.Errorf("read %s: %w", what, err)
	}
	if len(resp.Kvs) == 0 {
		return Snapshot{}, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	st := s.newState()
	st.Reset(resp)
	return snapshotOf(st, resp.Header.Revision), nil
}

// List reads every namespace at the current revision.
func (s *Store) List(ctx context.Context) (Snapshot, error) {
	st := s.newState()
	rev, err := s.load(ctx, st)
	s.metrics.op("list", err)
	if err != nil {
		return Snapshot{}, err
	}
	snap := snapshotOf(st, rev)
	s.metrics.observe(snap)
	return snap, nil
}

// Delete removes a namespace (group "") or one group. It returns the number
// of keys deleted, and ErrNotFound when there was none.
func (s *Store) Delete(ctx context.Context, ns, group string) (int64, error) {
	n, err := s.delete(ctx, ns, group)
	s.metrics.op("delete", err)
	return n, err
}

func (s *Store) delete(ctx context.Context, ns, group string) (int64, error) {
	if err := ValidateName(ns); err != nil {
		return 0, fmt.Errorf("%w: namespace %q: %w", ErrInvalid, ns, err)
	}
	key, opts, what := s.namespacePrefix(ns), []clientv3.OpOption{clientv3.WithPrefix()}, fmt.Sprintf("namespace %q", ns)
	if group != "" {
		if err := ValidateName(group); err != nil {
			return 0, fmt.Errorf("%w: group %q: %w", ErrInvalid, group, err)
		}
		key, opts, what = s.Key(ns, group), nil, fmt.Sprintf("group %q of namespace %q", group, ns)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.client.Delete(ctx, key, opts...)
	if err != nil {
		return 0, fmt.Errorf("delete %s: %w", what, err)
	}
	if resp.Deleted == 0 {
		return 0, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return resp.Deleted, nil
}

// readRange returns the values under prefix and the read's revision.
func (s *Store) readRange(ctx context.Context, prefix string) (map[string][]byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", prefix, err)
	}
	out := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out, resp.Header.Revision, nil
}

// load replaces st's content with a fresh read of the prefix and returns
// the read's revision. Keys whose mod revision did not change keep their
// decoded value.
func (s *Store) load(ctx context.Context, st *storeState) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, s.cfg.Prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("read rule store %s: %w", s.cfg.Prefix, err)
	}
	st.Reset(resp)
	return resp.Header.Revision, nil
}

// entry is one decoded key: a group, or why it is invalid.
type entry struct {
	group Group
	err   error
}

func (s *Store) decodeEntry(key string, val []byte, modRev int64) *entry {
	e := &entry{group: Group{Value: val, ModRevision: modRev}}
	ns, name, err := s.parseKey(key)
	e.group.Namespace, e.group.RuleGroup.Name = ns, name
	if err != nil {
		e.err = err
		return e
	}
	g, err := DecodeGroupValue(val)
	switch {
	case err != nil:
		e.err = err
	case g.Name != name:
		e.err = fmt.Errorf("the value's group is %q, the key's %q", g.Name, name)
	default:
		e.group.RuleGroup = g
	}
	return e
}

// storeState is the decoded content of the prefix, owned by one reader.
type storeState = etcdwatch.Entries[*entry]

func (s *Store) newState() *storeState { return etcdwatch.NewEntries(s.decodeEntry) }

// snapshotOf returns a new snapshot of st; the Group values are shared.
func snapshotOf(st *storeState, rev int64) Snapshot {
	s := Snapshot{Revision: rev}
	for k, e := range st.All() {
		if e.err != nil {
			s.Invalid = append(s.Invalid, InvalidEntry{Key: k, Namespace: e.group.Namespace, Group: e.group.RuleGroup.Name, Err: e.err.Error()})
			continue
		}
		s.Groups = append(s.Groups, e.group)
	}
	slices.SortFunc(s.Groups, func(a, b Group) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.RuleGroup.Name, b.RuleGroup.Name))
	})
	slices.SortFunc(s.Invalid, func(a, b InvalidEntry) int { return strings.Compare(a.Key, b.Key) })
	return s
}

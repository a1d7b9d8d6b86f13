package alerting

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Silence mutes the alerts matching all its matchers between StartsAt and
// EndsAt. Stored in etcd under <prefix>silences/<id>, as JSON.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  Matchers  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`

	parsed []*labels.Matcher
}

// State is "pending", "active" or "expired" at now.
func (s *Silence) State(now time.Time) string {
	switch {
	case now.Before(s.StartsAt):
		return "pending"
	case now.Before(s.EndsAt):
		return "active"
	}
	return "expired"
}

func (s *Silence) active(now time.Time) bool { return s.State(now) == "active" }

func (n *Notifier) silenceKey(id string) string { return n.cfg.Prefix + "silences/" + id }

// CreateSilence validates and stores a new silence and returns its id. A
// zero StartsAt means now.
func (n *Notifier) CreateSilence(ctx context.Context, s Silence) (string, error) {
	now := n.clock.Now()
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	parsed, err := parseMatchers(s.Matchers)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: %w", ErrInvalidSilence, err)
	case len(parsed) == 0:
		return "", fmt.Errorf("%w: no matchers (a silence of everything is refused)", ErrInvalidSilence)
	case slices.ContainsFunc(parsed, func(m *labels.Matcher) bool { return m.Matches("") }) && !slices.ContainsFunc(parsed, func(m *labels.Matcher) bool { return !m.Matches("") }):
		return "", fmt.Errorf("%w: every matcher matches the empty value, so the silence would mute every alert", ErrInvalidSilence)
	case s.EndsAt.IsZero():
		return "", fmt.Errorf("%w: missing endsAt", ErrInvalidSilence)
	case !s.EndsAt.After(s.StartsAt):
		return "", fmt.Errorf("%w: endsAt %s is not after startsAt %s", ErrInvalidSilence, s.EndsAt.Format(time.RFC3339), s.StartsAt.Format(time.RFC3339))
	case !s.EndsAt.After(now):
		return "", fmt.Errorf("%w: endsAt %s is in the past", ErrInvalidSilence, s.EndsAt.Format(time.RFC3339))
	case strings.TrimSpace(s.CreatedBy) == "":
		return "", fmt.Errorf("%w: missing createdBy", ErrInvalidSilence)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s.ID = hex.EncodeToString(b[:])
	s.parsed = parsed
	if err := n.putSilence(ctx, &s, 0); err != nil {
		return "", err
	}
	return s.ID, nil
}

// putSilence writes s if its key's mod revision is rev (0: new).
func (n *Notifier) putSilence(ctx context.Context, s *Silence, rev int64) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode silence: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	key := n.silenceKey(s.ID)
	resp, err := n.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("write silence %s: %w", s.ID, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("write silence %s: changed meanwhile, try again", s.ID)
	}
	n.mu.Lock()
	n.silences[s.ID] = s
	n.mu.Unlock()
	return nil
}

// ListSilences returns the stored silences, newest end first.
func (n *Notifier) ListSilences(ctx context.Context) ([]*Silence, error) {
	list, _, err := n.readSilences(ctx)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(a, b *Silence) int { return b.EndsAt.Compare(a.EndsAt) })
	return list, nil
}

// ExpireSilence ends a silence now. Expiring an expired silence is not an
// error.
func (n *Notifier) ExpireSilence(ctx context.Context, id string) error {
	if id == "" || strings.Contains(id, "/") {
		return fmt.Errorf("silence %q: %w", id, ErrNotFound)
	}
	tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	resp, err := n.client.Get(tctx, n.silenceKey(id))
	cancel()
	if err != nil {
		return fmt.Errorf("read silence %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return fmt.Errorf("silence %q: %w", id, ErrNotFound)
	}
	s := &Silence{}
	if err := json.Unmarshal(resp.Kvs[0].Value, s); err != nil {
		return fmt.Errorf("silence %s has an invalid value: %w", id, err)
	}
	now := n.clock.Now()
	if !s.EndsAt.After(now) {
		return nil
	}
	if s.StartsAt.After(now) {
		s.StartsAt = now
	}
	s.EndsAt = now
	s.parsed, _ = parseMatchers(s.Matchers)
	return n.putSilence(ctx, s, resp.Kvs[0].ModRevision)
}

// readSilences decodes every stored silence and returns those past their
// retention separately (with their mod revisions).
func (n *Notifier) readSilences(ctx context.Context) (list []*Silence, stale map[string]int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := n.client.Get(ctx, n.cfg.Prefix+"silences/", clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("read silences: %w", err)
	}
	now := n.clock.Now()
	stale = map[string]int64{}
	for _, kv := range resp.Kvs {
		s := &Silence{}
		if err := json.Unmarshal(kv.Value, s); err != nil {
			n.logger.Warn("skipping invalid silence", "key", string(kv.Key), "err", err)
			continue
		}
		if s.parsed, err = parseMatchers(s.Matchers); err != nil || len(s.parsed) == 0 {
			n.logger.Warn("skipping silence with invalid matchers", "key", string(kv.Key), "err", err)
			continue
		}
		if now.Sub(s.EndsAt) > n.cfg.SilenceRetention {
			stale[string(kv.Key)] = kv.ModRevision
			continue
		}
		list = append(list, s)
	}
	return list, stale, nil
}

// refreshSilences replaces the cached silences with etcd's and deletes
// those expired for longer than the retention.
func (n *Notifier) refreshSilences(ctx context.Context) error {
	list, stale, err := n.readSilences(ctx)
	if err != nil {
		return err
	}
	m := make(map[string]*Silence, len(list))
	for _, s := range list {
		m[s.ID] = s
	}
	n.mu.Lock()
	n.silences = m
	n.mu.Unlock()
	for key, rev := range stale {
		tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
		_, err := n.client.Txn(tctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpDelete(key)).Commit()
		cancel()
		if err != nil {
			return fmt.Errorf("prune silence %s: %w", key, err)
		}
	}
	return nil
}

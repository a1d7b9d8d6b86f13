package alerting

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.yaml.in/yaml/v3"
)

// ErrInvalidConfig wraps every refusal of a notifier configuration by
// PutConfig.
var ErrInvalidConfig = errors.New("invalid notifier configuration")

// MaxConfigBytes bounds a stored notifier configuration (one etcd value,
// under etcd's default request limit of 1.5 MiB).
const MaxConfigBytes = 1 << 20

// ConfigKey is the etcd key of the notifier configuration under prefix.
func ConfigKey(prefix string) string { return prefix + "config" }

// PutConfig validates a notifier configuration (ParseRoutingConfig: the
// errors carry line and path) and stores it, as given, under
// ConfigKey(prefix), unless the same bytes are stored already. It returns
// the key's mod revision and whether it wrote. The leading notifier
// applies it at its next pass.
func PutConfig(ctx context.Context, client *clientv3.Client, prefix string, data []byte) (rev int64, changed bool, err error) {
	if len(data) > MaxConfigBytes {
		return 0, false, fmt.Errorf("%w: %w: %d bytes, at most %d", ErrInvalidConfig, errTooLarge, len(data), MaxConfigBytes)
	}
	if _, err := ParseRoutingConfig(data); err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	key := ConfigKey(prefix)
	// Nodes started together with the same -alerting.config-file race
	// here: the losers read again and find their bytes stored.
	for range 3 {
		resp, err := client.Get(ctx, key)
		if err != nil {
			return 0, false, fmt.Errorf("read notifier configuration: %w", err)
		}
		var cmp clientv3.Cmp
		if len(resp.Kvs) > 0 {
			if bytes.Equal(resp.Kvs[0].Value, data) {
				return resp.Kvs[0].ModRevision, false, nil
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		} else {
			cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		}
		tr, err := client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(data))).Commit()
		if err != nil {
			return 0, false, fmt.Errorf("store notifier configuration: %w", err)
		}
		if tr.Succeeded {
			return tr.Header.Revision, true, nil
		}
	}
	return 0, false, fmt.Errorf("store notifier configuration: %w: it changed meanwhile, 3 times; try again", errConflict)
}

// StoredConfig is the notifier configuration in etcd, as
// GET /api/v1/alerting/config shows it.
type StoredConfig struct {
	Revision int64 `json:"revision"` // 0: none stored
	// YAML is the configuration with defaults filled in and every secret
	// shown as <secret>: for reading, not for uploading again.
	YAML string `json:"yaml"`
	// Error is set when the stored value is not valid (written around
	// PutConfig); the notifier then keeps the configuration it had.
	Error string `json:"error,omitempty"`
}

// GetConfig reads the stored configuration, redacted.
func GetConfig(ctx context.Context, client *clientv3.Client, prefix string) (StoredConfig, error) {
	resp, err := client.Get(ctx, ConfigKey(prefix))
	if err != nil {
		return StoredConfig{}, fmt.Errorf("read notifier configuration: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return StoredConfig{}, nil
	}
	sc := StoredConfig{Revision: resp.Kvs[0].ModRevision}
	cfg, err := ParseRoutingConfig(resp.Kvs[0].Value)
	if err != nil {
		sc.Error = err.Error()
		return sc, nil
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return StoredConfig{}, fmt.Errorf("render notifier configuration: %w", err)
	}
	sc.YAML = string(b)
	return sc, nil
}

// refreshConfig reads the configuration key and applies a new valid
// value. An invalid one is logged once and counted; the configuration in
// force stays. A deleted key leaves the notifier without configuration,
// as after a start without one. Called with flushMu held.
func (n *Notifier) refreshConfig(ctx context.Context) error {
	tctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	resp, err := n.client.Get(tctx, ConfigKey(n.cfg.Prefix))
	if err != nil {
		return err
	}
	cur := n.routing()
	if len(resp.Kvs) == 0 {
		if cur != nil {
			n.logger.Warn("notifier configuration deleted from etcd; alerts are dropped until one is stored", "key", ConfigKey(n.cfg.Prefix))
			n.setRouting(nil)
		}
		n.dropUnrouted()
		return nil
	}
	kv := resp.Kvs[0]
	if (cur != nil && cur.rev == kv.ModRevision) || n.badConfigRev == kv.ModRevision {
		return nil
	}
	routing, err := ParseRoutingConfig(kv.Value)
	var rs *routingState
	if err == nil {
		rs, err = newRoutingState(routing, n.logger)
	}
	if err != nil {
		n.badConfigRev = kv.ModRevision
		n.metrics.configOK.Set(0)
		n.logger.Error("stored notifier configuration is invalid; the previous one stays in force",
			"key", ConfigKey(n.cfg.Prefix), "revision", kv.ModRevision, "err", err)
		return nil
	}
	rs.rev = kv.ModRevision
	n.setRouting(rs)
	n.mu.Lock()
	n.warnedNoConfig = false
	n.mu.Unlock()
	n.metrics.configOK.Set(1)
	n.metrics.configTime.SetToCurrentTime()
	n.logger.Info("notifier configuration applied", "revision", kv.ModRevision, "receivers", len(routing.Receivers))
	return nil
}

// setRouting puts a configuration in force (nil: none). The groups start
// over (regroup), so an unchanged route notifies nothing twice and a
// changed one notifies its alerts in their new groups. Called with flushMu
// held.
func (n *Notifier) setRouting(rs *routingState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.regroup()
	if rs == nil {
		n.carry, n.late = nil, nil
	}
	n.rs = rs
}

// regroup drops the groups: their states are read again at the next
// flush (a state whose route changed is dropped, as at start), and the
// alerts they held are placed again after that, under the routes then in
// force, before the alerts that arrive meanwhile; resolved ones after the
// states, which would otherwise hold them firing. Called with n.mu held.
func (n *Notifier) regroup() {
	now := n.clock.Now()
	for _, g := range n.groups {
		for _, e := range g.alerts {
			if e.Expires.After(now) {
				n.carry = append(n.carry, e)
			} else {
				n.noteLate(e, now)
			}
		}
	}
	n.groups, n.loaded = map[string]*aggrGroup{}, false
	n.metrics.groups.Set(0)
}

// dropUnrouted drops the alerts that wait when there is no configuration
// to route them with.
func (n *Notifier) dropUnrouted() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.carry) == 0 {
		return
	}
	if !n.warnedNoConfig {
		n.warnedNoConfig = true
		n.logger.Warn("alerts dropped: no notifier configuration is stored (vigil alerting config upload FILE)",
			"key", ConfigKey(n.cfg.Prefix), "alerts", len(n.carry))
	}
	n.metrics.dropped.WithLabelValues("no_config").Add(float64(len(n.carry)))
	n.carry = nil
}

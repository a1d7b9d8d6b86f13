package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/vigil-tsdb/vigil/alerting"
)

// startNotifier builds the notifier of a node that runs a ruler (the
// single node, or -target's ruler role): every such node takes part in
// the election of the one that flushes and delivers, and its ruler's
// alerts reach that leader (docs/alerting.md, "Notifier"). The
// configuration is the etcd key <prefix>config; -alerting.config-file, on
// any node that knows an etcd, is validated and stored there at start.
func (n *node) startNotifier(ctx context.Context, mux *http.ServeMux) error {
	cfg := n.cfg
	if cfg.AlertingConfigFile != "" {
		if n.etcdClient == nil {
			return errors.New("alerting.config-file: the notifier keeps its configuration in etcd, and this node knows none (-etcd.endpoints)")
		}
		data, err := os.ReadFile(cfg.AlertingConfigFile)
		if err != nil {
			return fmt.Errorf("alerting.config-file: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, cfg.Alerting.RequestTimeout)
		defer cancel()
		before, err := n.etcdClient.Get(pctx, alerting.ConfigKey(cfg.Alerting.Prefix))
		if err != nil {
			return fmt.Errorf("alerting.config-file %s: read the stored configuration: %w", cfg.AlertingConfigFile, err)
		}
		rev, changed, err := alerting.PutConfig(pctx, n.etcdClient, cfg.Alerting.Prefix, data)
		if err != nil {
			return fmt.Errorf("alerting.config-file %s: %w", cfg.AlertingConfigFile, err)
		}
		switch {
		case changed && len(before.Kvs) > 0:
			n.logger.Warn("alerting.config-file replaced the stored notifier configuration (an upload since is undone; drop the flag to keep uploads)",
				"file", cfg.AlertingConfigFile, "replaced_revision", before.Kvs[0].ModRevision, "revision", rev)
		case changed:
			n.logger.Info("stored the notifier configuration from alerting.config-file", "file", cfg.AlertingConfigFile, "revision", rev)
		}
	}
	if n.etcdClient == nil || !n.roles["ruler"] {
		return nil
	}
	acfg := cfg.Alerting
	if acfg.ExternalURL == "" {
		acfg.ExternalURL = n.httpURL
	}
	acfg.AdvertiseURL = n.httpURL
	if n.cluster {
		acfg.AdvertiseURL = "http://" + n.announcedHTTP
	}
	var err error
	if n.notifier, err = alerting.New(acfg, nil, n.etcdClient, nil, n.logger.With("component", "notifier"), n.reg); err != nil {
		return err
	}
	mux.Handle("/api/v1/alerting/", n.notifier.Handler())
	return nil
}

// notifyFunc hands the ruler's alerts to the notifier as Prometheus hands
// them to Alertmanager (rules.SendAlerts): StartsAt is when the alert
// fired, EndsAt when it resolved or, while firing, until when the ruler
// vouches for it (ValidUntil: a few resend intervals), so that an alert
// the ruler stops sending resolves on its own.
func notifyFunc(n *alerting.Notifier, externalURL string) promrules.NotifyFunc {
	return func(_ context.Context, expr string, alerts ...*promrules.Alert) {
		out := make([]alerting.Alert, 0, len(alerts))
		for _, a := range alerts {
			al := alerting.Alert{
				Status:       alerting.StatusFiring,
				Labels:       labelsKV(a.Labels),
				Annotations:  labelsKV(a.Annotations),
				StartsAt:     a.FiredAt,
				EndsAt:       a.ValidUntil,
				GeneratorURL: externalURL + strutil.TableLinkForExpression(expr),
			}
			if !a.ResolvedAt.IsZero() {
				al.Status, al.EndsAt = alerting.StatusResolved, a.ResolvedAt
			}
			out = append(out, al)
		}
		n.Notify(out)
	}
}

func labelsKV(ls labels.Labels) alerting.KV {
	kv := make(alerting.KV, ls.Len())
	ls.Range(func(l labels.Label) { kv[l.Name] = l.Value })
	return kv
}

package main

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/vigil-tsdb/vigil/alerting"
)

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
		n.Ingest(out)
	}
}

func labelsKV(ls labels.Labels) alerting.KV {
	kv := make(alerting.KV, ls.Len())
	ls.Range(func(l labels.Label) { kv[l.Name] = l.Value })
	return kv
}

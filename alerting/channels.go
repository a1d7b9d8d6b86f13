package alerting

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
)

const userAgent = "Vigil-Alerting/1"

// NewChannels builds the channels of one receiver, in the order of its
// configuration: email, DingTalk, WeCom robot, WeCom application, webhook,
// Alertmanager. The config must have its defaults set (ParseConfig does).
func NewChannels(r *Receiver, logger *slog.Logger) ([]Channel, error) {
	var out []Channel
	var errs []error
	add := func(kind string, i int, ch Channel, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("receiver %q %s_configs[%d]: %w", r.Name, kind, i, err))
			return
		}
		out = append(out, ch)
	}
	for i, c := range r.EmailConfigs {
		ch, err := NewEmail(c, logger)
		add("email", i, ch, err)
	}
	for i, c := range r.DingTalkConfigs {
		ch, err := NewDingTalk(c, logger)
		add("dingtalk", i, ch, err)
	}
	for i, c := range r.WeComConfigs {
		ch, err := NewWeCom(c, logger)
		add("wecom", i, ch, err)
	}
	for i, c := range r.WeComAppConfigs {
		ch, err := NewWeComApp(c, logger)
		add("wecom_app", i, ch, err)
	}
	for i, c := range r.WebhookConfigs {
		ch, err := NewWebhook(c, logger)
		add("webhook", i, ch, err)
	}
	for i, c := range r.AlertmanagerConfigs {
		ch, err := NewAlertmanager(c, logger)
		add("alertmanager", i, ch, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// validateOne runs a config's checks outside a Config (a constructor called
// directly).
func validateOne[T any](cfg *T, check func(*T, checker)) error {
	var list []problem
	check(cfg, checker{list: &list})
	errs := make([]error, len(list))
	for i, p := range list {
		errs[i] = &ConfigError{Path: formatPath(p.path), Msg: p.msg}
	}
	return errors.Join(errs...)
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func jsonBody(v any) ([]byte, error) { return json.Marshal(v) }

// Package alerting delivers alert notifications: the notifier (routing,
// grouping, silences, inhibition, notification state and a durable queue
// in etcd), the channels (email, DingTalk, WeCom group robot, WeCom
// application, webhook, Alertmanager) and their configuration. The ruler
// hands it alerts through Notifier.Ingest; docs/alerting.md, "Notifier",
// is the design.
//
// # The notifier
//
// Ingest takes the ruler's firing and resolved alerts (Prometheus'
// NotifyFunc semantics), keys them by label fingerprint and puts them in
// aggregation groups (route and group_by values). Run flushes due groups
// (group_wait, group_interval, repeat_interval; silenced and inhibited
// alerts left out): a notification is written to etcd as one queue entry
// per channel in the same transaction as the group's state (the firing
// alerts last notified), so a restart neither loses nor repeats it. Lanes
// (receiver and channel) deliver the entries in order, retry with backoff
// and move what cannot be delivered to the dead letters. Handler serves
// the groups, silences and dead letters. RoutingConfig is the YAML: route
// tree, inhibit_rules and receivers; NotifierConfig the flags.
//
// # The contract
//
// A Notification is one message for one receiver: a group of alerts in
// Alertmanager's webhook data model. A Channel sends it:
//
//		type Channel interface {
//			Kind() string                                    // "email", "dingtalk", "wecom", "wecom_app", "webhook", "alertmanager"
//			Send(ctx context.Context, n *Notification) error // nil only when the endpoint accepted it
//		}
//
//	  - Send blocks until the endpoint answered, the channel's timeout
//	    (timeout, default 10 s, email 30 s) passed, or ctx is done. It is
//	    safe for concurrent use and neither modifies n nor keeps it.
//	  - nil means accepted: HTTP 2xx, and errcode 0 for DingTalk and WeCom;
//	    SMTP 250 after DATA; for Alertmanager, at least one of its URLs
//	    answered 2xx. A channel with send_resolved false drops resolved
//	    alerts and returns nil without sending when none are left.
//	  - Any other outcome is a *DeliveryError: Retryable says whether the same
//	    notification may succeed later (network errors, timeouts, HTTP
//	    408/429/5xx, SMTP 4xx, the endpoints' rate-limit and busy codes) and
//	    RetryAfter how long to wait at least (Retry-After, DingTalk's 10-minute
//	    throttle, WeCom's one-minute window). Its text names the channel, the
//	    endpoint with secrets redacted, and the reason (status, body excerpt,
//	    errcode and errmsg, SMTP reply). The queue that will retry reads
//	    these fields; IsRetryable is the short form.
//	  - Sending is at least once at this layer: a Send that timed out may still
//	    have been delivered.
//
// # Configuration
//
// ParseConfig reads the receivers YAML (strict: an unknown field is an
// error with its line), fills in defaults and validates every field,
// templates included (each is compiled and executed on a sample
// notification at load). NewChannels builds one receiver's channels.
// Secrets are of type Secret, URLs that may carry them of type URL: every
// rendering (YAML, JSON, fmt, slog, the channels' own %v) shows
// "<secret>" in their place, and no error quotes them.
//
// # Templates
//
// Message bodies are Go text/template (html/template for email HTML) over
// the Notification, with Alertmanager's helper functions and the default
// templates "vigil.title", "vigil.text", "vigil.markdown" and "vigil.html",
// which an override may call. See docs/alerting.md, "Channels".
package alerting

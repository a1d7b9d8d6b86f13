package alerting

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DingTalk error codes with a meaning for retries.
const (
	dingTalkRateLimited = 130101 // "send too fast": over 20 messages a minute
	dingTalkBusy        = -1     // system busy
	// DingTalk throttles a robot for 10 minutes once it went over 20
	// messages in a minute (custom robot documentation, "消息发送频率限制").
	dingTalkThrottle = 10 * time.Minute
	// dingTalkMaxText bounds the markdown text; DingTalk refuses very long
	// messages, and a notification that long is unreadable anyway.
	dingTalkMaxText = 20000
)

// DingTalk sends markdown messages to a DingTalk custom robot.
type DingTalk struct {
	cfg    DingTalkConfig
	title  *textTemplate
	text   *textTemplate
	http   *httpClient
	logger *slog.Logger
	now    func() time.Time // the signature's timestamp; tests fix it
}

var _ Channel = (*DingTalk)(nil)

// NewDingTalk builds a DingTalk channel.
func NewDingTalk(cfg *DingTalkConfig, logger *slog.Logger) (*DingTalk, error) {
	c := *cfg
	c.setDefaults()
	if err := validateOne(&c, (*DingTalkConfig).check); err != nil {
		return nil, err
	}
	title, err := parseText(c.Title)
	if err != nil {
		return nil, fmt.Errorf("title template: %w", err)
	}
	text, err := parseText(c.Text)
	if err != nil {
		return nil, fmt.Errorf("text template: %w", err)
	}
	return &DingTalk{cfg: c, title: title, text: text, http: newHTTPClient("dingtalk"), logger: orDiscard(logger), now: time.Now}, nil
}

func (d *DingTalk) Kind() string { return "dingtalk" }

// Format prints the channel with its endpoint redacted, whatever the verb.
func (d *DingTalk) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "dingtalk(%s)", redactURL(d.baseURL()))
}

func (d *DingTalk) baseURL() string {
	if d.cfg.WebhookURL != "" {
		return string(d.cfg.WebhookURL)
	}
	return d.cfg.APIURL
}

// DingTalkMessage is the robot's markdown message.
type DingTalkMessage struct {
	MsgType  string           `json:"msgtype"` // "markdown"
	Markdown DingTalkMarkdown `json:"markdown"`
	At       DingTalkAt       `json:"at"`
}

// DingTalkMarkdown is the markdown part of a DingTalkMessage.
type DingTalkMarkdown struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

// DingTalkAt lists who is mentioned. DingTalk highlights a mention only if
// the text also contains "@<mobile or user id>"; Send appends those.
type DingTalkAt struct {
	AtMobiles []string `json:"atMobiles,omitempty"`
	AtUserIDs []string `json:"atUserIds,omitempty"`
	IsAtAll   bool     `json:"isAtAll"`
}

func (d *DingTalk) Send(ctx context.Context, n *Notification) error {
	if n = filterResolved(n, d.cfg.sendResolved()); n == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	endpoint := d.baseURL()
	title, err := d.title.execute(n)
	if err != nil {
		return &DeliveryError{Channel: d.Kind(), Endpoint: redactURL(endpoint), Message: "title template", Err: err}
	}
	text, err := d.text.execute(n)
	if err != nil {
		return &DeliveryError{Channel: d.Kind(), Endpoint: redactURL(endpoint), Message: "text template", Err: err}
	}
	msg := DingTalkMessage{MsgType: "markdown", Markdown: DingTalkMarkdown{Title: strings.TrimSpace(title)}}
	msg.At.AtMobiles = mentionValues(d.cfg.AtMobiles, n.Alerts, d.cfg.MobilesFrom)
	msg.At.AtUserIDs = mentionValues(d.cfg.AtUserIDs, n.Alerts, d.cfg.UserIDsFrom)
	msg.At.IsAtAll = d.cfg.AtAll
	var mentions strings.Builder
	for _, m := range append(append([]string{}, msg.At.AtMobiles...), msg.At.AtUserIDs...) {
		mentions.WriteString(" @" + m)
	}
	if mentions.Len() > 0 {
		mentions.WriteString("\n")
		text = truncateUTF8(text, dingTalkMaxText-mentions.Len()-2, "\n…") + "\n\n" + strings.TrimSpace(mentions.String())
	} else {
		text = truncateUTF8(text, dingTalkMaxText, "\n…")
	}
	msg.Markdown.Text = text

	u, err := d.signedURL(endpoint)
	if err != nil {
		return &DeliveryError{Channel: d.Kind(), Endpoint: redactURL(endpoint), Message: "invalid URL"}
	}
	res, _, err := d.http.postJSON(ctx, u, nil, msg)
	if err != nil {
		return err
	}
	if res.status >= 300 && res.status < 400 {
		// DingTalk redirects a throttled robot instead of answering 130101.
		return &DeliveryError{Channel: d.Kind(), Endpoint: redactURL(u), Status: res.status, Retryable: true,
			RetryAfter: dingTalkThrottle, Message: "redirected (DingTalk throttles a robot this way)"}
	}
	if err := d.http.checkStatus(u, res); err != nil {
		return err
	}
	return d.http.checkErrcode(u, res, func(code int) (bool, time.Duration) {
		switch code {
		case dingTalkRateLimited:
			return true, dingTalkThrottle
		case dingTalkBusy:
			return true, 0
		}
		return false, 0
	})
}

// signedURL adds access_token (when configured apart from the URL) and,
// with a secret, timestamp and sign.
func (d *DingTalk) signedURL(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := u.Query()
	if d.cfg.AccessToken != "" {
		q.Set("access_token", string(d.cfg.AccessToken))
	}
	if d.cfg.Secret != "" {
		ts := d.now().UnixMilli()
		q.Set("timestamp", strconv.FormatInt(ts, 10))
		q.Set("sign", DingTalkSign(string(d.cfg.Secret), ts))
	}
	u.RawQuery = q.Encode() // URL-encodes sign: + / = become %2B %2F %3D
	return u.String(), nil
}

// DingTalkSign is DingTalk's custom robot signature before URL encoding:
// base64(HMAC-SHA256(key=secret, message=timestamp+"\n"+secret)), with the
// timestamp in milliseconds. DingTalk refuses a timestamp more than an hour
// away from its clock.
func DingTalkSign(secret string, timestampMillis int64) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestampMillis, 10) + "\n" + secret))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

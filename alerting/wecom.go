package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// WeCom error codes with a meaning for retries and tokens.
const (
	weComBusy             = -1
	weComFreqLimit        = 45009 // api freq out of limit (robot: 20 messages a minute)
	weComInvalidToken     = 40014
	weComExpiredToken     = 42001
	weComRobotMaxMarkdown = 4096 // bytes of markdown.content
	weComRobotMaxText     = 2048 // bytes of text.content
	weComAppMaxContent    = 2048 // bytes of an application message's content
)

func weComRetryable(code int) (bool, time.Duration) {
	switch code {
	case weComFreqLimit:
		return true, time.Minute
	case weComBusy:
		return true, 0
	}
	return false, 0
}

// WeCom sends to a WeCom (企业微信) group robot.
type WeCom struct {
	cfg     WeComConfig
	message *textTemplate
	http    *httpClient
	logger  *slog.Logger
}

var _ Channel = (*WeCom)(nil)

// NewWeCom builds a WeCom group robot channel.
func NewWeCom(cfg *WeComConfig, logger *slog.Logger) (*WeCom, error) {
	c := *cfg
	c.setDefaults()
	if err := validateOne(&c, (*WeComConfig).check); err != nil {
		return nil, err
	}
	msg, err := parseText(c.Message)
	if err != nil {
		return nil, fmt.Errorf("message template: %w", err)
	}
	return &WeCom{cfg: c, message: msg, http: newHTTPClient("wecom"), logger: orDiscard(logger)}, nil
}

func (w *WeCom) Kind() string { return "wecom" }

// Format prints the channel with its endpoint redacted, whatever the verb.
func (w *WeCom) Format(f fmt.State, _ rune) { fmt.Fprintf(f, "wecom(%s)", redactURL(w.url())) }

func (w *WeCom) url() string {
	if w.cfg.WebhookURL != "" {
		return string(w.cfg.WebhookURL)
	}
	u, err := url.Parse(w.cfg.APIURL)
	if err != nil {
		return w.cfg.APIURL
	}
	q := u.Query()
	q.Set("key", string(w.cfg.Key))
	u.RawQuery = q.Encode()
	return u.String()
}

// WeComRobotMessage is a group robot message: msgtype "markdown" with
// Markdown, or "text" with Text.
type WeComRobotMessage struct {
	MsgType  string         `json:"msgtype"`
	Markdown *WeComContent  `json:"markdown,omitempty"`
	Text     *WeComRobotTxt `json:"text,omitempty"`
}

// WeComContent is a markdown (or application text) content.
type WeComContent struct {
	Content string `json:"content"`
}

// WeComRobotTxt is a robot's text message, with its mention lists.
type WeComRobotTxt struct {
	Content             string   `json:"content"`
	MentionedList       []string `json:"mentioned_list,omitempty"`
	MentionedMobileList []string `json:"mentioned_mobile_list,omitempty"`
}

func (w *WeCom) Send(ctx context.Context, n *Notification) error {
	if n = filterResolved(n, w.cfg.sendResolved()); n == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	u := w.url()
	content, err := w.message.execute(n)
	if err != nil {
		return &DeliveryError{Channel: w.Kind(), Endpoint: redactURL(u), Message: "message template", Err: err}
	}
	users := mentionValues(w.cfg.MentionedList, n.Alerts, w.cfg.UserIDsFrom)
	var msg WeComRobotMessage
	if w.cfg.MessageType == "text" {
		msg = WeComRobotMessage{MsgType: "text", Text: &WeComRobotTxt{
			Content:             truncateUTF8(content, weComRobotMaxText, "\n…"),
			MentionedList:       users,
			MentionedMobileList: mentionValues(w.cfg.MentionedMobileList, n.Alerts, w.cfg.MobilesFrom),
		}}
	} else {
		// Markdown mentions are <@userid> in the content; mobiles cannot
		// be mentioned (WeCom's documented markdown syntax).
		var tail strings.Builder
		for _, id := range users {
			m := "<@" + id + ">"
			if id != "@all" && tail.Len()+len(m) <= weComRobotMaxMarkdown/4 {
				tail.WriteString(m)
			}
		}
		s := tail.String()
		if s != "" {
			s = "\n" + s
		}
		msg = WeComRobotMessage{MsgType: "markdown", Markdown: &WeComContent{
			Content: truncateUTF8(content, weComRobotMaxMarkdown-len(s), "\n…") + s,
		}}
	}
	res, _, err := w.http.postJSON(ctx, u, nil, msg)
	if err != nil {
		return err
	}
	if err := w.http.checkStatus(u, res); err != nil {
		return err
	}
	return w.http.checkErrcode(u, res, weComRetryable)
}

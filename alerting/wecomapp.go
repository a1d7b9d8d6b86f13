package alerting

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// WeComApp sends through the WeCom application API: an access token from
// gettoken (cached until its expires_in, renewed when the API says it is
// invalid or expired), then message/send.
type WeComApp struct {
	cfg     WeComAppConfig
	message *textTemplate
	http    *httpClient
	logger  *slog.Logger
	now     func() time.Time

	mu      sync.Mutex // protects token and expires; held while fetching one
	token   string
	expires time.Time
}

var _ Channel = (*WeComApp)(nil)

// NewWeComApp builds a WeCom application channel.
func NewWeComApp(cfg *WeComAppConfig, logger *slog.Logger) (*WeComApp, error) {
	c := *cfg
	c.setDefaults()
	if err := validateOne(&c, (*WeComAppConfig).check); err != nil {
		return nil, err
	}
	msg, err := parseText(c.Message)
	if err != nil {
		return nil, fmt.Errorf("message template: %w", err)
	}
	return &WeComApp{cfg: c, message: msg, http: newHTTPClient("wecom_app"), logger: orDiscard(logger), now: time.Now}, nil
}

func (w *WeComApp) Kind() string { return "wecom_app" }

// Format prints the channel without its secrets, whatever the verb.
func (w *WeComApp) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "wecom_app(%s corp_id=%s agent_id=%d)", redactURL(w.cfg.APIURL), w.cfg.CorpID, w.cfg.AgentID)
}

// WeComAppMessage is the body of message/send.
type WeComAppMessage struct {
	ToUser   string        `json:"touser,omitempty"`
	ToParty  string        `json:"toparty,omitempty"`
	ToTag    string        `json:"totag,omitempty"`
	MsgType  string        `json:"msgtype"`
	AgentID  int64         `json:"agentid"`
	Markdown *WeComContent `json:"markdown,omitempty"`
	Text     *WeComContent `json:"text,omitempty"`
}

func (w *WeComApp) endpoint(path string, q url.Values) string {
	base := w.cfg.APIURL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + path + "?" + q.Encode()
}

func (w *WeComApp) Send(ctx context.Context, n *Notification) error {
	if n = filterResolved(n, w.cfg.sendResolved()); n == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	content, err := w.message.execute(n)
	if err != nil {
		return &DeliveryError{Channel: w.Kind(), Endpoint: redactURL(w.cfg.APIURL), Message: "message template", Err: err}
	}
	c := &WeComContent{Content: truncateUTF8(content, weComAppMaxContent, "\n…")}
	msg := WeComAppMessage{ToUser: w.cfg.ToUser, ToParty: w.cfg.ToParty, ToTag: w.cfg.ToTag,
		MsgType: w.cfg.MessageType, AgentID: w.cfg.AgentID}
	if w.cfg.MessageType == "text" {
		msg.Text = c
	} else {
		msg.Markdown = c
	}
	// At most two rounds: the second after renewing a token the API
	// called invalid or expired.
	for attempt := 0; ; attempt++ {
		token, err := w.accessToken(ctx, attempt > 0)
		if err != nil {
			return err
		}
		u := w.endpoint("message/send", url.Values{"access_token": {token}})
		res, _, err := w.http.postJSON(ctx, u, nil, msg)
		if err != nil {
			return err
		}
		if err := w.http.checkStatus(u, res); err != nil {
			return err
		}
		err = w.http.checkErrcode(u, res, weComRetryable)
		if de, ok := err.(*DeliveryError); ok && (de.Code == weComInvalidToken || de.Code == weComExpiredToken) {
			w.dropToken(token)
			if attempt == 0 {
				continue
			}
			de.Retryable = true // a fresh token was refused: perhaps a race with another holder
		}
		return err
	}
}

// accessToken returns the cached token, or fetches one when there is none,
// it expired, or renew is set.
func (w *WeComApp) accessToken(ctx context.Context, renew bool) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !renew && w.token != "" && w.now().Before(w.expires) {
		return w.token, nil
	}
	u := w.endpoint("gettoken", url.Values{"corpid": {w.cfg.CorpID}, "corpsecret": {string(w.cfg.CorpSecret)}})
	res, err := w.http.do(ctx, http.MethodGet, u, http.Header{"User-Agent": {userAgent}}, nil)
	if err != nil {
		return "", err
	}
	if err := w.http.checkStatus(u, res); err != nil {
		return "", err
	}
	if err := w.http.checkErrcode(u, res, weComRetryable); err != nil {
		return "", err
	}
	var a struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(res.body, &a); err != nil || a.AccessToken == "" {
		return "", &DeliveryError{Channel: w.Kind(), Endpoint: redactURL(u), Status: res.status, Retryable: true,
			Message: "gettoken answer without access_token"}
	}
	ttl := time.Duration(a.ExpiresIn) * time.Second
	// Renew a little early so that a token is not used at its last second.
	switch {
	case ttl > 10*time.Minute:
		ttl -= 5 * time.Minute
	case ttl > 0:
		ttl /= 2
	}
	w.token, w.expires = a.AccessToken, w.now().Add(ttl)
	return w.token, nil
}

// dropToken forgets token unless another Send already replaced it.
func (w *WeComApp) dropToken(token string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.token == token {
		w.token = ""
	}
}

package alerting

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the receivers section of the alerting configuration, in the
// spirit of Alertmanager's: each receiver is a name and the channels a
// notification for it goes to.
//
//	receivers:
//	  - name: ops
//	    webhook_configs: [{url: "https://hooks.example/alerts"}]
//	    dingtalk_configs: [{access_token: "...", secret: "SEC..."}]
//
// Secrets are of type Secret (or URL for URLs that carry them) and are
// redacted in every rendering, so a Config can be logged or served as is.
type Config struct {
	Receivers []*Receiver `yaml:"receivers" json:"receivers"`
}

// Receiver is a named set of channels.
type Receiver struct {
	Name                string                `yaml:"name" json:"name"`
	EmailConfigs        []*EmailConfig        `yaml:"email_configs,omitempty" json:"email_configs,omitempty"`
	DingTalkConfigs     []*DingTalkConfig     `yaml:"dingtalk_configs,omitempty" json:"dingtalk_configs,omitempty"`
	WeComConfigs        []*WeComConfig        `yaml:"wecom_configs,omitempty" json:"wecom_configs,omitempty"`
	WeComAppConfigs     []*WeComAppConfig     `yaml:"wecom_app_configs,omitempty" json:"wecom_app_configs,omitempty"`
	WebhookConfigs      []*WebhookConfig      `yaml:"webhook_configs,omitempty" json:"webhook_configs,omitempty"`
	AlertmanagerConfigs []*AlertmanagerConfig `yaml:"alertmanager_configs,omitempty" json:"alertmanager_configs,omitempty"`
}

// CommonConfig is part of every channel's configuration.
type CommonConfig struct {
	// SendResolved: whether notifications of resolved alerts are sent.
	// Defaults to true, except for email (false), as in Alertmanager.
	SendResolved *bool `yaml:"send_resolved,omitempty" json:"send_resolved,omitempty"`
	// Timeout bounds one Send (default 10s, email 30s).
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

func (c *CommonConfig) sendResolved() bool { return c.SendResolved == nil || *c.SendResolved }

func (c *CommonConfig) defaults(sendResolved bool, timeout time.Duration) {
	if c.SendResolved == nil {
		c.SendResolved = &sendResolved
	}
	if c.Timeout == 0 {
		c.Timeout = timeout
	}
}

const defaultHTTPTimeout = 10 * time.Second

// WebhookConfig posts Alertmanager's webhook JSON (version "4").
type WebhookConfig struct {
	CommonConfig `yaml:",inline"`
	URL          URL    `yaml:"url" json:"url"`
	BearerToken  Secret `yaml:"bearer_token,omitempty" json:"bearer_token,omitempty"`
	// HMACSecret, when set, signs the body: X-Vigil-Signature:
	// sha256=<hex HMAC-SHA256(secret, body)>.
	HMACSecret Secret `yaml:"hmac_secret,omitempty" json:"hmac_secret,omitempty"`
	// MaxAlerts caps the alerts in one payload (0: all); the rest are
	// counted in truncatedAlerts.
	MaxAlerts int `yaml:"max_alerts,omitempty" json:"max_alerts,omitempty"`
}

// DingTalkConfig sends markdown messages to a DingTalk custom robot.
type DingTalkConfig struct {
	CommonConfig `yaml:",inline"`
	// WebhookURL is the robot's URL as DingTalk shows it, access_token
	// included. Alternatively AccessToken, with APIURL.
	WebhookURL  URL    `yaml:"webhook_url,omitempty" json:"webhook_url,omitempty"`
	APIURL      string `yaml:"api_url,omitempty" json:"api_url,omitempty"`
	AccessToken Secret `yaml:"access_token,omitempty" json:"access_token,omitempty"`
	// Secret is the robot's signing secret ("SEC..."); when set, each
	// request carries timestamp and sign.
	Secret Secret `yaml:"secret,omitempty" json:"secret,omitempty"`
	// Mentions: fixed lists, plus comma-separated values of the named
	// alert labels or annotations.
	AtMobiles   []string `yaml:"at_mobiles,omitempty" json:"at_mobiles,omitempty"`
	AtUserIDs   []string `yaml:"at_user_ids,omitempty" json:"at_user_ids,omitempty"`
	AtAll       bool     `yaml:"at_all,omitempty" json:"at_all,omitempty"`
	MobilesFrom string   `yaml:"mobiles_from,omitempty" json:"mobiles_from,omitempty"`
	UserIDsFrom string   `yaml:"user_ids_from,omitempty" json:"user_ids_from,omitempty"`
	Title       string   `yaml:"title,omitempty" json:"title,omitempty"`
	Text        string   `yaml:"text,omitempty" json:"text,omitempty"`
}

// WeComConfig sends to a WeCom (企业微信) group robot.
type WeComConfig struct {
	CommonConfig `yaml:",inline"`
	// WebhookURL is the robot's URL as WeCom shows it, key included.
	// Alternatively Key, with APIURL.
	WebhookURL URL    `yaml:"webhook_url,omitempty" json:"webhook_url,omitempty"`
	APIURL     string `yaml:"api_url,omitempty" json:"api_url,omitempty"`
	Key        Secret `yaml:"key,omitempty" json:"key,omitempty"`
	// MessageType is "markdown" (default; mentions as <@userid> in the
	// content) or "text" (mentioned_list and mentioned_mobile_list).
	MessageType         string   `yaml:"message_type,omitempty" json:"message_type,omitempty"`
	MentionedList       []string `yaml:"mentioned_list,omitempty" json:"mentioned_list,omitempty"`
	MentionedMobileList []string `yaml:"mentioned_mobile_list,omitempty" json:"mentioned_mobile_list,omitempty"`
	UserIDsFrom         string   `yaml:"user_ids_from,omitempty" json:"user_ids_from,omitempty"`
	MobilesFrom         string   `yaml:"mobiles_from,omitempty" json:"mobiles_from,omitempty"`
	Message             string   `yaml:"message,omitempty" json:"message,omitempty"`
}

// WeComAppConfig sends through the WeCom application API.
type WeComAppConfig struct {
	CommonConfig `yaml:",inline"`
	APIURL       string `yaml:"api_url,omitempty" json:"api_url,omitempty"`
	CorpID       string `yaml:"corp_id" json:"corp_id"`
	CorpSecret   Secret `yaml:"corp_secret" json:"corp_secret"`
	AgentID      int64  `yaml:"agent_id" json:"agent_id"`
	// ToUser, ToParty, ToTag are "|"-separated IDs, as the API takes them;
	// ToUser defaults to "@all" when all three are empty.
	ToUser      string `yaml:"to_user,omitempty" json:"to_user,omitempty"`
	ToParty     string `yaml:"to_party,omitempty" json:"to_party,omitempty"`
	ToTag       string `yaml:"to_tag,omitempty" json:"to_tag,omitempty"`
	MessageType string `yaml:"message_type,omitempty" json:"message_type,omitempty"`
	Message     string `yaml:"message,omitempty" json:"message,omitempty"`
}

// EmailConfig sends multipart/alternative (text and HTML) mail over SMTP.
type EmailConfig struct {
	CommonConfig `yaml:",inline"`
	To           []string `yaml:"to" json:"to"`
	From         string   `yaml:"from" json:"from"`
	Smarthost    string   `yaml:"smarthost" json:"smarthost"` // host:port
	Hello        string   `yaml:"hello,omitempty" json:"hello,omitempty"`
	AuthUsername string   `yaml:"auth_username,omitempty" json:"auth_username,omitempty"`
	AuthPassword Secret   `yaml:"auth_password,omitempty" json:"auth_password,omitempty"`
	AuthIdentity string   `yaml:"auth_identity,omitempty" json:"auth_identity,omitempty"`
	// AuthMechanism is "PLAIN", "LOGIN", or "" for the first of those the
	// server offers.
	AuthMechanism string `yaml:"auth_mechanism,omitempty" json:"auth_mechanism,omitempty"`
	// ImplicitTLS speaks TLS from the first byte (SMTPS); defaults to true
	// for port 465. Otherwise StartTLS applies: "required" (default),
	// "opportunistic" or "none".
	ImplicitTLS *bool     `yaml:"implicit_tls,omitempty" json:"implicit_tls,omitempty"`
	StartTLS    string    `yaml:"starttls,omitempty" json:"starttls,omitempty"`
	TLS         TLSConfig `yaml:"tls_config,omitempty" json:"tls_config,omitempty"`
	// AllowInsecureAuth permits AUTH over a connection without TLS.
	AllowInsecureAuth bool              `yaml:"allow_insecure_auth,omitempty" json:"allow_insecure_auth,omitempty"`
	Headers           map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	Subject           string            `yaml:"subject,omitempty" json:"subject,omitempty"`
	Text              string            `yaml:"text,omitempty" json:"text,omitempty"`
	HTML              string            `yaml:"html,omitempty" json:"html,omitempty"`
}

// TLSConfig configures the TLS client of a channel.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	ServerName         string `yaml:"server_name,omitempty" json:"server_name,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
}

// AlertmanagerConfig pushes the alerts to Alertmanagers (API v2).
type AlertmanagerConfig struct {
	CommonConfig `yaml:",inline"`
	// URLs are Alertmanagers' base URLs (path prefix allowed); each gets
	// POST <url>/api/v2/alerts.
	URLs        []URL  `yaml:"urls" json:"urls"`
	BearerToken Secret `yaml:"bearer_token,omitempty" json:"bearer_token,omitempty"`
}

// Defaults.
const (
	DefaultDingTalkAPIURL  = "https://oapi.dingtalk.com/robot/send"
	DefaultWeComAPIURL     = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
	DefaultWeComAppAPIURL  = "https://qyapi.weixin.qq.com/cgi-bin/"
	DefaultDingTalkMobiles = "dingtalk_mobiles"
	DefaultDingTalkUserIDs = "dingtalk_user_ids"
	DefaultWeComUserIDs    = "wecom_user_ids"
	DefaultWeComMobiles    = "wecom_mobiles"
)

// ParseConfig decodes YAML strictly (an unknown field is an error with its
// line), fills in defaults and validates everything, templates included.
// Every problem found is reported, each with its line and path.
func ParseConfig(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("parse receivers config: %w", err)
	}
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse receivers config: %w", err)
	}
	cfg.SetDefaults()
	if err := cfg.validate(&root); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadConfigFile reads and parses a receivers file.
func LoadConfigFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read receivers config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Receiver returns the receiver of that name, or nil.
func (c *Config) Receiver(name string) *Receiver {
	for _, r := range c.Receivers {
		if r != nil && r.Name == name {
			return r
		}
	}
	return nil
}

// SetDefaults fills in every default. ParseConfig calls it; a Config built
// in code calls it before Validate.
func (c *Config) SetDefaults() {
	for _, r := range c.Receivers {
		if r == nil {
			continue
		}
		for _, e := range r.EmailConfigs {
			if e != nil {
				e.setDefaults()
			}
		}
		for _, d := range r.DingTalkConfigs {
			if d != nil {
				d.setDefaults()
			}
		}
		for _, w := range r.WeComConfigs {
			if w != nil {
				w.setDefaults()
			}
		}
		for _, w := range r.WeComAppConfigs {
			if w != nil {
				w.setDefaults()
			}
		}
		for _, w := range r.WebhookConfigs {
			if w != nil {
				w.CommonConfig.defaults(true, defaultHTTPTimeout)
			}
		}
		for _, a := range r.AlertmanagerConfigs {
			if a != nil {
				a.CommonConfig.defaults(true, defaultHTTPTimeout)
			}
		}
	}
}

func (d *DingTalkConfig) setDefaults() {
	d.CommonConfig.defaults(true, defaultHTTPTimeout)
	if d.WebhookURL == "" && d.APIURL == "" {
		d.APIURL = DefaultDingTalkAPIURL
	}
	if d.MobilesFrom == "" {
		d.MobilesFrom = DefaultDingTalkMobiles
	}
	if d.UserIDsFrom == "" {
		d.UserIDsFrom = DefaultDingTalkUserIDs
	}
	if d.Title == "" {
		d.Title = defaultTitle
	}
	if d.Text == "" {
		d.Text = defaultMarkdown
	}
}

func (w *WeComConfig) setDefaults() {
	w.CommonConfig.defaults(true, defaultHTTPTimeout)
	if w.WebhookURL == "" && w.APIURL == "" {
		w.APIURL = DefaultWeComAPIURL
	}
	if w.MessageType == "" {
		w.MessageType = "markdown"
	}
	if w.UserIDsFrom == "" {
		w.UserIDsFrom = DefaultWeComUserIDs
	}
	if w.MobilesFrom == "" {
		w.MobilesFrom = DefaultWeComMobiles
	}
	if w.Message == "" {
		w.Message = defaultMarkdown
		if w.MessageType == "text" {
			w.Message = defaultText
		}
	}
}

func (w *WeComAppConfig) setDefaults() {
	w.CommonConfig.defaults(true, defaultHTTPTimeout)
	if w.APIURL == "" {
		w.APIURL = DefaultWeComAppAPIURL
	}
	if w.ToUser == "" && w.ToParty == "" && w.ToTag == "" {
		w.ToUser = "@all"
	}
	if w.MessageType == "" {
		w.MessageType = "markdown"
	}
	if w.Message == "" {
		w.Message = defaultMarkdown
		if w.MessageType == "text" {
			w.Message = defaultText
		}
	}
}

func (e *EmailConfig) setDefaults() {
	e.CommonConfig.defaults(false, 30*time.Second)
	if e.Hello == "" {
		e.Hello = "localhost"
	}
	if e.ImplicitTLS == nil {
		_, port, _ := net.SplitHostPort(e.Smarthost)
		v := port == "465"
		e.ImplicitTLS = &v
	}
	if e.StartTLS == "" {
		e.StartTLS = "required"
	}
	if e.Subject == "" {
		e.Subject = defaultTitle
	}
	if e.Text == "" {
		e.Text = defaultText
	}
	if e.HTML == "" {
		e.HTML = defaultHTML
	}
}

// Validate checks a Config with defaults set (SetDefaults); the errors name
// the path of each problem (receivers[0].webhook_configs[1].url).
func (c *Config) Validate() error { return c.validate(nil) }

// problem is one validation finding, at a path of YAML keys and indexes.
type problem struct {
	path []any // string keys and int indexes
	msg  string
}

type checker struct {
	list *[]problem
	path []any
}

func (c checker) in(elems ...any) checker {
	return checker{c.list, append(slices.Clone(c.path), elems...)}
}

// errorf records a problem with field (a key of the current path, or "").
func (c checker) errorf(field string, format string, args ...any) {
	p := slices.Clone(c.path)
	if field != "" {
		p = append(p, field)
	}
	*c.list = append(*c.list, problem{p, fmt.Sprintf(format, args...)})
}

func (c *Config) validate(root *yaml.Node) error {
	var list []problem
	ck := checker{list: &list}
	seen := map[string]bool{}
	for i, r := range c.Receivers {
		rc := ck.in("receivers", i)
		if r == nil {
			rc.errorf("", "empty receiver")
			continue
		}
		switch {
		case r.Name == "":
			rc.errorf("name", "missing receiver name")
		case seen[r.Name]:
			rc.errorf("name", "receiver %q defined twice", r.Name)
		}
		seen[r.Name] = true
		for j, e := range r.EmailConfigs {
			validateEntry(rc.in("email_configs", j), e, (*EmailConfig).check)
		}
		for j, d := range r.DingTalkConfigs {
			validateEntry(rc.in("dingtalk_configs", j), d, (*DingTalkConfig).check)
		}
		for j, w := range r.WeComConfigs {
			validateEntry(rc.in("wecom_configs", j), w, (*WeComConfig).check)
		}
		for j, w := range r.WeComAppConfigs {
			validateEntry(rc.in("wecom_app_configs", j), w, (*WeComAppConfig).check)
		}
		for j, w := range r.WebhookConfigs {
			validateEntry(rc.in("webhook_configs", j), w, (*WebhookConfig).check)
		}
		for j, a := range r.AlertmanagerConfigs {
			validateEntry(rc.in("alertmanager_configs", j), a, (*AlertmanagerConfig).check)
		}
	}
	if len(list) == 0 {
		return nil
	}
	errs := make([]error, len(list))
	for i, p := range list {
		errs[i] = &ConfigError{Line: lineOf(root, p.path), Path: formatPath(p.path), Msg: p.msg}
	}
	return errors.Join(errs...)
}

func validateEntry[T any](c checker, cfg *T, check func(*T, checker)) {
	if cfg == nil {
		c.errorf("", "empty config")
		return
	}
	check(cfg, c)
}

// ConfigError is one invalid setting.
type ConfigError struct {
	Line int    // line in the YAML, 0 when not known
	Path string // receivers[0].dingtalk_configs[1].secret
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Path, e.Msg)
	}
	return e.Path + ": " + e.Msg
}

func formatPath(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// lineOf finds the line of the deepest node of path that exists in root.
func lineOf(root *yaml.Node, path []any) int {
	if root == nil {
		return 0
	}
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						line = n.Content[i].Line
						next = n.Content[i+1]
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
				line = next.Line
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line
}

func checkHTTPURL(c checker, field, raw string) {
	if raw == "" {
		c.errorf(field, "missing URL")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the URL, secrets and all.
		c.errorf(field, "invalid URL %s", redactURL(raw))
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		c.errorf(field, "URL %s: scheme must be http or https", redactURL(raw))
	} else if u.Host == "" {
		c.errorf(field, "URL %s has no host", redactURL(raw))
	}
}

func checkTimeout(c checker, cc *CommonConfig) {
	if cc.Timeout < 0 {
		c.errorf("timeout", "negative timeout %s", cc.Timeout)
	}
}

func checkTextTemplate(c checker, field, body string) {
	if _, err := parseText(body); err != nil {
		c.errorf(field, "template: %v", err)
	}
}

func (w *WebhookConfig) check(c checker) {
	checkTimeout(c, &w.CommonConfig)
	checkHTTPURL(c, "url", string(w.URL))
	if w.MaxAlerts < 0 {
		c.errorf("max_alerts", "negative max_alerts %d", w.MaxAlerts)
	}
}

func (d *DingTalkConfig) check(c checker) {
	checkTimeout(c, &d.CommonConfig)
	switch {
	case d.WebhookURL != "" && (d.AccessToken != "" || d.APIURL != ""):
		c.errorf("webhook_url", "set either webhook_url or access_token (with api_url), not both")
	case d.WebhookURL != "":
		checkHTTPURL(c, "webhook_url", string(d.WebhookURL))
		if u, err := url.Parse(string(d.WebhookURL)); err == nil && u.Query().Get("access_token") == "" {
			c.errorf("webhook_url", "webhook_url has no access_token parameter")
		}
	case d.AccessToken == "":
		c.errorf("access_token", "missing access_token (or webhook_url)")
	default:
		checkHTTPURL(c, "api_url", d.APIURL)
	}
	if d.Secret != "" && !strings.HasPrefix(string(d.Secret), "SEC") {
		// DingTalk's signing secrets all start with SEC; anything else is
		// most likely the access token pasted in the wrong field.
		c.errorf("secret", "a DingTalk signing secret starts with \"SEC\"")
	}
	checkLabelName(c, "mobiles_from", d.MobilesFrom)
	checkLabelName(c, "user_ids_from", d.UserIDsFrom)
	checkTextTemplate(c, "title", d.Title)
	checkTextTemplate(c, "text", d.Text)
}

func (w *WeComConfig) check(c checker) {
	checkTimeout(c, &w.CommonConfig)
	switch {
	case w.WebhookURL != "" && (w.Key != "" || w.APIURL != ""):
		c.errorf("webhook_url", "set either webhook_url or key (with api_url), not both")
	case w.WebhookURL != "":
		checkHTTPURL(c, "webhook_url", string(w.WebhookURL))
		if u, err := url.Parse(string(w.WebhookURL)); err == nil && u.Query().Get("key") == "" {
			c.errorf("webhook_url", "webhook_url has no key parameter")
		}
	case w.Key == "":
		c.errorf("key", "missing key (or webhook_url)")
	default:
		checkHTTPURL(c, "api_url", w.APIURL)
	}
	switch w.MessageType {
	case "markdown":
		if len(w.MentionedMobileList) > 0 {
			c.errorf("mentioned_mobile_list", "markdown messages cannot mention by mobile number; use message_type: text")
		}
		if slices.Contains(w.MentionedList, "@all") {
			c.errorf("mentioned_list", "markdown messages cannot mention @all; use message_type: text")
		}
	case "text":
	default:
		c.errorf("message_type", "message_type %q: want markdown or text", w.MessageType)
	}
	checkLabelName(c, "user_ids_from", w.UserIDsFrom)
	checkLabelName(c, "mobiles_from", w.MobilesFrom)
	checkTextTemplate(c, "message", w.Message)
}

func (w *WeComAppConfig) check(c checker) {
	checkTimeout(c, &w.CommonConfig)
	checkHTTPURL(c, "api_url", w.APIURL)
	if w.CorpID == "" {
		c.errorf("corp_id", "missing corp_id")
	}
	if w.CorpSecret == "" {
		c.errorf("corp_secret", "missing corp_secret")
	}
	if w.AgentID <= 0 {
		c.errorf("agent_id", "missing or invalid agent_id %d", w.AgentID)
	}
	if w.MessageType != "markdown" && w.MessageType != "text" {
		c.errorf("message_type", "message_type %q: want markdown or text", w.MessageType)
	}
	checkTextTemplate(c, "message", w.Message)
}

func (e *EmailConfig) check(c checker) {
	checkTimeout(c, &e.CommonConfig)
	if len(e.To) == 0 {
		c.errorf("to", "missing recipients")
	}
	for i, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			c.in("to", i).errorf("", "invalid address %q: %v", to, err)
		}
	}
	if e.From == "" {
		c.errorf("from", "missing from address")
	} else if _, err := mail.ParseAddress(e.From); err != nil {
		c.errorf("from", "invalid address %q: %v", e.From, err)
	}
	if host, port, err := net.SplitHostPort(e.Smarthost); err != nil || host == "" {
		c.errorf("smarthost", "smarthost %q: want host:port", e.Smarthost)
	} else if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		c.errorf("smarthost", "smarthost %q: invalid port", e.Smarthost)
	}
	switch e.StartTLS {
	case "required", "opportunistic", "none":
	default:
		c.errorf("starttls", "starttls %q: want required, opportunistic or none", e.StartTLS)
	}
	switch strings.ToUpper(e.AuthMechanism) {
	case "", "PLAIN", "LOGIN":
	default:
		c.errorf("auth_mechanism", "auth_mechanism %q: want PLAIN or LOGIN", e.AuthMechanism)
	}
	if e.AuthPassword != "" && e.AuthUsername == "" {
		c.errorf("auth_username", "auth_password set without auth_username")
	}
	if e.TLS.CAFile != "" {
		if pem, err := os.ReadFile(e.TLS.CAFile); err != nil {
			c.errorf("tls_config", "ca_file: %v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			c.errorf("tls_config", "ca_file %s: no PEM certificate", e.TLS.CAFile)
		}
	}
	for k, v := range e.Headers {
		if !headerName.MatchString(k) || strings.ContainsAny(v, "\r\n") {
			c.errorf("headers", "invalid header %q", k)
		}
	}
	checkTextTemplate(c, "subject", e.Subject)
	checkTextTemplate(c, "text", e.Text)
	if _, err := parseHTML(e.HTML); err != nil {
		c.errorf("html", "template: %v", err)
	}
}

var (
	headerName = regexp.MustCompile(`^[!-9;-~]+$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func checkLabelName(c checker, field, name string) {
	if !labelName.MatchString(name) {
		c.errorf(field, "%q is not a valid label or annotation name", name)
	}
}

func (a *AlertmanagerConfig) check(c checker) {
	checkTimeout(c, &a.CommonConfig)
	if len(a.URLs) == 0 {
		c.errorf("urls", "missing urls")
	}
	for i, u := range a.URLs {
		checkHTTPURL(c.in("urls", i), "", string(u))
	}
}

package alerting

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"time"
)

// Email sends notifications as multipart/alternative mail (text and HTML)
// over SMTP: implicit TLS or STARTTLS, AUTH PLAIN or LOGIN.
type Email struct {
	cfg     EmailConfig
	subject *textTemplate
	text    *textTemplate
	html    *htmlTemplate
	tls     *tls.Config
	from    *mail.Address
	to      []*mail.Address
	logger  *slog.Logger
}

var _ Channel = (*Email)(nil)

// NewEmail builds an email channel.
func NewEmail(cfg *EmailConfig, logger *slog.Logger) (*Email, error) {
	c := *cfg
	c.setDefaults()
	if err := validateOne(&c, (*EmailConfig).check); err != nil {
		return nil, err
	}
	e := &Email{cfg: c, logger: orDiscard(logger)}
	var err error
	if e.subject, err = parseText(c.Subject); err != nil {
		return nil, fmt.Errorf("subject template: %w", err)
	}
	if e.text, err = parseText(c.Text); err != nil {
		return nil, fmt.Errorf("text template: %w", err)
	}
	if e.html, err = parseHTML(c.HTML); err != nil {
		return nil, fmt.Errorf("html template: %w", err)
	}
	host, _, _ := net.SplitHostPort(c.Smarthost)
	e.tls = &tls.Config{ServerName: host, InsecureSkipVerify: c.TLS.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.TLS.ServerName != "" {
		e.tls.ServerName = c.TLS.ServerName
	}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		e.tls.RootCAs = x509.NewCertPool()
		if !e.tls.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate", c.TLS.CAFile)
		}
	}
	if e.from, err = mail.ParseAddress(c.From); err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	for _, t := range c.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("to: %w", err)
		}
		e.to = append(e.to, a)
	}
	return e, nil
}

func (e *Email) Kind() string { return "email" }

// Format prints the channel without its secrets, whatever the verb.
func (e *Email) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "email(smtp://%s to %s)", e.cfg.Smarthost, strings.Join(e.cfg.To, ", "))
}

func (e *Email) fail(retryable bool, msg string, err error) *DeliveryError {
	d := &DeliveryError{Channel: e.Kind(), Endpoint: "smtp://" + e.cfg.Smarthost, Retryable: retryable, Message: msg, Err: err}
	var te *textproto.Error
	if errors.As(err, &te) {
		// An SMTP reply: 4xx is transient, 5xx permanent (RFC 5321 4.2.1).
		d.Status = te.Code
		d.Retryable = te.Code >= 400 && te.Code < 500
	}
	return d
}

func (e *Email) Send(ctx context.Context, n *Notification) error {
	if n = filterResolved(n, e.cfg.sendResolved()); n == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	msg, err := e.message(n)
	if err != nil {
		return e.fail(false, "render message", err)
	}

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.cfg.Smarthost)
	if err != nil {
		return e.fail(true, "connect", err)
	}
	defer conn.Close()
	// The deadline bounds every read and write; closing the connection
	// when ctx is cancelled earlier ends a blocked call too.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	host, _, _ := net.SplitHostPort(e.cfg.Smarthost)
	if *e.cfg.ImplicitTLS {
		tc := tls.Client(conn, e.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return e.fail(true, "TLS handshake", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return e.fail(true, "read greeting", err)
	}
	defer c.Close()
	if err := c.Hello(e.cfg.Hello); err != nil {
		return e.fail(true, "EHLO", err)
	}
	if !*e.cfg.ImplicitTLS && e.cfg.StartTLS != "none" {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(e.tls); err != nil {
				return e.fail(true, "STARTTLS", err)
			}
		} else if e.cfg.StartTLS == "required" {
			return e.fail(false, "server does not offer STARTTLS (starttls: required)", nil)
		}
	}
	if e.cfg.AuthUsername != "" {
		if err := e.auth(c); err != nil {
			return err
		}
	}
	if err := c.Mail(e.from.Address); err != nil {
		return e.fail(true, "MAIL FROM", err)
	}
	for _, to := range e.to {
		if err := c.Rcpt(to.Address); err != nil {
			return e.fail(true, "RCPT TO "+to.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return e.fail(true, "DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return e.fail(true, "write message", err)
	}
	// Close sends the final "." and waits for the 250: the acceptance.
	if err := w.Close(); err != nil {
		return e.fail(true, "end of DATA", err)
	}
	if err := c.Quit(); err != nil {
		e.logger.Debug("SMTP QUIT after an accepted message", "server", e.cfg.Smarthost, "err", err)
	}
	return nil
}

func (e *Email) auth(c *smtp.Client) error {
	if _, isTLS := c.TLSConnectionState(); !isTLS && !e.cfg.AllowInsecureAuth {
		return e.fail(false, "refusing AUTH over a connection without TLS (allow_insecure_auth is false)", nil)
	}
	ok, offered := c.Extension("AUTH")
	if !ok {
		return e.fail(false, "server does not offer AUTH", nil)
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	want := strings.ToUpper(e.cfg.AuthMechanism)
	var a smtp.Auth
	for _, m := range []string{"PLAIN", "LOGIN"} {
		if (want == "" || want == m) && slices.Contains(mechs, m) {
			if m == "PLAIN" {
				a = plainAuth{e.cfg.AuthIdentity, e.cfg.AuthUsername, e.cfg.AuthPassword}
			} else {
				a = loginAuth{e.cfg.AuthUsername, e.cfg.AuthPassword}
			}
			break
		}
	}
	if a == nil {
		return e.fail(false, fmt.Sprintf("no usable AUTH mechanism (server offers %q, configured %q)", offered, e.cfg.AuthMechanism), nil)
	}
	if err := c.Auth(a); err != nil {
		return e.fail(true, "AUTH", err)
	}
	return nil
}

// plainAuth is AUTH PLAIN (RFC 4616). net/smtp's own refuses connections
// without TLS except to localhost; the TLS policy is Email.auth's here.
type plainAuth struct {
	identity, username string
	password           Secret
}

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte(a.identity + "\x00" + a.username + "\x00" + string(a.password)), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge after AUTH PLAIN")
	}
	return nil, nil
}

// loginAuth is the AUTH LOGIN of many mail servers: username, then password,
// each asked for by a challenge.
type loginAuth struct {
	username string
	password Secret
}

func (a loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(challenge))) {
	case "username:", "user name", "username":
		return []byte(a.username), nil
	case "password:", "password":
		return []byte(string(a.password)), nil
	}
	return nil, fmt.Errorf("unexpected AUTH LOGIN challenge %q", challenge)
}

// message renders the whole RFC 5322 message: headers and a
// multipart/alternative body (text, then HTML, the preferred last).
func (e *Email) message(n *Notification) ([]byte, error) {
	subject, err := e.subject.execute(n)
	if err != nil {
		return nil, fmt.Errorf("subject template: %w", err)
	}
	text, err := e.text.execute(n)
	if err != nil {
		return nil, fmt.Errorf("text template: %w", err)
	}
	html, err := e.html.execute(n)
	if err != nil {
		return nil, fmt.Errorf("html template: %w", err)
	}
	subject = strings.Join(strings.Fields(subject), " ") // one line
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ ctype, content string }{
		{"text/plain; charset=UTF-8", text},
		{"text/html; charset=UTF-8", html},
	} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		qw := quotedprintable.NewWriter(w)
		if _, err := qw.Write([]byte(part.content)); err != nil {
			return nil, err
		}
		if err := qw.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}

	to := make([]string, len(e.to))
	for i, a := range e.to {
		to[i] = a.String() // encodes a non-ASCII display name
	}
	domain := "vigil.localhost"
	if i := strings.LastIndexByte(e.from.Address, '@'); i >= 0 {
		domain = e.from.Address[i+1:]
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	headers := [][2]string{
		{"From", e.from.String()},
		{"To", strings.Join(to, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", subject)},
		{"Date", time.Now().Format(time.RFC1123Z)},
		{"Message-Id", "<" + hex.EncodeToString(id[:]) + "@" + domain + ">"},
		{"Mime-Version", "1.0"},
		{"Content-Type", `multipart/alternative; boundary="` + mw.Boundary() + `"`},
	}
	var msg bytes.Buffer
	written := map[string]bool{}
	for _, h := range headers {
		v := h[1]
		if cv, ok := e.header(h[0]); ok && h[0] != "Content-Type" && h[0] != "Mime-Version" {
			v = mime.QEncoding.Encode("utf-8", cv)
		}
		written[h[0]] = true
		fmt.Fprintf(&msg, "%s: %s\r\n", h[0], v)
	}
	for _, k := range sortedKeys(e.cfg.Headers) {
		if ck := textproto.CanonicalMIMEHeaderKey(k); !written[ck] {
			fmt.Fprintf(&msg, "%s: %s\r\n", ck, mime.QEncoding.Encode("utf-8", e.cfg.Headers[k]))
		}
	}
	msg.WriteString("\r\n")
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

// header looks up a configured header, whatever the case of its name.
func (e *Email) header(name string) (string, bool) {
	for k, v := range e.cfg.Headers {
		if textproto.CanonicalMIMEHeaderKey(k) == name {
			return v, true
		}
	}
	return "", false
}

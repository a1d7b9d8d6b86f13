package alerting

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer speaks real SMTP (RFC 5321) over TCP: EHLO, STARTTLS, AUTH
// PLAIN and LOGIN, MAIL, RCPT, DATA, QUIT. It insists on TLS before AUTH
// and AUTH before MAIL when a user is set, like a submission server.
type smtpServer struct {
	ln       net.Listener
	tls      *tls.Config
	implicit bool   // TLS from the first byte
	starttls bool   // offer STARTTLS
	user     string // "" disables AUTH
	pass     string
	rcptCode int // reply to RCPT when not 0 (e.g. 451, 550)

	wg    sync.WaitGroup
	mu    sync.Mutex // protects msgs and conns
	msgs  []smtpMessage
	conns map[net.Conn]bool
}

type smtpMessage struct {
	from     string
	rcpts    []string
	data     []byte
	authUser string
	authMech string
	tls      bool
}

// selfSigned makes a certificate for 127.0.0.1 and its PEM in a file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smtp.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

func startSMTP(t *testing.T, s *smtpServer) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.implicit {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	s.conns = map[net.Conn]bool{}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *smtpServer) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.msgs...)
}

func (s *smtpServer) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	tp := textproto.NewConn(c)
	_, isTLS := c.(*tls.Conn)
	var m smtpMessage
	authed := false
	reply := func(format string, args ...any) bool { return tp.PrintfLine(format, args...) == nil }
	if !reply("220 smtp.test ESMTP ready") {
		return
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			lines := []string{"smtp.test greets " + arg, "8BITMIME"}
			if s.starttls && !isTLS {
				lines = append(lines, "STARTTLS")
			}
			if s.user != "" {
				lines = append(lines, "AUTH PLAIN LOGIN")
			}
			for i, l := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				reply("250%s%s", sep, l)
			}
		case "STARTTLS":
			if !s.starttls || isTLS {
				reply("502 no STARTTLS here")
				continue
			}
			reply("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, isTLS = tc, true
			tp = textproto.NewConn(tc)
			m, authed = smtpMessage{}, false // RFC 3207: forget the session
		case "AUTH":
			if !isTLS {
				reply("538 5.7.11 encryption required for AUTH")
				continue
			}
			mech, ir, _ := strings.Cut(arg, " ")
			var user, pass string
			switch strings.ToUpper(mech) {
			case "PLAIN":
				raw, err := base64.StdEncoding.DecodeString(ir)
				parts := strings.Split(string(raw), "\x00")
				if err != nil || len(parts) != 3 {
					reply("501 bad PLAIN response")
					continue
				}
				user, pass = parts[1], parts[2]
			case "LOGIN":
				read := func(prompt string) string {
					reply("334 %s", base64.StdEncoding.EncodeToString([]byte(prompt)))
					l, _ := tp.ReadLine()
					v, _ := base64.StdEncoding.DecodeString(l)
					return string(v)
				}
				user, pass = read("Username:"), read("Password:")
			default:
				reply("504 unknown mechanism")
				continue
			}
			if user != s.user || pass != s.pass {
				reply("535 5.7.8 authentication credentials invalid")
				continue
			}
			authed, m.authUser, m.authMech = true, user, strings.ToUpper(mech)
			reply("235 2.7.0 authenticated")
		case "MAIL":
			if s.user != "" && !authed {
				reply("530 5.7.0 authentication required")
				continue
			}
			addr, _, _ := strings.Cut(strings.TrimPrefix(arg, "FROM:<"), ">") // drop BODY= and other parameters
			m.from, m.tls = addr, isTLS
			reply("250 ok")
		case "RCPT":
			if s.rcptCode != 0 {
				reply("%d rcpt refused by test", s.rcptCode)
				continue
			}
			m.rcpts = append(m.rcpts, strings.TrimSuffix(strings.TrimPrefix(arg, "TO:<"), ">"))
			reply("250 ok")
		case "DATA":
			if m.from == "" || len(m.rcpts) == 0 {
				reply("503 need MAIL and RCPT")
				continue
			}
			reply("354 end with .")
			data, err := io.ReadAll(tp.DotReader())
			if err != nil {
				return
			}
			m.data = data
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			m = smtpMessage{authUser: m.authUser, authMech: m.authMech}
			reply("250 2.0.0 queued")
		case "RSET":
			m = smtpMessage{authUser: m.authUser, authMech: m.authMech}
			reply("250 ok")
		case "NOOP":
			reply("250 ok")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("500 unknown command")
		}
	}
}

// parsedMail is a received message taken apart with net/mail and
// mime/multipart.
type parsedMail struct {
	header      mail.Header
	subject     string
	text, html  string
	textCT      string
	htmlCT      string
	contentType string
}

func parseMail(t *testing.T, data []byte) parsedMail {
	t.Helper()
	msg, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(string(data))))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, data)
	}
	var p parsedMail
	p.header = msg.Header
	if p.subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Fatalf("subject: %v", err)
	}
	p.contentType = msg.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(p.contentType)
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q (%v)", p.contentType, err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		part, err := mr.NextPart() // decodes quoted-printable
		if err == io.EOF {
			if i != 2 {
				t.Fatalf("%d parts, want 2", i)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			p.text, p.textCT = string(body), part.Header.Get("Content-Type")
		case 1:
			p.html, p.htmlCT = string(body), part.Header.Get("Content-Type")
		}
	}
	return p
}

func emailConfig(addr, caFile string) *EmailConfig {
	return &EmailConfig{
		To: []string{"oncall@example.com", "Ops Team <ops@example.com>"}, From: "vigil@alerts.example.com",
		Smarthost: addr, AuthUsername: "vigil", AuthPassword: "pa55-do-not-leak",
		TLS: TLSConfig{CAFile: caFile}, CommonConfig: CommonConfig{Timeout: 10 * time.Second},
	}
}

func TestEmailSTARTTLSAuthPlainMultipart(t *testing.T) {
	cert, caFile := selfSigned(t)
	s := startSMTP(t, &smtpServer{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, starttls: true, user: "vigil", pass: "pa55-do-not-leak"})
	cfg := emailConfig(s.ln.Addr().String(), caFile)
	cfg.Headers = map[string]string{"X-Team": "sre"}
	e, err := NewEmail(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := testNotification()
	n.GroupLabels["alertname"] = "磁盘将满" // a non-ASCII subject
	n.Alerts[0].Annotations["description"] = `<script>alert("x")</script> & more`
	if err := e.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	msgs := s.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if !m.tls || m.authUser != "vigil" || m.authMech != "PLAIN" || m.from != "vigil@alerts.example.com" ||
		strings.Join(m.rcpts, ",") != "oncall@example.com,ops@example.com" {
		t.Errorf("session: tls %v auth %s/%s from %s rcpts %v", m.tls, m.authUser, m.authMech, m.from, m.rcpts)
	}
	raw := string(m.data)
	if !strings.Contains(raw, "Subject: =?utf-8?q?") {
		t.Errorf("subject is not an encoded word:\n%s", raw[:min(len(raw), 600)])
	}
	p := parseMail(t, m.data)
	if p.subject != "[FIRING:2] 磁盘将满 (job=node)" {
		t.Errorf("subject %q", p.subject)
	}
	if d, err := p.header.Date(); err != nil || time.Since(d) > time.Minute {
		t.Errorf("Date %q (%v)", p.header.Get("Date"), err)
	}
	if id := p.header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@alerts.example.com>") {
		t.Errorf("Message-Id %q", id)
	}
	if p.header.Get("Mime-Version") != "1.0" || p.header.Get("X-Team") != "sre" || p.header.Get("From") != "<vigil@alerts.example.com>" {
		t.Errorf("headers %v", p.header)
	}
	if to, err := p.header.AddressList("To"); err != nil || len(to) != 2 || to[1].Name != "Ops Team" {
		t.Errorf("To %q: %v", p.header.Get("To"), err)
	}
	if p.textCT != "text/plain; charset=UTF-8" || p.htmlCT != "text/html; charset=UTF-8" {
		t.Errorf("part types %q, %q", p.textCT, p.htmlCT)
	}
	for _, want := range []string{"[FIRING:2] 磁盘将满 (job=node)", "Summary: CPU above 90% on a:9100", `Description: <script>alert("x")</script> & more`,
		"instance=b:9100", "Started: 2026-03-04 05:06:07 UTC", "Source: http://vigil.example:9009/graph?g0.expr=up"} {
		if !strings.Contains(p.text, want) {
			t.Errorf("text part lacks %q:\n%s", want, p.text)
		}
	}
	for _, want := range []string{"<h2>[FIRING:2] 磁盘将满 (job=node)</h2>", "<td>instance</td><td>a:9100</td>",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more", `<td><i>runbook</i></td><td>https://runbooks.example/cpu</td>`,
		`<a href="http://vigil.example:9009/graph?g0.expr=up">`} {
		if !strings.Contains(p.html, want) {
			t.Errorf("html part lacks %q:\n%s", want, p.html)
		}
	}
	if strings.Contains(p.html, "<script>") {
		t.Error("html part is not escaped")
	}
}

func TestEmailImplicitTLSAuthLogin(t *testing.T) {
	cert, caFile := selfSigned(t)
	s := startSMTP(t, &smtpServer{tls: &tls.Config{Certificates: []tls.Certificate{cert}}, implicit: true, user: "vigil", pass: "pa55-do-not-leak"})
	cfg := emailConfig(s.ln.Addr().String(), caFile)
	yes := true
	cfg.ImplicitTLS, cfg.AuthMechanism = &yes, "LOGIN"
	cfg.Subject = `{{ .Status }} {{ len .Alerts }}`
	cfg.SendResolved = &yes
	e, err := NewEmail(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Send(context.Background(), resolvedNotification()); err != nil {
		t.Fatal(err)
	}
	msgs := s.messages()
	if len(msgs) != 1 || msgs[0].authMech != "LOGIN" || !msgs[0].tls {
		t.Fatalf("messages %+v", msgs)
	}
	if p := parseMail(t, msgs[0].data); p.subject != "resolved 2" || !strings.Contains(p.text, "Ended: 2026-03-04 05:16:07 UTC") {
		t.Errorf("subject %q, text:\n%s", p.subject, p.text)
	}
}

func TestEmailFailures(t *testing.T) {
	cert, caFile := selfSigned(t)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	tests := []struct {
		name      string
		server    *smtpServer
		edit      func(*EmailConfig)
		retryable bool
		status    int
		want      string
	}{
		{"starttls required, not offered", &smtpServer{user: "vigil", pass: "x"}, nil, false, 0, "does not offer STARTTLS"},
		{"no AUTH without TLS", &smtpServer{user: "vigil", pass: "x"},
			func(c *EmailConfig) { c.StartTLS = "opportunistic" }, false, 0, "refusing AUTH"},
		{"wrong password", &smtpServer{tls: tlsCfg, starttls: true, user: "vigil", pass: "other"}, nil, false, 535, "535"},
		{"untrusted certificate", &smtpServer{tls: tlsCfg, starttls: true, user: "vigil", pass: "pa55-do-not-leak"},
			func(c *EmailConfig) { c.TLS.CAFile = "" }, true, 0, "certificate"},
		{"transient RCPT failure", &smtpServer{tls: tlsCfg, starttls: true, user: "vigil", pass: "pa55-do-not-leak", rcptCode: 451}, nil, true, 451, "451"},
		{"permanent RCPT failure", &smtpServer{tls: tlsCfg, starttls: true, user: "vigil", pass: "pa55-do-not-leak", rcptCode: 550}, nil, false, 550, "550"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startSMTP(t, tt.server)
			cfg := emailConfig(s.ln.Addr().String(), caFile)
			if tt.edit != nil {
				tt.edit(cfg)
			}
			e, err := NewEmail(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			de := asDeliveryError(t, e.Send(context.Background(), testNotification()))
			if de.Retryable != tt.retryable || de.Status != tt.status || !strings.Contains(de.Error(), tt.want) {
				t.Errorf("got %v (retryable %v status %d); want %q retryable %v status %d", de, de.Retryable, de.Status, tt.want, tt.retryable, tt.status)
			}
			if strings.Contains(de.Error(), "pa55") || !strings.Contains(de.Error(), "email smtp://127.0.0.1:") {
				t.Errorf("error %s", de)
			}
			if len(s.messages()) != 0 {
				t.Error("a message was accepted")
			}
		})
	}
}

func TestEmailSendResolvedDefaultOff(t *testing.T) {
	// No server at all: with send_resolved false by default, nothing is sent.
	e, err := NewEmail(&EmailConfig{To: []string{"a@example.com"}, From: "b@example.com", Smarthost: "127.0.0.1:1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Send(context.Background(), resolvedNotification()); err != nil {
		t.Fatalf("resolved notification with send_resolved false: %v", err)
	}
	if got := fmt.Sprintf("%v", e); got != "email(smtp://127.0.0.1:1 to a@example.com)" {
		t.Errorf("%%v = %s", got)
	}
}

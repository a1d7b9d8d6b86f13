package alerting

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
)

const redacted = "<secret>"

// Secret is a configuration value that must not be shown: a password, an
// access token, a signing key. Every way of rendering it (YAML, JSON, fmt
// with any verb, slog) gives "<secret>", or "" when it is empty. The value
// itself is only reachable by converting it: string(s).
//
// fmt cannot call these methods on a Secret inside an unexported struct
// field, so types that keep secrets in unexported fields (the channels)
// implement fmt.Formatter themselves.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString covers %#v.
func (s Secret) GoString() string { return s.String() }

// Format covers every fmt verb, including %q and %x.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// LogValue covers log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML renders the redacted value; a marshalled config can be shown
// but not used to restore the secret.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON renders the redacted value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText covers encoders that use encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// URL is an endpoint URL that may carry secrets (a DingTalk access_token,
// a WeCom key, a password in the user info). It renders with every query
// value and the password replaced by "<secret>"; the value is string(u).
type URL string

func (u URL) String() string { return redactURL(string(u)) }

// GoString covers %#v.
func (u URL) GoString() string { return u.String() }

// Format covers every fmt verb.
func (u URL) Format(f fmt.State, _ rune) { fmt.Fprint(f, u.String()) }

// LogValue covers log/slog.
func (u URL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// MarshalYAML renders the redacted URL.
func (u URL) MarshalYAML() (any, error) { return u.String(), nil }

// MarshalJSON renders the redacted URL.
func (u URL) MarshalJSON() ([]byte, error) { return json.Marshal(u.String()) }

// MarshalText covers encoders that use encoding.TextMarshaler.
func (u URL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// redactURL replaces the password and every query value of raw by
// "<secret>". A string that does not parse as a URL is redacted whole: it
// may be anything.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "SECRETPLACEHOLDER")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		var parts []string
		for _, k := range sortedKeys(q) {
			for range q[k] {
				parts = append(parts, url.QueryEscape(k)+"=SECRETPLACEHOLDER")
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	u.Fragment = ""
	u.RawFragment = ""
	return strings.ReplaceAll(u.String(), "SECRETPLACEHOLDER", redacted)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// The configuration types render through their JSON form in fmt, so that
// printing one, or anything holding one, with any verb shows secrets
// redacted. (fmt does not call a Secret's methods for a field it reaches
// while reporting a bad verb, e.g. %s of a pointer; these methods stop
// fmt before it gets there.)
func formatJSON(f fmt.State, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(f, "%%!(%T: %v)", v, err)
		return
	}
	f.Write(b)
}

func (c Config) Format(f fmt.State, _ rune)             { formatJSON(f, c) }
func (r Receiver) Format(f fmt.State, _ rune)           { formatJSON(f, r) }
func (c WebhookConfig) Format(f fmt.State, _ rune)      { formatJSON(f, c) }
func (c DingTalkConfig) Format(f fmt.State, _ rune)     { formatJSON(f, c) }
func (c WeComConfig) Format(f fmt.State, _ rune)        { formatJSON(f, c) }
func (c WeComAppConfig) Format(f fmt.State, _ rune)     { formatJSON(f, c) }
func (c EmailConfig) Format(f fmt.State, _ rune)        { formatJSON(f, c) }
func (c AlertmanagerConfig) Format(f fmt.State, _ rune) { formatJSON(f, c) }

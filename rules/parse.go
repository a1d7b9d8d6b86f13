package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const (
	// MaxGroupBytes is the largest stored value of one group (its YAML).
	// etcd refuses requests over 1.5 MiB by default; the rest is headroom
	// for the key and the other operations of a transaction.
	MaxGroupBytes = 1 << 20
	// MaxNameBytes is the longest namespace or group name.
	MaxNameBytes = 200
)

var (
	// ErrInvalid wraps every refusal of a rule file, a group or a name:
	// the caller's input is wrong (HTTP 400).
	ErrInvalid = errors.New("invalid rules")
	// ErrNotFound is returned for a namespace or group that has no key.
	ErrNotFound = errors.New("not found")
	// ErrConflict is returned when a namespace kept changing under a
	// replacement (other writers) for every attempt.
	ErrConflict = errors.New("namespace changed concurrently")
)

// FileError is a rule file, or a stored group value, that does not pass
// Prometheus' checks. Each error is rulefmt's, which starts with
// "line:col: " where rulefmt knows the position (YAML syntax errors carry
// "line N" only, as in promtool's output).
type FileError struct {
	File string  // the file's name, "" for an HTTP body or a stored value
	Errs []error // at least one
}

func (e *FileError) Error() string {
	var b strings.Builder
	for i, err := range e.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		msg := err.Error()
		if e.File != "" {
			b.WriteString(e.File)
			if msg != "" && msg[0] >= '0' && msg[0] <= '9' {
				b.WriteByte(':') // "file.yml:12:5: ..."
			} else {
				b.WriteString(": ")
			}
		}
		b.WriteString(msg)
	}
	return b.String()
}

// Is makes every FileError an ErrInvalid.
func (e *FileError) Is(target error) bool { return target == ErrInvalid }

// Unwrap returns the individual errors.
func (e *FileError) Unwrap() []error { return e.Errs }

// ParseFile parses and checks a Prometheus rule file as `promtool check
// rules` does (rulefmt.Parse: strict fields, PromQL parse of every expr,
// template checks of labels and annotations, unique group names), and adds
// Vigil's checks: group names usable as names in etcd keys and URLs
// (ValidateName), and a single YAML document (Prometheus would silently
// ignore the others). Metric and label names are checked as legacy
// Prometheus names, the names Vigil stores (docs/api.md), which is also
// what promtool 2.x checks; Prometheus 3 would accept UTF-8 names. name
// prefixes the errors; it may be "". An empty file parses to no groups.
func ParseFile(name string, b []byte) (*rulefmt.RuleGroups, error) {
	rgs, errs := rulefmt.Parse(b, false, model.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		errs = fillPositions(b, dedupErrors(errs))
	} else {
		errs = append(errs, checkDocuments(b)...)
		errs = append(errs, checkGroupNames(b)...)
	}
	if len(errs) > 0 {
		return nil, &FileError{File: name, Errs: errs}
	}
	return rgs, nil
}

// dedupErrors drops repeated messages: rulefmt decodes the file twice and
// reports a YAML error of both decodes.
func dedupErrors(errs []error) []error {
	seen := map[string]bool{}
	out := errs[:0:0]
	for _, err := range errs {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	return out
}

// posError is a rulefmt error that said "0:0:" with the position rulefmt
// lost: the rule's, or the repeated group name's.
type posError struct {
	line, col int
	err       error
}

func (e *posError) Error() string {
	return fmt.Sprintf("%d:%d: %s", e.line, e.col, strings.TrimPrefix(e.err.Error(), "0:0: "))
}

func (e *posError) Unwrap() error { return e.err }

// fillPositions replaces the "0:0:" that rulefmt v0.315 reports for a
// repeated group name and for a rule missing a field with the position of
// the name or the rule, found in a second YAML parse.
func fillPositions(b []byte, errs []error) []error {
	var doc struct {
		Groups []yaml.Node `yaml:"groups"`
	}
	if yaml.Unmarshal(b, &doc) != nil {
		return errs
	}
	groups := make([]groupNodes, len(doc.Groups))
	var repeated []yaml.Node // groups whose name was seen before, in file order
	seen := map[string]bool{}
	for i, n := range doc.Groups {
		_ = n.Decode(&groups[i])
		if name := groups[i].Name.Value; seen[name] {
			repeated = append(repeated, n) // the group, as promtool reports it
		} else {
			seen[name] = true
		}
	}
	out := make([]error, 0, len(errs))
	for _, err := range errs {
		if !strings.HasPrefix(err.Error(), "0:0: ") {
			out = append(out, err)
			continue
		}
		var rerr *rulefmt.Error
		switch {
		case errors.As(err, &rerr):
			if n := ruleNode(groups, rerr.Group, rerr.Rule); n != nil {
				err = &posError{line: n.Line, col: n.Column, err: err}
			}
		case strings.Contains(err.Error(), "is repeated in the same file") && len(repeated) > 0:
			err = &posError{line: repeated[0].Line, col: repeated[0].Column, err: err}
			repeated = repeated[1:]
		}
		out = append(out, err)
	}
	return out
}

// groupNodes is a group's name and rules as YAML nodes, for positions.
type groupNodes struct {
	Name  yaml.Node   `yaml:"name"`
	Rules []yaml.Node `yaml:"rules"`
}

// ruleNode is the node of rule number rule (from 1) of the first group
// named group, or nil.
func ruleNode(groups []groupNodes, group string, rule int) *yaml.Node {
	for i := range groups {
		if groups[i].Name.Value == group {
			if rule >= 1 && rule <= len(groups[i].Rules) {
				return &groups[i].Rules[rule-1]
			}
			return nil
		}
	}
	return nil
}

// checkDocuments refuses a second YAML document.
func checkDocuments(b []byte) []error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var first, second yaml.Node
	if err := dec.Decode(&first); err != nil {
		return nil // empty, or an error rulefmt has reported
	}
	if err := dec.Decode(&second); errors.Is(err, io.EOF) {
		return nil
	} else if err != nil {
		return []error{err}
	}
	return []error{fmt.Errorf("%d:%d: a second YAML document: a rule file is one document (Prometheus ignores all but the first)", second.Line, second.Column)}
}

// checkGroupNames applies ValidateName to every group name, with the
// name's position. rulefmt has checked that the names are present and
// unique.
func checkGroupNames(b []byte) []error {
	var doc struct {
		Groups []struct {
			Name yaml.Node `yaml:"name"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return []error{err}
	}
	var errs []error
	for _, g := range doc.Groups {
		if g.Name.Value == "" {
			continue // rulefmt reports it
		}
		if err := ValidateName(g.Name.Value); err != nil {
			errs = append(errs, fmt.Errorf("%d:%d: group name %q: %w", g.Name.Line, g.Name.Column, g.Name.Value, err))
		}
	}
	return errs
}

// ValidateName checks a namespace or group name: 1 to MaxNameBytes bytes of
// UTF-8 without '/' and control characters, and not "." or "..". Any other
// character is allowed: keys and URLs carry names path-escaped
// (url.PathEscape), so "team a" is the key segment "team%20a".
func ValidateName(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxNameBytes:
		return fmt.Errorf("%d bytes, over the limit of %d", len(s), MaxNameBytes)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.Contains(s, "/"):
		return errors.New("contains '/'")
	case s == "." || s == "..":
		return errors.New(`"." and ".." are not names`)
	case strings.ContainsFunc(s, unicode.IsControl):
		return errors.New("contains a control character")
	}
	return nil
}

// escapeName is a name as one segment of a key or URL path.
func escapeName(s string) string { return url.PathEscape(s) }

// unescapeName reverses escapeName and accepts only its canonical output,
// so that one name has one key.
func unescapeName(seg string) (string, error) {
	s, err := url.PathUnescape(seg)
	if err != nil {
		return "", err
	}
	if escapeName(s) != seg {
		return "", fmt.Errorf("%q is not the canonical escaping of %q", seg, s)
	}
	return s, ValidateName(s)
}

// EncodeGroupValue is the stored value of a group: a rule file holding
// that one group, so `etcdctl get --print-value-only KEY | promtool check
// rules` works. Comments and formatting of the uploaded file are not kept.
func EncodeGroupValue(g rulefmt.RuleGroup) ([]byte, error) {
	b, err := marshalYAML(rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{g}})
	if err != nil {
		return nil, fmt.Errorf("encode group %q: %w", g.Name, err)
	}
	return b, nil
}

// marshalYAML is yaml.Marshal with the 2-space indentation of Prometheus'
// documentation.
func marshalYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// DecodeGroupValue decodes and checks a stored value: at most
// MaxGroupBytes, a rule file that ParseFile accepts, with exactly one group.
func DecodeGroupValue(b []byte) (rulefmt.RuleGroup, error) {
	if len(b) > MaxGroupBytes {
		return rulefmt.RuleGroup{}, fmt.Errorf("%w: value of %d bytes, over the limit of %d", ErrInvalid, len(b), MaxGroupBytes)
	}
	rgs, err := ParseFile("", b)
	if err != nil {
		return rulefmt.RuleGroup{}, err
	}
	if len(rgs.Groups) != 1 {
		return rulefmt.RuleGroup{}, fmt.Errorf("%w: value holds %d groups, want exactly one", ErrInvalid, len(rgs.Groups))
	}
	return rgs.Groups[0], nil
}

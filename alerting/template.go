package alerting

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"regexp"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

// templateFuncs are Alertmanager's template functions (the ones that make
// sense without its template files), so that users can copy templates.
func templateFuncs() map[string]any {
	return map[string]any{
		"toUpper":   strings.ToUpper,
		"toLower":   strings.ToLower,
		"title":     title,
		"trimSpace": strings.TrimSpace,
		// join takes the separator first, as in Alertmanager, so that
		// {{ .Values | join ", " }} reads naturally.
		"join": func(sep string, s []string) string { return strings.Join(s, sep) },
		"match": func(pattern, s string) (bool, error) {
			return regexp.MatchString(pattern, s)
		},
		"reReplaceAll": func(pattern, repl, text string) (string, error) {
			re, err := regexp.Compile(pattern)
			if err != nil {
				return "", err
			}
			return re.ReplaceAllString(text, repl), nil
		},
		"safeHtml":    func(s string) htmltemplate.HTML { return htmltemplate.HTML(s) },
		"stringSlice": func(s ...string) []string { return s },
		"date": func(layout string, t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return t.UTC().Format(layout)
		},
		"since": func(t time.Time) time.Duration { return time.Since(t).Round(time.Second) },
		"humanizeDuration": func(d time.Duration) string {
			return d.Round(time.Second).String()
		},
	}
}

// title upper-cases the first letter of each word (strings.Title without
// its deprecation).
func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		defer func() { prev = r }()
		if unicode.IsSpace(prev) || prev == '-' || prev == '_' {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

// The default templates, shared by every channel. A per-config override is
// a template body that may call them: {{ template "vigil.title" . }}.
const defaultTextTemplates = `
{{- define "vigil.title" -}}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}] {{ or .GroupLabels.alertname .CommonLabels.alertname }}
{{- with .GroupLabels.Remove (stringSlice "alertname") }}{{ if . }} ({{ range $i, $p := .SortedPairs }}{{ if $i }}, {{ end }}{{ $p.Name }}={{ $p.Value }}{{ end }}){{ end }}{{ end }}
{{- end -}}

{{- define "vigil.text" -}}
{{ template "vigil.title" . }}
{{ range .Alerts }}
[{{ .Status | toUpper }}] {{ .Labels.alertname }}
{{- with .Annotations.summary }}
Summary: {{ . }}{{ end }}
{{- with .Annotations.description }}
Description: {{ . }}{{ end }}
Labels: {{ .Labels.SortedPairs }}
{{- with .Annotations.Remove (stringSlice "summary" "description") }}{{ if . }}
Annotations: {{ .SortedPairs }}{{ end }}{{ end }}
Started: {{ .StartsAt | date "2006-01-02 15:04:05 UTC" }}
{{- if eq .Status "resolved" }}
Ended: {{ .EndsAt | date "2006-01-02 15:04:05 UTC" }}{{ end }}
{{- with .GeneratorURL }}
Source: {{ . }}{{ end }}
{{ end }}
{{- if .TruncatedAlerts }}
... and {{ .TruncatedAlerts }} more alert(s)
{{ end }}
{{- with .ExternalURL }}
{{ . }}
{{ end }}
{{- end -}}

{{- define "vigil.markdown" -}}
### {{ template "vigil.title" . }}
{{ range .Alerts }}
**[{{ .Status | toUpper }}] {{ .Labels.alertname }}**
{{- with .Annotations.summary }}
> {{ . }}{{ end }}
{{- with .Annotations.description }}
> {{ . }}{{ end }}
- Labels: {{ range $i, $p := .Labels.SortedPairs }}{{ if $i }}, {{ end }}{{ $p.Name }}={{ $p.Value }}{{ end }}
{{- with .Annotations.Remove (stringSlice "summary" "description") }}{{ if . }}
- Annotations: {{ range $i, $p := .SortedPairs }}{{ if $i }}, {{ end }}{{ $p.Name }}={{ $p.Value }}{{ end }}{{ end }}{{ end }}
- Started: {{ .StartsAt | date "2006-01-02 15:04:05 UTC" }}
{{- if eq .Status "resolved" }}
- Ended: {{ .EndsAt | date "2006-01-02 15:04:05 UTC" }}{{ end }}
{{- with .GeneratorURL }}
- [Source]({{ . }}){{ end }}
{{ end }}
{{- if .TruncatedAlerts }}
... and {{ .TruncatedAlerts }} more alert(s)
{{ end }}
{{- end -}}
`

const defaultHTMLTemplates = `
{{- define "vigil.title" -}}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ len .Alerts.Firing }}{{ end }}] {{ or .GroupLabels.alertname .CommonLabels.alertname }}
{{- with .GroupLabels.Remove (stringSlice "alertname") }}{{ if . }} ({{ range $i, $p := .SortedPairs }}{{ if $i }}, {{ end }}{{ $p.Name }}={{ $p.Value }}{{ end }}){{ end }}{{ end }}
{{- end -}}

{{- define "vigil.html" -}}
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ template "vigil.title" . }}</title></head>
<body style="font-family: sans-serif">
<h2>{{ template "vigil.title" . }}</h2>
{{ range .Alerts }}
<table style="border-collapse: collapse; margin-bottom: 1em" border="1" cellpadding="4">
<tr><th colspan="2" style="background: {{ if eq .Status "firing" }}#f8d7da{{ else }}#d4edda{{ end }}">[{{ .Status | toUpper }}] {{ .Labels.alertname }}</th></tr>
{{ range .Labels.SortedPairs }}<tr><td>{{ .Name }}</td><td>{{ .Value }}</td></tr>
{{ end }}{{ range .Annotations.SortedPairs }}<tr><td><i>{{ .Name }}</i></td><td>{{ .Value }}</td></tr>
{{ end }}<tr><td>started</td><td>{{ .StartsAt | date "2006-01-02 15:04:05 UTC" }}</td></tr>
{{ if eq .Status "resolved" }}<tr><td>ended</td><td>{{ .EndsAt | date "2006-01-02 15:04:05 UTC" }}</td></tr>
{{ end }}{{ with .GeneratorURL }}<tr><td>source</td><td><a href="{{ . }}">{{ . }}</a></td></tr>
{{ end }}</table>
{{ end }}
{{ if .TruncatedAlerts }}<p>... and {{ .TruncatedAlerts }} more alert(s)</p>{{ end }}
{{ with .ExternalURL }}<p><a href="{{ . }}">{{ . }}</a></p>{{ end }}
</body></html>
{{- end -}}
`

// Default template bodies for the per-config fields.
const (
	defaultTitle    = `{{ template "vigil.title" . }}`
	defaultText     = `{{ template "vigil.text" . }}`
	defaultMarkdown = `{{ template "vigil.markdown" . }}`
	defaultHTML     = `{{ template "vigil.html" . }}`
)

// textTemplate is a compiled text template body.
type textTemplate struct{ t *texttemplate.Template }

// htmlTemplate is a compiled html/template body (auto-escaping).
type htmlTemplate struct{ t *htmltemplate.Template }

// parseText compiles body with the default templates, and executes it on a
// sample notification so that a reference to a field that does not exist
// fails at config load rather than at the first alert.
func parseText(body string) (*textTemplate, error) {
	t, err := texttemplate.New("defaults").Funcs(templateFuncs()).Parse(defaultTextTemplates)
	if err != nil {
		return nil, fmt.Errorf("default templates: %w", err)
	}
	if t, err = t.New("body").Parse(body); err != nil {
		return nil, err
	}
	tt := &textTemplate{t}
	if _, err := tt.execute(sampleNotification()); err != nil {
		return nil, err
	}
	return tt, nil
}

func parseHTML(body string) (*htmlTemplate, error) {
	t, err := htmltemplate.New("defaults").Funcs(templateFuncs()).Parse(defaultHTMLTemplates)
	if err != nil {
		return nil, fmt.Errorf("default templates: %w", err)
	}
	if t, err = t.New("body").Parse(body); err != nil {
		return nil, err
	}
	ht := &htmlTemplate{t}
	if _, err := ht.execute(sampleNotification()); err != nil {
		return nil, err
	}
	return ht, nil
}

func (t *textTemplate) execute(n *Notification) (string, error) {
	var b limitedBuffer
	if err := t.t.ExecuteTemplate(&b, "body", n); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (t *htmlTemplate) execute(n *Notification) (string, error) {
	var b limitedBuffer
	if err := t.t.ExecuteTemplate(&b, "body", n); err != nil {
		return "", err
	}
	return b.String(), nil
}

// maxRendered bounds a rendered template: every channel truncates far
// below it, and a runaway template must not take the memory.
const maxRendered = 1 << 20

var errTooLong = fmt.Errorf("template output longer than %d bytes", maxRendered)

type limitedBuffer struct{ bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if l.Len()+len(p) > maxRendered {
		return 0, errTooLong
	}
	return l.Buffer.Write(p)
}

// sampleNotification is what templates are tried on at config load.
func sampleNotification() *Notification {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &Notification{
		Receiver: "sample", Status: StatusFiring, GroupKey: "{}:{alertname=\"Sample\"}",
		ExternalURL:       "http://vigil.example:9009",
		GroupLabels:       KV{"alertname": "Sample", "job": "node"},
		CommonLabels:      KV{"alertname": "Sample", "job": "node"},
		CommonAnnotations: KV{"summary": "sample"},
		Alerts: Alerts{
			{Status: StatusFiring, Labels: KV{"alertname": "Sample", "job": "node", "instance": "a:9100"},
				Annotations: KV{"summary": "sample"}, StartsAt: t0, GeneratorURL: "http://vigil.example/graph", Fingerprint: "0123456789abcdef"},
			{Status: StatusResolved, Labels: KV{"alertname": "Sample", "job": "node", "instance": "b:9100"},
				Annotations: KV{"summary": "sample"}, StartsAt: t0, EndsAt: t0.Add(time.Minute), Fingerprint: "fedcba9876543210"},
		},
		TruncatedAlerts: 1,
	}
}

// truncateUTF8 returns s cut to at most max bytes on a rune boundary, with
// marker at the end when it was cut (the marker counts towards max).
func truncateUTF8(s string, max int, marker string) string {
	if len(s) <= max {
		return s
	}
	if max <= 0 {
		return ""
	}
	if len(marker) >= max {
		marker = ""
	}
	cut := max - len(marker)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + marker
}

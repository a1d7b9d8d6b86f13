package collector

// The /targets page of a collector (docs/collector.md "/targets"): every
// registry target with its owner and, for those scraped here, the scraper's
// status; as HTML and as Prometheus' /api/v1/targets JSON.

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	pmodel "github.com/prometheus/common/model"
)

// TargetInfo is one registry target as a collector's /targets page shows it.
type TargetInfo struct {
	Key      string        // job + "/" + id: the target's identity in sharding
	Target   Target        // resolved (job defaults applied)
	Owner    string        // the collector that owns it now; "" when no collector is available
	OwnerURL string        // that collector's HTTP base URL (http://host:port) when known, else ""
	State    string        // on this collector: "scraping", "handing over", "stopping", or "" (not scraped here)
	Local    *TargetStatus // this collector's scraper status; nil when it does not scrape the target
}

// TargetsHandler serves the targets of collector self, as list returns
// them, on every GET or HEAD path; list is called once per request, from
// the request's goroutine, and its result is not modified.
//
//	…/api/v1/targets   Prometheus' JSON; only targets scraped here unless ?scope=all
//	any other path     an HTML page grouped by job; every target unless ?scope=local;
//	                   ?format=json answers the JSON of the same selection
//
// Both take scope=local|all, job=<name> (or Prometheus' scrapePool=<name>)
// and Prometheus' state=active|dropped|any; there are no dropped targets.
func TargetsHandler(self string, list func() []TargetInfo) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		q := r.URL.Query()
		api := strings.HasSuffix(r.URL.Path, "/api/v1/targets")
		asJSON := api || q.Get("format") == "json"
		sel, err := parseTargetsQuery(q, !api)
		if err == nil && !api && q.Get("format") != "" && !asJSON {
			err = fmt.Errorf("format %q: want json or nothing (HTML)", q.Get("format"))
		}
		if err != nil {
			if asJSON {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": err.Error()})
				return
			}
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		targets := selectTargets(list(), sel)
		if asJSON {
			active := make([]apiTarget, 0, len(targets))
			for _, ti := range targets {
				active = append(active, newAPITarget(ti))
			}
			writeRegistryData(w, http.StatusOK, map[string]any{"activeTargets": active, "droppedTargets": []struct{}{}})
			return
		}
		writeTargetsPage(w, self, q, sel, targets)
	})
}

// targetsQuery is what a request selects.
type targetsQuery struct {
	all    bool   // every registry target, not only those scraped here
	job    string // one job; "" for all
	active bool   // Prometheus' state asks for active targets
}

func parseTargetsQuery(q url.Values, defaultAll bool) (targetsQuery, error) {
	sel := targetsQuery{all: defaultAll, job: cmp.Or(q.Get("job"), q.Get("scrapePool"))}
	switch s := q.Get("scope"); s {
	case "":
	case "local", "all":
		sel.all = s == "all"
	default:
		return sel, fmt.Errorf("scope %q: want local or all", s)
	}
	switch s := strings.ToLower(q.Get("state")); s {
	case "", "any", "active":
		sel.active = true
	case "dropped":
	default:
		return sel, fmt.Errorf("state %q: want active, dropped or any", s)
	}
	return sel, nil
}

// selectTargets returns the targets sel selects, by job then key, in a new
// slice.
func selectTargets(list []TargetInfo, sel targetsQuery) []TargetInfo {
	var out []TargetInfo
	for _, ti := range list {
		if sel.active && (sel.all || ti.State != "") && (sel.job == "" || ti.Target.Job == sel.job) {
			out = append(out, ti)
		}
	}
	slices.SortFunc(out, func(a, b TargetInfo) int {
		return cmp.Or(cmp.Compare(a.Target.Job, b.Target.Job), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// apiTarget is Prometheus' active target, plus Vigil's fields after
// ScrapeTimeout. The HTML page renders the same values.
type apiTarget struct {
	DiscoveredLabels   map[string]string `json:"discoveredLabels"`
	Labels             map[string]string `json:"labels"`
	ScrapePool         string            `json:"scrapePool"`
	ScrapeURL          string            `json:"scrapeUrl"`
	GlobalURL          string            `json:"globalUrl"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	Health             Health            `json:"health"`
	ScrapeInterval     string            `json:"scrapeInterval"`
	ScrapeTimeout      string            `json:"scrapeTimeout"`

	Owner     string `json:"owner"`
	OwnerURL  string `json:"ownerUrl"`
	State     string `json:"state"`
	Series    int    `json:"series"`
	PushError string `json:"pushError"`
}

// newAPITarget takes the scrape URL and labels from the scraper when there
// is one (what is being scraped), else from the registry target.
func newAPITarget(ti TargetInfo) apiTarget {
	t := ti.Target
	a := apiTarget{
		DiscoveredLabels: map[string]string{
			"__address__": t.Address, "__metrics_path__": t.MetricsPath, "__scheme__": t.Scheme, "job": t.Job,
		},
		Labels:         targetLabels(t).Map(),
		ScrapePool:     t.Job,
		ScrapeURL:      t.URL().String(),
		Health:         HealthUnknown,
		ScrapeInterval: pmodel.Duration(t.Interval).String(),
		ScrapeTimeout:  pmodel.Duration(t.Timeout).String(),
		Owner:          ti.Owner,
		OwnerURL:       ti.OwnerURL,
		State:          ti.State,
	}
	if s := ti.Local; s != nil {
		a.ScrapeURL = cmp.Or(s.ScrapeURL, a.ScrapeURL)
		if !s.Labels.IsEmpty() {
			a.Labels = s.Labels.Map()
		}
		a.Health = cmp.Or(s.Health, HealthUnknown)
		a.LastError, a.PushError = s.LastError, s.PushError
		a.LastScrape = s.LastScrape
		a.LastScrapeDuration = s.LastDuration.Seconds()
		a.Series = s.Series
	}
	a.GlobalURL = a.ScrapeURL
	return a
}

type targetsPage struct {
	Self                string
	All                 bool
	Job                 string
	ScopeLink, JobsLink string // the other scope; every job
	JSONLink            string
	Total               int
	Groups              []targetsGroup
}

type targetsGroup struct {
	Job, Link string
	Up        int
	Targets   []apiTarget
}

func writeTargetsPage(w http.ResponseWriter, self string, q url.Values, sel targetsQuery, targets []TargetInfo) {
	link := func(key, value string) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Del("scrapePool")
		v.Del(key)
		if value != "" {
			v.Set(key, value)
		}
		return "?" + v.Encode()
	}
	otherScope := "all"
	if sel.all {
		otherScope = "local"
	}
	p := targetsPage{
		Self: self, All: sel.all, Job: sel.job, Total: len(targets),
		ScopeLink: link("scope", otherScope),
		JobsLink:  link("job", ""),
		JSONLink:  link("format", "json"),
	}
	for _, ti := range targets {
		if len(p.Groups) == 0 || p.Groups[len(p.Groups)-1].Job != ti.Target.Job {
			p.Groups = append(p.Groups, targetsGroup{Job: ti.Target.Job, Link: link("job", ti.Target.Job)})
		}
		g := &p.Groups[len(p.Groups)-1]
		g.Targets = append(g.Targets, newAPITarget(ti))
		if g.Targets[len(g.Targets)-1].Health == HealthUp {
			g.Up++
		}
	}
	var buf bytes.Buffer
	if err := targetsTemplate.Execute(&buf, p); err != nil {
		http.Error(w, fmt.Sprintf("render targets page: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

var targetsTemplate = template.Must(template.New("targets").Funcs(template.FuncMap{
	"age": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := max(time.Since(t), 0)
		if d >= time.Minute {
			return d.Round(time.Second).String() + " ago"
		}
		return d.Round(time.Millisecond).String() + " ago"
	},
	"secs": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Targets · {{.Self}}</title>
<style>
body{font-family:sans-serif;margin:1em 2em}
table{border-collapse:collapse;width:100%;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.3em .5em;text-align:left;vertical-align:top;font-size:90%}
.up{color:#070}.down{color:#b00}.unknown{color:#777}.err{color:#b00}
.lbl{display:inline-block;background:#eef;border-radius:3px;padding:0 .3em;margin:1px}
</style></head><body>
<h1>Targets of collector {{.Self}}</h1>
<p>{{if .All}}All registry targets · <a href="{{.ScopeLink}}">only those scraped here</a>{{else}}Targets scraped here · <a href="{{.ScopeLink}}">all registry targets</a>{{end}}
{{- with .Job}} · job {{.}} · <a href="{{$.JobsLink}}">all jobs</a>{{end}} · <a href="{{.JSONLink}}">JSON</a> · {{.Total}} targets</p>
{{range .Groups}}
<h2><a href="{{.Link}}">{{.Job}}</a> ({{.Up}}/{{len .Targets}} up)</h2>
<table>
<tr><th>Endpoint</th><th>Labels</th><th>Owner</th><th>State</th><th>Health</th><th>Last scrape</th><th>Duration</th><th>Series</th><th>Error</th></tr>
{{range .Targets}}<tr>
<td>{{.ScrapeURL}}</td>
<td>{{range $k, $v := .Labels}}<span class="lbl">{{$k}}="{{$v}}"</span> {{end}}</td>
<td>{{if not .Owner}}none{{else if eq .Owner $.Self}}this collector{{else if .OwnerURL}}<a href="{{.OwnerURL}}/targets">{{.Owner}}</a>{{else}}{{.Owner}}{{end}}</td>
<td>{{or .State "not scraped here"}}</td>
<td class="{{.Health}}">{{.Health}}</td>
<td>{{age .LastScrape}}</td>
<td>{{if not .LastScrape.IsZero}}{{secs .LastScrapeDuration}}{{end}}</td>
<td>{{if .State}}{{.Series}}{{end}}</td>
<td class="err">{{with .LastError}}<div>{{.}}</div>{{end}}{{with .PushError}}<div>push: {{.}}</div>{{end}}</td>
</tr>
{{end}}</table>
{{else}}<p>No targets.</p>
{{end}}</body></html>
`))

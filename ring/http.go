package ring

import (
	"encoding/json"
	"errors"
	"html/template"
	"maps"
	"net/http"
	"strings"
	"time"
)

// memberView is one row of /ring.
type memberView struct {
	Member
	Roles           []string       `json:"roles"`
	State           string         `json:"state"`
	PartitionsOwned map[string]int `json:"partitions_owned"`
	HeartbeatAge    string         `json:"heartbeat_age"`
	HeartbeatAgeSec float64        `json:"heartbeat_age_seconds"`
}

type ringView struct {
	Local      string       `json:"local"`
	Partitions int          `json:"partitions"`
	Members    []memberView `json:"members"`
	Message    string       `json:"message,omitempty"`
	// Status is what the local node's components report (e.g. "repair").
	Status map[string]any `json:"status,omitempty"`
	// StatusText is Status as indented JSON, for the HTML page.
	StatusText string `json:"-"`
}

// AddStatus makes /ring show what fn returns under name, for the local
// node (a component's progress, such as repair's last round).
func (c *Cluster) AddStatus(name string, fn func() any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status == nil {
		c.status = map[string]func() any{}
	}
	c.status[name] = fn
}

func (c *Cluster) view(now time.Time) ringView {
	v := ringView{Local: c.cfg.NodeName, Partitions: c.cfg.Partitions}
	c.mu.Lock()
	status := maps.Clone(c.status)
	c.mu.Unlock()
	for name, fn := range status {
		if v.Status == nil {
			v.Status = map[string]any{}
		}
		v.Status[name] = fn()
	}
	if v.Status != nil {
		b, _ := json.MarshalIndent(v.Status, "", "  ")
		v.StatusText = string(b)
	}
	owned := map[Role]map[string]int{}
	for _, r := range AllRoles {
		owned[r] = c.PartitionsOwned(r)
	}
	for _, m := range c.AllMembers() {
		mv := memberView{Member: m, State: m.State.String(), PartitionsOwned: map[string]int{}}
		for _, r := range m.Roles.List() {
			mv.Roles = append(mv.Roles, r.String())
			mv.PartitionsOwned[r.String()] = owned[r][m.Name]
		}
		age := now.Sub(m.LastHeartbeat)
		if m.Name == c.cfg.NodeName {
			age = 0
		}
		mv.HeartbeatAge = age.Round(100 * time.Millisecond).String()
		mv.HeartbeatAgeSec = age.Seconds()
		v.Members = append(v.Members, mv)
	}
	return v
}

var ringPage = template.Must(template.New("ring").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Vigil ring</title>
<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>
</head><body>
<h1>Ring</h1>
<p>This node: {{.Local}}. Partitions per role: {{.Partitions}}.</p>
{{if .Message}}<p><b>{{.Message}}</b></p>{{end}}
<table>
<tr><th>Member</th><th>Roles</th><th>State</th><th>Health</th><th>Zone</th><th>Gossip</th><th>gRPC</th><th>HTTP</th><th>Partitions owned</th><th>Heartbeat age</th><th></th></tr>
{{range .Members}}<tr>
<td>{{.Name}}</td><td>{{range $i, $r := .Roles}}{{if $i}}, {{end}}{{$r}}{{end}}{{if .MetaError}} ({{.MetaError}}){{end}}</td>
<td>{{.State}}</td><td>{{if .Healthy}}alive{{else}}dead{{end}}</td><td>{{.Zone}}</td>
<td>{{.GossipAddr}}</td><td>{{.GRPCAddr}}</td><td>{{.HTTPAddr}}</td>
<td>{{range $r, $n := .PartitionsOwned}}{{$r}}: {{$n}} {{end}}</td><td>{{.HeartbeatAge}}</td>
<td>{{if not .Healthy}}<form method="post"><input type="hidden" name="forget" value="{{.Name}}"><button type="submit">Forget</button></form>{{end}}</td>
</tr>{{end}}
</table>
{{if .StatusText}}<h2>This node</h2><pre>{{.StatusText}}</pre>{{end}}
</body></html>
`))

func wantsJSON(r *http.Request) bool {
	return r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json")
}

// ServeHTTP serves /ring: GET shows the members (HTML, or JSON with
// Accept: application/json or ?format=json); POST with forget=<name>
// forgets a dead member.
func (c *Cluster) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		c.render(w, r, http.StatusOK, "")
	case http.MethodPost:
		name := r.FormValue("forget")
		if name == "" {
			c.render(w, r, http.StatusBadRequest, "missing form field forget=<member name>")
			return
		}
		if err := c.Forget(name); err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, ErrNoSuchMember):
				status = http.StatusNotFound
			case errors.Is(err, ErrMemberAlive):
				status = http.StatusConflict
			case errors.Is(err, ErrClosed):
				status = http.StatusServiceUnavailable
			}
			c.render(w, r, status, err.Error())
			return
		}
		if wantsJSON(r) {
			c.render(w, r, http.StatusOK, "forgot "+name)
			return
		}
		http.Redirect(w, r, r.URL.Path, http.StatusSeeOther)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (c *Cluster) render(w http.ResponseWriter, r *http.Request, status int, msg string) {
	v := c.view(time.Now())
	v.Message = msg
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = ringPage.Execute(w, v)
}

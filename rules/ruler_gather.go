package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Peer is a ruler that Gather asks: its ring name and base URL
// (http://host:port).
type Peer struct {
	Name string
	URL  string
}

// maxPeerAnswer bounds one ruler's answer to Gather.
const maxPeerAnswer = 64 << 20

// Gather serves GET /api/v1/rules and GET /api/v1/alerts in a cluster:
// it asks every ruler peers returns for its own (Handler's /ruler/rules
// and /ruler/alerts, with the request's query) and merges the answers. A
// group evaluated by two rulers (a hand-over's overlap) is shown once,
// from the ruler that evaluated it last; an alert held by two, once (the
// firing one, else the one active longest). A ruler that does not answer
// within timeout is named in the answer's warnings; if none answers the
// request fails (503), and a ruler's refusal of the query (4xx) is
// passed on. No rulers is an empty answer.
func Gather(peers func() []Peer, client *http.Client, timeout time.Duration, logger *slog.Logger) http.Handler {
	g := &gatherer{peers: peers, client: client, timeout: timeout, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/rules", func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, "/ruler/rules", mergeGroups) })
	mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) { g.serve(w, r, "/ruler/alerts", mergeAlerts) })
	return mux
}

type gatherer struct {
	peers   func() []Peer
	client  *http.Client
	timeout time.Duration
	logger  *slog.Logger
}

// peerAnswer is one ruler's data, or why there is none.
type peerAnswer struct {
	peer   Peer
	data   json.RawMessage
	status int // the ruler's refusal (4xx), else 0
	err    error
}

func (g *gatherer) serve(w http.ResponseWriter, r *http.Request, path string, merge func([]json.RawMessage) (any, error)) {
	peers := g.peers()
	answers := make([]peerAnswer, len(peers))
	ctx, cancel := context.WithTimeout(r.Context(), g.timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = g.ask(ctx, p, path+"?"+r.URL.RawQuery)
		}()
	}
	wg.Wait()
	var datas []json.RawMessage
	warnings := []string{}
	for _, a := range answers {
		switch {
		case a.status != 0:
			writeAPIError(w, a.status, fmt.Sprintf("ruler %s: %v", a.peer.Name, a.err))
			return
		case a.err != nil:
			warnings = append(warnings, fmt.Sprintf("ruler %s (%s) did not answer: %v", a.peer.Name, a.peer.URL, a.err))
		default:
			datas = append(datas, a.data)
		}
	}
	if len(peers) > 0 && len(datas) == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": "unavailable",
			"error": "no ruler answered: " + strings.Join(warnings, "; ")})
		return
	}
	for _, msg := range warnings {
		g.logger.Warn("gathering rules: a ruler did not answer", "err", msg)
	}
	out, err := merge(datas)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	resp := map[string]any{"status": "success", "data": out}
	if len(warnings) > 0 {
		resp["warnings"] = warnings
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func (g *gatherer) ask(ctx context.Context, p Peer, pathQuery string) peerAnswer {
	a := peerAnswer{peer: p}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.URL, "/")+pathQuery, nil)
	if err != nil {
		a.err = err
		return a
	}
	resp, err := g.client.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerAnswer+1))
	if err != nil {
		a.err = fmt.Errorf("read answer: %w", err)
		return a
	}
	if len(body) > maxPeerAnswer {
		a.err = fmt.Errorf("answer larger than %d bytes", maxPeerAnswer)
		return a
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		a.err = fmt.Errorf("%s: not an API answer: %w", resp.Status, err)
		return a
	}
	if resp.StatusCode != http.StatusOK || env.Status != "success" {
		a.err = fmt.Errorf("%s: %s", resp.Status, env.Error)
		if resp.StatusCode/100 == 4 {
			a.status = resp.StatusCode
		}
		return a
	}
	a.data = env.Data
	return a
}

// mergeGroups merges {"groups":[...]} answers: one group per file and
// name, the most recently evaluated, sorted by file and name.
func mergeGroups(datas []json.RawMessage) (any, error) {
	type head struct {
		Name           string    `json:"name"`
		File           string    `json:"file"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	type entry struct {
		head
		raw json.RawMessage
	}
	best := map[[2]string]entry{}
	for _, d := range datas {
		var v struct {
			Groups []json.RawMessage `json:"groups"`
		}
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, fmt.Errorf("merge rule groups: %w", err)
		}
		for _, raw := range v.Groups {
			var h head
			if err := json.Unmarshal(raw, &h); err != nil {
				return nil, fmt.Errorf("merge rule groups: %w", err)
			}
			k := [2]string{h.File, h.Name}
			if old, ok := best[k]; !ok || h.LastEvaluation.After(old.LastEvaluation) {
				best[k] = entry{h, raw}
			}
		}
	}
	keys := make([][2]string, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	groups := make([]json.RawMessage, len(keys))
	for i, k := range keys {
		groups[i] = best[k].raw
	}
	return map[string]any{"groups": groups}, nil
}

// mergeAlerts merges {"alerts":[...]} answers: one alert per label set,
// firing before pending, then the earliest activeAt; sorted by labels.
func mergeAlerts(datas []json.RawMessage) (any, error) {
	type head struct {
		Labels   map[string]string `json:"labels"`
		State    string            `json:"state"`
		ActiveAt *time.Time        `json:"activeAt"`
	}
	type entry struct {
		head
		raw json.RawMessage
	}
	better := func(a, b head) bool { // a preferred over b
		if (a.State == "firing") != (b.State == "firing") {
			return a.State == "firing"
		}
		return a.ActiveAt != nil && (b.ActiveAt == nil || a.ActiveAt.Before(*b.ActiveAt))
	}
	best := map[string]entry{}
	for _, d := range datas {
		var v struct {
			Alerts []json.RawMessage `json:"alerts"`
		}
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, fmt.Errorf("merge alerts: %w", err)
		}
		for _, raw := range v.Alerts {
			var h head
			if err := json.Unmarshal(raw, &h); err != nil {
				return nil, fmt.Errorf("merge alerts: %w", err)
			}
			k := labelsKey(h.Labels)
			if old, ok := best[k]; !ok || better(h, old.head) {
				best[k] = entry{h, raw}
			}
		}
	}
	keys := make([]string, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	alerts := make([]json.RawMessage, len(keys))
	for i, k := range keys {
		alerts[i] = best[k].raw
	}
	return map[string]any{"alerts": alerts}, nil
}

func labelsKey(ls map[string]string) string {
	names := make([]string, 0, len(ls))
	for n := range ls {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%q=%q,", n, ls[n])
	}
	return b.String()
}

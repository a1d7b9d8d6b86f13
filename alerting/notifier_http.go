package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// GroupStatus is one aggregation group as GET /api/v1/alerting/groups
// shows it.
type GroupStatus struct {
	Key          string    `json:"key"`
	Receiver     string    `json:"receiver"`
	Labels       KV        `json:"labels"`
	Alerts       Alerts    `json:"alerts"`
	Notified     []string  `json:"notified"` // fingerprints of the firing alerts last notified
	LastNotified time.Time `json:"lastNotified,omitzero"`
	NextFlush    time.Time `json:"nextFlush"`
}

// Groups returns the aggregation groups, sorted by key; the caller owns
// the result.
func (n *Notifier) Groups() []GroupStatus {
	now := n.clock.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]GroupStatus, 0, len(n.groups))
	for _, g := range n.groups {
		gs := GroupStatus{Key: g.key, Receiver: g.route.opts.receiver, Labels: copyKV(g.labels),
			LastNotified: g.lastNotified, NextFlush: g.nextFlush, Alerts: Alerts{}, Notified: []string{}}
		for _, e := range g.alerts {
			a := e.Alert
			a.Status = StatusFiring
			if !e.Expires.After(now) {
				a.Status = StatusResolved
			}
			gs.Alerts = append(gs.Alerts, a)
		}
		slices.SortFunc(gs.Alerts, func(a, b Alert) int { return strings.Compare(a.Fingerprint, b.Fingerprint) })
		for fp := range g.notified {
			gs.Notified = append(gs.Notified, fp)
		}
		slices.Sort(gs.Notified)
		out = append(out, gs)
	}
	slices.SortFunc(out, func(a, b GroupStatus) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// Handler serves the notifier's API under /api/v1/alerting/:
//
//	GET    groups              aggregation groups and their alerts
//	GET    silences            all silences, with their state
//	POST   silences            create one: {"matchers":[...],"startsAt","endsAt","createdBy","comment"} → {"id"}
//	DELETE silences/{id}       expire one
//	GET    dead                dead letters (no secrets: entries hold none)
//	POST   dead/{id}/retry     put a dead letter back in the queue
//	POST   alerts              alerts from a ruler (Notify on another node): the leader ingests them, others answer 503
//	GET    config              the stored configuration, secrets redacted (StoredConfig)
//	PUT    config              store a configuration (YAML body, PutConfig); POST does the same
//	GET    status              this notifier: leading or not, the leader's URL, the configuration in force
//
// Answers are JSON, {"status":"success","data":…} or
// {"status":"error","error":"…"} as Prometheus' API.
func (n *Notifier) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/alerting/groups", func(w http.ResponseWriter, r *http.Request) {
		writeData(w, n.Groups())
	})
	mux.HandleFunc("GET /api/v1/alerting/silences", func(w http.ResponseWriter, r *http.Request) {
		list, err := n.ListSilences(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		now := n.clock.Now()
		type silenceStatus struct {
			*Silence
			State string `json:"state"`
		}
		out := make([]silenceStatus, len(list))
		for i, s := range list {
			out[i] = silenceStatus{s, s.State(now)}
		}
		writeData(w, out)
	})
	mux.HandleFunc("POST /api/v1/alerting/silences", func(w http.ResponseWriter, r *http.Request) {
		var s Silence
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&s); err != nil {
			writeError(w, errors.Join(ErrInvalidSilence, err))
			return
		}
		if s.ID != "" {
			writeError(w, errors.Join(ErrInvalidSilence, errors.New("id is assigned by the server; to change a silence, expire it and create another")))
			return
		}
		id, err := n.CreateSilence(r.Context(), s)
		if err != nil {
			writeError(w, err)
			return
		}
		writeData(w, map[string]string{"id": id})
	})
	mux.HandleFunc("DELETE /api/v1/alerting/silences/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := n.ExpireSilence(r.Context(), r.PathValue("id")); err != nil {
			writeError(w, err)
			return
		}
		writeData(w, nil)
	})
	mux.HandleFunc("GET /api/v1/alerting/dead", func(w http.ResponseWriter, r *http.Request) {
		list, err := n.DeadLetters(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		writeData(w, list)
	})
	mux.HandleFunc("POST /api/v1/alerting/dead/{id}/retry", func(w http.ResponseWriter, r *http.Request) {
		if err := n.RetryDead(r.Context(), r.PathValue("id")); err != nil {
			writeError(w, err)
			return
		}
		writeData(w, nil)
	})
	mux.HandleFunc("POST /api/v1/alerting/alerts", func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r, MaxAlertsBody)
		if err != nil {
			writeError(w, err)
			return
		}
		alerts, err := DecodeAlerts(body)
		if err != nil {
			writeError(w, fmt.Errorf("%w: %w", errBadRequest, err))
			return
		}
		if !n.ingestIfLeading(alerts) {
			leader, _ := n.Leader(r.Context())
			writeError(w, fmt.Errorf("this notifier does not lead prefix %s (the leader: %q); ask etcd again", n.cfg.Prefix, leader))
			return
		}
		writeData(w, map[string]int{"alerts": len(alerts)})
	})
	putConfig := func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r, MaxConfigBytes)
		if err != nil {
			writeError(w, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), n.cfg.RequestTimeout)
		defer cancel()
		rev, changed, err := PutConfig(ctx, n.client, n.cfg.Prefix, body)
		if err != nil {
			writeError(w, err)
			return
		}
		writeData(w, map[string]any{"revision": rev, "changed": changed})
	}
	mux.HandleFunc("PUT /api/v1/alerting/config", putConfig)
	mux.HandleFunc("POST /api/v1/alerting/config", putConfig)
	mux.HandleFunc("GET /api/v1/alerting/config", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), n.cfg.RequestTimeout)
		defer cancel()
		sc, err := GetConfig(ctx, n.client, n.cfg.Prefix)
		if err != nil {
			writeError(w, err)
			return
		}
		writeData(w, sc)
	})
	mux.HandleFunc("GET /api/v1/alerting/status", func(w http.ResponseWriter, r *http.Request) {
		leader, err := n.Leader(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		st := map[string]any{"leading": n.Leading(), "leader": leader, "configRevision": int64(0), "configured": false}
		if rs := n.routing(); rs != nil {
			st["configured"], st["configRevision"] = true, rs.rev
		}
		writeData(w, st)
	})
	return mux
}

var (
	// errBadRequest marks a malformed request body (400).
	errBadRequest = errors.New("bad request")
	// errTooLarge marks a request body over its limit (413).
	errTooLarge = errors.New("request body too large")
	// errConflict marks a write that lost a race (409).
	errConflict = errors.New("conflict")
)

// readBody reads at most limit bytes of a request body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read body: %w", errBadRequest, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: larger than %d bytes", errTooLarge, limit)
	}
	return b, nil
}

func writeData(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

// writeError maps an error to its status: the caller's mistake 400, a
// missing object 404, etcd and the rest 503.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusServiceUnavailable
	switch {
	case errors.Is(err, errTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, errConflict):
		code = http.StatusConflict
	case errors.Is(err, ErrInvalidSilence), errors.Is(err, ErrInvalidConfig), errors.Is(err, errBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": err.Error()})
}

package rules

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	promrules "github.com/prometheus/prometheus/rules"
)

// Handler serves GET /api/v1/rules and GET /api/v1/alerts as Prometheus
// does (Grafana reads them): the groups this ruler evaluates with their
// rules' health and alerts, and its active alerts. It serves the same
// under /ruler/rules and /ruler/alerts, the paths Gather asks in a
// cluster, where /api/v1/rules is Gather's.
func (r *Ruler) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/rules", r.serveRules)
	mux.HandleFunc("GET /api/v1/alerts", r.serveAlerts)
	mux.HandleFunc("GET /ruler/rules", r.serveRules)
	mux.HandleFunc("GET /ruler/alerts", r.serveAlerts)
	return mux
}

// The JSON shapes of Prometheus' web/api/v1.
type (
	apiAlert struct {
		Labels          labels.Labels `json:"labels"`
		Annotations     labels.Labels `json:"annotations"`
		State           string        `json:"state"`
		ActiveAt        *time.Time    `json:"activeAt,omitempty"`
		KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
		Value           string        `json:"value"`
	}
	apiRuleGroup struct {
		Name           string    `json:"name"`
		File           string    `json:"file"`
		Rules          []any     `json:"rules"`
		Interval       float64   `json:"interval"`
		Limit          int       `json:"limit"`
		EvaluationTime float64   `json:"evaluationTime"`
		LastEvaluation time.Time `json:"lastEvaluation"`
	}
	apiAlertingRule struct {
		State          string        `json:"state"`
		Name           string        `json:"name"`
		Query          string        `json:"query"`
		Duration       float64       `json:"duration"`
		KeepFiringFor  float64       `json:"keepFiringFor"`
		Labels         labels.Labels `json:"labels"`
		Annotations    labels.Labels `json:"annotations"`
		Alerts         []apiAlert    `json:"alerts"`
		Health         string        `json:"health"`
		LastError      string        `json:"lastError,omitempty"`
		EvaluationTime float64       `json:"evaluationTime"`
		LastEvaluation time.Time     `json:"lastEvaluation"`
		Type           string        `json:"type"`
	}
	apiRecordingRule struct {
		Name           string        `json:"name"`
		Query          string        `json:"query"`
		Labels         labels.Labels `json:"labels"`
		Health         string        `json:"health"`
		LastError      string        `json:"lastError,omitempty"`
		EvaluationTime float64       `json:"evaluationTime"`
		LastEvaluation time.Time     `json:"lastEvaluation"`
		Type           string        `json:"type"`
	}
)

func (r *Ruler) serveRules(w http.ResponseWriter, req *http.Request) {
	typ := req.URL.Query().Get("type")
	if typ != "" && typ != "alert" && typ != "record" {
		writeAPIError(w, http.StatusBadRequest, fmt.Sprintf("invalid parameter \"type\": %q: want alert or record", typ))
		return
	}
	names, groups, files := req.URL.Query()["rule_name[]"], req.URL.Query()["rule_group[]"], req.URL.Query()["file[]"]
	excludeAlerts := req.URL.Query().Get("exclude_alerts") == "true"
	out := []apiRuleGroup{}
	for _, g := range r.Groups() {
		if (len(groups) > 0 && !slices.Contains(groups, g.Name())) || (len(files) > 0 && !slices.Contains(files, g.File())) {
			continue
		}
		ag := apiRuleGroup{Name: g.Name(), File: g.File(), Rules: []any{}, Interval: g.Interval().Seconds(), Limit: g.Limit(),
			EvaluationTime: g.GetEvaluationTime().Seconds(), LastEvaluation: g.GetLastEvaluation()}
		for _, rule := range g.Rules() {
			if len(names) > 0 && !slices.Contains(names, rule.Name()) {
				continue
			}
			lastErr := ""
			if err := rule.LastError(); err != nil {
				lastErr = err.Error()
			}
			switch rule := rule.(type) {
			case *promrules.AlertingRule:
				if typ == "record" {
					continue
				}
				ar := apiAlertingRule{State: rule.State().String(), Name: rule.Name(), Query: rule.Query().String(),
					Duration: rule.HoldDuration().Seconds(), KeepFiringFor: rule.KeepFiringFor().Seconds(),
					Labels: rule.Labels(), Annotations: rule.Annotations(), Alerts: []apiAlert{}, Health: string(rule.Health()),
					LastError: lastErr, EvaluationTime: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp(), Type: "alerting"}
				if !excludeAlerts {
					ar.Alerts = toAPIAlerts(rule.ActiveAlerts())
				}
				ag.Rules = append(ag.Rules, ar)
			case *promrules.RecordingRule:
				if typ == "alert" {
					continue
				}
				ag.Rules = append(ag.Rules, apiRecordingRule{Name: rule.Name(), Query: rule.Query().String(), Labels: rule.Labels(),
					Health: string(rule.Health()), LastError: lastErr, EvaluationTime: rule.GetEvaluationDuration().Seconds(),
					LastEvaluation: rule.GetEvaluationTimestamp(), Type: "recording"})
			}
		}
		if len(ag.Rules) > 0 || (len(names) == 0 && typ == "") {
			out = append(out, ag)
		}
	}
	writeAPIData(w, map[string]any{"groups": out})
}

func (r *Ruler) serveAlerts(w http.ResponseWriter, _ *http.Request) {
	alerts := []apiAlert{}
	for _, rule := range r.AlertingRules() {
		alerts = append(alerts, toAPIAlerts(rule.ActiveAlerts())...)
	}
	writeAPIData(w, map[string]any{"alerts": alerts})
}

func toAPIAlerts(as []*promrules.Alert) []apiAlert {
	out := make([]apiAlert, 0, len(as))
	for _, a := range as {
		aa := apiAlert{Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(),
			Value: strconv.FormatFloat(a.Value, 'e', -1, 64)}
		if !a.ActiveAt.IsZero() {
			t := a.ActiveAt
			aa.ActiveAt = &t
		}
		if !a.KeepFiringSince.IsZero() {
			t := a.KeepFiringSince
			aa.KeepFiringSince = &t
		}
		out = append(out, aa)
	}
	return out
}

func writeAPIData(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

func writeAPIError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "error", "errorType": "bad_data", "error": msg})
}

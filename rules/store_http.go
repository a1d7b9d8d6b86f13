package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/prometheus/model/rulefmt"
)

// maxBodyBytes bounds an uploaded rule file: comments and formatting may
// make it larger than what is stored.
const maxBodyBytes = 4 << 20

// Handler serves the rule store over HTTP (docs/alerting.md "Rule storage"):
//
//	GET    /api/v1/rules/config                     every namespace: YAML map namespace → groups
//	GET    /api/v1/rules/config/{namespace}         the namespace as a rule file (YAML)
//	POST   /api/v1/rules/config/{namespace}         replace the namespace (body: a Prometheus rule file)
//	DELETE /api/v1/rules/config/{namespace}         remove the namespace
//	GET    /api/v1/rules/config/{namespace}/{group} the group as stored (a rule file with one group)
//	DELETE /api/v1/rules/config/{namespace}/{group} remove the group
//
// Names in the path are URL-escaped (ValidateName). YAML answers list the
// stored values that do not decode as "# invalid: ..." comments first.
// POST and DELETE answer JSON: {"status":"success","data":...}. Errors are
// JSON {"status":"error","errorType":"bad_data"|"not_found"|"conflict"|
// "unavailable","error":"..."} with 400 (the rulefmt errors with line and
// column), 404, 409 or 503 (etcd).
//
// GET /api/v1/rules (Prometheus' rule evaluation state) is not served here:
// it belongs to the ruler.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/rules/config", func(w http.ResponseWriter, req *http.Request) {
		snap, err := s.List(req.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		byNS := map[string][]rulefmt.RuleGroup{}
		for _, g := range snap.Groups {
			byNS[g.Namespace] = append(byNS[g.Namespace], g.RuleGroup)
		}
		writeYAML(w, snap.Invalid, byNS)
	})
	mux.HandleFunc("GET /api/v1/rules/config/{namespace}", func(w http.ResponseWriter, req *http.Request) {
		snap, err := s.Get(req.Context(), req.PathValue("namespace"), "")
		if err != nil {
			writeError(w, err)
			return
		}
		rgs := rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{}}
		for _, g := range snap.Groups {
			rgs.Groups = append(rgs.Groups, g.RuleGroup)
		}
		writeYAML(w, snap.Invalid, rgs)
	})
	mux.HandleFunc("POST /api/v1/rules/config/{namespace}", func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, maxBodyBytes+1))
		if err != nil {
			writeError(w, fmt.Errorf("read body: %w", err))
			return
		}
		if len(body) > maxBodyBytes {
			writeError(w, fmt.Errorf("%w: body over %d bytes", ErrInvalid, maxBodyBytes))
			return
		}
		res, err := s.PutNamespace(req.Context(), req.PathValue("namespace"), body)
		if err != nil {
			writeError(w, err)
			return
		}
		writeData(w, res)
	})
	mux.HandleFunc("DELETE /api/v1/rules/config/{namespace}", func(w http.ResponseWriter, req *http.Request) {
		n, err := s.Delete(req.Context(), req.PathValue("namespace"), "")
		if err != nil {
			writeError(w, err)
			return
		}
		writeData(w, map[string]int64{"deleted": n})
	})
	mux.HandleFunc("GET /api/v1/rules/config/{namespace}/{group}", func(w http.ResponseWriter, req *http.Request) {
		snap, err := s.Get(req.Context(), req.PathValue("namespace"), req.PathValue("group"))
		if err != nil {
			writeError(w, err)
			return
		}
		var b bytes.Buffer
		writeInvalidComments(&b, snap.Invalid)
		for _, g := range snap.Groups {
			b.Write(g.Value)
		}
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(b.Bytes())
	})
	mux.HandleFunc("DELETE /api/v1/rules/config/{namespace}/{group}", func(w http.ResponseWriter, req *http.Request) {
		n, err := s.Delete(req.Context(), req.PathValue("namespace"), req.PathValue("group"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeData(w, map[string]int64{"deleted": n})
	})
	return mux
}

func writeInvalidComments(b *bytes.Buffer, invalid []InvalidEntry) {
	for _, inv := range invalid {
		fmt.Fprintf(b, "# invalid: %s: %s\n", inv.Key, strings.ReplaceAll(inv.Err, "\n", "; "))
	}
}

func writeYAML(w http.ResponseWriter, invalid []InvalidEntry, v any) {
	out, err := marshalYAML(v)
	if err != nil {
		writeError(w, fmt.Errorf("encode YAML: %w", err))
		return
	}
	var b bytes.Buffer
	writeInvalidComments(&b, invalid)
	b.Write(out)
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(b.Bytes())
}

func writeData(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

// writeError is the one place that maps errors to HTTP: 400 for refused
// input, 404 for a missing namespace or group, 409 for a replacement that
// kept racing, 503 for the rest (etcd unavailable or timing out).
func writeError(w http.ResponseWriter, err error) {
	code, typ := http.StatusServiceUnavailable, "unavailable"
	switch {
	case errors.Is(err, ErrInvalid):
		code, typ = http.StatusBadRequest, "bad_data"
	case errors.Is(err, ErrNotFound):
		code, typ = http.StatusNotFound, "not_found"
	case errors.Is(err, ErrConflict):
		code, typ = http.StatusConflict, "conflict"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": strings.TrimSpace(err.Error())})
}

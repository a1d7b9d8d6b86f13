package collector

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Handler serves the registry over HTTP (docs/targets.md "HTTP API"):
//
//	GET    /api/v1/registry/targets               every target (resolved) and invalid entry
//	POST   /api/v1/registry/targets               add or replace one target (body: a target value with job)
//	DELETE /api/v1/registry/targets?job=J&id=I    remove one (or &address=A: the id add derives)
//	GET    /api/v1/registry/jobs                  every job's defaults
//	PUT    /api/v1/registry/jobs/{job}            set a job's defaults (body: a job value)
//	DELETE /api/v1/registry/jobs/{job}            remove a job's defaults
//
// Answers are JSON: {"status":"success","data":...} or
// {"status":"error","errorType":"bad_data"|"unavailable","error":"..."}.
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/registry/targets", func(w http.ResponseWriter, req *http.Request) {
		snap, err := r.List(req.Context())
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		type row struct {
			Job string `json:"job"`
			ID  string `json:"id"`
			URL string `json:"url"`
			Target
		}
		rows := make([]row, 0, len(snap.Targets))
		for _, t := range snap.Targets {
			rows = append(rows, row{Job: t.Job, ID: t.ID, URL: t.URL().String(), Target: t})
		}
		writeRegistryData(w, http.StatusOK, map[string]any{"revision": snap.Revision, "targets": rows, "invalid": snap.Invalid})
	})
	mux.HandleFunc("POST /api/v1/registry/targets", func(w http.ResponseWriter, req *http.Request) {
		body, err := readRegistryBody(req)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		t, err := DecodeTarget(body)
		if err != nil {
			writeRegistryError(w, fmt.Errorf("%w: %w", ErrInvalidTarget, err))
			return
		}
		if t.Job == "" {
			writeRegistryError(w, fmt.Errorf("%w: job: missing (the target value must name its job)", ErrInvalidTarget))
			return
		}
		t.ID = req.URL.Query().Get("id")
		key, err := r.Put(req.Context(), t)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		writeRegistryData(w, http.StatusOK, map[string]string{"key": key})
	})
	mux.HandleFunc("DELETE /api/v1/registry/targets", func(w http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		job, id := q.Get("job"), q.Get("id")
		if a := q.Get("address"); a != "" && id == "" {
			t := Target{Job: job, Address: a}
			if err := t.normalize(); err != nil {
				writeRegistryError(w, fmt.Errorf("%w: address: %w", ErrInvalidTarget, err))
				return
			}
			id = DefaultID(t)
		}
		if job == "" || id == "" {
			writeRegistryError(w, fmt.Errorf("%w: job and id (or address) are needed", ErrInvalidTarget))
			return
		}
		if err := r.Delete(req.Context(), job, id); err != nil {
			writeRegistryError(w, err)
			return
		}
		writeRegistryData(w, http.StatusOK, map[string]string{"key": r.TargetKey(job, id)})
	})
	mux.HandleFunc("GET /api/v1/registry/jobs", func(w http.ResponseWriter, req *http.Request) {
		snap, err := r.List(req.Context())
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		writeRegistryData(w, http.StatusOK, snap.Jobs)
	})
	mux.HandleFunc("PUT /api/v1/registry/jobs/{job}", func(w http.ResponseWriter, req *http.Request) {
		body, err := readRegistryBody(req)
		if err != nil {
			writeRegistryError(w, err)
			return
		}
		j, err := DecodeJob(body)
		if err != nil {
			writeRegistryError(w, fmt.Errorf("%w: %w", ErrInvalidTarget, err))
			return
		}
		j.Name = req.PathValue("job")
		if err := r.PutJob(req.Context(), j); err != nil {
			writeRegistryError(w, err)
			return
		}
		writeRegistryData(w, http.StatusOK, map[string]string{"key": r.JobKey(j.Name)})
	})
	mux.HandleFunc("DELETE /api/v1/registry/jobs/{job}", func(w http.ResponseWriter, req *http.Request) {
		if err := r.DeleteJob(req.Context(), req.PathValue("job")); err != nil {
			writeRegistryError(w, err)
			return
		}
		writeRegistryData(w, http.StatusOK, map[string]string{"key": r.JobKey(req.PathValue("job"))})
	})
	return mux
}

func readRegistryBody(req *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(req.Body, MaxValueBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if len(b) > MaxValueBytes {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrInvalidTarget, MaxValueBytes)
	}
	return b, nil
}

func writeRegistryData(w http.ResponseWriter, code int, data any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

// writeRegistryError answers 400 for a refused value, 409 for a static
// target that a lease may not take over, and 503 for etcd failures.
func writeRegistryError(w http.ResponseWriter, err error) {
	code, typ := http.StatusServiceUnavailable, "unavailable"
	switch {
	case errors.Is(err, ErrStaticTarget):
		code, typ = http.StatusConflict, "conflict"
	case errors.Is(err, ErrInvalidTarget):
		code, typ = http.StatusBadRequest, "bad_data"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": strings.TrimSpace(err.Error())})
}

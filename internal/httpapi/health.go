package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// handleHealthz serves GET /api/v1/healthz: liveness, no dependencies.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type checkView struct {
	Status string         `json:"status"`
	Error  string         `json:"error,omitempty"`
	Detail map[string]any `json:"detail,omitempty"`
}

// handleReadyz serves GET /api/v1/readyz: each dependency's state, checked
// in parallel with a deadline; 503 when one is down.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	results := make(map[string]checkView, len(s.opts.Checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range s.opts.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			detail, err := c.Check(ctx)
			v := checkView{Status: "up", Detail: detail}
			if err != nil {
				// The client-safe message only: a DSN or address must not leak.
				v = checkView{Status: "down", Error: gymbro.ErrorMessage(err), Detail: detail}
				s.logger.Warn("readiness check failed", "check", c.Name, "err", err)
			}
			mu.Lock()
			results[c.Name] = v
			mu.Unlock()
		}()
	}
	wg.Wait()
	status, code := "ok", http.StatusOK
	for _, v := range results {
		if v.Status != "up" {
			status, code = "unavailable", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, map[string]any{"status": status, "checks": results})
}

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

type meView struct {
	UID       string         `json:"uid"`
	Email     string         `json:"email,omitempty"`
	Provider  string         `json:"provider"`
	Issuer    string         `json:"issuer"`
	SessionID string         `json:"session_id,omitempty"`
	Role      string         `json:"role,omitempty"`
	ExpiresAt time.Time      `json:"expires_at"`
	Claims    map[string]any `json:"claims"`
	Details   any            `json:"details,omitempty"`
}

// selectedClaims are the claims /me shows: identity and session facts, not
// whatever else a provider put in the token.
var selectedClaims = []string{"aud", "iat", "exp", "auth_time", "aal", "amr", "is_anonymous", "phone", "app_metadata", "user_metadata", "firebase", "email_verified", "name"}

// handleMe serves GET /api/v1/me: the verified user, and the provider's
// details with ?details=true.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	v := meView{UID: p.UID, Email: p.Email, Provider: p.Provider, Issuer: p.Issuer, SessionID: p.SessionID, Role: p.Role, ExpiresAt: p.ExpiresAt, Claims: map[string]any{}}
	for _, k := range selectedClaims {
		if c, ok := p.Claims[k]; ok {
			v.Claims[k] = c
		}
	}
	if r.URL.Query().Get("details") == "true" && s.opts.Identity != nil {
		d, err := s.opts.Identity.UserDetails(r.Context(), p.UID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		v.Details = d
	}
	writeJSON(w, http.StatusOK, v)
}

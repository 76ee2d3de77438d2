package httpapi

import (
	"net/http"
	"time"
)

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

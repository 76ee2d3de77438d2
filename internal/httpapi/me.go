package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// meView is the body of GET /api/v1/me. Claims and Details are the last
// members: handleMe writes them itself (see there).
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
// whatever else a provider put in the token. They are in byte order, the
// order encoding/json gives a map's keys.
var selectedClaims = []string{"aal", "amr", "app_metadata", "aud", "auth_time", "email_verified", "exp", "firebase", "iat", "is_anonymous", "name", "phone", "user_metadata"}

// handleMe serves GET /api/v1/me: the verified user, and the provider's
// details with ?details=true.
//
// It writes the same bytes as encoding a meView whose Claims map holds the
// selected claims, but without building and sorting that map: it encodes
// the view with nil Claims and Details, replaces the trailing
// `"claims":null}` with the selected claims in order, then the details.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var details any
	if r.URL.Query().Get("details") == "true" && s.opts.Identity != nil {
		d, err := s.opts.Identity.UserDetails(r.Context(), p.UID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		details = d
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as writeJSON
	err := enc.Encode(meView{UID: p.UID, Email: p.Email, Provider: p.Provider, Issuer: p.Issuer, SessionID: p.SessionID, Role: p.Role, ExpiresAt: p.ExpiresAt})
	if err == nil {
		buf.Truncate(buf.Len() - len("null}\n"))
		buf.WriteByte('{')
		first := true
		for _, k := range selectedClaims {
			c, ok := p.Claims[k]
			if !ok {
				continue
			}
			if !first {
				buf.WriteByte(',')
			}
			first = false
			buf.WriteByte('"')
			buf.WriteString(k) // plain ASCII names: nothing to escape
			buf.WriteString(`":`)
			if err = enc.Encode(c); err != nil {
				break
			}
			buf.Truncate(buf.Len() - 1) // Encode's newline
		}
		buf.WriteByte('}')
	}
	if err == nil && details != nil {
		buf.WriteString(`,"details":`)
		if err = enc.Encode(details); err == nil {
			buf.Truncate(buf.Len() - 1)
		}
	}
	if err != nil { // nothing is written yet: a clean 500 problem
		s.writeError(w, r, err)
		return
	}
	buf.WriteString("}\n")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

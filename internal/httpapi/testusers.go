package httpapi

import (
	"net/http"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// handleCreateTestUser serves POST /api/v1/llm/tests/create-mail-user: one
// click makes a real Supabase user and a real access token for it.
func (s *Server) handleCreateTestUser(w http.ResponseWriter, r *http.Request) {
	if s.opts.TestUsers == nil {
		s.writeError(w, r, gymbro.Errorf(gymbro.KindForbidden, "test_users_disabled", "Test users are disabled; set GYMBRO_TEST_USERS_ENABLED=true to enable them."))
		return
	}
	var req gymbro.TestUserRequest
	if err := decodeOptionalJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.opts.TestUsers.Create(r.Context(), principal(r), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res.RequestID = TraceID(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, res)
}

package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// TestUserRequest is the body of POST /api/v1/llm/tests/create-mail-user.
type TestUserRequest struct {
	UsernamePrefix string `json:"username_prefix"`
	MailAPIKey     string `json:"mail_api_key,omitempty"`
}

// LogValue keeps the mail API key out of logs.
func (r TestUserRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username_prefix", r.UsernamePrefix))
}

// TestUserResult is a created (or reused) test user with a real session.
type TestUserResult struct {
	Username     string `json:"username"`
	Email        string `json:"email"`
	Password     string `json:"password"`
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresAt    int64  `json:"expires_at"`
	TokenType    string `json:"token_type"`
	Reused       bool   `json:"reused"`
	RequestID    string `json:"request_id"`
}

// handleCreateTestUser serves POST /api/v1/llm/tests/create-mail-user: one
// click makes a real Supabase user and a real access token for it.
func (s *Server) handleCreateTestUser(w http.ResponseWriter, r *http.Request) {
	if s.opts.TestUsers == nil {
		s.writeError(w, r, gymbro.Errorf(gymbro.KindForbidden, "test_users_disabled", "Test users are disabled; set GYMBRO_TEST_USERS_ENABLED=true to enable them."))
		return
	}
	var req TestUserRequest
	if err := decodeJSON(r, &req); err != nil {
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

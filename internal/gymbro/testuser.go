package gymbro

import (
	"context"
	"log/slog"
)

// TestUserRequest asks for a one-click test user: a prefix ("gymbro-test")
// allocates the next free name, a full name ("gymbro-test-01") reuses it.
type TestUserRequest struct {
	UsernamePrefix string `json:"username_prefix"`
	MailAPIKey     string `json:"mail_api_key,omitempty"`
}

// LogValue keeps the mail API key out of logs.
func (r TestUserRequest) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username_prefix", r.UsernamePrefix))
}

// TestUser is a created (or reused) test user with a real session issued
// by Supabase Auth (or the local emulator).
type TestUser struct {
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

// LogValue keeps the password and tokens out of logs.
func (u *TestUser) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", u.Username), slog.String("user_id", u.UserID), slog.Bool("reused", u.Reused))
}

// TestUsers creates one-click test users for the developer console.
type TestUsers interface {
	// Create makes (or reuses) a test user for caller and signs it in.
	Create(ctx context.Context, caller *Principal, req TestUserRequest) (*TestUser, error)
}

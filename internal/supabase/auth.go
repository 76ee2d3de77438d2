package supabase

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outage"
)

// AuthConfig configures an AuthClient.
type AuthConfig struct {
	// URL is the project base, e.g. https://abc.supabase.co; the client calls
	// URL + "/auth/v1/…". Locally it is our own server, which mounts the
	// emulator at /auth/v1.
	URL string
	// AnonKey is the publishable key (legacy anon JWT or sb_publishable_…),
	// sent as apikey on user-facing calls.
	AnonKey string
	// ServiceRoleKey is the secret key (legacy service_role JWT or
	// sb_secret_…), sent as apikey and bearer on Admin calls. It bypasses
	// every row-level policy: keep it server-side.
	ServiceRoleKey string
	// APIVersion, when set (e.g. "2024-01-01"), is sent as
	// X-Supabase-Api-Version. The client reads either error shape.
	APIVersion string
	// HTTPClient is the client to use; default a fresh *http.Client.
	HTTPClient *http.Client
	// Timeout bounds each call; default 10s.
	Timeout time.Duration
}

// LogValue keeps the keys out of logs.
func (c AuthConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", c.URL),
		slog.String("anon_key", maskKey(c.AnonKey)), slog.String("service_role_key", maskKey(c.ServiceRoleKey)),
		slog.Duration("timeout", c.Timeout))
}

// maskKey shows only what kind of key is configured.
func maskKey(k string) string {
	switch {
	case k == "":
		return ""
	case strings.HasPrefix(k, "sb_publishable_"):
		return "sb_publishable_***"
	case strings.HasPrefix(k, "sb_secret_"):
		return "sb_secret_***"
	case strings.Count(k, ".") == 2:
		return "jwt:***"
	}
	return "***"
}

// AuthClient calls Supabase Auth. It is safe for concurrent use.
type AuthClient struct {
	base    string // URL + "/auth/v1"
	anon    string
	service string
	version string
	http    *http.Client
	timeout time.Duration
}

// NewAuthClient returns a client for the project at cfg.URL.
func NewAuthClient(cfg AuthConfig) *AuthClient {
	c := &AuthClient{
		base:    strings.TrimRight(cfg.URL, "/") + "/auth/v1",
		anon:    cfg.AnonKey,
		service: cfg.ServiceRoleKey,
		version: cfg.APIVersion,
	}
	c.http, c.timeout = httpDefaults(cfg.HTTPClient, cfg.Timeout)
	return c
}

// httpDefaults returns client, or a new one when nil, and timeout, or 10 s
// when not positive: the defaults of both Supabase clients.
func httpDefaults(client *http.Client, timeout time.Duration) (*http.Client, time.Duration) {
	if client == nil {
		client = &http.Client{}
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return client, timeout
}

// LogValue keeps the keys out of logs.
func (c *AuthClient) LogValue() slog.Value { return slog.StringValue(c.base) }

// User is a Supabase Auth user as the Admin API and /user return it.
type User struct {
	ID               string         `json:"id"`
	Aud              string         `json:"aud"`
	Role             string         `json:"role"`
	Email            string         `json:"email"`
	Phone            string         `json:"phone"`
	EmailConfirmedAt *time.Time     `json:"email_confirmed_at,omitempty"`
	PhoneConfirmedAt *time.Time     `json:"phone_confirmed_at,omitempty"`
	ConfirmedAt      *time.Time     `json:"confirmed_at,omitempty"`
	LastSignInAt     *time.Time     `json:"last_sign_in_at,omitempty"`
	BannedUntil      *time.Time     `json:"banned_until,omitempty"`
	AppMetadata      map[string]any `json:"app_metadata"`
	UserMetadata     map[string]any `json:"user_metadata"`
	Identities       []Identity     `json:"identities,omitempty"`
	IsAnonymous      bool           `json:"is_anonymous"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
}

// LogValue keeps personal data out of logs.
func (u User) LogValue() slog.Value { return slog.GroupValue(slog.String("id", u.ID)) }

// Identity is one sign-in method linked to a user.
type Identity struct {
	IdentityID   string         `json:"identity_id"`
	ID           string         `json:"id"`
	UserID       string         `json:"user_id"`
	Provider     string         `json:"provider"`
	Email        string         `json:"email,omitempty"`
	IdentityData map[string]any `json:"identity_data,omitempty"`
	LastSignInAt *time.Time     `json:"last_sign_in_at,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
}

// Session is the answer of a grant: an access token, the refresh token that
// renews it, and the user.
type Session struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ExpiresAt    int64  `json:"expires_at"` // unix seconds; equals the access token's exp
	RefreshToken string `json:"refresh_token"`
	User         User   `json:"user"`
}

// LogValue keeps the tokens out of logs.
func (s Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user_id", s.User.ID), slog.Int64("expires_at", s.ExpiresAt))
}

// AdminUserParams is the body of Admin create and update. On update, zero
// fields are left unchanged; a metadata key set to nil is removed.
type AdminUserParams struct {
	Email        string         `json:"email,omitempty"`
	Phone        string         `json:"phone,omitempty"`
	Password     string         `json:"password,omitempty"`
	EmailConfirm bool           `json:"email_confirm,omitempty"`
	Role         string         `json:"role,omitempty"`
	UserMetadata map[string]any `json:"user_metadata,omitempty"`
	AppMetadata  map[string]any `json:"app_metadata,omitempty"`
	// BanDuration bans the user for a Go duration from now ("24h"), or lifts
	// a ban with "none". While banned, /user answers 403 user_banned and the
	// token grants 400 user_banned.
	BanDuration string `json:"ban_duration,omitempty"`
}

// LogValue keeps the password out of logs.
func (p AdminUserParams) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("email_set", p.Email != ""), slog.Bool("password_set", p.Password != ""))
}

// CreateUser creates a user through the Admin API (POST /admin/users, which
// answers 200). A taken email is an *APIError with Code email_exists (422);
// a short password weak_password (422).
func (c *AuthClient) CreateUser(ctx context.Context, p AdminUserParams) (*User, error) {
	var u User
	if err := c.do(ctx, http.MethodPost, "/admin/users", nil, true, "", p, &u, nil); err != nil {
		return nil, err
	}
	return &u, nil
}

// ListUsers returns one page (from 1) of users, newest first, and the total
// count from X-Total-Count.
func (c *AuthClient) ListUsers(ctx context.Context, page, perPage int) (users []User, total int, err error) {
	q := url.Values{}
	if page > 0 {
		q.Set("page", strconv.Itoa(page))
	}
	if perPage > 0 {
		q.Set("per_page", strconv.Itoa(perPage))
	}
	var body struct {
		Users []User `json:"users"`
	}
	var hdr http.Header
	if err := c.do(ctx, http.MethodGet, "/admin/users", q, true, "", nil, &body, &hdr); err != nil {
		return nil, 0, err
	}
	total = len(body.Users)
	if v := hdr.Get("X-Total-Count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, 0, gymbro.Wrap(err, gymbro.KindUpstream, CodeSupabaseBadResponse, "Supabase Auth sent a bad X-Total-Count.")
		}
		total = n
	}
	return body.Users, total, nil
}

// GetUser returns the user with id; user_not_found (404) when there is none.
func (c *AuthClient) GetUser(ctx context.Context, id string) (*User, error) {
	var u User
	if err := c.do(ctx, http.MethodGet, "/admin/users/"+url.PathEscape(id), nil, true, "", nil, &u, nil); err != nil {
		return nil, err
	}
	return &u, nil
}

// UpdateUser changes the user with id (PUT /admin/users/{id}). Setting a
// password ends all of the user's sessions.
func (c *AuthClient) UpdateUser(ctx context.Context, id string, p AdminUserParams) (*User, error) {
	var u User
	if err := c.do(ctx, http.MethodPut, "/admin/users/"+url.PathEscape(id), nil, true, "", p, &u, nil); err != nil {
		return nil, err
	}
	return &u, nil
}

// DeleteUser deletes the user with id and its sessions.
func (c *AuthClient) DeleteUser(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/admin/users/"+url.PathEscape(id), nil, true, "", nil, nil, nil)
}

// SignInWithPassword runs the password grant. An unknown email and a wrong
// password are both invalid_credentials (400).
func (c *AuthClient) SignInWithPassword(ctx context.Context, email, password string) (*Session, error) {
	var s Session
	body := struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}{email, password}
	if err := c.do(ctx, http.MethodPost, "/token", url.Values{"grant_type": {"password"}}, false, "", body, &s, nil); err != nil {
		return nil, err
	}
	return &s, nil
}

// RefreshSession trades a refresh token for a new session. The refresh token
// is single-use (rotated); a spent one fails with refresh_token_already_used
// or refresh_token_not_found (400).
func (c *AuthClient) RefreshSession(ctx context.Context, refreshToken string) (*Session, error) {
	var s Session
	body := struct {
		RefreshToken string `json:"refresh_token"`
	}{refreshToken}
	if err := c.do(ctx, http.MethodPost, "/token", url.Values{"grant_type": {"refresh_token"}}, false, "", body, &s, nil); err != nil {
		return nil, err
	}
	return &s, nil
}

// GetUserByToken returns the user an access token belongs to (GET /user),
// checked by Auth itself, so a logged-out session fails (session_not_found).
func (c *AuthClient) GetUserByToken(ctx context.Context, accessToken string) (*User, error) {
	var u User
	if err := c.do(ctx, http.MethodGet, "/user", nil, false, accessToken, nil, &u, nil); err != nil {
		return nil, err
	}
	return &u, nil
}

// Logout ends the sessions of the token's user (Supabase's default global
// scope); their refresh tokens stop working.
func (c *AuthClient) Logout(ctx context.Context, accessToken string) error {
	return c.do(ctx, http.MethodPost, "/logout", nil, false, accessToken, nil, nil, nil)
}

// Response size limits: a user list page is the largest answer.
const (
	maxBody      = 8 << 20
	maxErrorBody = 64 << 10
)

// do sends one request. admin selects the service key as apikey and bearer;
// otherwise the anon key is the apikey and bearer (if any) the user's token.
// Errors never carry keys or tokens: they travel in headers and bodies,
// never in the URL.
func (c *AuthClient) do(ctx context.Context, method, path string, q url.Values, admin bool, bearer string, in, out any, hdr *http.Header) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := c.newRequest(ctx, method, path, q, admin, bearer, in)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return parseAPIError(resp, b)
	}
	if hdr != nil {
		*hdr = resp.Header
	}
	return readAnswer(ctx, resp, out)
}

// newRequest builds a request to path with the JSON of in (when not nil)
// and the headers Supabase Auth expects; admin requests carry the service
// role key as both key and bearer.
func (c *AuthClient) newRequest(ctx context.Context, method, path string, q url.Values, admin bool, bearer string, in any) (*http.Request, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("supabase: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, gymbro.Wrap(err, gymbro.KindInternal, gymbro.CodeInternal, "Bad Supabase URL.")
	}
	key := c.anon
	if admin {
		key, bearer = c.service, c.service
	}
	req.Header.Set("apikey", key)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Client-Info", "gymbro-api")
	if c.version != "" {
		req.Header.Set("X-Supabase-Api-Version", c.version)
	}
	return req, nil
}

// readAnswer decodes a successful answer into out, or drains it when out
// is nil.
func readAnswer(ctx context.Context, resp *http.Response, out any) error {
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return transportError(ctx, err)
	}
	if len(b) > maxBody {
		return gymbro.Errorf(gymbro.KindUpstream, CodeSupabaseBadResponse, "Supabase Auth sent an oversized answer.")
	}
	if err := json.Unmarshal(b, out); err != nil {
		return gymbro.Wrap(err, gymbro.KindUpstream, CodeSupabaseBadResponse, "Supabase Auth sent an answer we cannot read.")
	}
	return nil
}

// transportError classifies a failure to get an answer. The caller's own
// cancellation is passed through unchanged so it is not mistaken for an
// outage; our timeout is KindTimeout; anything else KindUnavailable.
func transportError(ctx context.Context, err error) error {
	return outage.NoAnswer(ctx, err, "supabase",
		gymbro.Error{Kind: gymbro.KindTimeout, Code: CodeSupabaseTimeout, Message: "Supabase Auth did not answer in time."},
		gymbro.Error{Kind: gymbro.KindUnavailable, Code: CodeSupabaseUnavailable, Message: "Supabase Auth is unreachable."})
}

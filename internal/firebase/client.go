// Package firebase asks Firebase Auth about its users, as Firebase's Admin
// SDKs do: Identity Toolkit's accounts:lookup gives a user's profile
// (IdentityProvider) and whether their sessions still stand: a disabled,
// deleted or revoked user (SessionChecker).
//
// In production the calls go to https://identitytoolkit.googleapis.com as
// a Google service account, whose access tokens golang.org/x/oauth2/google
// obtains with the account's key (a signed JWT exchanged at the key file's
// token_uri). Against the Auth emulator (FIREBASE_AUTH_EMULATOR_HOST) they
// go to http://<host>/identitytoolkit.googleapis.com with the emulator's
// fixed "Bearer owner" and no credentials, as the Admin SDKs do.
package firebase

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outage"
)

// DefaultBaseURL is Identity Toolkit's production endpoint.
const DefaultBaseURL = "https://identitytoolkit.googleapis.com"

// Scope is the OAuth scope the service account's tokens are asked with;
// accounts:lookup accepts it (or the firebase scope).
const Scope = "https://www.googleapis.com/auth/cloud-platform"

// Error codes of failures to get an answer about a user.
const (
	// CodeFirebaseUnavailable: Identity Toolkit (or the emulator) did not
	// answer, answered 429 or 5xx, or no access token could be had for it.
	CodeFirebaseUnavailable = "firebase_unavailable"
	CodeFirebaseTimeout     = "firebase_timeout" // no answer in time: KindTimeout
	// CodeFirebaseRejected: Identity Toolkit refused the lookup (the
	// service account may not read the project's users, a wrong project)
	// or answered something unreadable.
	CodeFirebaseRejected = "firebase_rejected"
	// CodeUserNotFound: Firebase has no such user. The same code as the
	// Supabase path's, so clients handle one.
	CodeUserNotFound = "user_not_found"
)

// Config configures a Client.
type Config struct {
	ProjectID string
	// EmulatorHost is the Auth emulator's host:port
	// (FIREBASE_AUTH_EMULATOR_HOST). When set, lookups go to it with the
	// emulator's "Bearer owner", and no credentials are needed.
	EmulatorHost string
	// ServiceAccountJSON is a Google service account's key file, which
	// must be allowed to read the project's users; required without
	// EmulatorHost. Its token_uri is where access tokens come from.
	ServiceAccountJSON []byte
	// BaseURL replaces DefaultBaseURL (for tests that fake Google).
	BaseURL string
	// HTTPClient sends lookups and token requests; default a new client.
	HTTPClient *http.Client
	// Timeout bounds each lookup, token request included; default 10s.
	Timeout time.Duration
}

// LogValue keeps the service account's key out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(slog.String("project", c.ProjectID), slog.String("emulator_host", c.EmulatorHost),
		slog.Bool("service_account", len(c.ServiceAccountJSON) > 0))
}

// Client calls Identity Toolkit for one project. It is safe for
// concurrent use.
type Client struct {
	lookupURL string
	http      *http.Client // adds the bearer token
	timeout   time.Duration
}

// NewClient returns a client for cfg, or an error saying what is wrong
// with it (an unreadable key, a key that is not a service account's).
func NewClient(cfg Config) (*Client, error) {
	if cfg.ProjectID == "" {
		return nil, errors.New("firebase: no project id")
	}
	base := cmp.Or(cfg.BaseURL, DefaultBaseURL)
	if cfg.EmulatorHost != "" {
		base = "http://" + cfg.EmulatorHost + "/identitytoolkit.googleapis.com"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ts, err := tokenSource(cfg, hc, timeout)
	if err != nil {
		return nil, err
	}
	return &Client{
		lookupURL: strings.TrimRight(base, "/") + "/v1/projects/" + url.PathEscape(cfg.ProjectID) + "/accounts:lookup",
		http:      &http.Client{Transport: &oauth2.Transport{Source: ts, Base: hc.Transport}},
		timeout:   timeout,
	}, nil
}

// tokenSource is the emulator's fixed token, or the service account's
// tokens, fetched with hc and cached until shortly before they expire.
func tokenSource(cfg Config, hc *http.Client, timeout time.Duration) (oauth2.TokenSource, error) {
	if cfg.EmulatorHost != "" {
		return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "owner"}), nil
	}
	if len(cfg.ServiceAccountJSON) == 0 {
		return nil, errors.New("firebase: a service account key is required (or the Auth emulator's host)")
	}
	// JWTConfigFromJSON accepts only a service account's key: other
	// credential types (external accounts, whose JSON can make the library
	// call arbitrary URLs or run programs) are refused.
	jc, err := google.JWTConfigFromJSON(cfg.ServiceAccountJSON, Scope)
	if err != nil {
		return nil, fmt.Errorf("firebase: service account key: %w", err)
	}
	// The token source keeps this context for every later fetch: it only
	// carries the HTTP client, never a deadline.
	tokenClient := &http.Client{Transport: hc.Transport, Timeout: timeout}
	return jc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, tokenClient)), nil
}

// User is what accounts:lookup says of an account: the fields this service
// uses. The password hash and salt are never decoded (the emulator's hash
// holds the password in clear).
type User struct {
	LocalID       string             `json:"localId"`
	Email         string             `json:"email"`
	EmailVerified bool               `json:"emailVerified"`
	DisplayName   string             `json:"displayName"`
	PhoneNumber   string             `json:"phoneNumber"`
	Disabled      bool               `json:"disabled"`
	Providers     []ProviderUserInfo `json:"providerUserInfo"`
	// ValidSince is when the user's tokens were last revoked (or the
	// account created), in seconds: tokens whose auth_time is earlier are
	// no longer good.
	ValidSince  int64 `json:"validSince,string"`
	CreatedAt   int64 `json:"createdAt,string"`   // milliseconds since the epoch
	LastLoginAt int64 `json:"lastLoginAt,string"` // milliseconds since the epoch
}

// LogValue keeps personal data out of logs.
func (u User) LogValue() slog.Value { return slog.GroupValue(slog.String("local_id", u.LocalID)) }

// ProviderUserInfo is one sign-in method linked to an account.
type ProviderUserInfo struct {
	ProviderID string `json:"providerId"` // "password", "google.com", "phone", …
}

// Lookup returns the user whose uid (Firebase's localId, the tokens' sub)
// is localID. A user Firebase does not have is an *gymbro.Error of
// KindNotFound with CodeUserNotFound; other failures are KindUnavailable
// (CodeFirebaseUnavailable), KindTimeout (CodeFirebaseTimeout) or
// KindUpstream (CodeFirebaseRejected).
func (c *Client) Lookup(ctx context.Context, localID string) (*User, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body, _ := json.Marshal(struct {
		LocalID []string `json:"localId"`
	}{[]string{localID}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.lookupURL, bytes.NewReader(body))
	if err != nil {
		return nil, gymbro.Wrap(err, gymbro.KindInternal, gymbro.CodeInternal, "Bad Identity Toolkit URL.")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, noAnswer(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, noAnswer(ctx, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, answerError(resp.StatusCode, b)
	}
	return findUser(b, localID)
}

// maxBody bounds an answer: one user's record is a few KiB.
const maxBody = 1 << 20

// findUser reads a lookup answer: "users" is absent when there is none.
func findUser(b []byte, localID string) (*User, error) {
	var answer struct {
		Users []User `json:"users"`
	}
	if len(b) > maxBody || json.Unmarshal(b, &answer) != nil {
		return nil, gymbro.Errorf(gymbro.KindUpstream, CodeFirebaseRejected, "Identity Toolkit sent an answer we cannot read.")
	}
	for i := range answer.Users {
		if answer.Users[i].LocalID == localID {
			return &answer.Users[i], nil
		}
	}
	return nil, userNotFound()
}

func userNotFound() *gymbro.Error {
	return gymbro.Errorf(gymbro.KindNotFound, CodeUserNotFound, "No such user.")
}

// answerError reads Google's error body, {"error": {"code", "message",
// "status"}}, whose message is an Identity Toolkit code, optionally
// followed by " : detail" (USER_NOT_FOUND, PROJECT_NOT_FOUND, …).
func answerError(status int, b []byte) error {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &e)
	code, _, _ := strings.Cut(e.Error.Message, ":")
	code = strings.TrimSpace(code)
	switch {
	case code == "USER_NOT_FOUND":
		return userNotFound()
	case status == http.StatusTooManyRequests || status >= 500:
		return &gymbro.Error{Kind: gymbro.KindUnavailable, Code: CodeFirebaseUnavailable,
			Message: fmt.Sprintf("Identity Toolkit is unavailable (HTTP %d).", status)}
	}
	reason := cmp.Or(e.Error.Status, code)
	if len(reason) > 100 {
		reason = reason[:100]
	}
	return &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeFirebaseRejected,
		Message: fmt.Sprintf("Identity Toolkit refused the user lookup (HTTP %d %s); check the service account's permissions and FIREBASE_PROJECT_ID.", status, reason)}
}

// noAnswer classifies a failure to get an answer, the access token's
// included: a token endpoint that refused the key is a rejection, any
// other failure an outage (or a timeout).
func noAnswer(ctx context.Context, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 && re.Response.StatusCode != http.StatusTooManyRequests {
		return gymbro.Wrap(err, gymbro.KindUpstream, CodeFirebaseRejected,
			"Google refused the service account's key (check that it is current and not disabled).")
	}
	return outage.NoAnswer(ctx, err, "firebase",
		gymbro.Error{Kind: gymbro.KindTimeout, Code: CodeFirebaseTimeout, Message: "Identity Toolkit did not answer in time."},
		gymbro.Error{Kind: gymbro.KindUnavailable, Code: CodeFirebaseUnavailable, Message: "Identity Toolkit is unreachable."})
}

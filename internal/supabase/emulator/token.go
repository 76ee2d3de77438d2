package emulator

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// parseJWT verifies a token we signed: ES256 only, kid required and known,
// exp required. Anything else is bad_jwt, as Supabase Auth answers.
func (e *Emulator) parseJWT(tok string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("missing kid")
		}
		pub, ok := e.keys.verifyKey(kid, e.now(), e.opts.AccessTokenTTL)
		if !ok {
			return nil, errors.New("unknown kid")
		}
		return pub, nil
	}, jwt.WithValidMethods([]string{"ES256"}), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(e.opts.Now), jwt.WithLeeway(30*time.Second))
	if err != nil {
		return nil, newError(http.StatusForbidden, "bad_jwt", "invalid JWT: unable to parse or verify signature")
	}
	return claims, nil
}

// authenticate resolves the bearer of a user request to its user and
// session, as Supabase Auth's requireAuthentication does.
func (e *Emulator) authenticate(ctx context.Context, r *http.Request) (*user, *session, error) {
	tok, err := bearer(r)
	if err != nil {
		return nil, nil, err
	}
	c, err := e.parseJWT(tok)
	if err != nil {
		return nil, nil, err
	}
	sub, _ := c["sub"].(string)
	if sub == "" {
		return nil, nil, newError(http.StatusForbidden, "bad_jwt", "invalid claim: missing sub claim")
	}
	if _, err := uuid.Parse(sub); err != nil {
		return nil, nil, newError(http.StatusBadRequest, "bad_jwt", "invalid claim: sub claim must be a UUID")
	}
	u, err := getUserByID(ctx, e.db, sub)
	if errors.Is(err, errNoRows) {
		return nil, nil, newError(http.StatusForbidden, "user_not_found", "User from sub claim in JWT does not exist")
	} else if err != nil {
		return nil, nil, err
	}
	if u.bannedAt(e.now()) {
		return nil, nil, userBanned(http.StatusForbidden)
	}
	sid, _ := c["session_id"].(string)
	if sid == "" {
		return u, nil, nil
	}
	s, err := getSession(ctx, e.db, sid)
	if errors.Is(err, errNoRows) {
		return nil, nil, newError(http.StatusForbidden, "session_not_found", "Session from session_id claim in JWT does not exist")
	} else if err != nil {
		return nil, nil, err
	}
	return u, s, nil
}

// tokenResponse is the body of a successful grant.
type tokenResponse struct {
	AccessToken  string   `json:"access_token"`
	TokenType    string   `json:"token_type"`
	ExpiresIn    int      `json:"expires_in"`
	ExpiresAt    int64    `json:"expires_at"`
	RefreshToken string   `json:"refresh_token"`
	User         userJSON `json:"user"`
}

// issue signs an access token for u in session s. expires_at is exactly the
// token's exp, which clients use to schedule their refresh.
func (e *Emulator) issue(u *user, s *session, refresh string) (*tokenResponse, error) {
	now := e.opts.Now().UTC()
	exp := now.Add(e.opts.AccessTokenTTL).Unix()
	claims := jwt.MapClaims{
		"iss":           e.opts.Issuer,
		"aud":           audience, // a string, as Supabase sends it
		"sub":           u.ID,
		"email":         u.Email,
		"phone":         u.Phone,
		"role":          u.Role,
		"aal":           "aal1",
		"amr":           []map[string]any{{"method": "password", "timestamp": s.SignedInAt.Unix()}},
		"session_id":    s.ID,
		"is_anonymous":  false,
		"app_metadata":  cloneMap(u.AppMetadata),
		"user_metadata": cloneMap(u.UserMetadata),
		"iat":           now.Unix(),
		"exp":           exp,
	}
	k := e.keys.current()
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = k.kid
	signed, err := t.SignedString(k.priv)
	if err != nil {
		return nil, err
	}
	return &tokenResponse{
		AccessToken: signed, TokenType: "bearer",
		ExpiresIn: int(e.opts.AccessTokenTTL / time.Second), ExpiresAt: exp,
		RefreshToken: refresh, User: u.json(),
	}, nil
}

// token serves POST /token?grant_type=password|refresh_token.
func (e *Emulator) token(w http.ResponseWriter, r *http.Request) error {
	var resp *tokenResponse
	var err error
	switch r.URL.Query().Get("grant_type") {
	case "password":
		resp, err = e.passwordGrant(w, r)
	case "refresh_token":
		resp, err = e.refreshGrant(w, r)
	default:
		return newError(http.StatusBadRequest, "invalid_credentials", "unsupported_grant_type")
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store") // RFC 6749 §5.1
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// userBanned is Supabase Auth's answer to a banned user: 403 on /user and
// other authenticated routes, 400 on the token grants.
func userBanned(status int) *httpError {
	return newError(status, "user_banned", "User is banned")
}

func invalidCredentials() *httpError {
	return newError(http.StatusBadRequest, "invalid_credentials", "Invalid login credentials")
}

// passwordGrant signs a user in. An unknown email and a wrong password get
// the same answer, after the same work (a bcrypt comparison, against the
// decoy for an unknown email), so neither the answer nor its timing tells
// which emails have accounts.
func (e *Emulator) passwordGrant(w http.ResponseWriter, r *http.Request) (*tokenResponse, error) {
	var p struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decodeBody(w, r, &p); err != nil {
		return nil, err
	}
	if p.Email == "" || p.Password == "" {
		return nil, invalidCredentials()
	}
	if err := e.signIns.allow(r, e.opts.Now()); err != nil {
		return nil, err
	}
	ctx := r.Context()
	var resp *tokenResponse
	err := inTx(ctx, e.db, func(tx *sql.Tx) error {
		email, herr := normalizeEmail(p.Email)
		if herr != nil {
			_ = e.compare(e.decoy(), []byte(p.Password))
			return invalidCredentials()
		}
		u, err := getUserByEmail(ctx, tx, email)
		if errors.Is(err, errNoRows) {
			_ = e.compare(e.decoy(), []byte(p.Password))
			return invalidCredentials()
		} else if err != nil {
			return err
		}
		if e.compare([]byte(u.PasswordHash), []byte(p.Password)) != nil {
			return invalidCredentials()
		}
		if u.EmailConfirmedAt == nil {
			return newError(http.StatusBadRequest, "email_not_confirmed", "Email not confirmed")
		}
		if u.bannedAt(e.now()) {
			return userBanned(http.StatusBadRequest)
		}
		now := e.now()
		s := &session{ID: uuid.NewString(), UserID: u.ID, SignedInAt: now}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, user_id, signed_in_at, created_at, updated_at)
			VALUES (?,?,?,?,?)`, s.ID, u.ID, toMicro(now), toMicro(now), toMicro(now)); err != nil {
			return err
		}
		refresh, err := insertRefreshToken(ctx, tx, s.ID, "", now)
		if err != nil {
			return err
		}
		u.LastSignInAt, u.UpdatedAt = &now, now
		if err := updateUser(ctx, tx, u); err != nil {
			return err
		}
		resp, err = e.issue(u, s, refresh)
		return err
	})
	return resp, err
}

// refreshGrant rotates a refresh token. Each token works once; its parent
// is still honoured for refreshReuseInterval after rotation (answering with
// the current child, not a new one) so a client that lost the response of a
// concurrent refresh is not logged out. Presenting a rotated token after
// that is treated as theft: the whole session is revoked, the reuse
// detection of the OAuth 2.0 Security BCP (RFC 9700 §4.14.2).
func (e *Emulator) refreshGrant(w http.ResponseWriter, r *http.Request) (*tokenResponse, error) {
	var p struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeBody(w, r, &p); err != nil {
		return nil, err
	}
	if p.RefreshToken == "" {
		return nil, newError(http.StatusBadRequest, "validation_failed", "refresh_token required")
	}
	ctx := r.Context()
	var resp *tokenResponse
	err := inTx(ctx, e.db, func(tx *sql.Tx) error {
		rt, err := getRefreshToken(ctx, tx, p.RefreshToken)
		if err != nil {
			return refreshNotFound(err)
		}
		now := e.now()
		issued := ""
		if rt.Revoked {
			if issued, err = reusedRefreshToken(ctx, tx, rt, now); err != nil {
				return err
			}
		}
		s, u, err := refreshSessionUser(ctx, tx, rt.SessionID, now)
		if err != nil {
			return err
		}
		if issued == "" {
			if issued, err = rotateRefreshToken(ctx, tx, rt, now); err != nil {
				return err
			}
		}
		resp, err = e.issue(u, s, issued)
		return err
	})
	return resp, err
}

// refreshNotFound is the answer to a refresh token whose token, session or
// user is gone (errNoRows); other errors pass unchanged.
func refreshNotFound(err error) error {
	if errors.Is(err, errNoRows) {
		return newError(http.StatusBadRequest, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
	}
	return err
}

// reusedRefreshToken handles a refresh with the revoked token rt: within
// the reuse interval (a client retrying a refresh whose answer it lost) it
// returns the session's active token; later it revokes every token of the
// session, as reuse then suggests theft, and answers already used.
func reusedRefreshToken(ctx context.Context, tx *sql.Tx, rt *refreshToken, now time.Time) (string, error) {
	active, err := activeRefreshToken(ctx, tx, rt.SessionID)
	if err != nil && !errors.Is(err, errNoRows) {
		return "", err
	}
	if active != nil && !now.After(rt.UpdatedAt.Add(refreshReuseInterval)) {
		return active.Token, nil
	}
	if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked = 1, updated_at = ?
		WHERE session_id = ? AND revoked = 0`, toMicro(now), rt.SessionID); err != nil {
		return "", err
	}
	return "", &httpError{status: http.StatusBadRequest, code: "refresh_token_already_used",
		msg: "Invalid Refresh Token: Already Used", commit: true}
}

// refreshSessionUser returns the session a refresh token belongs to and its
// user, who must not be banned at now.
func refreshSessionUser(ctx context.Context, tx *sql.Tx, sessionID string, now time.Time) (*session, *user, error) {
	s, err := getSession(ctx, tx, sessionID)
	if err != nil {
		return nil, nil, refreshNotFound(err)
	}
	u, err := getUserByID(ctx, tx, s.UserID)
	if err != nil {
		return nil, nil, refreshNotFound(err)
	}
	if u.bannedAt(now) {
		return nil, nil, userBanned(http.StatusBadRequest)
	}
	return s, u, nil
}

// rotateRefreshToken revokes rt, issues its child in the same session and
// touches the session; it returns the new token.
func rotateRefreshToken(ctx context.Context, tx *sql.Tx, rt *refreshToken, now time.Time) (string, error) {
	if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked = 1, updated_at = ? WHERE id = ?`,
		toMicro(now), rt.ID); err != nil {
		return "", err
	}
	issued, err := insertRefreshToken(ctx, tx, rt.SessionID, rt.Token, now)
	if err != nil {
		return "", err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sessions SET updated_at = ? WHERE id = ?`, toMicro(now), rt.SessionID); err != nil {
		return "", err
	}
	return issued, nil
}

// getUser serves GET /user: the user behind the bearer token.
func (e *Emulator) getUser(w http.ResponseWriter, r *http.Request) error {
	u, _, err := e.authenticate(r.Context(), r)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, u.json())
	return nil
}

// logout serves POST /logout?scope=global|local|others. Ending a session
// deletes it and, by cascade, its refresh tokens; access tokens already
// issued stay valid until exp, as in Supabase (they are stateless), but
// /user refuses them because their session is gone.
func (e *Emulator) logout(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	u, s, err := e.authenticate(ctx, r)
	if err != nil {
		return err
	}
	scope := r.URL.Query().Get("scope")
	if scope != "" && scope != "global" && scope != "local" && scope != "others" {
		return newError(http.StatusBadRequest, "validation_failed", "Unsupported logout scope")
	}
	switch {
	case scope == "" || scope == "global":
		_, err = e.db.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, u.ID)
	case s == nil:
	case scope == "local":
		_, err = e.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, s.ID)
	case scope == "others":
		_, err = e.db.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND id <> ?`, u.ID, s.ID)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

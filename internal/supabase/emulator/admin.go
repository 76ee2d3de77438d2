package emulator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"
)

// userJSON is a user as Supabase Auth serialises it.
type userJSON struct {
	ID               string         `json:"id"`
	Aud              string         `json:"aud"`
	Role             string         `json:"role"`
	Email            string         `json:"email"`
	EmailConfirmedAt *time.Time     `json:"email_confirmed_at,omitempty"`
	Phone            string         `json:"phone"`
	ConfirmedAt      *time.Time     `json:"confirmed_at,omitempty"`
	LastSignInAt     *time.Time     `json:"last_sign_in_at,omitempty"`
	AppMetadata      map[string]any `json:"app_metadata"`
	UserMetadata     map[string]any `json:"user_metadata"`
	Identities       []identityJSON `json:"identities"`
	CreatedAt        time.Time      `json:"created_at"`
	UpdatedAt        time.Time      `json:"updated_at"`
	BannedUntil      *time.Time     `json:"banned_until,omitempty"`
	IsAnonymous      bool           `json:"is_anonymous"`
}

type identityJSON struct {
	IdentityID   string         `json:"identity_id"`
	ID           string         `json:"id"`
	UserID       string         `json:"user_id"`
	IdentityData map[string]any `json:"identity_data"`
	Provider     string         `json:"provider"`
	LastSignInAt *time.Time     `json:"last_sign_in_at,omitempty"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	Email        string         `json:"email,omitempty"`
}

func (u *user) json() userJSON {
	j := userJSON{
		ID: u.ID, Aud: u.Aud, Role: u.Role, Email: u.Email, Phone: u.Phone,
		EmailConfirmedAt: u.EmailConfirmedAt, ConfirmedAt: u.EmailConfirmedAt, LastSignInAt: u.LastSignInAt,
		AppMetadata: cloneMap(u.AppMetadata), UserMetadata: cloneMap(u.UserMetadata),
		Identities: []identityJSON{}, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, BannedUntil: u.BannedUntil,
	}
	if u.Email != "" {
		// The email identity is derived, not stored: its id is stable
		// (a name-based UUID) so repeated reads agree.
		j.Identities = append(j.Identities, identityJSON{
			IdentityID: uuid.NewSHA1(uuid.NameSpaceURL, []byte("email:"+u.ID)).String(),
			ID:         u.ID, UserID: u.ID, Provider: "email", Email: u.Email,
			IdentityData: map[string]any{"sub": u.ID, "email": u.Email,
				"email_verified": u.EmailConfirmedAt != nil, "phone_verified": false},
			LastSignInAt: u.LastSignInAt, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt,
		})
	}
	return j
}

// adminUserParams is the body of admin create and update.
type adminUserParams struct {
	Email        string         `json:"email"`
	Phone        string         `json:"phone"`
	Password     *string        `json:"password"`
	EmailConfirm bool           `json:"email_confirm"`
	Role         string         `json:"role"`
	UserMetadata map[string]any `json:"user_metadata"`
	AppMetadata  map[string]any `json:"app_metadata"`
	// BanDuration bans the user for a Go duration ("24h", "876000h") from
	// now, or lifts a ban with "none", as Supabase Auth's admin update does.
	BanDuration string `json:"ban_duration"`
}

// banUntil applies a ban_duration to u at now.
func banUntil(u *user, banDuration string, now time.Time) error {
	switch banDuration {
	case "":
		return nil
	case "none":
		u.BannedUntil = nil
		return nil
	}
	d, err := time.ParseDuration(banDuration)
	if err != nil || d < 0 {
		return newError(http.StatusBadRequest, "validation_failed", "invalid format for ban duration: "+banDuration)
	}
	until := now.Add(d)
	u.BannedUntil = &until
	return nil
}

func emailExists() *httpError {
	return newError(http.StatusUnprocessableEntity, "email_exists",
		"A user with this email address has already been registered")
}

// adminCreateUser serves POST /admin/users. It answers 200, not 201, as
// Supabase Auth does.
func (e *Emulator) adminCreateUser(w http.ResponseWriter, r *http.Request) error {
	var p adminUserParams
	if err := decodeBody(w, r, &p); err != nil {
		return err
	}
	if p.Email == "" && p.Phone == "" {
		return newError(http.StatusUnprocessableEntity, "validation_failed", "Cannot create a user without either an email or phone")
	}
	email := ""
	if p.Email != "" {
		var herr *httpError
		if email, herr = normalizeEmail(p.Email); herr != nil {
			return herr
		}
	}
	if p.Password != nil && *p.Password != "" && len(*p.Password) < minPasswordLength {
		return weakPassword()
	}
	u, err := e.newUser(email, strings.TrimSpace(p.Phone), p.Password, p.EmailConfirm, p.UserMetadata, p.AppMetadata)
	if err != nil {
		return err
	}
	if p.Role != "" {
		u.Role = p.Role
	}
	if err := insertUser(r.Context(), e.db, u); err != nil {
		if isUniqueViolation(err) {
			return emailExists()
		}
		return err
	}
	writeJSON(w, http.StatusOK, u.json())
	return nil
}

// adminListUsers serves GET /admin/users?page=&per_page=, newest first,
// with X-Total-Count and an RFC 8288 Link header as Supabase Auth sends.
func (e *Emulator) adminListUsers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	page, perPage := int64(1), int64(50)
	bad := newError(http.StatusBadRequest, "validation_failed", "Bad Pagination Parameters")
	if v := q.Get("page"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return bad
		}
		page = n
	}
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return bad
		}
		perPage = min(n, 1000)
	}
	ctx := r.Context()
	var total int64
	if err := e.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&total); err != nil {
		return err
	}
	rows, err := e.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users
		ORDER BY created_at DESC, id LIMIT ? OFFSET ?`, perPage, (page-1)*perPage)
	if err != nil {
		return err
	}
	defer rows.Close()
	users := []userJSON{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return err
		}
		users = append(users, u.json())
	}
	if err := rows.Err(); err != nil {
		return err
	}
	last := max(int64(math.Ceil(float64(total)/float64(perPage))), 1)
	link := func(p int64, rel string) string {
		v := url.Values{"page": {strconv.FormatInt(p, 10)}, "per_page": {strconv.FormatInt(perPage, 10)}}
		return fmt.Sprintf(`<%s/admin/users?%s>; rel="%s"`, e.opts.Issuer, v.Encode(), rel)
	}
	links := []string{}
	if page < last {
		links = append(links, link(page+1, "next"))
	}
	links = append(links, link(last, "last"))
	w.Header().Set("Link", strings.Join(links, ", "))
	w.Header().Set("X-Total-Count", strconv.FormatInt(total, 10))
	writeJSON(w, http.StatusOK, map[string]any{"users": users, "aud": audience})
	return nil
}

// loadUser finds the user of a /admin/users/{id} route.
func (e *Emulator) loadUser(r *http.Request, q querier) (*user, error) {
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		return nil, newError(http.StatusBadRequest, "validation_failed", "user_id must be an UUID")
	}
	u, err := getUserByID(r.Context(), q, id)
	if errors.Is(err, errNoRows) {
		return nil, newError(http.StatusNotFound, "user_not_found", "User not found")
	}
	return u, err
}

func (e *Emulator) adminGetUser(w http.ResponseWriter, r *http.Request) error {
	u, err := e.loadUser(r, e.db)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, u.json())
	return nil
}

// adminUpdateUser serves PUT /admin/users/{id}. Setting a password ends
// every session of the user, as Supabase Auth does: whoever held the old
// password must not keep a refresh token.
func (e *Emulator) adminUpdateUser(w http.ResponseWriter, r *http.Request) error {
	var p adminUserParams
	if err := decodeBody(w, r, &p); err != nil {
		return err
	}
	ctx := r.Context()
	var out *user
	err := inTx(ctx, e.db, func(tx *sql.Tx) error {
		u, err := e.loadUser(r, tx)
		if err != nil {
			return err
		}
		now := e.now()
		endSessions, err := e.applyUpdate(u, &p, now)
		if err != nil {
			return err
		}
		u.UpdatedAt = now
		if err := saveUpdatedUser(ctx, tx, u, endSessions); err != nil {
			return err
		}
		out = u
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out.json())
	return nil
}

// applyUpdate sets on u the fields p names. It reports whether the
// password changed, which ends the user's sessions.
func (e *Emulator) applyUpdate(u *user, p *adminUserParams, now time.Time) (endSessions bool, err error) {
	if p.Email != "" {
		email, herr := normalizeEmail(p.Email)
		if herr != nil {
			return false, herr
		}
		u.Email = email
	}
	if p.Phone != "" {
		u.Phone = strings.TrimSpace(p.Phone)
	}
	if p.Role != "" {
		u.Role = p.Role
	}
	if p.EmailConfirm && u.EmailConfirmedAt == nil {
		u.EmailConfirmedAt = &now
	}
	if p.Password != nil {
		if len(*p.Password) < minPasswordLength {
			return false, weakPassword()
		}
		hash, err := bcrypt.GenerateFromPassword([]byte(*p.Password), e.opts.BcryptCost)
		if err != nil {
			return false, err
		}
		u.PasswordHash, endSessions = string(hash), true
	}
	if err := banUntil(u, p.BanDuration, now); err != nil {
		return false, err
	}
	mergeMetadata(u.AppMetadata, p.AppMetadata)
	mergeMetadata(u.UserMetadata, p.UserMetadata)
	return endSessions, nil
}

// saveUpdatedUser writes u back (email_exists when its new email is taken)
// and, when endSessions, deletes its sessions.
func saveUpdatedUser(ctx context.Context, tx *sql.Tx, u *user, endSessions bool) error {
	if err := updateUser(ctx, tx, u); err != nil {
		if isUniqueViolation(err) {
			return emailExists()
		}
		return err
	}
	if endSessions {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, u.ID); err != nil {
			return err
		}
	}
	return nil
}

// adminDeleteUser serves DELETE /admin/users/{id}; sessions and refresh
// tokens go with the user.
func (e *Emulator) adminDeleteUser(w http.ResponseWriter, r *http.Request) error {
	u, err := e.loadUser(r, e.db)
	if err != nil {
		return err
	}
	if _, err := e.db.ExecContext(r.Context(), `DELETE FROM users WHERE id = ?`, u.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

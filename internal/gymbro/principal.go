package gymbro

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"
)

// Providers a Principal can come from.
const (
	ProviderSupabase = "supabase"
	ProviderFirebase = "firebase"
	ProviderOIDC     = "oidc"
)

// Principal is the verified identity behind a request. It is built from a
// token by a Verifier; nothing past the auth layer knows which provider
// signed the token.
type Principal struct {
	// UID is the user's identity here, the key of everything stored or
	// limited per user: UserID(Provider, Issuer, ProviderUID), so that two
	// issuers can never share one.
	UID string
	// ProviderUID is the token's own sub, as its issuer knows the user.
	ProviderUID string
	Email       string // may be empty (phone or anonymous sign-in)
	// EmailVerified is the token's email_verified claim (Firebase and OIDC
	// send it). Supabase access tokens carry none, so it is false for them;
	// user_metadata.email_verified is the user's to edit and never read.
	EmailVerified bool
	Provider      string         // ProviderSupabase, ProviderFirebase or ProviderOIDC
	Issuer        string         // the token's iss
	SessionID     string         // Supabase session_id; empty when the provider has none
	Role          string         // Supabase role ("authenticated"); empty otherwise
	AuthTime      time.Time      // the token's auth_time (when the user signed in); zero when absent
	ExpiresAt     time.Time      // the token's exp
	Claims        map[string]any // every claim of the token, as decoded
}

// OIDCNamespaceLen is how many hex digits of the SHA-256 of an OIDC
// issuer's iss its users' uids carry: 12 digits (48 bits) keep uids short
// while two configured issuers sharing a namespace stays out of reach
// (and the verifier refuses such a configuration).
const OIDCNamespaceLen = 12

// UserID is the uid of the user an issuer knows as sub: a Supabase user
// keeps their Supabase id (chat_records.user_id and its row-level security
// rely on it); a Firebase user is "firebase:<sub>"; a user of another
// OpenID Connect issuer is "oidc:<namespace>:<sub>", the namespace being
// OIDCNamespace(issuer). A namespaced uid holds a colon and a Supabase id
// (a UUID) never does, so no two issuers can share a uid.
func UserID(provider, issuer, sub string) string {
	switch provider {
	case ProviderFirebase:
		return ProviderFirebase + ":" + sub
	case ProviderOIDC:
		return ProviderOIDC + ":" + OIDCNamespace(issuer) + ":" + sub
	}
	return sub
}

// OIDCNamespace is the part of an OIDC user's uid that names their issuer:
// the first OIDCNamespaceLen hex digits of the SHA-256 of its iss, e.g.
// printf %s "$ISS" | sha256sum | cut -c1-12.
func OIDCNamespace(issuer string) string {
	sum := sha256.Sum256([]byte(issuer))
	return hex.EncodeToString(sum[:])[:OIDCNamespaceLen]
}

// ProviderUIDOf is the inverse of UserID: the sub inside uid, the user's id
// as provider knows them. A uid stored before uids were namespaced (a bare
// sub) is returned as it is.
func ProviderUIDOf(provider, uid string) string {
	switch provider {
	case ProviderFirebase:
		return strings.TrimPrefix(uid, ProviderFirebase+":")
	case ProviderOIDC:
		if rest, ok := strings.CutPrefix(uid, ProviderOIDC+":"); ok {
			if _, sub, ok := strings.Cut(rest, ":"); ok {
				return sub
			}
		}
	}
	return uid
}

// LogValue keeps claims (which may hold personal data) out of logs.
func (p *Principal) LogValue() slog.Value {
	if p == nil {
		return slog.StringValue("")
	}
	return slog.GroupValue(slog.String("uid", p.UID), slog.String("provider", p.Provider))
}

// Verifier turns a bearer token into a Principal.
type Verifier interface {
	// Verify checks token's signature and claims. It fails with an *Error of
	// KindUnauthenticated (code token_expired, signature_invalid, …) when the
	// token is not acceptable and KindUnavailable (code keys_unavailable) when
	// the keys to decide cannot be had.
	Verify(ctx context.Context, token string) (*Principal, error)
}

type principalKey struct{}

// NewContextWithPrincipal returns a copy of ctx that carries p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the principal ctx carries, or nil.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// UserDetails is what a provider knows about a user beyond the token.
type UserDetails struct {
	UID           string `json:"uid"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified"`
	DisplayName   string `json:"display_name,omitempty"`
	Phone         string `json:"phone,omitempty"`
	Provider      string `json:"provider"`
	// ProviderIDs are the sign-in methods linked to the user, as the
	// provider names them: Supabase's identity providers ("email",
	// "google", …), Firebase's provider ids ("password", "google.com", …).
	ProviderIDs  []string       `json:"provider_ids,omitempty"`
	Disabled     bool           `json:"disabled"` // Supabase: banned now; Firebase: disabled
	CreatedAt    time.Time      `json:"created_at,omitzero"`
	LastSignInAt time.Time      `json:"last_sign_in_at,omitzero"`
	AppMetadata  map[string]any `json:"app_metadata,omitempty"`
	UserMetadata map[string]any `json:"user_metadata,omitempty"`
}

// IdentityProvider answers questions about a user that a token cannot: the
// seed's get_user_details. Implementations sit behind this interface so the
// rest of the code does not know the provider's API.
type IdentityProvider interface {
	// UserDetails returns what p's provider knows of p, or an *Error with
	// KindNotFound when the provider has no such user.
	UserDetails(ctx context.Context, p *Principal) (*UserDetails, error)
}

// Session-check codes: the token is genuine but its session is over, or the
// issuer cannot say.
const (
	CodeSessionRevoked  = "session_revoked"
	CodeAuthUnavailable = "auth_unavailable"
)

// SessionChecker confirms that a verified token's session is still live: a
// signature proves who signed in, not that they have not signed out, been
// banned or been deleted since.
type SessionChecker interface {
	// CheckSession returns nil when p's session is live (or the provider has
	// no sessions to check), an *Error of KindUnauthenticated with code
	// session_revoked when it has ended, and KindUnavailable with code
	// auth_unavailable when the issuer cannot be asked and no recent answer
	// vouches for it.
	CheckSession(ctx context.Context, p *Principal, token string) error
}

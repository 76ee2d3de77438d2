package httpapi

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"net/http"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// meView is the body of GET /api/v1/me. Claims and Details are the last
// members: handleMe writes them itself (see there).
type meView struct {
	UID         string         `json:"uid"`
	ProviderUID string         `json:"provider_uid"` // the token's sub, as its issuer knows the user
	Email       string         `json:"email,omitempty"`
	Provider    string         `json:"provider"`
	Issuer      string         `json:"issuer"`
	SessionID   string         `json:"session_id,omitempty"`
	Role        string         `json:"role,omitempty"`
	ExpiresAt   time.Time      `json:"expires_at"`
	Claims      map[string]any `json:"claims"`
	Details     any            `json:"details,omitempty"`
}

// selectedClaims are the claims /me shows: identity and session facts, not
// whatever else a provider put in the token. They are in byte order, the
// order encoding/json gives a map's keys.
var selectedClaims = []string{"aal", "amr", "app_metadata", "aud", "auth_time", "email_verified", "exp", "firebase", "iat", "is_anonymous", "name", "phone", "user_metadata"}

// handleMe serves GET /api/v1/me: the verified user, and with
// ?details=true what the provider of the token's issuer knows of them
// (Options.Identity routes by issuer; no provider there is 404
// user_not_found, never another provider's answer).
//
// The body without details depends on the principal alone, and an app
// sends the same access token for up to an hour, so the body is kept per
// principal (meBodies) and encoded again only for a principal not seen
// lately.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	var details any
	if r.URL.RawQuery != "" && r.URL.Query().Get("details") == "true" && s.opts.Identity != nil {
		d, err := s.opts.Identity.UserDetails(r.Context(), p)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		details = d
	}
	var body []byte
	if details == nil {
		body = s.meBodies.get(p)
	}
	if body == nil {
		var err error
		if body, err = encodeMe(p, details); err != nil { // nothing is written yet: a clean 500 problem
			s.writeError(w, r, err)
			return
		}
		if details == nil {
			s.meBodies.put(p, body)
		}
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// jsonContentType is the Content-Type value of a JSON answer, shared: a
// header value set by assignment skips canonicalizing the key and
// allocating the slice. Nothing appends to it (Header.Add would copy).
var jsonContentType = []string{"application/json"}

// encodeMe writes the same bytes as encoding a meView whose Claims map
// holds the selected claims, but without building and sorting that map: it
// encodes the view with nil Claims and Details, replaces the trailing
// `"claims":null}` with the selected claims in order, then the details.
func encodeMe(p *gymbro.Principal, details any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as writeJSON
	err := enc.Encode(meView{UID: p.UID, ProviderUID: p.ProviderUID, Email: p.Email, Provider: p.Provider, Issuer: p.Issuer, SessionID: p.SessionID, Role: p.Role, ExpiresAt: p.ExpiresAt})
	if err != nil {
		return nil, err
	}
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
			return nil, err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
	}
	buf.WriteByte('}')
	if details != nil {
		buf.WriteString(`,"details":`)
		if err = enc.Encode(details); err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteString("}\n")
	return buf.Bytes(), nil
}

// meCacheSlots bounds meBodies: a few thousand users active at once each
// find their body; beyond that, slots are overwritten and re-encoded.
const meCacheSlots = 4096

// meCache keeps the /me body of recently seen principals, in slots picked
// by a hash of the user and session ids (a slot holds the last principal
// hashed to it). An entry serves only a principal equal to the one it was
// encoded from: the same fields and the very same Claims map, which the
// verifier shares between the answers for one token and never changes (see
// auth.Verifier.Verify). A new token (a refresh) has a new map, so its
// body is encoded afresh. Safe for concurrent use.
type meCache struct {
	seed  maphash.Seed
	slots [meCacheSlots]atomic.Pointer[meEntry]
}

type meEntry struct {
	p    gymbro.Principal // Claims: the map encoded, compared by identity
	body []byte
}

func newMeCache() *meCache { return &meCache{seed: maphash.MakeSeed()} }

func (c *meCache) slot(p *gymbro.Principal) *atomic.Pointer[meEntry] {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(p.UID)
	h.WriteString(p.SessionID)
	return &c.slots[h.Sum64()%meCacheSlots]
}

// get returns p's body, or nil.
func (c *meCache) get(p *gymbro.Principal) []byte {
	if c == nil || p.Claims == nil {
		return nil
	}
	e := c.slot(p).Load()
	if e == nil || !samePrincipal(&e.p, p) {
		return nil
	}
	return e.body
}

// put remembers body as p's.
func (c *meCache) put(p *gymbro.Principal, body []byte) {
	if c == nil || p.Claims == nil {
		return
	}
	c.slot(p).Store(&meEntry{p: *p, body: body})
}

// samePrincipal reports whether a and b are equal field by field, with
// their Claims the same map.
func samePrincipal(a, b *gymbro.Principal) bool {
	return a.UID == b.UID && a.ProviderUID == b.ProviderUID && a.SessionID == b.SessionID && a.Email == b.Email && a.Provider == b.Provider &&
		a.Issuer == b.Issuer && a.Role == b.Role && a.ExpiresAt.Equal(b.ExpiresAt) &&
		a.ExpiresAt.Location() == b.ExpiresAt.Location() &&
		reflect.ValueOf(a.Claims).UnsafePointer() == reflect.ValueOf(b.Claims).UnsafePointer()
}

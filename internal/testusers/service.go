package testusers

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/mailapi"
	"github.com/gymbro/gymbro-api/internal/ratelimit"
	"github.com/gymbro/gymbro-api/internal/supabase"
)

// Error codes of this package. Every one is a stable part of the
// create-mail-user contract.
const (
	CodeDisabled             = "test_users_disabled"      // 403: GYMBRO_TEST_USERS_ENABLED is off
	CodeNotOperator          = "not_an_operator"          // 403: production, caller not in GYMBRO_TEST_USERS_ADMINS
	CodePrefixNotAllowed     = "prefix_not_allowed"       // 422: username_prefix is not an allowed prefix or <prefix>-NN
	CodeServiceKeyMissing    = "service_role_key_missing" // 503: no SUPABASE_SERVICE_ROLE_KEY
	CodeSupabaseUnavailable  = "supabase_unavailable"     // 503: no answer from Supabase Auth
	CodeSupabaseRejected     = "supabase_rejected"        // 502: Supabase Auth answered an error (its code and msg in the message)
	CodeTokenUnverifiable    = "token_unverifiable"       // 502: our verifier refuses the token Supabase issued
	CodeMailAPIFailed        = mailapi.CodeMailAPIFailed  // 502: the mail API gave no inbox
	CodeMailAPINotConfigured = "mail_api_not_configured"  // 422: mail_api_key sent but no mail API is configured
	CodeUsernameTaken        = "username_taken"           // 409: the full name belongs to a user that is not a test user
	CodeNameContended        = "username_contended"       // 503: other instances kept taking the names we picked
	CodeNotYours             = "test_user_not_yours"      // 403: the named test user was made by someone else
	CodeTestUserCaller       = "test_user_cannot_create"  // 403: a test user's token asked for test users
	codeTokenMissing         = "token_missing"            // 401: no caller; the auth layer's code
)

// Defaults of Options.
const (
	DefaultPrefix      = "gymbro-test"
	DefaultEmailDomain = "test.gymbro.local"
	DefaultPerMinute   = 10
)

const (
	// passwordLength is well above Supabase's default minimum (6) and any
	// sane project setting, and holds every character class so a project
	// that requires "lowercase, uppercase, digits and symbols" accepts it.
	passwordLength = 24
	// maxAttempts bounds the allocate-create loop when another instance
	// keeps winning the race for a name (email_exists).
	maxAttempts = 8
	// listPageSize is the largest page Supabase Auth serves.
	listPageSize = 1000
	// maxListPages stops a misbehaving server from paging us forever.
	maxListPages = 1000
)

// Options configures a Service. The composition root fills it from
// configuration; this package reads no environment.
type Options struct {
	// Auth is the Supabase Auth client. Nil, or ServiceKeySet false, makes
	// every call fail with service_role_key_missing: the Admin API needs the
	// secret key.
	Auth *supabase.AuthClient
	// ServiceKeySet reports that Auth was built with a service role key
	// (SUPABASE_SERVICE_ROLE_KEY, or the emulator's generated one).
	ServiceKeySet bool
	// Verifier checks the access token before it is handed out, so the
	// console never gets a token the API would then refuse. Required when
	// Enabled.
	Verifier gymbro.Verifier
	// Mail creates inboxes for requests that carry mail_api_key; optional.
	Mail mailapi.Provider
	// Enabled is GYMBRO_TEST_USERS_ENABLED. Off, every call fails with
	// test_users_disabled.
	Enabled bool
	// Production limits callers to Admins.
	Production bool
	// Admins (GYMBRO_TEST_USERS_ADMINS, plus the development operator) are
	// the operators: who may make test users in production (required
	// there; in development any verified user may), and, in both, reuse a
	// test user someone else made. An entry is a Supabase uid, an email or
	// issuer|sub. A uid or an email matches only a token of SupabaseIssuer,
	// an email only once Supabase confirms it is the user's own, confirmed
	// address (the Admin API's email_confirmed_at): another issuer's email
	// claim is whatever its user typed. issuer|sub names a user of any
	// issuer by the token's exact iss and sub.
	Admins []string
	// SupabaseIssuer is the iss of the tokens of the Supabase project Auth
	// talks to: the only issuer whose users a uid or email entry of Admins
	// can name.
	SupabaseIssuer string
	// Prefixes (GYMBRO_TEST_USERS_PREFIXES) are the allowed name prefixes;
	// default [DefaultPrefix]. Each is lower-case letters, digits, '.', '_'
	// and '-', not ending in -<digits> (that would make names ambiguous).
	Prefixes []string
	// EmailDomain (GYMBRO_TEST_USERS_EMAIL_DOMAIN) is the domain of addresses
	// made from names; default DefaultEmailDomain.
	EmailDomain string
	// PerMinute is how many calls one caller may make in any 60 s window;
	// default DefaultPerMinute.
	PerMinute int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand is the source of passwords; default crypto/rand.Reader.
	Rand io.Reader
	// Logger receives the audit lines; default slog.Default().
	Logger *slog.Logger
}

// LogValue shows the settings without the clients.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("enabled", o.Enabled), slog.Bool("production", o.Production),
		slog.Bool("service_key_set", o.ServiceKeySet), slog.Bool("mail_api", o.Mail != nil),
		slog.Any("prefixes", o.Prefixes), slog.String("email_domain", o.EmailDomain),
		slog.Int("admins", len(o.Admins)), slog.Int("per_minute", o.PerMinute))
}

// Service implements gymbro.TestUsers. It is safe for concurrent use.
type Service struct {
	auth        *supabase.AuthClient
	verifier    gymbro.Verifier
	mail        mailapi.Provider
	enabled     bool
	production  bool
	adminUIDs   map[string]bool
	adminEmails map[string]bool
	adminSubs   map[string]bool // issuer|sub
	supabaseIss string
	prefixes    []string
	domain      string
	now         func() time.Time
	rand        io.Reader
	log         *slog.Logger
	limiter     *ratelimit.Memory
	// alloc serialises allocation, creation and sign-in. A channel rather
	// than a mutex so a caller who gives up stops waiting.
	alloc chan struct{}
}

var _ gymbro.TestUsers = (*Service)(nil)

// New returns a Service, or an error naming what is wrong with opts. A
// disabled service needs nothing else; an enabled one needs a Verifier,
// and in production at least one admin.
func New(opts Options) (*Service, error) {
	s := &Service{
		verifier:    opts.Verifier,
		mail:        opts.Mail,
		enabled:     opts.Enabled,
		production:  opts.Production,
		adminUIDs:   map[string]bool{},
		adminEmails: map[string]bool{},
		adminSubs:   map[string]bool{},
		supabaseIss: opts.SupabaseIssuer,
		domain:      cmp.Or(strings.ToLower(strings.TrimSpace(opts.EmailDomain)), DefaultEmailDomain),
		now:         opts.Now,
		rand:        cmp.Or(opts.Rand, rand.Reader),
		log:         cmp.Or(opts.Logger, slog.Default()),
		alloc:       make(chan struct{}, 1),
	}
	if opts.ServiceKeySet {
		s.auth = opts.Auth
	}
	if s.now == nil {
		s.now = time.Now
	}
	if !validDomain(s.domain) {
		return nil, fmt.Errorf("testusers: EmailDomain %q is not a domain name", opts.EmailDomain)
	}
	if err := s.setPrefixes(opts.Prefixes); err != nil {
		return nil, err
	}
	s.setAdmins(opts.Admins)
	if opts.PerMinute < 0 {
		return nil, errors.New("testusers: negative PerMinute")
	}
	s.limiter = ratelimit.NewMemory(cmp.Or(opts.PerMinute, DefaultPerMinute), time.Minute, s.now)
	if err := s.checkEnabled(); err != nil {
		return nil, err
	}
	return s, nil
}

// setPrefixes keeps the distinct allowed prefixes, lower-cased; none means
// DefaultPrefix.
func (s *Service) setPrefixes(prefixes []string) error {
	for _, p := range prefixes {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if !validPrefix(p) {
			return fmt.Errorf("testusers: prefix %q: use lower-case letters, digits, '.', '_' and '-', not ending in -<digits>", p)
		}
		if !slices.Contains(s.prefixes, p) {
			s.prefixes = append(s.prefixes, p)
		}
	}
	if len(s.prefixes) == 0 {
		s.prefixes = []string{DefaultPrefix}
	}
	return nil
}

// setAdmins sorts the operators into issuer|sub entries, (lower-cased)
// emails and uids.
func (s *Service) setAdmins(admins []string) {
	for _, a := range admins {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case strings.Contains(a, "|"):
			iss, sub, _ := strings.Cut(a, "|")
			s.adminSubs[strings.TrimSpace(iss)+"|"+strings.TrimSpace(sub)] = true
		case strings.Contains(a, "@"):
			s.adminEmails[strings.ToLower(a)] = true
		default:
			s.adminUIDs[a] = true
		}
	}
}

// checkEnabled checks what an enabled service needs: a Verifier, and in
// production at least one admin.
func (s *Service) checkEnabled() error {
	if !s.enabled {
		return nil
	}
	if s.verifier == nil {
		return errors.New("testusers: a Verifier is required when test users are enabled")
	}
	if s.production && len(s.adminUIDs)+len(s.adminEmails)+len(s.adminSubs) == 0 {
		return errors.New("testusers: GYMBRO_TEST_USERS_ADMINS must name at least one uid, email or issuer|sub in production")
	}
	return nil
}

// Create implements gymbro.TestUsers: it checks the guards, then makes (or
// reuses) the named user, signs it in and verifies the token. Failures are
// *gymbro.Error with the codes of this package; a caller's cancellation is
// returned as is.
func (s *Service) Create(ctx context.Context, caller *gymbro.Principal, req gymbro.TestUserRequest) (res *gymbro.TestUser, err error) {
	var username string
	defer func() { s.audit(ctx, caller, req, username, res, err) }()

	name, op, err := s.admit(ctx, caller, req)
	if err != nil {
		return nil, err
	}
	if name.full() {
		username = name.String()
	}

	u, sess, err := s.obtain(ctx, caller, op, name, req.MailAPIKey, &username)
	if err != nil {
		return nil, err
	}
	p, err := s.verifier.Verify(ctx, sess.AccessToken)
	if err != nil && !u.reused {
		// Nobody holds this user's password: remove it, so the next call
		// makes the same name again instead of leaving an orphan behind.
		s.discard(ctx, u.userID)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		kind := gymbro.KindUpstream
		if gymbro.ErrorKind(err) == gymbro.KindUnavailable {
			kind = gymbro.KindUnavailable // our JWKS fetch failed: transient
		}
		return nil, &gymbro.Error{Kind: kind, Code: CodeTokenUnverifiable, Err: err,
			Message: fmt.Sprintf("Supabase Auth issued a token this API does not accept (%s); check that SUPABASE_URL names the project that signs the app's tokens.", gymbro.ErrorCode(err))}
	}
	if p.UID != u.userID {
		return nil, gymbro.Errorf(gymbro.KindUpstream, CodeTokenUnverifiable,
			"Supabase Auth issued a token for another user than the one signed in.")
	}
	expiresAt := sess.ExpiresAt
	if expiresAt == 0 {
		expiresAt = s.now().Add(time.Duration(sess.ExpiresIn) * time.Second).Unix()
	}
	return &gymbro.TestUser{
		Username:     username,
		Email:        u.email,
		Password:     u.password,
		UserID:       u.userID,
		AccessToken:  sess.AccessToken,
		RefreshToken: sess.RefreshToken,
		ExpiresAt:    expiresAt,
		TokenType:    "bearer",
		Reused:       u.reused,
	}, nil
}

// admit checks every guard of Create, in order, and returns the parsed
// name and whether the caller is an operator.
func (s *Service) admit(ctx context.Context, caller *gymbro.Principal, req gymbro.TestUserRequest) (name, bool, error) {
	if !s.enabled {
		return name{}, false, gymbro.Errorf(gymbro.KindForbidden, CodeDisabled,
			"Test users are disabled; set GYMBRO_TEST_USERS_ENABLED=true to enable them.")
	}
	if caller == nil || caller.UID == "" {
		return name{}, false, gymbro.Errorf(gymbro.KindUnauthenticated, codeTokenMissing, "Sign in to create test users.")
	}
	op, err := s.operator(ctx, caller)
	if err != nil {
		return name{}, false, err
	}
	if s.production && !op {
		return name{}, false, gymbro.Errorf(gymbro.KindForbidden, CodeNotOperator,
			"Only operators may create test users in production; add your Supabase uid or email (or issuer|sub) to GYMBRO_TEST_USERS_ADMINS.")
	}
	if s.isTestUser(caller) {
		return name{}, false, gymbro.Errorf(gymbro.KindForbidden, CodeTestUserCaller,
			"A test user cannot create test users; sign in as yourself (or the operator).")
	}
	n, err := s.parseName(req.UsernamePrefix)
	if err != nil {
		return name{}, false, err
	}
	if ok, wait, _ := s.limiter.Allow(context.Background(), caller.UID); !ok { // the in-memory limiter never fails
		return name{}, false, &gymbro.Error{Kind: gymbro.KindRateLimited, Code: gymbro.CodeRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("Too many test users; try again in %d s.", int((wait+time.Second-1)/time.Second))}
	}
	if s.auth == nil {
		return name{}, false, gymbro.Errorf(gymbro.KindUnavailable, CodeServiceKeyMissing,
			"Creating test users needs the Supabase service role key; set SUPABASE_SERVICE_ROLE_KEY (the project's secret key).")
	}
	if req.MailAPIKey != "" && s.mail == nil {
		return name{}, false, gymbro.Errorf(gymbro.KindUnprocessable, CodeMailAPINotConfigured,
			"This server has no mail API configured; leave mail_api_key empty to use a fixed test domain.")
	}
	return n, op, nil
}

// operator reports whether p is one of Admins: by issuer|sub; or, for a
// user of the Supabase project only, by uid, or by an email that Supabase
// confirms is their own confirmed address. Only an email entry costs a
// call, and only for a caller whose token claims that email.
func (s *Service) operator(ctx context.Context, p *gymbro.Principal) (bool, error) {
	if s.adminSubs[p.Issuer+"|"+p.ProviderUID] {
		return true, nil
	}
	if p.Provider != gymbro.ProviderSupabase || p.Issuer == "" || p.Issuer != s.supabaseIss {
		return false, nil // another issuer's uid or email claim names no one here
	}
	if s.adminUIDs[p.UID] {
		return true, nil
	}
	if p.Email == "" || !s.adminEmails[strings.ToLower(p.Email)] || s.auth == nil {
		return false, nil
	}
	// A Supabase access token carries the email without saying whether it
	// was confirmed (a project may let users sign in unconfirmed); the
	// Admin API says, and gives the address as it is now.
	u, err := s.auth.GetUser(ctx, p.UID)
	var ae *supabase.APIError
	switch {
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		return false, nil
	case err != nil:
		return false, supabaseError(err)
	}
	return u.EmailConfirmedAt != nil && s.adminEmails[strings.ToLower(u.Email)], nil
}

// isTestUser reports whether p is itself a test user: its token carries
// the user_metadata this service gives test users, or its email is on the
// test domain.
func (s *Service) isTestUser(p *gymbro.Principal) bool {
	meta, _ := p.Claims["user_metadata"].(map[string]any)
	flagged, _ := meta["test_user"].(bool)
	return flagged || strings.HasSuffix(strings.ToLower(p.Email), "@"+s.domain)
}

// mayReuse reports whether caller (an operator when op) may take over the
// existing test user u: its creator and operators may; nobody else, so one
// developer cannot read another's test conversations by resetting the
// password.
func mayReuse(caller *gymbro.Principal, op bool, u *supabase.User) bool {
	creator, _ := u.UserMetadata["created_by"].(string)
	return op || (creator != "" && creator == caller.UID)
}

// account is the outcome of obtain: who was signed in, and with what.
type account struct {
	userID, email, password string
	reused                  bool
}

// LogValue keeps the password out of logs.
func (a account) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user_id", a.userID), slog.Bool("reused", a.reused))
}

// obtain finds or creates the user for n and signs it in, all under the
// allocation lock. It sets *username as soon as a name is chosen, so the
// audit line names it even when a later step fails.
func (s *Service) obtain(ctx context.Context, caller *gymbro.Principal, op bool, n name, mailKey string, username *string) (*account, *supabase.Session, error) {
	select {
	case s.alloc <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, context.Cause(ctx)
	}
	defer func() { <-s.alloc }()

	c := &creation{caller: caller, mailKey: mailKey, taken: map[int]bool{}}
	for range maxAttempts {
		users, err := s.listAll(ctx)
		if err != nil {
			return nil, nil, err
		}
		target := n
		if !n.full() {
			target.num = lowestFree(users, n.prefix, c.taken)
		} else if u, err := s.findOurs(users, target); err != nil {
			return nil, nil, err
		} else if u != nil {
			*username = target.String()
			if !mayReuse(caller, op, u) {
				return nil, nil, gymbro.Errorf(gymbro.KindForbidden, CodeNotYours,
					"%s was created by someone else; only they or an operator may reuse it. Send the prefix alone for a new one.", target.String())
			}
			return s.reuse(ctx, u)
		}
		*username = target.String()
		acc, sess, err := s.create(ctx, c, target)
		if errors.Is(err, errNameTaken) {
			continue
		}
		return acc, sess, err
	}
	return nil, nil, &gymbro.Error{Kind: gymbro.KindUnavailable, Code: CodeNameContended, RetryAfter: time.Second,
		Message: "Other servers kept taking the test user names picked for this call; try again."}
}

// creation is what one obtain call keeps across its attempts.
type creation struct {
	caller  *gymbro.Principal
	mailKey string
	inbox   string       // created at most once per call: inboxes cost quota
	taken   map[int]bool // numbers another instance took under our feet
}

// errNameTaken tells obtain that another instance created the name between
// its list and its create.
var errNameTaken = errors.New("testusers: name taken meanwhile")

// create makes the user target with a fresh password and signs it in. It
// returns errNameTaken when another instance won the name: a full name is
// then reused on the next pass; a prefix moves on to the next number even
// if the list lags.
func (s *Service) create(ctx context.Context, c *creation, target name) (*account, *supabase.Session, error) {
	pw, err := s.password()
	if err != nil {
		return nil, nil, err
	}
	email, err := s.address(ctx, c, target)
	if err != nil {
		return nil, nil, err
	}
	created, err := s.auth.CreateUser(ctx, supabase.AdminUserParams{
		Email: email, Password: pw, EmailConfirm: true,
		UserMetadata: map[string]any{"username": target.String(), "test_user": true, "created_by": c.caller.UID},
	})
	var ae *supabase.APIError
	if errors.As(err, &ae) && ae.Code == supabase.AuthCodeEmailExists && c.inbox == "" {
		c.taken[target.num] = true
		return nil, nil, errNameTaken
	}
	if err != nil {
		return nil, nil, supabaseError(err)
	}
	sess, err := s.auth.SignInWithPassword(ctx, email, pw)
	if err != nil {
		s.discard(ctx, created.ID)
		return nil, nil, supabaseError(err)
	}
	return &account{userID: created.ID, email: created.Email, password: pw}, sess, nil
}

// address is the email of target: on the test domain, or the call's mail
// inbox (created on first use) when the caller sent a mail API key.
func (s *Service) address(ctx context.Context, c *creation, target name) (string, error) {
	if c.mailKey == "" {
		return target.String() + "@" + s.domain, nil
	}
	if c.inbox == "" {
		inbox, err := s.mail.CreateInbox(ctx, c.mailKey)
		if err != nil {
			return "", mailError(err)
		}
		c.inbox = inbox
	}
	return c.inbox, nil
}

// discard deletes a user this call created but cannot hand out (its
// sign-in or token check failed), through the Admin API. It runs even when
// the caller has gone; a failure is logged, and the next call with the
// prefix reuses the name through findOurs.
func (s *Service) discard(ctx context.Context, userID string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.auth.DeleteUser(ctx, userID); err != nil {
		s.log.WarnContext(ctx, "test user: could not remove a user whose creation failed", "user_id", userID, "err", err)
	}
}

// reuse gives an existing test user a new password and signs it in.
// Setting the password through the Admin API also ends the user's earlier
// sessions: their refresh tokens stop working, and with session checks on
// (GYMBRO_SESSION_CHECK) so do their access tokens on the costly writes;
// otherwise an older access token lives until it expires.
func (s *Service) reuse(ctx context.Context, u *supabase.User) (*account, *supabase.Session, error) {
	pw, err := s.password()
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.auth.UpdateUser(ctx, u.ID, supabase.AdminUserParams{Password: pw, EmailConfirm: true}); err != nil {
		return nil, nil, supabaseError(err)
	}
	sess, err := s.auth.SignInWithPassword(ctx, u.Email, pw)
	if err != nil {
		return nil, nil, supabaseError(err)
	}
	return &account{userID: u.ID, email: u.Email, password: pw, reused: true}, sess, nil
}

// listAll pages through every user. Supabase Auth has no filter on
// metadata, so this is the only way to see which names are in use.
func (s *Service) listAll(ctx context.Context) ([]supabase.User, error) {
	var all []supabase.User
	for page := 1; page <= maxListPages; page++ {
		users, total, err := s.auth.ListUsers(ctx, page, listPageSize)
		if err != nil {
			return nil, supabaseError(err)
		}
		all = append(all, users...)
		if len(users) < listPageSize || len(all) >= total {
			return all, nil
		}
	}
	return all, nil
}

// findOurs returns the test user that holds n's name, nil when nobody
// does, and username_taken when someone who is not a test user does.
// When several test users claim the name (two instances raced with mail
// inboxes), the oldest wins so repeated calls agree.
func (s *Service) findOurs(users []supabase.User, n name) (*supabase.User, error) {
	full := n.String()
	ourEmail := full + "@" + s.domain
	var best *supabase.User
	foreign := false
	for i := range users {
		u := &users[i]
		email := strings.ToLower(u.Email)
		meta, _ := u.UserMetadata["username"].(string)
		isTest, _ := u.UserMetadata["test_user"].(bool)
		switch {
		case email == ourEmail || (isTest && strings.EqualFold(meta, full)):
			if best == nil || u.CreatedAt.Before(best.CreatedAt) {
				best = u
			}
		case strings.EqualFold(meta, full) || localPart(email) == full:
			foreign = true
		}
	}
	if best == nil && foreign {
		return nil, gymbro.Errorf(gymbro.KindConflict, CodeUsernameTaken,
			"%s belongs to a user that is not a test user; pick another name or send the prefix alone.", full)
	}
	return best, nil
}

// lowestFree returns the lowest number from 1 that no user holds under
// prefix and that is not in skip.
func lowestFree(users []supabase.User, prefix string, skip map[int]bool) int {
	used := map[int]bool{}
	for k := range skip {
		used[k] = true
	}
	for _, u := range users {
		if meta, ok := u.UserMetadata["username"].(string); ok {
			if n, ok := numberOf(strings.ToLower(meta), prefix); ok {
				used[n] = true
			}
		}
		if n, ok := numberOf(localPart(strings.ToLower(u.Email)), prefix); ok {
			used[n] = true
		}
	}
	n := 1
	for used[n] {
		n++
	}
	return n
}

func localPart(email string) string {
	if at := strings.LastIndexByte(email, '@'); at >= 0 {
		return email[:at]
	}
	return ""
}

// password returns a random password of passwordLength characters with at
// least one of each class, drawn without modulo bias.
func (s *Service) password() (string, error) {
	const (
		lower   = "abcdefghijklmnopqrstuvwxyz"
		upper   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		digits  = "0123456789"
		symbols = "!#%*+-=?@^_"
		all     = lower + upper + digits + symbols
	)
	// Rejection sampling: bytes at or above the largest multiple of len(all)
	// would favour the first characters.
	limit := byte(256 - 256%len(all))
	buf := make([]byte, 64)
	out := make([]byte, 0, passwordLength)
	for tries := 0; tries < 64; tries++ {
		out = out[:0]
		for len(out) < passwordLength {
			if _, err := io.ReadFull(s.rand, buf); err != nil {
				return "", gymbro.Wrap(err, gymbro.KindInternal, gymbro.CodeInternal, "No randomness for a password.")
			}
			for _, b := range buf {
				if b < limit && len(out) < passwordLength {
					out = append(out, all[int(b)%len(all)])
				}
			}
		}
		p := string(out)
		if strings.ContainsAny(p, lower) && strings.ContainsAny(p, upper) &&
			strings.ContainsAny(p, digits) && strings.ContainsAny(p, symbols) {
			return p, nil
		}
	}
	return "", gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal, "The random source does not look random.")
}

// supabaseError turns a failure of the Auth client into this package's
// codes. Supabase's own error_code and msg go into the message: the
// console shows them, and they are what a developer searches for.
func supabaseError(err error) error {
	var ae *supabase.APIError
	if errors.As(err, &ae) && ae.FromGateway() {
		return &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeSupabaseUnavailable, RetryAfter: ae.RetryAfter, Err: err,
			Message: fmt.Sprintf("Supabase Auth is unavailable: SUPABASE_URL answered HTTP %d (%s) without an Auth error; check that the project is up (not paused) and the URL is right.", ae.Status, ae.Message)}
	}
	if errors.As(err, &ae) {
		code := cmp.Or(ae.Code, fmt.Sprintf("HTTP %d", ae.Status)) // never an empty code in a detail
		msg := fmt.Sprintf("Supabase Auth said %s: %s", code, strings.TrimSpace(ae.Message))
		switch ae.Code {
		case supabase.AuthCodeNoAuthorization, supabase.AuthCodeNotAdmin, supabase.AuthCodeBadJWT:
			msg += " (check SUPABASE_SERVICE_ROLE_KEY)"
		default:
			if ae.Status == 401 {
				msg += " (check SUPABASE_SERVICE_ROLE_KEY and SUPABASE_ANON_KEY)"
			}
		}
		return &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeSupabaseRejected, Message: msg, RetryAfter: ae.RetryAfter, Err: err}
	}
	switch gymbro.ErrorCode(err) {
	case supabase.CodeSupabaseUnavailable, supabase.CodeSupabaseTimeout:
		return &gymbro.Error{Kind: gymbro.KindUnavailable, Code: CodeSupabaseUnavailable, Err: err,
			Message: gymbro.ErrorMessage(err) + " Check SUPABASE_URL and that Supabase is up."}
	case supabase.CodeSupabaseBadResponse:
		return &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeSupabaseRejected, Message: gymbro.ErrorMessage(err), Err: err}
	}
	return err
}

// mailError keeps the mail API's message (it says whether the key was
// refused) under this package's code and a 502.
func mailError(err error) error {
	var ge *gymbro.Error
	if !errors.As(err, &ge) {
		return err // the caller's cancellation
	}
	return &gymbro.Error{Kind: gymbro.KindUpstream, Code: CodeMailAPIFailed, Message: ge.Message, Err: err}
}

// audit writes the one line each call leaves. Only the code of a failure
// is logged: messages may quote Supabase, and an internal failure's cause
// is logged by the HTTP layer already.
func (s *Service) audit(ctx context.Context, caller *gymbro.Principal, req gymbro.TestUserRequest, username string, res *gymbro.TestUser, err error) {
	uid := ""
	if caller != nil {
		uid = caller.UID
	}
	outcome := "ok"
	if err != nil {
		outcome = gymbro.ErrorCode(err)
		if ctx.Err() != nil && gymbro.ErrorKind(err) == gymbro.KindInternal {
			outcome = gymbro.CodeCanceled
		}
	}
	attrs := []slog.Attr{
		slog.String("caller", uid),
		slog.String("requested", truncate(req.UsernamePrefix, 64)),
		slog.String("username", username),
		slog.Bool("reused", res != nil && res.Reused),
		slog.Bool("mail_inbox", req.MailAPIKey != ""),
		slog.String("outcome", outcome),
	}
	if res != nil {
		attrs = append(attrs, slog.String("user_id", res.UserID))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "test user", attrs...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

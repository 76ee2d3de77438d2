// Package config reads the service's settings from the environment (and an
// optional .env file) into one struct, with defaults in one table and
// validation that reports every problem on its own line. Only cmd/gymbro
// calls it; every other package receives what it needs through constructors.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Environments.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// Secret is a string that never prints: logs, %v and JSON see a mask.
type Secret string

// String masks the secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "********"
}

// LogValue masks the secret in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText masks the secret in encoded output.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// OIDCIssuer is an extra OpenID Connect provider whose tokens are accepted.
type OIDCIssuer struct {
	Issuer     string
	Audience   string
	JWKSURL    string
	Algorithms []string
}

// Config is every setting of the service.
type Config struct {
	Env      string
	HTTPAddr string
	// PublicURL is the base URL clients reach this service at; the local
	// Auth emulator's issuer is PublicURL + "/auth/v1". Empty: derived from
	// the listening address.
	PublicURL string
	DataDir   string
	TLSCert   string
	TLSKey    string
	LogLevel  slog.Level
	LogFormat string // "text" or "json"

	DatabaseURL    Secret // empty: SQLite in DataDir
	DatabaseSchema string // PostgreSQL schema for our tables; empty: the URL's search_path
	RedisURL       Secret // empty: in-process event log and limits
	RedisMode      string // how RedisURL reaches Redis: RedisStandalone, RedisCluster or RedisSentinel
	RedisPrefix    string // prefix of every Redis key and channel, so deployments can share a Redis
	InstanceID     string

	// DatabasePooler is what GYMBRO_DATABASE_URL reaches: PoolerSession (a
	// direct connection or a session pooler) or PoolerTransaction (a
	// transaction pooler: PgBouncer pool_mode = transaction, Supavisor 6543).
	DatabasePooler  string
	DatabaseTimeout time.Duration // bound on each store call; past it 504 store_timeout

	SupabaseURL            string
	SupabaseAnonKey        Secret
	SupabaseServiceRoleKey Secret
	SupabaseJWTSecret      Secret
	FirebaseProjectID      string
	FirebaseJWKSURL        string
	// FirebaseEmulatorHost is FIREBASE_AUTH_EMULATOR_HOST (host:port,
	// development only): the Firebase issuer is then the Auth emulator's,
	// whose unsigned tokens are accepted, and users are looked up there.
	FirebaseEmulatorHost string
	// FirebaseServiceAccountJSON is the Google service account key that
	// Firebase user look-ups (details, session checks) authenticate with:
	// FIREBASE_SERVICE_ACCOUNT_JSON, or the file GOOGLE_APPLICATION_CREDENTIALS
	// names. Empty with the emulator, or when neither is set.
	FirebaseServiceAccountJSON Secret
	OIDCIssuers                []OIDCIssuer

	// SessionCheck is when a Supabase token's session is confirmed with
	// Auth's GET /user: "writes" (the costly POSTs), "all" or "off".
	SessionCheck      string
	SessionCheckTTL   time.Duration // how long an answer is reused
	SessionCheckStale time.Duration // how long a confirmation vouches while Auth is unreachable

	JWTLeeway       time.Duration
	JWKSTTL         time.Duration
	JWKSCooldown    time.Duration
	TokenCacheSize  int
	CORSOrigins     []string
	MaxBodyBytes    int64
	MaxHeaderBytes  int
	MetricsAddr     string // serve /metrics here instead of on HTTPAddr
	BodyReadTimeout time.Duration
	ShutdownTimeout time.Duration

	AIProvider          string // "demo" or "openai"
	AIModel             string
	OpenAIAPIKey        Secret
	OpenAIBaseURL       string
	AISystemPrompt      string
	AIHistoryTurns      int
	AIHistoryChars      int
	AIFirstChunkTimeout time.Duration
	AIIdleTimeout       time.Duration
	AITotalTimeout      time.Duration
	AIMaxConcurrent     int
	AIDailyTokens       int64 // tokens per user per UTC day; 0: unlimited
	// AIConfigFile is GYMBRO_AI_CONFIG, a YAML file of several models in
	// fallback order; AIRouting is what it holds. Both are empty without
	// it, and then AIProvider and the variables above choose one model.
	AIConfigFile string
	AIRouting    *AIRouting

	MaxMessageChars int
	MaxRunning      int // running generations per user
	RateLimit       int // messages per minute per user; 0: off
	MaxStreams      int // open SSE streams per user; 0: no cap
	EventTTL        time.Duration
	SSEHeartbeat    time.Duration
	SSERetry        time.Duration
	LeaseTTL        time.Duration
	EventLogGrace   time.Duration // how long a generation holds its events through an event-log outage
	TraceTTFT       bool          // keep recent exchanges' steps to their first delta, served at /debug/ttft/{id}
	StoreGrace      time.Duration // how long a generation retries its final save while the store is behind

	SyncBatchSize int

	TestUsersEnabled     bool
	TestUsersAdmins      []string
	TestUsersPrefixes    []string
	TestUsersEmailDomain string
	TestUsersPerMinute   int
	MailAPIURL           string

	// Warnings are settings that were accepted but changed or ignored, for
	// the start-up log.
	Warnings []string
}

// What GYMBRO_DATABASE_URL reaches (GYMBRO_DATABASE_POOLER).
const (
	PoolerSession     = "session"
	PoolerTransaction = "transaction"
)

// Session-check modes.
const (
	SessionCheckWrites = "writes"
	SessionCheckAll    = "all"
	SessionCheckOff    = "off"
)

// Redis modes (GYMBRO_REDIS_MODE): how GYMBRO_REDIS_URL is read, by
// go-redis's ParseURL, ParseClusterURL or ParseFailoverURL.
const (
	RedisStandalone = "standalone" // one endpoint: a server, or a managed primary endpoint
	RedisCluster    = "cluster"    // a Redis Cluster: redis://node1:port?addr=node2:port&addr=node3:port
	RedisSentinel   = "sentinel"   // Sentinel: redis://sentinel1:port?master_name=NAME&addr=sentinel2:port
)

// ListensOnLoopback reports whether HTTPAddr accepts only local
// connections (a loopback IP or localhost; an empty host or 0.0.0.0 is every
// interface).
func (c *Config) ListensOnLoopback() bool {
	host, _, err := net.SplitHostPort(c.HTTPAddr)
	return err == nil && isLoopback(host)
}

// Emulated reports whether the local Supabase Auth emulator serves
// /auth/v1 and is trusted as the Supabase issuer.
func (c *Config) Emulated() bool { return c.SupabaseURL == "" && c.Env == EnvDevelopment }

// Production reports whether the service runs in production.
func (c *Config) Production() bool { return c.Env == EnvProduction }

// Problems is every validation failure, one per line.
type Problems []string

// Scope is the part of the configuration a command uses: LoadScope reports
// problems only with the settings in scope, and applies the production
// rules (an issuer, keys, a model) only to ScopeServe, so an admin command
// is never refused for a setting it does not read.
type Scope int

// Scopes.
const (
	// ScopeServe is every setting, with the production rules: serve.
	ScopeServe Scope = iota
	// ScopeStore is the store: GYMBRO_DATA_DIR and every GYMBRO_DATABASE_*
	// variable (migrate, sync status|retry).
	ScopeStore
	// ScopeLocalKeys is the local Auth emulator's keys in the data
	// directory, and what decides whether the emulator runs (auth rotate-key).
	ScopeLocalKeys
)

// uses reports whether a command of scope s reads the variable name.
func (s Scope) uses(name string) bool {
	switch s {
	case ScopeStore:
		return name == "GYMBRO_DATA_DIR" || strings.HasPrefix(name, "GYMBRO_DATABASE_")
	case ScopeLocalKeys:
		return name == "GYMBRO_DATA_DIR" || name == "GYMBRO_ENV" || name == "SUPABASE_URL" || name == "SUPABASE_PROJECT_ID"
	}
	return true
}

func (p Problems) Error() string { return strings.Join(p, "\n") }

// LoadDotEnv reads path (when it exists) into the process environment
// without overriding variables that are already set, as most .env tools do.
func LoadDotEnv(path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return godotenv.Load(path)
}

// Load builds the Config of serve from getenv (os.Getenv in production, a
// map in tests): LoadScope with ScopeServe.
func Load(getenv func(string) string) (*Config, error) { return LoadScope(getenv, ScopeServe) }

// LoadScope builds a Config from getenv. It returns Problems listing every
// invalid setting in scope, all at once. It is long on purpose: one table
// of every variable with its default and bounds, read top to bottom, is the
// clearest form (and the only place defaults live).
func LoadScope(getenv func(string) string, scope Scope) (*Config, error) {
	r := reader{getenv: getenv}
	c := &Config{
		Env:       r.str("GYMBRO_ENV", EnvDevelopment),
		HTTPAddr:  r.str("GYMBRO_HTTP_ADDR", "127.0.0.1:8080"),
		PublicURL: strings.TrimRight(r.str("GYMBRO_PUBLIC_URL", ""), "/"),
		DataDir:   r.str("GYMBRO_DATA_DIR", "./data"),
		TLSCert:   r.str("GYMBRO_TLS_CERT", ""),
		TLSKey:    r.str("GYMBRO_TLS_KEY", ""),
		LogLevel:  r.level("GYMBRO_LOG_LEVEL", slog.LevelInfo),
		LogFormat: r.oneOf("GYMBRO_LOG_FORMAT", "text", "text", "json"),

		DatabaseURL:    Secret(r.str("GYMBRO_DATABASE_URL", "")),
		DatabaseSchema: r.str("GYMBRO_DATABASE_SCHEMA", ""),
		RedisURL:       Secret(r.str("GYMBRO_REDIS_URL", "")),
		RedisMode:      r.oneOf("GYMBRO_REDIS_MODE", RedisStandalone, RedisStandalone, RedisCluster, RedisSentinel),
		RedisPrefix:    r.str("GYMBRO_REDIS_PREFIX", "gymbro:"),
		InstanceID:     r.str("GYMBRO_INSTANCE_ID", ""),

		DatabasePooler: r.oneOf("GYMBRO_DATABASE_POOLER", PoolerSession, PoolerSession, PoolerTransaction),
		// A few seconds: long enough for a healthy store under load, short
		// enough that a request never hangs on a commit that cannot finish.
		DatabaseTimeout: r.duration("GYMBRO_DATABASE_TIMEOUT", 3*time.Second, 100*time.Millisecond, time.Minute),

		SupabaseURL:            strings.TrimRight(r.str("SUPABASE_URL", ""), "/"),
		SupabaseAnonKey:        Secret(r.str("SUPABASE_ANON_KEY", "")),
		SupabaseServiceRoleKey: Secret(r.str("SUPABASE_SERVICE_ROLE_KEY", "")),
		SupabaseJWTSecret:      Secret(r.str("SUPABASE_JWT_SECRET", "")),
		FirebaseProjectID:      r.str("FIREBASE_PROJECT_ID", ""),
		FirebaseJWKSURL:        r.str("FIREBASE_JWKS_URL", ""),
		FirebaseEmulatorHost:   r.str("FIREBASE_AUTH_EMULATOR_HOST", ""),

		SessionCheck:      r.oneOf("GYMBRO_SESSION_CHECK", SessionCheckWrites, SessionCheckWrites, SessionCheckAll, SessionCheckOff),
		SessionCheckTTL:   r.duration("GYMBRO_SESSION_CHECK_TTL", 30*time.Second, time.Second, time.Hour),
		SessionCheckStale: r.duration("GYMBRO_SESSION_CHECK_STALE", 10*time.Minute, 0, 24*time.Hour),

		JWTLeeway:       r.duration("GYMBRO_JWT_LEEWAY", 30*time.Second, 0, 5*time.Minute),
		JWKSTTL:         r.duration("GYMBRO_JWKS_TTL", 15*time.Minute, time.Minute, 24*time.Hour),
		JWKSCooldown:    r.duration("GYMBRO_JWKS_REFRESH_COOLDOWN", 30*time.Second, time.Second, time.Hour),
		TokenCacheSize:  r.integer("GYMBRO_TOKEN_CACHE_SIZE", 10000, 0, 10_000_000),
		CORSOrigins:     r.list("GYMBRO_CORS_ORIGINS", nil),
		MaxBodyBytes:    int64(r.integer("GYMBRO_MAX_BODY_BYTES", 1<<20, 1024, 64<<20)),
		MaxHeaderBytes:  r.integer("GYMBRO_MAX_HEADER_BYTES", 64<<10, 16<<10, 1<<20),
		MetricsAddr:     r.str("GYMBRO_METRICS_ADDR", ""),
		BodyReadTimeout: r.duration("GYMBRO_BODY_READ_TIMEOUT", 30*time.Second, time.Second, 10*time.Minute),
		ShutdownTimeout: r.duration("GYMBRO_SHUTDOWN_TIMEOUT", 15*time.Second, time.Second, 5*time.Minute),

		AIModel:             r.str("GYMBRO_AI_MODEL", ""),
		OpenAIAPIKey:        Secret(r.str("OPENAI_API_KEY", "")),
		OpenAIBaseURL:       r.str("OPENAI_BASE_URL", ""),
		AIHistoryTurns:      r.integer("GYMBRO_AI_HISTORY_TURNS", 20, 0, 200),
		AIHistoryChars:      r.integer("GYMBRO_AI_HISTORY_CHARS", 24000, 0, 1_000_000),
		AIFirstChunkTimeout: r.duration("GYMBRO_AI_FIRST_CHUNK_TIMEOUT", 20*time.Second, time.Second, 10*time.Minute),
		AIIdleTimeout:       r.duration("GYMBRO_AI_IDLE_TIMEOUT", 30*time.Second, time.Second, 10*time.Minute),
		AITotalTimeout:      r.duration("GYMBRO_AI_TOTAL_TIMEOUT", 2*time.Minute, time.Second, time.Hour),
		AIMaxConcurrent:     r.integer("GYMBRO_AI_MAX_CONCURRENT", 64, 1, 100000),
		AIDailyTokens:       int64(r.integer("GYMBRO_AI_DAILY_TOKENS", 0, 0, 1<<50)),

		MaxMessageChars: r.integer("GYMBRO_MAX_MESSAGE_CHARS", 8000, 1, 1_000_000),
		MaxRunning:      r.integer("GYMBRO_MAX_RUNNING_PER_USER", 3, 1, 1000),
		RateLimit:       r.integer("GYMBRO_RATE_LIMIT", 20, 0, 100000),
		MaxStreams:      r.integer("GYMBRO_MAX_STREAMS_PER_USER", 20, 0, 100000),
		EventTTL:        r.duration("GYMBRO_EVENT_TTL", time.Hour, time.Second, 7*24*time.Hour),
		SSEHeartbeat:    r.duration("GYMBRO_SSE_HEARTBEAT", 15*time.Second, 100*time.Millisecond, 10*time.Minute),
		SSERetry:        r.duration("GYMBRO_SSE_RETRY", 3*time.Second, 100*time.Millisecond, 10*time.Minute),
		LeaseTTL:        r.duration("GYMBRO_LEASE_TTL", 15*time.Second, time.Second, 10*time.Minute),
		EventLogGrace:   r.duration("GYMBRO_EVENTLOG_OUTAGE_GRACE", 30*time.Second, time.Second, 10*time.Minute),
		TraceTTFT:       r.boolean("GYMBRO_TRACE_TTFT", false),
		StoreGrace:      r.duration("GYMBRO_STORE_OUTAGE_GRACE", 10*time.Second, time.Second, 10*time.Minute),

		SyncBatchSize: r.integer("GYMBRO_SYNC_BATCH_SIZE", 100, 1, 1000),

		TestUsersAdmins:      r.list("GYMBRO_TEST_USERS_ADMINS", nil),
		TestUsersPrefixes:    r.list("GYMBRO_TEST_USERS_PREFIXES", []string{"gymbro-test"}),
		TestUsersEmailDomain: r.str("GYMBRO_TEST_USERS_EMAIL_DOMAIN", "test.gymbro.local"),
		TestUsersPerMinute:   r.integer("GYMBRO_TEST_USERS_PER_MINUTE", 10, 1, 10000),
		MailAPIURL:           r.str("GYMBRO_MAIL_API_URL", "https://api.mailslurp.com"),
	}
	r.supabase = "SUPABASE_URL"
	if id := r.str("SUPABASE_PROJECT_ID", ""); id != "" && c.SupabaseURL == "" {
		c.SupabaseURL = "https://" + id + ".supabase.co"
		r.supabase = "SUPABASE_PROJECT_ID"
	}
	defaultProvider := "demo"
	if c.OpenAIAPIKey != "" {
		defaultProvider = "openai"
	}
	c.AIProvider = r.oneOf("GYMBRO_AI_PROVIDER", defaultProvider, "demo", "openai")
	if c.AIModel == "" && c.AIProvider == "openai" {
		c.AIModel = "gpt-4o-mini"
	}
	c.loadAIRouting(&r)
	c.AISystemPrompt = r.str("GYMBRO_AI_SYSTEM_PROMPT", "")
	if file := r.str("GYMBRO_AI_SYSTEM_PROMPT_FILE", ""); file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			r.fail("GYMBRO_AI_SYSTEM_PROMPT_FILE", "cannot be read: %v", err)
		} else {
			c.AISystemPrompt = strings.TrimSpace(string(b))
		}
	}
	if c.AISystemPrompt == "" {
		c.AISystemPrompt = DefaultSystemPrompt
	}
	c.TestUsersEnabled = r.boolean("GYMBRO_TEST_USERS_ENABLED", c.Env != EnvProduction)
	if c.InstanceID == "" {
		host, _ := os.Hostname()
		c.InstanceID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.DataDir != "" {
		if abs, err := filepath.Abs(c.DataDir); err == nil {
			c.DataDir = abs
		}
	}
	c.validate(&r)
	if scope == ScopeServe {
		c.validateServe(&r)
	}
	for _, o := range r.oidc(c.Production()) {
		c.OIDCIssuers = append(c.OIDCIssuers, o)
	}
	if p := r.problemsIn(scope); len(p) > 0 {
		return nil, p
	}
	return c, nil
}

// DefaultSystemPrompt is the coach persona used unless configured.
const DefaultSystemPrompt = `You are GymBro, a friendly, knowledgeable strength and fitness coach inside a mobile app.
Give practical, safe, specific advice on training, technique, recovery and nutrition.
Keep answers short and structured; ask a clarifying question when the goal or experience level matters.
You are not a doctor: for pain, injury or medical conditions, advise seeing a professional.`

// loadAIRouting reads and parses GYMBRO_AI_CONFIG when it is set; the
// file then replaces GYMBRO_AI_PROVIDER, GYMBRO_AI_MODEL and
// OPENAI_BASE_URL.
func (c *Config) loadAIRouting(r *reader) {
	c.AIConfigFile = r.str("GYMBRO_AI_CONFIG", "")
	if c.AIConfigFile == "" {
		return
	}
	data, err := os.ReadFile(c.AIConfigFile)
	if err != nil {
		r.fail("GYMBRO_AI_CONFIG", "cannot be read: %v", err)
		return
	}
	rt, warnings, err := ParseAIConfig(c.AIConfigFile, data, r.getenv)
	var problems Problems
	if errors.As(err, &problems) {
		for _, p := range problems {
			r.failLine("GYMBRO_AI_CONFIG", p)
		}
		return
	}
	c.AIRouting = rt
	c.Warnings = append(c.Warnings, warnings...)
	for _, name := range []string{"GYMBRO_AI_PROVIDER", "GYMBRO_AI_MODEL", "OPENAI_BASE_URL"} {
		if r.str(name, "") != "" {
			c.Warnings = append(c.Warnings, name+" is ignored: GYMBRO_AI_CONFIG lists the models")
		}
	}
	c.AIProvider = "openai"
}

func (c *Config) validate(r *reader) {
	if c.Env != EnvDevelopment && c.Env != EnvProduction {
		r.fail("GYMBRO_ENV", "must be %q or %q, not %q", EnvDevelopment, EnvProduction, c.Env)
	}
	c.validateAddresses(r)
	c.validateStorage(r)
	if c.AIProvider == "openai" && c.AIRouting == nil && c.OpenAIAPIKey == "" && c.OpenAIBaseURL == "" {
		r.fail("OPENAI_API_KEY", "is required when GYMBRO_AI_PROVIDER=openai (or set OPENAI_BASE_URL for a keyless local server)")
	}
	for _, o := range c.CORSOrigins {
		if o != "*" {
			if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
				r.fail("GYMBRO_CORS_ORIGINS", "has %q, which is not an origin like https://app.example.com", o)
			}
		}
	}
}

// validateAddresses checks the listen addresses, TLS and the URLs.
func (c *Config) validateAddresses(r *reader) {
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		r.fail("GYMBRO_HTTP_ADDR", "must be host:port (e.g. 127.0.0.1:8080): %v", err)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			r.fail("GYMBRO_METRICS_ADDR", "must be host:port (e.g. 127.0.0.1:9090): %v", err)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		r.fail("GYMBRO_TLS_CERT", "and GYMBRO_TLS_KEY must be set together")
	}
	if c.PublicURL != "" {
		r.url("GYMBRO_PUBLIC_URL", c.PublicURL, false)
	}
	if c.SupabaseURL != "" {
		r.url("SUPABASE_URL", c.SupabaseURL, c.Production())
	}
	if c.FirebaseJWKSURL != "" {
		r.url("FIREBASE_JWKS_URL", c.FirebaseJWKSURL, c.Production())
	}
	if c.OpenAIBaseURL != "" {
		r.url("OPENAI_BASE_URL", c.OpenAIBaseURL, false)
	}
}

// validateStorage checks the PostgreSQL and Redis settings.
func (c *Config) validateStorage(r *reader) {
	if c.DatabaseURL != "" && !strings.HasPrefix(string(c.DatabaseURL), "postgres://") && !strings.HasPrefix(string(c.DatabaseURL), "postgresql://") {
		r.fail("GYMBRO_DATABASE_URL", "must be a postgres:// URL")
	}
	if c.DatabaseSchema != "" && !validIdentifier(c.DatabaseSchema) {
		r.fail("GYMBRO_DATABASE_SCHEMA", "must be a plain identifier (letters, digits, underscores; not starting with a digit), not %q", c.DatabaseSchema)
	}
	if strings.ContainsAny(c.RedisPrefix, "{} ") {
		r.fail("GYMBRO_REDIS_PREFIX", "must not contain braces or spaces (braces form Redis Cluster hash tags), not %q", c.RedisPrefix)
	}
	if c.RedisURL != "" && !strings.HasPrefix(string(c.RedisURL), "redis://") && !strings.HasPrefix(string(c.RedisURL), "rediss://") {
		r.fail("GYMBRO_REDIS_URL", "must be a redis:// or rediss:// URL")
	}
	if c.RedisURL == "" && c.RedisMode != RedisStandalone {
		r.fail("GYMBRO_REDIS_MODE", "is %s, which needs GYMBRO_REDIS_URL", c.RedisMode)
	}
}

// validateServe holds the rules of a serving process: production's, and
// the session check's need for the anon key.
func (c *Config) validateServe(r *reader) {
	if c.Production() {
		c.validateProduction(r)
	}
	c.settleSessionCheck(r)
	c.settleFirebase(r)
}

// validateProduction holds production's extra rules. Every rule is checked
// and each names every setting that satisfies it, so one round of fixes
// is enough: no rule hides behind another.
func (c *Config) validateProduction(r *reader) {
	if c.SupabaseURL == "" && c.FirebaseProjectID == "" && len(r.oidc(c.Production())) == 0 {
		r.fail("SUPABASE_URL", "or SUPABASE_PROJECT_ID (with SUPABASE_SERVICE_ROLE_KEY, and SUPABASE_ANON_KEY unless GYMBRO_SESSION_CHECK=off), "+
			"FIREBASE_PROJECT_ID, or GYMBRO_OIDC_ISSUERS is required in production: no token issuer is configured, and the local Auth emulator never runs in production")
	}
	if c.SupabaseURL != "" && c.SupabaseServiceRoleKey == "" {
		r.fail("SUPABASE_SERVICE_ROLE_KEY", "is required in production with %s: chat records sync to Supabase with it", r.supabase)
	}
	c.validateProductionModel(r)
	for _, o := range c.CORSOrigins {
		if o == "*" {
			r.fail("GYMBRO_CORS_ORIGINS", "must list your web apps' origins in production, not \"*\": tokens travel in a header, not cookies, "+
				"but anyone can sign up with the public anon key, and \"*\" would let any other site call the API (and spend the model) from its visitors' browsers")
		}
	}
	if c.TestUsersEnabled && len(c.TestUsersAdmins) == 0 {
		r.fail("GYMBRO_TEST_USERS_ADMINS", "is required in production when GYMBRO_TEST_USERS_ENABLED=true: it lists the uids or emails allowed to create test users")
	}
	if c.DataDir == "" && c.DatabaseURL == "" {
		r.fail("GYMBRO_DATA_DIR", "or GYMBRO_DATABASE_URL is required in production")
	}
}

// validateProductionModel refuses to serve the demo coach's canned answers
// in production unless GYMBRO_AI_PROVIDER=demo asks for it, and then warns.
func (c *Config) validateProductionModel(r *reader) {
	if c.AIRouting != nil || c.AIProvider != "demo" {
		return
	}
	if r.str("GYMBRO_AI_PROVIDER", "") == "" {
		r.fail("OPENAI_API_KEY", "or GYMBRO_AI_CONFIG is required in production: no model is configured. Set OPENAI_API_KEY "+
			"(OPENAI_BASE_URL and GYMBRO_AI_MODEL choose another OpenAI-compatible provider) or GYMBRO_AI_CONFIG (several models), "+
			"or GYMBRO_AI_PROVIDER=demo to serve the built-in demo coach's canned answers on purpose")
		return
	}
	c.Warnings = append(c.Warnings, "production serves the built-in demo coach (GYMBRO_AI_PROVIDER=demo): its answers are canned, not AI; "+
		"set OPENAI_API_KEY (with OPENAI_BASE_URL and GYMBRO_AI_MODEL for another provider) or GYMBRO_AI_CONFIG for a real model")
}

// settleSessionCheck refuses, or in development turns off with a warning,
// session checks against a Supabase project without SUPABASE_ANON_KEY:
// hosted Supabase refuses /auth/v1 calls that carry no apikey. The local
// emulator makes its own key.
func (c *Config) settleSessionCheck(r *reader) {
	if c.SessionCheck == SessionCheckOff || c.SupabaseURL == "" || c.SupabaseAnonKey != "" {
		return
	}
	if c.Production() {
		r.fail("SUPABASE_ANON_KEY", "is required in production with %s when GYMBRO_SESSION_CHECK=%s: session checks call Supabase Auth's /user with it (or set GYMBRO_SESSION_CHECK=off)", r.supabase, c.SessionCheck)
		return
	}
	c.SessionCheck = SessionCheckOff
	c.Warnings = append(c.Warnings, "SUPABASE_ANON_KEY is not set: session checks are off, so a signed-out, banned or deleted user's token works until it expires")
}

// settleFirebase checks FIREBASE_AUTH_EMULATOR_HOST, or reads the service
// account key that Firebase user look-ups need: required in production
// while session checks are on (else a disabled or revoked Firebase user
// keeps working until the token expires), a warning elsewhere.
func (c *Config) settleFirebase(r *reader) {
	if c.FirebaseEmulatorHost != "" {
		c.checkFirebaseEmulator(r)
		return
	}
	if c.FirebaseProjectID == "" {
		return
	}
	key, ok := c.serviceAccount(r)
	c.FirebaseServiceAccountJSON = key
	if key != "" || !ok {
		return
	}
	if c.Production() && c.SessionCheck != SessionCheckOff {
		r.fail(serviceAccountVars, "is required in production with FIREBASE_PROJECT_ID when GYMBRO_SESSION_CHECK=%s: "+
			"Firebase users are checked with Identity Toolkit's accounts:lookup as that service account (or set GYMBRO_SESSION_CHECK=off)", c.SessionCheck)
		return
	}
	c.Warnings = append(c.Warnings, "no Firebase service account ("+serviceAccountVars+"): /me?details=true has no details "+
		"for Firebase users, and a disabled or revoked Firebase user's token works until it expires")
}

// serviceAccountVars names the variables that can hold the key.
const serviceAccountVars = "FIREBASE_SERVICE_ACCOUNT_JSON (or GOOGLE_APPLICATION_CREDENTIALS)"

// checkFirebaseEmulator refuses the emulator in production and checks that
// it can be used: a host:port, and the project its tokens name.
func (c *Config) checkFirebaseEmulator(r *reader) {
	const name = "FIREBASE_AUTH_EMULATOR_HOST"
	if c.Production() {
		r.fail(name, "must not be set in production: the Firebase Auth emulator's tokens are unsigned, so anyone could sign in as any Firebase user")
		return
	}
	if _, port, err := net.SplitHostPort(c.FirebaseEmulatorHost); err != nil || port == "" || strings.Contains(c.FirebaseEmulatorHost, "/") {
		r.fail(name, "must be host:port like 127.0.0.1:9099 (no scheme), not %q", c.FirebaseEmulatorHost)
	}
	if c.FirebaseProjectID == "" {
		r.fail("FIREBASE_PROJECT_ID", "is required with FIREBASE_AUTH_EMULATOR_HOST: the emulator's tokens name the project in iss and aud (e.g. demo-gymbro, as in `firebase emulators:start --project demo-gymbro`)")
	}
	if c.FirebaseJWKSURL != "" {
		c.Warnings = append(c.Warnings, "FIREBASE_JWKS_URL is ignored: with FIREBASE_AUTH_EMULATOR_HOST the emulator's tokens are unsigned")
	}
}

// serviceAccount reads the key from FIREBASE_SERVICE_ACCOUNT_JSON or, when
// that is unset, the file GOOGLE_APPLICATION_CREDENTIALS names, and checks
// that it is a service account's (never echoing it). ok is false when it
// reported a problem.
func (c *Config) serviceAccount(r *reader) (key Secret, ok bool) {
	name, data := "FIREBASE_SERVICE_ACCOUNT_JSON", r.str("FIREBASE_SERVICE_ACCOUNT_JSON", "")
	if path := r.str("GOOGLE_APPLICATION_CREDENTIALS", ""); data == "" && path != "" {
		name = "GOOGLE_APPLICATION_CREDENTIALS"
		b, err := os.ReadFile(path)
		if err != nil {
			r.fail(serviceAccountVars, "cannot be used: GOOGLE_APPLICATION_CREDENTIALS names a file that cannot be read: %v", err)
			return "", false
		}
		data = string(b)
	} else if data != "" && path != "" {
		c.Warnings = append(c.Warnings, "GOOGLE_APPLICATION_CREDENTIALS is ignored for Firebase: FIREBASE_SERVICE_ACCOUNT_JSON is set")
	}
	if data == "" {
		return "", true
	}
	var file struct {
		Type        string `json:"type"`
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
		TokenURI    string `json:"token_uri"`
	}
	switch err := json.Unmarshal([]byte(data), &file); {
	case err != nil:
		r.fail(serviceAccountVars, "is not a service account key: %s holds no JSON", name)
	case file.Type != "service_account" || file.ClientEmail == "" || file.PrivateKey == "":
		r.fail(serviceAccountVars, "is not a service account key: %s holds a %q credential without client_email and private_key (download a key of the service account from the Google Cloud console)", name, file.Type)
	default:
		before := len(r.problems)
		if file.TokenURI != "" {
			r.url(name+"'s token_uri", file.TokenURI, c.Production())
		}
		if len(r.problems) == before {
			return Secret(data), true
		}
	}
	return "", false
}

type reader struct {
	getenv   func(string) string
	problems Problems
	names    []string // the variable each problem is about
	supabase string   // the variable SupabaseURL came from
	oidcs    []OIDCIssuer
	oidcRead bool
}

func (r *reader) fail(name, format string, args ...any) {
	r.failLine(name, name+" "+fmt.Sprintf(format, args...))
}

// failLine records a problem about the variable name, worded in full.
func (r *reader) failLine(name, line string) {
	r.problems = append(r.problems, line)
	r.names = append(r.names, name)
}

// problemsIn returns the problems with the variables scope uses.
func (r *reader) problemsIn(scope Scope) Problems {
	var out Problems
	for i, p := range r.problems {
		if scope.uses(r.names[i]) {
			out = append(out, p)
		}
	}
	return out
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(r.str(name, def))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, "must be one of %s, not %q", strings.Join(allowed, ", "), v)
	return def
}

func (r *reader) integer(name string, def, min, max int) int {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		r.fail(name, "must be a whole number, not %q", s)
		return def
	}
	if n < min || n > max {
		r.fail(name, "must be between %d and %d, not %d", min, max, n)
		return def
	}
	return n
}

func (r *reader) duration(name string, def, min, max time.Duration) time.Duration {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if n, nerr := strconv.Atoi(s); nerr == nil { // bare seconds, as FastAPI settings often are
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil {
		r.fail(name, "must be a duration like 30s or 15m, not %q", s)
		return def
	}
	if d < min || d > max {
		r.fail(name, "must be between %s and %s, not %s", min, max, d)
		return def
	}
	return d
}

func (r *reader) boolean(name string, def bool) bool {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		r.fail(name, "must be true or false, not %q", s)
		return def
	}
	return b
}

func (r *reader) level(name string, def slog.Level) slog.Level {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		r.fail(name, "must be debug, info, warn or error, not %q", s)
		return def
	}
	return l
}

func (r *reader) list(name string, def []string) []string {
	s := r.str(name, "")
	if s == "" {
		return def
	}
	var out []string
	for _, part := range strings.Split(s, ",") {
		if p := strings.TrimSpace(part); p != "" {
			out = append(out, strings.TrimRight(p, "/"))
		}
	}
	return out
}

// url checks that v is an absolute http(s) URL; with secure set, plain HTTP
// is allowed only for loopback hosts.
func (r *reader) url(name, v string, secure bool) {
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		r.fail(name, "must be an absolute http(s) URL, not %q", v)
		return
	}
	if secure && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		r.fail(name, "must use https in production (plain http is allowed only for loopback hosts), not %q", v)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// oidcAlgorithms are the algorithms an OIDC issuer may be given, by their
// upper-case spelling (GYMBRO_OIDC_ISSUERS is matched in any case), each
// mapped to its registered JOSE name (RFC 7518; RFC 8037 for EdDSA, whose
// name is not all capitals). Only asymmetric ones: an OIDC issuer's keys
// come from its JWKS.
var oidcAlgorithms = map[string]string{
	"RS256": "RS256", "RS384": "RS384", "RS512": "RS512",
	"ES256": "ES256", "ES384": "ES384", "ES512": "ES512",
	"PS256": "PS256", "PS384": "PS384", "PS512": "PS512",
	"EDDSA": "EdDSA",
}

// oidc reads GYMBRO_OIDC_ISSUERS: entries separated by ";", each
// "issuer|audience|jwks_url|ALG,ALG" (algorithms default to RS256). In
// production every JWKS URL must be https, as FIREBASE_JWKS_URL: keys
// fetched in the clear can be swapped by anyone on the path. The first
// call decides; later ones return its result.
func (r *reader) oidc(production bool) []OIDCIssuer {
	if r.oidcRead {
		return r.oidcs
	}
	r.oidcRead = true
	s := r.str("GYMBRO_OIDC_ISSUERS", "")
	if s == "" {
		return nil
	}
	for _, entry := range strings.Split(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, "|")
		if len(parts) < 3 || len(parts) > 4 {
			r.fail("GYMBRO_OIDC_ISSUERS", "entry %q must be issuer|audience|jwks_url[|ALG,ALG]", entry)
			continue
		}
		o := OIDCIssuer{Issuer: strings.TrimSpace(parts[0]), Audience: strings.TrimSpace(parts[1]), JWKSURL: strings.TrimSpace(parts[2]), Algorithms: []string{"RS256"}}
		if len(parts) == 4 {
			o.Algorithms = nil
			for _, a := range strings.Split(parts[3], ",") {
				a = strings.TrimSpace(a)
				if name, ok := oidcAlgorithms[strings.ToUpper(a)]; ok {
					o.Algorithms = append(o.Algorithms, name)
				} else {
					r.fail("GYMBRO_OIDC_ISSUERS", "entry %q has algorithm %q; only asymmetric algorithms are allowed", o.Issuer, a)
				}
			}
		}
		r.url("GYMBRO_OIDC_ISSUERS", o.JWKSURL, production)
		if o.Issuer == "" || o.Audience == "" {
			r.fail("GYMBRO_OIDC_ISSUERS", "entry %q needs an issuer and an audience", entry)
			continue
		}
		r.oidcs = append(r.oidcs, o)
	}
	return r.oidcs
}

func validIdentifier(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != "" && len(s) <= 63
}

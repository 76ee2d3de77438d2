package eventlog

import "time"

// Defaults of both event logs' TTL and OpenTTL.
const (
	DefaultTTL     = time.Hour
	DefaultOpenTTL = 24 * time.Hour
)

// Retention returns the settings both event logs share with their defaults
// filled in: ttl and openTTL when positive (else DefaultTTL and
// DefaultOpenTTL), and now unless nil (else time.Now).
func Retention(ttl, openTTL time.Duration, now func() time.Time) (time.Duration, time.Duration, func() time.Time) {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if openTTL <= 0 {
		openTTL = DefaultOpenTTL
	}
	if now == nil {
		now = time.Now
	}
	return ttl, openTTL, now
}

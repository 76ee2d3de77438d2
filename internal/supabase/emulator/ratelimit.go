package emulator

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultSignInsPerMinute is how many password grants one client address
// may make per minute, like Supabase Auth's per-IP limit on /token.
const DefaultSignInsPerMinute = 60

// maxClients bounds the per-address limiters kept at once.
const maxClients = 10_000

// signInLimiter is a token bucket per client address.
type signInLimiter struct {
	perMinute int
	mu        sync.Mutex
	clients   map[string]*rate.Limiter
}

func newSignInLimiter(perMinute int) *signInLimiter {
	if perMinute <= 0 {
		perMinute = DefaultSignInsPerMinute
	}
	return &signInLimiter{perMinute: perMinute, clients: map[string]*rate.Limiter{}}
}

// allow takes one sign-in for r's client address, or answers what Supabase
// Auth does when its rate limit is reached.
func (l *signInLimiter) allow(r *http.Request, now time.Time) error {
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		addr = r.RemoteAddr
	}
	l.mu.Lock()
	lim := l.clients[addr]
	if lim == nil {
		if len(l.clients) >= maxClients {
			clear(l.clients) // a fresh bucket is full: this forgives, never refuses
		}
		lim = rate.NewLimiter(rate.Every(time.Minute/time.Duration(l.perMinute)), l.perMinute)
		l.clients[addr] = lim
	}
	l.mu.Unlock()
	if !lim.AllowN(now, 1) {
		return newError(http.StatusTooManyRequests, "over_request_rate_limit", "Request rate limit reached")
	}
	return nil
}

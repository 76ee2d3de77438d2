package testusers

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// maxDigits bounds a name's number: a million test users is plenty, and it
// keeps strconv from overflowing on hostile input.
const maxDigits = 6

// name is a test user's name: prefix alone (allocate) or prefix-NN.
type name struct {
	prefix string
	num    int // 0: not chosen yet
}

func (n name) full() bool { return n.num > 0 }

// String spells the name: two digits at least, as in gymbro-test-01.
func (n name) String() string {
	if n.num == 0 {
		return n.prefix
	}
	return fmt.Sprintf("%s-%02d", n.prefix, n.num)
}

// parseName reads username_prefix. Empty means the first allowed prefix.
// Names are compared lower-cased because Supabase lower-cases the emails
// made from them.
func (s *Service) parseName(raw string) (name, error) {
	v := strings.ToLower(strings.TrimSpace(raw))
	if v == "" {
		return name{prefix: s.prefixes[0]}, nil
	}
	for _, p := range s.prefixes {
		if v == p {
			return name{prefix: p}, nil
		}
		if n, ok := numberOf(v, p); ok && (name{p, n}).String() == v {
			return name{prefix: p, num: n}, nil
		}
	}
	shown := raw
	if len(shown) > 64 || !printable(shown) {
		shown = "that name"
	} else {
		shown = strconv.Quote(shown)
	}
	return name{}, gymbro.Errorf(gymbro.KindUnprocessable, CodePrefixNotAllowed,
		"username_prefix %s is not allowed; send one of %s, or a full name such as %s-01.",
		shown, strings.Join(s.prefixes, ", "), s.prefixes[0])
}

// numberOf reports the number of v when v is prefix-<digits>, in any
// spelling (gymbro-test-1 and gymbro-test-001 both hold 1): a number is in
// use however someone else wrote it.
func numberOf(v, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(v, prefix+"-")
	if !ok || rest == "" || len(rest) > maxDigits {
		return 0, false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// validPrefix allows what is safe in an email local part and a URL, and
// refuses a trailing -<digits>, which would make gymbro-test-01-02 mean two
// things.
func validPrefix(p string) bool {
	if len(p) > 40 || p[0] == '-' || p[0] == '.' || p[len(p)-1] == '-' || p[len(p)-1] == '.' {
		return false
	}
	for _, c := range p {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	if i := strings.LastIndexByte(p, '-'); i >= 0 && strings.Trim(p[i+1:], "0123456789") == "" {
		return false
	}
	return !strings.Contains(p, "..")
}

// validDomain accepts a plain DNS name (RFC 1035 labels), which is what an
// address made from a name needs; it need not resolve.
func validDomain(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

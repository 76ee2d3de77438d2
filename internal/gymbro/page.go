package gymbro

import (
	"encoding/base64"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Page sizes of the list methods.
const (
	DefaultPageLimit = 20
	MaxPageLimit     = 100
)

// Size is p.Limit clamped to 1..MaxPageLimit, DefaultPageLimit when unset.
func (p Page) Size() int {
	switch {
	case p.Limit <= 0:
		return DefaultPageLimit
	case p.Limit > MaxPageLimit:
		return MaxPageLimit
	}
	return p.Limit
}

// Cursor is a keyset position: the sort time (Unix microseconds) and the id
// that breaks ties. Keyset (not offset) paging keeps pages free of
// duplicates and gaps while rows are inserted ahead of the reader.
type Cursor struct {
	At int64
	ID string
}

// Encode makes the opaque token clients pass back; it is base64 so they do
// not build it themselves, not for secrecy.
func (c Cursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.At, 10) + "|" + c.ID))
}

// DecodeCursor parses a token from Cursor.Encode; "" is the first page
// (nil). Anything else fails with KindInvalid, code invalid_cursor.
func DecodeCursor(s string) (*Cursor, error) {
	if s == "" {
		return nil, nil
	}
	bad := Errorf(KindInvalid, "invalid_cursor", "The cursor is not valid.")
	if len(s) > 512 {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(b), "|")
	if !ok || id == "" {
		return nil, bad
	}
	v, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return nil, bad
	}
	return &Cursor{At: v, ID: id}, nil
}

// TitleRunes is how much of a conversation's first text becomes its title.
const TitleRunes = 60

// ConversationTitle is the first TitleRunes characters of text, on one line.
func ConversationTitle(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) <= TitleRunes {
		return text
	}
	r := []rune(text)
	return strings.TrimSpace(string(r[:TitleRunes]))
}

package postgres

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Page sizes of the list methods.
const (
	DefaultPageLimit = 20
	MaxPageLimit     = 100
)

// TitleRunes is how much of a conversation's first text becomes its title.
const TitleRunes = 60

// cursor is a keyset position: the sort time and the id that breaks ties.
// Keyset (not offset) paging keeps pages free of duplicates and gaps while
// rows are inserted ahead of the reader.
type cursor struct {
	at int64 // microseconds
	id string
}

// encodeCursor makes the opaque token clients pass back; it is base64 so
// they do not build it themselves, not for secrecy.
func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + "|" + id))
}

func decodeCursor(s string) (*cursor, error) {
	if s == "" {
		return nil, nil
	}
	bad := gymbro.Errorf(gymbro.KindInvalid, "invalid_cursor", "The cursor is not valid.")
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
	return &cursor{at: v, id: id}, nil
}

func pageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultPageLimit
	case n > MaxPageLimit:
		return MaxPageLimit
	}
	return n
}

// title is the first TitleRunes characters of text, on one line.
func title(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) <= TitleRunes {
		return text
	}
	r := []rune(text)
	return strings.TrimSpace(string(r[:TitleRunes]))
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// chatRecord is the row that FinishMessage enqueues for Supabase.
func chatRecord(m *gymbro.Message) gymbro.ChatRecord {
	meta := map[string]any{"last_seq": m.LastSeq}
	if m.FinishReason != "" {
		meta["finish_reason"] = m.FinishReason
	}
	if m.ErrorMessage != "" {
		meta["error_message"] = m.ErrorMessage
	}
	return gymbro.ChatRecord{
		ID:               m.ID,
		UserID:           m.UserID,
		Provider:         m.Provider,
		ConversationID:   m.ConversationID,
		UserMessage:      m.Text,
		AIResponse:       m.Reply,
		Status:           m.Status,
		ErrorCode:        strPtr(m.ErrorCode),
		Model:            strPtr(m.Model),
		PromptTokens:     m.Usage.PromptTokens,
		CompletionTokens: m.Usage.CompletionTokens,
		TotalTokens:      m.Usage.TotalTokens,
		TraceID:          strPtr(m.TraceID),
		Metadata:         meta,
		CreatedAt:        m.CreatedAt,
		CompletedAt:      m.CompletedAt,
	}
}

// orNow returns t in UTC, or now when t is zero.
func orNow(t time.Time, now func() time.Time) time.Time {
	if t.IsZero() {
		t = now()
	}
	return t.UTC()
}

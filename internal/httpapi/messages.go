package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
)

type postMessageRequest struct {
	Text           *string `json:"text"`
	ConversationID string  `json:"conversation_id,omitempty"`
}

type postMessageResponse struct {
	MessageID      string        `json:"message_id"`
	ConversationID string        `json:"conversation_id"`
	Status         gymbro.Status `json:"status"`
	EventsURL      string        `json:"events_url"`
}

// handlePostMessage serves POST /api/v1/messages: it stores the text, starts
// the reply, and answers 202 before any model work.
func (s *Server) handlePostMessage(w http.ResponseWriter, r *http.Request) {
	var req postMessageRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Text == nil {
		s.writeErrorFields(w, r, gymbro.Errorf(gymbro.KindUnprocessable, chat.CodeTextEmpty, "text is required."), []FieldError{{Field: "text", Message: "required"}})
		return
	}
	m, replayed, err := s.chat.Post(r.Context(), principal(r), chat.PostInput{
		Text:           *req.Text,
		ConversationID: req.ConversationID,
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
		TraceID:        TraceID(r.Context()),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	events := "/api/v1/messages/" + m.ID + "/events"
	w.Header().Set("Location", "/api/v1/messages/"+m.ID)
	writeJSON(w, http.StatusAccepted, postMessageResponse{MessageID: m.ID, ConversationID: m.ConversationID, Status: m.Status, EventsURL: events})
	s.chat.Trace().Mark(m.ID, chat.StepPostAnswered)
}

// messageView is an exchange as clients see it.
type messageView struct {
	MessageID      string        `json:"message_id"`
	ConversationID string        `json:"conversation_id"`
	Status         gymbro.Status `json:"status"`
	Text           string        `json:"text"`
	Reply          string        `json:"reply"`
	Model          string        `json:"model,omitempty"`
	FinishReason   string        `json:"finish_reason,omitempty"`
	Usage          *gymbro.Usage `json:"usage,omitempty"`
	Error          *errorView    `json:"error,omitempty"`
	LastEventID    int64         `json:"last_event_id,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	UpdatedAt      time.Time     `json:"updated_at"`
	CompletedAt    *time.Time    `json:"completed_at,omitempty"`
	EventsURL      string        `json:"events_url"`
}

type errorView struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

func viewMessage(m *gymbro.Message) messageView {
	v := messageView{
		MessageID: m.ID, ConversationID: m.ConversationID, Status: m.Status, Text: m.Text, Reply: m.Reply,
		Model: m.Model, FinishReason: m.FinishReason, LastEventID: m.LastSeq,
		CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, CompletedAt: m.CompletedAt,
		EventsURL: "/api/v1/messages/" + m.ID + "/events",
	}
	if m.Status == gymbro.StatusCompleted {
		u := m.Usage
		v.Usage = &u
	}
	if m.ErrorCode != "" && m.Status != gymbro.StatusCanceled {
		ev := chat.TerminalEvent(m)
		v.Error = &errorView{Code: m.ErrorCode, Message: m.ErrorMessage, Retryable: ev.Retryable != nil && *ev.Retryable}
	}
	return v
}

// handleGetMessage serves GET /api/v1/messages/{id}: the exchange so far.
func (s *Server) handleGetMessage(w http.ResponseWriter, r *http.Request) {
	m, err := s.chat.Message(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewMessage(m))
}

// handleCancel serves POST /api/v1/messages/{id}/cancel.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) {
	m, err := s.chat.Cancel(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewMessage(m))
}

type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func pageOf(r *http.Request) (gymbro.Page, error) {
	p := gymbro.Page{Cursor: r.URL.Query().Get("cursor"), Limit: 20}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 100 {
			return p, gymbro.Errorf(gymbro.KindInvalid, "invalid_limit", "limit must be a whole number from 1 to 100.")
		}
		p.Limit = n
	}
	return p, nil
}

// handleConversations serves GET /api/v1/conversations.
func (s *Server) handleConversations(w http.ResponseWriter, r *http.Request) {
	pg, err := pageOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items, next, err := s.chat.Conversations(r.Context(), principal(r), pg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := page[*gymbro.Conversation]{Items: items, NextCursor: next}
	if out.Items == nil {
		out.Items = []*gymbro.Conversation{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleConversationMessages serves GET /api/v1/conversations/{id}/messages.
func (s *Server) handleConversationMessages(w http.ResponseWriter, r *http.Request) {
	pg, err := pageOf(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	items, next, err := s.chat.ConversationMessages(r.Context(), principal(r), r.PathValue("id"), pg)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := page[messageView]{Items: make([]messageView, 0, len(items)), NextCursor: next}
	for _, m := range items {
		out.Items = append(out.Items, viewMessage(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// handleUsage serves GET /api/v1/me/usage: the caller's tokens today
// against the daily budget.
func (s *Server) handleUsage(w http.ResponseWriter, r *http.Request) {
	u, err := s.chat.Usage(r.Context(), principal(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

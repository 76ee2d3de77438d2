package httpapi

import (
	"net/http"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// ttftTrace is the body of GET /debug/ttft/{id}.
type ttftTrace struct {
	MessageID       string           `json:"message_id"`
	Steps           map[string]int64 `json:"steps"` // step name → Unix nanoseconds
	ModelConnReused *bool            `json:"model_conn_reused,omitempty"`
}

// handleTTFTTrace serves GET /debug/ttft/{id}, routed only when the chat
// service traces (GYMBRO_TRACE_TTFT): when the caller's exchange passed
// each step on its way to its first delta, for the load tool's ttft mode.
// It holds timestamps only; an exchange that is not the caller's, or is
// no longer in the trace, is 404 message_not_found.
func (s *Server) handleTTFTTrace(w http.ResponseWriter, r *http.Request) {
	m, err := s.chat.Message(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	steps, reused, ok := s.chat.Trace().Steps(m.ID)
	if !ok {
		s.writeError(w, r, gymbro.MessageNotFound())
		return
	}
	writeJSON(w, http.StatusOK, ttftTrace{MessageID: m.ID, Steps: steps, ModelConnReused: reused})
}

// Package supabasetest provides a fake of Supabase's REST endpoint for
// public.chat_records that speaks PostgREST's wire contract, so the sink and
// the outbox worker are tested against HTTP rather than a mock of our own
// interfaces. Hosted Supabase cannot run on a test machine; everything else
// in those tests is real.
package supabasetest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// Table is the path PostgREST serves public.chat_records at behind
// Supabase's gateway.
const Table = "/rest/v1/chat_records"

// Mode is how the fake answers every request.
type Mode int

// Modes of the fake.
const (
	Up        Mode = iota // upsert and answer 201 (some inserted) or 200 (all merged)
	Outage                // 503, as PostgREST answers when its database is unreachable
	RateLimit             // 429 with Retry-After
)

// PostgREST is the fake. Its methods are safe for concurrent use.
type PostgREST struct {
	// Server is the running httptest server; its URL is the project base.
	Server *httptest.Server

	key string

	mu          sync.Mutex
	mode        Mode
	retryAfter  string
	reject      map[string]bool // ids whose batch fails with a permanent 400
	rows        map[string]map[string]any
	writes      map[string]int // successful deliveries per id
	inflight    map[string]int
	maxInflight int
	requests    int
	violations  []string
}

// New starts a fake that accepts key as the service-role key and stops it
// when t ends.
func New(t testing.TB, key string) *PostgREST {
	t.Helper()
	f := &PostgREST{key: key, reject: map[string]bool{}, rows: map[string]map[string]any{},
		writes: map[string]int{}, inflight: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f
}

// URL is the project base URL to configure the sink with.
func (f *PostgREST) URL() string { return f.Server.URL }

// SetMode switches how the fake answers; retryAfter is sent with RateLimit
// (and with Outage when not empty).
func (f *PostgREST) SetMode(m Mode, retryAfter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.retryAfter = m, retryAfter
}

// Reject makes any batch containing one of ids fail with PostgREST's
// PGRST204 (a column missing from the schema cache): a permanent error.
func (f *PostgREST) Reject(ids ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		f.reject[id] = true
	}
}

// AcceptAll undoes Reject: "the fix" has been deployed.
func (f *PostgREST) AcceptAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.reject)
}

// Row returns the stored row with id, nil when absent.
func (f *PostgREST) Row(id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rows[id]
}

// Len is the number of distinct rows stored.
func (f *PostgREST) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.rows)
}

// Writes returns the successful deliveries of each id.
func (f *PostgREST) Writes() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.writes)
}

// Requests is the number of requests served, failed ones included.
func (f *PostgREST) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// MaxInFlight is the most requests that carried the same id at once.
func (f *PostgREST) MaxInFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxInflight
}

// Violations lists requests that broke the wire contract.
func (f *PostgREST) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.violations...)
}

// Columns are the columns of public.chat_records a client may send.
var Columns = []string{"id", "user_id", "provider", "provider_uid", "conversation_id", "user_message",
	"ai_response", "status", "error_code", "model", "prompt_tokens", "completion_tokens", "total_tokens",
	"trace_id", "metadata", "created_at", "completed_at", "synced_at"}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "details": nil, "hint": nil})
}

func (f *PostgREST) violate(w http.ResponseWriter, status int, code, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.mu.Lock()
	f.violations = append(f.violations, msg)
	f.mu.Unlock()
	writeError(w, status, code, msg)
}

// serve answers one request: the wire contract is checked first (a breach
// is recorded in Violations), then the mode decides between a failure and
// the upsert.
func (f *PostgREST) serve(w http.ResponseWriter, r *http.Request) {
	mode, retryAfter := f.countRequest()
	if !f.checkRequest(w, r) {
		return
	}
	rows, ok := f.readRows(w, r)
	if !ok {
		return
	}
	if answerMode(w, mode, retryAfter) {
		return
	}
	if !f.beginWrite(rows) {
		writeError(w, http.StatusBadRequest, "PGRST204", "Could not find the 'x' column of 'chat_records' in the schema cache")
		return
	}
	w.WriteHeader(f.upsert(rows))
}

// countRequest counts a request and returns the mode to answer it in.
func (f *PostgREST) countRequest() (Mode, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	return f.mode, f.retryAfter
}

// checkRequest checks the path, method, keys and headers of a request and
// answers a breach as PostgREST would; it reports whether all were right.
func (f *PostgREST) checkRequest(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Path != Table {
		f.violate(w, http.StatusNotFound, "PGRST205", "Could not find the table '%s' in the schema cache", r.URL.Path)
		return false
	}
	if r.Method != http.MethodPost {
		f.violate(w, http.StatusMethodNotAllowed, "PGRST117", "Unsupported HTTP method: %s", r.Method)
		return false
	}
	if got := r.Header.Get("apikey"); got != f.key || r.Header.Get("Authorization") != "Bearer "+f.key {
		f.violate(w, http.StatusUnauthorized, "", "Invalid API key")
		return false
	}
	if r.URL.Query().Get("on_conflict") != "id" {
		f.violate(w, http.StatusBadRequest, "PGRST100", "on_conflict=id missing: %q", r.URL.RawQuery)
		return false
	}
	prefer := preferences(r)
	if !prefer["resolution=merge-duplicates"] || !prefer["return=minimal"] {
		f.violate(w, http.StatusBadRequest, "PGRST122", "Prefer lacks resolution=merge-duplicates or return=minimal: %v", r.Header.Values("Prefer"))
		return false
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		f.violate(w, http.StatusUnsupportedMediaType, "PGRST107", "Content-Type %q", ct)
		return false
	}
	return true
}

// preferences is the set of preferences in a request's Prefer headers.
func preferences(r *http.Request) map[string]bool {
	prefer := map[string]bool{}
	for _, h := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			prefer[strings.TrimSpace(p)] = true
		}
	}
	return prefer
}

// readRows reads the JSON array of rows and checks that they share their
// keys, name only known columns and carry a UUID id.
func (f *PostgREST) readRows(w http.ResponseWriter, r *http.Request) ([]map[string]any, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, false
	}
	var rows []map[string]any
	if err := json.Unmarshal(body, &rows); err != nil || len(rows) == 0 {
		f.violate(w, http.StatusBadRequest, "PGRST102", "Empty or invalid json: %v", err)
		return nil, false
	}
	allowed := map[string]bool{}
	for _, c := range Columns {
		allowed[c] = true
	}
	for i, row := range rows {
		if !f.checkRow(w, i, row, len(rows[0]), allowed) {
			return nil, false
		}
	}
	return rows, true
}

// checkRow checks row i of a batch whose first row has keys keys.
func (f *PostgREST) checkRow(w http.ResponseWriter, i int, row map[string]any, keys int, allowed map[string]bool) bool {
	if len(row) != keys {
		f.violate(w, http.StatusBadRequest, "PGRST102", "All object keys must match (row %d)", i)
		return false
	}
	for k := range row {
		if !allowed[k] {
			f.violate(w, http.StatusBadRequest, "PGRST204", "Could not find the '%s' column of 'chat_records' in the schema cache", k)
			return false
		}
	}
	id, _ := row["id"].(string)
	if _, err := uuid.Parse(id); err != nil {
		f.violate(w, http.StatusBadRequest, "22P02", "invalid input syntax for type uuid: %q", id)
		return false
	}
	return true
}

// answerMode answers a request as an outage or a rate limit would, and
// reports whether it did.
func answerMode(w http.ResponseWriter, mode Mode, retryAfter string) bool {
	switch mode {
	case Outage:
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeError(w, http.StatusServiceUnavailable, "PGRST001", "Database client error. Retrying the connection.")
		return true
	case RateLimit:
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusTooManyRequests, "", "Too many requests")
		return true
	}
	return false
}

// beginWrite marks each id of rows in flight, unless one of them is
// rejected; it reports whether the write may go ahead.
func (f *PostgREST) beginWrite(rows []map[string]any) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, row := range rows {
		if f.reject[row["id"].(string)] {
			return false
		}
	}
	for _, row := range rows {
		id := row["id"].(string)
		f.inflight[id]++
		f.maxInflight = max(f.maxInflight, f.inflight[id])
	}
	return true
}

// upsert merges rows into the table and returns 201 when one was new, 200
// when all were merged. It runs after beginWrite released the lock, as a
// database write would, so a batch sent twice at once shows up in
// MaxInFlight.
func (f *PostgREST) upsert(rows []map[string]any) int {
	status := http.StatusOK
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, row := range rows {
		id := row["id"].(string)
		if f.rows[id] == nil {
			status = http.StatusCreated
			f.rows[id] = map[string]any{}
		}
		for k, v := range row { // merge-duplicates: the sent columns win
			f.rows[id][k] = v
		}
		f.writes[id]++
		f.inflight[id]--
	}
	return status
}

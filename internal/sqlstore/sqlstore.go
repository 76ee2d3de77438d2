// Package sqlstore holds what the two SQL stores (sqlite and postgres)
// decide alike: the create-message and finish-message transactions, the
// errors a guarded update explains itself with, and cursor paging. Each
// store supplies only what truly differs between the dialects: the SQL, its
// placeholders, how it locks, how it batches round trips and how its driver
// reports a unique violation.
//
// The transactions are written as decisions over a small interface that the
// store implements on its own transaction type, so a fix to one is a fix to
// both, and the store contract suite (storetest) checks each store the same.
package sqlstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Admission is what deciding on a new exchange reads, inside its creating
// transaction and under the locks the dialect needs so that two concurrent
// creates cannot both read the state before either wrote.
type Admission struct {
	// Prior is the exchange the user stored under the same idempotency
	// key, nil when there is none (or no key); PriorHash is the hash of its
	// request.
	Prior     *gymbro.Message
	PriorHash string
	// Running counts the user's queued and working exchanges; read only
	// when NewMessage.MaxRunning > 0.
	Running int
	// TokensUsed is what the user's exchanges spent on the UTC day of
	// NewMessage.Now; read only when NewMessage.DailyTokens > 0.
	TokensUsed int64
}

// Row is a new exchange as CreateTx.Create writes it: working, under Lease.
type Row struct {
	Message         *gymbro.Message
	Lease           gymbro.Lease
	NewConversation bool   // insert the conversation (else touch the user's existing one)
	Title           string // of a new conversation
	IdempotencyKey  string // empty: none (stored as NULL)
	RequestHash     string
}

// Outcome is how CreateTx.Create went.
type Outcome int

// Outcomes of a create. Anything but Inserted leaves nothing written.
const (
	Inserted            Outcome = iota
	NotAdmitted                 // Admits refused the Admission: nothing was written
	ConversationExists          // the new conversation's id is taken
	ConversationMissing         // the user has no conversation with that id
	MessageExists               // the message id is taken
)

// CreateTx is a dialect's half of the create-message transaction; the
// store calls CreateMessage with it inside one transaction.
type CreateTx interface {
	// Create reads the Admission for in and, when Admits(in, a), writes r
	// (the conversation, new or touched, and the exchange), or reports
	// NotAdmitted. A dialect may evaluate Admits itself (PostgreSQL does,
	// in SQL, so that reading and writing are one round trip); the
	// Admission it returns must be what it decided on.
	Create(ctx context.Context, in gymbro.NewMessage, r Row) (Admission, Outcome, error)
}

// Admits is the admission rule: no exchange under the same idempotency
// key, the user's running exchanges under the cap, the day's tokens under
// the budget (a cap or budget of zero or less is none).
func Admits(in gymbro.NewMessage, a Admission) bool {
	return a.Prior == nil && (in.MaxRunning <= 0 || a.Running < in.MaxRunning) &&
		(in.DailyTokens <= 0 || a.TokensUsed < in.DailyTokens)
}

// CreateMessage decides and writes a new exchange; see gymbro.Store. An
// idempotent replay is answered before the running cap and the budget, so
// a retry of an accepted request always gets its exchange back.
func CreateMessage(ctx context.Context, tx CreateTx, in gymbro.NewMessage, now time.Time) (*gymbro.Message, bool, error) {
	if in.Lease.Owner == "" {
		return nil, false, gymbro.Errorf(gymbro.KindInvalid, "lease_missing", "A new message needs its generation's lease.")
	}
	r := newRow(in, now)
	a, outcome, err := tx.Create(ctx, in, r)
	if err != nil {
		return nil, false, err
	}
	if admitted := outcome != NotAdmitted; admitted != Admits(in, a) {
		// A dialect that decides in SQL decided otherwise than Admits: a bug.
		return nil, false, gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal,
			"The store's admission disagrees with its rule (admitted %t).", admitted)
	}
	switch {
	case a.Prior != nil && a.PriorHash != in.RequestHash:
		return nil, false, gymbro.Errorf(gymbro.KindConflict, "idempotency_conflict",
			"The Idempotency-Key was already used with a different request.")
	case a.Prior != nil:
		return a.Prior, true, nil
	case in.MaxRunning > 0 && a.Running >= in.MaxRunning:
		return nil, false, gymbro.TooManyRunning()
	case in.DailyTokens > 0 && a.TokensUsed >= in.DailyTokens:
		return nil, false, gymbro.BudgetExhausted(now)
	case outcome == ConversationExists:
		return nil, false, gymbro.Errorf(gymbro.KindConflict, "conversation_exists", "The conversation already exists.")
	case outcome == ConversationMissing:
		return nil, false, gymbro.ConversationNotFound()
	case outcome == MessageExists:
		return nil, false, gymbro.Errorf(gymbro.KindConflict, "message_exists", "The message already exists.")
	}
	return r.Message, false, nil
}

func newRow(in gymbro.NewMessage, now time.Time) Row {
	r := Row{Lease: in.Lease, IdempotencyKey: in.IdempotencyKey, RequestHash: in.RequestHash}
	convID := in.ConversationID
	if convID == "" {
		convID = in.NewConversationID
		r.NewConversation, r.Title = true, gymbro.ConversationTitle(in.Text)
	}
	r.Message = &gymbro.Message{
		ID: in.ID, ConversationID: convID, UserID: in.UserID, Provider: in.Provider,
		Text: in.Text, Status: gymbro.StatusWorking, TraceID: in.TraceID,
		CreatedAt: now, UpdatedAt: now,
	}
	return r
}

// FinishTx is a dialect's half of the finish-message transaction.
type FinishTx interface {
	// Finish writes done over the stored exchange, with its outbox record
	// and tokens (when positive) added to the user's count for day
	// (YYYY-MM-DD, UTC), if the exchange is queued or working and its
	// fields set at creation are done's; false, and nothing written,
	// otherwise.
	Finish(ctx context.Context, done *gymbro.Message, record []byte, day string, tokens int64) (bool, error)
	// Stored reads the exchange as stored; nil when it does not exist.
	Stored(ctx context.Context, id string) (*gymbro.Message, error)
}

// FinishMessage records a terminal result with its outbox record and the
// user's token count in one transaction, so an exchange is never finished
// without being synced and counted (nor synced without being finished).
// The finished exchange and its record are built from m before the write,
// which checks that m's fields set at creation are the stored ones, so
// what is synced is what is stored. The tokens added are what the
// exchange counts in all less what its generation charged already.
func FinishMessage(ctx context.Context, tx FinishTx, m *gymbro.Message, r gymbro.Result, at time.Time) (*gymbro.Message, error) {
	if !r.Status.Terminal() {
		return nil, gymbro.Errorf(gymbro.KindInvalid, "invalid_status", "The status %q is not terminal.", r.Status)
	}
	done := m.Finished(r, at)
	rec, err := json.Marshal(done.ChatRecord())
	if err != nil {
		return nil, err
	}
	tokens := done.BudgetTokens(r.Charged) - r.Charged
	switch ok, err := tx.Finish(ctx, done, rec, gymbro.UsageDay(at), tokens); {
	case err != nil:
		return nil, err
	case ok:
		return done, nil
	}
	stored, err := tx.Stored(ctx, m.ID)
	switch {
	case err != nil:
		return nil, err
	case stored == nil:
		return nil, gymbro.MessageNotFound()
	case stored.Status.Terminal():
		return nil, gymbro.Errorf(gymbro.KindConflict, "message_terminal", "The message is already finished.")
	}
	return nil, gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal, "The message to finish differs from the stored one.")
}

// StateError explains why a guarded update touched no row: the exchange is
// missing, or in a state the caller names with code.
func StateError(ctx context.Context, exists func(context.Context, string) (bool, error), id, code, msg string) error {
	ok, err := exists(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return gymbro.MessageNotFound()
	}
	return gymbro.Errorf(gymbro.KindConflict, code, "%s", msg)
}

// NextPage trims a page read with limit+1 rows to limit and returns the
// cursor of the next page, or "" when this page is the last.
func NextPage[T any](items []T, limit int, cursor func(last T) gymbro.Cursor) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, cursor(items[limit-1]).Encode()
}

// Reverse puts a newest-first slice oldest first, in place.
func Reverse[T any](s []T) []T {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
	return s
}

// Err turns a driver failure into an *gymbro.Error that keeps it as the
// hidden cause: a timeout (the context's deadline, or what the dialect's
// timeout recognises) is 504 store_timeout and an outage 503, each with
// Retry-After, anything else 500. An *gymbro.Error passes through untouched.
func Err(err error, timeout, outage func(error) bool) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*gymbro.Error](err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded) || timeout(err):
		e := gymbro.Wrap(err, gymbro.KindTimeout, "store_timeout", "The store did not answer in time.")
		e.RetryAfter = gymbro.OutageRetryAfter
		return e
	case outage(err):
		return gymbro.Unavailable(err, "The store")
	}
	return gymbro.Wrap(err, gymbro.KindInternal, gymbro.CodeInternal, "Storage failed.")
}

// Claimed is an outbox item as a claim's RETURNING gives it: in no order.
type Claimed struct {
	Item gymbro.OutboxItem
	Due  time.Time
}

// DecodeRecord reads a stored chat record into c.
func (c *Claimed) DecodeRecord(rec []byte) error { return json.Unmarshal(rec, &c.Item.Record) }

// InDueOrder hands claimed items out in the order they fell due.
func InDueOrder(cs []Claimed) []gymbro.OutboxItem {
	slices.SortFunc(cs, func(a, b Claimed) int {
		return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.Item.ID, b.Item.ID))
	})
	out := make([]gymbro.OutboxItem, len(cs))
	for i, c := range cs {
		out[i] = c.Item
	}
	return out
}

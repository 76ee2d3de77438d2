package sqlstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlstore"
)

// fixedTx answers Create with what it is given, as a dialect that decides
// in SQL would.
type fixedTx struct {
	a       sqlstore.Admission
	outcome sqlstore.Outcome
}

func (f fixedTx) Create(context.Context, gymbro.NewMessage, sqlstore.Row) (sqlstore.Admission, sqlstore.Outcome, error) {
	return f.a, f.outcome, nil
}

// TestCreateMessageDecides checks the decision on what a dialect read and
// did, and that a dialect whose own decision disagrees with Admits is
// caught rather than believed.
func TestCreateMessageDecides(t *testing.T) {
	in := gymbro.NewMessage{ID: "m1", NewConversationID: "c1", UserID: "u1", Text: "squat?", RequestHash: "h1",
		MaxRunning: 3, DailyTokens: 100, Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}}
	prior := &gymbro.Message{ID: "m0"}
	for _, tt := range []struct {
		name     string
		tx       fixedTx
		in       func(gymbro.NewMessage) gymbro.NewMessage
		wantCode string // "" for success
		replayed bool
	}{
		{name: "inserted", tx: fixedTx{sqlstore.Admission{Running: 2, TokensUsed: 99}, sqlstore.Inserted}},
		{name: "replay", tx: fixedTx{sqlstore.Admission{Prior: prior, PriorHash: "h1", Running: 3}, sqlstore.NotAdmitted}, replayed: true},
		{name: "key reused", tx: fixedTx{sqlstore.Admission{Prior: prior, PriorHash: "other"}, sqlstore.NotAdmitted}, wantCode: "idempotency_conflict"},
		{name: "cap", tx: fixedTx{sqlstore.Admission{Running: 3}, sqlstore.NotAdmitted}, wantCode: gymbro.CodeTooManyRunning},
		{name: "budget", tx: fixedTx{sqlstore.Admission{TokensUsed: 100}, sqlstore.NotAdmitted}, wantCode: gymbro.CodeBudgetExhausted},
		{name: "not theirs", tx: fixedTx{sqlstore.Admission{}, sqlstore.ConversationMissing}, wantCode: gymbro.CodeConversationNotFound},
		{name: "inserted over the cap", tx: fixedTx{sqlstore.Admission{Running: 3}, sqlstore.Inserted}, wantCode: gymbro.CodeInternal},
		{name: "refused under the cap", tx: fixedTx{sqlstore.Admission{Running: 2}, sqlstore.NotAdmitted}, wantCode: gymbro.CodeInternal},
		{name: "no lease", tx: fixedTx{sqlstore.Admission{}, sqlstore.Inserted}, wantCode: "lease_missing",
			in: func(in gymbro.NewMessage) gymbro.NewMessage { in.Lease = gymbro.Lease{}; return in }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := in
			if tt.in != nil {
				in = tt.in(in)
			}
			m, replayed, err := sqlstore.CreateMessage(context.Background(), tt.tx, in, time.Now())
			if code := gymbro.ErrorCode(err); code != tt.wantCode && !(tt.wantCode == "" && err == nil) {
				t.Fatalf("err = %v (code %q), want code %q", err, code, tt.wantCode)
			}
			if tt.wantCode == "" && (m == nil || replayed != tt.replayed) {
				t.Fatalf("m = %+v, replayed = %t; want a message, replayed %t", m, replayed, tt.replayed)
			}
			if tt.wantCode == "" && !tt.replayed && (m.ID != "m1" || m.Status != gymbro.StatusWorking) {
				t.Errorf("created %+v, want m1 working", m)
			}
		})
	}
}

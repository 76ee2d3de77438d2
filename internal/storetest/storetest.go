// Package storetest is the behaviour suite every gymbro.Store passes: the
// SQLite and PostgreSQL stores run the same subtests, so the application
// cannot tell them apart.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// Run runs the suite. open returns a fresh, empty store for one subtest and
// arranges (with t.Cleanup) to close and remove it.
func Run(t *testing.T, open func(t *testing.T) gymbro.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s gymbro.Store)
	}{
		{"CreateAndRead", testCreateAndRead},
		{"CreateInConversation", testCreateInConversation},
		{"ConversationNotFound", testConversationNotFound},
		{"MessageOfAnotherUser", testMessageOfAnotherUser},
		{"Idempotency", testIdempotency},
		{"IdempotencyRace", testIdempotencyRace},
		{"DuplicateMessageID", testDuplicateMessageID},
		{"Lease", testLease},
		{"SaveReply", testSaveReply},
		{"Finish", testFinish},
		{"FinishMismatch", testFinishMismatch},
		{"FinishRace", testFinishRace},
		{"FinishInvalid", testFinishInvalid},
		{"ExpiredLeases", testExpiredLeases},
		{"ConversationsPagination", testConversationsPagination},
		{"ConversationMessagesPagination", testConversationMessagesPagination},
		{"PageLimits", testPageLimits},
		{"InvalidCursor", testInvalidCursor},
		{"History", testHistory},
		{"CountRunning", testCountRunning},
		{"RunningCap", testRunningCap},
		{"RunningCapRace", testRunningCapRace},
		{"Budget", testBudget},
		{"BudgetRace", testBudgetRace},
		{"BudgetCharge", testBudgetCharge},
		{"Discard", testDiscard},
		{"Outbox", testOutbox},
		{"OutboxBuryRedrive", testOutboxBuryRedrive},
		{"OutboxConcurrentClaim", testOutboxConcurrentClaim},
		{"Ping", testPing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// base is a past instant with millisecond precision, so stored times are
// exact and every "now" the store takes from its own clock is later.
func base() time.Time { return time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond) }

func newID() string { return uuid.NewString() }

func newMessage(user, conv, text string, at time.Time) gymbro.NewMessage {
	return gymbro.NewMessage{
		ID:                newID(),
		ConversationID:    conv,
		NewConversationID: newID(),
		UserID:            user,
		Provider:          gymbro.ProviderSupabase,
		Text:              text,
		TraceID:           "trace-" + newID()[:8],
		Lease:             gymbro.Lease{Owner: "w", Until: at.Add(time.Minute)},
		Now:               at,
	}
}

func create(t *testing.T, s gymbro.Store, in gymbro.NewMessage) *gymbro.Message {
	t.Helper()
	m, replayed, err := s.CreateMessage(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateMessage: %v", err)
	}
	if replayed {
		t.Fatalf("CreateMessage replayed a new message")
	}
	return m
}

func finish(t *testing.T, s gymbro.Store, m *gymbro.Message, status gymbro.Status, at time.Time) *gymbro.Message {
	t.Helper()
	m, err := s.FinishMessage(context.Background(), m, gymbro.Result{
		Status: status, Reply: "reply to " + m.ID, Model: "demo", FinishReason: "stop",
		Usage: gymbro.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}, LastSeq: 5, At: at,
	})
	if err != nil {
		t.Fatalf("FinishMessage(%s): %v", status, err)
	}
	return m
}

// wantErr fails t unless err is an *gymbro.Error of kind and code.
func wantErr(t *testing.T, err error, kind gymbro.Kind, code string) {
	t.Helper()
	var ge *gymbro.Error
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v, want *gymbro.Error %s", err, code)
	}
	if ge.Kind != kind || ge.Code != code {
		t.Fatalf("err = kind %d code %q (%v), want kind %d code %q", ge.Kind, ge.Code, err, kind, code)
	}
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func testCreateAndRead(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	at := base()
	text := strings.Repeat("Squat form check ", 10)
	in := newMessage("u1", "", text, at)
	m := create(t, s, in)
	if m.ID != in.ID || m.ConversationID != in.NewConversationID || m.UserID != "u1" || m.Status != gymbro.StatusWorking {
		t.Fatalf("created = %+v", m)
	}
	got, err := s.Message(ctx, "u1", in.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := &gymbro.Message{
		ID: in.ID, ConversationID: in.NewConversationID, UserID: "u1", Provider: gymbro.ProviderSupabase,
		Text: text, Status: gymbro.StatusWorking, TraceID: in.TraceID, CreatedAt: at, UpdatedAt: at,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Message (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("CreateMessage result differs from what was stored (-created +stored):\n%s", diff)
	}
	byID, err := s.MessageByID(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, byID); diff != "" {
		t.Errorf("MessageByID (-Message +MessageByID):\n%s", diff)
	}
	_, err = s.MessageByID(ctx, newID())
	wantErr(t, err, gymbro.KindNotFound, "message_not_found")

	convs, next, err := s.Conversations(ctx, "u1", gymbro.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != 1 || next != "" {
		t.Fatalf("Conversations = %d items, next %q; want 1, none", len(convs), next)
	}
	c := convs[0]
	wantTitle := strings.TrimSpace(string([]rune(strings.Join(strings.Fields(text), " "))[:60]))
	if c.ID != in.NewConversationID || c.UserID != "u1" || c.Title != wantTitle {
		t.Errorf("conversation = %+v, want title %q", c, wantTitle)
	}
	if n := len([]rune(c.Title)); n > 60 || n == 0 {
		t.Errorf("title has %d characters, want 1..60", n)
	}
	sameTime(t, "conversation created_at", c.CreatedAt, at)
	sameTime(t, "conversation updated_at", c.UpdatedAt, at)
}

func testCreateInConversation(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	at := base()
	first := create(t, s, newMessage("u1", "", "hello coach", at))
	later := at.Add(90 * time.Second)
	second := create(t, s, newMessage("u1", first.ConversationID, "and deadlifts?", later))
	if second.ConversationID != first.ConversationID {
		t.Fatalf("second message in conversation %q, want %q", second.ConversationID, first.ConversationID)
	}
	convs, _, err := s.Conversations(ctx, "u1", gymbro.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) != 1 {
		t.Fatalf("%d conversations, want 1", len(convs))
	}
	if convs[0].Title != "hello coach" {
		t.Errorf("title = %q, want the first message's text", convs[0].Title)
	}
	sameTime(t, "updated_at after second message", convs[0].UpdatedAt, later)
	sameTime(t, "created_at", convs[0].CreatedAt, at)
}

func testConversationNotFound(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	theirs := create(t, s, newMessage("u2", "", "mine", base()))
	for _, conv := range []string{theirs.ConversationID, newID()} {
		_, _, err := s.CreateMessage(ctx, newMessage("u1", conv, "hi", base()))
		wantErr(t, err, gymbro.KindNotFound, "conversation_not_found")
		_, _, err = s.ConversationMessages(ctx, "u1", conv, gymbro.Page{})
		wantErr(t, err, gymbro.KindNotFound, "conversation_not_found")
	}
	if n, err := s.CountRunning(ctx, "u1"); err != nil || n != 0 {
		t.Errorf("CountRunning(u1) = %d, %v; want 0 after refused creates", n, err)
	}
}

func testMessageOfAnotherUser(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	m := create(t, s, newMessage("u1", "", "private", base()))
	_, err := s.Message(ctx, "u2", m.ID)
	wantErr(t, err, gymbro.KindNotFound, "message_not_found")
	_, err = s.Message(ctx, "u1", newID())
	wantErr(t, err, gymbro.KindNotFound, "message_not_found")
}

func testIdempotency(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	in := newMessage("u1", "", "one set of squats", base())
	in.IdempotencyKey, in.RequestHash = "key-1", "hash-a"
	first := create(t, s, in)

	again := newMessage("u1", "", "one set of squats", base().Add(time.Second))
	again.IdempotencyKey, again.RequestHash = "key-1", "hash-a"
	m, replayed, err := s.CreateMessage(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if !replayed || m.ID != first.ID || m.ConversationID != first.ConversationID {
		t.Fatalf("replay = %s (replayed %v), want %s replayed", m.ID, replayed, first.ID)
	}

	clash := newMessage("u1", "", "something else", base())
	clash.IdempotencyKey, clash.RequestHash = "key-1", "hash-b"
	_, _, err = s.CreateMessage(ctx, clash)
	wantErr(t, err, gymbro.KindConflict, "idempotency_conflict")

	// Keys are per user: another user's identical key is a new message.
	other := newMessage("u2", "", "one set of squats", base())
	other.IdempotencyKey, other.RequestHash = "key-1", "hash-a"
	if m := create(t, s, other); m.ID == first.ID {
		t.Fatal("another user's key replayed u1's message")
	}
	// No key: never replayed.
	create(t, s, newMessage("u1", "", "one set of squats", base()))
	create(t, s, newMessage("u1", "", "one set of squats", base()))
	if n, err := s.CountRunning(ctx, "u1"); err != nil || n != 3 {
		t.Errorf("CountRunning(u1) = %d, %v; want 3", n, err)
	}
}

func testIdempotencyRace(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	const n = 16
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ids      = map[string]int{}
		replays  int
		failures []error
	)
	for range n {
		wg.Go(func() {
			in := newMessage("racer", "", "same request", base())
			in.IdempotencyKey, in.RequestHash = "race-key", "h"
			m, replayed, err := s.CreateMessage(ctx, in)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			ids[m.ID]++
			if replayed {
				replays++
			}
		})
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d creates failed, first: %v", len(failures), failures[0])
	}
	if len(ids) != 1 || replays != n-1 {
		t.Fatalf("ids = %v, replays = %d; want one id and %d replays", ids, replays, n-1)
	}
	if c, err := s.CountRunning(ctx, "racer"); err != nil || c != 1 {
		t.Errorf("CountRunning = %d, %v; want 1", c, err)
	}
	convs, _, err := s.Conversations(ctx, "racer", gymbro.Page{})
	if err != nil || len(convs) != 1 {
		t.Errorf("Conversations = %d, %v; want exactly 1 (the losers' conversations rolled back)", len(convs), err)
	}
}

func testDuplicateMessageID(t *testing.T, s gymbro.Store) {
	first := create(t, s, newMessage("u1", "", "a", base()))
	in := newMessage("u1", first.ConversationID, "b", base())
	in.ID = first.ID
	_, _, err := s.CreateMessage(context.Background(), in)
	if gymbro.ErrorKind(err) != gymbro.KindConflict {
		t.Fatalf("duplicate id: err = %v, want KindConflict", err)
	}
}

// testLease: a new exchange is stored working under its generation's
// lease, which only its holder renews; one without a lease owner is refused.
func testLease(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	in := newMessage("u1", "", "go", base())
	in.Lease.Owner = ""
	_, _, err := s.CreateMessage(ctx, in)
	wantErr(t, err, gymbro.KindInvalid, "lease_missing")
	if _, err := s.MessageByID(ctx, in.ID); gymbro.ErrorCode(err) != gymbro.CodeMessageNotFound {
		t.Fatalf("a refused create stored its message: %v", err)
	}

	until := base().Add(time.Minute)
	in.Lease = gymbro.Lease{Owner: "worker-a", Until: until}
	m := create(t, s, in)
	got, err := s.Message(ctx, "u1", m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != gymbro.StatusWorking {
		t.Fatalf("status = %s, want working", got.Status)
	}
	if exp, err := s.ExpiredLeases(ctx, until.Add(-time.Second), 10); err != nil || len(exp) != 0 {
		t.Fatalf("ExpiredLeases within the create's lease = %d, %v; want none", len(exp), err)
	}

	if err := s.RenewLease(ctx, m.ID, "worker-a", until.Add(time.Minute)); err != nil {
		t.Fatalf("RenewLease by holder: %v", err)
	}
	wantErr(t, s.RenewLease(ctx, m.ID, "worker-b", until.Add(time.Minute)), gymbro.KindConflict, "lease_lost")
	wantErr(t, s.RenewLease(ctx, newID(), "worker-a", until), gymbro.KindNotFound, "message_not_found")

	// The renewed lease is what ExpiredLeases honours.
	if exp, err := s.ExpiredLeases(ctx, until.Add(30*time.Second), 10); err != nil || len(exp) != 0 {
		t.Fatalf("ExpiredLeases before the renewed lease ends = %d, %v; want none", len(exp), err)
	}
	if exp, err := s.ExpiredLeases(ctx, until.Add(2*time.Minute), 10); err != nil || len(exp) != 1 || exp[0].ID != m.ID {
		t.Fatalf("ExpiredLeases after the lease = %v, %v; want [%s]", exp, err, m.ID)
	}

	finish(t, s, m, gymbro.StatusCompleted, base().Add(time.Second))
	wantErr(t, s.RenewLease(ctx, m.ID, "worker-a", until), gymbro.KindConflict, "lease_lost")
}

func testSaveReply(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	m := create(t, s, newMessage("u1", "", "go", base()))
	if err := s.SaveReply(ctx, m.ID, "Keep your back"); err != nil {
		t.Fatal(err)
	}
	got, err := s.MessageByID(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Reply != "Keep your back" || got.Status != gymbro.StatusWorking {
		t.Errorf("after SaveReply: reply %q status %s", got.Reply, got.Status)
	}
	wantErr(t, s.SaveReply(ctx, newID(), "x"), gymbro.KindNotFound, "message_not_found")
	finish(t, s, m, gymbro.StatusCompleted, base().Add(time.Second))
	wantErr(t, s.SaveReply(ctx, m.ID, "late"), gymbro.KindConflict, "message_terminal")
	got, err = s.MessageByID(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Reply != "reply to "+m.ID {
		t.Errorf("a late SaveReply changed a finished reply to %q", got.Reply)
	}
}

func testFinish(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	in := newMessage("u1", "", "how many sets?", base())
	m := create(t, s, in)
	at := base().Add(5 * time.Second)
	r := gymbro.Result{
		Status: gymbro.StatusFailed, Reply: "Three", ErrorCode: gymbro.CodeAITimeout, ErrorMessage: "too slow",
		Model: "gpt-x", FinishReason: "length", Usage: gymbro.Usage{PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12},
		LastSeq: 9, At: at,
	}
	got, err := s.FinishMessage(ctx, m, r)
	if err != nil {
		t.Fatal(err)
	}
	want := &gymbro.Message{
		ID: m.ID, ConversationID: m.ConversationID, UserID: "u1", Provider: gymbro.ProviderSupabase,
		Text: "how many sets?", Reply: "Three", Status: gymbro.StatusFailed, ErrorCode: gymbro.CodeAITimeout,
		ErrorMessage: "too slow", Model: "gpt-x", FinishReason: "length", Usage: r.Usage, TraceID: in.TraceID,
		LastSeq: 9, CreatedAt: m.CreatedAt, UpdatedAt: at, CompletedAt: &at,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FinishMessage (-want +got):\n%s", diff)
	}
	wantFinishedStored(t, s, got, at)

	_, err = s.FinishMessage(ctx, m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "again", At: at})
	wantErr(t, err, gymbro.KindConflict, "message_terminal")
	_, err = s.FinishMessage(ctx, &gymbro.Message{ID: newID()}, r)
	wantErr(t, err, gymbro.KindNotFound, "message_not_found")

	wantFinishRecord(t, s, m, in.TraceID, at)
}

// testFinishMismatch: a finish given an exchange whose fields set at
// creation are not the stored ones (a caller's bug) writes nothing, since
// the record it would sync is not what is stored.
func testFinishMismatch(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	m := create(t, s, newMessage("u1", "", "how many sets?", base()))
	for name, change := range map[string]func(*gymbro.Message){
		"text":         func(m *gymbro.Message) { m.Text = "how many reps?" },
		"user":         func(m *gymbro.Message) { m.UserID = "u2" },
		"conversation": func(m *gymbro.Message) { m.ConversationID = newID() },
		"created at":   func(m *gymbro.Message) { m.CreatedAt = m.CreatedAt.Add(time.Millisecond) },
		"trace":        func(m *gymbro.Message) { m.TraceID = "other" },
		"provider":     func(m *gymbro.Message) { m.Provider = gymbro.ProviderFirebase },
	} {
		wrong := *m
		change(&wrong)
		_, err := s.FinishMessage(ctx, &wrong, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "r", At: base()})
		if gymbro.ErrorKind(err) != gymbro.KindInternal {
			t.Errorf("finish with another %s: err = %v, want KindInternal", name, err)
		}
	}
	if got, err := s.MessageByID(ctx, m.ID); err != nil || got.Status != gymbro.StatusWorking {
		t.Fatalf("after refused finishes: %+v, %v; want it still working", got, err)
	}
	if st, err := s.OutboxStats(ctx); err != nil || st.Pending != 0 {
		t.Errorf("outbox = %+v, %v after refused finishes; want empty", st, err)
	}
	finish(t, s, m, gymbro.StatusCompleted, base().Add(time.Second))
}

// wantFinishedStored checks that the store holds the finished message got as
// returned, no longer counts it running and no longer leases it.
func wantFinishedStored(t *testing.T, s gymbro.Store, got *gymbro.Message, at time.Time) {
	t.Helper()
	ctx := context.Background()
	stored, err := s.Message(ctx, got.UserID, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, stored); diff != "" {
		t.Errorf("stored differs from returned (-returned +stored):\n%s", diff)
	}
	if n, err := s.CountRunning(ctx, got.UserID); err != nil || n != 0 {
		t.Errorf("CountRunning = %d, %v; want 0", n, err)
	}
	if exp, err := s.ExpiredLeases(ctx, at.Add(time.Hour), 10); err != nil || len(exp) != 0 {
		t.Errorf("a finished message is still leased: %v, %v", exp, err)
	}
}

// wantFinishRecord checks that the outbox holds exactly one record of
// testFinish's message m: the first finish's, made at at.
func wantFinishRecord(t *testing.T, s gymbro.Store, m *gymbro.Message, trace string, at time.Time) {
	t.Helper()
	items := claim(t, s, "sync", at, at.Add(time.Minute), 10)
	if len(items) != 1 {
		t.Fatalf("outbox has %d items, want 1", len(items))
	}
	it := items[0]
	model, code := "gpt-x", gymbro.CodeAITimeout
	wantRec := gymbro.ChatRecord{
		ID: m.ID, UserID: "u1", Provider: gymbro.ProviderSupabase, ProviderUID: "u1", ConversationID: m.ConversationID,
		UserMessage: "how many sets?", AIResponse: "Three", Status: gymbro.StatusFailed,
		ErrorCode: &code, Model: &model, PromptTokens: 10, CompletionTokens: 2, TotalTokens: 12,
		TraceID: &trace, CreatedAt: m.CreatedAt, CompletedAt: &at,
	}
	if diff := cmp.Diff(wantRec, it.Record, cmp.FilterPath(func(p cmp.Path) bool {
		return p.Last().String() == ".Metadata"
	}, cmp.Ignore())); diff != "" {
		t.Errorf("outbox record (-want +got):\n%s", diff)
	}
	if it.Record.Metadata == nil {
		t.Error("record metadata is nil; Supabase expects an object")
	}
	if it.ID != m.ID || it.Attempts != 1 {
		t.Errorf("outbox item id %s attempts %d, want %s and 1", it.ID, it.Attempts, m.ID)
	}
	sameTime(t, "outbox created_at", it.CreatedAt, at)
}

func testFinishRace(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	m := create(t, s, newMessage("u1", "", "race", base()))
	const n = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok        int
		conflicts int
		others    []error
	)
	for i := range n {
		wg.Go(func() {
			_, err := s.FinishMessage(ctx, m, gymbro.Result{
				Status: gymbro.StatusCompleted, Reply: fmt.Sprintf("reply %d", i), LastSeq: int64(i + 1), At: base(),
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case gymbro.ErrorCode(err) == "message_terminal":
				conflicts++
			default:
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || conflicts != n-1 || len(others) > 0 {
		t.Fatalf("finishes: %d ok, %d message_terminal, errors %v; want 1 and %d", ok, conflicts, others, n-1)
	}
	stats, err := s.OutboxStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Pending != 1 {
		t.Fatalf("outbox pending = %d, want exactly 1 record for one finish", stats.Pending)
	}
	stored, err := s.MessageByID(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	items, err := s.ClaimOutbox(ctx, "sync", time.Now(), time.Now().Add(time.Minute), 5)
	if err != nil || len(items) != 1 {
		t.Fatalf("ClaimOutbox = %d items, %v", len(items), err)
	}
	if items[0].Record.AIResponse != stored.Reply {
		t.Errorf("outbox says %q, message says %q: the winner's record must match the stored message",
			items[0].Record.AIResponse, stored.Reply)
	}
}

func testFinishInvalid(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	m := create(t, s, newMessage("u1", "", "x", base()))
	_, err := s.FinishMessage(ctx, m, gymbro.Result{Status: gymbro.StatusWorking})
	if err == nil {
		t.Fatal("FinishMessage accepted a non-terminal status")
	}
	got, err := s.MessageByID(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != gymbro.StatusWorking {
		t.Errorf("status = %s after a refused finish, want working", got.Status)
	}
	if st, err := s.OutboxStats(ctx); err != nil || st.Pending != 0 {
		t.Errorf("outbox = %+v, %v after a refused finish; want empty", st, err)
	}
}

func testExpiredLeases(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	b := base()
	now := b.Add(10 * time.Second)
	leased := func(text string, at, until time.Time) *gymbro.Message {
		in := newMessage("u1", "", text, at)
		in.Lease.Until = until
		return create(t, s, in)
	}
	lapsedFirst := leased("lapsed first", b, now.Add(-2*time.Second))
	lapsed := leased("lapsed", b.Add(time.Second), now.Add(-time.Second))
	live := leased("live", b.Add(2*time.Second), now.Add(time.Minute))
	done := leased("done", b.Add(3*time.Second), now.Add(-time.Second))
	lateLive := leased("late live", b.Add(20*time.Second), now.Add(2*time.Minute))
	finish(t, s, done, gymbro.StatusCompleted, b.Add(4*time.Second))

	ids := func(ms []*gymbro.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	got, err := s.ExpiredLeases(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{lapsedFirst.ID, lapsed.ID}, ids(got)); diff != "" {
		t.Errorf("ExpiredLeases (-want +got):\n%s", diff)
	}
	got, err = s.ExpiredLeases(ctx, now, 1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{lapsedFirst.ID}, ids(got)); diff != "" {
		t.Errorf("ExpiredLeases limit 1 (-want +got):\n%s", diff)
	}
	got, err = s.ExpiredLeases(ctx, b.Add(time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{lapsedFirst.ID, lapsed.ID, live.ID, lateLive.ID}, ids(got)); diff != "" {
		t.Errorf("ExpiredLeases much later (-want +got):\n%s", diff)
	}
}

// collect pages through list with the given limit, checking each page's
// size and that the last page has no cursor.
func collect[T any](t *testing.T, limit int, list func(p gymbro.Page) ([]T, string, error), between func(page int)) []T {
	t.Helper()
	var (
		all    []T
		cursor string
	)
	for page := 0; ; page++ {
		items, next, err := list(gymbro.Page{Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if len(items) > limit {
			t.Fatalf("page %d has %d items, limit %d", page, len(items), limit)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		if len(items) != limit {
			t.Fatalf("page %d has %d items and a next cursor; want a full page", page, len(items))
		}
		if page > 1000 {
			t.Fatal("pagination does not end")
		}
		if between != nil {
			between(page)
		}
		cursor = next
	}
}

func testConversationsPagination(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	b := base()
	var want []string // newest first
	for i := range 23 {
		// Pairs share an updated_at so the id must break ties.
		at := b.Add(time.Duration(i/2) * time.Second)
		m := create(t, s, newMessage("pager", "", fmt.Sprintf("conversation %d", i), at))
		want = append(want, m.ConversationID)
	}
	create(t, s, newMessage("someone-else", "", "not mine", b.Add(time.Hour)))

	got := collect(t, 5, func(p gymbro.Page) ([]*gymbro.Conversation, string, error) {
		return s.Conversations(ctx, "pager", p)
	}, func(page int) {
		// A conversation started while the client pages lands ahead of
		// the cursor and must not shift the rest.
		create(t, s, newMessage("pager", "", "new while paging", b.Add(2*time.Hour+time.Duration(page)*time.Second)))
	})
	var gotIDs []string
	for i, c := range got {
		gotIDs = append(gotIDs, c.ID)
		if c.UserID != "pager" {
			t.Fatalf("another user's conversation %s listed", c.ID)
		}
		if i > 0 {
			prev := got[i-1]
			if prev.UpdatedAt.Before(c.UpdatedAt) || (prev.UpdatedAt.Equal(c.UpdatedAt) && prev.ID < c.ID) {
				t.Fatalf("not newest first at %d", i)
			}
		}
	}
	// Sort want the way the store must: updated_at desc, id desc.
	byTime := map[string]time.Time{}
	for i, id := range want {
		byTime[id] = b.Add(time.Duration(i/2) * time.Second)
	}
	slices.SortFunc(want, func(x, y string) int {
		if c := byTime[y].Compare(byTime[x]); c != 0 {
			return c
		}
		return strings.Compare(y, x)
	})
	if diff := cmp.Diff(want, gotIDs); diff != "" {
		t.Errorf("paged conversations (-want +got):\n%s", diff)
	}
}

func testConversationMessagesPagination(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	b := base()
	first := create(t, s, newMessage("pager", "", "m0", b))
	conv := first.ConversationID
	ids := []string{first.ID}
	for i := 1; i < 17; i++ {
		m := create(t, s, newMessage("pager", conv, fmt.Sprintf("m%d", i), b.Add(time.Duration(i/3)*time.Second)))
		ids = append(ids, m.ID)
	}
	other := create(t, s, newMessage("pager", "", "elsewhere", b))

	got := collect(t, 4, func(p gymbro.Page) ([]*gymbro.Message, string, error) {
		return s.ConversationMessages(ctx, "pager", conv, p)
	}, func(page int) {
		create(t, s, newMessage("pager", conv, "new while paging", b.Add(time.Hour+time.Duration(page)*time.Second)))
	})
	seen := map[string]bool{}
	for i, m := range got {
		if seen[m.ID] {
			t.Fatalf("message %s listed twice", m.ID)
		}
		seen[m.ID] = true
		if m.ID == other.ID || m.ConversationID != conv {
			t.Fatalf("message %s of another conversation listed", m.ID)
		}
		if i > 0 {
			prev := got[i-1]
			if prev.CreatedAt.Before(m.CreatedAt) || (prev.CreatedAt.Equal(m.CreatedAt) && prev.ID < m.ID) {
				t.Fatalf("not newest first at %d", i)
			}
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("message %s missing from the pages (a gap)", id)
		}
	}
	// Messages created during paging are newer than the cursor: not listed.
	if len(got) != len(ids) {
		t.Errorf("listed %d messages, want the %d that existed before paging", len(got), len(ids))
	}
}

func testPageLimits(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	b := base()
	first := create(t, s, newMessage("u1", "", "m", b))
	for i := 1; i < 105; i++ {
		create(t, s, newMessage("u1", first.ConversationID, "m", b.Add(time.Duration(i)*time.Millisecond)))
	}
	for _, tc := range []struct{ limit, want int }{{0, 20}, {-3, 20}, {1, 1}, {37, 37}, {100, 100}, {1000, 100}} {
		items, next, err := s.ConversationMessages(ctx, "u1", first.ConversationID, gymbro.Page{Limit: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(items) != tc.want || next == "" {
			t.Errorf("limit %d: %d items, next %q; want %d and a cursor", tc.limit, len(items), next, tc.want)
		}
	}
}

func testInvalidCursor(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	m := create(t, s, newMessage("u1", "", "m", base()))
	for _, c := range []string{"not base64!!", "bm9waXBl", strings.Repeat("A", 4096), "fHg", "MTIzfA"} {
		_, _, err := s.Conversations(ctx, "u1", gymbro.Page{Cursor: c})
		wantErr(t, err, gymbro.KindInvalid, "invalid_cursor")
		_, _, err = s.ConversationMessages(ctx, "u1", m.ConversationID, gymbro.Page{Cursor: c})
		wantErr(t, err, gymbro.KindInvalid, "invalid_cursor")
	}
}

func testHistory(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	b := base()
	m0 := create(t, s, newMessage("u1", "", "m0", b))
	conv := m0.ConversationID
	m1 := create(t, s, newMessage("u1", conv, "m1", b.Add(1*time.Second)))
	m2 := create(t, s, newMessage("u1", conv, "m2", b.Add(2*time.Second)))
	m3 := create(t, s, newMessage("u1", conv, "m3", b.Add(3*time.Second)))
	m4 := create(t, s, newMessage("u1", conv, "m4", b.Add(4*time.Second)))
	elsewhere := create(t, s, newMessage("u1", "", "other", b.Add(time.Second)))
	for _, m := range []*gymbro.Message{m0, m1, m3, elsewhere} {
		finish(t, s, m, gymbro.StatusCompleted, b.Add(10*time.Second))
	}
	finish(t, s, m2, gymbro.StatusFailed, b.Add(10*time.Second))

	texts := func(ms []*gymbro.Message) []string {
		out := []string{}
		for _, m := range ms {
			out = append(out, m.Text)
		}
		return out
	}
	for _, tc := range []struct {
		before string
		limit  int
		want   []string
	}{
		{m4.ID, 10, []string{"m0", "m1", "m3"}},
		{m4.ID, 2, []string{"m1", "m3"}},
		{m3.ID, 10, []string{"m0", "m1"}},
		{m0.ID, 10, []string{}},
		{"", 10, []string{"m0", "m1", "m3"}},
		{m4.ID, 0, []string{}},
	} {
		got, err := s.History(ctx, conv, tc.before, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, texts(got)); diff != "" {
			t.Errorf("History(before %s, %d) (-want +got):\n%s", tc.before, tc.limit, diff)
		}
	}
	got, err := s.History(ctx, conv, m4.ID, 1)
	if err != nil || len(got) != 1 || got[0].Reply != "reply to "+m3.ID {
		t.Errorf("History carries the reply: %v, %v", got, err)
	}
}

func testCountRunning(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	a := create(t, s, newMessage("u1", "", "a", base()))
	create(t, s, newMessage("u1", a.ConversationID, "b", base()))
	create(t, s, newMessage("u1", a.ConversationID, "c", base()))
	create(t, s, newMessage("u2", "", "d", base()))
	finish(t, s, a, gymbro.StatusCanceled, base())
	if n, err := s.CountRunning(ctx, "u1"); err != nil || n != 2 {
		t.Errorf("CountRunning(u1) = %d, %v; want 2", n, err)
	}
	if n, err := s.CountRunning(ctx, "nobody"); err != nil || n != 0 {
		t.Errorf("CountRunning(nobody) = %d, %v; want 0", n, err)
	}
}

func testRunningCap(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	capped := func(text, key string) gymbro.NewMessage {
		in := newMessage("u1", "", text, base())
		in.MaxRunning, in.IdempotencyKey, in.RequestHash = 2, key, "h-"+text
		return in
	}
	a := create(t, s, capped("a", "k-a"))
	create(t, s, capped("b", ""))
	_, _, err := s.CreateMessage(ctx, capped("c", ""))
	wantErr(t, err, gymbro.KindRateLimited, gymbro.CodeTooManyRunning)
	if n, _ := s.CountRunning(ctx, "u1"); n != 2 {
		t.Fatalf("a refused create was stored: %d running", n)
	}
	// A retried keyed post gets its replay, cap or no cap.
	m, replayed, err := s.CreateMessage(ctx, capped("a", "k-a"))
	if err != nil || !replayed || m.ID != a.ID {
		t.Fatalf("replay at the cap = %v, %v, %v", m, replayed, err)
	}
	finish(t, s, a, gymbro.StatusCompleted, base())
	create(t, s, capped("d", ""))
	other := newMessage("u2", "", "e", base())
	other.MaxRunning = 2
	create(t, s, other) // the cap is per user
}

// testRunningCapRace: concurrent creates for one user never overshoot the
// cap (the check and the insert are one transaction).
func testRunningCapRace(t *testing.T, s gymbro.Store) {
	const tries, limit = 12, 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, refused := 0, 0
	for i := range tries {
		wg.Go(func() {
			in := newMessage("racer", "", fmt.Sprint("m", i), base())
			in.MaxRunning = limit
			_, _, err := s.CreateMessage(context.Background(), in)
			mu.Lock()
			defer mu.Unlock()
			switch gymbro.ErrorCode(err) {
			case "":
				created++
			case gymbro.CodeTooManyRunning:
				refused++
			default:
				t.Errorf("CreateMessage: %v", err)
			}
		})
	}
	wg.Wait()
	if created != limit || refused != tries-limit {
		t.Fatalf("created %d, refused %d; want %d and %d", created, refused, limit, tries-limit)
	}
}

// enqueue finishes n fresh messages, putting n records in the outbox,
// created (and due) at b, b+1ms, …
func enqueue(t *testing.T, s gymbro.Store, n int, b time.Time) []string {
	t.Helper()
	var ids []string
	for i := range n {
		m := create(t, s, newMessage("u1", "", "x", b))
		finish(t, s, m, gymbro.StatusCompleted, b.Add(time.Duration(i)*time.Millisecond))
		ids = append(ids, m.ID)
	}
	return ids
}

func itemIDs(items []gymbro.OutboxItem) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// claim claims up to n outbox items for worker at now, leased until lease.
func claim(t *testing.T, s gymbro.Store, worker string, now, lease time.Time, n int) []gymbro.OutboxItem {
	t.Helper()
	items, err := s.ClaimOutbox(context.Background(), worker, now, lease, n)
	if err != nil {
		t.Fatalf("ClaimOutbox(%s): %v", worker, err)
	}
	return items
}

// stats returns the outbox stats.
func stats(t *testing.T, s gymbro.Store) gymbro.OutboxStats {
	t.Helper()
	st, err := s.OutboxStats(context.Background())
	if err != nil {
		t.Fatalf("OutboxStats: %v", err)
	}
	return st
}

func testOutbox(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	b := base()
	if st := stats(t, s); st != (gymbro.OutboxStats{}) {
		t.Fatalf("empty outbox stats = %+v", st)
	}
	ids := enqueue(t, s, 3, b)
	if st := stats(t, s); st.Pending != 3 || st.Dead != 0 || !st.OldestPending.Equal(b) {
		t.Fatalf("stats = %+v, want 3 pending since %v", st, b)
	}
	lease := testOutboxLeases(t, s, ids, b)
	testOutboxRetry(t, s, ids, lease.Add(time.Hour))

	if err := s.AckOutbox(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if err := s.AckOutbox(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st != (gymbro.OutboxStats{}) {
		t.Fatalf("stats after ack = %+v, want empty", st)
	}
}

// testOutboxLeases claims the items ids, enqueued at b, by several workers:
// oldest first, invisible to others while leased, back with one more
// attempt when the lease ends. It returns the end of the first leases.
func testOutboxLeases(t *testing.T, s gymbro.Store, ids []string, b time.Time) time.Time {
	t.Helper()
	// Not due before it was enqueued.
	if items := claim(t, s, "w1", b.Add(-time.Second), b.Add(time.Minute), 10); len(items) != 0 {
		t.Fatalf("claim before due = %v", itemIDs(items))
	}
	now := b.Add(time.Second)
	lease := now.Add(time.Minute)
	items := claim(t, s, "w1", now, lease, 2)
	if diff := cmp.Diff(ids[:2], itemIDs(items)); diff != "" {
		t.Fatalf("first claim, oldest first (-want +got):\n%s", diff)
	}
	// Leased items are invisible to others until the lease ends.
	items = claim(t, s, "w2", now, lease, 10)
	if diff := cmp.Diff(ids[2:], itemIDs(items)); diff != "" {
		t.Fatalf("second claim (-want +got):\n%s", diff)
	}
	if items := claim(t, s, "w3", now.Add(30*time.Second), lease, 10); len(items) != 0 {
		t.Fatalf("claim during leases = %v", itemIDs(items))
	}
	// After w1's lease ends its items come back, with one more attempt.
	items = claim(t, s, "w3", lease.Add(time.Second), lease.Add(time.Minute), 1)
	if len(items) != 1 || items[0].ID != ids[0] || items[0].Attempts != 2 {
		t.Fatalf("reclaim after lease = %+v, want %s on attempt 2", items, ids[0])
	}
	return lease
}

// testOutboxRetry retries ids[0] at next: not due until next, and carrying
// the error.
func testOutboxRetry(t *testing.T, s gymbro.Store, ids []string, next time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := s.RetryOutbox(ctx, ids[0], next, "supabase said 503"); err != nil {
		t.Fatal(err)
	}
	if items := claim(t, s, "w4", next.Add(-time.Second), next.Add(time.Minute), 10); slices.Contains(itemIDs(items), ids[0]) {
		t.Fatalf("claim before retry time = %v", itemIDs(items))
	}
	items := claim(t, s, "w4", next, next.Add(time.Minute), 10)
	var found bool
	for _, it := range items {
		if it.ID == ids[0] {
			found = true
			if it.LastError != "supabase said 503" || it.Attempts != 3 {
				t.Errorf("retried item = attempts %d, last error %q", it.Attempts, it.LastError)
			}
		}
	}
	if !found {
		t.Fatalf("retried item not claimable at its time: %v", itemIDs(items))
	}
	wantErr(t, s.RetryOutbox(ctx, newID(), next, "x"), gymbro.KindNotFound, "outbox_item_not_found")
}

func testOutboxBuryRedrive(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	b := base()
	ids := enqueue(t, s, 3, b)
	claim(t, s, "w", b.Add(time.Second), b.Add(time.Minute), 10)
	if err := s.BuryOutbox(ctx, ids[0], "rejected: 400"); err != nil {
		t.Fatal(err)
	}
	if err := s.BuryOutbox(ctx, ids[1], "rejected: 422"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.BuryOutbox(ctx, newID(), "x"), gymbro.KindNotFound, "outbox_item_not_found")
	if st := stats(t, s); st.Pending != 1 || st.Dead != 2 || !st.OldestPending.Equal(b.Add(2*time.Millisecond)) {
		t.Fatalf("stats = %+v, want 1 pending since %v, 2 dead", st, b.Add(2*time.Millisecond))
	}
	// Dead items are never claimed, however late.
	far := time.Now().Add(24 * time.Hour)
	items := claim(t, s, "w", far, far.Add(time.Minute), 10)
	if diff := cmp.Diff(ids[2:], itemIDs(items)); diff != "" {
		t.Fatalf("claim with dead items (-want +got):\n%s", diff)
	}
	n, err := s.RedriveOutbox(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RedriveOutbox = %d, %v; want 2", n, err)
	}
	if n, err := s.RedriveOutbox(ctx); err != nil || n != 0 {
		t.Fatalf("second RedriveOutbox = %d, %v; want 0", n, err)
	}
	if st := stats(t, s); st.Pending != 3 || st.Dead != 0 {
		t.Fatalf("stats after redrive = %+v", st)
	}
	wantRedriven(t, s, ids[:2])
}

// wantRedriven checks that the redriven items ids are due now (by the
// store's clock) and start over, keeping their last error.
func wantRedriven(t *testing.T, s gymbro.Store, ids []string) {
	t.Helper()
	after := time.Now().Add(time.Minute)
	items := claim(t, s, "w2", after, after.Add(time.Minute), 10)
	got := itemIDs(items)
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("claim after redrive (-want +got):\n%s", diff)
	}
	for _, it := range items {
		if it.Attempts != 1 || !strings.HasPrefix(it.LastError, "rejected") {
			t.Errorf("redriven %s: attempts %d, last error %q", it.ID, it.Attempts, it.LastError)
		}
	}
}

func testOutboxConcurrentClaim(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	b := base()
	ids := enqueue(t, s, 40, b)
	now := b.Add(time.Second)
	lease := now.Add(time.Hour)
	const workers = 4
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]string{}
		errs []error
	)
	for w := range workers {
		owner := fmt.Sprintf("worker-%d", w)
		wg.Go(func() {
			for {
				items, err := s.ClaimOutbox(ctx, owner, now, lease, 3)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				for _, it := range items {
					if prev, dup := seen[it.ID]; dup {
						errs = append(errs, fmt.Errorf("%s claimed by %s and %s", it.ID, prev, owner))
					}
					seen[it.ID] = owner
				}
				mu.Unlock()
				if len(items) == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	for _, id := range ids {
		if _, ok := seen[id]; !ok {
			t.Errorf("item %s never claimed", id)
		}
	}
}

func testPing(t *testing.T, s gymbro.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// spend finishes a new exchange of user at "at" that used tokens.
func spend(t *testing.T, s gymbro.Store, user string, tokens int64, at time.Time) {
	t.Helper()
	m := create(t, s, newMessage(user, "", "spend", at))
	_, err := s.FinishMessage(context.Background(), m, gymbro.Result{
		Status: gymbro.StatusCompleted, Reply: "ok", Usage: gymbro.Usage{TotalTokens: tokens}, At: at,
	})
	if err != nil {
		t.Fatal(err)
	}
}

func budgeted(user, text string, limit int64, at time.Time) gymbro.NewMessage {
	in := newMessage(user, "", text, at)
	in.DailyTokens = limit
	return in
}

// testBudget: the daily budget refuses a user at the limit until the next
// UTC day, with Retry-After until then, and counts each user apart.
func testBudget(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	day := time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)
	noon := day.Add(12 * time.Hour)
	spend(t, s, "u1", 60, day.Add(time.Hour))
	create(t, s, budgeted("u1", "under", 100, noon)) // 60 < 100
	spend(t, s, "u1", 40, day.Add(2*time.Hour))
	if n, err := s.TokensUsed(ctx, "u1", "2026-03-09"); err != nil || n != 100 {
		t.Fatalf("TokensUsed = %d, %v; want 100", n, err)
	}
	_, _, err := s.CreateMessage(ctx, budgeted("u1", "over", 100, noon))
	wantErr(t, err, gymbro.KindRateLimited, gymbro.CodeBudgetExhausted)
	var ge *gymbro.Error
	if errors.As(err, &ge); ge.RetryAfter != 12*time.Hour {
		t.Errorf("RetryAfter = %v, want 12h (to midnight UTC)", ge.RetryAfter)
	}
	create(t, s, budgeted("u2", "other user", 100, noon))
	create(t, s, budgeted("u1", "next day", 100, day.Add(24*time.Hour)))
	if n, err := s.TokensUsed(ctx, "u1", "2026-03-10"); err != nil || n != 0 {
		t.Fatalf("TokensUsed(next day) = %d, %v; want 0", n, err)
	}
	// A reply without reported usage counts an estimate, not nothing.
	m := create(t, s, newMessage("u3", "", "twelve chars", noon))
	if _, err := s.FinishMessage(ctx, m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "twelve chars", At: noon}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.TokensUsed(ctx, "u3", "2026-03-09"); n != 6 {
		t.Errorf("estimated tokens = %d, want 6 (24 characters / 4)", n)
	}
}

// testBudgetCharge: a prompt charged as it is sent counts at once (the
// budget refuses the next post before the first finishes), and its finish
// adds only the rest: the reported usage when it is more, else an estimate
// of the reply; a reported usage below the charge refunds nothing, and a
// finish without a reply adds nothing to the charge.
func testBudgetCharge(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	noon := time.Date(2026, 3, 9, 12, 0, 0, 0, time.UTC)
	used := func(user string) int64 {
		t.Helper()
		n, err := s.TokensUsed(ctx, user, "2026-03-09")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	finishWith := func(m *gymbro.Message, r gymbro.Result) {
		t.Helper()
		r.At = noon
		if _, err := s.FinishMessage(ctx, m, r); err != nil {
			t.Fatal(err)
		}
	}
	charge := func(user string, n int64) {
		t.Helper()
		if err := s.ChargeTokens(ctx, user, "2026-03-09", n); err != nil {
			t.Fatal(err)
		}
	}

	m := create(t, s, budgeted("c1", "sent, then canceled", 100, noon))
	charge("c1", 120)
	_, _, err := s.CreateMessage(ctx, budgeted("c1", "refused while the first runs", 100, noon))
	wantErr(t, err, gymbro.KindRateLimited, gymbro.CodeBudgetExhausted)
	finishWith(m, gymbro.Result{Status: gymbro.StatusCanceled, Charged: 120})
	if n := used("c1"); n != 120 {
		t.Errorf("canceled before any reply: %d tokens, want the 120 charged", n)
	}

	m = create(t, s, newMessage("c2", "", "text", noon))
	charge("c2", 50)
	finishWith(m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "eight ch", Charged: 50,
		Usage: gymbro.Usage{PromptTokens: 70, CompletionTokens: 10, TotalTokens: 80}})
	if n := used("c2"); n != 80 {
		t.Errorf("reported usage above the charge: %d tokens, want the 80 reported", n)
	}

	m = create(t, s, newMessage("c3", "", "text", noon))
	charge("c3", 50)
	finishWith(m, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "eight ch", Charged: 50,
		Usage: gymbro.Usage{TotalTokens: 20}})
	if n := used("c3"); n != 52 {
		t.Errorf("reported usage below the charge: %d tokens, want 52 (the charge and the reply's 2)", n)
	}

	m = create(t, s, newMessage("c4", "", "text", noon))
	charge("c4", 50)
	finishWith(m, gymbro.Result{Status: gymbro.StatusFailed, Reply: "twelve chars", Charged: 50, ErrorCode: "ai_unavailable"})
	if n := used("c4"); n != 53 {
		t.Errorf("a failure after a partial reply: %d tokens, want 53 (the charge and the reply's 3)", n)
	}
	if err := s.ChargeTokens(ctx, "c4", "2026-03-09", 0); err != nil || used("c4") != 53 {
		t.Errorf("a charge of nothing: %v, %d tokens", err, used("c4"))
	}
}

// testBudgetRace: concurrent creates of one user at the edge of the budget
// are each admitted or refused whole, and the cap still holds.
func testBudgetRace(t *testing.T, s gymbro.Store) {
	at := time.Date(2026, 3, 9, 8, 0, 0, 0, time.UTC)
	spend(t, s, "racer", 90, at)
	const tries, limit = 20, 3
	var wg sync.WaitGroup
	var admitted atomic.Int32
	for i := range tries {
		wg.Go(func() {
			in := budgeted("racer", fmt.Sprint("m", i), 100, at)
			in.MaxRunning = limit
			_, _, err := s.CreateMessage(context.Background(), in)
			switch gymbro.ErrorCode(err) {
			case "":
				admitted.Add(1)
			case gymbro.CodeTooManyRunning:
			default:
				t.Errorf("CreateMessage: %v", err)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != limit {
		t.Fatalf("admitted %d under the budget, want the cap %d", n, limit)
	}
}

// testDiscard: a discarded exchange leaves nothing behind, so a retry with
// its idempotency key runs anew; one held by another or finished cannot be
// discarded.
func testDiscard(t *testing.T, s gymbro.Store) {
	ctx := context.Background()
	in := newMessage("u1", "", "first", base())
	in.IdempotencyKey, in.RequestHash = "k1", "h1"
	m := create(t, s, in)
	if err := s.DiscardMessage(ctx, m.ID, "w"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MessageByID(ctx, m.ID); gymbro.ErrorCode(err) != gymbro.CodeMessageNotFound {
		t.Fatalf("discarded message still there: %v", err)
	}
	if convs, _, _ := s.Conversations(ctx, "u1", gymbro.Page{}); len(convs) != 0 {
		t.Fatalf("the new conversation outlived its only message: %v", convs)
	}
	in.ID = newID()
	retried := create(t, s, in) // not a replay
	again := newMessage("u1", retried.ConversationID, "second", base())
	second := create(t, s, again)
	if err := s.DiscardMessage(ctx, second.ID, "w"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ConversationMessages(ctx, "u1", retried.ConversationID, gymbro.Page{}); err != nil {
		t.Fatalf("a conversation with other messages was deleted: %v", err)
	}
	wantErr(t, s.DiscardMessage(ctx, retried.ID, "another"), gymbro.KindConflict, "message_not_held")
	finish(t, s, retried, gymbro.StatusCompleted, base().Add(time.Second))
	wantErr(t, s.DiscardMessage(ctx, retried.ID, "w"), gymbro.KindConflict, "message_not_held")
	wantErr(t, s.DiscardMessage(ctx, newID(), "w"), gymbro.KindNotFound, gymbro.CodeMessageNotFound)
}

// BenchmarkCreateMessage measures CreateMessage with an idempotency key, one
// at a time and from parallel goroutines (parallelism × GOMAXPROCS), and
// reports creates/s.
func BenchmarkCreateMessage(b *testing.B, s gymbro.Store, parallelism int) {
	ctx := context.Background()
	newMsg := func() gymbro.NewMessage {
		return gymbro.NewMessage{
			ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "bench",
			Provider: gymbro.ProviderSupabase, Text: "How many sets of squats should I do?",
			IdempotencyKey: uuid.NewString(), RequestHash: "h",
			Lease: gymbro.Lease{Owner: "bench", Until: time.Now().Add(time.Minute)}, Now: time.Now(),
		}
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := s.CreateMessage(ctx, newMsg()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.CreateMessage(ctx, newMsg()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
	})
}

// FinishIsAtomic checks that a finish whose outbox insert fails changes
// nothing: blockOutbox makes it fail by putting a row with the message's
// id in the outbox behind the store's back (each store knows how).
func FinishIsAtomic(t *testing.T, s gymbro.Store, blockOutbox func(id string)) {
	t.Helper()
	ctx := context.Background()
	in := gymbro.NewMessage{ID: uuid.NewString(), NewConversationID: uuid.NewString(), UserID: "u1", Text: "x",
		Lease: gymbro.Lease{Owner: "w", Until: time.Now().Add(time.Minute)}, Now: time.Now()}
	created, _, err := s.CreateMessage(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	blockOutbox(in.ID)
	if _, err := s.FinishMessage(ctx, created, gymbro.Result{Status: gymbro.StatusCompleted, Reply: "done", At: time.Now()}); err == nil {
		t.Fatal("FinishMessage succeeded although its outbox insert must fail")
	} else if gymbro.ErrorKind(err) != gymbro.KindInternal || gymbro.ErrorMessage(err) != "Storage failed." {
		t.Errorf("err = %v (message %q), want an internal error that hides the driver text", err, gymbro.ErrorMessage(err))
	}
	m, err := s.MessageByID(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != gymbro.StatusWorking || m.Reply != "" || m.CompletedAt != nil {
		t.Errorf("message changed by a rolled-back finish: %+v", m)
	}
}

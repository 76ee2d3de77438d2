package gymbro

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	c := Cursor{At: 1795362940123456, ID: "01a2040b-1455-779a-bb23-2b8774c4b983"}
	got, err := DecodeCursor(c.Encode())
	if err != nil || *got != c {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if first, err := DecodeCursor(""); first != nil || err != nil {
		t.Fatalf("empty cursor: %+v, %v", first, err)
	}
	for _, bad := range []string{"!!!", "bm9waXBl", strings.Repeat("A", 600), Cursor{At: 1}.Encode()} {
		if _, err := DecodeCursor(bad); ErrorCode(err) != "invalid_cursor" || ErrorKind(err) != KindInvalid {
			t.Errorf("DecodeCursor(%.20q) = %v", bad, err)
		}
	}
}

func TestPageSize(t *testing.T) {
	for limit, want := range map[int]int{0: 20, -5: 20, 1: 1, 100: 100, 101: 100} {
		if got := (Page{Limit: limit}).Size(); got != want {
			t.Errorf("Size(%d) = %d, want %d", limit, got, want)
		}
	}
}

func TestConversationTitle(t *testing.T) {
	if got := ConversationTitle("  How do I\n squat   deeper?  "); got != "How do I squat deeper?" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("é", 70)
	if got := ConversationTitle(long); got != strings.Repeat("é", TitleRunes) {
		t.Errorf("long title has %d runes", len([]rune(got)))
	}
}

func TestErrorHelpers(t *testing.T) {
	cause := errors.New("dial tcp: secret-dsn refused")
	err := fmt.Errorf("store: %w", Wrap(cause, KindUnavailable, "unavailable", "The store is unavailable."))
	if ErrorKind(err) != KindUnavailable || ErrorCode(err) != "unavailable" || !errors.Is(err, cause) {
		t.Fatalf("wrapped: %v", err)
	}
	if ErrorMessage(err) != "The store is unavailable." {
		t.Errorf("message %q", ErrorMessage(err))
	}
	plain := errors.New("boom with internals")
	if ErrorCode(plain) != CodeInternal || strings.Contains(ErrorMessage(plain), "internals") || ErrorCode(nil) != "" {
		t.Errorf("a plain error leaks or is misclassified: %q %q", ErrorCode(plain), ErrorMessage(plain))
	}
	if RetryableCode(CodeAIBadRequest) || !RetryableCode(CodeAIUnavailable) || !RetryableCode(CodeUnavailable) {
		t.Error("only a request the model refused (or too long a text) is not retryable")
	}
}

func TestEventValidate(t *testing.T) {
	if err := (Event{MessageID: "m", Type: EventQueued}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{{Type: EventQueued}, {MessageID: "m", Type: "nope"}} {
		if ErrorKind(ev.Validate()) != KindInvalid {
			t.Errorf("%+v accepted", ev)
		}
	}
	if !EventCanceled.Terminal() || EventContentDelta.Terminal() || !StatusInterrupted.Terminal() || StatusWorking.Terminal() {
		t.Error("terminal sets are wrong")
	}
}

// TestUserIDsOfIssuersNeverMeet: one sub from three issuers is three uids;
// a Supabase id is kept as it is, the others are namespaced, and
// ProviderUIDOf gives each sub back (a bare, earlier uid too).
func TestUserIDsOfIssuersNeverMeet(t *testing.T) {
	const sub = "6f1c2b9e-8a47-4d3e-9b15-0c2d7e4a9f61"
	const iss = "https://login.example.com/realms/gym"
	ns := OIDCNamespace(iss)
	if len(ns) != OIDCNamespaceLen || ns == OIDCNamespace(iss+"/") {
		t.Fatalf("namespace %q", ns)
	}
	cases := []struct{ provider, issuer, want string }{
		{ProviderSupabase, "https://x.supabase.co/auth/v1", sub},
		{ProviderFirebase, "https://securetoken.google.com/gym", "firebase:" + sub},
		{ProviderOIDC, iss, "oidc:" + ns + ":" + sub},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		uid := UserID(c.provider, c.issuer, sub)
		if uid != c.want || seen[uid] {
			t.Errorf("UserID(%s) = %q, want %q, distinct", c.provider, uid, c.want)
		}
		seen[uid] = true
		if got := ProviderUIDOf(c.provider, uid); got != sub {
			t.Errorf("ProviderUIDOf(%s, %q) = %q", c.provider, uid, got)
		}
		if got := ProviderUIDOf(c.provider, sub); got != sub {
			t.Errorf("ProviderUIDOf(%s) of a bare sub = %q", c.provider, got)
		}
	}
	if got := ProviderUIDOf(ProviderOIDC, "oidc:"+ns+":a:b"); got != "a:b" {
		t.Errorf("a sub with a colon: %q", got)
	}
}

// TestChatRecordCarriesTheProvidersID: the record names the sub as the
// provider knows it, and a non-Supabase record carries the uid (which
// names an OIDC user's issuer) in its metadata.
func TestChatRecordCarriesTheProvidersID(t *testing.T) {
	m := &Message{ID: "m", UserID: "oidc:0123456789ab:u-7", Provider: ProviderOIDC}
	r := m.ChatRecord()
	if r.UserID != m.UserID || r.ProviderUID != "u-7" || r.Metadata["uid"] != m.UserID {
		t.Errorf("oidc record %+v", r)
	}
	m = &Message{ID: "m", UserID: "6f1c2b9e-8a47-4d3e-9b15-0c2d7e4a9f61", Provider: ProviderSupabase}
	if r := m.ChatRecord(); r.ProviderUID != m.UserID || r.Metadata["uid"] != nil {
		t.Errorf("supabase record %+v", r)
	}
}

// TestBudgetTokens: without a charge an exchange counts what the model
// reported, or an estimate of its text and reply; with one, never less
// than the charge plus the reply's estimate.
func TestBudgetTokens(t *testing.T) {
	cases := []struct {
		name    string
		m       Message
		charged int64
		want    int64
	}{
		{"reported", Message{Text: "hi", Reply: "hello", Usage: Usage{TotalTokens: 9}}, 0, 9},
		{"reported in parts", Message{Usage: Usage{PromptTokens: 4, CompletionTokens: 3}}, 0, 7},
		{"estimated", Message{Text: "twelve chars", Reply: "twelve chars"}, 0, 6},
		{"nothing generated", Message{Text: "twelve chars"}, 0, 0},
		{"charged, nothing generated", Message{Text: "twelve chars"}, 40, 40},
		{"charged, reported more", Message{Reply: "eight ch", Usage: Usage{TotalTokens: 90}}, 40, 90},
		{"charged, reported less", Message{Reply: "eight ch", Usage: Usage{TotalTokens: 10}}, 40, 42},
		{"charged, estimated", Message{Text: "twelve chars", Reply: "eight ch"}, 40, 42},
	}
	for _, c := range cases {
		if got := c.m.BudgetTokens(c.charged); got != c.want {
			t.Errorf("%s: BudgetTokens(%d) = %d, want %d", c.name, c.charged, got, c.want)
		}
	}
	req := ModelRequest{System: "1234", Turns: []Turn{{Content: "12345678"}, {Content: "1"}}}
	if got := req.EstimatePrompt(); got != 4 {
		t.Errorf("EstimatePrompt = %d, want 4 (13 bytes)", got)
	}
}

// TestEventCloneSharesNothing: changing what a clone's pointers point to
// leaves the original as it was.
func TestEventCloneSharesNothing(t *testing.T) {
	retry := true
	ev := Event{MessageID: "m", Type: EventCompleted, Usage: &Usage{PromptTokens: 1}, Retryable: &retry}
	c := ev.Clone()
	c.Usage.PromptTokens, *c.Retryable = 99, false
	if ev.Usage.PromptTokens != 1 || !*ev.Retryable {
		t.Fatalf("the original changed with its clone: usage %+v, retryable %v", *ev.Usage, *ev.Retryable)
	}
	if none := (Event{MessageID: "m"}).Clone(); none.Usage != nil || none.Retryable != nil {
		t.Fatalf("Clone of an event without pointers made some: %+v", none)
	}
}

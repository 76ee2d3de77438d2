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

package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sqlite"
)

func TestMessageStreamsInOrder(t *testing.T) {
	a := startApp(t, nil)
	tok := a.user("ada@example.com")
	p := a.post(tok, "How do I squat deeper?", "")
	if p.Status != "queued" || p.EventsURL != "/api/v1/messages/"+p.MessageID+"/events" {
		t.Fatalf("post answered %+v", p)
	}
	s := a.events(tok, p.MessageID, "", 0)
	if s.status != 200 || s.header.Get("Content-Type") != "text/event-stream" || s.header.Get("Cache-Control") != "no-cache" || s.header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("stream status %d headers %v", s.status, s.header)
	}
	if s.retry != 3000 {
		t.Errorf("retry hint %d, want 3000", s.retry)
	}
	checkOrder(t, s.data, 1)
	last := s.data[len(s.data)-1]
	if last.Type != gymbro.EventCompleted || last.Content == "" || last.Content != content(s.data) {
		t.Fatalf("completed content %q, deltas %q", last.Content, content(s.data))
	}
	if last.Model != "gymbro-demo-coach" || last.FinishReason != "stop" || last.Usage == nil || last.Usage.TotalTokens == 0 {
		t.Errorf("completed = %+v", last)
	}
	if n := strings.Count(strings.Join(types(s.data), ","), "content_delta"); n < 3 {
		t.Errorf("only %d deltas; the demo model should stream several", n)
	}

	// The stored exchange matches what was streamed, before and after.
	r := a.do("GET", "/api/v1/messages/"+p.MessageID, tok, nil)
	var m messageJSON
	r.json(t, &m)
	if r.status != 200 || m.Status != "completed" || m.Reply != last.Content || m.LastEventID != last.Seq {
		t.Fatalf("GET message: %d %s", r.status, r.body)
	}

	// A subscriber arriving after completion gets the whole log again...
	again := a.events(tok, p.MessageID, "", 0)
	checkOrder(t, again.data, 1)
	// ...and one resuming from the middle gets exactly the rest.
	mid := int64(3)
	rest := a.events(tok, p.MessageID, strconv.FormatInt(mid, 10), 0)
	checkOrder(t, rest.data, mid+1)
	if len(rest.data) != len(s.data)-int(mid) || rest.resets != 0 {
		t.Fatalf("resume after %d gave %v", mid, types(rest.data))
	}
	// One that saw the terminal event gets nothing more.
	if done := a.events(tok, p.MessageID, strconv.FormatInt(last.Seq, 10), 0); len(done.data) != 0 {
		t.Fatalf("after the terminal event: %v", types(done.data))
	}
}

type messageJSON struct {
	MessageID      string `json:"message_id"`
	ConversationID string `json:"conversation_id"`
	Status         string `json:"status"`
	Text           string `json:"text"`
	Reply          string `json:"reply"`
	LastEventID    int64  `json:"last_event_id"`
	Error          *struct {
		Code      string `json:"code"`
		Retryable bool   `json:"retryable"`
	} `json:"error"`
}

func TestResumeAfterADroppedConnection(t *testing.T) {
	a := startApp(t, nil)
	tok := a.user("bo@example.com")
	p := a.post(tok, "Plan my bench day [demo:slow]", "")
	first := a.events(tok, p.MessageID, "", 4) // hang up mid-reply
	checkSeq(t, first.data, 1)
	if first.data[3].Type.Terminal() {
		t.Fatal("the reply finished before the drop; the test needs a slower model")
	}
	rest := a.events(tok, p.MessageID, strconv.FormatInt(first.data[3].Seq, 10), 0)
	all := append(first.data[:4:4], rest.data...)
	checkOrder(t, all, 1)
	if all[len(all)-1].Type != gymbro.EventCompleted || all[len(all)-1].Content != content(all) {
		t.Fatalf("resumed stream %v does not add up", types(all))
	}
	if rest.heartbeats == 0 {
		t.Error("no heartbeat arrived during a slow reply with a 150ms heartbeat")
	}
	// The query form works too, for clients that cannot set headers.
	r := a.do("GET", "/api/v1/messages/"+p.MessageID+"/events?last_event_id="+strconv.FormatInt(all[len(all)-2].Seq, 10), tok, nil)
	if r.status != 200 || strings.Count(string(r.body), "id: ") != 1 || !strings.Contains(string(r.body), "event: completed") {
		t.Fatalf("query resume: %d %s", r.status, r.body)
	}
}

func TestOwnershipAndAuth(t *testing.T) {
	a := startApp(t, nil)
	alice, mallory := a.user("alice@example.com"), a.user("mallory@example.com")
	p := a.post(alice, "Is running good for fat loss?", "")
	for _, path := range []string{"/api/v1/messages/" + p.MessageID, "/api/v1/messages/" + p.MessageID + "/events", "/api/v1/conversations/" + p.ConversationID + "/messages"} {
		r := a.do("GET", path, mallory, nil)
		if r.status != http.StatusNotFound {
			t.Errorf("another user's %s: %d %s", path, r.status, r.body)
		}
		absent := strings.Replace(strings.Replace(path, p.MessageID, "01900000-0000-7000-8000-000000000000", 1), p.ConversationID, "01900000-0000-7000-8000-000000000000", 1)
		missing := a.do("GET", absent, alice, nil)
		mp, rp := missing.problem(t), r.problem(t)
		if missing.status != http.StatusNotFound || mp["code"] != rp["code"] || mp["detail"] != rp["detail"] {
			t.Errorf("a missing resource must look exactly like another user's: %s vs %s", missing.body, r.body)
		}
		malformed := a.do("GET", strings.Replace(strings.Replace(path, p.MessageID, "not-a-uuid", 1), p.ConversationID, "not-a-uuid", 1), alice, nil)
		if xp := malformed.problem(t); malformed.status != http.StatusNotFound || xp["code"] != rp["code"] || xp["detail"] != rp["detail"] {
			t.Errorf("a malformed id must look exactly like another user's: %s vs %s", malformed.body, r.body)
		}
	}
	if r := a.do("POST", "/api/v1/messages/"+p.MessageID+"/cancel", mallory, nil); r.status != http.StatusNotFound {
		t.Errorf("cancel another user's message: %d", r.status)
	}
	if r := a.do("POST", "/api/v1/messages", mallory, map[string]string{"text": "hi", "conversation_id": p.ConversationID}); r.status != http.StatusNotFound || r.problem(t)["code"] != "conversation_not_found" {
		t.Errorf("post into another user's conversation: %d %s", r.status, r.body)
	}

	tampered := alice[:len(alice)-4] + "AAAA"
	for name, tc := range map[string]struct {
		header string
		code   string
	}{
		"missing":  {"", "token_missing"},
		"basic":    {"Basic YWxpY2U6cHc=", "token_malformed"},
		"garbage":  {"Bearer not-a-jwt", "token_malformed"},
		"tampered": {"Bearer " + tampered, "signature_invalid"},
	} {
		t.Run(name, func(t *testing.T) {
			var r response
			if tc.header == "" {
				r = a.do("GET", "/api/v1/me", "", nil)
			} else {
				r = a.do("GET", "/api/v1/me", "", nil, "Authorization", tc.header)
			}
			if r.status != http.StatusUnauthorized || r.problem(t)["code"] != tc.code {
				t.Fatalf("%d %s", r.status, r.body)
			}
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(r.body), alice[20:60]) {
				t.Error("the token is echoed")
			}
		})
	}
	var me struct {
		UID, Email, Provider, Issuer string
	}
	r := a.do("GET", "/api/v1/me", alice, nil)
	r.json(t, &me)
	if r.status != 200 || me.Email != "alice@example.com" || me.Provider != "supabase" || me.Issuer != a.url+"/auth/v1" {
		t.Fatalf("me: %d %s", r.status, r.body)
	}
}

func TestIdempotencyKey(t *testing.T) {
	a := startApp(t, nil)
	tok := a.user("idem@example.com")
	body := map[string]string{"text": "Give me a 5k plan"}
	first := a.do("POST", "/api/v1/messages", tok, body, "Idempotency-Key", "k-1")
	second := a.do("POST", "/api/v1/messages", tok, body, "Idempotency-Key", "k-1")
	var p1, p2 posted
	first.json(t, &p1)
	second.json(t, &p2)
	if first.status != 202 || second.status != 202 || p1.MessageID != p2.MessageID || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %s / %s", first.body, second.body)
	}
	other := a.do("POST", "/api/v1/messages", tok, map[string]string{"text": "Something else"}, "Idempotency-Key", "k-1")
	if other.status != http.StatusConflict || other.problem(t)["code"] != "idempotency_conflict" {
		t.Fatalf("same key, different body: %d %s", other.status, other.body)
	}
	s := a.events(tok, p1.MessageID, "", 0)
	checkOrder(t, s.data, 1) // one generation, not two
}

func TestValidation(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_MAX_MESSAGE_CHARS": "50", "GYMBRO_MAX_BODY_BYTES": "2048"})
	tok := a.user("val@example.com")
	for name, tc := range map[string]struct {
		body   string
		status int
		code   string
	}{
		"empty body":          {"", 400, "invalid_json"},
		"not json":            {"{text:", 400, "invalid_json"},
		"array":               {`["x"]`, 400, "invalid_json"},
		"unknown field":       {`{"text":"hi","txt":"x"}`, 400, "invalid_json"},
		"wrong type":          {`{"text":5}`, 400, "invalid_json"},
		"two objects":         {`{"text":"a"}{"text":"b"}`, 400, "invalid_json"},
		"missing text":        {`{}`, 422, "text_empty"},
		"blank text":          {`{"text":"  \n\t "}`, 422, "text_empty"},
		"too long":            {`{"text":"` + strings.Repeat("é", 51) + `"}`, 422, "text_too_long"},
		"invalid utf-8":       {"{\"text\":\"\xff\xfe\"}", 400, "invalid_utf8"},
		"bad conversation":    {`{"text":"hi","conversation_id":"nope"}`, 422, "invalid_conversation_id"},
		"absent conversation": {`{"text":"hi","conversation_id":"01900000-0000-7000-8000-000000000000"}`, 404, "conversation_not_found"},
		"body too large":      {`{"text":"` + strings.Repeat("a", 4096) + `"}`, 413, "body_too_large"},
	} {
		t.Run(name, func(t *testing.T) {
			r := a.do("POST", "/api/v1/messages", tok, tc.body)
			if r.status != tc.status || r.problem(t)["code"] != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if r := a.do("POST", "/api/v1/messages", tok, `{"text":"hi"}`, "Idempotency-Key", strings.Repeat("k", 300)); r.status != 400 || r.problem(t)["code"] != "idempotency_key_invalid" {
		t.Errorf("an over-long Idempotency-Key: %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/api/v1/messages/x/events", tok, nil, "Last-Event-ID", "abc"); r.status != 400 && r.status != 404 {
		t.Errorf("bad Last-Event-ID: %d", r.status)
	}
	if r := a.do("GET", "/api/v1/conversations?limit=0", tok, nil); r.status != 400 || r.problem(t)["code"] != "invalid_limit" {
		t.Errorf("limit=0: %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/api/v1/conversations?cursor=not-a-cursor", tok, nil); r.status != 400 {
		t.Errorf("bad cursor: %d %s", r.status, r.body)
	}
	if r := a.do("DELETE", "/api/v1/messages", tok, nil); r.status != 405 || r.problem(t)["code"] != "method_not_allowed" {
		t.Errorf("wrong method: %d %s", r.status, r.body)
	}
	if r := a.do("GET", "/api/v1/nope", tok, nil); r.status != 404 || r.problem(t)["code"] != "not_found" {
		t.Errorf("unknown route: %d %s", r.status, r.body)
	}
}

func TestCancel(t *testing.T) {
	a := startApp(t, nil)
	tok := a.user("cancel@example.com")
	p := a.post(tok, "Long answer please [demo:slow]", "")
	first := a.events(tok, p.MessageID, "", 3) // wait until it is generating
	checkSeq(t, first.data, 1)
	r := a.do("POST", "/api/v1/messages/"+p.MessageID+"/cancel", tok, nil)
	var m messageJSON
	r.json(t, &m)
	if r.status != 200 || m.Status != "canceled" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	rest := a.events(tok, p.MessageID, strconv.FormatInt(first.data[2].Seq, 10), 0)
	all := append(first.data[:3:3], rest.data...)
	checkOrder(t, all, 1)
	if all[len(all)-1].Type != gymbro.EventCanceled {
		t.Fatalf("events %v", types(all))
	}
	if again := a.do("POST", "/api/v1/messages/"+p.MessageID+"/cancel", tok, nil); again.status != 200 {
		t.Errorf("second cancel: %d", again.status)
	}
	done := a.post(tok, "quick one", "")
	a.events(tok, done.MessageID, "", 0)
	if r := a.do("POST", "/api/v1/messages/"+done.MessageID+"/cancel", tok, nil); r.status != 409 || r.problem(t)["code"] != "already_finished" {
		t.Errorf("cancel a completed reply: %d %s", r.status, r.body)
	}
}

func TestTooManyRunning(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_MAX_RUNNING_PER_USER": "1"})
	tok := a.user("busy@example.com")
	p := a.post(tok, "first [demo:slow]", "")
	r := a.do("POST", "/api/v1/messages", tok, map[string]string{"text": "second"})
	if r.status != 429 || r.problem(t)["code"] != "too_many_running" || r.header.Get("Retry-After") == "" {
		t.Fatalf("%d %s %v", r.status, r.body, r.header)
	}
	a.events(tok, p.MessageID, "", 0)
	a.post(tok, "now it fits", "")
}

func TestRateLimit(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_RATE_LIMIT": "2"})
	tok := a.user("rl@example.com")
	a.post(tok, "one", "")
	a.post(tok, "two", "")
	r := a.do("POST", "/api/v1/messages", tok, map[string]string{"text": "three"})
	if r.status != 429 || r.problem(t)["code"] != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestConversationHistoryAndPagination(t *testing.T) {
	a := startApp(t, nil)
	tok := a.user("hist@example.com")
	p := a.post(tok, "message 0", "")
	a.events(tok, p.MessageID, "", 0)
	ids := []string{p.MessageID}
	for i := 1; i < 5; i++ {
		q := a.post(tok, "message "+strconv.Itoa(i), p.ConversationID)
		if q.ConversationID != p.ConversationID {
			t.Fatalf("conversation changed: %s", q.ConversationID)
		}
		a.events(tok, q.MessageID, "", 0)
		ids = append(ids, q.MessageID)
	}
	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		r := a.do("GET", "/api/v1/conversations/"+p.ConversationID+"/messages?limit=2&cursor="+cursor, tok, nil)
		var page struct {
			Items      []messageJSON `json:"items"`
			NextCursor string        `json:"next_cursor"`
		}
		r.json(t, &page)
		if r.status != 200 || len(page.Items) > 2 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, m := range page.Items {
			seen = append(seen, m.MessageID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 5 {
		t.Fatalf("saw %d messages: %v", len(seen), seen)
	}
	for i := range seen { // newest first
		if seen[i] != ids[len(ids)-1-i] {
			t.Fatalf("order %v, want reverse of %v", seen, ids)
		}
	}
	r := a.do("GET", "/api/v1/conversations", tok, nil)
	if r.status != 200 || !strings.Contains(string(r.body), p.ConversationID) {
		t.Fatalf("conversations: %d %s", r.status, r.body)
	}
}

func TestCrashRestartLeavesNothingWorking(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"GYMBRO_DATA_DIR": dir, "GYMBRO_HTTP_ADDR": freeAddr(t)}
	a := startApp(t, env)
	tok := a.user("crash@example.com")
	var me struct{ UID string }
	a.do("GET", "/api/v1/me", tok, nil).json(t, &me)
	a.stop()

	// A crash: the process died with an exchange mid-generation. Build that
	// state in the real store the way a generation leaves it.
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := db.CreateMessage(ctx, gymbro.NewMessage{ID: "01900000-0000-7000-8000-0000000000aa", NewConversationID: "01900000-0000-7000-8000-0000000000bb", UserID: me.UID, Provider: "supabase", Text: "crashed",
		Lease: gymbro.Lease{Owner: "dead-instance", Until: time.Now().Add(time.Hour)}, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SaveReply(ctx, m.ID, "partial reply"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	c := startApp(t, env)
	r := c.do("GET", "/api/v1/messages/"+m.ID, tok, nil)
	var got messageJSON
	r.json(t, &got)
	if got.Status != "interrupted" || got.Reply != "partial reply" || got.Error == nil || got.Error.Code != "interrupted" || !got.Error.Retryable {
		t.Fatalf("after restart: %s", r.body)
	}
	// A client that saw 12 events before the crash is told the replay
	// restarted, and gets the terminal event.
	s := c.events(tok, m.ID, "12", 0)
	if len(s.data) != 1 || s.data[0].Type != gymbro.EventError || s.data[0].Code != "interrupted" || s.resets != 1 || s.header.Get("GymBro-Replay-From") == "" {
		t.Fatalf("stream after restart: %v resets=%d header=%q", types(s.data), s.resets, s.header.Get("GymBro-Replay-From"))
	}
}

func TestShutdownInterruptsRunningGenerations(t *testing.T) {
	var logs syncBuffer
	a := startAppLogging(t, map[string]string{
		"GYMBRO_HTTP_ADDR": "127.0.0.1:0", "GYMBRO_DATA_DIR": t.TempDir(), "GYMBRO_LOG_LEVEL": "info",
	}, &logs)
	tok := a.user("shut@example.com")
	p := a.post(tok, "tell me everything [demo:slow]", "")
	var wg sync.WaitGroup
	var s stream
	wg.Add(1)
	opened := make(chan struct{})
	go func() { defer wg.Done(); s = a.eventsNotify(tok, p.MessageID, "", 0, opened) }()
	<-opened
	a.stop()
	wg.Wait()
	if len(s.data) == 0 || s.data[len(s.data)-1].Type != gymbro.EventError || s.data[len(s.data)-1].Code != "interrupted" {
		t.Fatalf("stream during shutdown ended with %v", types(s.data))
	}
	// One line when shutdown starts, one when it ends, with the counts.
	out := logs.String()
	if !strings.Contains(out, "msg=\"shutting down\" generations_running=1") ||
		!strings.Contains(out, "msg=\"shut down\" streams_closed=1 generations_interrupted=1") {
		t.Errorf("shutdown lines missing:\n%s", out)
	}
}

func TestTraceIDAndHealth(t *testing.T) {
	a := startApp(t, nil)
	r := a.do("GET", "/api/v1/healthz", "", nil, "X-Trace-Id", "client-trace.01")
	if r.status != 200 || r.header.Get("X-Trace-Id") != "client-trace.01" || strings.TrimSpace(string(r.body)) != `{"status":"ok"}` {
		t.Fatalf("%d %v %s", r.status, r.header, r.body)
	}
	r = a.do("GET", "/api/v1/healthz", "", nil, "X-Trace-Id", "bad id with spaces")
	if got := r.header.Get("X-Trace-Id"); got == "" || strings.Contains(got, " ") {
		t.Fatalf("invalid trace id echoed: %q", got)
	}
	r = a.do("GET", "/api/v1/readyz", "", nil)
	if r.status != 200 || !strings.Contains(string(r.body), `"store":{"status":"up"}`) {
		t.Fatalf("readyz: %d %s", r.status, r.body)
	}
	r = a.do("OPTIONS", "/api/v1/messages", "", nil, "Origin", "http://localhost:5173", "Access-Control-Request-Method", "POST")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
}

func TestMethodNotAllowedListsOnlyRealMethods(t *testing.T) {
	a := startApp(t, nil)
	r := a.do("DELETE", "/api/v1/messages", "", nil)
	if r.status != 405 || r.header.Get("Allow") != "POST" {
		t.Fatalf("%d Allow=%q", r.status, r.header.Get("Allow"))
	}
}

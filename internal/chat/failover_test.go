package chat_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/chat"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/redislog"
	"github.com/gymbro/gymbro-api/internal/sqlite"
	"github.com/gymbro/gymbro-api/internal/testenv"
)

// failoverEnv is a chat.Service on the real Redis event log, whose stream
// keys a test edits to play a failover that lost the last writes.
type failoverEnv struct {
	svc    *chat.Service
	store  *sqlite.DB
	log    *redislog.EventLog
	rdb    *redis.Client
	prefix string
	obs    *observer
}

func newFailoverEnv(t *testing.T, model *script, change ...func(*chat.Options)) *failoverEnv {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "gymbro.db"))
	if err != nil {
		t.Fatal(err)
	}
	rdb := testenv.RedisClient(t, "")
	e := &failoverEnv{store: store, rdb: rdb, prefix: testenv.RedisPrefix(t, rdb, "gymbrotest:chat:"),
		obs: &observer{done: make(chan struct{}, 100)}}
	e.log, err = redislog.New(rdb, redislog.Options{Prefix: e.prefix})
	if err != nil {
		t.Fatal(err)
	}
	opts := chat.Options{Store: store, Log: e.log, Model: model, Observer: e.obs}
	for _, c := range change {
		c(&opts)
	}
	e.svc = chat.New(opts)
	t.Cleanup(func() {
		_ = e.svc.Shutdown(ctx)
		e.log.Close()
		store.Close()
	})
	return e
}

// lose leaves the message's stream as a replica that had not received its
// events from seq on holds it after a failover: the earlier entries only,
// and a stream whose last id is theirs (XDEL would keep the lost top id).
func (e *failoverEnv) lose(t *testing.T, id string, from int64) {
	t.Helper()
	ctx := context.Background()
	key := e.prefix + "msg:{" + id + "}:events"
	kept, err := e.rdb.XRange(ctx, key, "-", "(0-"+strconv.FormatInt(from, 10)).Result()
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		for _, m := range kept {
			p.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: m.ID, Values: m.Values})
		}
		p.Expire(ctx, key, time.Hour)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// await reads the log until an event until accepts, and returns all so far.
func (e *failoverEnv) await(t *testing.T, id string, until func(gymbro.Event) bool) []gymbro.Event {
	t.Helper()
	return awaitEvent(t, e.log, id, until)
}

// replyCheck asserts what a client replaying the finished log gets: ids
// 1..n gap-free, the deltas spelling the stored reply, and a terminal
// event whose text is the stored reply.
func (e *failoverEnv) replyCheck(t *testing.T, id string, want gymbro.Status) []gymbro.Event {
	t.Helper()
	evs := e.await(t, id, func(ev gymbro.Event) bool { return ev.Type.Terminal() })
	types(t, evs) // gap-free from 1
	stored, err := e.store.MessageByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	end := last(evs)
	var deltas strings.Builder
	for _, ev := range evs {
		deltas.WriteString(ev.Delta)
	}
	if stored.Status != want || end.Content != stored.Reply || deltas.String() != stored.Reply {
		t.Errorf("stored %s %q; terminal %s %q; deltas %q", stored.Status, stored.Reply, end.Type, end.Content, deltas.String())
	}
	if evs[0].Type != gymbro.EventQueued || evs[0].ConversationID != stored.ConversationID {
		t.Errorf("first event %+v, want queued in conversation %s", evs[0], stored.ConversationID)
	}
	return evs
}

// TestGenerationRewritesWhatAFailoverLost: between two chunks the log loses
// its tail, as after a failover to a replica that lagged; the next append
// finds out, writes the lost events again at their seqs, then goes on. A
// follower that saw the lost events before the failover continues with no
// gap; a replay holds every event once and ends in the stored reply.
func TestGenerationRewritesWhatAFailoverLost(t *testing.T) {
	for _, c := range []struct {
		name  string
		after int   // the chunk after which the model pauses and the log loses events
		from  int64 // the first seq lost
	}{
		{"the last two deltas", 1, 3},
		{"the whole log", 1, 1},
		// Found when the stream ends, before the result is stored.
		{"after the last delta", 3, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			pause := make(chan struct{})
			chunks := []string{"one ", "two ", "three ", "four"}
			e := newFailoverEnv(t, &script{chunks: chunks, pause: map[int]chan struct{}{c.after: pause}})
			m, _, err := e.svc.Post(context.Background(), alice, chat.PostInput{Text: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			seen := e.await(t, m.ID, func(ev gymbro.Event) bool { return ev.Delta == chunks[c.after] })
			e.lose(t, m.ID, c.from)
			close(pause)
			evs := e.replyCheck(t, m.ID, gymbro.StatusCompleted)
			if len(evs) != 7 || !strings.HasPrefix(last(evs).Content, "one two three four") {
				t.Fatalf("events %v", evs)
			}
			for i, ev := range seen {
				if evs[i].Type != ev.Type || evs[i].Delta != ev.Delta {
					t.Errorf("seq %d was %s %q before the loss, %s %q after", ev.Seq, ev.Type, ev.Delta, evs[i].Type, evs[i].Delta)
				}
			}
		})
	}
}

// TestLostReplyBeyondTheCopyEndsWithTheStoredReply: a generation whose copy
// outgrew its bound cannot write lost events again; it ends, retryable,
// and the log stays gap-free, its terminal event carrying the stored reply.
func TestLostReplyBeyondTheCopyEndsWithTheStoredReply(t *testing.T) {
	pause := make(chan struct{})
	long := strings.Repeat("x", 200) // the copy (queued, working, deltas) outgrows 600 bytes here
	e := newFailoverEnv(t, &script{chunks: []string{"one ", long, "three"}, pause: map[int]chan struct{}{1: pause}},
		func(o *chat.Options) { o.MaxHeldBytes = 600 })
	m, _, err := e.svc.Post(context.Background(), alice, chat.PostInput{Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	e.await(t, m.ID, func(ev gymbro.Event) bool { return ev.Delta == long })
	e.lose(t, m.ID, 3)
	close(pause)
	evs := e.await(t, m.ID, func(ev gymbro.Event) bool { return ev.Type.Terminal() })
	types(t, evs)
	end := last(evs)
	stored, err := e.store.MessageByID(context.Background(), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if end.Type != gymbro.EventError || end.Code != gymbro.CodeUnavailable || end.Retryable == nil || !*end.Retryable ||
		stored.Status != gymbro.StatusFailed || end.Content != stored.Reply {
		t.Errorf("ended %s %s retryable %v content %q; stored %s %q", end.Type, end.Code, end.Retryable, end.Content, stored.Status, stored.Reply)
	}
}

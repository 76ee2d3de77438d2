package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/httpapi"
	"github.com/gymbro/gymbro-api/internal/sse"
)

// remoteCap is a stream cap that is not the in-process one, as
// redislimit's is: its slot is taken while the replay is read. down
// makes it fail as an unreachable Redis would.
type remoteCap struct {
	*httpapi.MemoryStreamCap
	down atomic.Bool
}

func (c *remoteCap) Acquire(ctx context.Context, uid string) (func(), error) {
	if c.down.Load() {
		return nil, &gymbro.Error{Kind: gymbro.KindUnavailable, Code: "rate_limiter_unavailable", Message: "down", RetryAfter: time.Second, Err: errors.New("dial refused")}
	}
	return c.MemoryStreamCap.Acquire(ctx, uid)
}

// TestRemoteStreamCap: a cap asked beside the replay still refuses a
// stream over it (429), gives the slot back when the stream ends, and
// answers 503 while it cannot be reached.
func TestRemoteStreamCap(t *testing.T) {
	c := &remoteCap{MemoryStreamCap: httpapi.NewMemoryStreamCap(1)}
	ss := newStreamServerWith(t, streamSetup{heartbeat: time.Hour, streams: c})
	id := ss.post(t, "long one [demo:slow]")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	res := ss.open(t, ctx, id, 0)
	if evs, _ := readEvents(t, sse.NewReader(res.Body), 1); len(evs) != 1 || evs[0].Type != gymbro.EventQueued {
		t.Fatalf("first events %+v", evs)
	}
	if code, body := ss.get(t, ctx, "/api/v1/messages/"+id+"/events"); code != http.StatusTooManyRequests || !strings.Contains(body, httpapi.CodeTooManyStreams) {
		t.Errorf("a second stream over the cap: %d %s", code, body)
	}
	res.Body.Close()
	for ss.api.OpenStreams() != 0 {
		if ctx.Err() != nil {
			t.Fatal("the stream did not end after its client hung up")
		}
		runtime.Gosched()
	}
	again := ss.open(t, ctx, id, 1) // its slot was given back
	again.Body.Close()
	c.down.Store(true)
	if code, _ := ss.get(t, ctx, "/api/v1/messages/"+id+"/events"); code != http.StatusServiceUnavailable {
		t.Errorf("with the cap unreachable: %d, want 503", code)
	}
}

func (ss *streamServer) get(t *testing.T, ctx context.Context, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", ss.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+ss.token)
	res, err := ss.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

package openai_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/openai"
)

// connCounter is a streaming server that counts the connections it
// accepts; hold, when set, keeps a body open after [DONE] until the
// client goes.
type connCounter struct {
	srv   *httptest.Server
	conns atomic.Int64
}

func newConnCounter(t *testing.T, handle http.HandlerFunc) *connCounter {
	t.Helper()
	c := &connCounter{srv: httptest.NewUnstartedServer(handle)}
	c.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	c.srv.Start()
	t.Cleanup(c.srv.Close)
	return c
}

// TestStreamsReuseTheConnection: one generation after another, and eight
// at a time, reuse their connections: a server that flushes [DONE] on its
// own and ends the body a moment later (as streaming servers do) does not
// cost a connection per reply, nor does a pool of two per host cost one
// per generation beyond the second.
func TestStreamsReuseTheConnection(t *testing.T) {
	c := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		reply(w, "gpt-test", "Squat ", "deep.") // every event flushed, [DONE] too
		time.Sleep(500 * time.Microsecond)      // the server's own work before its body ends
	})
	m := newModel(t, openai.Config{APIKey: "sk-test-secret-key", BaseURL: c.srv.URL + "/v1", Model: "gpt-test"})
	for range 50 {
		if _, _, err := stream(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	// One, but for a body end that a loaded machine delayed past the wait.
	if n := c.conns.Load(); n > 5 {
		t.Errorf("50 replies one after another took %d connections, want 1", n)
	}
	before := c.conns.Load()
	for range 5 {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, _, err := stream(t.Context(), m); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	// At most 8, and a few more for body ends a loaded machine delayed;
	// a pool of two per host would take six more every round.
	if n := c.conns.Load() - before; n > 16 {
		t.Errorf("5 rounds of 8 replies at once took %d new connections, want about 8", n)
	}
}

// TestStreamEndsWhenTheBodyStaysOpen: a server that keeps the body open
// after [DONE] does not hold the reply up.
func TestStreamEndsWhenTheBodyStaysOpen(t *testing.T) {
	c := newConnCounter(t, func(w http.ResponseWriter, r *http.Request) {
		reply(w, "gpt-test", "ok")
		<-r.Context().Done()
	})
	m := newModel(t, openai.Config{APIKey: "sk-test-secret-key", BaseURL: c.srv.URL + "/v1", Model: "gpt-test"})
	done := make(chan error, 1)
	go func() {
		_, _, err := stream(t.Context(), m)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reply did not end while its body stayed open after [DONE]")
	}
}

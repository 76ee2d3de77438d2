package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/sse"
)

// follower reads one message's stream in the background, reconnecting
// with Last-Event-ID whenever the stream ends early or is refused.
type follower struct {
	f       *faults
	id      string
	mu      sync.Mutex
	events  []gymbro.Event
	delta   chan struct{}
	done    chan struct{}
	err     error
	deltaOK sync.Once
}

func (f *faults) follow(id string) *follower {
	s := &follower{f: f, id: id, delta: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *follower) run() {
	defer close(s.done)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		finished, err := s.once()
		if finished {
			return
		}
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
		<-time.After(100 * time.Millisecond) // a client's reconnect delay, as EventSource's retry
	}
	s.err = errors.New("the stream did not end within a minute")
}

// once reads the stream from the last event seen; finished reports that
// the terminal event arrived.
func (s *follower) once() (finished bool, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.f.a.url+"/api/v1/messages/"+s.id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+s.f.tok)
	s.mu.Lock()
	if n := len(s.events); n > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(s.events[n-1].Seq, 10))
	}
	s.mu.Unlock()
	res, err := s.f.a.http.Do(req)
	if err != nil {
		return false, nil
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusServiceUnavailable || res.StatusCode == http.StatusTooManyRequests:
		if res.Header.Get("Retry-After") == "" {
			return false, fmt.Errorf("stream refused %d without Retry-After", res.StatusCode)
		}
		return false, nil
	case res.StatusCode != http.StatusOK:
		b, _ := io.ReadAll(res.Body)
		return false, fmt.Errorf("stream answered %d: %s", res.StatusCode, b)
	}
	return s.read(sse.NewReader(res.Body))
}

func (s *follower) read(r *sse.Reader) (bool, error) {
	for {
		ev, err := r.Next()
		if err != nil {
			return false, nil // dropped: reconnect
		}
		if ev.Data == "" || ev.Type == "reset" {
			continue
		}
		var d gymbro.Event
		if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
			return false, err
		}
		s.mu.Lock()
		if n := len(s.events); n > 0 && d.Seq != s.events[n-1].Seq+1 {
			s.mu.Unlock()
			return false, fmt.Errorf("event %d after %d: ids not gap-free", d.Seq, s.events[n-1].Seq)
		}
		s.events = append(s.events, d)
		s.mu.Unlock()
		if d.Type == gymbro.EventContentDelta {
			s.deltaOK.Do(func() { close(s.delta) })
		}
		if d.Type.Terminal() {
			return true, nil
		}
	}
}

func (s *follower) awaitDelta(t *testing.T) {
	t.Helper()
	select {
	case <-s.delta:
	case <-s.done:
		t.Fatalf("stream of %s ended before its first chunk: %v", s.id, s.err)
	case <-time.After(20 * time.Second):
		t.Fatalf("no chunk of %s", s.id)
	}
}

func (s *follower) wait(t *testing.T) {
	t.Helper()
	<-s.done
	if s.err != nil {
		t.Errorf("stream of %s: %v", s.id, s.err)
	}
}

// content is the text the stream delivered.
func (s *follower) content() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, ev := range s.events {
		b.WriteString(ev.Delta)
	}
	return b.String()
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawRequest opens a connection to a and writes head (a request line and
// headers, without the blank line) plus the blank line and firstBody.
func rawRequest(t *testing.T, a *app, head, firstBody string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, err := io.WriteString(c, head+"\r\n\r\n"+firstBody); err != nil {
		c.Close()
		t.Fatalf("write: %v", err)
	}
	return c
}

// readAnswer reads one response from c and then expects c to be closed.
func readAnswer(c net.Conn, within time.Duration) (*http.Response, bool, error) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, false, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	_, err = br.ReadByte()
	return res, err == io.EOF, nil
}

// TestSlowBodiesAreAnsweredAtOnce: 2,000 connections that trickle a body
// without a token are each answered 401 and closed without the server
// waiting for the body; healthz keeps answering meanwhile.
func TestSlowBodiesAreAnsweredAtOnce(t *testing.T) {
	a := startApp(t, nil)
	const conns = 2000
	head := "POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200000"
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		slowest time.Duration
		failed  []string
	)
	sem := make(chan struct{}, 200) // dialing 2,000 at once overflows the listen backlog
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			c := rawRequest(t, a, head, `{"te`)
			defer c.Close()
			res, closed, err := readAnswer(c, 20*time.Second)
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, time.Since(start))
			switch {
			case err != nil:
				failed = append(failed, fmt.Sprintf("conn %d: %v", i, err))
			case res.StatusCode != http.StatusUnauthorized || !closed:
				failed = append(failed, fmt.Sprintf("conn %d: %d, closed %v", i, res.StatusCode, closed))
			}
		}()
	}
	if r := a.do("GET", "/api/v1/healthz", "", nil); r.status != http.StatusOK {
		t.Errorf("healthz during the slow bodies: %d", r.status)
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d connections not answered 401 and closed, e.g. %s", len(failed), conns, failed[0])
	}
	t.Logf("slowest 401 of %d: %v", conns, slowest)
}

// TestStalledBodyTimesOut: with a token, a body that stops arriving gets
// 408 body_timeout after GYMBRO_BODY_READ_TIMEOUT and the connection closes.
// (Streams are GETs without a body: the deadline is never set on them.)
func TestStalledBodyTimesOut(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_BODY_READ_TIMEOUT": "1s"})
	tok := a.user("stall@example.com")
	head := "POST /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 64\r\nAuthorization: Bearer " + tok
	c := rawRequest(t, a, head, `{"text":`)
	defer c.Close()
	res, closed, err := readAnswer(c, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestTimeout || !closed {
		t.Fatalf("stalled body: %d, closed %v", res.StatusCode, closed)
	}
	// A body that arrives in time is unaffected.
	a.post(tok, "quick", "")
}

// TestHugeHeadersAre431: headers beyond GYMBRO_MAX_HEADER_BYTES (64 KiB).
func TestHugeHeadersAre431(t *testing.T) {
	a := startApp(t, nil)
	c := rawRequest(t, a, "GET /api/v1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "+strings.Repeat("a", 100<<10), "")
	defer c.Close()
	res, _, err := readAnswer(c, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("100 KiB header: %d", res.StatusCode)
	}
	c2 := rawRequest(t, a, "GET /api/v1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Pad: "+strings.Repeat("a", 40<<10), "")
	defer c2.Close()
	if res, _, err := readAnswer(c2, 10*time.Second); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("40 KiB header: %v %v", res, err)
	}
}

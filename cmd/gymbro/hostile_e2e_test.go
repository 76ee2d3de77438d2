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

// TestDevelopmentIsClosedToOtherSites: a page on another site gets no CORS
// answer anywhere and no operator password; a rebound DNS name gets 421.
func TestDevelopmentIsClosedToOtherSites(t *testing.T) {
	a := startApp(t, nil)
	const evil = "https://evil.example"
	for _, probe := range []struct{ method, path string }{
		{"OPTIONS", "/api/v1/messages"}, {"OPTIONS", "/auth/v1/token"}, {"GET", "/api/v1/console/config"}, {"GET", "/api/v1/healthz"},
	} {
		r := a.do(probe.method, probe.path, "", nil, "Origin", evil, "Access-Control-Request-Method", "POST")
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "" {
			t.Errorf("%s %s from %s: Access-Control-Allow-Origin %q", probe.method, probe.path, evil, got)
		}
	}
	operator := func(headers ...string) bool {
		var cfg struct {
			DevOperator *struct{ Password string } `json:"dev_operator"`
		}
		a.do("GET", "/api/v1/console/config", "", nil, headers...).json(t, &cfg)
		return cfg.DevOperator != nil && cfg.DevOperator.Password != ""
	}
	if operator("Origin", evil) || operator("Sec-Fetch-Site", "cross-site") || operator("Sec-Fetch-Site", "same-site") {
		t.Error("the operator's password went to another site's page")
	}
	if !operator("Sec-Fetch-Site", "same-origin") || !operator("Origin", a.url) || !operator() {
		t.Error("the console's own page (or curl) did not get the operator")
	}
	// A dev server's page on another localhost port is allowed.
	if r := a.do("GET", "/api/v1/healthz", "", nil, "Origin", "http://localhost:5173"); r.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Error("http://localhost:5173 was refused CORS")
	}

	r := a.do("GET", "/api/v1/console/config", "", nil, "Host", "attacker.example")
	if r.status != http.StatusMisdirectedRequest || r.problem(t)["code"] != "host_not_allowed" {
		t.Fatalf("Host attacker.example: %d %s", r.status, r.body)
	}
	for _, host := range []string{"localhost", "127.0.0.1:8080", "[::1]:9"} {
		if r := a.do("GET", "/api/v1/healthz", "", nil, "Host", host); r.status != http.StatusOK {
			t.Errorf("Host %s: %d", host, r.status)
		}
	}
}

// TestPerUserCapsByDefault: the 21st open stream of one user gets 429
// too_many_streams, and the 21st message in a minute 429 rate_limited.
func TestPerUserCapsByDefault(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_MAX_RUNNING_PER_USER": "100"})
	tok := a.user("greedy@example.com")
	p := a.post(tok, "keep going for a while [demo:slow]", "")
	var conns []*http.Response
	defer func() {
		for _, c := range conns {
			c.Body.Close()
		}
	}()
	open := func() *http.Response {
		req, _ := http.NewRequest("GET", a.url+"/api/v1/messages/"+p.MessageID+"/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := a.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i := range 20 {
		res := open()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", i+1, res.StatusCode)
		}
		conns = append(conns, res)
	}
	res := open()
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), `"code":"too_many_streams"`) || res.Header.Get("Retry-After") == "" {
		t.Fatalf("21st stream: %d %s", res.StatusCode, body)
	}
	// Closing one frees its slot.
	conns[0].Body.Close()
	conns = conns[1:]
	waitFor(t, "a freed stream slot", func() bool {
		res := open()
		if res.StatusCode == http.StatusOK {
			conns = append(conns, res)
			return true
		}
		res.Body.Close()
		return false
	})

	for i := 2; i <= 20; i++ {
		a.post(tok, fmt.Sprintf("message %d", i), "")
	}
	status, code, r := a.postStatus(tok)
	if status != http.StatusTooManyRequests || code != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("21st message in a minute: %d %s", status, code)
	}
}

// TestSmallerHardening: one Authorization header only, no HEAD stream, 404
// for unknown paths whatever the method, JSON-worded type errors, and
// no-store on authenticated and token answers.
func TestSmallerHardening(t *testing.T) {
	a := startApp(t, nil)
	tok := a.user("small@example.com")
	p := a.post(tok, "hi", "")

	req, _ := http.NewRequest("GET", a.url+"/api/v1/me", nil)
	req.Header.Add("Authorization", "Bearer "+tok)
	req.Header.Add("Authorization", "Bearer forged")
	res, err := a.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `"code":"token_malformed"`) {
		t.Errorf("two Authorization headers: %d %s", res.StatusCode, body)
	}

	if r := a.do("HEAD", "/api/v1/messages/"+p.MessageID+"/events", tok, nil); r.status != http.StatusMethodNotAllowed || len(r.body) != 0 {
		t.Errorf("HEAD on a stream: %d, %d body bytes", r.status, len(r.body))
	}
	for _, method := range []string{"DELETE", "PUT", "POST", "PATCH"} {
		if r := a.do(method, "/no/such/path", "", nil); r.status != http.StatusNotFound || r.problem(t)["code"] != "not_found" {
			t.Errorf("%s /no/such/path: %d", method, r.status)
		}
	}

	for body, want := range map[string]string{
		`[]`:           "The body must be a JSON object.",
		`"text"`:       "The body must be a JSON object.",
		`{"text": 5}`:  `Field "text" must be a string.`,
		`{"text": {}}`: `Field "text" must be a string.`,
	} {
		r := a.do("POST", "/api/v1/messages", tok, body)
		if detail, _ := r.problem(t)["detail"].(string); r.status != http.StatusBadRequest || detail != want {
			t.Errorf("POST %s: %d %q, want %q", body, r.status, detail, want)
		}
	}

	for _, path := range []string{"/api/v1/me", "/api/v1/messages/" + p.MessageID, "/api/v1/conversations"} {
		if cc := a.do("GET", path, tok, nil).header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
	}
	anon, _ := a.main.Emulator.Keys()
	r := a.do("POST", "/auth/v1/token?grant_type=password", "", `{"email":"small@example.com","password":"correct horse battery"}`, "apikey", anon)
	if r.status != http.StatusOK || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("token answer: %d, Cache-Control %q", r.status, r.header.Get("Cache-Control"))
	}
}

// TestMetricsOnTheirOwnAddress: GYMBRO_METRICS_ADDR serves /metrics there
// and takes it off the public listener.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	a := startApp(t, map[string]string{"GYMBRO_METRICS_ADDR": "127.0.0.1:0"})
	// (With the console built, /metrics there is just a console route.)
	if r := a.do("GET", "/metrics", "", nil); strings.Contains(string(r.body), "gymbro_http_requests_total") {
		t.Errorf("/metrics is still served on the API listener")
	}
	res, err := http.Get(a.main.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "gymbro_http_requests_total") {
		t.Fatalf("metrics listener: %d", res.StatusCode)
	}
}

package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSourceAddrs(t *testing.T) {
	if got := sourceAddrs(1); got != nil {
		t.Fatalf("one address: %v, want none (the kernel's choice)", got)
	}
	got := sourceAddrs(3)
	want := []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
	if got := sourceAddrs(300)[299].String(); got != "127.0.1.44" {
		t.Fatalf("the 300th address is %s, want 127.0.1.44", got)
	}
	for _, tc := range []struct {
		url   string
		conns int
		want  int
	}{
		{"http://127.0.0.1:8080", 1000, 1},
		{"http://127.0.0.1:8080", 25_000, 1},
		{"http://127.0.0.1:8080", 25_001, 2},
		{"http://127.0.0.1:8080", 50_100, 3},
		{"http://[::1]:8080", 50_100, 1},
		{"http://localhost:8080", 50_100, 1},
	} {
		if got := sourcesFor(tc.url, tc.conns); got != tc.want {
			t.Errorf("sourcesFor(%s, %d) = %d, want %d", tc.url, tc.conns, got, tc.want)
		}
	}
}

// TestRotatingDialer checks that connections really leave from each source
// address in turn, as the server sees them.
func TestRotatingDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			seen <- c.RemoteAddr().(*net.TCPAddr).IP.String()
			c.Close()
		}
	}()
	d := &rotatingDialer{ips: sourceAddrs(2)}
	want := []string{"127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"}
	for _, w := range want {
		c, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		select {
		case got := <-seen:
			if got != w {
				t.Fatalf("connection from %s, want %s", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the listener saw no connection")
		}
	}
}

func TestBeatClock(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	const every = 15 * time.Second
	c := newBeatClock(t0, every)
	for i, tc := range []struct {
		at   time.Duration // since t0
		late time.Duration
	}{
		{15*time.Second + 100*time.Millisecond, 100 * time.Millisecond},
		{30*time.Second + 900*time.Millisecond, 900 * time.Millisecond}, // the cadence holds: due at 30 s, not 30.1 s
		{44*time.Second + 990*time.Millisecond, -10 * time.Millisecond},
		{80 * time.Second, 20 * time.Second}, // one missed: the cadence restarts at 80 s
		{95*time.Second + 50*time.Millisecond, 50 * time.Millisecond},
	} {
		if got := c.beat(t0.Add(tc.at)); got != tc.late {
			t.Errorf("beat %d at %s: late %s, want %s", i+1, tc.at, got, tc.late)
		}
	}
}

func TestFanout(t *testing.T) {
	var lat Latencies
	f := newFanout(&lat)
	t0 := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	f.expect("m", 3)
	f.opened("m", ms(1))
	f.opened("m", ms(2))
	f.chunk("m", 1, ms(3), ms(4)) // not every stream is open yet: ignored
	f.opened("m", ms(5))
	f.chunk("m", 2, ms(4), ms(6)) // appended before the last stream opened: replayed to it
	f.chunk("m", 3, ms(10), ms(12))
	f.chunk("m", 3, ms(10), ms(17))
	if lat.Count() != 0 {
		t.Fatalf("%d samples before the chunk reached every stream", lat.Count())
	}
	f.chunk("m", 3, ms(10), ms(14))
	f.chunk("other", 1, ms(10), ms(11)) // unknown message
	if d := lat.Summary(); d.Count != 1 || d.Max != 7 {
		t.Fatalf("fan-out %+v, want one sample of 7 ms (the slowest of three streams)", d)
	}
	f.done("m")
	f.chunk("m", 4, ms(20), ms(21))
	if lat.Count() != 1 {
		t.Fatal("a finished message still counts")
	}
}

// TestFakeModel reads the fake model's stream as an OpenAI client would:
// the chunks, the finish_reason on the last one, then [DONE].
func TestFakeModel(t *testing.T) {
	srv := httptest.NewServer(&fakeModel{every: time.Millisecond, chunks: 3})
	defer srv.Close()
	res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var data []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, v)
		}
	}
	if res.Header.Get("Content-Type") != "text/event-stream" || len(data) != 4 || data[3] != "[DONE]" {
		t.Fatalf("Content-Type %q, data %q", res.Header.Get("Content-Type"), data)
	}
	if !strings.Contains(data[0], `"content":"chunk 1 "`) || !strings.Contains(data[0], `"finish_reason":null`) ||
		!strings.Contains(data[2], `"finish_reason":"stop"`) {
		t.Fatalf("chunks %q", data)
	}
}

func TestIdleSummaryRSS(t *testing.T) {
	m := &memSampler{source: "proc", base: MemSample{RSS: 1000}, samples: []MemSample{
		{Open: 5, RSS: 2000},
		{Open: 10, RSS: 4000}, // the first at peak
		{Open: 10, RSS: 6000}, // the highest
		{Open: 10, RSS: 3000}, // the last
		{Open: 2, RSS: 1500},
	}}
	s := m.summary(10)
	if s.Peak.Open != 10 || s.RSSPerStream != 300 || s.RSSPerStreamMax != 500 || s.RSSPerStreamLast != 200 {
		t.Fatalf("peak %d open, per stream %.0f (first) %.0f (highest) %.0f (last); want 10, 300, 500, 200",
			s.Peak.Open, s.RSSPerStream, s.RSSPerStreamMax, s.RSSPerStreamLast)
	}
}

//go:build linux

package epoll_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gymbro/gymbro-api/internal/epoll"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair returns a loopback connection as a descriptor in a new Set (under
// key) and the peer's net.Conn.
func pair(t *testing.T, key uint64, sndbuf int) (*epoll.Set, int, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if sndbuf > 0 {
		if err := c.(*net.TCPConn).SetWriteBuffer(sndbuf); err != nil {
			t.Fatal(err)
		}
		if err := peer.(*net.TCPConn).SetReadBuffer(sndbuf); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := epoll.Dup(c)
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // the duplicate keeps the connection open
	t.Cleanup(func() { epoll.Close(fd) })
	set, err := epoll.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	if err := set.Add(fd, key); err != nil {
		t.Fatal(err)
	}
	return set, fd, peer
}

// wait returns the first event Wait reports within a few seconds.
func wait(t *testing.T, set *epoll.Set) epoll.Event {
	t.Helper()
	evs := make([]epoll.Event, 4)
	n, err := set.Wait(evs, 5*time.Second)
	if err != nil || n == 0 {
		t.Fatalf("Wait: %d events, %v", n, err)
	}
	return evs[0]
}

func TestDuplicateOutlivesTheConn(t *testing.T) {
	_, fd, peer := pair(t, 1, 0)
	if n, err := epoll.Write(fd, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write: %d, %v", n, err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(peer, got); err != nil || string(got) != "hello" {
		t.Fatalf("peer read %q, %v", got, err)
	}
}

func TestPeerBytesThenHangup(t *testing.T) {
	set, fd, peer := pair(t, 42, 0)
	if _, err := peer.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	ev := wait(t, set)
	if ev.Key != 42 || !ev.Readable || ev.Hangup {
		t.Fatalf("after the peer wrote: %+v", ev)
	}
	if !epoll.Discard(fd) {
		t.Fatal("Discard: closed, want open")
	}
	peer.Close()
	ev = wait(t, set)
	if ev.Key != 42 || !ev.Hangup {
		t.Fatalf("after the peer closed: %+v", ev)
	}
	if epoll.Discard(fd) {
		t.Fatal("Discard: open after the peer closed")
	}
}

func TestFullSocketBecomesWritable(t *testing.T) {
	set, fd, peer := pair(t, 7, 4096)
	big := bytes.Repeat([]byte("x"), 4<<20)
	n, err := epoll.Write(fd, big)
	if err != nil || n == 0 || n >= len(big) {
		t.Fatalf("Write into a small buffer: %d of %d, %v", n, len(big), err)
	}
	if err := set.Writable(fd, 7, true); err != nil {
		t.Fatal(err)
	}
	evs := make([]epoll.Event, 4)
	if got, err := set.Wait(evs, 0); err != nil || got != 0 {
		t.Fatalf("a full socket reported %d events (%+v), %v", got, evs[:got], err)
	}
	if _, err := io.ReadFull(peer, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if ev := wait(t, set); ev.Key != 7 || !ev.Writable {
		t.Fatalf("after the peer read: %+v", ev)
	}
	if err := set.Writable(fd, 7, false); err != nil {
		t.Fatal(err)
	}
	if got, err := set.Wait(evs, 0); err != nil || got != 0 {
		t.Fatalf("with writability off: %d events (%+v), %v", got, evs[:got], err)
	}
}

func TestWakeInterruptsWait(t *testing.T) {
	set, err := epoll.New()
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	done := make(chan int)
	go func() {
		n, _ := set.Wait(make([]epoll.Event, 1), -1) // no limit: only Wake ends it
		done <- n
	}()
	if err := set.Wake(); err != nil {
		t.Fatal(err)
	}
	if n := <-done; n != 0 {
		t.Fatalf("Wait reported %d events for a wake", n)
	}
}

func TestDupNeedsADescriptor(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, err := epoll.Dup(a); err == nil {
		t.Fatal("Dup of a net.Pipe succeeded")
	}
}

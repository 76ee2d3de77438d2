package main

import (
	"context"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// portsPerSource is about how many connections one loopback source address
// can hold to one server port: the default ephemeral range
// (net.ipv4.ip_local_port_range 32768–60999) has 28,232 ports; a margin is
// left for other programs.
const portsPerSource = 25_000

// sourceAddrs returns the n loopback source addresses 127.0.0.1, 127.0.0.2,
// … (every 127/8 address reaches the lo interface on Linux without any
// set-up), or nil for n < 2: one address needs no rotation.
func sourceAddrs(n int) []net.IP {
	if n < 2 {
		return nil
	}
	ips := make([]net.IP, n)
	for i := range ips {
		k := i + 1 // 127.0.0.1 first
		ips[i] = net.IPv4(127, byte(k>>16), byte(k>>8), byte(k))
	}
	return ips
}

// sourcesFor picks how many source addresses conns connections to target
// need: several only for an IPv4 loopback target, where other 127/8
// addresses exist; [::1] and localhost keep one (ask with -source-addrs).
func sourcesFor(target string, conns int) int {
	u, err := url.Parse(target)
	if err != nil {
		return 1
	}
	ip := net.ParseIP(u.Hostname())
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return 1
	}
	return (conns + portsPerSource - 1) / portsPerSource
}

// rotatingDialer spreads connections over its source addresses in turn, so
// that together they can hold more connections than one address has
// ephemeral ports.
type rotatingDialer struct {
	d    net.Dialer
	ips  []net.IP
	next atomic.Uint64
}

// localAddr is the source address of the next connection (nil: the
// kernel's choice).
func (r *rotatingDialer) localAddr() *net.TCPAddr {
	if len(r.ips) == 0 {
		return nil
	}
	return &net.TCPAddr{IP: r.ips[(r.next.Add(1)-1)%uint64(len(r.ips))]}
}

// DialContext is http.Transport.DialContext.
func (r *rotatingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := r.d // a copy: LocalAddr is per connection
	if a := r.localAddr(); a != nil {
		d.LocalAddr = a
	}
	return d.DialContext(ctx, network, addr)
}

// beatClock says how late each heartbeat of one stream is. The server
// keeps a cadence (each heartbeat is due one interval after the previous
// one was due, the first one interval after the stream opened, and a
// heartbeat missed by a whole interval restarts the cadence), so lateness
// is the arrival time minus that due time.
type beatClock struct {
	every time.Duration
	due   time.Time
}

func newBeatClock(opened time.Time, every time.Duration) *beatClock {
	return &beatClock{every: every, due: opened.Add(every)}
}

// beat records a heartbeat read at t and returns how late it was
// (negative: early, by the client's timing).
func (c *beatClock) beat(t time.Time) time.Duration {
	late := t.Sub(c.due)
	c.due = c.due.Add(c.every)
	if c.due.Before(t) {
		c.due = t.Add(c.every)
	}
	return late
}

// fanout measures how long one chunk takes to reach every subscriber of
// its message: from the event's `at` (the server's clock, the same
// machine's) to its arrival on the last of the message's streams. Only
// chunks appended after all of them were open count; a stream that
// reconnects and gets a chunk by replay would otherwise count its replay.
type fanout struct {
	mu   sync.Mutex
	msgs map[string]*fanMsg
	lat  *Latencies
}

type fanMsg struct {
	want    int       // streams on the message
	open    int       // streams opened so far
	allOpen time.Time // when the last one opened
	chunks  map[int64]*fanChunk
}

type fanChunk struct {
	n    int
	last time.Time
}

func newFanout(lat *Latencies) *fanout { return &fanout{msgs: map[string]*fanMsg{}, lat: lat} }

// expect says that want streams will follow message id.
func (f *fanout) expect(id string, want int) {
	f.mu.Lock()
	f.msgs[id] = &fanMsg{want: want, chunks: map[int64]*fanChunk{}}
	f.mu.Unlock()
}

// opened counts one of message id's streams as open at t.
func (f *fanout) opened(id string, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.msgs[id]; m != nil {
		if m.open++; m.open == m.want {
			m.allOpen = t
		}
	}
}

// chunk records that the chunk seq of message id, appended at `at`,
// arrived on one stream at t.
func (f *fanout) chunk(id string, seq int64, at, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.msgs[id]
	if m == nil || m.allOpen.IsZero() || at.Before(m.allOpen) {
		return
	}
	c := m.chunks[seq]
	if c == nil {
		c = &fanChunk{}
		m.chunks[seq] = c
	}
	c.n++
	c.last = later(c.last, t)
	if c.n == m.want {
		f.lat.Add(c.last.Sub(at))
		delete(m.chunks, seq)
	}
}

// done forgets message id (its streams have ended).
func (f *fanout) done(id string) {
	f.mu.Lock()
	delete(f.msgs, id)
	f.mu.Unlock()
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

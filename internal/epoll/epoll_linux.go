// Package epoll holds idle sockets outside Go's network poller.
//
// A server that keeps tens of thousands of connections open and almost
// always silent (parked SSE streams) pays, for each one in Go's poller, a
// runtime pollDesc that is never given back to the OS, a netFD and its two
// addresses: most of a kilobyte. Here a socket is a bare descriptor in one
// epoll set that a single goroutine waits on; the kernel keeps the rest.
// This is the technique of "A Million WebSockets and Go" (Kamardin, 2017)
// and of gobwas/ws, reduced to what a parked stream needs: hear hang-ups,
// write without blocking, and learn when a full socket can take more.
//
// It exists on Linux only; elsewhere New fails with errors.ErrUnsupported
// and the caller keeps its sockets in Go's poller.
package epoll

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// wakeKey marks the eventfd that interrupts Wait; callers' keys are below it.
const wakeKey = ^uint64(0)

// watched is what every socket in a Set is watched for: bytes or a
// half-close from the peer (EPOLLHUP and EPOLLERR are always reported).
const watched = unix.EPOLLIN | unix.EPOLLRDHUP

// Set is one epoll instance. Add, Writable, Remove and Wake may be called
// from any goroutine; Wait from one goroutine at a time.
type Set struct {
	fd   int
	wake int // eventfd: a write makes Wait return
	raw  []unix.EpollEvent
}

// Event is what Wait found about one socket, named by the key it was
// added with.
type Event struct {
	Key      uint64
	Readable bool // the peer sent bytes (or a half-close: see Hangup)
	Writable bool // a socket watched with Writable(…, true) can take bytes
	Hangup   bool // the peer closed or reset the connection
}

// New returns an empty Set.
func New() (*Set, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s := &Set{fd: fd, wake: wake, raw: make([]unix.EpollEvent, 256)}
	if err := s.ctl(unix.EPOLL_CTL_ADD, wake, unix.EPOLLIN, wakeKey); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the set. Its sockets are the caller's to close.
func (s *Set) Close() error {
	return errors.Join(unix.Close(s.wake), unix.Close(s.fd))
}

// Add watches fd, a non-blocking socket, under key.
func (s *Set) Add(fd int, key uint64) error {
	return s.ctl(unix.EPOLL_CTL_ADD, fd, watched, key)
}

// Writable turns on or off the report of fd becoming writable: on while a
// write is unfinished, off otherwise (a socket with room is writable all
// the time, and would be reported on every Wait).
func (s *Set) Writable(fd int, key uint64, want bool) error {
	events := uint32(watched)
	if want {
		events |= unix.EPOLLOUT
	}
	return s.ctl(unix.EPOLL_CTL_MOD, fd, events, key)
}

// Remove stops watching fd. Call it before closing fd: an event already
// returned by Wait may still name its key, so keys must not be reused.
func (s *Set) Remove(fd int) error {
	if err := unix.EpollCtl(s.fd, unix.EPOLL_CTL_DEL, fd, nil); err != nil {
		return fmt.Errorf("epoll_ctl del: %w", err)
	}
	return nil
}

func (s *Set) ctl(op, fd int, events uint32, key uint64) error {
	ev := unix.EpollEvent{Events: events}
	setKey(&ev, key)
	if err := unix.EpollCtl(s.fd, op, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

// Wake makes a Wait in progress (or the next one) return at once.
func (s *Set) Wake() error {
	var one = [8]byte{1}
	_, err := unix.Write(s.wake, one[:])
	if errors.Is(err, unix.EAGAIN) { // the counter is full: a wake is pending anyway
		err = nil
	}
	return err
}

// Wait blocks until some socket is ready, Wake is called or timeout
// passes (a negative timeout waits without limit), fills evs and reports
// how many it filled.
func (s *Set) Wait(evs []Event, timeout time.Duration) (n int, err error) {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	raw := s.raw[:min(len(s.raw), len(evs)+1)]
	got, err := unix.EpollWait(s.fd, raw, ms)
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("epoll_wait: %w", err)
	}
	for _, r := range raw[:got] {
		key := getKey(&r)
		if key == wakeKey {
			var b [8]byte
			_, _ = unix.Read(s.wake, b[:]) // reset the counter
			continue
		}
		if n == len(evs) {
			break // the next Wait reports it: epoll is level-triggered
		}
		evs[n] = Event{
			Key:      key,
			Readable: r.Events&unix.EPOLLIN != 0,
			Writable: r.Events&unix.EPOLLOUT != 0,
			Hangup:   r.Events&(unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0,
		}
		n++
	}
	return n, nil
}

// The 64-bit epoll_data is Fd and Pad in x/sys/unix's EpollEvent.
func setKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd, ev.Pad = int32(uint32(key)), int32(uint32(key>>32))
}

func getKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Supported reports whether this platform has Set.
const Supported = true

// Dup returns a duplicate of c's descriptor, non-blocking as Go made it.
// Once the duplicate is in a Set, close c: Go's poller forgets its
// descriptor and the connection stays open through the duplicate. Bytes c
// had buffered, if any, are not carried over. It fails with
// errors.ErrUnsupported for a connection without a descriptor (TLS, a pipe).
func Dup(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.ErrUnsupported
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, fmt.Errorf("dup: %w", dupErr)
	}
	return fd, nil
}

// Write writes what fd's socket buffer takes of b without blocking. n <
// len(b) with a nil error means the buffer is full: watch fd with Writable
// and write the rest when Wait reports it.
func Write(fd int, b []byte) (n int, err error) {
	for n < len(b) {
		m, err := unix.Write(fd, b[n:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return n, nil
		case err != nil:
			return n, err
		}
		n += m
	}
	return n, nil
}

// Discard reads and drops what the peer sent; it reports false once the
// peer has closed its side or the connection failed. A server that expects
// nothing more from a client calls it when Wait reports fd Readable.
func Discard(fd int) (open bool) {
	var b [512]byte
	for {
		n, err := unix.Read(fd, b[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return true
		case err != nil || n == 0:
			return false
		}
	}
}

// Close closes fd.
func Close(fd int) error { return unix.Close(fd) }

//go:build !linux

package epoll

import (
	"errors"
	"net"
	"time"
)

// Set is not available off Linux: New fails and callers keep their
// sockets in Go's poller.
type Set struct{}

// Event is as on Linux.
type Event struct {
	Key                        uint64
	Readable, Writable, Hangup bool
}

// New fails with errors.ErrUnsupported.
func New() (*Set, error) { return nil, errors.ErrUnsupported }

func (*Set) Close() error                             { return errors.ErrUnsupported }
func (*Set) Add(int, uint64) error                    { return errors.ErrUnsupported }
func (*Set) Writable(int, uint64, bool) error         { return errors.ErrUnsupported }
func (*Set) Remove(int) error                         { return errors.ErrUnsupported }
func (*Set) Wake() error                              { return errors.ErrUnsupported }
func (*Set) Wait([]Event, time.Duration) (int, error) { return 0, errors.ErrUnsupported }

// Supported reports whether this platform has Set.
const Supported = false

// Dup fails with errors.ErrUnsupported.
func Dup(net.Conn) (int, error) { return -1, errors.ErrUnsupported }

// Write fails with errors.ErrUnsupported.
func Write(int, []byte) (int, error) { return 0, errors.ErrUnsupported }

// Discard reports the socket closed.
func Discard(int) bool { return false }

// Close fails with errors.ErrUnsupported.
func Close(int) error { return errors.ErrUnsupported }

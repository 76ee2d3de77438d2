//go:build unix

package main

import "syscall"

// openFileLimit returns the process's soft limit on open files. The Go
// runtime already raises it to the hard limit at start-up (since Go 1.19);
// the log line says what that allows.
func openFileLimit() (uint64, bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, false
	}
	return l.Cur, true
}

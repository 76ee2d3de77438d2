// Package eventlog holds what the event logs (inmem, redislog) share and
// is not part of the domain: the registry of append listeners.
package eventlog

import "sync"

// Listeners is the registry behind gymbro.AppendNotifier that both event
// logs (inmem, redislog) use; its zero value is empty and ready.
type Listeners struct {
	mu   sync.RWMutex
	next int
	fns  map[int]func(string)
}

// Add registers fn and returns the function that removes it.
func (l *Listeners) Add(fn func(string)) (stop func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fns == nil {
		l.fns = map[int]func(string){}
	}
	id := l.next
	l.next++
	l.fns[id] = fn
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.fns, id)
	}
}

// Notify calls every registered function with messageID.
func (l *Listeners) Notify(messageID string) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for _, fn := range l.fns {
		fn(messageID)
	}
}

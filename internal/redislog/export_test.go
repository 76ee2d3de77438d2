package redislog

// TailHits reports how many Reads the local tails answered.
func (l *EventLog) TailHits() int64 {
	l.tails.mu.Lock()
	defer l.tails.mu.Unlock()
	return l.tails.hits
}

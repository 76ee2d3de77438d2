package eventlog

import (
	"slices"
	"sync"
	"testing"
)

func TestListeners(t *testing.T) {
	var l Listeners
	l.Notify("nobody listens") // the zero value is ready
	var mu sync.Mutex
	var got []string
	stopA := l.Add(func(id string) { mu.Lock(); got = append(got, "a:"+id); mu.Unlock() })
	l.Add(func(id string) { mu.Lock(); got = append(got, "b:"+id); mu.Unlock() })
	l.Notify("m1")
	stopA()
	l.Notify("m2")
	slices.Sort(got)
	if want := []string{"a:m1", "b:m1", "b:m2"}; !slices.Equal(got, want) {
		t.Fatalf("notified %v, want %v", got, want)
	}
}

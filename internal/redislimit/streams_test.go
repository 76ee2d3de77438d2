package redislimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/httpapi"
	"github.com/gymbro/gymbro-api/internal/redislimit"
)

var _ httpapi.StreamCap = (*redislimit.StreamCap)(nil)

// TestStreamCapAcrossInstances: two instances share one user's cap; a
// release frees a slot; a dead instance's slots lapse with their lease while
// a live instance's are renewed.
func TestStreamCapAcrossInstances(t *testing.T) {
	c := newClient(t)
	streamCapAcrossInstances(t, c, uniquePrefix(t, c))
}

func streamCapAcrossInstances(t *testing.T, c redis.UniversalClient, prefix string) {
	const lease = 600 * time.Millisecond
	a := redislimit.NewStreamCap(c, prefix, 3, lease, httpapi.TooManyStreams)
	b := redislimit.NewStreamCap(c, prefix, 3, lease, httpapi.TooManyStreams)
	defer a.Close()
	ctx := context.Background()

	relA, err := a.Acquire(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Acquire(ctx, "u1"); err != nil {
		t.Fatal(err)
	}
	_, err = b.Acquire(ctx, "u1")
	if gymbro.ErrorCode(err) != httpapi.CodeTooManyStreams || gymbro.ErrorKind(err) != gymbro.KindRateLimited {
		t.Fatalf("fourth stream across two instances: %v", err)
	}
	if _, err := b.Acquire(ctx, "u2"); err != nil {
		t.Fatalf("another user: %v", err)
	}
	relA()
	relA() // twice is harmless
	if _, err := b.Acquire(ctx, "u1"); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	// b "dies": its two u1 slots stop being renewed and lapse, while a's
	// remaining slot lives on through renewals past several leases.
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	free := 0
	for free < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the dead instance's slots did not lapse (got %d of 2)", free)
		}
		if _, err := a.Acquire(ctx, "u1"); err == nil {
			free++
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if _, err := a.Acquire(ctx, "u1"); gymbro.ErrorCode(err) != httpapi.CodeTooManyStreams {
		t.Fatalf("a's renewed slots lapsed: %v", err)
	}
}

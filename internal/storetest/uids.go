package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/gymbro/gymbro-api/internal/gymbro"
)

// LegacyUIDs are exchanges stored as versions before namespaced uids did,
// keyed by the token's bare sub whatever its issuer: a Supabase user's, a
// Firebase user's whose sub is the Supabase user's id, one the Firebase
// token wrote into the Supabase user's conversation, and an OIDC user's.
// A store's test writes them, runs its migration to namespaced uids again,
// then calls Check.
type LegacyUIDs struct {
	Sub                             string // the sub the Supabase and Firebase users share
	Supabase, Firebase, Mixed, OIDC *gymbro.Message
}

// StoreLegacyUIDs writes the LegacyUIDs exchanges into s, finished.
func StoreLegacyUIDs(t *testing.T, s gymbro.Store) LegacyUIDs {
	t.Helper()
	at := base()
	sub := newID()
	in := func(provider, user, conv, text string) gymbro.NewMessage {
		m := newMessage(user, conv, text, at)
		m.Provider = provider
		return m
	}
	l := LegacyUIDs{Sub: sub}
	l.Supabase = create(t, s, in(gymbro.ProviderSupabase, sub, "", "supabase user's"))
	l.Firebase = create(t, s, in(gymbro.ProviderFirebase, sub, "", "firebase user's"))
	l.Mixed = create(t, s, in(gymbro.ProviderFirebase, sub, l.Supabase.ConversationID, "firebase, in the supabase user's conversation"))
	l.OIDC = create(t, s, in(gymbro.ProviderOIDC, "oidc-sub", "", "oidc user's"))
	for _, m := range []*gymbro.Message{l.Supabase, l.Firebase, l.Mixed, l.OIDC} {
		finish(t, s, m, gymbro.StatusCompleted, at.Add(time.Second))
	}
	return l
}

// Check checks the migration's outcome: the Firebase user's exchanges, and
// the conversation holding only theirs, belong to firebase:<sub>; the
// Supabase user keeps theirs and their conversation (without the Firebase
// exchange written into it); the OIDC user's rows are as they were.
func (l LegacyUIDs) Check(t *testing.T, s gymbro.Store) {
	t.Helper()
	ctx := context.Background()
	fire := gymbro.UserID(gymbro.ProviderFirebase, "", l.Sub)
	owner := map[*gymbro.Message]string{l.Supabase: l.Sub, l.Firebase: fire, l.Mixed: fire, l.OIDC: "oidc-sub"}
	for m, user := range owner {
		if _, err := s.Message(ctx, user, m.ID); err != nil {
			t.Errorf("%q: not %s's after the migration: %v", m.Text, user, err)
		}
	}
	if _, err := s.Message(ctx, l.Sub, l.Firebase.ID); gymbro.ErrorCode(err) != gymbro.CodeMessageNotFound {
		t.Errorf("the Supabase user still reads the Firebase user's exchange: %v", err)
	}
	convs := func(user string) []string {
		t.Helper()
		cs, _, err := s.Conversations(ctx, user, gymbro.Page{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, c := range cs {
			ids = append(ids, c.ID)
		}
		return ids
	}
	if got := convs(fire); len(got) != 1 || got[0] != l.Firebase.ConversationID {
		t.Errorf("the Firebase user's conversations: %v, want [%s]", got, l.Firebase.ConversationID)
	}
	if got := convs(l.Sub); len(got) != 1 || got[0] != l.Supabase.ConversationID {
		t.Errorf("the Supabase user's conversations: %v, want [%s]", got, l.Supabase.ConversationID)
	}
	if got := convs("oidc-sub"); len(got) != 1 {
		t.Errorf("the OIDC user's conversations: %v", got)
	}
}

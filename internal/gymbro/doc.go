// Package gymbro is the domain of the GymBro API: the principal a verified
// token becomes, conversations and exchanges, the seq-numbered event log of a
// generation, the stable error codes, and the interfaces that the adapters
// (auth, sqlite, postgres, inmem, redis, openai, demo, supabase, httpapi)
// implement or consume. It imports nothing but the standard library and
// nothing of ours, so every other package can depend on it and it on none.
package gymbro

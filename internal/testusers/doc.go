// Package testusers makes one-click test users for the developer console:
// a real user in Supabase Auth (or the local emulator), signed in with the
// password grant, so the console gets a real access token that our own
// verifier accepts, not a locally forged one.
//
// # Names
//
// A request names either an allowed prefix ("gymbro-test") or a full name
// ("gymbro-test-07"). A prefix allocates the lowest number not in use: two
// digits from 01 to 99, then 100, 101, and so on. Gaps are filled: after
// gymbro-test-01 is deleted the next allocation is gymbro-test-01 again, so
// a team that cleans up old test users keeps short, predictable names. A
// number counts as in use when any user has it in user_metadata.username or
// as the local part of its email, whatever the domain, so a real person who
// happens to own gymbro-test-03@example.com is never shadowed.
//
// A full name reuses that user when it is ours (user_metadata.test_user is
// true with that username, or its email is <name>@<EmailDomain>): its
// password is replaced through the Admin API, which also ends its old
// sessions, and it is signed in afresh. A full name that does not exist is
// created. A full name held by a user that is not a test user is refused
// (username_taken) rather than having a real account's password reset.
//
// # Concurrency
//
// Allocation, creation and the sign-in that follows run one at a time
// within a process, so two clicks never race for one name and a reused
// user's password is not replaced between setting it and using it. Across
// processes, Supabase's unique email is the arbiter: the loser of a race
// gets email_exists and allocates again, a bounded number of times. With a
// mail API inbox the address is not derived from the name, so two processes
// may still hand out one name twice; the users stay distinct.
//
// # Guards
//
// Checked in this order: the feature switch (test_users_disabled), a
// caller (token_missing), the operator list in production
// (not_an_operator), the name (prefix_not_allowed), the caller's rate
// (rate_limited), the service role key (service_role_key_missing). Every
// call, refused or not, writes one audit line "test user" with the caller,
// the name, whether it was reused and the outcome code; never a password,
// token or key.
//
// # Operators
//
// An operator is named by a claim its own provider vouches for: a Supabase
// uid (a token of the configured Supabase project only), an email that
// Supabase Auth confirms is that Supabase user's own confirmed address
// (asked through the Admin API, since an access token does not say), or
// issuer|sub for a user of any issuer. Another issuer's email claim is
// whatever its user typed at sign-up, so it never makes an operator.
package testusers

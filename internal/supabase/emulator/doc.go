// Package emulator is a local stand-in for Supabase Auth (GoTrue), so the
// whole sign-in flow runs on a laptop with no Supabase project, through the
// same client code (package supabase) that talks to hosted Supabase.
//
// It serves, relative to /auth/v1, the Admin users API, the password and
// refresh-token grants, /user, /logout, /health and the JWKS, and reproduces
// the behaviour clients depend on: lower-cased emails, bcrypt passwords,
// both error body shapes chosen by X-Supabase-Api-Version plus the
// X-Sb-Error-Code header, the gateway's apikey check, single-use refresh
// tokens with a 10 s reuse interval, and ES256 access tokens whose keys
// (kept in the data directory) survive restarts and can be rotated with
// RotateKeyInDir while a server runs.
//
// It is a development tool: no rate limits, no e-mail, no MFA, refresh
// tokens stored in clear. The composition root must refuse to mount it when
// GYMBRO_ENV=production; this package cannot know the environment and does
// not try.
package emulator

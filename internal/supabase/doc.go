// Package supabase talks to a Supabase project: the Auth client (the Admin
// users API, the password and refresh-token grants, /user, /logout) and the
// IdentityProvider built on it. The same client serves hosted Supabase in
// production and the local emulator (package emulator) in development, so
// both paths run the same code.
//
// Hosted Supabase serves Auth under <project URL>/auth/v1 through its API
// gateway, which wants an API key in the apikey header; server calls send
// the secret (service-role) key both there and as the bearer token, which
// works for legacy service_role JWTs and new sb_secret_ keys alike.
package supabase

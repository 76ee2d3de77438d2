// Error bodies the console understands: our API's RFC 9457 problem details and
// the two shapes Supabase Auth answers with (which one depends on the
// X-Supabase-Api-Version header), normalised into one ApiError.

/** Problem is an RFC 9457 problem body with the API's two extension members. */
export interface Problem {
  type?: string
  title?: string
  status?: number
  detail?: string
  code?: string
  request_id?: string
  [member: string]: unknown
}

/** ApiError is any non-2xx answer (or a network failure, status 0). */
export class ApiError extends Error {
  readonly status: number
  /** code is the stable snake_case code, or "http_<status>"/"network_error". */
  readonly code: string
  /** detail is the human text to show. */
  readonly detail: string
  readonly traceId: string | null
  readonly problem: Problem | null

  constructor(init: { status: number; code: string; detail: string; traceId?: string | null; problem?: Problem | null }) {
    super(`${init.code}: ${init.detail}`)
    this.name = 'ApiError'
    this.status = init.status
    this.code = init.code
    this.detail = init.detail
    this.traceId = init.traceId ?? null
    this.problem = init.problem ?? null
  }
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined
}

/**
 * errorFromBody builds an ApiError from a parsed error body of either the API
 * or Supabase Auth: problem details {code, detail, title}; Auth's old shape
 * {code: <status>, error_code, msg}; its 2024-01-01 shape {code, message};
 * and OAuth-style {error, error_description} that older GoTrue sends.
 */
export function errorFromBody(status: number, body: unknown, traceId: string | null = null): ApiError {
  const b = (body !== null && typeof body === 'object' ? body : {}) as Record<string, unknown>
  const code = str(b.error_code) ?? str(b.code) ?? str(b.error) ?? (status === 0 ? 'network_error' : `http_${status}`)
  const detail =
    str(b.detail) ?? str(b.msg) ?? str(b.message) ?? str(b.error_description) ?? str(b.title) ?? `HTTP ${status}`
  const isProblem = 'detail' in b || 'title' in b || 'type' in b
  return new ApiError({
    status,
    code,
    detail,
    traceId: traceId ?? str(b.request_id) ?? null,
    problem: isProblem ? (b as Problem) : null,
  })
}

/** Hint is what to do about a failure, keyed by its code. */
export const HINTS: Readonly<Record<string, string>> = {
  test_users_disabled: 'Test users are off on this server. Start it with GYMBRO_TEST_USERS_ENABLED=true.',
  service_role_key_missing:
    'Creating users needs the Supabase server key. Set SUPABASE_SERVICE_ROLE_KEY (a service_role JWT or an sb_secret_… key).',
  not_an_operator:
    'Your account may not create test users. Add your user id or email to GYMBRO_TEST_USERS_ADMINS and restart.',
  supabase_unavailable: 'The server could not reach Supabase Auth. Check SUPABASE_URL and the network, then retry.',
  supabase_rejected: 'Supabase Auth refused the request; its reason is in the detail. Check the project settings and keys.',
  rate_limited: 'Too many requests. Wait a moment (see Retry-After) and try again.',
  prefix_not_allowed: 'Test user names must start with an allowed prefix, such as gymbro-test.',
  too_many_running: 'This user already has generations running. Wait for one to finish or cancel it.',
  invalid_credentials: 'Wrong email or password.',
  token_missing: 'Sign in first: the call needs a bearer token.',
  token_expired: 'The access token expired. The console refreshes it automatically; if that failed, sign in again.',
  signature_invalid: 'The token signature does not verify. Sign in again to get a fresh token.',
  issuer_unknown: 'The token comes from an issuer this server does not trust. Check SUPABASE_URL / FIREBASE_PROJECT_ID.',
  audience_mismatch: 'The token was issued for another audience.',
  refresh_token_not_found: 'The refresh token is no longer valid. Sign in again.',
  session_expired: 'The session ended. Sign in again.',
  network_error: 'The request did not reach the server. Is `gymbro serve` running?',
}

/** hintFor returns the hint for code, or a generic one by status. */
export function hintFor(code: string, status: number): string {
  const hint = HINTS[code]
  if (hint) return hint
  if (status === 401) return 'The token was refused. Sign in again.'
  if (status === 403) return 'This account is not allowed to do that.'
  if (status >= 500) return 'The server failed; the trace id above finds it in the server log.'
  return ''
}

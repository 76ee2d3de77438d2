// Sessions from Supabase Auth's token endpoint (password and refresh_token
// grants), and a holder that refreshes them once on a 401 however many calls
// failed at the same moment. Refresh tokens rotate on use, so two parallel
// refreshes with the same token would race; the holder shares one in flight.

import { shallowRef, type ShallowRef } from 'vue'
import type { Http } from './http'
import { ApiError } from './problem'

/** Session is a signed-in user's tokens. */
export interface Session {
  accessToken: string
  refreshToken: string
  /** expiresAt is the access token's exp, in seconds since the epoch. */
  expiresAt: number | null
  userId: string | null
  email: string | null
}

/** GrantResponse is the body Supabase Auth's /token answers with. */
export interface GrantResponse {
  access_token: string
  token_type?: string
  expires_in?: number
  expires_at?: number
  refresh_token: string
  user?: { id?: string; email?: string }
}

/** sessionFromGrant turns a token-endpoint answer into a Session. */
export function sessionFromGrant(g: GrantResponse, nowMs = Date.now()): Session {
  if (!g || typeof g.access_token !== 'string' || typeof g.refresh_token !== 'string') {
    throw new ApiError({ status: 200, code: 'bad_response', detail: 'the token answer has no access_token/refresh_token' })
  }
  const expiresAt =
    typeof g.expires_at === 'number'
      ? g.expires_at
      : typeof g.expires_in === 'number'
        ? Math.floor(nowMs / 1000) + g.expires_in
        : null
  return {
    accessToken: g.access_token,
    refreshToken: g.refresh_token,
    expiresAt,
    userId: g.user?.id ?? null,
    email: g.user?.email ?? null,
  }
}

/** AuthClient speaks Supabase Auth's token endpoint (GoTrue), local emulator or hosted. */
export class AuthClient {
  constructor(
    private readonly http: Http,
    private readonly authUrl: string,
    private readonly anonKey: string,
  ) {}

  /** passwordGrant signs in with email and password. */
  async passwordGrant(email: string, password: string): Promise<Session> {
    const r = await this.http.json<GrantResponse>('POST', `${this.authUrl}/token?grant_type=password`, {
      headers: { apikey: this.anonKey },
      body: { email, password },
      note: 'password grant',
    })
    return sessionFromGrant(r.data)
  }

  /** refreshGrant trades a refresh token for a new session (the token rotates). */
  async refreshGrant(refreshToken: string): Promise<Session> {
    const r = await this.http.json<GrantResponse>('POST', `${this.authUrl}/token?grant_type=refresh_token`, {
      headers: { apikey: this.anonKey },
      body: { refresh_token: refreshToken },
      note: 'refresh grant',
    })
    return sessionFromGrant(r.data)
  }
}

/** SessionSource is what an authorised call needs: the current token and a way to renew it. */
export interface SessionSource {
  current(): Session | null
  refresh(): Promise<Session>
}

/** SessionHolder keeps one session, reactive for the UI, optionally in sessionStorage. */
export class SessionHolder implements SessionSource {
  /** state is the session for templates to watch. */
  readonly state: ShallowRef<Session | null>
  private inflight: Promise<Session> | null = null

  constructor(
    private readonly auth: () => AuthClient,
    private readonly storage: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null = null,
    private readonly key = '',
  ) {
    let initial: Session | null = null
    if (storage && key) {
      try {
        initial = JSON.parse(storage.getItem(key) ?? 'null') as Session | null
      } catch {
        initial = null
      }
    }
    this.state = shallowRef(initial)
  }

  current(): Session | null {
    return this.state.value
  }

  /** set replaces the session (null signs out). */
  set(s: Session | null): void {
    this.state.value = s
    if (this.storage && this.key) {
      if (s) this.storage.setItem(this.key, JSON.stringify(s))
      else this.storage.removeItem(this.key)
    }
  }

  /** refresh renews the session with its refresh token; concurrent callers share one request. */
  refresh(): Promise<Session> {
    if (this.inflight) return this.inflight
    const s = this.state.value
    if (!s) return Promise.reject(new ApiError({ status: 401, code: 'token_missing', detail: 'no session to refresh' }))
    this.inflight = this.auth()
      .refreshGrant(s.refreshToken)
      .then((next) => {
        this.set({ ...next, email: next.email ?? s.email, userId: next.userId ?? s.userId })
        return this.state.value as Session
      })
      .finally(() => {
        this.inflight = null
      })
    return this.inflight
  }
}

/**
 * authorized runs call with the current access token and, if the API answers
 * 401 (expired or refused token, RFC 6750 invalid_token), refreshes the
 * session once and runs it again.
 */
export async function authorized<T>(src: SessionSource, call: (accessToken: string) => Promise<T>): Promise<T> {
  const s = src.current()
  if (!s) throw new ApiError({ status: 401, code: 'token_missing', detail: 'sign in first' })
  try {
    return await call(s.accessToken)
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err
    const next = await src.refresh()
    return call(next.accessToken)
  }
}

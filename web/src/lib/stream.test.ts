import { describe, expect, it } from 'vitest'
import { Http, type LogEntry } from './http'
import { errorFromBody, hintFor } from './problem'
import { authorized, SessionHolder, type Session, AuthClient } from './session'
import { Follower, type StreamEvent } from './stream'

type Script = (req: Request) => Response | Promise<Response>

function sseBody(chunks: string[], then: 'close' | 'error' | 'hang', signal?: AbortSignal | null): ReadableStream<Uint8Array> {
  const enc = new TextEncoder()
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch))
      if (then === 'close') c.close()
      if (then === 'hang') signal?.addEventListener('abort', () => c.error(new DOMException('aborted', 'AbortError')))
    },
    // pull runs once the queued chunks are read, so the drop comes after them.
    pull(c) {
      if (then === 'error') c.error(new TypeError('network error'))
    },
  })
}

function sse(chunks: string[], then: 'close' | 'error' | 'hang' = 'close', signal?: AbortSignal | null) {
  return new Response(sseBody(chunks, then, signal), { headers: { 'Content-Type': 'text/event-stream', 'X-Trace-Id': 'tr' } })
}

function problem(status: number, code: string) {
  return new Response(JSON.stringify({ type: 'about:blank', title: 'Unauthorized', status, detail: `because ${code}`, code, request_id: 'r1' }), {
    status,
    headers: { 'Content-Type': 'application/problem+json', 'X-Trace-Id': 'r1', 'WWW-Authenticate': 'Bearer error="invalid_token"' },
  })
}

function ev(id: number, type: string, extra: Record<string, unknown> = {}) {
  return `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify({ message_id: 'm', seq: id, type, ...extra })}\n\n`
}

function harness(scripts: Script[]) {
  const requests: Request[] = []
  const log: LogEntry[] = []
  const fetchFn: typeof fetch = async (input, init) => {
    const req = new Request(new URL(input as string, 'http://x'), init)
    requests.push(req)
    const s = scripts.shift()
    if (!s) throw new Error('unexpected request ' + req.url)
    if (init?.signal?.aborted) throw new DOMException('aborted', 'AbortError')
    return s(req)
  }
  const http = new Http((e) => log.push(e), fetchFn)
  const session: Session = { accessToken: 'tok-1', refreshToken: 'rt-1', expiresAt: null, userId: 'u', email: 'e' }
  const holder = new SessionHolder(() => new AuthClient(http, 'http://x/auth/v1', 'anon'))
  holder.set(session)
  return { requests, log, http, holder }
}

const noSleep: (ms: number) => Promise<void> = async () => {}

describe('Follower', () => {
  it('reads events to the terminal one, counts heartbeats and takes retry:', async () => {
    const h = harness([() => sse(['retry: 1500\n\n: heartbeat\n\n', ev(1, 'queued'), ev(2, 'working'), ev(3, 'content_delta', { delta: 'Hi' }), ev(4, 'completed', { content: 'Hi' })], 'hang')])
    const seen: StreamEvent[] = []
    let beats = 0
    const f = new Follower({ url: '/api/v1/messages/m/events', http: h.http, session: h.holder, hooks: { event: (e) => seen.push(e), heartbeat: () => beats++ }, sleep: noSleep })
    const r = await f.run()
    expect(r.terminal?.event).toBe('completed')
    expect(seen.map((e) => e.id)).toEqual(['1', '2', '3', '4'])
    expect(seen[2]?.payload?.delta).toBe('Hi')
    expect(beats).toBe(1)
    expect(f.reconnectDelay).toBe(1500)
    expect(h.requests[0]?.headers.get('Authorization')).toBe('Bearer tok-1')
    expect(h.requests[0]?.headers.get('Accept')).toBe('text/event-stream')
    expect(h.requests[0]?.headers.get('Last-Event-ID')).toBeNull()
    expect(h.log[0]?.traceId).toBe('tr')
  })

  it('resumes after a network drop with Last-Event-ID and the server retry delay', async () => {
    const h = harness([() => sse(['retry: 1234\n\n', ev(1, 'queued'), ev(2, 'working')], 'error'), () => sse([ev(3, 'completed', { content: 'x' })])])
    const delays: number[] = []
    const lines: string[] = []
    const f = new Follower({ url: '/e', http: h.http, session: h.holder, hooks: { log: (l) => lines.push(l) }, sleep: async (ms) => void delays.push(ms) })
    const r = await f.run()
    expect(r.terminal?.id).toBe('3')
    expect(delays).toEqual([1234])
    expect(h.requests[1]?.headers.get('Last-Event-ID')).toBe('2')
    expect(lines).toContain('resumed after id 2')
  })

  it('on a 401 at reconnect refreshes the session once and resumes with the new token', async () => {
    let dropNow: () => void = () => {}
    const h = harness([
      (req) => {
        const res = sse([ev(1, 'queued'), ev(2, 'content_delta', { delta: 'a' })], 'hang', req.signal)
        queueMicrotask(() => dropNow())
        return res
      },
      () => problem(401, 'signature_invalid'),
      () => new Response(JSON.stringify({ access_token: 'tok-2', refresh_token: 'rt-2', expires_at: 99, token_type: 'bearer' }), { headers: { 'X-Trace-Id': 'auth' } }),
      () => sse([ev(3, 'content_delta', { delta: 'b' }), ev(4, 'completed', { content: 'ab' })]),
    ])
    const lines: string[] = []
    const f = new Follower({ url: '/e', http: h.http, session: h.holder, hooks: { log: (l) => lines.push(l) }, sleep: noSleep })
    dropNow = () => setTimeout(() => f.drop(), 0)
    const r = await f.run()
    expect(r.terminal?.event).toBe('completed')
    expect(h.requests.map((q) => new URL(q.url, 'http://x').pathname)).toEqual(['/e', '/e', '/auth/v1/token', '/e'])
    expect(h.requests[1]?.headers.get('Last-Event-ID')).toBe('2')
    expect(await h.requests[2]?.json()).toEqual({ refresh_token: 'rt-1' })
    expect(h.requests[3]?.headers.get('Authorization')).toBe('Bearer tok-2')
    expect(h.requests[3]?.headers.get('Last-Event-ID')).toBe('2')
    expect(h.holder.current()?.refreshToken).toBe('rt-2')
    expect(lines.some((l) => l.startsWith('401 signature_invalid on reconnect'))).toBe(true)
    expect(lines).toContain('resumed after id 2')
  })

  it('gives up on a second 401 after a refresh and on a 404', async () => {
    const h = harness([
      () => problem(401, 'token_expired'),
      () => new Response(JSON.stringify({ access_token: 't2', refresh_token: 'r2' })),
      () => problem(401, 'token_expired'),
    ])
    const r = await new Follower({ url: '/e', http: h.http, session: h.holder, sleep: noSleep }).run()
    expect(r.error?.code).toBe('token_expired')
    const h2 = harness([() => problem(404, 'not_found')])
    const r2 = await new Follower({ url: '/e', http: h2.http, session: h2.holder, sleep: noSleep }).run()
    expect(r2.error?.status).toBe(404)
  })

  it('stops after maxFailures network errors', async () => {
    const fail: Script = () => {
      throw new TypeError('connection refused')
    }
    const h = harness([fail, fail, fail])
    const delays: number[] = []
    const r = await new Follower({ url: '/e', http: h.http, session: h.holder, retryMs: 100, maxFailures: 2, sleep: async (ms) => void delays.push(ms) }).run()
    expect(r.error?.code).toBe('network_error')
    expect(delays).toEqual([100, 200])
  })
})

describe('authorized', () => {
  it('refreshes once on 401 and retries with the new token; concurrent refreshes share one grant', async () => {
    const h = harness([
      () => problem(401, 'token_expired'),
      () => problem(401, 'token_expired'),
      () => new Response(JSON.stringify({ access_token: 'tok-2', refresh_token: 'rt-2' })),
      () => new Response('{"ok":1}'),
      () => new Response('{"ok":2}'),
    ])
    const call = (t: string) => h.http.json<{ ok: number }>('GET', '/api/v1/me', { headers: { Authorization: `Bearer ${t}` } })
    const [a, b] = await Promise.all([authorized(h.holder, call), authorized(h.holder, call)])
    expect([a.data.ok, b.data.ok].sort()).toEqual([1, 2])
    expect(h.requests.filter((r) => r.url.includes('/token')).length).toBe(1)
  })
})

describe('errors', () => {
  it('reads problem details and both Supabase Auth error shapes', () => {
    expect(errorFromBody(403, { title: 'Forbidden', detail: 'no', code: 'not_an_operator', request_id: 'r' })).toMatchObject({ code: 'not_an_operator', detail: 'no', traceId: 'r' })
    expect(errorFromBody(400, { code: 400, error_code: 'invalid_credentials', msg: 'Invalid login credentials' })).toMatchObject({ code: 'invalid_credentials', detail: 'Invalid login credentials', problem: null })
    expect(errorFromBody(400, { code: 'invalid_credentials', message: 'bad' })).toMatchObject({ code: 'invalid_credentials', detail: 'bad' })
    expect(errorFromBody(502, null)).toMatchObject({ code: 'http_502', detail: 'HTTP 502' })
    expect(hintFor('test_users_disabled', 403)).toMatch(/GYMBRO_TEST_USERS_ENABLED=true/)
    expect(hintFor('service_role_key_missing', 503)).toMatch(/SUPABASE_SERVICE_ROLE_KEY/)
    expect(hintFor('not_an_operator', 403)).toMatch(/GYMBRO_TEST_USERS_ADMINS/)
  })
})

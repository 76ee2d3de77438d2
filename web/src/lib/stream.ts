// Follows one message's SSE log to its terminal event, surviving drops: it
// reconnects with Last-Event-ID (WHATWG HTML §9.2.3), waits the server's
// retry: delay between attempts (doubling on repeated failures), and on a 401
// refreshes the session once before trying again. The API guarantees that a
// resume with Last-Event-ID: n replays exactly the events after n.

import type { Http } from './http'
import { ApiError } from './problem'
import type { SessionSource } from './session'
import { SSEParser, type SSEEvent } from './sse'

/** TERMINAL_EVENTS end a message's stream. */
export const TERMINAL_EVENTS: ReadonlySet<string> = new Set(['completed', 'error', 'canceled'])

/** StreamEvent is an SSE event whose data was decoded as JSON. */
export interface StreamEvent extends SSEEvent {
  /** payload is the decoded data; null when it is not a JSON object. */
  payload: Record<string, unknown> | null
}

/** StreamState is where the follower is. */
export type StreamState = 'connecting' | 'open' | 'waiting' | 'refreshing' | 'done' | 'failed' | 'closed'

/** StreamHooks receive what happens, in order. */
export interface StreamHooks {
  event?(ev: StreamEvent): void
  heartbeat?(text: string): void
  log?(line: string, level: 'info' | 'warn' | 'error'): void
  state?(s: StreamState): void
}

/** StreamOptions configure a Follower. */
export interface StreamOptions {
  url: string
  http: Http
  session: SessionSource
  hooks?: StreamHooks
  /** retryMs is the reconnect delay until the server sends retry:. */
  retryMs?: number
  /** maxDelayMs caps the doubled backoff. */
  maxDelayMs?: number
  /** maxFailures is how many failed attempts in a row end the follow. */
  maxFailures?: number
  /** lastEventId resumes an earlier follow. */
  lastEventId?: string
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
}

/** StreamResult is how a follow ended. */
export interface StreamResult {
  terminal: StreamEvent | null
  error: ApiError | null
}

const DROP = 'simulated-drop'

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done)
  })
}

/** Follower streams one message's events; call run() once. */
export class Follower {
  private retryMs: number
  private lastId: string
  private conn: AbortController | null = null
  private readonly stop = new AbortController()
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>

  constructor(private readonly opts: StreamOptions) {
    this.retryMs = opts.retryMs ?? 3000
    this.lastId = opts.lastEventId ?? ''
    this.sleep = opts.sleep ?? abortableSleep
  }

  /** lastEventId is the id of the last event seen. */
  get lastEventId(): string {
    return this.lastId
  }

  /** reconnectDelay is the current retry: value in ms. */
  get reconnectDelay(): number {
    return this.retryMs
  }

  /** drop cuts the current connection as a network failure would; run() resumes. */
  drop(): void {
    this.conn?.abort(DROP)
  }

  /** close ends the follow for good. */
  close(): void {
    this.stop.abort()
    this.conn?.abort('closed')
  }

  private log(line: string, level: 'info' | 'warn' | 'error' = 'info') {
    this.opts.hooks?.log?.(line, level)
  }

  private setState(s: StreamState) {
    this.opts.hooks?.state?.(s)
  }

  private backoff(failures: number): number {
    return Math.min(this.retryMs * 2 ** Math.max(0, failures - 1), this.opts.maxDelayMs ?? 30000)
  }

  /** run follows the stream until its terminal event, a permanent failure or close(). */
  async run(): Promise<StreamResult> {
    const { url, http, session } = this.opts
    const maxFailures = this.opts.maxFailures ?? 8
    let failures = 0
    let connects = 0
    let refreshed = false
    while (!this.stop.signal.aborted) {
      const token = session.current()?.accessToken
      if (!token) return this.fail(new ApiError({ status: 401, code: 'token_missing', detail: 'no active session' }))
      const conn = new AbortController()
      this.conn = conn
      const headers: Record<string, string> = { Accept: 'text/event-stream', Authorization: `Bearer ${token}` }
      if (this.lastId) headers['Last-Event-ID'] = this.lastId
      this.setState('connecting')
      let res: Response
      try {
        res = await http.open('GET', url, {
          headers,
          signal: conn.signal,
          note: this.lastId ? `resume, Last-Event-ID: ${this.lastId}` : connects > 0 ? 'reconnect' : 'stream',
        })
      } catch (err) {
        if (this.stop.signal.aborted) break
        const e = err instanceof ApiError ? err : new ApiError({ status: 0, code: 'network_error', detail: String(err) })
        if (e.status === 401) {
          if (refreshed) return this.fail(e, `401 ${e.code} again after a refresh; giving up`)
          this.log(`401 ${e.code} on ${connects > 0 ? 'reconnect' : 'connect'}: refreshing the session`, 'warn')
          this.setState('refreshing')
          try {
            await session.refresh()
          } catch (rerr) {
            const re = rerr instanceof ApiError ? rerr : new ApiError({ status: 0, code: 'refresh_failed', detail: String(rerr) })
            return this.fail(re, `session refresh failed: ${re.code}`)
          }
          refreshed = true
          this.log('session refreshed with the refresh token; retrying')
          continue
        }
        if (e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) {
          return this.fail(e, `stream refused: ${e.status} ${e.code}`)
        }
        failures++
        if (failures > maxFailures) return this.fail(e, `gave up after ${maxFailures} failed attempts`)
        const delay = this.backoff(failures)
        this.log(`connect failed (${e.code}); retrying in ${delay} ms`, 'warn')
        this.setState('waiting')
        await this.sleep(delay, this.stop.signal)
        continue
      }
      refreshed = false
      failures = 0
      if (connects > 0) {
        this.log(this.lastId ? `resumed after id ${this.lastId}` : 'reconnected from the start')
      }
      connects++
      this.setState('open')
      const end = await this.read(res, conn)
      if (end.terminal) {
        this.setState('done')
        return { terminal: end.terminal, error: null }
      }
      if (this.stop.signal.aborted) break
      failures++
      if (failures > maxFailures) {
        return this.fail(new ApiError({ status: 0, code: 'network_error', detail: end.reason }), 'too many drops')
      }
      const delay = this.backoff(failures)
      this.log(
        `stream dropped (${end.reason}) after id ${this.lastId || 'none'}; reconnecting in ${delay} ms` +
          (this.lastId ? ` with Last-Event-ID: ${this.lastId}` : ''),
        'warn',
      )
      this.setState('waiting')
      await this.sleep(delay, this.stop.signal)
    }
    this.setState('closed')
    return { terminal: null, error: null }
  }

  private fail(e: ApiError, line?: string): StreamResult {
    this.log(line ?? `${e.code}: ${e.detail}`, 'error')
    this.setState('failed')
    return { terminal: null, error: e }
  }

  private async read(res: Response, conn: AbortController): Promise<{ terminal: StreamEvent | null; reason: string }> {
    if (!res.body) return { terminal: null, reason: 'no body' }
    const reader = res.body.getReader()
    const decoder = new TextDecoder()
    const parser = new SSEParser(this.lastId)
    const hooks = this.opts.hooks
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return { terminal: null, reason: 'server closed the stream' }
        for (const item of parser.feed(decoder.decode(value, { stream: true }))) {
          if (item.kind === 'comment') {
            hooks?.heartbeat?.(item.text)
          } else if (item.kind === 'retry') {
            this.retryMs = item.ms
          } else {
            this.lastId = item.id
            const ev: StreamEvent = { ...item, payload: parsePayload(item.data) }
            hooks?.event?.(ev)
            if (TERMINAL_EVENTS.has(item.event)) {
              conn.abort('terminal')
              return { terminal: ev, reason: 'terminal' }
            }
          }
        }
      }
    } catch (err) {
      if (conn.signal.reason === DROP) return { terminal: null, reason: 'connection dropped on purpose' }
      return { terminal: null, reason: `network error: ${(err as Error)?.message ?? String(err)}` }
    } finally {
      reader.releaseLock?.()
    }
  }
}

function parsePayload(data: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(data)
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null
  } catch {
    return null
  }
}

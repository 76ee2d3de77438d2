// One place where the console talks HTTP, so every call lands in the request
// log with its X-Trace-Id and every failure becomes an ApiError. Headers are
// never logged: they carry bearer tokens and the anon key.

import { ApiError, errorFromBody } from './problem'

/** LogEntry is one line of the request log panel. */
export interface LogEntry {
  seq: number
  /** at is the wall-clock time the request started (ms since epoch). */
  at: number
  method: string
  url: string
  /** status is the HTTP status, 0 for a request that got no answer. */
  status: number
  traceId: string | null
  /** ms is the time to the response headers. */
  ms: number
  code?: string
  note?: string
}

/** RequestOptions are the parts of a request the console varies. */
export interface RequestOptions {
  headers?: Record<string, string>
  body?: unknown
  signal?: AbortSignal
  /** note is shown in the log beside the call, e.g. "stream resume". */
  note?: string
}

/** JsonResult is a decoded 2xx answer. */
export interface JsonResult<T> {
  data: T
  status: number
  traceId: string | null
}

/** Http performs requests and reports each one to log. */
export class Http {
  private seq = 0

  constructor(
    private readonly log: (entry: LogEntry) => void,
    private readonly fetchFn: typeof fetch = (...args) => globalThis.fetch(...args),
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** open sends the request and returns the 2xx response unread; anything else throws ApiError. */
  async open(method: string, url: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers }
    let body: string | undefined
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json'
      body = JSON.stringify(opts.body)
    }
    const seq = ++this.seq
    const at = Date.now()
    const t0 = this.now()
    let res: Response
    try {
      res = await this.fetchFn(url, { method, headers, body, signal: opts.signal, cache: 'no-store' })
    } catch (err) {
      const aborted = opts.signal?.aborted ?? false
      const code = aborted ? 'aborted' : 'network_error'
      this.log({ seq, at, method, url, status: 0, traceId: null, ms: Math.round(this.now() - t0), code, note: opts.note })
      throw new ApiError({ status: 0, code, detail: aborted ? 'request aborted' : String((err as Error)?.message ?? err) })
    }
    const traceId = res.headers.get('X-Trace-Id')
    const ms = Math.round(this.now() - t0)
    if (res.ok) {
      this.log({ seq, at, method, url, status: res.status, traceId, ms, note: opts.note })
      return res
    }
    let parsed: unknown = null
    try {
      const text = await res.text()
      parsed = text ? JSON.parse(text) : null
    } catch {
      parsed = null
    }
    const err = errorFromBody(res.status, parsed, traceId)
    this.log({ seq, at, method, url, status: res.status, traceId, ms, code: err.code, note: opts.note })
    throw err
  }

  /** json sends the request and decodes a JSON answer. */
  async json<T>(method: string, url: string, opts: RequestOptions = {}): Promise<JsonResult<T>> {
    const res = await this.open(method, url, { ...opts, headers: { Accept: 'application/json', ...opts.headers } })
    const text = await res.text()
    let data: T
    try {
      data = (text ? JSON.parse(text) : null) as T
    } catch {
      throw new ApiError({ status: res.status, code: 'bad_response', detail: 'the answer is not JSON', traceId: res.headers.get('X-Trace-Id') })
    }
    return { data, status: res.status, traceId: res.headers.get('X-Trace-Id') }
  }
}

// An incremental parser for the text/event-stream format, as the WHATWG HTML
// standard defines it (§9.2 "Server-sent events", "Interpreting an event
// stream"). The console reads SSE with fetch() rather than EventSource because
// EventSource cannot send an Authorization header, and putting a bearer token
// in a URL leaks it into logs and Referer headers (RFC 6750 §2.3, §5.3).

/** SSEEvent is one dispatched event. */
export interface SSEEvent {
  kind: 'event'
  /** id is the last event id in force when the event was dispatched ('' if none). */
  id: string
  /** event is the event type; "message" when the stream named none. */
  event: string
  /** data is every data: line of the event joined with "\n". */
  data: string
}

/** SSEComment is a line starting with ':' — a heartbeat or a keep-alive. */
export interface SSEComment {
  kind: 'comment'
  text: string
}

/** SSERetry is a valid retry: field, the server's reconnection delay in ms. */
export interface SSERetry {
  kind: 'retry'
  ms: number
}

/** SSEItem is anything the parser reports, in stream order. */
export type SSEItem = SSEEvent | SSEComment | SSERetry

/**
 * SSEParser turns chunks of an event stream into events, comments and retry
 * hints. Feed it text as it arrives (split anywhere, even between CR and LF);
 * it keeps partial lines and events between calls. Use one parser per
 * connection: the spec resets the event buffers on reconnect, but the last
 * event id survives, so pass it to the next parser's constructor.
 */
export class SSEParser {
  private buf = ''
  private data: string[] = []
  private hasData = false
  private eventType = ''
  private lastId: string
  private started = false
  private pendingCR = false

  constructor(lastEventId = '') {
    this.lastId = lastEventId
  }

  /** lastEventId is the id the next reconnect sends as Last-Event-ID. */
  get lastEventId(): string {
    return this.lastId
  }

  /** feed parses chunk and returns the items it completed. */
  feed(chunk: string): SSEItem[] {
    const out: SSEItem[] = []
    let text = chunk
    if (!this.started && text.length > 0) {
      this.started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1) // one leading BOM is ignored
    }
    if (this.pendingCR) {
      // A CR ended the last chunk: an LF opening this one belongs to it.
      this.pendingCR = false
      if (text.startsWith('\n')) text = text.slice(1)
    }
    this.buf += text
    let start = 0
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      this.line(this.buf.slice(start, i), out)
      if (c === 13) {
        if (i + 1 < this.buf.length) {
          if (this.buf.charCodeAt(i + 1) === 10) i++
        } else {
          this.pendingCR = true
        }
      }
      start = i + 1
    }
    this.buf = this.buf.slice(start)
    return out
  }

  /**
   * end reports the end of the stream. Per the spec an event not followed by
   * a blank line is discarded, so end returns nothing and only resets.
   */
  end(): void {
    this.buf = ''
    this.data = []
    this.hasData = false
    this.eventType = ''
  }

  private line(line: string, out: SSEItem[]): void {
    if (line === '') {
      this.dispatch(out)
      return
    }
    if (line.startsWith(':')) {
      out.push({ kind: 'comment', text: line.slice(1).replace(/^ /, '') })
      return
    }
    const colon = line.indexOf(':')
    let field = line
    let value = ''
    if (colon >= 0) {
      field = line.slice(0, colon)
      value = line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
    }
    switch (field) {
      case 'event':
        this.eventType = value
        break
      case 'data':
        this.data.push(value)
        this.hasData = true
        break
      case 'id':
        // An id containing NUL is ignored so it cannot truncate the header it is echoed in.
        if (!value.includes('\0')) this.lastId = value
        break
      case 'retry':
        if (/^[0-9]+$/.test(value)) out.push({ kind: 'retry', ms: Number(value) })
        break
      default:
      // Unknown fields are ignored, as the spec requires.
    }
  }

  private dispatch(out: SSEItem[]): void {
    if (this.hasData) {
      out.push({ kind: 'event', id: this.lastId, event: this.eventType || 'message', data: this.data.join('\n') })
    }
    this.data = []
    this.hasData = false
    this.eventType = ''
  }
}

// useMessageStream is the JWT page's message half: post a message, follow
// its SSE stream (refreshing the token and resuming with Last-Event-ID after
// a 401 or a drop), and keep the events, the reply and a log for display.
import { computed, onUnmounted, ref, shallowRef } from 'vue'
import { useConsole } from '../context'
import { tamperSignature } from '../lib/jwt'
import { ApiError } from '../lib/problem'
import { authorized } from '../lib/session'
import { Follower, type StreamEvent, type StreamState } from '../lib/stream'

/** Accepted is the 202 answer of POST /api/v1/messages. */
export interface Accepted {
  message_id: string
  conversation_id: string
  status: string
  events_url: string
}

/** Row is one event as the events table shows it. */
export interface Row {
  id: string
  event: string
  ms: number
  summary: string
  flag: string
}

export interface LogLine {
  ms: number
  text: string
  level: 'info' | 'warn' | 'error'
}

/** summarize renders an event's payload in one line. */
export function summarize(ev: StreamEvent): string {
  const p = ev.payload
  if (!p) return ev.data.slice(0, 120)
  switch (ev.event) {
    case 'content_delta':
      return JSON.stringify(p.delta ?? '') + (typeof p.model === 'string' && p.model ? ` · answered by ${p.model}` : '')
    case 'completed': {
      const u = p.usage as Record<string, unknown> | undefined
      const tokens = u ? ` · tokens ${String(u.prompt_tokens ?? '?')}+${String(u.completion_tokens ?? '?')}` : ''
      return `finish_reason=${String(p.finish_reason ?? '?')} · model=${String(p.model ?? '?')}${tokens} · ${String(p.content ?? '').length} chars`
    }
    case 'error':
      return `${String(p.code ?? '')}: ${String(p.message ?? '')}${p.retryable ? ' (retryable)' : ''}`
    case 'queued':
      return `conversation ${String(p.conversation_id ?? '')}`
    default:
      return p.status ? `status=${String(p.status)}` : ''
  }
}

/**
 * answeringModel returns which model answers after ev: the first delta
 * names it when the server routes among several models (a fallback may
 * have happened), and completed always does.
 */
export function answeringModel(current: string, ev: StreamEvent): string {
  const m = ev.payload?.model
  if (typeof m !== 'string' || !m) return current
  return ev.event === 'content_delta' || ev.event === 'completed' ? m : current
}

/** Usage is the body of GET /api/v1/me/usage. */
export interface Usage {
  day: string
  tokens_used: number
  tokens_limit: number | null
  resets_at: string
}

/** usageText renders the caller's tokens today against the daily budget. */
export function usageText(u: Usage | null): string {
  if (!u) return ''
  const used = u.tokens_used.toLocaleString('en-US')
  if (u.tokens_limit === null) return `${used} tokens today (no daily budget)`
  const left = Math.max(0, u.tokens_limit - u.tokens_used)
  const note = left === 0 ? ' · budget used: posts answer 429 budget_exhausted until midnight UTC' : ''
  return `${used} of ${u.tokens_limit.toLocaleString('en-US')} tokens today${note}`
}

/** gapFlag says what is wrong with an event id after prev, or ''. */
export function gapFlag(prev: string | undefined, id: string): string {
  const got = Number(id)
  const want = prev ? Number(prev) + 1 : 1
  if (!Number.isInteger(got)) return 'id is not a number'
  if (prev && got <= Number(prev)) return `duplicate or out of order (after ${prev})`
  return got !== want ? `gap: expected ${want}` : ''
}

export function useMessageStream() {
  const ctx = useConsole()
  const text = ref('How should I warm up before squats? [demo:slow]')
  const conversationId = ref('')
  const sending = ref(false)
  const sendError = shallowRef<unknown>(null)
  const accepted = shallowRef<Accepted | null>(null)
  const rows = shallowRef<Row[]>([])
  const reply = ref('')
  const final = shallowRef<Record<string, unknown> | null>(null)
  const model = ref('')
  const usage = shallowRef<Usage | null>(null)
  const terminal = shallowRef<StreamEvent | null>(null)
  const heartbeats = ref(0)
  const lines = shallowRef<LogLine[]>([])
  const state = ref<StreamState | 'idle'>('idle')
  const streamError = shallowRef<unknown>(null)
  // follower is the live stream; a shallowRef so the buttons follow it.
  const follower = shallowRef<Follower | null>(null)
  let sentAt = 0

  const streaming = computed(() => follower.value !== null && !['idle', 'done', 'failed', 'closed'].includes(state.value))
  const deltas = computed(() => rows.value.filter((r) => r.event === 'content_delta').length)
  onUnmounted(() => follower.value?.close())

  const elapsed = () => Math.round(performance.now() - sentAt)
  function log(t: string, level: LogLine['level'] = 'info') {
    lines.value = [...lines.value, { ms: elapsed(), text: t, level }]
  }

  function onEvent(ev: StreamEvent) {
    const flag = gapFlag(rows.value[rows.value.length - 1]?.id, ev.id)
    if (flag) log(`event id ${ev.id}: ${flag}`, 'error')
    rows.value = [...rows.value, { id: ev.id, event: ev.event, ms: elapsed(), summary: summarize(ev), flag }]
    if (ev.event === 'content_delta' && typeof ev.payload?.delta === 'string') reply.value += ev.payload.delta
    if (ev.event === 'completed') final.value = ev.payload
    model.value = answeringModel(model.value, ev)
    if (['completed', 'error', 'canceled'].includes(ev.event)) {
      terminal.value = ev
      void loadUsage()
    }
  }

  // loadUsage reads the caller's tokens today; the page works without it.
  async function loadUsage() {
    try {
      const r = await authorized(ctx.active, (token) =>
        ctx.http.json<Usage>('GET', '/api/v1/me/usage', { headers: { Authorization: `Bearer ${token}` } }),
      )
      usage.value = r.data
    } catch (e) {
      log(`usage: ${e instanceof Error ? e.message : String(e)}`, 'warn')
    }
  }

  function reset() {
    follower.value?.close()
    follower.value = null
    rows.value = []
    lines.value = []
    reply.value = model.value = ''
    final.value = terminal.value = accepted.value = null
    sendError.value = streamError.value = null
    heartbeats.value = 0
    state.value = 'idle'
    sentAt = performance.now()
  }

  async function post(): Promise<Accepted> {
    const body: Record<string, string> = { text: text.value }
    if (conversationId.value.trim()) body.conversation_id = conversationId.value.trim()
    const r = await authorized(ctx.active, (token) =>
      ctx.http.json<Accepted>('POST', '/api/v1/messages', { headers: { Authorization: `Bearer ${token}` }, body }),
    )
    accepted.value = r.data
    conversationId.value = r.data.conversation_id
    log(`202 accepted message ${r.data.message_id}; streaming ${r.data.events_url}`)
    return r.data
  }

  async function follow(a: Accepted) {
    const f = new Follower({
      url: a.events_url,
      http: ctx.http,
      session: ctx.active,
      hooks: { event: onEvent, heartbeat: () => heartbeats.value++, log, state: (s) => (state.value = s) },
    })
    follower.value = f
    sending.value = false
    const result = await f.run()
    if (follower.value !== f) return
    if (result.error) {
      streamError.value = result.error
      if (result.error instanceof ApiError && result.error.code === 'budget_exhausted') void loadUsage()
    }
    else if (result.terminal) log(`stream ended after terminal event ${result.terminal.event} (id ${result.terminal.id})`)
  }

  async function send() {
    sending.value = true
    reset()
    try {
      await follow(await post())
    } catch (e) {
      sendError.value = e
      if (e instanceof ApiError && e.code === 'budget_exhausted') void loadUsage()
    } finally {
      sending.value = false
    }
  }

  function simulate() {
    const s = ctx.active.current()
    const f = follower.value
    if (!s || !f) return
    ctx.active.set({ ...s, accessToken: tamperSignature(s.accessToken) })
    log(`simulated: access token signature tampered, connection dropped after id ${f.lastEventId || 'none'}`, 'warn')
    f.drop()
  }

  function stop() {
    follower.value?.close()
    log('stream closed by you')
  }

  return {
    text, conversationId, sending, sendError, accepted, rows, reply, final, model, usage, terminal, heartbeats, lines, state,
    streamError, streaming, deltas, send, simulate, stop, loadUsage,
  }
}

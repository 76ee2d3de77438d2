// The console's shared state, created once in main.ts and provided to every
// view: the HTTP client with its request log, the server's config, and the
// two sessions — the operator who may create test users, and the "active"
// user whose token drives messages and streams.

import { inject, shallowRef, type InjectionKey, type ShallowRef } from 'vue'
import { isConsoleConfig, resolveAuthUrl, type ConsoleConfig } from './lib/config'
import { Http, type LogEntry } from './lib/http'
import { ApiError } from './lib/problem'
import { AuthClient, SessionHolder, type Session } from './lib/session'

/** MAX_LOG bounds the request log so a long session does not grow without end. */
const MAX_LOG = 300

/** ConsoleContext is the state every view shares. */
export interface ConsoleContext {
  http: Http
  requests: ShallowRef<LogEntry[]>
  config: ShallowRef<ConsoleConfig | null>
  loadConfig(): Promise<ConsoleConfig>
  auth(): AuthClient
  operator: SessionHolder
  active: SessionHolder
  /** activeLabel says whose token is active, e.g. "test user gymbro-test-01". */
  activeLabel: ShallowRef<string>
  /** setActive makes s the active session (null clears it). */
  setActive(s: Session | null, label: string): void
}

/** consoleKey injects the ConsoleContext. */
export const consoleKey: InjectionKey<ConsoleContext> = Symbol('console')

/** createConsole builds the context; storage keeps the operator session for the tab. */
export function createConsole(storage: Storage | null, origin: string): ConsoleContext {
  const requests = shallowRef<LogEntry[]>([])
  const http = new Http((e) => {
    requests.value = [e, ...requests.value].slice(0, MAX_LOG)
  })
  const config = shallowRef<ConsoleConfig | null>(null)
  let loading: Promise<ConsoleConfig> | null = null
  let client: AuthClient | null = null

  function auth(): AuthClient {
    const c = config.value
    if (!c) throw new ApiError({ status: 0, code: 'config_missing', detail: 'the console config is not loaded yet' })
    client ??= new AuthClient(http, resolveAuthUrl(c.auth_url, origin, c.emulator), c.anon_key)
    return client
  }

  function loadConfig(): Promise<ConsoleConfig> {
    loading ??= http
      .json<unknown>('GET', '/api/v1/console/config')
      .then((r) => {
        if (!isConsoleConfig(r.data)) {
          throw new ApiError({ status: r.status, code: 'bad_response', detail: 'the console config lacks auth_url/anon_key/env' })
        }
        config.value = r.data
        return r.data
      })
      .catch((err: unknown) => {
        loading = null
        throw err
      })
    return loading
  }

  const activeLabel = shallowRef(storage?.getItem('gymbro.active.label') ?? '')
  const active = new SessionHolder(auth, storage, 'gymbro.active')
  function setActive(s: Session | null, label: string) {
    active.set(s)
    activeLabel.value = s ? label : ''
    if (s) storage?.setItem('gymbro.active.label', label)
    else storage?.removeItem('gymbro.active.label')
  }
  return {
    http,
    requests,
    config,
    loadConfig,
    auth,
    operator: new SessionHolder(auth, storage, 'gymbro.operator'),
    active,
    activeLabel,
    setActive,
  }
}

/** useConsole returns the provided ConsoleContext. */
export function useConsole(): ConsoleContext {
  const c = inject(consoleKey)
  if (!c) throw new Error('useConsole outside the console app')
  return c
}

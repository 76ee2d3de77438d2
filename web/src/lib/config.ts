// The console's view of GET /api/v1/console/config.

/** ConsoleConfig is what the server tells the console about itself. */
export interface ConsoleConfig {
  env: 'development' | 'production' | string
  /** auth_url is Supabase Auth's base, e.g. http://127.0.0.1:8080/auth/v1. */
  auth_url: string
  /** anon_key is the public (publishable) key sent as apikey to Auth. */
  anon_key: string
  emulator: boolean
  test_users_enabled: boolean
  dev_operator: { email: string; password: string } | null
  version: string
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1'])

/**
 * resolveAuthUrl makes auth_url usable from the page at pageOrigin. A relative
 * URL is resolved against the page. When the server runs its own Auth
 * emulator on a loopback address and the page is also on loopback, the page's
 * origin is used instead: the emulator is served by the same binary (or by
 * the Vite dev proxy), and calling 127.0.0.1 from a page opened on localhost
 * would be a cross-origin request the emulator need not allow (CORS).
 */
export function resolveAuthUrl(authUrl: string, pageOrigin: string, emulator: boolean): string {
  const page = new URL(pageOrigin)
  const u = new URL(authUrl, page)
  if (emulator && u.origin !== page.origin && LOOPBACK.has(u.hostname) && LOOPBACK.has(page.hostname)) {
    return page.origin + u.pathname.replace(/\/+$/, '')
  }
  return u.href.replace(/\/+$/, '')
}

/** isConsoleConfig checks the fields the console cannot work without. */
export function isConsoleConfig(v: unknown): v is ConsoleConfig {
  if (v === null || typeof v !== 'object') return false
  const c = v as Record<string, unknown>
  return typeof c.auth_url === 'string' && typeof c.anon_key === 'string' && typeof c.env === 'string'
}

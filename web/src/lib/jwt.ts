// Client-side JWT inspection. Decoding is display only: the console never
// trusts what it decodes (the API verifies every token), and it never sends a
// token to any third-party "JWT debugger" — a bearer token is a password.

/** JwtHeader is a JOSE header (RFC 7515 §4). */
export interface JwtHeader {
  alg?: string
  kid?: string
  typ?: string
  [name: string]: unknown
}

/** JwtClaims is a JWT claims set (RFC 7519 §4). */
export interface JwtClaims {
  iss?: string
  sub?: string
  aud?: string | string[]
  exp?: number
  nbf?: number
  iat?: number
  email?: string
  role?: string
  [name: string]: unknown
}

/** DecodedJwt is a compact JWS split into its decoded parts. */
export interface DecodedJwt {
  header: JwtHeader
  claims: JwtClaims
  /** signature is the third segment, still base64url-encoded. */
  signature: string
}

/** JwtDecodeError says why a string is not a decodable compact JWS. */
export class JwtDecodeError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'JwtDecodeError'
  }
}

const B64URL = /^[A-Za-z0-9_-]*$/

/** base64UrlDecode decodes unpadded base64url (RFC 4648 §5) into bytes. */
export function base64UrlDecode(segment: string): Uint8Array {
  if (!B64URL.test(segment) || segment.length % 4 === 1) {
    throw new JwtDecodeError('not base64url')
  }
  const b64 = segment.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (segment.length % 4)) % 4)
  const bin = atob(b64)
  const bytes = new Uint8Array(bin.length)
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i)
  return bytes
}

function decodeJsonSegment(segment: string, what: string): Record<string, unknown> {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(base64UrlDecode(segment))
  } catch {
    throw new JwtDecodeError(`${what} is not base64url-encoded UTF-8`)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new JwtDecodeError(`${what} is not JSON`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new JwtDecodeError(`${what} is not a JSON object`)
  }
  return value as Record<string, unknown>
}

/** decodeJwt splits a compact JWS and decodes its header and claims. */
export function decodeJwt(token: string): DecodedJwt {
  const parts = token.trim().split('.')
  if (parts.length !== 3) {
    throw new JwtDecodeError(`a JWT has 3 dot-separated parts, this has ${parts.length}`)
  }
  const [h, c, s] = parts as [string, string, string]
  return {
    header: decodeJsonSegment(h, 'header') as JwtHeader,
    claims: decodeJsonSegment(c, 'claims') as JwtClaims,
    signature: s,
  }
}

/** audiences returns aud as a list, whether the token sent a string or an array (RFC 7519 §4.1.3). */
export function audiences(claims: JwtClaims): string[] {
  const aud = claims.aud
  if (typeof aud === 'string') return [aud]
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === 'string')
  return []
}

/** secondsLeft is how long until exp, negative once expired, null without exp. */
export function secondsLeft(claims: JwtClaims, nowMs: number): number | null {
  if (typeof claims.exp !== 'number') return null
  return Math.floor(claims.exp - nowMs / 1000)
}

/** formatCountdown renders seconds as "1h 02m 03s", or "expired 12s ago". */
export function formatCountdown(seconds: number): string {
  const abs = Math.abs(seconds)
  const h = Math.floor(abs / 3600)
  const m = Math.floor((abs % 3600) / 60)
  const s = abs % 60
  const pad = (n: number) => String(n).padStart(2, '0')
  const text = h > 0 ? `${h}h ${pad(m)}m ${pad(s)}s` : m > 0 ? `${m}m ${pad(s)}s` : `${s}s`
  return seconds < 0 ? `expired ${text} ago` : text
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/**
 * tamperSignature returns token with its signature changed so that
 * verification fails. It rewrites characters well before the end: the last
 * base64url character of a 64-byte ES256 or 256-byte RS256 signature carries
 * padding bits that lenient decoders ignore, so changing only it could leave
 * the signature valid.
 */
export function tamperSignature(token: string): string {
  const parts = token.split('.')
  const sig = parts[2]
  if (parts.length !== 3 || sig === undefined || sig.length < 8) {
    throw new JwtDecodeError('not a signed JWT')
  }
  const chars = sig.split('')
  for (const i of [sig.length - 6, sig.length - 5, sig.length - 4]) {
    const c = chars[i] as string
    chars[i] = ALPHABET[(ALPHABET.indexOf(c) + 17) % 64] as string
  }
  parts[2] = chars.join('')
  return parts.join('.')
}

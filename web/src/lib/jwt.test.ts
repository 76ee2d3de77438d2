import { describe, expect, it } from 'vitest'
import { audiences, base64UrlDecode, decodeJwt, formatCountdown, JwtDecodeError, secondsLeft, tamperSignature } from './jwt'

function b64url(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj), 'utf8').toString('base64url')
}

const header = { alg: 'ES256', kid: 'k1', typ: 'JWT' }
const claims = { iss: 'http://127.0.0.1:8080/auth/v1', aud: 'authenticated', sub: 'u1', exp: 2000, email: 'zoë@example.com', role: 'authenticated' }
const sig = Buffer.alloc(64, 7).toString('base64url')
const token = `${b64url(header)}.${b64url(claims)}.${sig}`

describe('decodeJwt', () => {
  it('decodes header and claims, including UTF-8', () => {
    const d = decodeJwt(token)
    expect(d.header).toEqual(header)
    expect(d.claims).toEqual(claims)
    expect(d.signature).toBe(sig)
  })

  it('refuses what is not a compact JWS', () => {
    expect(() => decodeJwt('a.b')).toThrow(JwtDecodeError)
    expect(() => decodeJwt(`${b64url(header)}.not*base64.${sig}`)).toThrow(/claims is not base64url/)
    expect(() => decodeJwt(`${Buffer.from('nope').toString('base64url')}.${b64url(claims)}.${sig}`)).toThrow(/header is not JSON/)
    expect(() => decodeJwt(`${b64url([1])}.${b64url(claims)}.${sig}`)).toThrow(/header is not a JSON object/)
    expect(() => decodeJwt(`${b64url(header)}.${Buffer.from([0xff, 0xfe]).toString('base64url')}.${sig}`)).toThrow(/UTF-8/)
  })

  it('decodes base64url without padding and refuses impossible lengths', () => {
    expect(Array.from(base64UrlDecode('-_8'))).toEqual([0xfb, 0xff])
    expect(() => base64UrlDecode('abcde')).toThrow(JwtDecodeError)
    expect(() => base64UrlDecode('ab+/')).toThrow(JwtDecodeError)
  })
})

describe('claims helpers', () => {
  it('reads aud as a string or an array', () => {
    expect(audiences({ aud: 'authenticated' })).toEqual(['authenticated'])
    expect(audiences({ aud: ['a', 'b'] })).toEqual(['a', 'b'])
    expect(audiences({})).toEqual([])
  })

  it('counts down to exp', () => {
    expect(secondsLeft({ exp: 2000 }, 1_000_000)).toBe(1000)
    expect(secondsLeft({ exp: 2000 }, 2_005_000)).toBe(-5)
    expect(secondsLeft({}, 0)).toBeNull()
    expect(formatCountdown(3723)).toBe('1h 02m 03s')
    expect(formatCountdown(65)).toBe('1m 05s')
    expect(formatCountdown(9)).toBe('9s')
    expect(formatCountdown(-12)).toBe('expired 12s ago')
  })
})

describe('tamperSignature', () => {
  it('changes the signature bytes, not only padding bits, and keeps header and claims', () => {
    const bad = tamperSignature(token)
    const [h, c, s] = bad.split('.')
    expect(`${h}.${c}`).toBe(token.split('.').slice(0, 2).join('.'))
    expect(s).toHaveLength(sig.length)
    expect(Buffer.from(s as string, 'base64url').equals(Buffer.from(sig, 'base64url'))).toBe(false)
    expect(decodeJwt(bad).claims).toEqual(claims)
  })

  it('refuses a token without a signature', () => {
    expect(() => tamperSignature('a.b.')).toThrow(JwtDecodeError)
  })
})

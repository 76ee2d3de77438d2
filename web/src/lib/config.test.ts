import { describe, expect, it } from 'vitest'
import { isConsoleConfig, resolveAuthUrl } from './config'

describe('resolveAuthUrl', () => {
  it('keeps a hosted Supabase URL as it is', () => {
    expect(resolveAuthUrl('https://abc.supabase.co/auth/v1/', 'https://console.example.com', false)).toBe('https://abc.supabase.co/auth/v1')
  })
  it('resolves a relative URL against the page', () => {
    expect(resolveAuthUrl('/auth/v1', 'http://127.0.0.1:5173', true)).toBe('http://127.0.0.1:5173/auth/v1')
  })
  it('uses the page origin for the loopback emulator', () => {
    expect(resolveAuthUrl('http://127.0.0.1:8080/auth/v1', 'http://localhost:5173', true)).toBe('http://localhost:5173/auth/v1')
    expect(resolveAuthUrl('http://127.0.0.1:8080/auth/v1', 'http://127.0.0.1:8080', true)).toBe('http://127.0.0.1:8080/auth/v1')
  })
  it('does not rewrite a loopback URL that is not the emulator', () => {
    expect(resolveAuthUrl('http://127.0.0.1:54321/auth/v1', 'http://localhost:8080', false)).toBe('http://127.0.0.1:54321/auth/v1')
  })
})

describe('isConsoleConfig', () => {
  it('needs auth_url, anon_key and env', () => {
    expect(isConsoleConfig({ env: 'development', auth_url: 'x', anon_key: 'k' })).toBe(true)
    expect(isConsoleConfig({ env: 'development', auth_url: 'x' })).toBe(false)
    expect(isConsoleConfig(null)).toBe(false)
  })
})

import { describe, expect, it } from 'vitest'
import { answeringModel, gapFlag, summarize, usageText } from './useMessageStream'

describe('gapFlag', () => {
  it('accepts 1, 2, 3…', () => {
    expect(gapFlag(undefined, '1')).toBe('')
    expect(gapFlag('1', '2')).toBe('')
  })
  it('names gaps, repeats and non-numbers', () => {
    expect(gapFlag(undefined, '2')).toBe('gap: expected 1')
    expect(gapFlag('3', '5')).toBe('gap: expected 4')
    expect(gapFlag('3', '3')).toBe('duplicate or out of order (after 3)')
    expect(gapFlag('3', 'x')).toBe('id is not a number')
  })
})

describe('summarize', () => {
  it('renders a delta and a completion in one line', () => {
    expect(summarize({ kind: 'event', id: '3', event: 'content_delta', data: '', payload: { delta: 'Squat ' } })).toBe('"Squat "')
    const done = summarize({
      kind: 'event', id: '9', event: 'completed', data: '',
      payload: { finish_reason: 'stop', model: 'm', content: 'abc', usage: { prompt_tokens: 1, completion_tokens: 2 } },
    })
    expect(done).toBe('finish_reason=stop · model=m · tokens 1+2 · 3 chars')
  })
})

describe('answeringModel', () => {
  const ev = (event: string, payload: Record<string, unknown>) => ({ kind: 'event' as const, id: '1', event, data: '', payload })
  it('takes the model the first delta names, then the completed one', () => {
    let m = answeringModel('', ev('working', { status: 'working' }))
    expect(m).toBe('')
    m = answeringModel(m, ev('content_delta', { delta: 'Hi', model: 'backup' }))
    expect(m).toBe('backup')
    m = answeringModel(m, ev('content_delta', { delta: ' there' }))
    expect(m).toBe('backup')
    expect(answeringModel(m, ev('completed', { model: 'backup', content: 'Hi there' }))).toBe('backup')
    expect(answeringModel('', ev('completed', { model: 'gymbro-demo-coach' }))).toBe('gymbro-demo-coach')
  })
  it('shows the model on the delta that names it', () => {
    expect(summarize(ev('content_delta', { delta: 'Hi', model: 'backup' }))).toBe('"Hi" · answered by backup')
  })
})

describe('usageText', () => {
  it('shows the count against the budget, and when it is used up', () => {
    expect(usageText(null)).toBe('')
    expect(usageText({ day: '2026-12-04', tokens_used: 1834, tokens_limit: null, resets_at: '' })).toBe('1,834 tokens today (no daily budget)')
    expect(usageText({ day: '2026-12-04', tokens_used: 1834, tokens_limit: 50000, resets_at: '' })).toBe('1,834 of 50,000 tokens today')
    expect(usageText({ day: '2026-12-04', tokens_used: 52000, tokens_limit: 50000, resets_at: '' })).toContain('budget_exhausted')
  })
})

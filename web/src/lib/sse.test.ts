import { describe, expect, it } from 'vitest'
import { SSEParser, type SSEItem } from './sse'

function parseAll(chunks: string[], lastId = ''): { items: SSEItem[]; parser: SSEParser } {
  const parser = new SSEParser(lastId)
  const items = chunks.flatMap((c) => parser.feed(c))
  return { items, parser }
}

const events = (items: SSEItem[]) => items.filter((i) => i.kind === 'event')

describe('SSEParser', () => {
  it('parses the API example stream', () => {
    const stream =
      'retry: 3000\n\n' +
      'id: 1\nevent: queued\ndata: {"message_id":"m","seq":1}\n\n' +
      'id: 3\nevent: content_delta\ndata: {"message_id":"m","seq":3,"delta":"Squat "}\n\n' +
      ': heartbeat\n\n'
    const { items, parser } = parseAll([stream])
    expect(items).toEqual([
      { kind: 'retry', ms: 3000 },
      { kind: 'event', id: '1', event: 'queued', data: '{"message_id":"m","seq":1}' },
      { kind: 'event', id: '3', event: 'content_delta', data: '{"message_id":"m","seq":3,"delta":"Squat "}' },
      { kind: 'comment', text: 'heartbeat' },
    ])
    expect(parser.lastEventId).toBe('3')
  })

  it('joins multi-line data with \\n and keeps empty data lines', () => {
    const { items } = parseAll(['data: one\ndata:two\ndata\ndata:  three\n\n'])
    expect(events(items)).toEqual([{ kind: 'event', id: '', event: 'message', data: 'one\ntwo\n\n three' }])
  })

  it('gives the same result however the stream is split, with CRLF, CR and LF line ends', () => {
    const stream = 'id: 7\r\nevent: working\r\ndata: a\r\rdata: b\n\n:ping\r\n'
    const whole = parseAll([stream]).items
    expect(whole).toEqual([
      { kind: 'event', id: '7', event: 'working', data: 'a' },
      { kind: 'event', id: '7', event: 'message', data: 'b' },
      { kind: 'comment', text: 'ping' },
    ])
    for (let cut = 1; cut < stream.length; cut++) {
      expect(parseAll([stream.slice(0, cut), stream.slice(cut)]).items, `cut at ${cut}`).toEqual(whole)
    }
    expect(parseAll(stream.split('')).items).toEqual(whole)
  })

  it('does not dispatch an event without data, but keeps its id', () => {
    const { items, parser } = parseAll(['id: 5\nevent: x\n\n'])
    expect(items).toEqual([])
    expect(parser.lastEventId).toBe('5')
  })

  it('ignores an unterminated event, unknown fields, bad retry values and ids with NUL', () => {
    const { items, parser } = parseAll(['foo: bar\nretry: 1s\nretry: 250\nid: 1\0\ndata: x\n\ndata: partial'], '9')
    expect(items).toEqual([
      { kind: 'retry', ms: 250 },
      { kind: 'event', id: '9', event: 'message', data: 'x' },
    ])
    parser.end()
    expect(parser.feed('\n')).toEqual([])
  })

  it('strips one leading BOM and treats a field without colon as empty', () => {
    const { items } = parseAll(['\uFEFFdata\nevent\n\n'])
    expect(items).toEqual([{ kind: 'event', id: '', event: 'message', data: '' }])
  })

  it('carries the last event id across parsers for a resume', () => {
    const { items } = parseAll(['event: completed\ndata: {}\n\n'], '41')
    expect(items).toEqual([{ kind: 'event', id: '41', event: 'completed', data: '{}' }])
  })

  it('resets the event type after each dispatch', () => {
    const { items } = parseAll(['event: a\ndata: 1\n\ndata: 2\n\n'])
    expect(events(items).map((e) => e.event)).toEqual(['a', 'message'])
  })
})

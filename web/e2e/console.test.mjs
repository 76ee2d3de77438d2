// End-to-end test of the developer console against a running gymbro binary
// (see run.sh): sign in as the development operator, generate a test user,
// stream a reply, survive a tampered token plus a dropped connection, and
// check that the events shown are exactly 1..n.
//
// GYMBRO_E2E_URL  base URL of the server (required)
// CHROMIUM_PATH   browser binary (default /usr/bin/chromium)

import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const BASE = (process.env.GYMBRO_E2E_URL ?? '').replace(/\/+$/, '')
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url))
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]
// Generous: the demo model streams slowly on purpose and CI machines are small.
const STEP = 30_000
const STREAM = 120_000
const MESSAGE = 'How should I warm up before squats? [demo:slow]'

let browser
let context
let page
const consoleLines = []

before(async () => {
  assert.ok(BASE, 'set GYMBRO_E2E_URL to the server under test, e.g. http://127.0.0.1:8080')
  mkdirSync(ARTIFACTS, { recursive: true })
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
  context = await browser.newContext({ viewport: { width: 1440, height: 1000 } })
  page = await context.newPage()
  page.setDefaultTimeout(STEP)
  page.on('console', (m) => consoleLines.push(`[${m.type()}] ${m.text()}`))
  page.on('pageerror', (e) => consoleLines.push(`[pageerror] ${e.message}`))
})

after(async () => {
  if (consoleLines.length) writeFileSync(`${ARTIFACTS}browser-console.log`, consoleLines.join('\n') + '\n')
  await context?.close()
  await browser?.close()
})

/** assertNoSidewaysScroll fails when the page is wider than the viewport. */
async function assertNoSidewaysScroll(p, where) {
  const { scroll, inner } = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }))
  assert.ok(scroll <= inner, `${where}: the page is ${scroll}px wide in a ${inner}px viewport`)
}

async function shot(name) {
  await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true })
}

/** texts returns the trimmed text of every element matching the test id. */
async function texts(testid) {
  return (await page.getByTestId(testid).allTextContents()).map((t) => t.trim())
}

async function waitForLogLine(re, timeout = STREAM) {
  await page.waitForFunction(
    ([src, flags]) => {
      const r = new RegExp(src, flags)
      return [...document.querySelectorAll('[data-testid="stream-log-line"]')].some((li) => r.test(li.textContent ?? ''))
    },
    [re.source, re.flags],
    { timeout },
  )
  return (await texts('stream-log-line')).find((t) => re.test(t))
}

test('console: operator sign-in, test user, JWT, SSE with refresh and resume', async (t) => {
  // Each step needs the one before it: after a failure the rest are skipped
  // instead of each waiting out its own timeout.
  let broken = ''
  const step = (name, fn) =>
    t.test(name, async (st) => {
      if (broken) return st.skip(`an earlier step failed: ${broken}`)
      try {
        await fn()
      } catch (err) {
        broken = name
        await shot('failure').catch(() => {})
        throw err
      }
    })
  {
    await step('home shows the server and links to the JWT page', async () => {
      await page.goto(`${BASE}/`)
      await page.getByTestId('home-env').waitFor()
      assert.equal((await page.getByTestId('home-env').textContent())?.trim(), 'development')
      assert.equal(await page.getByTestId('link-docs').getAttribute('href'), '/docs')
      await shot('01-home')
    })

    await step('sign in as the development operator', async () => {
      await page.getByTestId('link-signin').click()
      await page.waitForURL(/\/signin/)
      await page.getByTestId('use-dev-operator').click()
      assert.notEqual(await page.getByTestId('signin-email').inputValue(), '', 'the dev operator filled the email')
      assert.notEqual(await page.getByTestId('signin-password').inputValue(), '', 'the dev operator filled the password')
      await shot('02-signin')
      await page.getByTestId('signin-submit').click()
      await page.waitForURL(/\/ai\/jwt$/)
      await page.getByTestId('operator-email').waitFor()
    })

    await step('the JWT page is reachable directly once signed in', async () => {
      await page.goto(`${BASE}/ai/jwt`)
      await page.getByTestId('generate-user').waitFor()
      assert.match(page.url(), /\/ai\/jwt$/)
    })

    await step('generate test user gymbro-test-01 and decode its token', async () => {
      await page.getByTestId('generate-user').click()
      await page.waitForFunction(() => {
        const el = document.querySelector('[data-testid="test-username"]')
        const err = document.querySelector('[data-testid="create-error"]')
        return (el && el.getAttribute('data-value')) || err
      })
      const err = await page.getByTestId('create-error').count()
      if (err) assert.fail(`create-mail-user failed: ${(await page.getByTestId('create-error').textContent())?.trim()}`)
      assert.equal(await page.getByTestId('test-username').getAttribute('data-value'), 'gymbro-test-01')
      assert.match((await page.getByTestId('test-email').getAttribute('data-value')) ?? '', /@/)
      assert.notEqual(await page.getByTestId('test-password').getAttribute('data-value'), '')
      assert.equal(await page.getByTestId('test-reused').getAttribute('data-reused'), 'false')
      await page.getByTestId('claim-iss').waitFor()
      assert.match((await page.getByTestId('claim-iss').textContent())?.trim() ?? '', /\/auth\/v1$/)
      assert.ok((await texts('claim-aud'))[0]?.split(', ').includes('authenticated'), 'aud is authenticated')
      assert.doesNotMatch((await page.getByTestId('token-countdown').textContent()) ?? '', /expired/)
      await shot('03-test-user')
    })

    let resumedAfter = 0
    await step('send a message, drop the stream with a tampered token, refresh and resume', async () => {
      await page.getByTestId('message-input').fill(MESSAGE)
      await page.getByTestId('send-message').click()
      await page.waitForFunction(
        () => document.querySelectorAll('[data-testid="event-row"][data-event="content_delta"]').length >= 3,
        null,
        { timeout: STREAM },
      )
      await shot('04-streaming')
      await page.getByTestId('simulate-drop').click()
      const refreshed = await waitForLogLine(/session refreshed/)
      assert.ok(refreshed)
      assert.ok(await waitForLogLine(/^\+\d+ ms · 401 \w+ on reconnect/), 'the reconnect got a 401')
      const resumed = await waitForLogLine(/resumed after id \d+/)
      resumedAfter = Number(/resumed after id (\d+)/.exec(resumed ?? '')?.[1])
      assert.ok(resumedAfter >= 3, `resumed after id ${resumedAfter}`)
    })

    await step('the stream completes with the reply and gap-free ids', async () => {
      await page.waitForFunction(
        () => document.querySelector('[data-testid="final-reply"], [data-testid="terminal-other"], [data-testid="stream-error"]'),
        null,
        { timeout: STREAM },
      )
      await shot('05-completed')
      if (await page.getByTestId('stream-error').count()) {
        assert.fail(`stream failed: ${(await page.getByTestId('stream-error').textContent())?.trim()}`)
      }
      if (await page.getByTestId('terminal-other').count()) {
        assert.fail(`stream ended with ${(await page.getByTestId('terminal-other').textContent())?.trim()}`)
      }
      const reply = (await page.getByTestId('final-reply').textContent())?.trim() ?? ''
      assert.ok(reply.length > 20, `a real reply, got ${JSON.stringify(reply)}`)
      assert.doesNotMatch(reply, /\[demo:/, 'the demo reply quotes the question without its [demo:slow] tag')
      assert.equal((await page.getByTestId('reply-live').textContent())?.trim(), reply, 'the deltas add up to the final reply')
      await page.waitForFunction(() => document.querySelector('[data-testid="stream-status"]')?.getAttribute('data-state') === 'done')

      const rows = page.getByTestId('event-row')
      const ids = (await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-id')))).map(Number)
      const events = await rows.evaluateAll((els) => els.map((e) => e.getAttribute('data-event')))
      assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => i + 1), 'ids are 1..n without gaps or duplicates')
      assert.ok(ids.length > resumedAfter, 'events arrived after the resume')
      assert.equal(events[0], 'queued')
      assert.equal(events.at(-1), 'completed')
      assert.equal(events.filter((e) => e === 'completed').length, 1)
      assert.match((await page.getByTestId('answered-by').textContent())?.trim() ?? '', /\S/, 'the page names the model that answered')
      await page.getByTestId('usage').waitFor({ timeout: STREAM })
      assert.match((await page.getByTestId('usage').textContent()) ?? '', /tokens today/, "the page shows the user's tokens today")

      const traces = (await texts('request-trace')).filter((x) => x !== '—')
      assert.ok(traces.length > 0, 'the request log shows X-Trace-Id values')
      await assertNoSidewaysScroll(page, 'desktop /ai/jwt after a stream')
    })
  }
})

test('/docs lists the operations offline, with nothing loaded from another host', async () => {
  const offline = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const foreign = []
  const errors = []
  // The network beyond the server under test is cut: any other host fails.
  await offline.route('**/*', (route) => {
    const url = route.request().url()
    if (url.startsWith(`${BASE}/`) || url.startsWith('data:')) return route.continue()
    foreign.push(url)
    return route.abort('internetdisconnected')
  })
  const docs = await offline.newPage()
  docs.on('pageerror', (e) => errors.push(e.message))
  docs.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  const failed = []
  docs.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`)
  })
  const healthz = []
  docs.on('request', (r) => {
    if (r.url().endsWith('/api/v1/healthz')) healthz.push(r.headers()['x-trace-id'] ?? '')
  })
  try {
    const res = await docs.goto(`${BASE}/docs`)
    assert.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self'/)
    await docs.locator('.opblock').first().waitFor({ timeout: STEP })
    const paths = await docs.locator('.opblock-summary-path').allTextContents()
    assert.ok(paths.some((p) => p.includes('/api/v1/messages')), `operations listed: ${paths.join(', ')}`)
    assert.ok(paths.length >= 8, `only ${paths.length} operations listed`)
    await docs.screenshot({ path: `${ARTIFACTS}docs-offline.png` })

    // "Try it out" twice: each request has a trace id of its own (none
    // sent, so the server makes one), never a shared example value.
    const op = docs.locator('.opblock', { has: docs.locator('.opblock-summary-path', { hasText: /^\/api\/v1\/healthz$/ }) })
    await op.locator('.opblock-summary').click()
    await op.getByRole('button', { name: 'Try it out' }).click()
    const answered = []
    for (let i = 0; i < 2; i++) {
      const res = docs.waitForResponse((r) => r.url().endsWith('/api/v1/healthz'))
      await op.getByRole('button', { name: 'Execute' }).click()
      answered.push((await res).headers()['x-trace-id'])
    }
    assert.equal(healthz.length, 2, `two requests to /api/v1/healthz, got ${healthz.length}`)
    assert.ok(healthz.every((id) => id === '') || healthz[0] !== healthz[1], `the two requests sent the same X-Trace-Id ${healthz[0]}`)
    assert.ok(answered[0] && answered[0] !== answered[1], `the two answers share X-Trace-Id ${answered[0]}`)

    assert.deepEqual(foreign, [], 'the docs page asked another host')
    assert.deepEqual(failed, [], 'a request from /docs failed (a favicon?)')
    assert.deepEqual(errors, [], 'errors in the browser console')
  } finally {
    await offline.close()
  }
})

/**
 * layoutProblems lists what a person could not read on the page as shown:
 * a page wider than the viewport, text cut with an ellipsis and no title
 * to read it from, a table whose box does not scroll.
 */
async function layoutProblems(p) {
  return p.evaluate(() => {
    const out = []
    if (document.documentElement.scrollWidth > window.innerWidth) {
      out.push(`the page is ${document.documentElement.scrollWidth}px wide in a ${window.innerWidth}px viewport`)
    }
    for (const el of document.querySelectorAll('body *')) {
      const cs = getComputedStyle(el)
      if (cs.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1 && !el.closest('[title]')?.getAttribute('title')) {
        out.push(`cut without a title: ${JSON.stringify(el.textContent?.trim().slice(0, 60))}`)
      }
    }
    for (const table of document.querySelectorAll('main table')) {
      const box = table.parentElement
      const ox = box ? getComputedStyle(box).overflowX : ''
      if (table.offsetWidth > (box?.clientWidth ?? 0) + 1 && ox !== 'auto' && ox !== 'scroll') {
        out.push(`a table ${table.offsetWidth}px wide in a box that does not scroll (${ox})`)
      }
    }
    return out
  })
}

/** rect returns the bounding box of the first element matching sel. */
async function rect(p, sel) {
  return p.locator(sel).first().evaluate((el) => {
    const r = el.getBoundingClientRect()
    return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, height: r.height }
  })
}

/** splitWord reports whether word, in the element matching sel, runs over two lines. */
async function splitWord(p, sel, word) {
  return p.locator(sel).first().evaluate((el, w) => {
    const node = [...el.childNodes].find((n) => n.nodeType === Node.TEXT_NODE && n.textContent.includes(w))
    if (!node) return `no text ${w}`
    const range = document.createRange()
    const at = node.textContent.indexOf(w)
    range.setStart(node, at)
    range.setEnd(node, at + w.length)
    return range.getClientRects().length > 1
  }, word)
}

for (const [width, height] of [
  [390, 844],
  [1280, 900],
]) {
  test(`the console reads well at ${width}x${height}`, async () => {
    const phone = width < 600
    const ctx = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1, isMobile: phone, hasTouch: phone })
    const p = await ctx.newPage()
    p.setDefaultTimeout(STEP)
    const where = (path) => `${width}px ${path}`
    try {
      for (const path of ['/', '/signin', '/no-such-page']) {
        await p.goto(`${BASE}${path}`)
        await p.locator('main').first().waitFor()
        assert.deepEqual(await layoutProblems(p), [], where(path))
      }

      // The auth URL and its badge are read whole.
      await p.goto(`${BASE}/`)
      await p.getByTestId('emulator-badge').waitFor()
      const badge = await rect(p, '[data-testid="emulator-badge"]')
      const card = await rect(p, 'section.card:has([data-testid="home-auth"])')
      assert.ok(badge.right <= card.right && (await p.getByTestId('emulator-badge').evaluate((el) => el.scrollWidth <= el.clientWidth)), `${where('/')}: the "local emulator" badge is cut`)

      // No blank gap under the header; on a phone the menu stays small.
      await p.goto(`${BASE}/no-such-page`)
      await p.locator('main .card').first().waitFor()
      const header = await rect(p, 'aside.sidebar')
      const first = await rect(p, 'main > :first-child')
      const main = await rect(p, 'main')
      if (phone) {
        assert.ok(header.height <= 170, `${where('/no-such-page')}: the menu takes ${header.height}px of ${height}`)
        assert.ok(first.top - header.bottom <= 32, `${where('/no-such-page')}: ${first.top - header.bottom}px between the menu and the page`)
      } else {
        assert.ok(first.top - main.top <= 40, `${where('/no-such-page')}: the page starts ${first.top - main.top}px down`)
      }
      await p.screenshot({ path: `${ARTIFACTS}not-found-${width}.png`, fullPage: true })

      await p.goto(`${BASE}/signin`)
      await p.getByTestId('use-dev-operator').click()
      await p.getByTestId('signin-submit').click()
      await p.waitForURL(/\/ai\/jwt$/)
      if (phone) {
        const signedIn = await rect(p, 'aside.sidebar')
        assert.ok(signedIn.height <= 170, `${where('/ai/jwt')}: signed in, the menu takes ${signedIn.height}px of ${height}`)
      }
      assert.equal(await splitWord(p, '[data-testid="curl-hint"]', 'Authorization:'), false, `${where('/ai/jwt')}: the curl hint breaks "Authorization:"`)
      await p.getByTestId('generate-user').click()
      await p.getByTestId('test-username').waitFor()
      await p.getByTestId('message-input').fill('Quick warm-up tips?')
      await p.getByTestId('send-message').click()
      await p.locator('[data-testid="event-row"][data-event="completed"]').waitFor({ timeout: STREAM })
      assert.ok(await p.getByTestId('demo-slow-hint').isVisible(), 'the [demo:slow] tag is explained')
      await p.waitForFunction(() => [...document.querySelectorAll('[data-testid="request-row"]')].some((r) => r.textContent?.includes('/events')))
      assert.deepEqual(await layoutProblems(p), [], where('/ai/jwt after a stream'))

      // The requests table: its status is in view on a phone; on a
      // desktop every column is, even beside a long events URL.
      const box = await rect(p, '[data-testid="request-box"]')
      const status = await rect(p, '[data-testid="request-status"]')
      assert.ok(status.right <= box.right, `${where('/ai/jwt')}: the status column is outside the requests box`)
      if (!phone) {
        const fits = await p.getByTestId('request-box').evaluate((el) => el.scrollWidth <= el.clientWidth + 1)
        const note = await rect(p, '[data-testid="request-note"]')
        assert.ok(fits && note.right <= box.right, `${where('/ai/jwt')}: the requests table is wider than its box`)
      }
      await p.screenshot({ path: `${ARTIFACTS}jwt-${width}.png`, fullPage: true })
    } finally {
      await ctx.close()
    }
  })
}

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
  try {
    const res = await docs.goto(`${BASE}/docs`)
    assert.match(res?.headers()['content-security-policy'] ?? '', /script-src 'self'/)
    await docs.locator('.opblock').first().waitFor({ timeout: STEP })
    const paths = await docs.locator('.opblock-summary-path').allTextContents()
    assert.ok(paths.some((p) => p.includes('/api/v1/messages')), `operations listed: ${paths.join(', ')}`)
    assert.ok(paths.length >= 8, `only ${paths.length} operations listed`)
    await docs.screenshot({ path: `${ARTIFACTS}docs-offline.png` })
    assert.deepEqual(foreign, [], 'the docs page asked another host')
    assert.deepEqual(errors.filter((e) => /Content Security Policy|Refused to/.test(e)), [], 'CSP violations')
  } finally {
    await offline.close()
  }
})

test('every console page fits a 390x844 phone', async () => {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true })
  const p = await phone.newPage()
  p.setDefaultTimeout(STEP)
  try {
    for (const path of ['/', '/signin', '/no-such-page']) {
      await p.goto(`${BASE}${path}`)
      await p.locator('main').first().waitFor()
      await assertNoSidewaysScroll(p, `390px ${path}`)
    }
    await p.goto(`${BASE}/signin`)
    await p.getByTestId('use-dev-operator').click()
    await p.getByTestId('signin-submit').click()
    await p.waitForURL(/\/ai\/jwt$/)
    await p.getByTestId('generate-user').click()
    await p.getByTestId('test-username').waitFor()
    await p.getByTestId('message-input').fill('Quick warm-up tips?')
    await p.getByTestId('send-message').click()
    await p.locator('[data-testid="event-row"][data-event="completed"]').waitFor({ timeout: STREAM })
    assert.ok(await p.getByTestId('demo-slow-hint').isVisible(), 'the [demo:slow] tag is explained')
    await assertNoSidewaysScroll(p, '390px /ai/jwt after a stream')
    await p.screenshot({ path: `${ARTIFACTS}phone-jwt.png`, fullPage: true })
  } finally {
    await phone.close()
  }
})

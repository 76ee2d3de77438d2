// useTestUser is the JWT page's test-user half: one click makes (or reuses)
// a gymbro-test-NN user through POST /api/v1/llm/tests/create-mail-user and
// makes its session the active one; or an existing user signs in.
import { ref, shallowRef } from 'vue'
import { useConsole } from '../context'
import { authorized } from '../lib/session'

/** TestUser is the answer of POST /api/v1/llm/tests/create-mail-user. */
export interface TestUser {
  username: string
  email: string
  password: string
  user_id: string
  access_token: string
  refresh_token: string
  expires_at: number
  token_type: string
  reused: boolean
  request_id?: string
}

export function useTestUser() {
  const ctx = useConsole()
  const prefix = ref('gymbro-test')
  const creating = ref(false)
  const createError = shallowRef<unknown>(null)
  const user = shallowRef<TestUser | null>(null)
  const manualEmail = ref('')
  const manualPassword = ref('')
  const signingIn = ref(false)
  const manualError = shallowRef<unknown>(null)

  async function generate() {
    creating.value = true
    createError.value = null
    try {
      await ctx.loadConfig()
      const r = await authorized(ctx.operator, (token) =>
        ctx.http.json<TestUser>('POST', '/api/v1/llm/tests/create-mail-user', {
          headers: { Authorization: `Bearer ${token}` },
          body: { username_prefix: prefix.value.trim() || 'gymbro-test' },
        }),
      )
      const u = r.data
      user.value = u
      ctx.setActive(
        { accessToken: u.access_token, refreshToken: u.refresh_token, expiresAt: u.expires_at ?? null, userId: u.user_id ?? null, email: u.email ?? null },
        `test user ${u.username}`,
      )
    } catch (e) {
      createError.value = e
    } finally {
      creating.value = false
    }
  }

  async function manualSignIn() {
    signingIn.value = true
    manualError.value = null
    try {
      await ctx.loadConfig()
      const email = manualEmail.value.trim()
      const s = await ctx.auth().passwordGrant(email, manualPassword.value)
      ctx.setActive({ ...s, email: s.email ?? email }, `signed in as ${email}`)
    } catch (e) {
      manualError.value = e
    } finally {
      signingIn.value = false
    }
  }

  return { prefix, creating, createError, user, generate, manualEmail, manualPassword, signingIn, manualError, manualSignIn }
}

import { createRouter, createWebHistory, type Router } from 'vue-router'
import type { ConsoleContext } from './context'
import HomeView from './views/HomeView.vue'

/** createConsoleRouter builds the history-mode router; /ai/jwt needs an operator session. */
export function createConsoleRouter(ctx: ConsoleContext): Router {
  const router = createRouter({
    history: createWebHistory('/'),
    routes: [
      { path: '/', name: 'home', component: HomeView, meta: { title: 'Overview' } },
      // /login is the name the server's "console not built" page and older links use.
      { path: '/login', redirect: (to) => ({ name: 'signin', query: to.query }) },
      { path: '/signin', name: 'signin', component: () => import('./views/SignInView.vue'), meta: { title: 'Sign in' } },
      {
        path: '/ai/jwt',
        name: 'jwt',
        component: () => import('./views/JwtView.vue'),
        meta: { title: 'JWT & SSE', operator: true },
      },
      { path: '/:rest(.*)*', name: 'not-found', component: () => import('./views/NotFoundView.vue'), meta: { title: 'Not found' } },
    ],
  })
  router.beforeEach((to) => {
    if (to.meta.operator && !ctx.operator.current()) {
      return { name: 'signin', query: { next: to.fullPath } }
    }
    return true
  })
  router.afterEach((to) => {
    document.title = `${String(to.meta.title ?? 'Console')} · GymBro API`
  })
  return router
}

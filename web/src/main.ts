import { createApp } from 'vue'
import App from './App.vue'
import { consoleKey, createConsole } from './context'
import { createConsoleRouter } from './router'
import './style.css'

const ctx = createConsole(window.sessionStorage, window.location.origin)
createApp(App).provide(consoleKey, ctx).use(createConsoleRouter(ctx)).mount('#app')

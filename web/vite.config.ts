import { defineConfig } from 'vitest/config'
import vue from '@vitejs/plugin-vue'

// The console is served by the Go binary at "/", so base is "/" and the build
// lands in web/dist, which web/embed.go embeds. During `npm run dev` the API
// and the local Supabase Auth emulator are proxied to a running
// `gymbro serve` (GYMBRO_DEV_API, default http://127.0.0.1:8080).
const api = process.env.GYMBRO_DEV_API ?? 'http://127.0.0.1:8080'

export default defineConfig({
  base: '/',
  plugins: [vue()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    // Two pages: the console, and /docs (Swagger UI, served by the binary
    // without any CDN).
    rollupOptions: { input: { console: 'index.html', docs: 'docs.html' } },
    chunkSizeWarningLimit: 2048, // Swagger UI is one large module
  },
  server: {
    proxy: {
      '/api': { target: api, changeOrigin: false },
      '/auth': { target: api, changeOrigin: false },
      '/docs': { target: api, changeOrigin: false },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})

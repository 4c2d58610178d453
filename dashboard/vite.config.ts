import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// Built into dist/dashboard, next to the compiled gateway, which serves it at /dashboard/.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    chunkSizeWarningLimit: 400,
  },
});

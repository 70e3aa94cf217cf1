/**
 * Builds the dashboard page (this folder) into dist/collector/dashboard/web/, which the collector
 * serves under /dashboard/ (collector/dashboard/static.ts). `make build` runs it.
 */
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/dashboard/',
  logLevel: 'warn',
  build: {
    outDir: resolve(import.meta.dirname, '../../../dist/collector/dashboard/web'),
    emptyOutDir: true,
    // the page must run under script-src 'self': no inline module preload polyfill
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 2500,
    reportCompressedSize: false,
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});

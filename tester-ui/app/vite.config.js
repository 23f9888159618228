// Builds the neuron-tester page: `vite build tester-ui/app` (or npm run build
// in tester-ui). The SDK comes from node_modules, where scripts/setup
// installs the packed tarball: the page imports it as any consumer does.
import { defineConfig } from 'vite';

export default defineConfig({
  root: new URL('.', import.meta.url).pathname,
  base: './',
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022', // the SDK loads its wasm with top-level await
    sourcemap: true,
  },
});

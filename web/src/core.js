// Loads the WebAssembly core once per JS realm. index.js awaits it at import
// time (top-level await), so `new Neuron(...)` is synchronous afterwards.
//
// Where the bytes come from, first match wins:
//   1. globalThis.NEURON_SDK_WASM, set before importing the package: a
//      Uint8Array / ArrayBuffer of neuron-core.wasm, a WebAssembly.Module, or a
//      URL string (Electron renderers on file://, strict CSP, custom hosting);
//   2. Node: read from disk next to this package (no fetch of file: URLs);
//   3. browsers, workers and bundlers: fetched from `neuron-core.wasm` next to
//      the glue, resolved with import.meta.url (Vite, webpack and esbuild copy it).
// If that fails, the import still succeeds and every `new Neuron` throws an
// error that says how to hand the bytes over: `await initNeuronSdk({ wasmBinary })`.

import createNeuronCore from '../dist/neuron-core.mjs';

const WASM_URL = new URL('../dist/neuron-core.wasm', import.meta.url);

/** @type {any} */
let core = null;
/** @type {Error | null} */
let loadError = null;

/** @returns {Promise<Uint8Array | null>} */
async function readFromDiskInNode() {
  const proc = globalThis.process;
  if (typeof proc !== 'object' || !proc?.versions?.node || WASM_URL.protocol !== 'file:') return null;
  // process.getBuiltinModule (Node >= 20.16) keeps `node:` imports out of the
  // module graph, so bundlers targeting browsers never see one.
  const fs = typeof proc.getBuiltinModule === 'function'
    ? proc.getBuiltinModule('node:fs')
    : await import(/* @vite-ignore */ ['node', 'fs'].join(':'));
  return fs.readFileSync(WASM_URL);
}

/**
 * @param {{ wasmBinary?: ArrayBuffer | Uint8Array, wasmModule?: WebAssembly.Module, wasmUrl?: string | URL }} [source]
 */
async function instantiate(source = {}) {
  /** @type {Record<string, unknown>} */
  const moduleArg = {
    print: () => {},
    printErr: () => {},
  };
  /** @type {Promise<never> | null} */
  let failed = null;
  if (source.wasmModule) {
    const mod = source.wasmModule;
    /** @type {(err: unknown) => void} */
    let fail = () => {};
    failed = new Promise((_, reject) => {
      fail = reject;
    });
    moduleArg.instantiateWasm = (/** @type {any} */ imports, /** @type {any} */ receive) => {
      // A Module that does not instantiate (another build's, a different
      // version) rejects the load instead of leaving it pending forever.
      WebAssembly.instantiate(mod, imports).then((instance) => receive(instance), (err) => fail(new Error(
        `the WebAssembly.Module given does not instantiate as neuron-core.wasm of this package version: ${err?.message ?? err}`)));
      return {};
    };
  } else if (source.wasmBinary) {
    moduleArg.wasmBinary = source.wasmBinary;
  } else if (source.wasmUrl) {
    const url = String(source.wasmUrl);
    moduleArg.locateFile = () => url;
  } else {
    const bytes = await readFromDiskInNode();
    if (bytes) moduleArg.wasmBinary = bytes;
  }
  const created = createNeuronCore(moduleArg);
  return failed ? Promise.race([created, failed]) : created;
}

/** @param {unknown} given */
function sourceFromGlobal(given) {
  if (given == null) return undefined;
  if (typeof WebAssembly === 'object' && given instanceof WebAssembly.Module) return { wasmModule: given };
  if (given instanceof ArrayBuffer || ArrayBuffer.isView(given)) return { wasmBinary: /** @type {any} */ (given) };
  if (typeof given === 'string' || given instanceof URL) return { wasmUrl: given };
  throw new TypeError('globalThis.NEURON_SDK_WASM must be the bytes of neuron-core.wasm (Uint8Array or ArrayBuffer), a WebAssembly.Module or a URL');
}

/** Called once by index.js at import time; never rejects. */
export async function loadCoreOnImport() {
  try {
    core = await instantiate(sourceFromGlobal(/** @type {any} */ (globalThis).NEURON_SDK_WASM));
  } catch (err) {
    loadError = /** @type {Error} */ (err);
  }
}

/**
 * Hand the wasm over yourself when the package cannot fetch it (an Electron
 * renderer on file://, a page whose CSP forbids fetching it). Resolves when
 * the core is ready; a no-op once it is.
 * @param {{ wasmBinary?: ArrayBuffer | Uint8Array, wasmModule?: WebAssembly.Module, wasmUrl?: string | URL }} source
 */
export async function initNeuronSdk(source) {
  if (core) return;
  if (!source || typeof source !== 'object') {
    throw new TypeError('initNeuronSdk({ wasmBinary }) needs the bytes of neuron-core.wasm (or wasmModule / wasmUrl)');
  }
  core = await instantiate(source);
  loadError = null;
}

/**
 * The JSON Schema validator, for capabilities with a raw JSON Schema. (Linked
 * into the core for now: nothing to load.)
 * @returns {Promise<void>}
 */
export async function loadSchemaModule() {}

/** The loaded module; throws a how-to-fix error if loading failed. */
export function getCore() {
  if (core) return core;
  const why = loadError ? `: ${loadError.message ?? loadError}` : '';
  throw new Error(
    `@holokai/neuron-sdk could not load its WebAssembly core from ${WASM_URL.href}${why}. ` +
      'Hand the bytes over before creating a Neuron: `await initNeuronSdk({ wasmBinary })` ' +
      '(or set globalThis.NEURON_SDK_WASM before importing the package).',
  );
}

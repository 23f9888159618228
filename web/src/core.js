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

/** @type {unknown} where neuron-schema.wasm comes from, when told (schema.js) */
let schemaGiven;
/** @type {URL | null} the URL the core was given, if any */
let coreUrl = null;

/**
 * In Node, the bytes of a file: URL (no fetch of file: URLs there); null
 * elsewhere.
 * @param {URL} url @returns {Promise<Uint8Array | null>}
 */
export async function readFileInNode(url) {
  const proc = globalThis.process;
  if (typeof proc !== 'object' || !proc?.versions?.node || url.protocol !== 'file:') return null;
  // process.getBuiltinModule (Node >= 20.16) keeps `node:` imports out of the
  // module graph, so bundlers targeting browsers never see one.
  const fs = typeof proc.getBuiltinModule === 'function'
    ? proc.getBuiltinModule('node:fs')
    : await import(/* @vite-ignore */ ['node', 'fs'].join(':'));
  return fs.readFileSync(url);
}

/**
 * What schema.js loads neuron-schema.wasm from: bytes or a Module or a URL
 * someone handed over, else beside the URL the core was given, else
 * undefined (beside the core's glue).
 */
export function schemaSource() {
  const given = schemaGiven ?? /** @type {any} */ (globalThis).NEURON_SDK_SCHEMA_WASM;
  if (given != null) return given;
  return coreUrl ? new URL('neuron-schema.wasm', coreUrl) : undefined;
}

/**
 * @param {{ wasmBinary?: ArrayBuffer | Uint8Array, wasmModule?: WebAssembly.Module, wasmUrl?: string | URL }} [source]
 */
async function instantiate(source = {}) {
  if (!source.wasmModule && !source.wasmBinary && !source.wasmUrl) {
    // Node, Electron: the file next to this module. Compiled here so that its
    // bytes are not kept for the life of the module (the glue would keep a
    // wasmBinary it was given).
    const bytes = await readFileInNode(WASM_URL);
    if (bytes) source = { wasmModule: await WebAssembly.compile(bytes) };
  }
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
    coreUrl = new URL(url, globalThis.location?.href);
    moduleArg.locateFile = () => url;
  }
  const created = createNeuronCore(moduleArg).then(withCoreClass);
  return failed ? Promise.race([created, failed]) : created;
}

// The methods of the C++ Core (emscripten/bindings.cpp), which embind
// exports as free functions on the core's address: withCoreClass gives
// them back the shape of a class, `new Module.Core(optionsJson)`.
const CORE_METHODS = ['configError', 'handle', 'advertiseSchemas', 'start', 'stop', 'updateCapability',
  'reconnectNow', 'streamOpened', 'streamClosed', 'handlerDone', 'progress', 'setFrameEvents', 'setLogLevel',
  'isConnected', 'isRegistered', 'isStopped', 'needsSchemaValidator', 'checks', 'stats'];

/** @param {any} M the instantiated module */
function withCoreClass(M) {
  class Core {
    /** @param {string} optionsJson */
    constructor(optionsJson) {
      /** @type {number} the C++ object's address; 0 once deleted */
      this.p = M.Core_new(optionsJson);
    }

    address() {
      return this.p;
    }

    /** Frees the C++ object; a second call throws, as embind's does. */
    delete() {
      if (!this.p) throw new Error('neuron core already deleted');
      M.Core_delete(this.p);
      this.p = 0;
    }
  }
  for (const name of CORE_METHODS) {
    const fn = M[`Core_${name}`];
    Object.defineProperty(Core.prototype, name, {
      /** @param {...any} args */
      value(...args) {
        if (!this.p) throw new Error(`neuron core already deleted (${name})`);
        return fn(this.p, ...args);
      },
    });
  }
  M.Core = Core;
  return M;
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
 * the core is ready; a no-op for the core once it is. `schemaWasm` (the
 * bytes, a WebAssembly.Module or the URL of neuron-schema.wasm) is for
 * capabilities with a raw JSON Schema: it is loaded when such a neuron starts.
 * @param {{ wasmBinary?: ArrayBuffer | Uint8Array, wasmModule?: WebAssembly.Module, wasmUrl?: string | URL,
 *   schemaWasm?: ArrayBuffer | Uint8Array | WebAssembly.Module | string | URL }} source
 */
export async function initNeuronSdk(source) {
  if (!source || typeof source !== 'object') {
    throw new TypeError('initNeuronSdk({ wasmBinary }) needs the bytes of neuron-core.wasm (or wasmModule / wasmUrl), and may take schemaWasm');
  }
  if (source.schemaWasm != null) schemaGiven = source.schemaWasm;
  if (core || (!source.wasmBinary && !source.wasmModule && !source.wasmUrl)) return;
  core = await instantiate(source);
  loadError = null;
}

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

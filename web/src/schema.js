// Loads neuron-schema.wasm, the JSON Schema validator (valijson compiled to
// wasm), once per JS realm, and only when a capability brings a raw JSON
// Schema (`inputSchema` / `outputSchema`): zod capabilities and capabilities
// without schemas never fetch it. Neuron.start() awaits it before the core
// compiles the schemas; the core reaches it through its boundary
// (emscripten/library_neuron.js, Module.schema).
//
// Where the bytes come from, first match wins (as for the core, core.js):
//   1. initNeuronSdk({ schemaWasm }) or globalThis.NEURON_SDK_SCHEMA_WASM:
//      the bytes of neuron-schema.wasm, a WebAssembly.Module, or a URL;
//   2. next to neuron-core.wasm: beside the URL the core was given
//      (initNeuronSdk({ wasmUrl })), else beside the core's glue
//      (`new URL('neuron-schema.wasm', import.meta.url)` in dist/neuron-core.mjs,
//      which bundlers that copy the core's wasm copy too); in Node, read from disk.

import { getCore, readFileInNode, schemaSource } from './core.js';

/** @type {Promise<void> | null} */
let loading = null;

/**
 * Loads the validator (once; a failed load is tried again on the next call).
 * Rejects with an error that says where it looked and how to hand it over.
 * @returns {Promise<void>}
 */
export function loadSchemaModule() {
  loading ??= load().catch((err) => {
    loading = null;
    throw err;
  });
  return loading;
}

async function load() {
  const Module = getCore();
  if (Module.schema) return;
  const given = schemaSource();
  /** @type {string | URL} */
  let where = 'the bytes given';
  let mod;
  try {
    if (given instanceof WebAssembly.Module) {
      mod = given;
    } else if (given instanceof ArrayBuffer || ArrayBuffer.isView(given)) {
      mod = await WebAssembly.compile(/** @type {BufferSource} */ (given));
    } else {
      where = given ?? Module.boundary.schemaUrl();
      mod = await compileFrom(new URL(String(where)));
    }
  } catch (err) {
    throw new Error(
      `@holokai/neuron-sdk could not load its JSON Schema validator from ${where}: ${/** @type {Error} */ (err)?.message ?? err}. ` +
        'A capability with a raw inputSchema / outputSchema needs neuron-schema.wasm (copy it next to neuron-core.wasm), ' +
        'or hand it over before start(): `await initNeuronSdk({ schemaWasm: bytes })` (or globalThis.NEURON_SDK_SCHEMA_WASM).');
  }
  const instance = await WebAssembly.instantiate(mod, stubImports(mod));
  const x = /** @type {any} */ (instance.exports);
  x._initialize?.();
  Module.schema = backend(x);
}

/** @param {URL} url @returns {Promise<WebAssembly.Module>} */
async function compileFrom(url) {
  const bytes = await readFileInNode(url);
  if (bytes) return WebAssembly.compile(bytes);
  const res = await fetch(url, { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  if (typeof WebAssembly.compileStreaming === 'function' && /^application\/wasm/i.test(res.headers.get('content-type') ?? '')) {
    return WebAssembly.compileStreaming(res);
  }
  return WebAssembly.compile(await res.arrayBuffer());
}

/**
 * The module is standalone wasm: its imports (WASI and Emscripten calls for
 * output, exit, clocks, memory growth) are never needed by the validator's
 * work; each is a stub. One that would end the process throws instead.
 * @param {WebAssembly.Module} mod
 */
function stubImports(mod) {
  /** @type {Record<string, Record<string, Function>>} */
  const imports = {};
  for (const { module, name, kind } of WebAssembly.Module.imports(mod)) {
    if (kind !== 'function') continue;
    imports[module] ??= {};
    imports[module][name] = name === 'proc_exit' || name.includes('abort')
      ? () => { throw new Error(`neuron-schema.wasm called ${name}`); }
      : () => 0;
  }
  return imports;
}

/**
 * What the core's boundary calls (library_neuron.js): JSON texts go in as
 * bytes, the answer's text comes back as bytes.
 * @param {any} x the module's exports
 */
function backend(x) {
  /** @param {Uint8Array} bytes */
  const put = (bytes) => {
    const ptr = x.schema_buffer(bytes.length);
    new Uint8Array(x.memory.buffer, ptr, bytes.length).set(bytes);
    return bytes.length;
  };
  /** @param {number} n */
  const text = (n) => new Uint8Array(x.memory.buffer, x.schema_text(), n).slice();
  return {
    /** @param {Uint8Array} bytes @returns {[number, Uint8Array]} handle (0: failed) and the reason */
    compile(bytes) {
      const handle = x.schema_compile(put(bytes));
      if (handle) return [handle, new Uint8Array(0)];
      const p = x.schema_text();
      const mem = new Uint8Array(x.memory.buffer);
      let end = p;
      while (mem[end] !== 0) end++;
      return [0, text(end - p)];
    },
    /** @param {number} handle @param {Uint8Array} bytes @returns {Uint8Array | null} null when valid, else the errors */
    validate(handle, bytes) {
      const n = x.schema_validate(handle, put(bytes));
      return n < 0 ? null : text(n);
    },
    /** @param {number} handle */
    release(handle) {
      x.schema_release(handle);
    },
  };
}

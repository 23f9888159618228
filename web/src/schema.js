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
  const [first, renew] = await instances(mod, stubImports(mod));
  Module.schema = backend(first, renew);
}

/**
 * The validator's first instance, and how to get the next one synchronously
 * (backend(), after a trap). Where the engine refuses to instantiate a module
 * synchronously (Chrome / Edge before 114 on a page's main thread, for
 * modules over 4 KB), the next instance is made ahead of time instead.
 * @param {WebAssembly.Module} mod @param {WebAssembly.Imports} imports
 * @param {(mod: WebAssembly.Module, imports: WebAssembly.Imports) => WebAssembly.Instance} [now]
 * @returns {Promise<[WebAssembly.Instance, () => WebAssembly.Instance]>}
 */
export async function instances(mod, imports, now = (m, i) => new WebAssembly.Instance(m, i)) {
  try {
    return [now(mod, imports), () => now(mod, imports)];
  } catch {
    // not here: ahead of time
  }
  /** @type {WebAssembly.Instance | null} */
  let spare = null;
  let making = false;
  const prepare = () => {
    if (spare || making) return;
    making = true;
    WebAssembly.instantiate(mod, imports).then((i) => { spare = i; }, () => {}).finally(() => { making = false; });
  };
  const first = await WebAssembly.instantiate(mod, imports);
  prepare();
  return [first, () => {
    const next = spare;
    spare = null;
    prepare();
    if (!next) throw new Error('no fresh instance of it is ready yet');
    return next;
  }];
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

/** See backend(): a larger instance is let go after the call that grew it. */
const KEEP_MEMORY_BYTES = 64 * 1024 * 1024;

/** @param {unknown} err */
const messageOf = (err) => /** @type {Error} */ (err)?.message ?? String(err);

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
 *
 * A call that traps (valijson recurses once per schema level per value
 * level: a deep value against a schema that nests many levels around its
 * recursion exhausts the module's stack, or the JS engine's) leaves the
 * instance unusable: its stack pointer is where the trap left it. The trap
 * is caught here and not let into the core; that value is refused saying
 * why, and the next call runs in a fresh instance, where every live schema
 * is compiled again. The handles the core holds are this object's own.
 * @param {WebAssembly.Instance} first @param {() => WebAssembly.Instance} renew
 */
export function backend(first, renew) {
  /** @type {any} */
  let x;
  const start = (/** @type {WebAssembly.Instance} */ instance) => {
    x = instance.exports;
    x._initialize?.();
  };
  start(first);
  let broken = false;
  /** @type {Map<number, { bytes: Uint8Array, id: number }>} handle -> the schema's text and its id in the instance */
  const live = new Map();
  let next = 1;
  const encoder = new TextEncoder();
  /** @param {Uint8Array} bytes */
  const put = (bytes) => {
    const ptr = x.schema_buffer(bytes.length);
    new Uint8Array(x.memory.buffer, ptr, bytes.length).set(bytes);
    return bytes.length;
  };
  /** @param {number} n */
  const text = (n) => new Uint8Array(x.memory.buffer, x.schema_text(), n).slice();
  /** Null when the instance is ready, else why no instance could be made. */
  const fresh = () => {
    if (!broken) return null;
    try {
      start(renew());
      for (const schema of live.values()) schema.id = x.schema_compile(put(schema.bytes));
      broken = false;
      return null;
    } catch (err) {
      return `the JSON Schema validator could not be restarted (${messageOf(err)})`;
    }
  };
  /** @param {unknown} err */
  const trapped = (err) => {
    broken = true;
    return messageOf(err);
  };
  // Memory a huge value made the instance grow to stays with it: past this,
  // the next call gets a fresh instance.
  const settle = () => {
    if (x.memory.buffer.byteLength > KEEP_MEMORY_BYTES) broken = true;
  };
  return {
    /** @param {Uint8Array} bytes @returns {[number, Uint8Array]} handle (0: failed) and the reason */
    compile(bytes) {
      const down = fresh();
      if (down) return [0, encoder.encode(down)];
      try {
        const id = x.schema_compile(put(bytes));
        settle();
        if (!id) {
          const p = x.schema_text();
          const mem = new Uint8Array(x.memory.buffer);
          let end = p;
          while (mem[end] !== 0) end++;
          return [0, text(end - p)];
        }
        const handle = next++;
        live.set(handle, { bytes: bytes.slice(), id });
        return [handle, new Uint8Array(0)];
      } catch (err) {
        return [0, encoder.encode(`the JSON Schema validator failed on this schema (${trapped(err)})`)];
      }
    },
    /** @param {number} handle @param {Uint8Array} bytes @returns {Uint8Array | null} null when valid, else the errors */
    validate(handle, bytes) {
      const down = fresh();
      if (down) return encoder.encode(`\x1fthe value could not be checked: ${down}`);
      const schema = live.get(handle);
      if (!schema?.id) return encoder.encode('\x1fthe value could not be checked: its schema is not compiled');
      try {
        const n = x.schema_validate(schema.id, put(bytes));
        settle();
        return n < 0 ? null : text(n);
      } catch (err) {
        return encoder.encode(`\x1fthe value could not be checked: the JSON Schema validator failed on it (${trapped(err)}); ` +
          'a value this deep against a schema that nests many levels around its recursion can exhaust its stack');
      }
    },
    /** @param {number} handle */
    release(handle) {
      const schema = live.get(handle);
      live.delete(handle);
      try {
        if (schema?.id && !broken) x.schema_release(schema.id);
      } catch (err) {
        trapped(err);
      }
    },
  };
}

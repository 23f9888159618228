// web/src/schema.js's backend after a trap in neuron-schema.wasm: the call
// that trapped is answered with an error, the next runs in a fresh instance
// with every live schema compiled again, and the handles the core holds stay
// valid. A stand-in module with the same exports makes the traps happen where
// the test wants them (robustness.test.js and the browser tests trap the real
// module with a deep value).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { backend, instances } from '../src/schema.js';

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * A module that "compiles" a text by keeping it, and takes a value as valid
 * when it equals `ok`; the value "trap" (or a schema "trap") throws as a
 * stack overflow would. Each instance numbers its schemas from 1.
 * @param {{ log: string[], instances: number }} world
 */
function fakeInstance(world) {
  const n = ++world.instances;
  world.log.push('new instance');
  const memory = new WebAssembly.Memory({ initial: 1 });
  /** @type {Map<number, string>} */
  const schemas = new Map();
  let nextId = 1;
  const read = (/** @type {number} */ len) => dec.decode(new Uint8Array(memory.buffer, 0, len));
  const putText = (/** @type {string} */ s) => {
    const b = enc.encode(s);
    new Uint8Array(memory.buffer, 1024, b.length + 1).set([...b, 0]);
    return b.length;
  };
  const exports = {
    memory,
    schema_buffer: () => 0,
    schema_text: () => 1024,
    schema_compile: (/** @type {number} */ len) => {
      const s = read(len);
      if (s === 'trap') throw new RangeError('Maximum call stack size exceeded');
      if (s === 'bad') {
        putText('schema is not valid JSON');
        return 0;
      }
      const id = nextId++;
      schemas.set(id, s);
      world.log.push(`${n}: compile ${s} as ${id}`);
      return id;
    },
    schema_validate: (/** @type {number} */ id, /** @type {number} */ len) => {
      const value = read(len);
      if (value === 'trap') throw new WebAssembly.RuntimeError('memory access out of bounds');
      if (value === 'huge') memory.grow(1100);  // 64 MiB + a bit more
      const schema = schemas.get(id);
      world.log.push(`${n}: validate ${value} against ${schema}`);
      return value === 'ok' ? -1 : putText(`/p\x1f${value} is not ok for ${schema}`);
    },
    schema_release: (/** @type {number} */ id) => {
      world.log.push(`${n}: release ${schemas.get(id)}`);
      schemas.delete(id);
    },
  };
  return /** @type {WebAssembly.Instance} */ (/** @type {unknown} */ ({ exports }));
}

test('after a trap the next call runs in a fresh instance, where the live schemas are compiled again under the handles the core holds', () => {
  const world = { log: /** @type {string[]} */ ([]), instances: 0 };
  const v = backend(fakeInstance(world), () => fakeInstance(world));
  const [a] = v.compile(enc.encode('A'));
  const [b] = v.compile(enc.encode('B'));
  const [c] = v.compile(enc.encode('C'));
  assert.ok(a > 0 && b > 0 && c > 0 && new Set([a, b, c]).size === 3);
  const [bad, why] = v.compile(enc.encode('bad'));
  assert.equal(bad, 0);
  assert.equal(dec.decode(why), 'schema is not valid JSON');
  assert.equal(v.validate(b, enc.encode('ok')), null);
  assert.equal(dec.decode(/** @type {Uint8Array} */ (v.validate(b, enc.encode('no')))), '/p\x1fno is not ok for B');
  v.release(a);

  const trapped = dec.decode(/** @type {Uint8Array} */ (v.validate(b, enc.encode('trap'))));
  assert.match(trapped, /^\x1fthe value could not be checked: the JSON Schema validator failed on it \(memory access out of bounds\); /);
  assert.equal(trapped.split('\x1f').length, 2, 'one error: an empty path and the message');
  world.log.length = 0;
  // B and C (A was released) in the new instance, where B is 1 and C is 2.
  assert.equal(dec.decode(/** @type {Uint8Array} */ (v.validate(c, enc.encode('no')))), '/p\x1fno is not ok for C');
  assert.equal(v.validate(b, enc.encode('ok')), null);
  assert.deepEqual(world.log, ['new instance', '2: compile B as 1', '2: compile C as 2', '2: validate no against C', '2: validate ok against B']);

  // A schema whose compile traps: refused, and the instance is renewed.
  world.log.length = 0;
  const [t, reason] = v.compile(enc.encode('trap'));
  assert.equal(t, 0);
  assert.equal(dec.decode(reason), 'the JSON Schema validator failed on this schema (Maximum call stack size exceeded)');
  const [d] = v.compile(enc.encode('D'));
  assert.ok(d > 0 && ![a, b, c].includes(d));
  v.release(b);
  assert.deepEqual(world.log, ['new instance', '3: compile B as 1', '3: compile C as 2', '3: compile D as 3', '3: release B']);
  // A released handle, or one never given, is an error, not a throw, and
  // no reason for a new instance.
  world.log.length = 0;
  assert.match(dec.decode(/** @type {Uint8Array} */ (v.validate(b, enc.encode('ok')))), /^\x1fthe value could not be checked: its schema is not compiled$/);
  v.release(b);
  v.release(12345);
  assert.deepEqual(world.log, []);
  // An instance a huge value grew is let go after that call.
  assert.equal(dec.decode(/** @type {Uint8Array} */ (v.validate(c, enc.encode('huge')))), '/p\x1fhuge is not ok for C');
  assert.equal(v.validate(d, enc.encode('ok')), null);
  assert.deepEqual(world.log, ['3: validate huge against C', 'new instance', '4: compile C as 1', '4: compile D as 2', '4: validate ok against D']);
});

test('where the engine refuses a synchronous instance, the next one is made ahead of time and a trap is recovered from with it', async () => {
  const mod = await WebAssembly.compile(readFileSync(new URL('../dist/neuron-schema.wasm', import.meta.url)));
  /** @type {WebAssembly.Imports} */
  const imports = {};
  for (const { module, name, kind } of WebAssembly.Module.imports(mod)) {
    if (kind === 'function') (imports[module] ??= {})[name] = () => 0;
  }
  let refused = 0;
  const [first, renew] = await instances(mod, imports, () => {
    refused++;
    throw new RangeError('WebAssembly.Instance is disallowed on the main thread, if the buffer size is larger than 4KB');
  });
  assert.equal(refused, 1, 'tried once, then made ahead of time');
  const v = backend(first, renew);
  /** @type {any} */
  let schema = { anyOf: [{ type: 'array', items: { $ref: '#' } }, { type: 'integer' }] };
  for (let i = 0; i < 10; i++) schema = { anyOf: [schema, { type: 'string' }] };
  const [handle] = v.compile(enc.encode(JSON.stringify(schema)));
  assert.ok(handle > 0);
  let deep = '1';
  for (let i = 0; i < 250; i++) deep = `[${deep}]`;
  await new Promise((r) => setTimeout(r, 250));  // the spare is made
  assert.match(dec.decode(/** @type {Uint8Array} */ (v.validate(handle, enc.encode(deep)))), /failed on it \(memory access out of bounds\)/);
  assert.equal(v.validate(handle, enc.encode('[[1]]')), null, 'the spare took over, the schema compiled again');
  assert.match(dec.decode(/** @type {Uint8Array} */ (v.validate(handle, enc.encode('[["x"], {}]')))), /\/1\x1f/);
  // A second trap at once: no spare is ready yet; the value after it waits
  // for none, it is refused saying so, and the one after the spare is checked.
  v.validate(handle, enc.encode(deep));
  assert.match(dec.decode(/** @type {Uint8Array} */ (v.validate(handle, enc.encode('[[1]]')))),
    /^\x1fthe value could not be checked: the JSON Schema validator could not be restarted \(no fresh instance of it is ready yet\)$/);
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(v.validate(handle, enc.encode('[[1]]')), null);
  assert.equal(refused, 1, 'never tried synchronously again');
});

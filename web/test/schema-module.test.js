// neuron-schema.wasm in Node: loaded from disk next to the core only when a
// capability brings a raw JSON Schema, from bytes handed over with
// initNeuronSdk({ schemaWasm }), and a clear start() error when it cannot be
// read. Each case runs in a child process: the module is loaded once per realm.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ENTRY = new URL('../src/index.js', import.meta.url).href;
const SCHEMA_WASM = fileURLToPath(new URL('../dist/neuron-schema.wasm', import.meta.url));

/**
 * Runs `body` (an async module body with `Neuron`, `initNeuronSdk` and `report(x)`) in a fresh Node.
 * @param {string} prelude code run before the package is imported
 * @param {string} body
 * @returns {Promise<any>} what the child reported
 */
function child(prelude, body) {
  const src = `${prelude}
const { Neuron, initNeuronSdk } = await import(${JSON.stringify(ENTRY)});
const report = (x) => process.stdout.write(JSON.stringify(x));
const schemaCap = (n) => n.handle({ type: 'core/x.checked', scope: 'any', concurrency: 1,
  inputSchema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } } }, async (i) => i);
${body}`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', src], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

// start() against a gateway that is not there: it gets as far as connecting
// (the schema module loaded) and is then stopped.
const START_THEN_STOP = `
const neuron = new Neuron({ gatewayUrl: 'http://127.0.0.1:9', neuronId: 'n-1', auth: () => 't', initialReconnectDelayMs: 10_000 });
schemaCap(neuron);
neuron.on('error', () => {});
let error = null;
const started = neuron.start().catch((e) => { error = { name: e.name, message: e.message }; });
await new Promise((r) => setTimeout(r, 300));
await neuron.stop({ timeoutMs: 100 });
await started;
report({ error });
`;

test('a raw JSON Schema capability loads neuron-schema.wasm from disk, next to the core', async () => {
  const r = await child('', START_THEN_STOP);
  assert.match(r.error?.message ?? '', /stop/i, 'start() ends because of stop(), not because the validator failed');
  assert.doesNotMatch(r.error?.message ?? '', /JSON Schema validator/);
});

test('initNeuronSdk({ schemaWasm }) takes the bytes (nothing read from disk)', async () => {
  const r = await child(`const { readFileSync } = await import('node:fs');
const bytes = readFileSync(${JSON.stringify(SCHEMA_WASM)});`, `await initNeuronSdk({ schemaWasm: bytes });
${START_THEN_STOP}`);
  assert.doesNotMatch(r.error?.message ?? '', /JSON Schema validator/);
});

test('when neuron-schema.wasm cannot be read, start() rejects saying what is missing and how to hand it over', async () => {
  const r = await child(`globalThis.NEURON_SDK_SCHEMA_WASM = 'file:///nonexistent/neuron-schema.wasm';`, START_THEN_STOP);
  assert.ok(r.error, 'start() rejected');
  assert.match(r.error.message, /could not load its JSON Schema validator from file:\/\/\/nonexistent\/neuron-schema\.wasm: .*ENOENT/);
  assert.match(r.error.message, /initNeuronSdk\(\{ schemaWasm: bytes \}\)/);
});

test('bytes that are not neuron-schema.wasm are refused with the same advice', async () => {
  const r = await child(`globalThis.NEURON_SDK_SCHEMA_WASM = new Uint8Array([1, 2, 3]);`, START_THEN_STOP);
  assert.match(r.error?.message ?? '', /could not load its JSON Schema validator from the bytes given/);
});

test('capabilities without a raw JSON Schema never need it: start() works when it is missing', async () => {
  const r = await child(`globalThis.NEURON_SDK_SCHEMA_WASM = 'file:///nonexistent/neuron-schema.wasm';`, START_THEN_STOP.replace('schemaCap(neuron);', `neuron.handle({ type: 'core/x.plain', scope: 'any', concurrency: 1 }, async (i) => i);`));
  assert.doesNotMatch(r.error?.message ?? '', /JSON Schema validator/);
  assert.match(r.error?.message ?? '', /stop/i);
});

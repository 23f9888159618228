// What user code can throw at the SDK without losing a lease or hanging it:
// strings cut inside a surrogate pair, a fetch that throws synchronously,
// handlers and listeners that call stop() in the middle of a batch, transports
// that close by themselves, subclassed transports, outputs JSON cannot carry.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Neuron, HttpTransport, defineCapability } from '../src/index.js';
import { getCore } from '../src/core.js';
import { FakeGateway, sleep, until } from './support/fake-gateway.js';
import { memoryGateway } from './support/memory-gateway.js';
import { z } from 'zod';

const FFFD = '\uFFFD';

test('strings cut inside a surrogate pair: leases run, outputs are acked, progress and reasons arrive, with U+FFFD for the half', async () => {
  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-sur', transport: gw.transport });
  /** @type {unknown[]} */
  const inputs = [];
  const cut = 'emoji 😀'.slice(0, 7); // ends with a lone high surrogate
  n.handle({ type: 'core/x', scope: 'any', concurrency: 4 }, async (input, ctx) => {
    inputs.push(input);
    ctx.progress({ message: cut, data: { t: cut } });
    await sleep(1);
    if (ctx.leaseId === 'l-fail') ctx.fail(cut, { code: 'CUT' });
    if (ctx.leaseId === 'l-throw') throw new Error(cut);
    return { text: cut };
  });
  await n.start();
  for (const id of ['l-ok', 'l-fail', 'l-throw']) gw.lease(id, 'core/x', { s: cut });
  const [ok, failed, threw] = await Promise.all(['l-ok', 'l-fail', 'l-throw'].map((id) => gw.terminalFor(id)));
  assert.deepEqual(inputs.map((i) => /** @type {any} */ (i).s), [cut, cut, cut], 'the handler sees the input as the gateway sent it');
  assert.equal(ok.type, 'ack');
  assert.equal(ok.output.text, `emoji ${FFFD}`);
  assert.equal(failed.kind, 'terminal');
  assert.equal(failed.reason, `emoji ${FFFD}`);
  assert.equal(threw.kind, 'retryable');
  assert.equal(threw.reason, `emoji ${FFFD}`);
  const progress = gw.sent('progress').find((p) => p.leaseId === 'l-ok');
  assert.equal(progress.message, `emoji ${FFFD}`);
  assert.equal(progress.data.t, `emoji ${FFFD}`);
  await n.stop();
});

test('a lone surrogate escape in an SSE lease (the byte path) is not dropped as malformed', async () => {
  const gw = memoryGateway();
  const n = new Neuron({ neuronId: 'n-sur-sse', gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch });
  /** @type {Error[]} */
  const errors = [];
  n.on('error', (e) => errors.push(e));
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1, inputSchema: { type: 'object', properties: { s: { type: 'string' } } } },
    (input) => ({ echo: input.s }));
  await n.start();
  gw.lease('L1', '{"s":"cut \\ud83d"}');
  await until(() => gw.terminal('L1').length === 1, 'the ack');
  assert.equal(gw.terminal('L1')[0].type, 'ack');
  assert.equal(gw.terminal('L1')[0].output.echo, `cut ${FFFD}`);
  assert.deepEqual(errors, []);
  await n.stop();
});

test('a schema with a property name cut inside a surrogate pair compiles, and reads that name as inputs do (U+FFFD), on a custom transport and the byte path', async () => {
  // JSON.stringify writes the half emoji as a lone surrogate escape; the core
  // reads it as U+FFFD in the schema and in every input alike (the
  // validator used to refuse such a schema, or never match the name).
  const cut = '😀'.slice(0, 1);
  const inputSchema = { type: 'object', properties: { [cut]: { type: 'string' } }, required: [cut], additionalProperties: false };
  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-sur-schema', transport: gw.transport });
  n.handle({ type: 'core/x', scope: 'any', concurrency: 2, inputSchema }, () => 'ran');
  await n.start();
  gw.lease('l-ok', 'core/x', { [cut]: 'x' });
  gw.lease('l-bad', 'core/x', { [cut]: 7 });
  const [ok, bad] = await Promise.all(['l-ok', 'l-bad'].map((id) => gw.terminalFor(id)));
  assert.equal(ok.type, 'ack');
  assert.equal(bad.kind, 'schema-mismatch');
  await n.stop();

  const sse = memoryGateway();
  const viaBytes = new Neuron({ neuronId: 'n-sur-schema-sse', gatewayUrl: 'http://gw', auth: () => 't', fetch: sse.fetch });
  viaBytes.handle({ type: 'core/x', scope: 'any', concurrency: 2, inputSchema }, () => 'ran');
  await viaBytes.start();
  sse.lease('L1', JSON.stringify({ [cut]: 'x' }));
  sse.lease('L2', JSON.stringify({ other: 'x' }));
  await until(() => sse.terminal('L1').length === 1 && sse.terminal('L2').length === 1, 'both verdicts');
  assert.equal(sse.terminal('L1')[0].type, 'ack');
  assert.equal(sse.terminal('L2')[0].kind, 'schema-mismatch');
  await viaBytes.stop();
});

test('a fetch that throws synchronously fails that request like a network error; the rest of the batch is handled and the ack retried', async () => {
  const gw = memoryGateway({ throwOnce: (f) => f.type === 'ack' && f.leaseId === 'L1' });
  const n = new Neuron({ neuronId: 'n-sync', gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch, initialReconnectDelayMs: 10 });
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (x) => x); // synchronous: acks leave inside the same tape
  await n.start();
  gw.send(['L1', 'L2', 'L3'].map((id) => `{"type":"lease","leaseId":"${id}","task":{"taskId":"t-${id}","type":"core/x","input":1}}`).join('\n\ndata: '));
  await until(() => ['L1', 'L2', 'L3'].every((id) => gw.terminal(id).length === 1), 'three acks', 5000);
  for (const id of ['L1', 'L2', 'L3']) assert.equal(gw.terminal(id)[0].type, 'ack', id);
  assert.deepEqual(n.stats().capabilities.map((/** @type {any} */ c) => [c.queued, c.running]), [[0, 0]]);
  await n.stop({ drain: false });
});

test('stop() called by a handler in the middle of a batch: no later lease of that batch runs its handler; every lease is nacked once', async () => {
  const gw = memoryGateway();
  const n = new Neuron({ neuronId: 'n-reent', gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch });
  /** @type {string[]} */
  const ran = [];
  /** @type {Promise<void> | undefined} */
  let stopped;
  n.handle({ type: 'core/x', scope: 'any', concurrency: 4 }, (x, ctx) => {
    ran.push(ctx.leaseId);
    if (ctx.leaseId === 'L1') stopped = n.stop({ drain: false });
    return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(x)));
  });
  await n.start();
  gw.send(['L1', 'L2', 'L3'].map((id) => `{"type":"lease","leaseId":"${id}","task":{"taskId":"t-${id}","type":"core/x","input":1}}`).join('\n\ndata: '));
  await until(() => stopped !== undefined, 'stop()');
  await stopped;
  assert.deepEqual(ran, ['L1']);
  for (const id of ['L1', 'L2', 'L3']) {
    assert.equal(gw.terminal(id).length, 1, id);
    assert.equal(gw.terminal(id)[0].code, 'SHUTTING_DOWN', id);
  }
});

test('a lease cancelled while its async zod input check runs never reaches the handler', async () => {
  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-zod', transport: gw.transport });
  let calls = 0;
  const Slow = defineCapability({
    type: 'core/slow-check', scope: 'any', concurrency: 1,
    input: z.object({ n: z.number() }).refine(async () => { await sleep(50); return true; }),
    output: z.number(),
  });
  n.handle(Slow, () => { calls++; return 1; });
  await n.start();
  gw.lease('l-1', 'core/slow-check', { n: 1 });
  await sleep(10);
  gw.send({ type: 'cancel', leaseId: 'l-1', reason: 'user' });
  const t = await gw.terminalFor('l-1');
  await sleep(80);
  assert.equal(calls, 0);
  assert.equal(t.kind, 'cancelled');
  assert.equal(gw.terminal('l-1').length, 1);
  await n.stop();
});

test('a custom transport is stopped by stop() even after it closed by itself, and stop() waits for its stop()', async () => {
  const gw = new FakeGateway();
  let stops = 0;
  let stopDone = false;
  gw.transport.stop = async () => {
    stops++;
    await sleep(30);
    stopDone = true;
  };
  const n = new Neuron({ neuronId: 'n-close', transport: gw.transport });
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 1);
  await n.start();
  gw.cb.onClose('bridge went away');
  await sleep(5);
  await n.stop();
  assert.equal(stops, 1, 'transport.stop() called once');
  assert.equal(stopDone, true, 'stop() resolved only after transport.stop() did');

  // And while open: the same promise ordering.
  const gw2 = new FakeGateway();
  let stop2Done = false;
  gw2.transport.stop = async () => { await sleep(30); stop2Done = true; };
  const n2 = new Neuron({ neuronId: 'n-close-2', transport: gw2.transport });
  n2.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 1);
  await n2.start();
  await n2.stop();
  assert.equal(stop2Done, true);
});

test('a subclassed HttpTransport is driven through its methods, so its overrides run', async () => {
  const gw = memoryGateway();
  /** @type {string[]} */
  const seen = [];
  class Audited extends HttpTransport {
    /** @param {any} path @param {any} frame */
    post(path, frame) {
      seen.push(frame.type);
      return super.post(path, frame);
    }
  }
  const transport = new Audited({ gatewayUrl: 'http://gw', neuronId: 'n-sub', auth: () => 't', fetch: gw.fetch });
  const n = new Neuron({ neuronId: 'n-sub', transport });
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (x) => x);
  await n.start();
  gw.lease('L1');
  await until(() => gw.terminal('L1').length === 1, 'the ack');
  assert.deepEqual(seen.slice(0, 2), ['register', 'ack']);
  await n.stop();
});

test('outputs JSON cannot carry end in nack terminal INVALID_OUTPUT saying why (BigInt, cycle, too deep); no retry', async () => {
  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-out', transport: gw.transport });
  const cyclic = /** @type {any} */ ({});
  cyclic.self = cyclic;
  /** @type {any} */
  let deep = 1;
  for (let i = 0; i < 300; i++) deep = [deep];
  /** @type {Record<string, unknown>} */
  const outputs = { 'l-big': { n: 10n }, 'l-cyc': cyclic, 'l-deep': deep };
  n.handle({ type: 'core/x', scope: 'any', concurrency: 3 }, (_, ctx) => outputs[ctx.leaseId]);
  await n.start();
  for (const id of Object.keys(outputs)) gw.lease(id, 'core/x');
  const [big, cyc, deepNack] = await Promise.all(Object.keys(outputs).map((id) => gw.terminalFor(id)));
  for (const nack of [big, cyc, deepNack]) {
    assert.equal(nack.type, 'nack');
    assert.equal(nack.kind, 'terminal');
    assert.equal(nack.code, 'INVALID_OUTPUT');
  }
  assert.match(big.reason, /not JSON-serialisable: .*BigInt/);
  assert.match(cyc.reason, /not JSON-serialisable: .*circular/i);
  assert.match(deepNack.reason, /deeper than 256/);
  await n.stop();
});

test('JSON as deep as the core takes (250 levels) passes through it both ways, on the byte path and a custom transport, with and without a schema', async () => {
  // The core parses, checks and writes nested JSON recursively: its stack
  // (CMakeLists.txt, NEURON_WASM_STACK) must hold the deepest the frame limit lets through.
  /** @type {any} */
  let deep = 'bottom';
  for (let i = 0; i < 250; i++) deep = i % 2 ? { d: deep } : [deep]; // an object outermost
  const text = JSON.stringify(deep);
  const schema = { type: 'object', properties: { d: { type: 'array' } }, required: ['d'] };
  for (const withSchema of [false, true]) {
    const spec = { scope: 'any', concurrency: 1, ...(withSchema ? { inputSchema: schema, outputSchema: schema } : {}) };
    const sse = memoryGateway();
    const viaBytes = new Neuron({ neuronId: 'n-deep-sse', gatewayUrl: 'http://gw', auth: () => 't', fetch: sse.fetch });
    viaBytes.handle({ type: 'core/x', ...spec }, (input) => input);
    await viaBytes.start();
    sse.lease('L1', text);
    await until(() => sse.terminal('L1').length === 1, 'the ack');
    assert.equal(sse.terminal('L1')[0].type, 'ack', `byte path, schema: ${withSchema}`);
    assert.deepEqual(sse.terminal('L1')[0].output, deep);
    await viaBytes.stop();

    const gw = new FakeGateway();
    const viaObjects = new Neuron({ neuronId: 'n-deep', transport: gw.transport });
    viaObjects.handle({ type: 'core/x', ...spec }, (input) => input);
    await viaObjects.start();
    gw.lease('l-1', 'core/x', JSON.parse(text));
    const ack = await gw.terminalFor('l-1');
    assert.equal(ack.type, 'ack', `custom transport, schema: ${withSchema}`);
    assert.deepEqual(ack.output, deep);
    await viaObjects.stop();
  }
});

test('a schema as deep as the core takes (127 nested items) compiles and checks a value as deep, in and out, on the byte path and a custom transport; a deeper one is refused', async () => {
  // The core's schema fast path and valijson build and check nested schemas
  // recursively (beyond the JS fast check's 33 levels, the core checks).
  /** @param {number} levels */
  const nested = (levels) => {
    /** @type {any} */
    let schema = { type: 'string' };
    /** @type {any} */
    let value = 'bottom';
    /** @type {any} */
    let wrong = 7;
    for (let i = 1; i < levels; i++) {
      schema = { type: 'array', items: schema };
      value = [value];
      wrong = [wrong];
    }
    return { schema, value, wrong };
  };
  const { schema, value, wrong } = nested(128);  // 128 levels of JSON: the limit
  const spec = { scope: 'any', concurrency: 2, inputSchema: schema, outputSchema: schema };
  const sse = memoryGateway();
  const viaBytes = new Neuron({ neuronId: 'n-deep-schema-sse', gatewayUrl: 'http://gw', auth: () => 't', fetch: sse.fetch });
  viaBytes.handle({ type: 'core/x', ...spec }, (input) => input);
  await viaBytes.start();
  sse.lease('L1', JSON.stringify(value));
  sse.lease('L2', JSON.stringify(wrong));
  await until(() => sse.terminal('L1').length === 1 && sse.terminal('L2').length === 1, 'both verdicts');
  assert.equal(sse.terminal('L1')[0].type, 'ack');
  assert.deepEqual(sse.terminal('L1')[0].output, value);
  assert.equal(sse.terminal('L2')[0].kind, 'schema-mismatch', 'the deep wrong input is refused');
  await viaBytes.stop();

  const gw = new FakeGateway();
  const viaObjects = new Neuron({ neuronId: 'n-deep-schema', transport: gw.transport });
  viaObjects.handle({ type: 'core/x', ...spec }, (input) => input);
  await viaObjects.start();
  gw.lease('l-1', 'core/x', value);
  gw.lease('l-2', 'core/x', wrong);
  const [ack, nack] = await Promise.all([gw.terminalFor('l-1'), gw.terminalFor('l-2')]);
  assert.equal(ack.type, 'ack');
  assert.deepEqual(ack.output, value);
  assert.equal(nack.kind, 'schema-mismatch');
  await viaObjects.stop();

  // One level more is refused before it reaches the validator (240 levels
  // overflowed valijson's stack in the schema module).
  const tooDeep = new Neuron({ neuronId: 'n-too-deep', transport: new FakeGateway().transport });
  tooDeep.handle({ type: 'core/x', scope: 'any', concurrency: 1, inputSchema: nested(129).schema }, (input) => input);
  await assert.rejects(tooDeep.start(), /capability core\/x: inputSchema: schema nests deeper than 128 levels/);
  await tooDeep.stop();
});

test('a schema whose $refs nest past the limit is refused at start() and the validator keeps working; a recursive schema checks a value as deep as the core takes', async () => {
  // valijson parses a $ref's target where the $ref stands: a chain of 300
  // links in 4 levels of text overflowed the schema module's stack, and every
  // schema check in the process failed after it.
  /** @param {number} links */
  const chain = (links) => {
    /** @type {Record<string, unknown>} */
    const definitions = {};
    for (let i = 0; i < links; i++) definitions[`d${i}`] = { type: 'array', items: { $ref: `#/definitions/d${i + 1}` } };
    definitions[`d${links}`] = { type: 'string' };
    return { $ref: '#/definitions/d0', definitions };
  };
  for (const links of [70, 300]) {
    const n = new Neuron({ neuronId: 'n-ref-chain', transport: new FakeGateway().transport });
    n.handle({ type: 'core/x', scope: 'any', concurrency: 1, inputSchema: chain(links) }, (input) => input);
    await assert.rejects(n.start(), /capability core\/x: inputSchema: schema nests deeper than 128 levels once its \$refs are followed/);
    await n.stop();
  }
  // A schema that applies the same subschemas over and over (here 2^40
  // times, to any value) would hang the neuron on its first lease.
  /** @type {Record<string, unknown>} */
  const doubling = { d40: { type: 'string' } };
  for (let i = 0; i < 40; i++) doubling[`d${i}`] = { allOf: [{ $ref: `#/definitions/d${i + 1}` }, { $ref: `#/definitions/d${i + 1}` }] };
  const costly = new Neuron({ neuronId: 'n-costly', transport: new FakeGateway().transport });
  costly.handle({ type: 'core/x', scope: 'any', concurrency: 1, inputSchema: { $ref: '#/definitions/d0', definitions: doubling } }, (input) => input);
  await assert.rejects(costly.start(), /capability core\/x: inputSchema: schema is too costly to check: it applies more than 100000 subschemas to one place of a value \(its root\)/);
  await costly.stop();
  // A schema that refers back to itself without a property or an item in
  // between would be checked forever on the first lease.
  const loop = new Neuron({ neuronId: 'n-ref-loop', transport: new FakeGateway().transport });
  loop.handle({ type: 'core/x', scope: 'any', concurrency: 1, inputSchema: { allOf: [{ $ref: '#' }] } }, (input) => input);
  await assert.rejects(loop.start(), /capability core\/x: inputSchema: .*leads back to where it stands without a property or an item in between/);
  await loop.stop();
  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-ref-ok', transport: gw.transport });
  const recursive = { type: 'object', properties: { a: { $ref: '#' } }, additionalProperties: false };
  n.handle({ type: 'core/chain', scope: 'any', concurrency: 2, inputSchema: chain(60) }, (input) => input);
  n.handle({ type: 'core/tree', scope: 'any', concurrency: 2, inputSchema: recursive, outputSchema: recursive }, (input) => input);
  await n.start();
  /** @type {any} */
  let nested = 'bottom';
  for (let i = 0; i < 60; i++) nested = [nested];
  /** @type {any} */
  let deep = {};
  /** @type {any} */
  let wrong = { b: 1 };
  for (let i = 0; i < 250; i++) {
    deep = { a: deep };
    wrong = { a: wrong };
  }
  gw.lease('l-chain', 'core/chain', nested);
  gw.lease('l-chain-wrong', 'core/chain', [nested]);
  gw.lease('l-deep', 'core/tree', deep);
  gw.lease('l-wrong', 'core/tree', wrong);
  const [chainAck, chainNack, ack, nack] = await Promise.all(['l-chain', 'l-chain-wrong', 'l-deep', 'l-wrong'].map((id) => gw.terminalFor(id)));
  assert.equal(chainAck.type, 'ack');
  assert.equal(chainNack.kind, 'schema-mismatch');
  assert.equal(ack.type, 'ack');
  assert.deepEqual(ack.output, deep);
  assert.equal(nack.kind, 'schema-mismatch');
  await n.stop();
});

test('a value that exhausts the JSON Schema validator\'s stack is refused saying why; the process lives on and later checks work, on a custom transport and the byte path', async () => {
  // valijson recurses once per schema level per value level. A recursive
  // schema wrapped in 11 levels of anyOf, checked against an array 250 deep
  // (as deep as the core takes), used up neuron-schema.wasm's stack: the
  // trap was thrown through the core into the host (an uncaught exception
  // ended the Node process), and the module stayed broken.
  /** @type {any} */
  let schema = { anyOf: [{ type: 'array', items: { $ref: '#' } }, { type: 'integer' }] };
  for (let i = 0; i < 10; i++) schema = { anyOf: [schema, { type: 'string' }] };
  /** @type {any} */
  let deep = 1;
  for (let i = 0; i < 250; i++) deep = [deep];
  const refused = /^the value could not be checked: the JSON Schema validator failed on it \(.+\); a value this deep against a schema that nests many levels around its recursion can exhaust its stack$/;

  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-stack', transport: gw.transport });
  /** @type {Error[]} */
  const errors = [];
  n.on('error', (e) => errors.push(e));
  n.handle({ type: 'core/x', scope: 'any', concurrency: 2, inputSchema: schema, outputSchema: schema },
    (input) => (Array.isArray(input) && input[0] === 'give deep' ? deep : input));
  await n.start();
  gw.lease('l-deep-in', 'core/x', deep);
  const deepIn = await gw.terminalFor('l-deep-in');
  assert.equal(deepIn.kind, 'schema-mismatch');
  assert.equal(deepIn.reason, "input does not match the capability's inputSchema");
  assert.equal(deepIn.errors.length, 1);
  assert.match(deepIn.errors[0].message, refused);
  gw.lease('l-deep-out', 'core/x', ['give deep']);
  const deepOut = await gw.terminalFor('l-deep-out');
  assert.equal(deepOut.kind, 'schema-mismatch');
  assert.match(deepOut.errors[0].message, refused);
  // The validator works again: values it can check are checked.
  gw.lease('l-ok', 'core/x', [[[7]]]);
  gw.lease('l-wrong', 'core/x', [[{ no: 1 }]]);
  gw.lease('l-deep-again', 'core/x', deep);
  const [ok, wrong, again] = await Promise.all(['l-ok', 'l-wrong', 'l-deep-again'].map((id) => gw.terminalFor(id)));
  assert.equal(ok.type, 'ack');
  assert.deepEqual(ok.output, [[[7]]]);
  assert.equal(wrong.kind, 'schema-mismatch');
  assert.doesNotMatch(JSON.stringify(wrong.errors), /could not be checked/);
  assert.match(again.errors[0].message, refused);
  assert.deepEqual(errors, []);
  await n.stop();

  const mem = memoryGateway();
  const bytePath = new Neuron({ neuronId: 'n-stack-sse', gatewayUrl: 'http://gw', auth: () => 't', fetch: mem.fetch });
  bytePath.handle({ type: 'core/x', scope: 'any', concurrency: 1, inputSchema: schema }, (input) => input);
  await bytePath.start();
  mem.lease('L-deep', JSON.stringify(deep));
  mem.lease('L-ok', '[[3]]');
  await until(() => mem.terminal('L-deep').length === 1 && mem.terminal('L-ok').length === 1, 'both verdicts');
  assert.equal(mem.terminal('L-deep')[0].kind, 'schema-mismatch');
  assert.match(mem.terminal('L-deep')[0].errors[0].message, refused);
  assert.equal(mem.terminal('L-ok')[0].type, 'ack');
  await bytePath.stop();
});

test('a multi-megabyte output does not stay pinned in wasm memory', async (t) => {
  const Module = getCore();
  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-bigout', transport: gw.transport });
  const big = 'x'.repeat(4 << 20);
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (_, ctx) => (ctx.leaseId === 'l-big' ? { big } : { small: true }));
  await n.start();
  t.after(() => n.stop());
  gw.lease('l-small-0', 'core/x');
  await gw.terminalFor('l-small-0');
  const before = Module.heapInUse();
  gw.lease('l-big', 'core/x');
  const ack = await gw.terminalFor('l-big');
  assert.equal(ack.output.big.length, big.length);
  // The boundary gives an oversized buffer back after a few smaller uses in a row.
  for (let i = 1; i <= 6; i++) {
    gw.lease(`l-small-${i}`, 'core/x');
    await gw.terminalFor(`l-small-${i}`);
  }
  const after = Module.heapInUse();
  assert.ok(after - before < 1 << 20, `wasm heap in use grew by ${after - before} bytes after one 4 MiB output`);
});

test('stop() while zod schemas are being converted: start() rejects saying stop() came first, stop() resolves', async () => {
  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-early', transport: gw.transport });
  n.handle(defineCapability({ type: 'core/z', scope: 'any', concurrency: 1, input: z.object({ a: z.string() }), output: z.number() }), () => 1);
  const started = n.start();
  const stopped = n.stop();
  await assert.rejects(started, /stop\(\) was called before the gateway registered/);
  await stopped;
  assert.equal(gw.sent('register').length, 0);
});

test('the tape player plays every record even if one throws, reports the throw, and names a failed command', () => {
  const { boundary } = getCore();
  /** @type {unknown[][]} */
  const calls = [];
  /** @type {string[]} */
  const thrown = [];
  const sink = {
    open() { throw new Error('a sink method threw'); },
    close(/** @type {string} */ reason) { calls.push(['close', reason]); },
    deadline(/** @type {number} */ at) { calls.push(['deadline', at]); },
    failedRecord(/** @type {Error} */ err) { thrown.push(err.message); },
  };
  // A refused command's tape (bindings.cpp's table): failed, then open,
  // close('bye'), deadline 1234.
  const tape = { r: new Float64Array([30, 0, 1, 20, 22, 2, 1, 1234]), t: ['invalid-capability', 'bad type', 'bye'] };
  boundary.play(tape, sink);
  assert.deepEqual(calls, [['close', 'bye'], ['deadline', 1234]], 'the records after the throwing one still played');
  assert.deepEqual(thrown, ['a sink method threw']);
  assert.deepEqual(boundary.failed(tape), ['invalid-capability', 'bad type']);
  assert.equal(boundary.failed({ r: new Float64Array([20]), t: [] }), null);
  boundary.play({ r: new Float64Array([99, 22, 0]), t: ['never'] }, sink);
  assert.match(thrown[1], /unknown tape record 99/);
  assert.equal(calls.length, 2, 'an unknown record ends its tape');
});

test('a gateway disconnect over a custom transport: the neuron stops the transport, starts it again after a backoff and registers anew', async (t) => {
  const gw = new FakeGateway();
  let starts = 0;
  const start = gw.transport.start;
  gw.transport.start = async () => { starts++; return start(); };
  const n = new Neuron({ neuronId: 'n-disc', transport: gw.transport });
  t.after(() => n.stop());
  /** @type {any[]} */
  const reconnecting = [];
  n.on('connection:reconnecting', (info) => reconnecting.push(info));
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (x) => x);
  await n.start();
  gw.send({ type: 'disconnect', reason: 'gateway draining' });
  await until(() => gw.sent('register').length === 2, 'a second register');
  assert.equal(starts, 2);
  assert.equal(reconnecting.length, 1);
  assert.equal(reconnecting[0].reason, 'gateway draining');
  gw.lease('l-after', 'core/x', 7);
  assert.equal((await gw.terminalFor('l-after')).type, 'ack');
});

test('the clock fed to the core follows the wall clock forward after a sleep, and never goes back', async () => {
  const { makeClock } = await import('../src/clock.js');
  let wall = 1_000_000;
  let mono = 50;
  const now = makeClock(() => wall, () => mono);
  assert.equal(now(), 1_000_000);
  mono += 100;
  wall += 100;
  assert.equal(now(), 1_000_100);
  wall += 60_000; // the machine slept: the monotonic counter stood still
  assert.equal(now(), 1_060_100, 'after a sleep, stamps and deadlines catch up');
  mono += 10;
  wall += 10;
  assert.equal(now(), 1_060_110);
  wall -= 3_600_000; // the wall clock was set back an hour
  mono += 10;
  assert.equal(now(), 1_060_120, 'a wall clock set back changes nothing');
  wall += 500; // small drift within a second: the monotonic clock rules
  mono += 10;
  assert.equal(now(), 1_060_130);
});

test('an ack never overtakes its lease\'s progress POST on the wire (the gateway sees progress, then the verdict)', async (t) => {
  const gw = new FakeGateway();
  /** @type {string[]} */
  const arrived = [];
  const post = gw.transport.post;
  // The gateway receives a POST when it settles; progress is slow to arrive.
  gw.transport.post = async (path, frame) => {
    const answer = await post(path, frame);
    if (path === '/neuron/progress') await sleep(40);
    arrived.push(`${frame.type} ${frame.leaseId ?? ''}`.trim());
    return answer;
  };
  const n = new Neuron({ neuronId: 'n-order', transport: gw.transport });
  t.after(() => n.stop());
  n.handle({ type: 'core/x', scope: 'any', concurrency: 2 }, (x, ctx) => {
    ctx.progress({ percent: 99 });
    return x; // at once: the progress POST is still on its way
  });
  await n.start();
  gw.lease('l-1', 'core/x', 1);
  gw.lease('l-2', 'core/x', 2);
  await until(() => arrived.length === 5, 'register, two progress, two acks');
  for (const id of ['l-1', 'l-2']) {
    const progress = arrived.indexOf(`progress ${id}`);
    assert.ok(progress >= 0 && progress < arrived.indexOf(`ack ${id}`), `progress of ${id} first: ${arrived.join(', ')}`);
  }
});

test('custom Transport: an ack whose POST fails is built again from the handler\'s own output, and the output is let go once each ack settles', async () => {
  const gw = new FakeGateway();
  /** @type {Record<string, number>} */
  const tries = {};
  gw.answer = (path, frame) => {
    if (path !== '/neuron/ack') return {};
    const n = (tries[frame.leaseId] = (tries[frame.leaseId] ?? 0) + 1);
    if (frame.leaseId === 'l-retry' && n === 1) throw Object.assign(new Error('busy'), { status: 503 });
    if (frame.leaseId === 'l-refused') throw Object.assign(new Error('lease expired'), { status: 409 });
    return {};
  };
  // The fake gateway clones what it records: note what post() itself is given.
  /** @type {Map<string, unknown[]>} */
  const given = new Map();
  const post = gw.transport.post;
  gw.transport.post = (path, frame) => {
    if (path === '/neuron/ack') given.set(frame.leaseId, [...(given.get(frame.leaseId) ?? []), /** @type {any} */ (frame).output]);
    return post(path, frame);
  };
  const n = new Neuron({ neuronId: 'n-kept', transport: gw.transport });
  const out = { id: 'x', list: [1, 'two', { three: true }], none: null };
  n.handle({ type: 'core/x', scope: 'any', concurrency: 4 }, () => out);
  await n.start();
  for (const id of ['l-retry', 'l-refused', 'l-ok']) gw.lease(id, 'core/x');
  const host = /** @type {any} */ (n)._host;
  await until(() => tries['l-retry'] === 2 && tries['l-refused'] === 1 && tries['l-ok'] === 1, 'every ack settled', 5000);
  await until(() => host.outputs.size === 0, 'the kept outputs let go');
  const retried = gw.sent('ack').filter((a) => a.leaseId === 'l-retry');
  assert.equal(retried.length, 2);
  for (const ack of retried) {
    assert.deepEqual(ack.output, out);
    assert.equal(ack.taskId, 'task-l-retry');
    assert.equal(ack.neuronId, 'n-kept');
    assert.equal(typeof ack.durationMs, 'number');
  }
  assert.equal(retried[0].durationMs, retried[1].durationMs, 'a retry reports the handler\'s duration');
  // Both attempts carry the handler's own object: no JSON of it was made.
  assert.deepEqual(given.get('l-retry')?.map((o) => o === out), [true, true]);
  assert.equal(gw.sent('nack').length, 0);
  await n.stop();
});

test('custom Transport: an output kept for the first attempt only (a schema the JS check cannot vouch for) is let go once that attempt is posted; the retry is the core\'s', async () => {
  const gw = new FakeGateway();
  let attempts = 0;
  gw.answer = (path) => {
    if (path === '/neuron/ack' && ++attempts === 1) throw Object.assign(new Error('busy'), { status: 503 });
    return {};
  };
  const n = new Neuron({ neuronId: 'n-first', transport: gw.transport });
  const host = /** @type {any} */ (n)._host;
  /** @type {{ own: boolean, keptThen: number }[]} */
  const given = [];
  const post = gw.transport.post;
  gw.transport.post = (path, frame) => {
    if (path === '/neuron/ack') given.push({ own: /** @type {any} */ (frame).output === out, keptThen: host.outputs.size });
    return post(path, frame);
  };
  const out = { code: 'ab-1' };
  // `pattern` is beyond the JS fast check: the core checks the output's JSON.
  const outputSchema = { type: 'object', properties: { code: { type: 'string', pattern: '^[a-z]+-[0-9]$' } }, required: ['code'] };
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1, outputSchema }, () => out);
  await n.start();
  gw.lease('l-1', 'core/x');
  await until(() => attempts === 2, 'the retry answered', 5000);
  assert.deepEqual(given, [
    { own: true, keptThen: 1 },   // the first attempt: built in JS around the handler's own object
    { own: false, keptThen: 0 },  // the retry: the core's frame; the object was let go after the first
  ]);
  assert.deepEqual(gw.sent('ack').map((a) => a.output), [out, out]);
  await n.stop();
});

test('custom Transport: the output of a handler whose lease was cancelled, or cancelled and then lost, under it is let go (no ack, nothing kept)', async () => {
  let cancelled = false;
  const gw = new FakeGateway({ heartbeatAnswer: () => ({ lostLeases: cancelled ? ['l-lost'] : [] }) });
  const n = new Neuron({ neuronId: 'n-gone', transport: gw.transport, heartbeatIntervalMs: 200 });
  /** @type {Map<string, () => void>} */
  const release = new Map();
  n.handle({ type: 'core/x', scope: 'any', concurrency: 4 }, (_, ctx) =>
    new Promise((resolve) => release.set(ctx.leaseId, () => resolve({ ok: true, id: ctx.leaseId }))));
  await n.start();
  gw.lease('l-cancel', 'core/x');
  gw.lease('l-lost', 'core/x');
  await until(() => release.size === 2, 'both handlers running');
  // Both cancelled (their signals fire), then the gateway says one is lost:
  // the engine sends nothing for that one, and uses neither output.
  gw.send({ type: 'cancel', leaseId: 'l-cancel', reason: 'no longer needed' });
  gw.send({ type: 'cancel', leaseId: 'l-lost', reason: 'no longer needed' });
  cancelled = true;
  await until(() => n.stats().leasesLost === 1, 'the lease lost', 3000);
  for (const go of release.values()) go();
  const nack = await gw.terminalFor('l-cancel');
  assert.equal(nack.kind, 'cancelled');
  const host = /** @type {any} */ (n)._host;
  await until(() => host.running.size === 0, 'both handlers done');
  await sleep(20);
  assert.equal(host.outputs.size, 0, 'no output kept');
  assert.equal(gw.terminal('l-lost').length, 0);
  assert.equal(gw.sent('ack').length, 0);
  await n.stop();
});

test('byte path: ctx.task is the whole task, parsed when first read; its input is the handler input, the first `input` a task holds (the one its schema checked)', async () => {
  const gw = memoryGateway();
  const n = new Neuron({ neuronId: 'n-task', gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch });
  /** @type {Record<string, { input: unknown, task: any, again: any }>} */
  const seen = {};
  n.handle({ type: 'core/x', scope: 'any', concurrency: 4, inputSchema: { type: 'object', required: ['first'] } }, (input, ctx) => {
    seen[ctx.leaseId] = { input, task: ctx.task, again: ctx.task };
    return 'ok';
  });
  n.handle({ type: 'core/y', scope: 'any', concurrency: 4 }, (input, ctx) => {
    seen[ctx.leaseId] = { input, task: ctx.task, again: ctx.task };
    return 'ok';
  });
  await n.start();
  gw.send('{"type":"lease","leaseId":"L1","task":{"taskId":"t1","type":"core/y","input":{"a":[1,"\\u00e9"]},"attempt":2,"workflowId":"w","metadata":{"k":"v"}}}');
  gw.send('{"type":"lease","leaseId":"L2","task":{"taskId":"t2","type":"core/x","input":{"first":true},"input":{"second":true}}}');
  gw.send('{"type":"lease","leaseId":"L3","task":{"taskId":"t3","type":"core/y"}}');
  await until(() => ['L1', 'L2', 'L3'].every((id) => gw.terminal(id).length === 1), 'three acks');
  assert.deepEqual(seen.L1.task, { taskId: 't1', type: 'core/y', input: { a: [1, 'é'] }, attempt: 2, workflowId: 'w', metadata: { k: 'v' } });
  assert.equal(seen.L1.task.input, seen.L1.input, 'ctx.task.input is the value the handler got');
  assert.equal(seen.L1.again, seen.L1.task, 'parsed once');
  assert.deepEqual(seen.L2.input, { first: true }, 'the input the schema checked');
  assert.equal(seen.L2.task.input, seen.L2.input);
  assert.equal(seen.L3.input, undefined);
  assert.deepEqual(seen.L3.task, { taskId: 't3', type: 'core/y' });
  for (const id of ['L1', 'L2', 'L3']) assert.equal(gw.terminal(id)[0].type, 'ack', id);
  await n.stop();
});

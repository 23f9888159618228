// PROTOCOL.md section 3, rule by rule, through the public API: a Neuron with a
// custom Transport (FakeGateway) so each test decides exactly which frames
// arrive, and sees every frame posted.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Neuron, defineCapability } from '../src/index.js';
import { FakeGateway, sleep, until } from './support/fake-gateway.js';
import { z } from 'zod';

/** @param {FakeGateway} gw @param {object} [opts] */
function neuronOn(gw, opts = {}) {
  return new Neuron({ neuronId: 'n-rules', transport: gw.transport, heartbeatIntervalMs: 60_000, ...opts });
}

test('rule 1: handle() rejects bad types, duplicates, bad concurrency and late calls, saying what to do', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  const ok = () => ({ ok: true });
  for (const type of ['', 'Core/x', 'core', 'core/', 'core/a b', 'core/a/b/c/d/e', 'core/x.', `core/${'a'.repeat(200)}`]) {
    assert.throws(() => n.handle({ type, scope: 'any', concurrency: 1 }, ok), /invalid capability type/, type);
  }
  for (const concurrency of [0, -1, 1.5, NaN]) {
    assert.throws(() => n.handle({ type: 'core/x', scope: 'any', concurrency }, ok), /concurrency must be an integer >= 1/);
  }
  assert.throws(() => n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, 'nope'), /handler must be a function/);
  assert.throws(() => n.handle({ type: 'core/x', scope: 'mine', concurrency: 1 }, ok), /scope/);
  n.handle({ type: 'org/01HBQ8ZK/custom-tool', scope: 'any', concurrency: 1 }, ok);
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, ok);
  assert.throws(() => n.handle({ type: 'core/x', scope: 'any', concurrency: 2 }, ok), /already handled/);
  await n.start();
  assert.throws(() => n.handle({ type: 'core/y', scope: 'any', concurrency: 1 }, ok), /must be called before start\(\)/);
  await n.stop();
});

test('start() without handlers rejects with the README message; a second start returns the same promise', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  await assert.rejects(n.start(), /Neuron.start\(\) requires at least one handler/);
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 1);
  const p = n.start();
  assert.equal(n.start(), p);
  await p;
  assert.equal(gw.sent('register').length, 1);
  await n.stop();
});

test('rule 2: a duplicate lease (queued, running or recently finished) is ignored', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  let calls = 0;
  /** @type {() => void} */
  let release = () => {};
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => {
    calls++;
    return new Promise((r) => { release = () => r({ done: true }); });
  });
  await n.start();
  gw.lease('l-1', 'core/x');
  gw.lease('l-1', 'core/x'); // while running
  await until(() => calls === 1);
  release();
  await gw.terminalFor('l-1');
  gw.lease('l-1', 'core/x'); // recently finished
  await sleep(20);
  assert.equal(calls, 1);
  assert.equal(gw.terminal('l-1').length, 1);
  assert.equal(n.stats().leasesDuplicate, 2);
  await n.stop();
});

test('rule 3: no handler, revoked capability, shutting down -> nack retryable with the code; handler not called', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  let calls = 0;
  /** @type {() => void} */
  let release = () => {};
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (/** @type {any} */ input) => {
    calls++;
    // One lease keeps the neuron draining while the leases after stop() arrive.
    return input === 'hold' ? new Promise((r) => { release = () => r(1); }) : 1;
  });
  n.handle({ type: 'core/y', scope: 'any', concurrency: 1 }, () => { calls++; return 1; });
  await n.start();
  gw.lease('l-none', 'core/other');
  assert.deepEqual(pick(await gw.terminalFor('l-none')), { type: 'nack', kind: 'retryable', code: 'NO_HANDLER' });
  gw.send({ type: 'capability-revoked', capability: 'core/y', reason: 'policy' });
  gw.lease('l-rev', 'core/y');
  assert.deepEqual(pick(await gw.terminalFor('l-rev')), { type: 'nack', kind: 'retryable', code: 'CAPABILITY_REVOKED' });
  gw.lease('l-hold', 'core/x', 'hold');
  await until(() => calls === 1, 'the held lease to run');
  const stopped = n.stop({ drain: true, timeoutMs: 1000 });
  gw.lease('l-stop', 'core/x');
  assert.deepEqual(pick(await gw.terminalFor('l-stop')), { type: 'nack', kind: 'retryable', code: 'SHUTTING_DOWN' });
  release();
  await stopped;
  assert.equal(gw.terminal('l-hold')[0].type, 'ack');
  assert.equal(calls, 1, 'only the held lease ran');
});

test('rule 4: a lease missing fields -> error event, and nack terminal MALFORMED_LEASE when it has ids', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  /** @type {Error[]} */
  const errors = [];
  n.on('error', (e) => errors.push(e));
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 1);
  await n.start();
  gw.send({ type: 'lease', leaseId: 'l-bad', task: { taskId: 't-bad', input: 1 } }); // no task.type
  gw.send({ type: 'lease', task: { taskId: 't-anon', type: 'core/x' } }); // no leaseId
  assert.deepEqual(pick(await gw.terminalFor('l-bad')), { type: 'nack', kind: 'terminal', code: 'MALFORMED_LEASE' });
  await until(() => errors.length >= 2, 'two error events');
  assert.ok(errors.every((e) => /** @type {any} */ (e).code === 'malformed-lease'), errors.map((e) => e.message).join('; '));
  assert.equal(gw.posts.filter((p) => p.path === '/neuron/nack').length, 1);
  await n.stop();
});

test('rule 5: input failing inputSchema -> nack schema-mismatch with JSON Pointer errors; handler not called', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  let calls = 0;
  n.handle({
    type: 'core/x', scope: 'any', concurrency: 1,
    inputSchema: { type: 'object', required: ['code'], properties: { code: { type: 'string' }, n: { type: 'integer' } } },
  }, () => { calls++; return 1; });
  await n.start();
  gw.lease('l-1', 'core/x', { code: 7, n: 1.5 });
  const nack = await gw.terminalFor('l-1');
  assert.equal(nack.kind, 'schema-mismatch');
  assert.deepEqual(nack.errors.map((/** @type {any} */ e) => e.path).sort(), ['/code', '/n']);
  assert.equal(calls, 0);
  await n.stop();
});

test('rule 6: leases beyond concurrency wait FIFO; only running leases are in heartbeats', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw, { heartbeatIntervalMs: 30 });
  /** @type {string[]} */
  const order = [];
  /** @type {Map<string, () => void>} */
  const release = new Map();
  n.handle({ type: 'core/x', scope: 'any', concurrency: 2 }, (input, ctx) => {
    order.push(ctx.leaseId);
    return new Promise((r) => release.set(ctx.leaseId, () => r(input)));
  });
  await n.start();
  for (const id of ['a', 'b', 'c', 'd']) gw.lease(id, 'core/x', id);
  await until(() => order.length === 2);
  const hb = (await gw.next((p) => p.path === '/neuron/heartbeat' && p.frame.inFlight.length === 2)).frame;
  assert.deepEqual(hb.inFlight.map((/** @type {any} */ l) => l.leaseId).sort(), ['a', 'b']);
  assert.deepEqual(n.stats().capabilities[0], { type: 'core/x', queued: 2, running: 2, concurrency: 2 });
  release.get('b')?.();
  await until(() => order.length === 3);
  release.get('a')?.();
  await until(() => order.length === 4);
  assert.deepEqual(order, ['a', 'b', 'c', 'd']);
  release.get('c')?.();
  release.get('d')?.();
  for (const id of ['a', 'b', 'c', 'd']) assert.equal((await gw.terminalFor(id)).output, id);
  await n.stop();
});

test('rule 7: outputSchema failure, throw, ctx.fail and return map to schema-mismatch / retryable / terminal / ack', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  n.handle({ type: 'core/x', scope: 'any', concurrency: 4, outputSchema: { type: 'object', required: ['ok'] } }, (input, ctx) => {
    if (input === 'bad-output') return { nope: 1 };
    if (input === 'throw') throw new Error('disk full');
    if (input === 'fail') ctx.fail('invalid API key', { code: 'INVALID_API_KEY' });
    if (input === 'async-throw') return Promise.reject(new TypeError('boom'));
    return { ok: true };
  });
  await n.start();
  for (const id of ['bad-output', 'throw', 'fail', 'async-throw', 'fine']) gw.lease(id, 'core/x', id);
  assert.equal((await gw.terminalFor('bad-output')).kind, 'schema-mismatch');
  assert.deepEqual(pick(await gw.terminalFor('throw')), { type: 'nack', kind: 'retryable', reason: 'disk full' });
  assert.deepEqual(pick(await gw.terminalFor('fail')), { type: 'nack', kind: 'terminal', code: 'INVALID_API_KEY', reason: 'invalid API key' });
  assert.deepEqual(pick(await gw.terminalFor('async-throw')), { type: 'nack', kind: 'retryable', reason: 'boom' });
  const ack = await gw.terminalFor('fine');
  assert.equal(ack.type, 'ack');
  assert.deepEqual(ack.output, { ok: true });
  assert.ok(Number.isInteger(ack.durationMs) && ack.durationMs >= 0);
  await n.stop();
});

test('rule 8: cancel of a queued lease nacks it unrun; of a running one fires ctx.signal (reason "cancelled") and ends in nack cancelled', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  /** @type {string[]} */
  const ran = [];
  /** @type {unknown} */
  let reason;
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (input, ctx) => {
    ran.push(ctx.leaseId);
    return new Promise((resolve, reject) => {
      ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason;
        reject(ctx.signal.reason);
      });
    });
  });
  await n.start();
  gw.lease('running', 'core/x');
  gw.lease('queued', 'core/x');
  await until(() => ran.length === 1);
  gw.send({ type: 'cancel', leaseId: 'queued', reason: 'workflow cancelled' });
  assert.deepEqual(pick(await gw.terminalFor('queued')), { type: 'nack', kind: 'cancelled' });
  gw.send({ type: 'cancel', leaseId: 'running' });
  assert.deepEqual(pick(await gw.terminalFor('running')), { type: 'nack', kind: 'cancelled' });
  assert.ok(reason instanceof DOMException && reason.name === 'AbortError' && reason.message === 'cancelled', String(reason));
  gw.send({ type: 'cancel', leaseId: 'never-heard-of' });
  await sleep(10);
  assert.deepEqual(ran, ['running']);
  assert.equal(n.stats().nacksCancelled, 2);
  await n.stop();
});

test('rule 9: capability-revoked nacks queued leases and aborts running ones (signal reason "capability revoked")', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  /** @type {string[]} */
  const reasons = [];
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (_i, ctx) => new Promise((_r, reject) => {
    ctx.signal.onabort = () => { reasons.push(ctx.signal.reason.message); reject(new Error('stopped')); };
  }));
  await n.start();
  gw.lease('run', 'core/x');
  gw.lease('wait', 'core/x');
  await until(() => n.stats().capabilities[0].running === 1);
  gw.send({ type: 'capability-revoked', capability: 'core/x', reason: 'policy changed' });
  assert.deepEqual(pick(await gw.terminalFor('wait')), { type: 'nack', kind: 'retryable', code: 'CAPABILITY_REVOKED' });
  assert.deepEqual(pick(await gw.terminalFor('run')), { type: 'nack', kind: 'retryable', code: 'CAPABILITY_REVOKED' });
  assert.deepEqual(reasons, ['capability revoked']);
  await n.stop();
});

test('rule 10: progress never throws, is merged while a POST is in flight, and stops after the terminal frame', async () => {
  const gw = new FakeGateway();
  /** @type {() => void} */
  let unblock = () => {};
  const blocked = new Promise((r) => { unblock = () => r({}); });
  gw.answer = (path) => (path === '/neuron/progress' ? blocked : {});
  const n = neuronOn(gw);
  /** @type {any} */
  let saved;
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, async (_i, ctx) => {
    saved = ctx;
    ctx.progress({ percent: 10 });
    ctx.progress({ percent: 20, message: 'a' });
    ctx.progress({ data: { rows: 5 } });
    ctx.progress(/** @type {any} */ (null));
    ctx.progress({ data: { big: 10n } }); // not JSON: its data is left out
    await sleep(20);
    unblock();
    await sleep(20);
    return 'done';
  });
  await n.start();
  gw.lease('l-1', 'core/x');
  await gw.terminalFor('l-1');
  saved.progress({ percent: 99 });
  await sleep(10);
  const progress = gw.sent('progress');
  assert.equal(progress.length, 2, JSON.stringify(progress));
  assert.equal(progress[0].percent, 10);
  assert.deepEqual({ percent: progress[1].percent, message: progress[1].message, data: progress[1].data }, { percent: 20, message: 'a', data: { rows: 5 } });
  await n.stop();
});

test('rule 12: stop() with drain gives handlers timeoutMs, then aborts them (SHUTTING_DOWN), closes with reason "stopped"; a second stop returns the same promise', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  /** @type {string[]} */
  const closes = [];
  n.on('connection:close', (r) => closes.push(r));
  let aborted = '';
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (input, ctx) => {
    if (input === 'quick') return sleep(30).then(() => 'quick done');
    return new Promise(() => { ctx.signal.addEventListener('abort', () => { aborted = ctx.signal.reason.message; }); }); // never settles
  });
  await n.start();
  gw.lease('stuck', 'core/x', 'stuck');
  gw.lease('queued', 'core/x', 'queued');
  await until(() => n.stats().capabilities[0].running === 1);
  const t0 = Date.now();
  const p = n.stop({ drain: true, timeoutMs: 150 });
  assert.equal(n.stop(), p);
  assert.deepEqual(pick(await gw.terminalFor('queued')), { type: 'nack', kind: 'retryable', code: 'SHUTTING_DOWN' });
  await p;
  const took = Date.now() - t0;
  assert.ok(took >= 140 && took < 2000, `stop took ${took} ms`);
  assert.deepEqual(pick(gw.terminal('stuck')[0]), { type: 'nack', kind: 'retryable', code: 'SHUTTING_DOWN' });
  assert.equal(aborted, 'shutting down');
  assert.deepEqual(closes, ['stopped']);
  assert.equal(gw.connected, false, 'transport stopped');
  await assert.rejects(n.start(), /after stop/);
});

test('rule 12: stop() without drain aborts at once; a drained handler that finishes in time is acked', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  n.handle({ type: 'core/x', scope: 'any', concurrency: 2 }, (input) => sleep(input).then(() => ({ slept: input })));
  await n.start();
  gw.lease('short', 'core/x', 20);
  await until(() => n.stats().capabilities[0].running === 1);
  await n.stop({ drain: true, timeoutMs: 5000 });
  assert.equal(gw.terminal('short')[0].type, 'ack');

  const gw2 = new FakeGateway();
  const n2 = neuronOn(gw2);
  n2.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => new Promise(() => {}));
  await n2.start();
  gw2.lease('long', 'core/x');
  await until(() => n2.stats().capabilities[0].running === 1);
  const t0 = Date.now();
  await n2.stop({ drain: false });
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(gw2.terminal('long')[0].code, 'SHUTTING_DOWN');
});

test('rule 13: updateCapability posts update-capability and opens slots; unknown types reject', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  /** @type {Map<string, () => void>} */
  const release = new Map();
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (_i, ctx) => new Promise((r) => release.set(ctx.leaseId, () => r(1))));
  await n.start();
  for (const id of ['a', 'b', 'c']) gw.lease(id, 'core/x');
  await until(() => release.size === 1);
  await n.updateCapability({ type: 'core/x', concurrency: 3 });
  await until(() => release.size === 3, 'queued leases to start at the new limit');
  assert.deepEqual(gw.sent('update-capability').map((f) => [f.capability, f.concurrency]), [['core/x', 3]]);
  await assert.rejects(n.updateCapability({ type: 'core/nope', concurrency: 2 }), /core\/nope/);
  await assert.rejects(n.updateCapability({ type: 'core/x', concurrency: 0 }), /concurrency/);
  for (const r of release.values()) r();
  await n.stop();
});

test('lost leases (heartbeat answer) abort the handler with reason "lease lost" and post no ack or nack', async () => {
  /** @type {string[]} */
  let lost = [];
  const gw = new FakeGateway({ heartbeatAnswer: () => ({ lostLeases: lost }) });
  const n = neuronOn(gw, { heartbeatIntervalMs: 20 });
  let reason = '';
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (_i, ctx) => new Promise((resolve) => {
    ctx.signal.addEventListener('abort', () => { reason = ctx.signal.reason.message; resolve('too late'); });
  }));
  await n.start();
  gw.lease('l-lost', 'core/x');
  await until(() => n.stats().capabilities[0].running === 1);
  lost = ['l-lost'];
  await until(() => reason !== '', 'the handler to be aborted');
  await sleep(30);
  assert.equal(reason, 'lease lost');
  assert.equal(gw.terminal('l-lost').length, 0);
  assert.equal(n.stats().leasesLost, 1);
  await n.stop();
});

test('defineCapability: zod 3 and zod 4 schemas validate in JS (refine/transform run), JSON Schema goes in register, overrides apply', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  const { z: z4 } = await import('zod/v4');
  const v3 = defineCapability({
    type: 'core/v3',
    description: 'zod 3',
    input: z.object({ code: z.string().refine((s) => s.length < 10, 'too long').transform((s) => s.toUpperCase()) }),
    output: z.object({ stdout: z.string() }),
  });
  const v4 = defineCapability({
    type: 'core/v4',
    input: z4.object({ n: z4.number().int() }),
    output: z4.object({ doubled: z4.number() }),
    concurrency: 2,
  });
  n.handle(v3, { concurrency: 3 }, (input) => ({ stdout: input.code }));
  n.handle(v4, (input) => ({ doubled: input.n * 2 }));
  await n.start();
  const [reg] = gw.sent('register');
  const caps = Object.fromEntries(reg.capabilities.map((/** @type {any} */ c) => [c.type, c]));
  assert.equal(caps['core/v3'].concurrency, 3);
  assert.equal(caps['core/v3'].description, 'zod 3');
  assert.equal(caps['core/v3'].inputSchema.type, 'object');
  assert.deepEqual(caps['core/v3'].inputSchema.required, ['code']);
  assert.equal(caps['core/v4'].concurrency, 2);
  assert.equal(caps['core/v4'].outputSchema.properties.doubled.type, 'number');
  gw.lease('ok3', 'core/v3', { code: 'print' });
  gw.lease('long3', 'core/v3', { code: 'x'.repeat(20) });
  gw.lease('ok4', 'core/v4', { n: 21 });
  gw.lease('bad4', 'core/v4', { n: 1.5 });
  assert.deepEqual((await gw.terminalFor('ok3')).output, { stdout: 'PRINT' });
  const long = await gw.terminalFor('long3');
  assert.equal(long.kind, 'schema-mismatch');
  assert.deepEqual(long.errors, [{ path: '/code', message: 'too long' }]);
  assert.deepEqual((await gw.terminalFor('ok4')).output, { doubled: 42 });
  assert.equal((await gw.terminalFor('bad4')).kind, 'schema-mismatch');
  await n.stop();
});

test('defineCapability with one schema or none: the side without a schema is unchecked and advertised without one', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  const inOnly = defineCapability({ type: 'core/in', input: z.object({ n: z.number() }), concurrency: 2 });
  const outOnly = defineCapability({ type: 'core/out', output: z.object({ ok: z.boolean() }) });
  const plain = defineCapability({ type: 'core/plain' });
  assert.equal(inOnly.output, undefined);
  assert.equal(outOnly.input, undefined);
  n.handle(inOnly, (input) => (input.n > 0 ? 'anything' : { n: input.n }));
  n.handle(outOnly, (input) => (input === 'bad' ? { ok: 'no' } : { ok: true }));
  n.handle(plain, (input) => input);
  await n.start();
  const [reg] = gw.sent('register');
  const caps = Object.fromEntries(reg.capabilities.map((/** @type {any} */ c) => [c.type, c]));
  assert.equal(caps['core/in'].inputSchema.type, 'object');
  assert.equal('outputSchema' in caps['core/in'], false);
  assert.equal('inputSchema' in caps['core/out'], false);
  assert.equal(caps['core/out'].outputSchema.type, 'object');
  assert.equal('inputSchema' in caps['core/plain'] || 'outputSchema' in caps['core/plain'], false);
  gw.lease('in-ok', 'core/in', { n: 1 });
  gw.lease('in-bad', 'core/in', { n: 'x' });
  gw.lease('out-ok', 'core/out', 'anything at all');
  gw.lease('out-bad', 'core/out', 'bad');
  gw.lease('plain', 'core/plain', [1, 'two']);
  assert.equal((await gw.terminalFor('in-ok')).output, 'anything', 'output unchecked');
  assert.equal((await gw.terminalFor('in-bad')).kind, 'schema-mismatch');
  assert.deepEqual((await gw.terminalFor('out-ok')).output, { ok: true }, 'input unchecked');
  const outBad = await gw.terminalFor('out-bad');
  assert.equal(outBad.kind, 'schema-mismatch');
  assert.match(outBad.reason, /output does not match/);
  assert.deepEqual(outBad.errors, [{ path: '/ok', message: 'Expected boolean, received string' }]);
  assert.deepEqual((await gw.terminalFor('plain')).output, [1, 'two']);
  assert.throws(() => defineCapability({ type: 'core/x', input: /** @type {any} */ ({ type: 'object' }) }),
    /`input` must be a zod schema \(z\.object\(\.\.\.\)\) or left out/);
  await n.stop();
});

test('the frame firehose sees every inbound frame, only while subscribed; on() returns an unsubscribe function', async () => {
  const gw = new FakeGateway();
  const n = neuronOn(gw);
  /** @type {string[]} */
  const seen = [];
  const off = n.on('frame', (f) => seen.push(f.type));
  /** @type {any[]} */
  const registered = [];
  n.once('connection:registered', (r) => registered.push(r));
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 1);
  await n.start();
  gw.lease('l-1', 'core/x');
  await gw.terminalFor('l-1');
  gw.send({ type: 'cancel', leaseId: 'l-1' });
  await sleep(5);
  off();
  gw.lease('l-2', 'core/x');
  await gw.terminalFor('l-2');
  assert.deepEqual(seen, ['registered', 'lease', 'cancel']);
  assert.deepEqual(registered, [{ sessionId: 's-fake', capabilities: 1 }]);
  await n.stop();
});

test('a throwing frame listener does not break lease handling; its error is rethrown on its own, like any uncaught error', async () => {
  const { execFileSync } = await import('node:child_process');
  const script = `
    import { Neuron } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    import { FakeGateway } from ${JSON.stringify(new URL('./support/fake-gateway.js', import.meta.url).href)};
    const uncaught = [];
    process.on('uncaughtException', (e) => uncaught.push(e.message));
    const gw = new FakeGateway();
    const n = new Neuron({ neuronId: 'n', transport: gw.transport });
    n.on('frame', () => { throw new Error('listener bug'); });
    n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 'fine');
    await n.start();
    gw.lease('l-1', 'core/x');
    const t = await gw.terminalFor('l-1');
    await n.stop();
    console.log(JSON.stringify({ type: t.type, uncaught: [...new Set(uncaught)] }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), { type: 'ack', uncaught: ['listener bug'] });
});

test('bad options fail fast with what to do', () => {
  assert.throws(() => new Neuron(/** @type {any} */ (undefined)), /options object/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ gatewayUrl: 'http://x', auth: () => 't' })), /neuronId/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a' })), /gatewayUrl.*auth.*transport/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a', gatewayUrl: 'ftp://x', auth: () => 't' })), /http:\/\/ or https:\/\//);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a', gatewayUrl: 'not a url', auth: () => 't' })), /absolute URL/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a', gatewayUrl: 'http://x', auth: 'token' })), /`auth` must be a function/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a', gatewayUrl: 'http://x', auth: () => 't', transport: {} })), /either `transport` or `gatewayUrl`/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a', transport: { subscribe() {} } })), /Transport interface: start\(\) is missing/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a', gatewayUrl: 'http://x', auth: () => 't', heartbeatIntervalMs: -5 })), /heartbeatIntervalMs/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a', gatewayUrl: 'http://x', auth: () => 't', reconnectJitter: 2 })), /reconnectJitter/);
  assert.throws(() => new Neuron(/** @type {any} */ ({ neuronId: 'a', gatewayUrl: 'http://x', auth: () => 't', logger: {} })), /logger/);
});

/** The fields a test cares about. @param {any} f */
function pick(f) {
  /** @type {any} */
  const out = { type: f.type };
  for (const k of ['kind', 'code', 'reason']) if (f[k] !== undefined) out[k] = f[k];
  if (f.type === 'nack' && out.reason !== undefined && !['disk full', 'boom', 'invalid API key'].includes(out.reason)) delete out.reason;
  return out;
}

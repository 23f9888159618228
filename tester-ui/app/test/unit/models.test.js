// The lease board (states, summary, occupancy, pruning) and the capability
// editor's checks (inline errors by field, the examples, the handler helpers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseBoard } from '../../src/leases.js';
import { EXAMPLES, compileCapability, sleep } from '../../src/capabilities.js';

/** @param {string} id @param {string} type */
const lease = (id, type = 'core/x') => ({ type: 'lease', leaseId: id, task: { taskId: `t-${id}`, type, input: null, attempt: 2 } });

test('a lease goes queued -> running -> acked / nacked; duplicates and unknown ids are ignored', () => {
  const b = new LeaseBoard();
  b.inbound(lease('l-1'), 100);
  b.inbound(lease('l-1'), 101);
  b.inbound(lease('l-2'), 102);
  assert.equal(b.rows.size, 2);
  assert.equal(b.rows.get('l-1')?.state, 'queued');
  assert.equal(b.rows.get('l-1')?.attempt, 2);
  b.started('l-1', 110);
  b.started('nope', 110);
  b.outbound({ type: 'progress', leaseId: 'l-1', percent: 40, message: 'x' }, 120);
  assert.equal(b.rows.get('l-1')?.percent, 40);
  b.outbound({ type: 'heartbeat', inFlight: [{ leaseId: 'l-1' }, { leaseId: 'gone' }] }, 130);
  assert.equal(b.rows.get('l-1')?.heartbeats, 1);
  assert.equal(b.beats.length, 1);
  b.inbound({ type: 'cancel', leaseId: 'l-2' }, 131);
  assert.equal(b.rows.get('l-2')?.cancelRequested, true);
  b.outbound({ type: 'ack', leaseId: 'l-1' }, 150);
  b.outbound({ type: 'nack', leaseId: 'l-1', kind: 'retryable' }, 151);
  assert.equal(b.rows.get('l-1')?.state, 'acked', 'the first terminal frame wins');
  assert.equal(b.rows.get('l-1')?.endedAt, 150);
  b.outbound({ type: 'nack', leaseId: 'l-2', kind: 'cancelled', reason: 'user', code: 'C' }, 160);
  assert.deepEqual(b.rows.get('l-2')?.nack, { kind: 'cancelled', reason: 'user', code: 'C' });
  assert.deepEqual(Object.fromEntries(b.summary()), { 'core/x': { queued: 0, running: 0, acked: 1, nacked: 1, lost: 0 } });
  assert.equal(b.capabilityOf('l-2'), 'core/x');
});

test('summary counts queued and running now, per capability; closeOpen marks the rest lost', () => {
  const b = new LeaseBoard();
  for (const [id, type] of [['a', 'core/x'], ['b', 'core/x'], ['c', 'core/y']]) b.inbound(lease(id, type), 1);
  b.started('a', 2);
  assert.deepEqual(Object.fromEntries(b.summary()), {
    'core/x': { queued: 1, running: 1, acked: 0, nacked: 0, lost: 0 },
    'core/y': { queued: 1, running: 0, acked: 0, nacked: 0, lost: 0 },
  });
  b.closeOpen(3);
  assert.deepEqual([...b.rows.values()].map((r) => r.state), ['lost', 'lost', 'lost']);
  assert.equal(b.summary().get('core/x')?.lost, 2);
});

test('a lost lease (no terminal frame will come) ends as lost, once; a later ack of it changes nothing', () => {
  const b = new LeaseBoard();
  b.inbound(lease('a'), 1);
  b.started('a', 2);
  b.lost('a', 3);
  b.lost('a', 4);
  b.outbound({ type: 'ack', leaseId: 'a' }, 5);
  assert.equal(b.rows.get('a')?.state, 'lost');
  assert.equal(b.rows.get('a')?.endedAt, 3);
  assert.deepEqual(Object.fromEntries(b.summary()), { 'core/x': { queued: 0, running: 0, acked: 0, nacked: 0, lost: 1 } });
});

test('occupancy samples follow running / queued per capability', () => {
  const b = new LeaseBoard();
  b.inbound(lease('a'), 10);
  b.inbound(lease('b'), 11);
  b.started('a', 12);
  b.started('b', 13);
  b.outbound({ type: 'ack', leaseId: 'a' }, 14);
  assert.deepEqual(b.samples.get('core/x'), [
    { t: 10, running: 0, queued: 1 }, { t: 11, running: 0, queued: 2 },
    { t: 12, running: 1, queued: 1 }, { t: 13, running: 2, queued: 0 }, { t: 14, running: 1, queued: 0 },
  ]);
});

test('history stays bounded: the oldest ended leases go, open ones and the totals stay', () => {
  const b = new LeaseBoard({ keepEnded: 3, keepSamples: 5 });
  b.inbound(lease('open'), 0);
  for (let i = 0; i < 10; i++) {
    b.inbound(lease(`l-${i}`), i);
    b.outbound({ type: 'ack', leaseId: `l-${i}` }, i);
  }
  assert.deepEqual([...b.rows.keys()], ['open', 'l-7', 'l-8', 'l-9']);
  assert.equal(b.summary().get('core/x')?.acked, 10);
  assert.equal(b.samples.get('core/x')?.length, 5);
  assert.deepEqual(b.latest(2).map((r) => r.leaseId), ['l-9', 'l-8']);
});

test('every example compiles; editor problems are reported by field', () => {
  for (const [key, ex] of Object.entries(EXAMPLES)) assert.ok(compileCapability(ex.spec).ok, key);
  const base = EXAMPLES.echo.spec;
  const errs = (/** @type {object} */ p) => /** @type {any} */ (compileCapability({ ...base, ...p })).errors;
  assert.match(errs({ type: 'Core/x' }).type, /namespace\/name/);
  assert.match(errs({ concurrency: 0 }).concurrency, />= 1/);
  assert.match(errs({ inputSchema: '{"type":' }).inputSchema, /^inputSchema is not JSON/);
  assert.match(errs({ outputSchema: '[1]' }).outputSchema, /must be a JSON Schema object/);
  assert.match(errs({ code: 'return {' }).code, /does not compile/);
  const two = errs({ type: '', code: ')' });
  assert.deepEqual(Object.keys(two).sort(), ['code', 'type']);
});

test('a compiled capability: registration as neuron.handle() takes it, handler code with input, ctx and sleep', async () => {
  const r = compileCapability({ ...EXAMPLES.echo.spec, scopeUser: ' user:abc ', outputSchema: '' });
  assert.ok(r.ok);
  assert.deepEqual(r.compiled.reg.scope, { onBehalfOf: 'user:abc' });
  assert.deepEqual(r.compiled.reg.inputSchema, JSON.parse(EXAMPLES.echo.spec.inputSchema));
  assert.equal('outputSchema' in r.compiled.reg, false);
  assert.deepEqual(await r.compiled.run({ text: 'hi' }, {}), { echoed: 'hi' });
  const s = compileCapability({ ...EXAMPLES.sleep.spec });
  assert.ok(s.ok);
  /** @type {number[]} */
  const progress = [];
  const out = await s.compiled.run({ ms: 20 }, { signal: new AbortController().signal, progress: (/** @type {any} */ p) => progress.push(p.percent) });
  assert.deepEqual(out, { sleptMs: 20 });
  assert.deepEqual(progress, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
});

test('sleep() rejects with the signal reason when aborted, before or during the wait', async () => {
  const ac = new AbortController();
  const p = sleep(10_000, ac.signal);
  ac.abort(new Error('cancelled'));
  await assert.rejects(p, /cancelled/);
  await assert.rejects(sleep(5, ac.signal), /cancelled/);
  await sleep(1);
});

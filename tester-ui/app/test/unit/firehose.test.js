// The firehose's model: the bounded log and the filters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameLog, compileFilter, describeFrame, emptyFilter, filterEntries, isEmptyFilter } from '../../src/firehose.js';

/** @param {FrameLog} log @param {'in' | 'out' | 'conn'} dir @param {any} frame @param {object} [extra] */
const add = (log, dir, frame, extra = {}) => log.push({ t: 1000 + log.nextSeq, dir, type: frame.type, leaseId: frame.leaseId ?? '', capability: frame.capability ?? '', frame, ...extra });

test('FrameLog keeps the newest `capacity` entries in order, counts the dropped ones, never reuses a seq', () => {
  const log = new FrameLog(3);
  for (let i = 1; i <= 5; i++) add(log, 'in', { type: 'lease', leaseId: `l-${i}` });
  assert.equal(log.size, 3);
  assert.equal(log.dropped, 2);
  assert.deepEqual(log.toArray().map((e) => e.seq), [3, 4, 5]);
  assert.deepEqual(log.toArray().map((e) => e.leaseId), ['l-3', 'l-4', 'l-5']);
  add(log, 'out', { type: 'ack', leaseId: 'l-6' });
  assert.deepEqual(log.toArray().map((e) => e.seq), [4, 5, 6]);
  log.clear();
  assert.equal(log.size, 0);
  assert.equal(add(log, 'in', { type: 'cancel' }).seq, 7);
  assert.throws(() => new FrameLog(0), /positive integer/);
});

test('a POST entry is stored by reference: its status lands later and filters see it', () => {
  const log = new FrameLog(10);
  const e = add(log, 'out', { type: 'ack', leaseId: 'l-1' });
  assert.equal(e.status, null);
  e.status = 503;
  assert.equal(log.toArray()[0].status, 503);
  assert.equal(filterEntries(log.toArray(), { ...emptyFilter(), text: '503' }).length, 1);
});

test('filters: type, direction, lease, capability and free text (every word, any case) combine', () => {
  const log = new FrameLog(100);
  add(log, 'in', { type: 'registered', sessionId: 's-1' });
  add(log, 'in', { type: 'lease', leaseId: 'lease-A1', task: { type: 'core/demo.echo', input: { text: 'Hello World' } } }, { capability: 'core/demo.echo' });
  add(log, 'out', { type: 'ack', leaseId: 'lease-A1', output: { echoed: 'Hello World' } }, { capability: 'core/demo.echo' });
  add(log, 'in', { type: 'lease', leaseId: 'lease-B2', task: { type: 'core/demo.sleep', input: { ms: 5 } } }, { capability: 'core/demo.sleep' });
  add(log, 'out', { type: 'nack', leaseId: 'lease-B2', kind: 'cancelled' }, { capability: 'core/demo.sleep', note: 'cancelled by user' });
  add(log, 'conn', { type: 'stream-close', reason: 'network' }, { note: 'dropped by the tester' });
  const all = log.toArray();
  const pick = (/** @type {Partial<import('../../src/firehose.js').Filter>} */ f) => filterEntries(all, { ...emptyFilter(), ...f }).map((e) => e.seq);
  assert.deepEqual(pick({}), [1, 2, 3, 4, 5, 6]);
  assert.equal(filterEntries(all, emptyFilter()), all, 'no filter: the same array, no copy');
  assert.deepEqual(pick({ types: ['lease'] }), [2, 4]);
  assert.deepEqual(pick({ types: ['ack', 'nack'] }), [3, 5]);
  assert.deepEqual(pick({ dirs: ['out'] }), [3, 5]);
  assert.deepEqual(pick({ dirs: ['conn'] }), [6]);
  assert.deepEqual(pick({ lease: ' a1 ' }), [2, 3], 'lease: trimmed, case-insensitive substring');
  assert.deepEqual(pick({ capability: 'sleep' }), [4, 5]);
  assert.deepEqual(pick({ text: 'hello' }), [2, 3]);
  assert.deepEqual(pick({ text: 'HELLO echoed' }), [3], 'every word must match');
  assert.deepEqual(pick({ text: 'dropped' }), [6], 'notes are searched');
  assert.deepEqual(pick({ text: 'cancelled', types: ['nack'] }), [5]);
  assert.deepEqual(pick({ types: ['lease'], capability: 'echo' }), [2]);
  assert.deepEqual(pick({ text: 'nothing-like-this' }), []);
  assert.equal(isEmptyFilter({ ...emptyFilter(), text: '   ' }), true);
  assert.equal(isEmptyFilter({ ...emptyFilter(), dirs: ['in'] }), false);
});

test('filters survive frames JSON cannot print (cycles) and odd values', () => {
  const cyclic = /** @type {any} */ ({ type: 'lease', leaseId: 'l-c' });
  cyclic.self = cyclic;
  const log = new FrameLog(10);
  add(log, 'in', cyclic);
  add(log, 'in', { type: 'cancel', leaseId: 'l-d', reason: null });
  const match = compileFilter({ ...emptyFilter(), text: 'l-c' });
  assert.deepEqual(log.toArray().filter(match).map((e) => e.leaseId), ['l-c']);
});

test('describeFrame finds the lease and capability of every frame kind', () => {
  const capOf = (/** @type {string} */ id) => (id === 'l-1' ? 'core/x' : '');
  assert.deepEqual(describeFrame({ type: 'lease', leaseId: 'l-1', task: { type: 'core/x' } }, capOf), { leaseId: 'l-1', capability: 'core/x' });
  assert.deepEqual(describeFrame({ type: 'ack', leaseId: 'l-1' }, capOf), { leaseId: 'l-1', capability: 'core/x' });
  assert.deepEqual(describeFrame({ type: 'nack', leaseId: 'l-9' }, capOf), { leaseId: 'l-9', capability: '' });
  assert.deepEqual(describeFrame({ type: 'capability-revoked', capability: 'core/y' }, capOf), { leaseId: '', capability: 'core/y' });
  assert.deepEqual(describeFrame({ type: 'update-capability', capability: 'core/z', concurrency: 2 }, capOf), { leaseId: '', capability: 'core/z' });
  assert.deepEqual(describeFrame({ type: 'heartbeat', inFlight: [] }, capOf), { leaseId: '', capability: '' });
  assert.deepEqual(describeFrame(null, capOf), { leaseId: '', capability: '' });
});

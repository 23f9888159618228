// On the byte path an output that the JS fast check vouched for against the
// capability's outputSchema, or a short one no schema checks, never crosses
// into the core: the host keeps its JSON and writes each attempt's ack
// itself, with the ids as the core read them (host.js, postHostJson). These
// tests hold it to the frame the core writes for the same lease.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Neuron } from '../src/index.js';
import { iso, jsonLikeCore } from '../src/host.js';
import { until } from './support/fake-gateway.js';
import { memoryGateway } from './support/memory-gateway.js';

/** The ack bodies a memory gateway got, as sent. */
const acks = (/** @type {{ bodies: string[] }} */ gw) => gw.bodies.filter((b) => JSON.parse(b).type === 'ack');

const OUTPUT_SCHEMA = { type: 'object', properties: { ok: { type: 'boolean' }, text: { type: 'string' } }, required: ['ok'] };
// The fast checks leave `pattern` to the validator: an output checked by
// this schema crosses into the core, which writes its ack.
const CORE_CHECKED = { type: 'object', properties: { ok: { type: 'boolean' }, text: { type: 'string', pattern: '^in' } }, required: ['ok'] };

// Lease ids and task ids as a gateway may spell them: quotes, backslashes,
// control characters (US and RS among them), non-ASCII, a lone surrogate
// escape, and a task with two taskId members (the first counts, as for
// every other member the core reads).
const LEASES = [
  ['plain', '{"type":"lease","leaseId":"l-1","task":{"taskId":"t-1","type":"core/x","input":1}}'],
  ['escapes', String.raw`{"type":"lease","leaseId":"l-\"q\"\\ \u001f\u001e\n\u0000 é 😀 \ud83d\ude00","task":{"taskId":"t-\u001f\"\\/\b","type":"core/x","input":2}}`],
  ['lone surrogate', String.raw`{"type":"lease","leaseId":"l-\ud800-x","task":{"taskId":"t-\udfff","type":"core/x","input":3}}`],
  ['duplicate taskId', '{"type":"lease","leaseId":"l-dup","task":{"taskId":"first","type":"core/x","taskId":"second","input":4}}'],
];

/** sentAt and durationMs are the only parts that differ between two neurons. */
const normalise = (/** @type {string} */ body) =>
  body.replace(/"sentAt":"[^"]*"/, '"sentAt":"T"').replace(/"durationMs":\d+/, '"durationMs":0');

/** @param {object | undefined} outputSchema @param {string} neuronId */
async function acksFor(outputSchema, neuronId) {
  const gw = memoryGateway();
  const n = new Neuron({ neuronId, gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch });
  n.on('error', () => {});
  const cap = { type: 'core/x', scope: 'any', concurrency: 4 };
  n.handle(outputSchema ? { ...cap, outputSchema } : cap, (input) => ({ ok: true, text: `in ${input} "é\u001f"` }));
  await n.start();
  for (const [, frame] of LEASES) gw.send(frame);
  await until(() => acks(gw).length === LEASES.length, 'every lease acked');
  await n.stop({ timeoutMs: 500 });
  return acks(gw);
}

test('byte path: the ack the host writes around an output is, byte for byte, the one the core writes', async () => {
  for (const neuronId of ['n-acks', 'n-\ud800-é', 'n-\b\f\n"\\\u0001']) {
    const coreWritten = await acksFor(CORE_CHECKED, neuronId);
    const unchecked = await acksFor(undefined, neuronId);
    assert.deepEqual(unchecked.map(normalise), coreWritten.map(normalise), `${neuronId}, no schema`);
    const hostWritten = await acksFor(OUTPUT_SCHEMA, neuronId);
    assert.deepEqual(hostWritten.map(normalise), coreWritten.map(normalise), `${neuronId}, vouched`);
    const byLease = Object.fromEntries(hostWritten.map((b) => [JSON.parse(b).leaseId, JSON.parse(b)]));
    assert.deepEqual(Object.keys(byLease['l-1']), ['type', 'neuronId', 'sentAt', 'leaseId', 'taskId', 'output', 'durationMs']);
    assert.equal(byLease['l-1'].neuronId, neuronId.replace('\ud800', '\ufffd'));
    assert.equal(byLease['l-dup'].taskId, 'first');
    assert.deepEqual(byLease['l-dup'].output, { ok: true, text: 'in 4 "é\u001f"' });
    assert.equal(byLease['l-"q"\\ \u001f\u001e\n\u0000 é 😀 😀'].taskId, 't-\u001f"\\/\b');
    assert.equal(byLease['l-\ufffd-x'].taskId, 't-\ufffd');
    for (const b of hostWritten) assert.match(JSON.parse(b).sentAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
});

test('byte path: a retried host-written ack carries the output as it was returned, and the lease ends once', async () => {
  let failures = 2;
  const gw = memoryGateway({ answer: (frame) => Promise.resolve(new Response('{}', { status: frame.type === 'ack' && failures-- > 0 ? 503 : 200 })) });
  const n = new Neuron({ neuronId: 'n-retry', gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch, initialReconnectDelayMs: 10 });
  n.on('error', () => {});
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1, outputSchema: OUTPUT_SCHEMA }, () => {
    const out = { ok: true, text: 'as returned' };
    setTimeout(() => { out.text = 'changed after return'; out.ok = /** @type {any} */ ('not a boolean'); }, 0);
    return out;
  });
  await n.start();
  gw.send(LEASES[0][1]);
  await until(() => acks(gw).length === 3, 'two failed attempts and a third', 10_000);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(acks(gw).length, 3, 'no attempt after the one answered 200');
  const sent = acks(gw).map((b) => JSON.parse(b));
  for (const f of sent) {
    assert.deepEqual(f.output, { ok: true, text: 'as returned' });
    assert.equal(f.leaseId, 'l-1');
    assert.equal(f.taskId, 't-1');
  }
  await n.stop({ timeoutMs: 500 });
  assert.equal(gw.posts.filter((p) => p.type === 'nack').length, 0);
});

/**
 * One lease per entry of `outputs` (its input is the entry's name) through a
 * byte-path neuron whose handler returns what the entry makes.
 * @param {string} neuronId @param {object | undefined} outputSchema
 * @param {Record<string, () => unknown>} outputs
 * @returns the gateway, once every lease has its verdict and the neuron stopped
 */
async function verdictsFor(neuronId, outputSchema, outputs) {
  const gw = memoryGateway();
  const n = new Neuron({ neuronId, gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch });
  n.on('error', () => {});
  const cap = { type: 'core/x', scope: 'any', concurrency: 8 };
  n.handle(outputSchema ? { ...cap, outputSchema } : cap, (input) => outputs[/** @type {string} */ (input)]());
  await n.start();
  for (const id of Object.keys(outputs)) gw.lease(id, JSON.stringify(id));
  await until(() => Object.keys(outputs).every((id) => gw.terminal(id).length === 1), 'every lease ended');
  await n.stop({ timeoutMs: 500 });
  return gw;
}

test('byte path: an unchecked output the host cannot write as it is goes to the core: a lone surrogate, a long one, a deep one', async () => {
  const long = 'x'.repeat(600);
  const gw = await verdictsFor('n-fallback', undefined, {
    lone: () => ({ s: 'a\ud800b' }),
    backslash: () => ({ s: 'a\\ud800 is six characters' }),
    long: () => ({ s: long }),
    deep: () => JSON.parse('['.repeat(300) + ']'.repeat(300)),
    deep257: () => JSON.parse('['.repeat(257) + ']'.repeat(257)),  // 514 characters: the first length the host leaves to the core
    edge: () => JSON.parse('['.repeat(256) + ']'.repeat(256)),
  });
  assert.deepEqual(gw.terminal('lone')[0].output, { s: 'a\ufffdb' }, 'the core writes a lone surrogate as U+FFFD');
  assert.deepEqual(gw.terminal('backslash')[0].output, { s: 'a\\ud800 is six characters' });
  assert.deepEqual(gw.terminal('long')[0].output, { s: long });
  assert.equal(gw.terminal('deep')[0].kind, 'terminal');
  assert.match(gw.terminal('deep')[0].reason, /nests deeper than 256 levels/);
  assert.match(gw.terminal('deep257')[0].reason, /nests deeper than 256 levels/);
  assert.equal(gw.terminal('edge')[0].type, 'ack', 'exactly 256 levels is within the limit');
});

test('byte path: a vouched output the host cannot write as it is goes to the core too, also when a getter answers the check and JSON.stringify differently', async () => {
  const long = 'y'.repeat(600);
  const gw = await verdictsFor('n-vouched', OUTPUT_SCHEMA, {
    long: () => ({ ok: true, text: long }),
    // The fast check reads 'fine'; JSON.stringify, reading again, a lone surrogate.
    getter: () => {
      let reads = 0;
      return { ok: true, get text() { return reads++ ? 'a\ud800b' : 'fine'; } };
    },
  });
  assert.deepEqual(gw.terminal('long')[0].output, { ok: true, text: long });
  assert.deepEqual(gw.terminal('getter')[0].output, { ok: true, text: 'a\ufffdb' }, 'the core writes the lone surrogate as U+FFFD');
});

test('sentAt and the neuron id are spelled as the core spells them', () => {
  // iso_time.cpp clamps to the years 0000 to 9999; toISOString writes +010000 there and throws past 8.64e15 ms.
  assert.equal(iso(253402300799999 + 86_400_000), '9999-12-31T23:59:59.999Z');
  assert.equal(iso(8.64e15 + 1), '9999-12-31T23:59:59.999Z');
  assert.equal(iso(-62167219200000 - 1), '0000-01-01T00:00:00.000Z');
  assert.equal(iso(-8.64e15 - 1), '0000-01-01T00:00:00.000Z');
  assert.equal(iso(-1), '1969-12-31T23:59:59.999Z');
  assert.equal(iso(1_700_000_000_123), '2023-11-14T22:13:20.123Z');
  // frames.cpp's put_escape: \u0008 and \u000c where JSON.stringify writes \b and \f; the rest alike.
  assert.equal(jsonLikeCore('a\b\fz'), '"a\\u0008\\u000cz"');
  assert.equal(jsonLikeCore('\\b \\f'), JSON.stringify('\\b \\f'), 'an escaped backslash before b or f stays');
  assert.equal(jsonLikeCore('"\n\r\t\u0001\u001f é 😀'), JSON.stringify('"\n\r\t\u0001\u001f é 😀'));
});

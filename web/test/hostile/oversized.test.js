// Hostile gateway, attack classes 1-3: lines and events far larger than
// maxFrameBytes (the default, 16 MiB). Each attack is streamed from one
// reusable buffer at two sizes; the neuron runs in a child process whose
// memory must not grow with the size of the attack, and the lease written
// after the attack on the same stream must be acked exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MiB, GiB, leaseOpening } from './support/gateway.js';
import { atTwoSizes, attackThenLease, assertSurvived, assertSizeIndependent, report } from './support/neuron-process.js';

const MAX_FRAME = 16 * MiB; // maxFrameBytes' default

test('1. one data: line of 64 MiB and of 1 GiB, no newline until its end: one frame-too-large error, the event dropped, the stream kept, the next lease acked; memory the same at both sizes', { timeout: 180_000 }, async (t) => {
  const run = (/** @type {number} */ size) => attackThenLease(async ({ gw }) => {
    await gw.write(leaseOpening('huge', '"'));
    await gw.pump(size, 'x');
    await gw.write('"}}\n\n');
  });
  const [small, large] = await atTwoSizes(t, [['64 MiB line', 64 * MiB], ['1 GiB line', GiB]], run);
  for (const r of [small, large]) {
    assertSurvived(r, { errors: ['frame-too-large'] });
    assert.deepEqual(r.gw.terminal('huge'), [], 'an event over the limit is dropped (PROTOCOL: not decoded), so it gets no nack');
  }
  assertSizeIndependent(small, large);
});

test('2. an endless comment line (64 MiB and 1 GiB, then a blank line): the stream kept, the next lease acked; memory the same at both sizes', { timeout: 180_000 }, async (t) => {
  const run = (/** @type {number} */ size) => attackThenLease(async ({ gw }) => {
    await gw.write(': ');
    await gw.pump(size, 'x');
    await gw.write('\n\n');
  });
  const [small, large] = await atTwoSizes(t, [['64 MiB comment', 64 * MiB], ['1 GiB comment', GiB]], run);
  // Whether a comment may raise `error` is asserted by the test below.
  for (const r of [small, large]) assertSurvived(r);
  assertSizeIndependent(small, large);
});

test('2. bytes keep a stream alive (PROTOCOL: idle timeout counts bytes): a comment line trickled for 3 s with idleTimeoutMs 1 s is no reason to reconnect', { timeout: 60_000 }, async (t) => {
  const r = await attackThenLease(async ({ gw }) => {
    await gw.write(': ');
    const chunk = Buffer.alloc(64 * 1024, 'y');
    const end = Date.now() + 3_000;
    while (Date.now() < end) {
      await gw.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await gw.write('\n\n');
  }, { neuron: { options: { idleTimeoutMs: 1_000 } } });
  t.diagnostic(report('comment trickled for 3 s', r));
  assertSurvived(r, { errors: [] });
  assert.deepEqual(r.neuron.of('connection:reconnecting'), []);
});

test('2. a comment line (or an event:, id:, retry: or unknown field) longer than maxFrameBytes is no error and takes no event with it: the lease right after it, one line end later, is acked',
  { timeout: 60_000 },
  async (t) => {
    const fields = [':', 'event:', 'id:', 'retry:', 'x-unknown:'];
    const r = await attackThenLease(async ({ gw, neuron, until }) => {
      for (const field of fields) {
        await gw.write(`${field} `);
        await gw.pump(32 * MiB, '7');
        await gw.write('\n'); // the line ends; the lease event starts on the next line
        await gw.lease(`after ${field}`);
      }
      await until(() => {
        if (neuron.errors.length) throw new Error(`error event: ${neuron.errors[0].message}`);
        return fields.every((f) => gw.terminal(`after ${f}`).length > 0);
      }, 'the ack of each lease after an overlong line', 10_000);
    });
    t.diagnostic(report('32 MiB non-data lines, each followed by a lease', r));
    assertSurvived(r, { errors: [] });
  });

/**
 * One lease event made of very many short data lines, `"aaaaaaaa",` each
 * (12 bytes of joined data with its LF): `pad` extra bytes in the last one
 * make the joined data exactly maxFrameBytes + over.
 * @param {string} id @param {number} over
 */
function manyLinesLease(id, over) {
  const first = leaseOpening(id, '[').slice('data: '.length);
  const fixed = first.length + 1 + '"end"]}}'.length;
  const lines = Math.floor((MAX_FRAME - fixed) / 12);
  const pad = MAX_FRAME - fixed - lines * 12 + over;
  return {
    lines,
    joined: fixed + lines * 12 + pad,
    /** the input array, as JSON.stringify writes it */
    inputBytes: 2 + lines * 11 + `"end${'e'.repeat(pad)}"`.length,
    /** @param {import('./support/gateway.js').HostileGateway} gw */
    async write(gw) {
      await gw.write(`data: ${first}\n`);
      await gw.pump(lines * 18, 'data: "aaaaaaaa",\n');
      await gw.write(`data: "end${'e'.repeat(pad)}"]}}\n\n`);
    },
  };
}

test('3. one event of ~1.4 million short data: lines joined to exactly maxFrameBytes is delivered and acked; one byte more is a frame-too-large error, the event dropped, the next lease acked', { timeout: 120_000 }, async (t) => {
  const at = manyLinesLease('at-limit', 0);
  const over = manyLinesLease('over-limit', 1);
  assert.equal(at.joined, MAX_FRAME);
  const r = await attackThenLease(async ({ gw }) => {
    await at.write(gw);
    await over.write(gw);
  });
  t.diagnostic(report(`${at.lines} data lines at the limit, then ${over.lines} one byte over`, r));
  assertSurvived(r, { errors: ['frame-too-large'] });
  const acked = r.gw.terminal('at-limit');
  assert.equal(acked.length, 1);
  assert.equal(acked[0].type, 'ack');
  assert.deepEqual(acked[0].output, { bytes: at.inputBytes }, 'the handler saw the whole array');
  assert.deepEqual(r.gw.terminal('over-limit'), []);
});

test('3. one event of short data: lines far over maxFrameBytes (64 MiB and 512 MiB of them): one frame-too-large error, the next lease acked; memory the same at both sizes', { timeout: 180_000 }, async (t) => {
  const run = (/** @type {number} */ size) => attackThenLease(async ({ gw }) => {
    await gw.write(`${leaseOpening('lines', '[')}\n`);
    await gw.pump(Math.floor(size / 18) * 18, 'data: "aaaaaaaa",\n');
    await gw.write('data: "end"]}}\n\n');
  });
  const [small, large] = await atTwoSizes(t, [['64 MiB of data lines', 64 * MiB], ['512 MiB of data lines', 512 * MiB]], run);
  for (const r of [small, large]) {
    assertSurvived(r, { errors: ['frame-too-large'] });
    assert.deepEqual(r.gw.terminal('lines'), []);
  }
  assertSizeIndependent(small, large);
});

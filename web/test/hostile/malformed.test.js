// Hostile gateway, attack classes 4-6: frames a parser can choke on. JSON
// nested 100 000 deep, invalid UTF-8, NUL bytes, lone CRs and BOMs where
// they do not belong. Each either reaches the handler as the standards say
// (WHATWG SSE and its UTF-8 decoding) or ends in an `error` event with the
// frame dropped; the stream stays and the lease after the attack is acked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MiB, leaseFrame, leaseOpening, rawLease } from './support/gateway.js';
import { atTwoSizes, attackThenLease, assertSurvived, assertSizeIndependent, report } from './support/neuron-process.js';

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));
const latin1 = (/** @type {string} */ s) => Buffer.from(s, 'latin1');

/**
 * A lease event of exactly `bytes` bytes whose input is `deep`, padded with a
 * string member after it: events of the same size whatever their depth, so
 * memory measured at two depths compares the depths, not the event sizes.
 * @param {string} id @param {string} deep @param {number} bytes
 */
function padded(id, deep, bytes) {
  const head = `${leaseOpening(id, deep)},"pad":"`;
  const tail = '"}}\n\n';
  return head + 'p'.repeat(bytes - head.length - tail.length) + tail;
}

test('4. JSON nesting 100 000 and 1 000 000 deep (arrays, objects, never closed): an error event per frame, each frame dropped without a nack, the stream kept, the next lease acked; memory the same at both depths', { timeout: 120_000 }, async (t) => {
  const run = (/** @type {number} */ depth) => attackThenLease(async ({ gw }) => {
    const size = 8 * MiB; // every event, at both depths
    await gw.write(padded('deep-arrays', '['.repeat(depth) + ']'.repeat(depth), size));
    await gw.write(padded('deep-objects', '{"a":'.repeat(depth) + '1' + '}'.repeat(depth), size));
    await gw.write(padded('deep-unclosed', '['.repeat(depth), size));
  });
  const [small, large] = await atTwoSizes(t, [['100 000 deep, 8 MiB events', 100_000], ['1 000 000 deep, 8 MiB events', 1_000_000]], run);
  for (const r of [small, large]) {
    assertSurvived(r, { errors: ['malformed-frame', 'malformed-frame', 'malformed-frame'] });
    for (const e of r.neuron.errors) assert.match(e.message, /deeper than 256/);
    for (const id of ['deep-arrays', 'deep-objects', 'deep-unclosed']) assert.deepEqual(r.gw.terminal(id), [], id);
  }
  assertSizeIndependent(small, large);
});

test('4. the nesting limit is 256 levels for the whole frame: 256 is run, 257 is dropped with an error; brackets inside a string do not count', { timeout: 60_000 }, async (t) => {
  // The frame object and `task` are two levels: the input adds the rest.
  const r = await attackThenLease(async ({ gw }) => {
    await gw.write(rawLease('depth-256', '['.repeat(254) + ']'.repeat(254)));
    await gw.write(rawLease('depth-257', '['.repeat(255) + ']'.repeat(255)));
    await gw.write(rawLease('brackets-in-string', JSON.stringify('['.repeat(100_000))));
  });
  t.diagnostic(report('depth 256 / 257 / brackets in a string', r));
  assertSurvived(r, { errors: ['malformed-frame'] });
  assert.equal(r.gw.terminal('depth-256')[0]?.type, 'ack');
  assert.deepEqual(r.gw.terminal('depth-257'), []);
  assert.deepEqual(r.gw.terminal('brackets-in-string')[0]?.output, { bytes: 100_002 });
});

test('5. invalid UTF-8 inside JSON strings (0xff, lone 0xc3, overlong 0xc0 0xaf, a surrogate, past U+10FFFF, a cut sequence; in the input and in the ids) is decoded as WHATWG says, with U+FFFD; every POST stays valid UTF-8', { timeout: 60_000 }, async (t) => {
  /** @type {Record<string, number[]>} */
  const invalid = {
    'utf8-ff': [0xff],
    'utf8-lone-c3': [0xc3],
    'utf8-overlong-c0af': [0xc0, 0xaf],
    'utf8-surrogate-eda080': [0xed, 0xa0, 0x80],
    'utf8-past-10ffff': [0xf4, 0x90, 0x80, 0x80],
    'utf8-cut-f09f98': [0xf0, 0x9f, 0x98],
  };
  const decode = (/** @type {Buffer} */ b) => new TextDecoder().decode(b); // the WHATWG decoder, replacement mode
  const r = await attackThenLease(async ({ gw }) => {
    for (const [id, bytes] of Object.entries(invalid)) {
      await gw.write(Buffer.concat([latin1(leaseOpening(id, '"a')), Buffer.from(bytes), latin1('b"}}\n\n')]));
    }
    // In the ids the ack must echo.
    await gw.write(Buffer.concat([latin1('data: {"type":"lease","leaseId":"id-'), Buffer.from([0xff]),
      latin1('","task":{"taskId":"task-'), Buffer.from([0xc3]), latin1('","type":"hostile/echo","input":1}}\n\n')]));
    // A valid 4-byte sequence cut across two TCP writes is one character.
    const emoji = Buffer.from('😀');
    await gw.write(Buffer.concat([latin1(leaseOpening('utf8-split', '"')), emoji.subarray(0, 2)]));
    await sleep(50);
    await gw.write(Buffer.concat([emoji.subarray(2), latin1('"}}\n\n')]));
    // Outside a string it is not JSON.
    await gw.write(Buffer.concat([latin1('data: {"type":"lease",'), Buffer.from([0xff]), latin1('"leaseId":"utf8-outside","task":{"taskId":"t","type":"hostile/echo","input":1}}\n\n')]));
  });
  t.diagnostic(report('invalid UTF-8', r));
  assertSurvived(r, { errors: ['malformed-frame'] });
  for (const [id, bytes] of Object.entries(invalid)) {
    const [v] = r.gw.terminal(id);
    assert.equal(v?.type, 'ack', id);
    assert.equal(v.output.echo, decode(Buffer.concat([Buffer.from('a'), Buffer.from(bytes), Buffer.from('b')])), id);
  }
  const [ids] = r.gw.terminal(decode(Buffer.from([0x69, 0x64, 0x2d, 0xff])));
  assert.equal(ids?.type, 'ack', `the lease with 0xff in its id: ${JSON.stringify([...r.gw.terminals.keys()])}`);
  assert.equal(ids.taskId, decode(Buffer.from([0x74, 0x61, 0x73, 0x6b, 0x2d, 0xc3])));
  assert.equal(r.gw.terminal('utf8-split')[0]?.output.echo, '😀');
  assert.deepEqual(r.gw.terminal('utf8-outside'), []);
});

/** A lease event, with `edit` applied to its JSON text. @param {string} id @param {(json: string) => string} [edit] @param {unknown} [input] */
const edited = (id, edit = (j) => j, input = 1) => edit(JSON.stringify(leaseFrame(id, input)));

test('6. NUL bytes, lone CRs and BOMs mid-stream: what the SSE standard makes an event is run, what it ignores is ignored, what is not JSON is an error; the stream kept', { timeout: 60_000 }, async (t) => {
  const r = await attackThenLease(async ({ gw }) => {
    await gw.write(': ping\0\0\0\n\n'); // NUL in a comment
    await gw.write(`data: ${edited('nul-after-json')}\0\n\n`); // not JSON
    await gw.write(`data: ${edited('nul-in-string', (j) => j.replace('"task-nul-in-string"', '"task-\0"'))}\n\n`); // raw control char: not JSON
    await gw.write(`data: ${edited('nul-escaped', undefined, 'a\0b')}\n\n`); // \u0000: fine
    await gw.write(`\0data: ${edited('nul-before-field')}\n\n`); // field "\0data": unknown, ignored
    await gw.write(`id: x\0y\ndata: ${edited('nul-in-id')}\n\n`); // an id with NUL is ignored, the event is not
    await gw.write(`data: ${edited('cr-cr')}\r\r`); // lone CRs end lines
    await gw.write(`data: ${edited('cr-split')}\r`);
    await sleep(30);
    await gw.write('\r'); // the blank line's CR in the next TCP segment
    await gw.write(`data: ${edited('crlf-split')}\r`);
    await sleep(30);
    await gw.write('\n\r\n'); // CR | LF across segments is one line end
    await gw.write(`data: ${edited('cr-mid-json', (j) => j.replace(',"task"', ',\r"task"'))}\n\n`); // the CR cuts the JSON
    await gw.write(`\uFEFFdata: ${edited('bom-before-field')}\n\n`); // field "\uFEFFdata": unknown, ignored
    await gw.write(`data: \uFEFF${edited('bom-before-json')}\n\n`); // not JSON
    await gw.write(`data: ${edited('bom-in-string', undefined, '\uFEFF')}\n\n`); // fine
  }, {
    // The stream itself starts with a BOM, which is skipped.
    gateway: { onStream: (req, res, gw) => { gw.openStream(req, res); res.write('\uFEFF'); } },
  });
  t.diagnostic(report('NUL / CR / BOM', r));
  assertSurvived(r, { errors: ['malformed-frame', 'malformed-frame', 'malformed-frame', 'malformed-frame'] });
  const echo = (/** @type {string} */ id) => {
    const [v] = r.gw.terminal(id);
    assert.equal(v?.type, 'ack', id);
    return v.output.echo;
  };
  assert.equal(echo('nul-escaped'), 'a\0b');
  assert.equal(echo('bom-in-string'), '\uFEFF');
  for (const id of ['nul-in-id', 'cr-cr', 'cr-split', 'crlf-split']) assert.equal(echo(id), 1, id);
  for (const id of ['nul-after-json', 'nul-in-string', 'nul-before-field', 'cr-mid-json', 'bom-before-field', 'bom-before-json']) {
    assert.deepEqual(r.gw.terminal(id), [], id);
  }
});

test('6. the error for a frame with a NUL after its JSON says what is wrong',
  { timeout: 30_000 },
  async () => {
    const r = await attackThenLease(async ({ gw }) => {
      await gw.write(`data: ${edited('nul-after-json')}\0\n\n`);
    });
    assertSurvived(r, { errors: ['malformed-frame'] });
    assert.doesNotMatch(r.neuron.errors[0].message, /No error/);
  });

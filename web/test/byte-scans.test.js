// The core's scans over a stream's bytes (SSE line ends, a frame's escapes,
// a string input's end) read 16 bytes at a time in wasm (src/neuron/
// find_byte.cpp): lines, strings and escapes of every length from 0 to 47,
// at every offset from a 16-byte boundary, with each line ending, in one
// chunk and in chunks of 7 bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Neuron } from '../src/index.js';
import { memoryGateway } from './support/memory-gateway.js';
import { until } from './support/fake-gateway.js';

const ENDINGS = ['\n', '\r\n', '\r'];
// An escape, as JSON text, and what JSON.parse of the core's frame gives.
const ESCAPES = [['\\"', '"'], ['\\\\', '\\'], ['\\ud800', '\ufffd'], ['\\u00e9', 'é'], ['\\n', '\n'], ['', '']];

/** The stream, and each lease's id and expected output. @param {string} prefix */
function stream(prefix) {
  let text = '';
  /** @type {[string, string][]} */
  const expected = [];
  for (let n = 0; n < 48; n++) {
    const end = ENDINGS[n % 3];
    text += `:${'c'.repeat(n)}${end}`;
    const [esc, value] = ESCAPES[n % ESCAPES.length];
    const at = (n * 7) % (n + 1);
    const json = `"${'x'.repeat(at)}${esc}${'y'.repeat(n - at)}"`;
    const id = `${prefix}${n}`;
    text += `event: lease${end}data: {"type":"lease","leaseId":"${id}","task":{"taskId":"t${n}","type":"core/x","input":${json}}}${end}${end}`;
    expected.push([id, `${'x'.repeat(at)}${value}${'y'.repeat(n - at)}`]);
  }
  return { text, expected };
}

test('lines, strings and escapes of every length and alignment, with every line ending, in one chunk and in 7-byte chunks', async () => {
  const gw = memoryGateway();
  const n = new Neuron({ neuronId: 'n-scans', gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch });
  /** @type {Error[]} */
  const errors = [];
  n.on('error', (e) => errors.push(e));
  n.handle({ type: 'core/x', scope: 'any', concurrency: 200 }, (input) => input);
  await n.start();
  const whole = stream('A');
  gw.raw(whole.text);
  const chunked = stream('B');
  const bytes = new TextEncoder().encode(chunked.text);
  for (let i = 0; i < bytes.length; i += 7) gw.raw(bytes.slice(i, i + 7));
  const all = [...whole.expected, ...chunked.expected];
  await until(() => all.every(([id]) => gw.terminal(id).length === 1), 'every ack');
  for (const [id, output] of all) {
    const [frame] = gw.terminal(id);
    assert.equal(frame.type, 'ack', id);
    assert.equal(frame.output, output, id);
  }
  assert.deepEqual(errors, []);
  await n.stop();
});

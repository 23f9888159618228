// Hostile gateway, attack class 7: slowloris. A lease event arrives one byte
// every 5 ms, its lines ended by CRLF split across segments; with
// idleTimeoutMs at 1 s the bytes keep the stream alive, and the lease is
// acked once it is complete.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leaseFrame } from './support/gateway.js';
import { attackThenLease, assertSurvived, report } from './support/neuron-process.js';

test('7. slowloris: a lease written one byte every 5 ms (with a comment, an event: field and CRLF line ends) is acked once complete; no reconnect with idleTimeoutMs 1 s', { timeout: 60_000 }, async (t) => {
  const event = `: slow\r\nevent: lease\r\ndata: ${JSON.stringify(leaseFrame('slow', { text: 'one byte at a time' }))}\r\n\r\n`;
  const r = await attackThenLease(async ({ gw, until }) => {
    await gw.trickle(event, 5);
    await until(() => gw.terminal('slow').length > 0, 'the ack of the trickled lease', 10_000);
  }, { neuron: { options: { idleTimeoutMs: 1_000 } } });
  t.diagnostic(`${event.length} bytes, one every 5 ms; ${report('slowloris', r)}`);
  assertSurvived(r, { errors: [] });
  const [v] = r.gw.terminal('slow');
  assert.equal(v.type, 'ack');
  assert.deepEqual(v.output, { echo: { text: 'one byte at a time' } });
  assert.deepEqual(r.neuron.of('connection:reconnecting'), []);
});

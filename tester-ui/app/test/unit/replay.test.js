// The replay itself: TesterHost.replay feeds a recorded session to a real
// Neuron (the packed SDK, in Node) through an in-page transport, and every
// inbound frame is played once, in recorded order, even when many share one
// recorded time.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameLog } from '../../src/firehose.js';
import { TesterHost } from '../../src/host.js';
import { exportSession, outboundSummary } from '../../src/session.js';
import { EXAMPLES } from '../../src/capabilities.js';

/** A recording: registered, then `n` echo leases all at one millisecond, each acked. */
function burst(n) {
  const log = new FrameLog(10 * n);
  log.push({ t: 1000, dir: 'in', type: 'registered', frame: { type: 'registered', sessionId: 's-1', capabilities: [{ type: 'core/demo.echo', scope: 'any', concurrency: 4 }] } });
  for (let i = 0; i < n; i++) {
    const leaseId = `l-${i}`;
    const lease = { type: 'lease', leaseId, expiresAt: new Date(Date.now() + 60_000).toISOString(), task: { taskId: `t-${i}`, type: 'core/demo.echo', input: { text: `x${i}` } } };
    log.push({ t: 1020, dir: 'in', type: 'lease', leaseId, frame: lease });
  }
  for (let i = 0; i < n; i++) {
    log.push({ t: 1030, dir: 'out', type: 'ack', leaseId: `l-${i}`, frame: { type: 'ack', leaseId: `l-${i}`, output: { echoed: `x${i}` } }, status: 200 });
  }
  return exportSession({ neuronId: 'n-1', gatewayUrl: 'http://gw', startedAt: 1000, capabilities: [EXAMPLES.echo.spec], entries: log.toArray(), now: 0 });
}

test('a replay plays every inbound frame once and in order, however many share one recorded time', async (t) => {
  const session = burst(200);
  const host = new TesterHost();
  t.after(() => host.stop({ drain: false, timeoutMs: 1000 }));
  await host.replay(session);
  const deadline = Date.now() + 20_000;
  while (!host.replayDone && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(host.replayDone, 'the replay ends');
  assert.equal(host.replayNote, '');
  const inbound = host.log.toArray().filter((e) => e.dir === 'in').map((e) => e.leaseId || e.type);
  assert.deepEqual(inbound, ['registered', ...Array.from({ length: 200 }, (_, i) => `l-${i}`)]);
  assert.deepEqual(outboundSummary(host.log.toArray()).sort(), outboundSummary(session.entries).sort());
});

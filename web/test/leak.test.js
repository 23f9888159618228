// No leaks across the wasm boundary: after 100 000 leases the C++ objects JS
// holds by address (the core, SSE readers) and the bytes the wasm allocator
// holds are back to where they were once the core's bounded memories (recent
// lease ids) had filled; and a stopped neuron's core is freed once nothing
// holds the Neuron (FinalizationRegistry, neuron.js).

import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import v8 from 'node:v8';
import vm from 'node:vm';
import assert from 'node:assert/strict';
import { Neuron } from '../src/index.js';
import { getCore } from '../src/core.js';
import { FakeGateway } from './support/fake-gateway.js';

test('100 000 leases leave the boundary\'s objects and the wasm heap at their baseline; the core goes with its Neuron', async (t) => {
  const Module = getCore();
  const objectsBefore = Module.liveObjects();
  const heapBefore = Module.heapInUse();
  // The neuron lives only in session(): once it has returned, nothing holds it.
  await session(Module);
  v8.setFlagsFromString('--expose-gc');
  const gc = /** @type {() => void} */ (vm.runInNewContext('gc'));
  for (const until = Date.now() + 10_000; Module.liveObjects() !== objectsBefore && Date.now() < until;) {
    gc();
    await sleep(20);  // finalizers run after the collection, in a task of their own
  }
  assert.equal(Module.liveObjects(), objectsBefore, 'the core of a stopped neuron nothing holds is freed');
  t.diagnostic(`wasm heap in use: ${heapBefore} bytes before the neuron, ${Module.heapInUse()} after it was collected`);
});

/** @param {any} Module */
async function session(Module) {
  const gw = new FakeGateway();
  let acked = 0;
  /** @type {(() => void) | null} */
  let onAck = null;
  gw.answer = (path) => {
    if (path === '/neuron/ack') {
      acked++;
      onAck?.();
    }
    return {};
  };
  const n = new Neuron({ neuronId: 'leak', transport: gw.transport });
  n.handle({ type: 'core/leak', scope: 'any', concurrency: 64, inputSchema: { type: 'object', required: ['i'] } },
    (input, ctx) => { ctx.progress({ percent: 50 }); return { i: input.i, ok: true }; });
  await n.start();

  let sent = 0;
  /** Run `count` leases with up to 64 outstanding. @param {number} count */
  const run = (count) => new Promise((resolve) => {
    const target = sent + count;
    const pump = () => {
      while (sent < target && sent - acked < 64) {
        const i = sent++;
        // fixed-width ids: the heap holds recent ids, so their length must not vary
        gw.lease(`l-${String(i).padStart(8, '0')}`, 'core/leak', { i });
      }
      if (acked >= target) {
        onAck = null;
        resolve(undefined);
      }
    };
    onAck = () => queueMicrotask(pump);
    pump();
  });
  // Fill the bounded recent-lease memory (10 000 ids) first: that is its steady state.
  const settle = () => new Promise((r) => setTimeout(r, 50)); // answers still on their way land first
  await run(20_000);
  await settle();
  gw.posts.length = 0;
  const heapBaseline = Module.heapInUse();
  const objectsBaseline = Module.liveObjects();
  assert.ok(objectsBaseline >= 1, 'the neuron\'s core is counted');
  await run(100_000);
  await settle();
  gw.posts.length = 0;
  assert.equal(acked, 120_000);
  assert.equal(Module.liveObjects(), objectsBaseline, 'C++ objects held by JS after 100 000 leases');
  // Object counts are back exactly; bytes may come out a few hundred lower
  // (string capacities settle as ids recycle) but never higher.
  const heapAfter = Module.heapInUse();
  assert.ok(heapAfter <= heapBaseline, `wasm heap grew: ${heapBaseline} -> ${heapAfter} bytes after 100 000 leases`);
  assert.ok(heapBaseline - heapAfter < 16 * 1024, `wasm heap shrank by ${heapBaseline - heapAfter} bytes: not a steady state`);
  await n.stop();
  assert.equal(Module.liveObjects(), objectsBaseline, 'stop() gives back nothing but keeps the core (stats() still answers)');
}

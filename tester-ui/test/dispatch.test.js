// Dispatch: concurrency per neuron and capability, FIFO, onBehalfOf routing, reaper, stream drop.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, TestNeuron, tokens, anyCap, userCap, enqueue, waitFor } from '../testkit/helpers.js';

/** @param {import('node:test').TestContext} t @param {object} [opts] */
async function setup(t, opts) {
  const gw = await startGateway(opts);
  t.after(() => gw.close());
  return { gw, tok: await tokens(gw) };
}

test('never more leases outstanding than the capability concurrency, per neuron and capability; FIFO per type', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/a', 2), anyCap('core/b', 1)]);
  for (let i = 0; i < 5; i++) await enqueue(gw, { type: 'core/a', input: i });
  for (let i = 0; i < 3; i++) await enqueue(gw, { type: 'core/b', input: i });
  const a1 = await n.next((e) => e.type === 'lease' && e.task.type === 'core/a');
  const a2 = await n.next((e) => e.type === 'lease' && e.task.type === 'core/a');
  const b1 = await n.next((e) => e.type === 'lease' && e.task.type === 'core/b');
  assert.deepEqual(await n.none('lease', 200), []);
  assert.deepEqual([a1.task.input, a2.task.input, b1.task.input], [0, 1, 0]);
  const info = gw.hub.describe()[0];
  assert.deepEqual(info.capabilities.map((c) => [c.type, c.inFlight]), [['core/a', 2], ['core/b', 1]]);
  // each ack frees exactly one slot, taken by the next task in creation order
  await n.ack(a1);
  const a3 = await n.next('lease');
  assert.equal(a3.task.input, 2);
  assert.deepEqual(await n.none('lease', 100), []);
  await n.nack(b1, 'terminal');
  const b2 = await n.next('lease');
  assert.deepEqual([b2.task.type, b2.task.input], ['core/b', 1]);
});

test('two neurons share a type; each stays within its own concurrency', async (t) => {
  const { gw, tok } = await setup(t);
  const x = await new TestNeuron(gw, 'x', tok.service).connect();
  const y = await new TestNeuron(gw, 'y', tok.service).connect();
  await x.register([anyCap('core/a', 1)]);
  await y.register([anyCap('core/a', 2)]);
  for (let i = 0; i < 6; i++) await enqueue(gw, { type: 'core/a', input: i });
  await x.next('lease');
  await y.next('lease');
  await y.next('lease');
  assert.deepEqual(await x.none('lease', 150), []);
  assert.deepEqual(await y.none('lease', 0), []);
  assert.equal(gw.store.list({ state: 'pending' }).length, 3);
});

test('onBehalfOf routing: user tasks go to that user or any; tasks without onBehalfOf only to any', async (t) => {
  const { gw, tok } = await setup(t);
  const abcDesk = await new TestNeuron(gw, 'desk-abc', tok.desktop).connect();
  const zzzTok = await gw.mintToken({ kind: 'desktop', userId: 'user:zzz' });
  const zzzDesk = await new TestNeuron(gw, 'desk-zzz', zzzTok).connect();
  await abcDesk.register([userCap('desktop/mcp/drive.read', 'user:abc', 5)]);
  await zzzDesk.register([userCap('desktop/mcp/drive.read', 'user:zzz', 5)]);

  const forAbc = await enqueue(gw, { type: 'desktop/mcp/drive.read', onBehalfOf: 'user:abc', input: 'abc' });
  const forZzz = await enqueue(gw, { type: 'desktop/mcp/drive.read', onBehalfOf: 'user:zzz', input: 'zzz' });
  const forNobody = await enqueue(gw, { type: 'desktop/mcp/drive.read', input: 'none' });
  const forQqq = await enqueue(gw, { type: 'desktop/mcp/drive.read', onBehalfOf: 'user:qqq', input: 'qqq' });

  const la = await abcDesk.next('lease');
  const lz = await zzzDesk.next('lease');
  assert.equal(la.task.taskId, forAbc);
  assert.equal(la.task.onBehalfOf, 'user:abc');
  assert.equal(lz.task.taskId, forZzz);
  assert.deepEqual(await abcDesk.none('lease', 150), []);
  assert.deepEqual(await zzzDesk.none('lease', 0), []);
  assert.equal(gw.store.get(forNobody)?.state, 'pending');
  assert.equal(gw.store.get(forQqq)?.state, 'pending');

  // an 'any' neuron of a core type serves tasks with and without onBehalfOf
  const svc = await new TestNeuron(gw, 'svc', tok.service).connect();
  await svc.register([anyCap('core/http', 5)]);
  const c1 = await enqueue(gw, { type: 'core/http', onBehalfOf: 'user:abc' });
  const c2 = await enqueue(gw, { type: 'core/http' });
  const s1 = await svc.next('lease');
  const s2 = await svc.next('lease');
  assert.deepEqual([s1.task.taskId, s2.task.taskId], [c1, c2]);
  assert.equal(s1.task.onBehalfOf, 'user:abc');
  assert.equal(s2.task.onBehalfOf, undefined);
});

test('a user-scoped task waits FIFO behind nothing: later tasks for other users still flow', async (t) => {
  const { gw, tok } = await setup(t);
  const ext = await new TestNeuron(gw, 'ext', tok.user).connect();
  await ext.register([userCap('user/user:abc/tool', 'user:abc', 1)]);
  const blocked = await enqueue(gw, { type: 'user/user:abc/tool', onBehalfOf: 'user:other' });
  const mine1 = await enqueue(gw, { type: 'user/user:abc/tool', onBehalfOf: 'user:abc', input: 1 });
  const mine2 = await enqueue(gw, { type: 'user/user:abc/tool', onBehalfOf: 'user:abc', input: 2 });
  const l1 = await ext.next('lease');
  assert.equal(l1.task.taskId, mine1);
  await ext.ack(l1);
  const l2 = await ext.next('lease');
  assert.equal(l2.task.taskId, mine2);
  assert.equal(gw.store.get(blocked)?.state, 'pending');
});

test('org extension gets org tasks', async (t) => {
  const { gw, tok } = await setup(t);
  const ext = await new TestNeuron(gw, 'org-ext', tok.org).connect();
  await ext.register([anyCap('org/org1/custom-tool', 1)]);
  const id = await enqueue(gw, { type: 'org/org1/custom-tool', onBehalfOf: 'user:abc' });
  const l = await ext.next('lease');
  assert.equal(l.task.taskId, id);
  assert.equal((await ext.ack(l)).status, 200);
});

test('reaper returns expired leases to pending and redelivers with attempt + 1; the late ack is 409', async (t) => {
  const { gw, tok } = await setup(t, { leaseTtlMs: 150, reaperIntervalMs: 30, maxAttempts: 5 });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/slow', 1)]);
  const id = await enqueue(gw, { type: 'core/slow' });
  const l1 = await n.next('lease');
  assert.equal(l1.task.attempt, 1);
  const l2 = await n.next('lease', 2000);
  assert.equal(l2.task.taskId, id);
  assert.equal(l2.task.attempt, 2);
  assert.notEqual(l2.leaseId, l1.leaseId);
  assert.equal((await n.ack(l1)).status, 409);
  assert.equal((await n.ack(l2)).status, 200);
  const hist = gw.store.history(id).map((h) => h.event);
  assert.deepEqual(hist, ['enqueued', 'leased', 'expired', 'leased', 'acked', 'ended']);
});

test('lease expiry counts against maxAttempts: the last expiry fails the task', async (t) => {
  const { gw, tok } = await setup(t, { leaseTtlMs: 80, reaperIntervalMs: 20, maxAttempts: 2 });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/slow', 1)]);
  const id = await enqueue(gw, { type: 'core/slow' });
  await n.next('lease');
  await n.next('lease', 2000);
  await waitFor(() => gw.store.get(id)?.state === 'failed', 2000, 'failed');
  assert.equal(gw.store.get(id)?.nack?.code, 'LEASE_EXPIRED');
});

test('a neuron whose stream drops has its leases returned at once and redelivered elsewhere', async (t) => {
  const { gw, tok } = await setup(t);
  const a = await new TestNeuron(gw, 'a', tok.service).connect();
  await a.register([anyCap('core/a', 2)]);
  const ids = [await enqueue(gw, { type: 'core/a' }), await enqueue(gw, { type: 'core/a' })];
  const la = [await a.next('lease'), await a.next('lease')];
  const b = await new TestNeuron(gw, 'b', tok.service).connect();
  await b.register([anyCap('core/a', 2)]);
  assert.deepEqual(await b.none('lease', 100), []);
  await a.close();
  const lb = [await b.next('lease'), await b.next('lease')];
  assert.deepEqual(lb.map((l) => l.task.taskId).sort(), [...ids].sort());
  assert.ok(lb.every((l) => l.task.attempt === 2));
  // the dropped neuron's ack arrives late (its handler was still running): 409, nothing changes
  assert.equal((await a.ack(la[0])).status, 409);
  for (const l of lb) assert.equal((await b.ack(l)).status, 200);
  for (const id of ids) assert.equal(gw.store.history(id).filter((h) => h.event === 'ended').length, 1);
});

test('tasks enqueued before any neuron connects are delivered on register', async (t) => {
  const { gw, tok } = await setup(t);
  const id = await enqueue(gw, { type: 'core/late' });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  // connected but not registered: nothing yet
  assert.deepEqual(await n.none('lease', 100), []);
  await n.register([anyCap('core/late')]);
  assert.equal((await n.next('lease')).task.taskId, id);
});

test('many tasks, several neurons: every task ends exactly once', async (t) => {
  const { gw, tok } = await setup(t);
  const ns = await Promise.all(['p', 'q', 'r'].map((id) => new TestNeuron(gw, id, tok.service).connect()));
  for (const n of ns) await n.register([anyCap('core/bulk', 3)]);
  const ids = [];
  for (let i = 0; i < 40; i++) ids.push(await enqueue(gw, { type: 'core/bulk', input: i }));
  const workers = ns.map(async (n) => {
    for (;;) {
      const done = gw.store.list({ state: 'done' }).length;
      if (done === ids.length) return;
      let l;
      try { l = await n.next('lease', 300); } catch { continue; }
      const r = await n.ack(l, l.task.input);
      assert.equal(r.status, 200);
    }
  });
  await Promise.all(workers);
  for (const id of ids) {
    assert.equal(gw.store.get(id)?.state, 'done');
    assert.equal(gw.store.history(id).filter((h) => h.event === 'leased').length, 1);
  }
});

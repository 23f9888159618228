// Hardening (from a review against issue 3 and PROTOCOL.md): dispatch past undeliverable tasks,
// leases a neuron declines, running leases across a stream drop, stream ownership, lease frame
// depth and size limits, malformed dev paths, and drive-by requests from web pages to the dev API.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, TestNeuron, tokens, anyCap, userCap, enqueue, dev, waitFor } from '../testkit/helpers.js';
import { jsonDepthExceeds } from '../gateway/http.js';

/** @param {import('node:test').TestContext} t @param {object} [opts] */
async function setup(t, opts) {
  const gw = await startGateway(opts);
  t.after(() => gw.close());
  return { gw, tok: await tokens(gw) };
}

test('a user-scoped task queued behind 500 undeliverable tasks of its type is still dispatched', async (t) => {
  const { gw, tok } = await setup(t);
  // 500 tasks for a user whose desktop is offline, then one for user:abc whose desktop is online
  for (let i = 0; i < 500; i++) gw.store.enqueue({ type: 'desktop/mcp/drive.read', onBehalfOf: 'user:zzz', input: i });
  const mine = gw.store.enqueue({ type: 'desktop/mcp/drive.read', onBehalfOf: 'user:abc', input: 'abc' }).taskId;
  const n = await new TestNeuron(gw, 'desk-abc', tok.desktop).connect();
  await n.register([userCap('desktop/mcp/drive.read', 'user:abc', 1)]);
  const l = await n.next('lease', 2000);
  assert.equal(l.task.taskId, mine);
});

test('nack retryable SHUTTING_DOWN (SDK stop) does not bounce the task back to the same neuron until it fails', async (t) => {
  const { gw, tok } = await setup(t, { maxAttempts: 3 });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo', 1)]);
  const id = await enqueue(gw, { type: 'core/echo' });
  // a neuron in stop({ drain }) answers every new lease with nack retryable SHUTTING_DOWN (PROTOCOL 3.12)
  const deadline = Date.now() + 800;
  while (Date.now() < deadline) {
    let l;
    try { l = await n.next('lease', Math.max(1, deadline - Date.now())); } catch { break; }
    await n.nack(l, 'retryable', { code: 'SHUTTING_DOWN', reason: 'neuron is stopping' });
  }
  const task = gw.store.get(id);
  assert.notEqual(task?.state, 'failed', `a task that never ran was failed by a draining neuron: ${JSON.stringify(task?.nack)} after ${task?.attempt} attempts`);
});

test('a lease the neuron reported running survives a stream drop; its ack after reconnect is accepted (issue 3: only queued-but-unstarted leases are returned; PROTOCOL 1.2)', async (t) => {
  const { gw, tok } = await setup(t);
  const a = await new TestNeuron(gw, 'w', tok.service).connect();
  await a.register([anyCap('core/work', 1)]);
  const id = await enqueue(gw, { type: 'core/work' });
  const l = await a.next('lease');
  // the handler is running: the heartbeat says so
  assert.deepEqual((await a.heartbeat([l.leaseId])).body, { lostLeases: [] });
  // the stream drops; the SDK keeps the handler running and reconnects
  await a.close();
  await waitFor(() => !gw.hub.neurons.has('w'), 2000, 'the gateway to see the drop');
  const b = await new TestNeuron(gw, 'w', tok.service).connect();
  await b.register([anyCap('core/work', 1)]);
  // the handler finishes; its ack is posted (PROTOCOL 1.2: "their ack/nack is still posted when they finish")
  const r = await b.ack(l);
  assert.equal(r.status, 200, `ack of the running lease after reconnect -> ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(gw.store.get(id)?.state, 'done');
  assert.equal(gw.store.get(id)?.attempt, 1);
});

test('a stream for a neuronId held by another identity is refused (4xx) and does not disconnect the owner', async (t) => {
  const { gw, tok } = await setup(t);
  const owner = await new TestNeuron(gw, 'w-1', tok.service).connect();
  await owner.register([anyCap('core/echo')]);
  const res = await fetch(`${gw.url}/neuron/events?neuronId=w-1`, { headers: { Authorization: `Bearer ${tok.user}` } });
  const status = res.status;
  await res.body?.cancel();
  assert.ok(status >= 400 && status < 500, `another identity opened the owner's stream: ${status}`);
  assert.deepEqual(await owner.none('disconnect', 200), [], 'the owner got disconnect (reconnect: false) from a stranger');
});

test('the gateway never sends a lease frame the SDK cannot decode (JSON deeper than 256 levels)', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo')]);
  // 255 levels of input: the enqueue body nests 256 (accepted), the lease frame nests 257
  const deep = JSON.parse('['.repeat(255) + ']'.repeat(255));
  const r = await dev(gw, 'POST', '/dev/tasks', { type: 'core/echo', input: deep });
  if (r.status >= 400 && r.status < 500) return; // refused up front: fine
  assert.equal(r.status, 201);
  const l = await n.next('lease');
  assert.equal(jsonDepthExceeds(JSON.stringify(l), 256), false, 'lease frame nests deeper than 256 levels: the SDK drops it and the task burns its attempts on expiry');
});

test('a task whose lease frame would exceed the SDK maxFrameBytes (16 MiB) is refused at enqueue', async (t) => {
  const { gw } = await setup(t);
  const r = await fetch(`${gw.url}/dev/tasks`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'core/echo', input: 'x'.repeat(16 * 1024 * 1024) }),
  });
  const status = r.status;
  await r.body?.cancel();
  assert.ok(status >= 400 && status < 500, `enqueue of a task whose lease frame is over 16 MiB -> ${status}`);
});

test('a malformed percent-encoding in a dev API path is a 4xx with { error }, not a 500', async (t) => {
  const { gw } = await setup(t);
  for (const [method, path] of [['GET', '/dev/tasks/%E0%A4%A'], ['POST', '/dev/neurons/%zz/disconnect']]) {
    const r = await dev(gw, method, path);
    assert.ok(r.status >= 400 && r.status < 500, `${method} ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(typeof r.body?.error, 'string');
  }
});

test('the user-scoped filter still keeps FIFO: of several users a free slot serves, the oldest task goes first', async (t) => {
  const { gw, tok } = await setup(t);
  for (let i = 0; i < 450; i++) gw.store.enqueue({ type: 'desktop/mcp/drive.read', onBehalfOf: 'user:zzz', input: i });
  const first = gw.store.enqueue({ type: 'desktop/mcp/drive.read', onBehalfOf: 'user:abc', input: 'a1' }).taskId;
  for (let i = 0; i < 450; i++) gw.store.enqueue({ type: 'desktop/mcp/drive.read', onBehalfOf: 'user:zzz', input: i });
  const second = gw.store.enqueue({ type: 'desktop/mcp/drive.read', onBehalfOf: 'user:abc', input: 'a2' }).taskId;
  const n = await new TestNeuron(gw, 'desk-abc', tok.desktop).connect();
  await n.register([userCap('desktop/mcp/drive.read', 'user:abc', 2)]);
  const got = [(await n.next('lease', 2000)).task.taskId, (await n.next('lease', 2000)).task.taskId];
  assert.deepEqual(got, [first, second]);
  assert.deepEqual(await n.none('lease', 100), []);
});

test('a declined lease (SHUTTING_DOWN) is not counted as an attempt and goes to another neuron; the draining neuron gets no more leases', async (t) => {
  const { gw, tok } = await setup(t, { maxAttempts: 1 });
  const a = await new TestNeuron(gw, 'a', tok.service).connect();
  await a.register([anyCap('core/echo', 1), anyCap('core/other', 1)]);
  const id = await enqueue(gw, { type: 'core/echo' });
  const l = await a.next('lease');
  assert.equal(l.task.attempt, 1);
  const r = await a.nack(l, 'retryable', { code: 'SHUTTING_DOWN', reason: 'neuron is stopping' });
  assert.deepEqual(r.body, { taskId: id, state: 'pending' }, 'maxAttempts 1: a counted nack would have failed it');
  assert.equal(gw.store.get(id)?.attempt, 0);
  assert.ok(gw.store.history(id).some((h) => h.event === 'declined'));
  assert.equal(gw.hub.describe()[0].draining, true);
  await enqueue(gw, { type: 'core/other' });
  assert.deepEqual(await a.none('lease', 150), [], 'a draining neuron gets no lease of any capability');
  const b = await new TestNeuron(gw, 'b', tok.service).connect();
  await b.register([anyCap('core/echo', 1)]);
  const lb = await b.next('lease');
  assert.equal(lb.task.taskId, id);
  assert.equal(lb.task.attempt, 1);
  assert.equal((await b.ack(lb)).status, 200);
  // registering again starts a fresh session: no longer draining
  await a.register([anyCap('core/other', 1)]);
  assert.equal((await a.next('lease')).task.type, 'core/other');
});

test('NO_HANDLER / CAPABILITY_REVOKED stop leasing that capability to that connection until it registers again; other capabilities keep flowing', async (t) => {
  const { gw, tok } = await setup(t, { maxAttempts: 1 });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/a', 1), anyCap('core/b', 1)]);
  const ida = await enqueue(gw, { type: 'core/a' });
  const la = await n.next('lease');
  assert.equal((await n.nack(la, 'retryable', { code: 'NO_HANDLER' })).body.state, 'pending');
  assert.deepEqual(await n.none('lease', 150), [], 'core/a is not leased again to the neuron that has no handler for it');
  assert.equal(gw.hub.describe()[0].capabilities.find((/** @type {any} */ c) => c.type === 'core/a').declined, 'NO_HANDLER');
  const idb = await enqueue(gw, { type: 'core/b' });
  const lb = await n.next('lease');
  assert.equal(lb.task.taskId, idb);
  assert.equal((await n.nack(lb, 'retryable', { code: 'CAPABILITY_REVOKED' })).body.state, 'pending');
  assert.deepEqual(await n.none('lease', 150), []);
  await n.register([anyCap('core/a', 1), anyCap('core/b', 1)]);
  const again = [await n.next('lease'), await n.next('lease')];
  assert.deepEqual(again.map((l) => l.task.taskId).sort(), [ida, idb].sort());
  assert.ok(again.every((l) => l.task.attempt === 1));
});

test('a decline code on a lease that was reported running counts as an attempt like any retryable nack', async (t) => {
  const { gw, tok } = await setup(t, { maxAttempts: 1 });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/a', 1)]);
  const id = await enqueue(gw, { type: 'core/a' });
  const l = await n.next('lease');
  await n.heartbeat([l.leaseId]);
  // stop() without drain fires running handlers' signals: they end in nack retryable SHUTTING_DOWN
  assert.equal((await n.nack(l, 'retryable', { code: 'SHUTTING_DOWN' })).body.state, 'failed');
  assert.equal(gw.store.get(id)?.attempt, 1);
});

test('on a stream drop only leases never reported running return; the running one is renewed by heartbeats after reconnect and bound to the identity', async (t) => {
  const { gw, tok } = await setup(t, { leaseTtlMs: 400, reaperIntervalMs: 20 });
  const a = await new TestNeuron(gw, 'w', tok.service).connect();
  await a.register([anyCap('core/work', 2)]);
  const running = await enqueue(gw, { type: 'core/work', input: 'running' });
  const queued = await enqueue(gw, { type: 'core/work', input: 'queued' });
  const l1 = await a.next('lease');
  const l2 = await a.next('lease');
  assert.deepEqual([l1.task.taskId, l2.task.taskId], [running, queued]);
  await a.heartbeat([l1.leaseId]);
  await a.close();
  await waitFor(() => !gw.hub.neurons.has('w'), 2000, 'the gateway to see the drop');
  assert.equal(gw.store.get(running)?.state, 'leased');
  assert.equal(gw.store.get(running)?.leaseId, l1.leaseId);
  assert.equal(gw.store.get(queued)?.state, 'pending');
  // another identity cannot touch the lease, even under the same neuronId while it is not connected
  const stranger = new TestNeuron(gw, 'w', await gw.mintToken({ kind: 'service', sub: 'svc-2' }));
  assert.deepEqual((await stranger.heartbeat([l1.leaseId])).body, { lostLeases: [l1.leaseId] });
  assert.equal((await stranger.ack(l1)).status, 409);
  // reconnect: the running lease still takes its slot (concurrency 2: only the queued task comes back)
  const b = await new TestNeuron(gw, 'w', tok.service).connect();
  await b.register([anyCap('core/work', 2)]);
  const back = await b.next('lease');
  assert.equal(back.task.taskId, queued);
  assert.equal(back.task.attempt, 2);
  // heartbeats keep it alive past its TTL
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual((await b.heartbeat([l1.leaseId, back.leaseId])).body, { lostLeases: [] });
  }
  assert.equal((await b.ack(l1)).status, 200);
  assert.equal(gw.store.get(running)?.attempt, 1);
  assert.equal((await b.ack(back)).status, 200);
});

test('a running lease kept across a drop expires normally if nothing renews it, and is redelivered', async (t) => {
  const { gw, tok } = await setup(t, { leaseTtlMs: 200, reaperIntervalMs: 20 });
  const a = await new TestNeuron(gw, 'w', tok.service).connect();
  await a.register([anyCap('core/work', 1)]);
  const id = await enqueue(gw, { type: 'core/work' });
  const l = await a.next('lease');
  await a.heartbeat([l.leaseId]);
  await a.close();
  await waitFor(() => gw.store.get(id)?.state === 'pending', 2000, 'the lease to expire');
  assert.deepEqual(gw.store.history(id).map((h) => h.event), ['enqueued', 'leased', 'expired']);
  const b = await new TestNeuron(gw, 'w2', tok.service).connect();
  await b.register([anyCap('core/work', 1)]);
  assert.equal((await b.next('lease')).task.attempt, 2);
});

test('a stream for another identity\'s live neuronId gets 409 { error }; the same identity still supersedes', async (t) => {
  const { gw, tok } = await setup(t);
  const owner = await new TestNeuron(gw, 'w-1', tok.service).connect();
  await owner.register([anyCap('core/echo')]);
  // same sub and kind, another user: still another identity
  const desk1 = await gw.mintToken({ kind: 'desktop', sub: 'desk', userId: 'user:abc' });
  const desk2 = await gw.mintToken({ kind: 'desktop', sub: 'desk', userId: 'user:zzz' });
  for (const token of [tok.user, desk1]) {
    const res = await fetch(`${gw.url}/neuron/events?neuronId=w-1`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 409);
    assert.match((await res.json()).error, /another identity/);
  }
  const events = (await dev(gw, 'GET', '/dev/events')).body.events;
  assert.ok(events.some((/** @type {any} */ e) => e.kind === 'stream-refused' && e.status === 409));
  const d = await new TestNeuron(gw, 'd', desk1).connect();
  const res = await fetch(`${gw.url}/neuron/events?neuronId=d`, { headers: { Authorization: `Bearer ${desk2}` } });
  assert.equal(res.status, 409);
  await res.body?.cancel();
  const again = await new TestNeuron(gw, 'w-1', tok.service).connect();
  assert.deepEqual(await owner.next('disconnect'), { type: 'disconnect', reason: 'superseded', reconnect: false });
  await again.close();
  await d.close();
});

test('enqueue refuses input or metadata that would nest the lease frame deeper than 256 levels (400); 254 levels of input are fine', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo')]);
  const nest = (/** @type {number} */ d) => JSON.parse('['.repeat(d) + ']'.repeat(d));
  const tooDeep = await dev(gw, 'POST', '/dev/tasks', { type: 'core/echo', input: nest(255) });
  assert.equal(tooDeep.status, 400);
  assert.match(tooDeep.body.error, /'input' nests deeper than 254 levels/);
  let meta = {};
  for (let i = 0; i < 254; i++) meta = { m: meta };
  const metaDeep = await dev(gw, 'POST', '/dev/tasks', { type: 'core/echo', metadata: meta });
  assert.equal(metaDeep.status, 400);
  assert.match(metaDeep.body.error, /'metadata' nests deeper/);
  const ok = await dev(gw, 'POST', '/dev/tasks', { type: 'core/echo', input: nest(254) });
  assert.equal(ok.status, 201);
  const l = await n.next('lease');
  const text = JSON.stringify(l);
  assert.equal(jsonDepthExceeds(text, 256), false);
  assert.equal(jsonDepthExceeds(text, 255), true, 'exactly 256 levels');
});

test('enqueue refuses with 413 { error } a task whose lease frame would exceed maxFrameBytes (a setting)', async (t) => {
  const { gw, tok } = await setup(t, { maxFrameBytes: 1000 });
  assert.equal(gw.settings.maxFrameBytes, 1000);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo')]);
  const big = await dev(gw, 'POST', '/dev/tasks', { type: 'core/echo', input: 'x'.repeat(1000) });
  assert.equal(big.status, 413);
  assert.match(big.body.error, /over the 1000-byte frame limit/);
  // the largest input that fits (binary search): its lease frame is at most 1000 bytes, and close to it
  let lo = 0, hi = 1000;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const r = await dev(gw, 'POST', '/dev/tasks', { type: 'core/echo', input: 'y'.repeat(mid), maxAttempts: 9 });
    if (r.status === 201) lo = mid; else { assert.equal(r.status, 413); hi = mid - 1; }
  }
  const count = gw.store.list().length;
  let largest = 0;
  for (let i = 0; i < count; i++) {
    const l = await n.next('lease');
    const bytes = Buffer.byteLength(JSON.stringify(l));
    assert.ok(bytes <= 1000, `lease frame of ${bytes} bytes`);
    largest = Math.max(largest, bytes);
    await n.ack(l);
  }
  assert.ok(largest >= 990, `the estimate is tight: largest lease frame ${largest} bytes`);
  const dflt = await startGateway();
  t.after(() => dflt.close());
  assert.equal(dflt.settings.maxFrameBytes, 16 * 1024 * 1024);
});

test('a malformed percent-encoding in a dev API path is 400 { error: "malformed percent-encoding in path" }', async (t) => {
  const { gw } = await setup(t);
  const r = await dev(gw, 'GET', '/dev/tasks/%E0%A4%A');
  assert.deepEqual([r.status, r.body], [400, { error: 'malformed percent-encoding in path' }]);
});

test('the dev API refuses web pages of other sites (Origin) and POSTs that are not application/json; loopback pages and --dev-origins may use it', async (t) => {
  const { gw } = await setup(t, { devOrigins: ['https://tester.example'] });
  /** @param {string} method @param {string} path @param {Record<string, string>} headers @param {string} [body] */
  const raw = async (method, path, headers, body) => {
    const res = await fetch(`${gw.url}${path}`, { method, headers, body });
    const text = await res.text();
    return { status: res.status, acao: res.headers.get('access-control-allow-origin'), body: text ? JSON.parse(text) : null };
  };
  // a page on another site: a no-preflight text/plain POST minting a token, a JSON enqueue, a read
  for (const [method, path, headers, body] of /** @type {[string, string, Record<string, string>, string|undefined][]} */ ([
    ['POST', '/dev/tokens', { Origin: 'https://evil.example', 'Content-Type': 'text/plain' }, '{"kind":"service"}'],
    ['POST', '/dev/tasks', { Origin: 'https://evil.example', 'Content-Type': 'application/json' }, '{"type":"core/x"}'],
    ['GET', '/dev/tasks', { Origin: 'http://localhost.evil.example' }, undefined],
    ['POST', '/dev/tokens', { Origin: 'null', 'Content-Type': 'application/json' }, '{"kind":"service"}'],
  ])) {
    const r = await raw(method, path, headers, body);
    assert.equal(r.status, 403, `${method} ${path} from ${headers.Origin}`);
    assert.equal(r.acao, null);
    assert.match(r.body.error, /may not use the dev API/);
  }
  assert.equal(gw.store.list().length, 0);
  const pre = await fetch(`${gw.url}/dev/tasks`, { method: 'OPTIONS', headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
  assert.equal(pre.status, 403);
  assert.equal(pre.headers.get('access-control-allow-origin'), null);
  // loopback pages and configured origins: allowed, origin echoed
  for (const origin of ['http://localhost:5173', 'http://127.0.0.1:8080', 'http://[::1]:3000', 'http://localhost', 'https://tester.example']) {
    const r = await raw('POST', '/dev/tasks', { Origin: origin, 'Content-Type': 'application/json; charset=utf-8' }, '{"type":"core/x"}');
    assert.equal(r.status, 201, origin);
    assert.equal(r.acao, origin);
    const p = await fetch(`${gw.url}/dev/tokens`, { method: 'OPTIONS', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' } });
    assert.equal(p.status, 204);
    assert.equal(p.headers.get('access-control-allow-origin'), origin);
  }
  // POSTs need application/json, even from curl (no Origin) and even without a body
  assert.equal((await raw('POST', '/dev/tokens', { 'Content-Type': 'text/plain' }, '{"kind":"service"}')).status, 415);
  assert.equal((await raw('POST', '/dev/tokens', {}, '{"kind":"service"}')).status, 415);
  const form = await raw('POST', '/dev/tasks', { 'Content-Type': 'application/x-www-form-urlencoded' }, 'type=core/x');
  assert.equal(form.status, 415);
  assert.match(form.body.error, /Content-Type: application\/json/);
  assert.equal((await raw('POST', '/dev/tokens', { 'Content-Type': 'application/json' }, '{"kind":"service"}')).status, 201);
  // the neuron routes keep their CORS behaviour (origins '*')
  const n = await fetch(`${gw.url}/neuron/events?neuronId=x`, { method: 'OPTIONS', headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'GET' } });
  assert.equal(n.status, 204);
  assert.equal(n.headers.get('access-control-allow-origin'), '*');
});

// The dev API: tasks, cancel, revoke, disconnect, neurons, tokens, the live feed, faults, and its host restriction.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, TestNeuron, tokens, anyCap, enqueue, dev, openSse } from '../testkit/helpers.js';

/** @param {import('node:test').TestContext} t @param {object} [opts] */
async function setup(t, opts) {
  const gw = await startGateway(opts);
  t.after(() => gw.close());
  return { gw, tok: await tokens(gw) };
}

test('enqueue, list by state, read one with its history', async (t) => {
  const { gw, tok } = await setup(t);
  const r = await dev(gw, 'POST', '/dev/tasks', { type: 'core/echo', input: { a: 1 }, onBehalfOf: 'user:abc', metadata: { k: 'v' } });
  assert.equal(r.status, 201);
  assert.match(r.body.taskId, /^task-/);
  assert.equal(r.body.task.state, 'pending');
  const id2 = await enqueue(gw, { type: 'core/other' });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo')]);
  const l = await n.next('lease');
  assert.deepEqual(l.task.metadata, { k: 'v' });
  const pending = await dev(gw, 'GET', '/dev/tasks?state=pending');
  assert.deepEqual(pending.body.tasks.map((/** @type {any} */ x) => x.taskId), [id2]);
  const leased = await dev(gw, 'GET', '/dev/tasks?state=leased');
  assert.deepEqual(leased.body.tasks.map((/** @type {any} */ x) => x.taskId), [r.body.taskId]);
  assert.equal((await dev(gw, 'GET', '/dev/tasks')).body.tasks.length, 2);
  await n.ack(l, { out: 1 });
  const one = await dev(gw, 'GET', `/dev/tasks/${r.body.taskId}`);
  assert.equal(one.status, 200);
  assert.equal(one.body.task.state, 'done');
  assert.deepEqual(one.body.task.output, { out: 1 });
  assert.equal(one.body.task.onBehalfOf, 'user:abc');
  assert.deepEqual(one.body.history.map((/** @type {any} */ h) => h.event), ['enqueued', 'leased', 'acked', 'ended']);
  assert.equal((await dev(gw, 'GET', '/dev/tasks/task-nope')).status, 404);
  assert.equal((await dev(gw, 'GET', '/dev/tasks?state=weird')).status, 400);
  assert.equal((await dev(gw, 'POST', '/dev/tasks', { type: 'Not A Type' })).status, 400);
  assert.equal((await dev(gw, 'POST', '/dev/tasks', { type: 'core/x', onBehalfOf: 5 })).status, 400);
  const bad = await fetch(`${gw.url}/dev/tasks`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{oops' });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error, /malformed JSON/);
});

test('cancel: pending ends at once; leased gets a cancel frame and ends on nack cancelled; finished -> 409', async (t) => {
  const { gw, tok } = await setup(t);
  const pendingId = await enqueue(gw, { type: 'core/wait' });
  const c1 = await dev(gw, 'POST', `/dev/tasks/${pendingId}/cancel`, { reason: 'changed my mind' });
  assert.equal(c1.status, 200);
  assert.equal(c1.body.task.state, 'cancelled');
  assert.equal(c1.body.cancelSent, false);

  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/wait')]);
  const id = await enqueue(gw, { type: 'core/wait' });
  const l = await n.next('lease');
  assert.equal(l.task.taskId, id);
  const c2 = await dev(gw, 'POST', `/dev/tasks/${id}/cancel`, { reason: 'workflow cancelled' });
  assert.equal(c2.status, 200);
  assert.equal(c2.body.cancelSent, true);
  assert.equal(c2.body.task.state, 'leased');
  assert.deepEqual(await n.next('cancel'), { type: 'cancel', leaseId: l.leaseId, reason: 'workflow cancelled' });
  assert.equal((await n.nack(l, 'cancelled')).body.state, 'cancelled');
  assert.equal(gw.store.get(id)?.state, 'cancelled');
  assert.equal((await dev(gw, 'POST', `/dev/tasks/${id}/cancel`)).status, 409);
  assert.equal((await dev(gw, 'POST', '/dev/tasks/task-nope/cancel')).status, 404);

  // a cancelled task whose neuron answers retryable (e.g. it was shutting down) is not requeued
  const id3 = await enqueue(gw, { type: 'core/wait' });
  const l3 = await n.next('lease');
  await dev(gw, 'POST', `/dev/tasks/${id3}/cancel`);
  assert.deepEqual(await n.next('cancel'), { type: 'cancel', leaseId: l3.leaseId });
  assert.equal((await n.nack(l3, 'retryable')).body.state, 'cancelled');

  // a cancel-requested task whose stream drops ends cancelled, not pending
  const id4 = await enqueue(gw, { type: 'core/wait' });
  await n.next('lease');
  await dev(gw, 'POST', `/dev/tasks/${id4}/cancel`);
  await n.next('cancel');
  await n.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(gw.store.get(id4)?.state, 'cancelled');
});

test('revoke: capability-revoked frame, no more dispatch of it, its leases requeue on nack retryable', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/a', 2), anyCap('core/b', 1)]);
  const id = await enqueue(gw, { type: 'core/a' });
  const l = await n.next('lease');
  const r = await dev(gw, 'POST', '/dev/neurons/w/revoke', { capability: 'core/a', reason: 'policy change' });
  assert.equal(r.status, 200);
  assert.deepEqual(await n.next('capability-revoked'), { type: 'capability-revoked', capability: 'core/a', reason: 'policy change' });
  // the SDK nacks running leases of a revoked capability retryable
  assert.equal((await n.nack(l, 'retryable', { code: 'CAPABILITY_REVOKED' })).body.state, 'pending');
  await enqueue(gw, { type: 'core/a' });
  await enqueue(gw, { type: 'core/b' });
  const lb = await n.next('lease');
  assert.equal(lb.task.type, 'core/b');
  assert.deepEqual(await n.none('lease', 150), []);
  assert.equal(gw.store.get(id)?.state, 'pending');
  const neurons = await dev(gw, 'GET', '/dev/neurons');
  assert.equal(neurons.body.neurons[0].capabilities.find((/** @type {any} */ c) => c.type === 'core/a').revoked, true);
  // update-capability of a revoked capability is refused
  assert.equal((await n.updateCapability('core/a', 3)).status, 400);
  assert.equal((await dev(gw, 'POST', '/dev/neurons/w/revoke', { capability: 'core/zzz' })).status, 404);
  assert.equal((await dev(gw, 'POST', '/dev/neurons/ghost/revoke', { capability: 'core/a' })).status, 404);
  assert.equal((await dev(gw, 'POST', '/dev/neurons/w/revoke', {})).status, 400);
  // a new session (re-register) is policy-checked afresh and gets the capability back
  await n.register([anyCap('core/a', 1)]);
  assert.equal((await n.next('lease')).task.type, 'core/a');
});

test('disconnect: sends disconnect with reconnect flag, closes the stream, returns leases', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/a')]);
  const id = await enqueue(gw, { type: 'core/a' });
  await n.next('lease');
  const r = await dev(gw, 'POST', '/dev/neurons/w/disconnect', { reconnect: false, reason: 'maintenance' });
  assert.equal(r.status, 200);
  assert.deepEqual(await n.next('disconnect'), { type: 'disconnect', reason: 'maintenance', reconnect: false });
  await n.sse?.done;
  assert.equal(n.sse?.ended, true);
  assert.equal(gw.store.get(id)?.state, 'pending');
  assert.deepEqual((await dev(gw, 'GET', '/dev/neurons')).body.neurons, []);

  const m = await new TestNeuron(gw, 'w', tok.service).connect();
  await m.register([anyCap('core/a')]);
  assert.equal((await m.next('lease')).task.attempt, 2);
  const r2 = await dev(gw, 'POST', '/dev/neurons/w/disconnect');
  assert.equal(r2.status, 200);
  const d = await m.next('disconnect');
  assert.equal(d.reconnect, true);
  assert.equal((await dev(gw, 'POST', '/dev/neurons/w/disconnect')).status, 404);
});

test('GET /dev/neurons lists neurons with identity, capabilities and in-flight leases', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/a', 3), anyCap('zzz/x')]);
  const id = await enqueue(gw, { type: 'core/a' });
  const l = await n.next('lease');
  const r = await dev(gw, 'GET', '/dev/neurons');
  const [info] = r.body.neurons;
  assert.equal(info.neuronId, 'w');
  assert.deepEqual(info.identity, { kind: 'service', sub: 'svc-1' });
  assert.match(info.sessionId, /^s-/);
  assert.equal(info.draining, false);
  assert.deepEqual(info.capabilities, [{ type: 'core/a', scope: 'any', concurrency: 3, revoked: false, declined: null, inFlight: 1 }]);
  assert.equal(info.rejected[0].type, 'zzz/x');
  assert.equal(info.leases[0].leaseId, l.leaseId);
  assert.equal(info.leases[0].taskId, id);
});

test('/dev/feed streams inbound frames with status, outbound frames, connects and disconnects', async (t) => {
  const { gw, tok } = await setup(t);
  const feed = await openSse(`${gw.url}/dev/feed`);
  assert.equal(feed.res.headers.get('content-type'), 'text/event-stream');
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/a')]);
  await enqueue(gw, { type: 'core/a' });
  const l = await n.next('lease');
  await n.ack(l);
  await n.ack(l); // 409
  await n.close();
  const connect = await feed.next((e) => e.kind === 'connect');
  assert.equal(connect.neuronId, 'w');
  const reg = await feed.next((e) => e.kind === 'inbound' && e.path === '/neuron/register');
  assert.equal(reg.status, 200);
  assert.equal(reg.frame.type, 'register');
  const regOut = await feed.next((e) => e.kind === 'outbound' && e.frame.type === 'registered');
  assert.equal(regOut.neuronId, 'w');
  const leaseOut = await feed.next((e) => e.kind === 'outbound' && e.frame.type === 'lease');
  assert.equal(leaseOut.frame.leaseId, l.leaseId);
  const ack = await feed.next((e) => e.kind === 'inbound' && e.path === '/neuron/ack');
  assert.equal(ack.status, 200);
  const dup = await feed.next((e) => e.kind === 'inbound' && e.path === '/neuron/ack');
  assert.equal(dup.status, 409);
  assert.match(dup.response.error, /not held/);
  await feed.next((e) => e.kind === 'disconnect' && e.neuronId === 'w');
  assert.ok(feed.events.some((e) => e.kind === 'task' && e.state === 'done'));
  // sequence numbers increase
  const seqs = feed.events.map((e) => e.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  await feed.close();
  // a late subscriber can replay the buffer
  const replay = await openSse(`${gw.url}/dev/feed?replay=1`);
  await replay.next((e) => e.kind === 'connect');
  await replay.close();
  const events = await dev(gw, 'GET', `/dev/events?since=${seqs[2]}`);
  assert.equal(events.body.events[0].seq, seqs[2] + 1);
});

test('POST /dev/tokens mints a working token; bad claims -> 400', async (t) => {
  const { gw } = await setup(t);
  const r = await dev(gw, 'POST', '/dev/tokens', { kind: 'desktop', userId: 'user:q' });
  assert.equal(r.status, 201);
  const n = await new TestNeuron(gw, 'd', r.body.token).connect();
  const reg = await n.register([{ type: 'desktop/x', scope: { onBehalfOf: 'user:q' }, concurrency: 1 }]);
  assert.equal(reg.status, 200);
  assert.equal((await dev(gw, 'POST', '/dev/tokens', { kind: 'desktop' })).status, 400);
  assert.equal((await dev(gw, 'POST', '/dev/tokens', { kind: 'root' })).status, 400);
  const info = await dev(gw, 'GET', '/dev/info');
  assert.equal(info.body.settings.secret, undefined);
});

test('the dev API refuses a request whose Host is not localhost (DNS-rebinding guard)', async (t) => {
  const { gw } = await setup(t);
  const status = await new Promise((resolve, reject) => {
    const req = http.request(`${gw.url}/dev/tasks`, { headers: { Host: 'evil.example' } }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.end();
  });
  assert.equal(status, 403);
  const ok = await new Promise((resolve, reject) => {
    const req = http.request(`${gw.url}/dev/tasks`, { headers: { Host: `localhost:${gw.port}` } }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.end();
  });
  assert.equal(ok, 200);
  const off = await startGateway({ devApi: false });
  t.after(() => off.close());
  assert.equal((await dev(off, 'GET', '/dev/tasks')).status, 404);
});

test('POST /dev/faults pauses keep-alive pings (all streams, current and future, or one neuron\'s); frames keep flowing', async (t) => {
  const { gw, tok } = await setup(t, { pingIntervalMs: 50 });
  const pings = (/** @type {{ comments: string[] } | null | undefined} */ s) => s?.comments.filter((c) => c === 'ping').length ?? 0;
  /** Wait for `n` more pings on each stream. @param {any[]} streams */
  const morePings = (streams, n = 2) => Promise.all(streams.map((s) => {
    const from = pings(s);
    return s.until(() => pings(s) >= from + n, 2000, 'pings');
  }));
  const feed = await openSse(`${gw.url}/dev/feed`);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/a')]);
  assert.deepEqual((await dev(gw, 'GET', '/dev/faults')).body, { keepAlives: true });
  await morePings([n.sse, feed]);

  // pause every stream; a frame written after the pause marks where pings must end on each stream
  assert.deepEqual(await dev(gw, 'POST', '/dev/faults', { keepAlives: false }), { status: 200, body: { keepAlives: false } });
  assert.deepEqual((await dev(gw, 'GET', '/dev/faults')).body, { keepAlives: false });
  await feed.next((e) => e.kind === 'dev' && e.action === 'faults');
  await enqueue(gw, { type: 'core/a' });
  const lease = await n.next('lease'); // frames still flow
  const late = await openSse(`${gw.url}/dev/feed`); // a stream opened while paused
  const before = [pings(n.sse), pings(feed)];
  await new Promise((r) => setTimeout(r, 250)); // 5 ping intervals
  assert.deepEqual([pings(n.sse), pings(feed), pings(late)], [...before, 0]);
  assert.equal((await n.ack(lease)).status, 200);

  // resume: pings come back on every stream
  assert.deepEqual((await dev(gw, 'POST', '/dev/faults', { keepAlives: true })).body, { keepAlives: true });
  await morePings([n.sse, feed, late]);

  // pause one neuron (connected or not yet): the others and the feed keep their pings
  assert.deepEqual((await dev(gw, 'POST', '/dev/faults', { keepAlives: false, neuronId: 'w' })).body, { keepAlives: false, neuronIds: ['w'] });
  assert.deepEqual((await dev(gw, 'POST', '/dev/faults', { keepAlives: false, neuronId: 'z' })).body, { keepAlives: false, neuronIds: ['w', 'z'] });
  await n.register([anyCap('core/a')]); // its `registered` frame marks the pause on w's stream
  const m = await new TestNeuron(gw, 'm', tok.service).connect();
  const z = await new TestNeuron(gw, 'z', tok.service).connect();
  const wBefore = pings(n.sse);
  await morePings([m.sse, feed], 3);
  assert.equal(pings(n.sse), wBefore);
  assert.equal(pings(z.sse), 0);
  // resuming one neuron while every stream is paused is refused; resuming one of a list is not
  assert.deepEqual((await dev(gw, 'POST', '/dev/faults', { keepAlives: true, neuronId: 'w' })).body, { keepAlives: false, neuronIds: ['z'] });
  await morePings([n.sse]);
  assert.deepEqual((await dev(gw, 'POST', '/dev/faults', { keepAlives: false })).body, { keepAlives: false });
  const refused = await dev(gw, 'POST', '/dev/faults', { keepAlives: true, neuronId: 'w' });
  assert.equal(refused.status, 409);
  assert.match(refused.body.error, /paused on every stream/);
  assert.deepEqual((await dev(gw, 'POST', '/dev/faults', { keepAlives: true })).body, { keepAlives: true });

  // each change is a `dev` feed event
  const faultEvents = () => feed.events.filter((e) => e.kind === 'dev' && e.action === 'faults');
  await feed.until(() => faultEvents().length === 7, 2000, 'dev faults events');
  assert.deepEqual(faultEvents().map(({ seq: _s, at: _a, kind: _k, ...d }) => d), [
    { action: 'faults', keepAlives: false },
    { action: 'faults', keepAlives: true },
    { action: 'faults', keepAlives: false, neuronId: 'w' },
    { action: 'faults', keepAlives: false, neuronId: 'z' },
    { action: 'faults', keepAlives: true, neuronId: 'w' },
    { action: 'faults', keepAlives: false },
    { action: 'faults', keepAlives: true },
  ]);

  // bad bodies say what is expected; the dev API's guards apply
  for (const b of [{}, { keepAlives: 'false' }, { keepAlives: 0 }, { keepAlives: false, neuronId: '' }, { keepAlives: false, neuronId: 5 }, { keepAlives: false, pings: false }]) {
    const r = await dev(gw, 'POST', '/dev/faults', b);
    assert.equal(r.status, 400, JSON.stringify(b));
    assert.match(r.body.error, /expected \{ "keepAlives": true\|false, "neuronId"\?: "<neuronId>" \}/);
  }
  assert.match((await dev(gw, 'POST', '/dev/faults', { keepAlives: true, extra: 1 })).body.error, /unknown field 'extra'/);
  assert.equal((await dev(gw, 'POST', '/dev/faults', [])).status, 400);
  const text = await fetch(`${gw.url}/dev/faults`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '{"keepAlives":false}' });
  assert.equal(text.status, 415);
  const evil = await fetch(`${gw.url}/dev/faults`, { method: 'POST', headers: { 'Content-Type': 'application/json', Origin: 'https://evil.example' }, body: '{"keepAlives":false}' });
  assert.equal(evil.status, 403);
  assert.equal((await dev(gw, 'PUT', '/dev/faults', { keepAlives: false })).status, 404);
  assert.deepEqual((await dev(gw, 'GET', '/dev/faults')).body, { keepAlives: true });
  await Promise.all([feed.close(), late.close(), n.close(), m.close(), z.close()]);
});

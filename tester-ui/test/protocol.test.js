// The neuron-facing protocol: stream, register, auth, namespace policy, ack/nack/heartbeat/progress, bad input, CORS.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SignJWT } from 'jose';
import { startGateway, TestNeuron, tokens, anyCap, userCap, enqueue, dev, openSse, SECRET } from '../testkit/helpers.js';

/** @param {import('node:test').TestContext} t @param {object} [opts] */
async function setup(t, opts) {
  const gw = await startGateway(opts);
  t.after(() => gw.close());
  return { gw, tok: await tokens(gw) };
}

test('stream is text/event-stream; register gets a registered frame over it', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w-1', tok.service).connect();
  assert.equal(n.sse?.res.headers.get('content-type'), 'text/event-stream');
  const r = await n.register([anyCap('core/script.python', 4), { ...anyCap('core/http', 2), description: 'http', inputSchema: { type: 'object' } }]);
  assert.equal(r.status, 200);
  assert.match(r.frame.sessionId, /^s-/);
  assert.deepEqual(r.frame.capabilities, [anyCap('core/script.python', 4), anyCap('core/http', 2)]);
  assert.deepEqual(r.frame.rejected, []);
  assert.equal(r.body.sessionId, r.frame.sessionId);
});

test('keep-alive ping comments at the configured interval', async (t) => {
  const { gw, tok } = await setup(t, { pingIntervalMs: 40 });
  const n = await new TestNeuron(gw, 'w-1', tok.service).connect();
  await n.sse?.until(() => n.sse?.comments.filter((c) => c === 'ping').length >= 2, 2000, 'two pings');
});

test('401 for missing, malformed, wrong-secret, expired and claim-less tokens, on stream and POSTs', async (t) => {
  const { gw, tok } = await setup(t);
  const key = new TextEncoder().encode(SECRET);
  const expired = await new SignJWT({ kind: 'service' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('neuron-dev-gateway')
    .setAudience('bigbrain-gateway').setSubject('x').setExpirationTime(Math.floor(Date.now() / 1000) - 60).sign(key);
  const noKind = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setIssuer('neuron-dev-gateway')
    .setAudience('bigbrain-gateway').setSubject('x').setExpirationTime('1h').sign(key);
  const desktopNoUser = await new SignJWT({ kind: 'desktop' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('neuron-dev-gateway')
    .setAudience('bigbrain-gateway').setSubject('x').setExpirationTime('1h').sign(key);
  const otherSecret = await new SignJWT({ kind: 'service' }).setProtectedHeader({ alg: 'HS256' }).setIssuer('neuron-dev-gateway')
    .setAudience('bigbrain-gateway').setSubject('x').setExpirationTime('1h').sign(new TextEncoder().encode('nope'));
  for (const auth of [undefined, 'Basic abc', `Bearer ${expired}`, `Bearer ${noKind}`, `Bearer ${desktopNoUser}`, `Bearer ${otherSecret}`, 'Bearer garbage']) {
    const s = await fetch(`${gw.url}/neuron/events?neuronId=w`, { headers: auth ? { Authorization: auth } : {} });
    assert.equal(s.status, 401, `stream with ${auth}`);
    assert.ok((await s.json()).error);
    for (const path of ['/neuron/register', '/neuron/heartbeat', '/neuron/ack', '/neuron/nack', '/neuron/progress', '/neuron/update-capability']) {
      const r = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(auth ? { Authorization: auth } : {}) }, body: '{}' });
      assert.equal(r.status, 401, `${path} with ${auth}`);
      assert.equal(typeof (await r.json()).error, 'string');
    }
  }
  // a good token works
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  assert.equal((await n.heartbeat([])).status, 200);
});

test('namespace matrix: each identity kind x each namespace x scope', async (t) => {
  const { gw, tok } = await setup(t);
  const caps = {
    'core any': anyCap('core/tool'),
    'core scoped': userCap('core/tool', 'user:abc'),
    'desktop own user': userCap('desktop/mcp/drive.read', 'user:abc'),
    'desktop other user': userCap('desktop/mcp/drive.read', 'user:zzz'),
    'desktop any': anyCap('desktop/mcp/drive.read'),
    'org own any': anyCap('org/org1/tool'),
    'org other any': anyCap('org/org2/tool'),
    'org own scoped': userCap('org/org1/tool', 'user:abc'),
    'user own scoped': userCap('user/user:abc/tool', 'user:abc'),
    'user other': userCap('user/user:zzz/tool', 'user:zzz'),
    'user own any': anyCap('user/user:abc/tool'),
  };
  /** @type {Record<string, string[]>} allowed combinations per kind */
  const allowed = {
    service: ['core any'],
    desktop: ['desktop own user'],
    org: ['org own any'],
    user: ['user own scoped'],
  };
  for (const [kind, token] of Object.entries(tok)) {
    const n = await new TestNeuron(gw, `n-${kind}`, token).connect();
    for (const [name, cap] of Object.entries(caps)) {
      const r = await n.register([cap]);
      if (allowed[kind].includes(name)) {
        assert.equal(r.status, 200, `${kind} × ${name}: ${JSON.stringify(r.body)}`);
        assert.deepEqual(r.frame.capabilities, [cap]);
      } else {
        assert.equal(r.status, 403, `${kind} × ${name} should be 403, got ${r.status}`);
        assert.ok(r.body.error.includes(cap.type), `403 reason names the capability: ${r.body.error}`);
      }
    }
    await n.close();
  }
  // an unattested desktop token may not advertise desktop/*
  const unattested = await gw.mintToken({ kind: 'desktop', userId: 'user:abc', attested: false });
  const d = await new TestNeuron(gw, 'n-unattested', unattested).connect();
  const r = await d.register([userCap('desktop/mcp/drive.read', 'user:abc')]);
  assert.equal(r.status, 403);
  assert.match(r.body.error, /not attested/);
});

test('a combined identity (kind: [service, desktop]) may register the README mixed-scope example', async (t) => {
  const { gw } = await setup(t);
  const token = await gw.mintToken({ kind: ['service', 'desktop'], sub: 'app-1', userId: 'user:abc' });
  const n = await new TestNeuron(gw, 'mixed', token).connect();
  const caps = [userCap('desktop/mcp/drive.read', 'user:abc', 1), anyCap('core/script.python', 4)];
  const r = await n.register(caps);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.frame.capabilities, caps);
  // still no org/user namespaces, and the desktop user binding still holds
  assert.equal((await n.register([anyCap('org/org1/x')])).status, 403);
  assert.equal((await n.register([userCap('desktop/mcp/drive.read', 'user:zzz')])).status, 403);
});

test('a 403 anywhere in the list refuses the whole register; no registered frame', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.desktop).connect();
  const r = await n.register([userCap('desktop/a', 'user:abc'), anyCap('core/b')]);
  assert.equal(r.status, 403);
  assert.match(r.body.error, /core\/b/);
  assert.deepEqual(await n.none('registered'), []);
});

test('policy filters go to rejected: unknown namespace, disabled type, duplicate, org without a name', async (t) => {
  const { gw, tok } = await setup(t, { disabledTypes: ['core/disabled', 'core/off/*'] });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  const r = await n.register([anyCap('core/ok', 2), anyCap('acme/thing'), anyCap('core/disabled'), anyCap('core/off/x.y'), anyCap('core/ok', 5), anyCap('org/foo')]);
  assert.equal(r.status, 200);
  assert.deepEqual(r.frame.capabilities, [anyCap('core/ok', 2)]);
  assert.deepEqual(r.frame.rejected.map((/** @type {any} */ x) => x.type), ['acme/thing', 'core/disabled', 'core/off/x.y', 'core/ok', 'org/foo']);
  assert.match(r.frame.rejected[0].reason, /unknown namespace/);
  assert.match(r.frame.rejected[1].reason, /disabled/);
  assert.match(r.frame.rejected[3].reason, /duplicate/);
});

test('ack -> done; duplicate ack and late nack -> 409 and change nothing', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo')]);
  const taskId = await enqueue(gw, { type: 'core/echo', input: { x: 1 }, metadata: { m: 1 }, workflowId: 'wf-1' });
  const lease = await n.next('lease');
  assert.equal(lease.task.taskId, taskId);
  assert.equal(lease.task.attempt, 1);
  assert.deepEqual(lease.task.input, { x: 1 });
  assert.deepEqual(lease.task.metadata, { m: 1 });
  assert.equal(lease.task.workflowId, 'wf-1');
  assert.equal(lease.task.onBehalfOf, undefined);
  assert.ok(Date.parse(lease.expiresAt) > Date.now());
  const a = await n.ack(lease, { answer: 42 });
  assert.deepEqual([a.status, a.body.state], [200, 'done']);
  const again = await n.ack(lease, { answer: 43 });
  assert.equal(again.status, 409);
  assert.match(again.body.error, /not held/);
  assert.equal((await n.nack(lease, 'terminal')).status, 409);
  const task = gw.store.get(taskId);
  assert.equal(task?.state, 'done');
  assert.deepEqual(task?.output, { answer: 42 });
  assert.equal(gw.store.history(taskId).filter((h) => h.event === 'ended').length, 1);
});

test('ack with a taskId that does not match the lease -> 400; unknown lease -> 409', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo')]);
  await enqueue(gw, { type: 'core/echo' });
  const lease = await n.next('lease');
  const r = await n.post('/neuron/ack', { type: 'ack', neuronId: 'w', leaseId: lease.leaseId, taskId: 'task-other', output: 1 });
  assert.equal(r.status, 400);
  assert.equal((await n.ack({ leaseId: 'lease-nope', task: { taskId: 'x' } })).status, 409);
  assert.equal(gw.store.get(lease.task.taskId)?.state, 'leased');
});

test('nack kinds: retryable requeues up to max attempts, terminal and schema-mismatch fail, cancelled cancels', async (t) => {
  const { gw, tok } = await setup(t, { maxAttempts: 3 });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo')]);

  const retry = await enqueue(gw, { type: 'core/echo' });
  for (let attempt = 1; attempt <= 3; attempt++) {
    const l = await n.next('lease');
    assert.equal(l.task.taskId, retry);
    assert.equal(l.task.attempt, attempt);
    const r = await n.nack(l, 'retryable', { code: 'FLAKY' });
    assert.equal(r.status, 200);
    assert.equal(r.body.state, attempt < 3 ? 'pending' : 'failed');
  }
  const failed = gw.store.get(retry);
  assert.equal(failed?.state, 'failed');
  assert.deepEqual(failed?.nack, { kind: 'retryable', reason: 'test retryable', code: 'FLAKY', errors: null });
  assert.deepEqual(await n.none('lease'), []);

  // a task's own maxAttempts wins over the gateway setting
  const once = await enqueue(gw, { type: 'core/echo', maxAttempts: 1 });
  const lo = await n.next('lease');
  assert.equal(lo.task.taskId, once);
  assert.equal((await n.nack(lo, 'retryable')).body.state, 'failed');

  const term = await enqueue(gw, { type: 'core/echo' });
  const lt = await n.next('lease');
  assert.equal((await n.nack(lt, 'terminal', { code: 'INVALID_API_KEY' })).body.state, 'failed');
  assert.equal(gw.store.get(term)?.nack?.code, 'INVALID_API_KEY');

  const schema = await enqueue(gw, { type: 'core/echo' });
  const ls = await n.next('lease');
  const errors = [{ path: '/code', message: 'required' }];
  assert.equal((await n.nack(ls, 'schema-mismatch', { errors })).body.state, 'failed');
  assert.deepEqual(gw.store.get(schema)?.nack?.errors, errors);

  const canc = await enqueue(gw, { type: 'core/echo' });
  const lc = await n.next('lease');
  assert.equal((await n.nack(lc, 'cancelled')).body.state, 'cancelled');
  assert.equal(gw.store.get(canc)?.state, 'cancelled');

  assert.equal((await n.nack(lc, 'retryable')).status, 409, 'a nack after the end is 409');
  assert.equal(gw.store.get(canc)?.state, 'cancelled');
});

test('heartbeat renews held leases and reports lost ones', async (t) => {
  const { gw, tok } = await setup(t, { leaseTtlMs: 600, reaperIntervalMs: 50 });
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo', 2)]);
  await enqueue(gw, { type: 'core/echo' });
  const l = await n.next('lease');
  const before = Date.parse(/** @type {string} */ (gw.store.get(l.task.taskId)?.leaseExpiresAt));
  await new Promise((r) => setTimeout(r, 150));
  const hb = await n.heartbeat([l.leaseId, 'lease-unknown']);
  assert.equal(hb.status, 200);
  assert.deepEqual(hb.body, { lostLeases: ['lease-unknown'] });
  const after = Date.parse(/** @type {string} */ (gw.store.get(l.task.taskId)?.leaseExpiresAt));
  assert.ok(after > before, 'expiry moved forward');
  // keep it alive past the original TTL with heartbeats
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual((await n.heartbeat([l.leaseId])).body, { lostLeases: [] });
  }
  assert.equal(gw.store.get(l.task.taskId)?.state, 'leased');
  assert.equal(gw.store.get(l.task.taskId)?.attempt, 1);
  // stop heartbeating: the reaper takes it back, redelivers; the old lease is now lost
  const again = await n.next('lease', 3000);
  assert.equal(again.task.taskId, l.task.taskId);
  assert.equal(again.task.attempt, 2);
  assert.deepEqual((await n.heartbeat([l.leaseId, again.leaseId])).body, { lostLeases: [l.leaseId] });
  assert.equal((await n.ack(l)).status, 409);
  assert.equal((await n.ack(again)).status, 200);
});

test('heartbeat from another neuron does not renew, and reports the lease lost', async (t) => {
  const { gw, tok } = await setup(t);
  const a = await new TestNeuron(gw, 'a', tok.service).connect();
  const b = await new TestNeuron(gw, 'b', tok.service).connect();
  await a.register([anyCap('core/echo')]);
  await enqueue(gw, { type: 'core/echo' });
  const l = await a.next('lease');
  assert.deepEqual((await b.heartbeat([l.leaseId])).body, { lostLeases: [l.leaseId] });
  assert.equal((await b.ack(l)).status, 409);
});

test('progress is stored as the last progress of the task; progress for a lease not held -> 409', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo')]);
  const id = await enqueue(gw, { type: 'core/echo' });
  const l = await n.next('lease');
  const p = (/** @type {object} */ x) => n.post('/neuron/progress', { type: 'progress', neuronId: 'w', leaseId: l.leaseId, taskId: id, ...x });
  assert.equal((await p({ percent: 10, message: 'starting' })).status, 200);
  assert.equal((await p({ percent: 50, data: { rows: 3 } })).status, 200);
  const pr = gw.store.get(id)?.progress;
  assert.equal(pr?.percent, 50);
  assert.deepEqual(pr?.data, { rows: 3 });
  assert.equal((await p({ percent: 'x' })).status, 400);
  await n.ack(l);
  assert.equal((await p({ percent: 100 })).status, 409);
});

test('bad input: 4xx with { error } and the gateway keeps working', async (t) => {
  const { gw, tok } = await setup(t, { maxBodyBytes: 2048 });
  const n = await new TestNeuron(gw, 'w-1', tok.service).connect();
  await n.register([anyCap('core/echo')]);
  /** @type {[string, unknown, number, RegExp, string?][]} */
  const cases = [
    ['/neuron/ack', '{not json', 400, /malformed JSON/, 'raw'],
    ['/neuron/ack', '', 400, /empty body/, 'raw'],
    ['/neuron/ack', '[1,2]', 400, /JSON object/, 'raw'],
    ['/neuron/ack', { type: 'ack', neuronId: 'w-1', taskId: 't' }, 400, /leaseId/],
    ['/neuron/ack', { type: 'bogus', neuronId: 'w-1' }, 400, /unknown frame type 'bogus'/],
    ['/neuron/ack', { type: 'nack', neuronId: 'w-1' }, 400, /does not belong/],
    ['/neuron/ack', { neuronId: 'w-1' }, 400, /'type'/],
    ['/neuron/nack', { type: 'nack', neuronId: 'w-1', leaseId: 'l', taskId: 't', kind: 'weird' }, 400, /'kind'/],
    ['/neuron/heartbeat', { type: 'heartbeat', neuronId: 'w-1', inFlight: 'x' }, 400, /inFlight/],
    ['/neuron/heartbeat', { type: 'heartbeat', inFlight: [] }, 400, /neuronId/],
    ['/neuron/register', { type: 'register', neuronId: 'w-1', capabilities: [] }, 400, /capabilities/],
    ['/neuron/register', { type: 'register', neuronId: 'w-1', capabilities: [{ type: 'Core/x', scope: 'any', concurrency: 1 }] }, 400, /invalid capability type/],
    ['/neuron/register', { type: 'register', neuronId: 'w-1', capabilities: [{ type: 'core/x', scope: 'all', concurrency: 1 }] }, 400, /scope/],
    ['/neuron/register', { type: 'register', neuronId: 'w-1', capabilities: [{ type: 'core/x', scope: 'any', concurrency: 0 }] }, 400, /concurrency/],
    ['/neuron/register', { type: 'register', neuronId: 'w-1', capabilities: [{ type: 'core/x', scope: 'any', concurrency: 1.5 }] }, 400, /concurrency/],
    ['/neuron/register', { type: 'register', neuronId: 'no-stream', capabilities: [anyCap('core/x')] }, 400, /no open event stream/],
    ['/neuron/update-capability', { type: 'update-capability', neuronId: 'w-1', capability: 'core/nope', concurrency: 2 }, 400, /not registered/],
    ['/neuron/update-capability', { type: 'update-capability', neuronId: 'w-1', capability: 'core/echo', concurrency: -1 }, 400, /concurrency/],
    ['/neuron/update-capability', { type: 'update-capability', neuronId: 'ghost', capability: 'core/echo', concurrency: 2 }, 400, /no open event stream/],
    ['/neuron/ack', { type: 'ack', neuronId: 'w-1', leaseId: 'l', taskId: 't', pad: 'x'.repeat(4096) }, 413, /limit/],
    ['/neuron/ack', { type: 'ack', neuronId: 'w-1', leaseId: 'l', taskId: 't', pad: 'x'.repeat(200_000) }, 413, /limit/],
    ['/neuron/ack', `{"type":"ack","neuronId":"w-1","leaseId":"l","taskId":"t","output":${'['.repeat(300)}${']'.repeat(300)}}`, 400, /deeper than 256/, 'raw'],
    ['/neuron/ack', `{"type":"ack","neuronId":"w-1","leaseId":"l","taskId":"t","output":"${'['.repeat(300)}"}`, 409, /not held/, 'raw'],
  ];
  for (const [path, body, status, re, raw] of cases) {
    const r = raw ? await n.post(path, null, { raw: /** @type {string} */ (body) }) : await n.post(path, body);
    assert.equal(r.status, status, `${path} ${JSON.stringify(body).slice(0, 80)} -> ${JSON.stringify(r.body)}`);
    assert.match(r.body.error, re);
  }
  // stream without neuronId
  const s = await fetch(`${gw.url}/neuron/events`, { headers: { Authorization: `Bearer ${tok.service}` } });
  assert.equal(s.status, 400);
  // wrong methods and routes
  assert.equal((await fetch(`${gw.url}/neuron/ack`)).status, 405);
  assert.equal((await fetch(`${gw.url}/neuron/events?neuronId=x`, { method: 'POST', headers: { Authorization: `Bearer ${tok.service}` } })).status, 405);
  assert.equal((await fetch(`${gw.url}/nope`)).status, 404);
  // still alive and consistent
  await enqueue(gw, { type: 'core/echo' });
  const l = await n.next('lease');
  assert.equal((await n.ack(l)).status, 200);
});

test('a POST for a neuronId whose stream belongs to another identity -> 400 (neuronId does not match the stream)', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w-1', tok.service).connect();
  const other = await gw.mintToken({ kind: 'service', sub: 'someone-else' });
  const r = await n.post('/neuron/register', { type: 'register', neuronId: 'w-1', capabilities: [anyCap('core/x')] }, { token: other });
  assert.equal(r.status, 400);
  assert.match(r.body.error, /does not match the stream/);
  assert.equal((await n.post('/neuron/heartbeat', { type: 'heartbeat', neuronId: 'w-1', inFlight: [] }, { token: other })).status, 400);
});

test('update-capability raises concurrency live', async (t) => {
  const { gw, tok } = await setup(t);
  const n = await new TestNeuron(gw, 'w', tok.service).connect();
  await n.register([anyCap('core/echo', 1)]);
  for (let i = 0; i < 4; i++) await enqueue(gw, { type: 'core/echo', input: i });
  const first = await n.next('lease');
  assert.deepEqual(await n.none('lease', 150), []);
  const r = await n.updateCapability('core/echo', 3);
  assert.deepEqual(r.body, { capability: 'core/echo', concurrency: 3 });
  const l2 = await n.next('lease');
  const l3 = await n.next('lease');
  assert.deepEqual([first, l2, l3].map((l) => l.task.input), [0, 1, 2], 'FIFO');
  assert.deepEqual(await n.none('lease', 150), []);
  // lowering: no new lease until outstanding drops below the new limit
  await n.updateCapability('core/echo', 1);
  await n.ack(first);
  assert.deepEqual(await n.none('lease', 150), []);
  await n.ack(l2);
  await n.ack(l3);
  const l4 = await n.next('lease');
  assert.equal(l4.task.input, 3);
});

test('CORS: preflight allows Authorization and Content-Type; configured origins are enforced', async (t) => {
  const { gw } = await setup(t);
  const pre = await fetch(`${gw.url}/neuron/register`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://localhost:5173', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  assert.match(/** @type {string} */ (pre.headers.get('access-control-allow-headers')), /Authorization/);
  assert.match(/** @type {string} */ (pre.headers.get('access-control-allow-headers')), /Content-Type/);
  assert.match(/** @type {string} */ (pre.headers.get('access-control-allow-methods')), /POST/);
  const r = await fetch(`${gw.url}/neuron/events?neuronId=x`, { headers: { Origin: 'http://a.example' } });
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');

  const gw2 = await startGateway({ origins: ['http://good.example'] });
  t.after(() => gw2.close());
  const ok = await fetch(`${gw2.url}/neuron/events?neuronId=x`, { method: 'OPTIONS', headers: { Origin: 'http://good.example', 'Access-Control-Request-Method': 'GET' } });
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get('access-control-allow-origin'), 'http://good.example');
  const bad = await fetch(`${gw2.url}/neuron/events?neuronId=x`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'GET' } });
  assert.equal(bad.status, 403);
  assert.equal(bad.headers.get('access-control-allow-origin'), null);
  const badGet = await fetch(`${gw2.url}/neuron/heartbeat`, { method: 'POST', headers: { Origin: 'http://evil.example' }, body: '{}' });
  assert.equal(badGet.status, 403);
});

test('a second stream for the same neuronId supersedes the first', async (t) => {
  const { gw, tok } = await setup(t);
  const a = await new TestNeuron(gw, 'w', tok.service).connect();
  await a.register([anyCap('core/echo')]);
  await enqueue(gw, { type: 'core/echo' });
  const l = await a.next('lease');
  const b = await new TestNeuron(gw, 'w', tok.service).connect();
  const d = await a.next('disconnect');
  assert.deepEqual(d, { type: 'disconnect', reason: 'superseded', reconnect: false });
  await a.sse?.done;
  assert.equal(gw.store.get(l.task.taskId)?.state, 'pending');
  await b.register([anyCap('core/echo')]);
  const again = await b.next('lease');
  assert.equal(again.task.taskId, l.task.taskId);
  assert.equal(again.task.attempt, 2);
  assert.equal((await a.ack(l)).status, 409);
});

test('unused: openSse helper reads the dev feed too', async (t) => {
  const { gw } = await setup(t);
  const feed = await openSse(`${gw.url}/dev/feed`);
  await dev(gw, 'POST', '/dev/tasks', { type: 'core/x' });
  await feed.next((e) => e.kind === 'dev' && e.action === 'enqueue');
  await feed.close();
});

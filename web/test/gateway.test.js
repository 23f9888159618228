// The byte path end to end: a Neuron (gatewayUrl + auth, fetch + ReadableStream
// into the wasm core) against the local dev gateway (tester-ui), through the
// public API and the gateway's dev API only.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Neuron, RegistrationError, HttpTransport } from '../src/index.js';
import { getCore } from '../src/core.js';
import { startGateway, tokens, enqueue, dev, waitFor } from '../../tester-ui/testkit/helpers.js';

/** @param {{ url: string }} gw @param {string} id */
async function task(gw, id) {
  const r = await dev(gw, 'GET', `/dev/tasks/${encodeURIComponent(id)}`);
  return r.body.task ?? r.body;
}

/** @param {{ url: string }} gw @param {string} id @param {string} state */
function taskIn(gw, id, state, ms = 5000) {
  return waitFor(async () => {
    const t = await task(gw, id);
    return t.state === state ? t : null;
  }, ms, `task ${id} to be ${state}`);
}

const fast = { initialReconnectDelayMs: 20, maxReconnectDelayMs: 100, reconnectJitter: 0 };

test('acks, schema-mismatch, progress and trailing-slash gatewayUrl against the dev gateway', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  const n = new Neuron({ neuronId: 'w-basic', gatewayUrl: `${gw.url}/`, auth: () => tk.service });
  n.handle({ type: 'core/echo', scope: 'any', concurrency: 2, inputSchema: { type: 'object', required: ['x'] } }, async (input, ctx) => {
    ctx.progress({ percent: 50, message: 'half' });
    return { echo: input, taskId: ctx.task.taskId };
  });
  await n.start();
  t.after(() => n.stop());
  const ok = await enqueue(gw, { type: 'core/echo', input: { x: 1 } });
  const bad = await enqueue(gw, { type: 'core/echo', input: { y: 1 } });
  const done = await taskIn(gw, ok, 'done');
  assert.deepEqual(done.output, { echo: { x: 1 }, taskId: ok });
  const failed = await taskIn(gw, bad, 'failed');
  assert.equal(failed.nack.kind, 'schema-mismatch');
  assert.equal(n.stats().leasesAcked, 1);
});

test('reconnects after the gateway is killed and restarted on the same port and data file; tasks enqueued meanwhile are acked', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'neuron-sdk-restart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataFile = join(dir, 'gw.sqlite');
  let gw = await startGateway({ dataFile });
  const port = gw.port;
  const tk = await tokens(gw);
  const n = new Neuron({ neuronId: 'w-restart', gatewayUrl: gw.url, auth: () => tk.service, ...fast });
  /** @type {any[]} */
  const reconnecting = [];
  /** @type {string[]} */
  const sessions = [];
  n.on('connection:reconnecting', (i) => reconnecting.push(i));
  n.on('connection:registered', ({ sessionId }) => sessions.push(sessionId));
  n.on('error', () => {});
  n.handle({ type: 'core/echo', scope: 'any', concurrency: 1 }, (input) => ({ echo: input }));
  await n.start();
  await gw.close();
  await waitFor(() => reconnecting.length >= 2, 5000, 'reconnect attempts while the gateway is down');
  gw = await startGateway({ dataFile, port });
  t.after(() => gw.close());
  await waitFor(() => sessions.length === 2, 5000, 'registration with the restarted gateway');
  const id = await enqueue(gw, { type: 'core/echo', input: 'after restart' });
  assert.deepEqual((await taskIn(gw, id, 'done')).output, { echo: 'after restart' });
  assert.ok(reconnecting.every((r, i) => r.attempt === i + 1 && typeof r.reason === 'string'));
  assert.equal(reconnecting[0].delayMs, 20, 'jitter 0: the README doubling, starting at initialReconnectDelayMs');
  assert.equal(reconnecting[1].delayMs, 40);
  await n.stop();
});

test('401: the auth callback is called again and the request retried once (stream open and POSTs)', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  let calls = 0;
  let expireNext = true; // the first token of the stream is stale
  const auth = async () => {
    calls++;
    if (expireNext) {
      expireNext = false;
      return 'stale.token.value';
    }
    return tk.service;
  };
  const n = new Neuron({ neuronId: 'w-401', gatewayUrl: gw.url, auth, ...fast });
  /** @type {Error[]} */
  const errors = [];
  n.on('error', (e) => errors.push(e));
  n.handle({ type: 'core/echo', scope: 'any', concurrency: 1 }, (input) => {
    expireNext = true; // the ack's first token will be stale too
    return input;
  });
  await n.start();
  const callsAtStart = calls;
  assert.equal(callsAtStart, 3, 'stream open (401) + retry + register');
  const id = await enqueue(gw, { type: 'core/echo', input: 7 });
  assert.equal((await taskIn(gw, id, 'done')).output, 7);
  assert.equal(calls - callsAtStart, 2, 'ack (401) + retried ack');
  assert.deepEqual(errors, [], 'a single 401 is recovered silently');
  await n.stop();
});

test('403 on register rejects start() with RegistrationError and does not reconnect', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  const n = new Neuron({ neuronId: 'w-403', gatewayUrl: gw.url, auth: () => tk.service, ...fast });
  let reconnects = 0;
  /** @type {Error[]} */
  const errors = [];
  n.on('connection:reconnecting', () => reconnects++);
  n.on('error', (e) => errors.push(e));
  n.handle({ type: 'desktop/mcp/drive.read', scope: { onBehalfOf: 'user:abc' }, concurrency: 1 }, () => 1);
  const err = await n.start().then(() => null, (e) => e);
  assert.ok(err instanceof RegistrationError, String(err));
  assert.equal(err.status, 403);
  assert.match(err.message, /desktop\/mcp\/drive\.read/);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(reconnects, 0);
  assert.ok(errors.some((e) => e instanceof RegistrationError));
  await n.stop();
});

test('a stream that goes silent is declared dead after idleTimeoutMs and reopened', async (t) => {
  const gw = await startGateway({ pingIntervalMs: 60_000 });
  t.after(() => gw.close());
  const tk = await tokens(gw);
  const n = new Neuron({ neuronId: 'w-idle', gatewayUrl: gw.url, auth: () => tk.service, idleTimeoutMs: 150, ...fast });
  /** @type {string[]} */
  const reasons = [];
  n.on('connection:reconnecting', (i) => reasons.push(i.reason));
  n.on('error', () => {});
  n.handle({ type: 'core/echo', scope: 'any', concurrency: 1 }, (i) => i);
  await n.start();
  await waitFor(() => reasons.length >= 1, 3000, 'an idle reconnect');
  assert.match(reasons[0], /idle|no bytes/i);
  await n.stop();
});

test('dev API faults: cancel a running task, revoke a capability, force a disconnect; the neuron recovers', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  const n = new Neuron({ neuronId: 'w-faults', gatewayUrl: gw.url, auth: () => tk.service, ...fast });
  n.on('error', () => {});
  /** @type {string[]} */
  const aborts = [];
  n.handle({ type: 'core/slow', scope: 'any', concurrency: 2 }, (_i, ctx) => new Promise((resolve, reject) => {
    ctx.signal.addEventListener('abort', () => { aborts.push(ctx.signal.reason.message); reject(ctx.signal.reason); });
  }));
  n.handle({ type: 'core/echo', scope: 'any', concurrency: 1 }, (i) => i);
  let registrations = 0;
  n.on('connection:registered', () => registrations++);
  await n.start();

  const slow = await enqueue(gw, { type: 'core/slow', input: null });
  await taskIn(gw, slow, 'leased');
  await waitFor(() => n.stats().capabilities[0].running === 1, 3000, 'the handler to run');
  assert.equal((await dev(gw, 'POST', `/dev/tasks/${slow}/cancel`, {})).status < 300, true);
  await taskIn(gw, slow, 'cancelled');
  assert.deepEqual(aborts, ['cancelled']);

  assert.ok((await dev(gw, 'POST', `/dev/neurons/w-faults/disconnect`, { reconnect: true })).status < 300);
  await waitFor(() => registrations === 2, 5000, 'a new registration after the forced disconnect');
  const echo = await enqueue(gw, { type: 'core/echo', input: 'still here' });
  assert.equal((await taskIn(gw, echo, 'done')).output, 'still here');

  assert.ok((await dev(gw, 'POST', `/dev/neurons/w-faults/revoke`, { capability: 'core/slow', reason: 'test' })).status < 300);
  const slow2 = await enqueue(gw, { type: 'core/slow', input: null });
  await new Promise((r) => setTimeout(r, 200));
  assert.notEqual((await task(gw, slow2)).state, 'done');
  await n.stop();
});

test('HttpTransport given as `transport` runs the same byte path, with its own options', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  let fetches = 0;
  /** @type {typeof fetch} */
  const countingFetch = (input, init) => { fetches++; return fetch(input, init); };
  const transport = new HttpTransport({ gatewayUrl: gw.url, neuronId: 'w-transport', auth: () => tk.service, fetch: countingFetch });
  const n = new Neuron({ neuronId: 'w-transport', transport });
  n.handle({ type: 'core/echo', scope: 'any', concurrency: 1 }, (i) => ({ got: i }));
  await n.start();
  const id = await enqueue(gw, { type: 'core/echo', input: 1 });
  assert.deepEqual((await taskIn(gw, id, 'done')).output, { got: 1 });
  assert.ok(fetches >= 3, 'stream + register + ack through the given fetch');
  await n.stop();
});

test('an HttpTransport given to a Neuron tells the truth: isConnected, callbacks, start() and stop() follow the neuron', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  const transport = new HttpTransport({ gatewayUrl: gw.url, neuronId: 'w-truth', auth: () => tk.service });
  /** @type {string[]} */
  const seen = [];
  transport.subscribe({
    onOpen: () => seen.push('open'),
    onClose: (reason) => seen.push(`close ${reason}`),
    onFrame: (f) => seen.push(`frame ${f.type}`),
  });
  const n = new Neuron({ neuronId: 'w-truth', transport });
  n.handle({ type: 'core/echo', scope: 'any', concurrency: 1 }, (i) => ({ got: i }));
  assert.equal(transport.isConnected(), false);
  assert.throws(() => new Neuron({ neuronId: 'w-truth-2', transport }), /already carries another Neuron/);

  await transport.start(); // starts the neuron: resolves once registered
  assert.equal(transport.isConnected(), true);
  assert.equal(n.isConnected(), true);
  const id = await enqueue(gw, { type: 'core/echo', input: 3 });
  assert.deepEqual((await taskIn(gw, id, 'done')).output, { got: 3 });
  assert.deepEqual(seen.slice(0, 2), ['open', 'frame registered']);
  assert.ok(seen.includes('frame lease'), seen.join(', '));
  assert.ok(!seen.some((x) => x === 'frame ack' || x === 'frame register'), 'only inbound frames reach onFrame');

  await transport.stop(); // stops the neuron
  assert.equal(transport.isConnected(), false);
  assert.equal(n.isConnected(), false);
  await assert.rejects(n.start(), /after stop/);
  assert.ok(seen.some((x) => x.startsWith('close')), seen.join(', '));
  await waitFor(async () => !(await dev(gw, 'GET', '/dev/neurons')).body.neurons.some((/** @type {any} */ x) => x.neuronId === 'w-truth'),
    3000, 'the neuron to leave the gateway');
});

test('an HttpTransport started on its own cannot also carry a Neuron', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  const transport = new HttpTransport({ gatewayUrl: gw.url, neuronId: 'w-busy', auth: () => tk.service });
  await transport.start();
  t.after(() => transport.stop());
  assert.throws(() => new Neuron({ neuronId: 'w-busy', transport }), /started on its own/);
});

test('HttpTransport on its own is a complete Transport: frames as objects, posts with 401 retry', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  // Its stream is read with an SSE reader of the core's, given back when the stream ends.
  const objectsBefore = getCore().liveObjects();
  const transport = new HttpTransport({ gatewayUrl: gw.url, neuronId: 'w-raw', auth: () => tk.service });
  /** @type {any[]} */
  const frames = [];
  let opened = 0;
  transport.subscribe({ onOpen: () => opened++, onFrame: (f) => frames.push(f) });
  await transport.start();
  assert.equal(transport.isConnected(), true);
  await transport.post('/neuron/register', {
    type: 'register', neuronId: 'w-raw', sentAt: new Date().toISOString(), sdk: { name: 'test', version: '0' },
    capabilities: [{ type: 'core/raw', scope: 'any', concurrency: 1 }],
  });
  await waitFor(() => frames.some((f) => f.type === 'registered'), 3000, 'registered');
  await enqueue(gw, { type: 'core/raw', input: 5 });
  const lease = await waitFor(() => frames.find((f) => f.type === 'lease'), 3000, 'a lease');
  await transport.post('/neuron/ack', {
    type: 'ack', neuronId: 'w-raw', sentAt: new Date().toISOString(), leaseId: lease.leaseId, taskId: lease.task.taskId, output: 10, durationMs: 1,
  });
  assert.equal((await taskIn(gw, lease.task.taskId, 'done')).output, 10);
  await assert.rejects(transport.post('/neuron/ack', {
    type: 'ack', neuronId: 'w-raw', sentAt: new Date().toISOString(), leaseId: lease.leaseId, taskId: lease.task.taskId, output: 10, durationMs: 1,
  }), (/** @type {any} */ e) => e.status === 409);
  assert.equal(getCore().liveObjects(), objectsBefore + 1, 'one SSE reader while the stream is open');
  await transport.stop();
  assert.equal(transport.isConnected(), false);
  assert.equal(opened, 1);
  await waitFor(() => getCore().liveObjects() === objectsBefore, 2000, 'the SSE reader to be given back');
});

test('stop() resolves by its deadline and leaves nothing behind: a Node process with nothing else to do exits', async () => {
  const { spawn } = await import('node:child_process');
  const gw = await startGateway();
  try {
    const tk = await tokens(gw);
    const script = `
      import { Neuron } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
      const n = new Neuron({ neuronId: 'w-exit', gatewayUrl: ${JSON.stringify(gw.url)}, auth: () => ${JSON.stringify(tk.service)} });
      n.handle({ type: 'core/hang', scope: 'any', concurrency: 1 }, () => new Promise(() => {}));
      await n.start();
      const leased = new Promise((ok) => n.on('frame', (f) => f.type === 'lease' && ok()));
      await fetch(${JSON.stringify(gw.url)} + '/dev/tasks', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'core/hang', input: 1 }) });
      await leased;
      const t0 = Date.now();
      await n.stop({ drain: true, timeoutMs: 200 });
      console.log('stopped after', Date.now() - t0);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const code = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`the process did not exit after stop(); output: ${out}`)); }, 10_000);
      child.on('exit', (c) => { clearTimeout(timer); resolve(c); });
    });
    assert.equal(code, 0);
    const took = Number(/stopped after (\d+)/.exec(out)?.[1]);
    assert.ok(took >= 190 && took < 5500, out);
  } finally {
    await gw.close();
  }
});

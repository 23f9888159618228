// Regression tests for defects a review of web/src reproduced against plain
// gateways: each failed before its fix. Where a class of input caused one,
// the test tries several members of the class.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Neuron, HttpTransport, initNeuronSdk, defineCapability } from '../src/index.js';
import { IpcTransport } from '../src/ipc.js';
import { FakeGateway, sleep, until } from './support/fake-gateway.js';
import { memoryGateway } from './support/memory-gateway.js';


/** Collects unhandled rejections and uncaught exceptions while `fn` runs. */
async function noStrayErrors(fn) {
  /** @type {unknown[]} */
  const stray = [];
  const onRejection = (/** @type {unknown} */ r) => stray.push(r);
  const onException = (/** @type {unknown} */ e) => stray.push(e);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  try {
    await fn();
    await sleep(20);
  } finally {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  }
  assert.deepEqual(stray.map(String), [], 'no unhandled rejection or uncaught exception');
}

function revokedProxy() {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

// ---- 1. strange handler values never escape into the SDK ----

/** @type {[string, () => unknown][]} */
const strangeHandlers = [
  ['a thenable whose then() throws', () => ({ then() { throw new Error('then exploded'); } })],
  ['a thenable whose then getter throws', () => ({ get then() { throw new Error('getter exploded'); } })],
  ['a thrown revoked Proxy', () => { throw revokedProxy(); }],
  ['a returned revoked Proxy', () => revokedProxy()],
  ['a promise rejected with a revoked Proxy', () => Promise.reject(revokedProxy())],
  ['a thrown object whose message getter throws', () => { throw { get message() { throw new Error('no'); } }; }],
  ['a thrown Symbol', () => { throw Symbol('s'); }],
  ['a thrown null', () => { throw null; }],
  ['an object whose toJSON throws', () => ({ toJSON() { throw new Error('toJSON exploded'); } })],
];

for (const [what, handler] of strangeHandlers) {
  test(`custom transport: a handler giving ${what} ends its lease, and the next lease runs`, async () => {
    await noStrayErrors(async () => {
      const gw = new FakeGateway();
      const n = new Neuron({ neuronId: 'n-strange', transport: gw.transport });
      n.on('error', () => {});
      n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (/** @type {any} */ input) => (input === 'strange' ? handler() : { ok: true }));
      await n.start();
      gw.lease('l-1', 'core/x', 'strange');
      gw.lease('l-2', 'core/x', 'fine');
      const [first, second] = await Promise.all([gw.terminalFor('l-1'), gw.terminalFor('l-2')]);
      assert.equal(first.type, 'nack', `${what}: ${JSON.stringify(first)}`);
      assert.ok(first.kind === 'retryable' || first.kind === 'terminal', first.kind);
      assert.equal(typeof first.reason, 'string');
      assert.equal(second.type, 'ack');
      assert.equal(gw.terminal('l-1').length, 1);
      await n.stop({ timeoutMs: 500 });
    });
  });
}

test('byte path: a thenable whose then() throws is a retryable nack, the stream keeps going', async () => {
  await noStrayErrors(async () => {
    const gw = memoryGateway();
    const n = new Neuron({ neuronId: 'n-then', gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch });
    n.on('error', () => {});
    n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (_i, ctx) =>
      (ctx.leaseId === 'l-1' ? { then() { throw new Error('then exploded'); } } : 'ok'));
    await n.start();
    gw.lease('l-1');
    gw.lease('l-2');
    await until(() => gw.terminal('l-1').length === 1 && gw.terminal('l-2').length === 1, 'both leases to end');
    assert.equal(gw.terminal('l-1')[0].kind, 'retryable');
    assert.match(gw.terminal('l-1')[0].reason, /then exploded/);
    assert.equal(gw.terminal('l-2')[0].type, 'ack');
    assert.equal(n.isConnected(), true);
    await n.stop({ timeoutMs: 500 });
  });
});

test('a transport that throws from post() or isConnected() never breaks the neuron', async () => {
  await noStrayErrors(async () => {
    const gw = new FakeGateway();
    const post = gw.transport.post;
    let boom = true;
    gw.transport.post = (/** @type {string} */ path, /** @type {any} */ frame) => {
      if (path === '/neuron/ack' && boom) {
        boom = false;
        throw new Error('post exploded synchronously');
      }
      return post(path, frame);
    };
    const n = new Neuron({ neuronId: 'n-tthrow', transport: gw.transport, reconnectJitter: 0 });
    n.on('error', () => {});
    n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 1);
    await n.start();
    gw.lease('l-1', 'core/x');
    // The throw is a network error for that frame: the ack is retried.
    const ack = await gw.terminalFor('l-1', 5000);
    assert.equal(ack.type, 'ack');
    await n.stop({ timeoutMs: 500 });
  });
});

// ---- 2. a stalled progress POST neither delays the verdict long nor doubles it ----

test('custom transport: a progress POST that never settles delays the ack by at most the grace, and the ack is posted once', async () => {
  const gw = new FakeGateway();
  const answer = gw.answer;
  gw.answer = (path, frame) => (path === '/neuron/progress' ? new Promise(() => {}) : answer(path, frame));
  const n = new Neuron({ neuronId: 'n-stall', transport: gw.transport, requestTimeoutMs: 1500 });
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (_i, ctx) => {
    ctx.progress({ percent: 50 });
    return { done: true };
  });
  await n.start();
  const t0 = Date.now();
  gw.lease('l-1', 'core/x');
  const ack = await gw.terminalFor('l-1', 5000);
  const waited = Date.now() - t0;
  assert.equal(ack.type, 'ack');
  assert.ok(waited < 2000, `the ack waited ${waited} ms behind a stalled progress POST`);
  const progressAt = gw.posts.findIndex((p) => p.path === '/neuron/progress');
  const ackAt = gw.posts.findIndex((p) => p.path === '/neuron/ack');
  assert.ok(progressAt >= 0 && progressAt < ackAt, 'the verdict never overtakes its progress');
  await sleep(2500); // past the request timeout: no second ack
  assert.equal(gw.terminal('l-1').length, 1, 'exactly one ack');
  await n.stop({ timeoutMs: 500 });
});

test('byte path: a progress POST the gateway never answers: the ack goes out once, soon, after it', async () => {
  const gw = memoryGateway({ answer: (frame) => (frame.type === 'progress' ? new Promise(() => {}) : Promise.resolve(new Response('{}', { status: 200 }))) });
  const n = new Neuron({ neuronId: 'n-stall-b', gatewayUrl: 'http://gw', auth: () => 't', fetch: gw.fetch, requestTimeoutMs: 1500 });
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, (_i, ctx) => {
    ctx.progress({ percent: 50 });
    return 'ok';
  });
  await n.start();
  const t0 = Date.now();
  gw.lease('l-1');
  await until(() => gw.terminal('l-1').length > 0, 'the ack', 5000);
  assert.ok(Date.now() - t0 < 2000, 'not held until the progress POST times out');
  const order = gw.posts.map((p) => p.type);
  assert.ok(order.indexOf('progress') < order.indexOf('ack'));
  await sleep(2500);
  assert.equal(gw.terminal('l-1').length, 1, 'exactly one ack');
  await n.stop({ timeoutMs: 500 });
});

// ---- 3. stop() ends by its deadline even when a transport's stop() never does ----

test('stop() resolves, with an error event, when the transport stop() never settles', async () => {
  const gw = new FakeGateway();
  gw.transport.stop = () => new Promise(() => {});
  const n = new Neuron({ neuronId: 'n-hangstop', transport: gw.transport });
  /** @type {Error[]} */
  const errors = [];
  n.on('error', (e) => errors.push(e));
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 1);
  await n.start();
  const t0 = Date.now();
  const stopped = await Promise.race([n.stop({ timeoutMs: 1000 }).then(() => 'stopped'), sleep(8000).then(() => 'hung')]);
  assert.equal(stopped, 'stopped');
  assert.ok(Date.now() - t0 < 3000, `stop took ${Date.now() - t0} ms`);
  assert.ok(errors.some((e) => /transport.*stop/i.test(e.message)), errors.map((e) => e.message).join('; '));
});

test('IpcTransport: stop() resolves when bridge.detach() never settles (the main process is gone)', async () => {
  /** @type {((f: any) => void) | null} */
  let deliver = null;
  const bridge = {
    attach: async () => ({ channel: 'c' }),
    detach: () => new Promise(() => {}),
    subscribe: (/** @type {string} */ _c, /** @type {(f: any) => void} */ cb) => { deliver = cb; return () => { deliver = null; }; },
    invoke: async (/** @type {string} */ path, /** @type {any} */ frame) => {
      if (path === '/neuron/register') queueMicrotask(() => deliver?.({ type: 'registered', sessionId: 's' }));
      void frame;
      return {};
    },
  };
  const n = new Neuron({ neuronId: 'n-ipc-hang', transport: new IpcTransport({ bridge: /** @type {any} */ (bridge), neuronId: 'n-ipc-hang' }) });
  n.on('error', () => {});
  n.handle({ type: 'core/x', scope: 'any', concurrency: 1 }, () => 1);
  await n.start();
  const r = await Promise.race([n.stop({ timeoutMs: 1000 }).then(() => 'stopped'), sleep(8000).then(() => 'hung')]);
  assert.equal(r, 'stopped');
});

// ---- 4. IPC: stop() while attach() is pending detaches the bridge ----

test('IpcTransport: stop() while bridge.attach() is pending leaves nothing attached or subscribed', async () => {
  /** @type {(v: { channel: string }) => void} */
  let finishAttach = () => {};
  let subscribed = 0;
  let unsubscribed = 0;
  let detached = 0;
  const bridge = {
    attach: () => new Promise((r) => { finishAttach = r; }),
    detach: async () => { detached++; },
    subscribe: () => { subscribed++; return () => { unsubscribed++; }; },
    invoke: async () => ({}),
  };
  const t = new IpcTransport({ bridge: /** @type {any} */ (bridge), neuronId: 'n-ipc' });
  const started = t.start();
  const stopped = t.stop();
  finishAttach({ channel: 'c' });
  await Promise.allSettled([started, stopped]);
  await sleep(10);
  assert.equal(subscribed - unsubscribed, 0, 'no live subscription');
  assert.equal(detached, 1, 'the bridge was detached once');
  assert.equal(t.isConnected(), false);
});

// ---- 5. a WebAssembly.Module that fails to instantiate never hangs ----

test('initNeuronSdk({ wasmModule }) with a module that cannot be instantiated rejects, with a how-to-fix message', async () => {
  // A valid module whose import the core cannot satisfy.
  const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 2, 13, 1, 3, 110, 111, 112, 5, 110, 111, 112, 101, 33, 0, 0]);
  const mod = new WebAssembly.Module(bytes);
  const code = `
    globalThis.NEURON_SDK_WASM = new WebAssembly.Module(new Uint8Array(${JSON.stringify([...bytes])}));
    const t = setTimeout(() => { console.log('HUNG'); process.exit(3); }, 5000);
    const sdk = await import(${JSON.stringify(new URL('../src/index.js', import.meta.url).href)});
    clearTimeout(t);
    try { new sdk.Neuron({ neuronId: 'x', gatewayUrl: 'http://x', auth: () => 't' }); console.log('NO THROW'); }
    catch (e) { console.log('THREW ' + e.message); }
  `;
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 15000 });
  assert.match(r.stdout, /THREW .*initNeuronSdk/, `stdout: ${r.stdout} stderr: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Unhandled|unhandled/);
  // initNeuronSdk itself (the core is loaded here already, so it is a no-op): still settles.
  await initNeuronSdk({ wasmModule: mod });
});

// ---- 6. HttpTransport on its own: start() settles, a restart leaves one stream ----

/** A plain node:http SSE gateway counting open streams. */
async function sseServer({ refuse = false } = {}) {
  /** @type {Set<http.ServerResponse>} */
  const open = new Set();
  let opened = 0;
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/neuron/events')) {
      if (refuse) {
        res.writeHead(503).end();
        return;
      }
      opened++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': hi\n\n');
      open.add(res);
      req.on('close', () => open.delete(res));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  const port = /** @type {any} */ (server.address()).port;
  return {
    url: `http://127.0.0.1:${port}`,
    open,
    get opened() { return opened; },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r(undefined)); }),
  };
}

test('HttpTransport: stop() during the reconnect backoff settles the pending start()', async () => {
  const gw = await sseServer({ refuse: true });
  const t = new HttpTransport({ gatewayUrl: gw.url, neuronId: 'h-1', auth: () => 't', initialReconnectDelayMs: 5000 });
  t.subscribe({ onError() {} });
  const started = t.start();
  await sleep(200); // first attempt refused, now in its backoff
  await t.stop();
  const r = await Promise.race([started.then(() => 'settled', () => 'settled'), sleep(2000).then(() => 'hung')]);
  assert.equal(r, 'settled');
  await gw.close();
});

test('HttpTransport: stop() then start() leaves exactly one stream, and none after the final stop()', async () => {
  const gw = await sseServer();
  const t = new HttpTransport({ gatewayUrl: gw.url, neuronId: 'h-2', auth: () => 't', initialReconnectDelayMs: 50 });
  t.subscribe({ onError() {} });
  await t.start();
  await until(() => gw.open.size === 1, 'the first stream');
  await t.stop();
  await t.start();
  await sleep(400); // long enough for a stray loop to reconnect
  assert.equal(gw.open.size, 1, 'one stream after the restart');
  assert.equal(t.isConnected(), true);
  await t.stop();
  await until(() => gw.open.size === 0, 'no stream after the final stop');
  await sleep(300);
  assert.equal(gw.open.size, 0, 'and none reopened');
  await gw.close();
});

// ---- 7. a logger that throws is ignored everywhere ----

test('a logger whose methods throw never makes start() reject or a lease fail', async () => {
  const boom = () => { throw new Error('logger exploded'); };
  const logger = { level: 'debug', debug: boom, info: boom, warn: boom, error: boom };
  const gw = new FakeGateway();
  const n = new Neuron({ neuronId: 'n-log', transport: gw.transport, logger });
  n.on('error', () => {});
  // A zod capability without zod-to-json-schema conversion warns through the logger.
  const fakeZod = { safeParse: (/** @type {unknown} */ v) => ({ success: true, data: v }), _zod: {} };
  n.handle(defineCapability({ type: 'core/x', input: /** @type {any} */ (fakeZod), output: /** @type {any} */ (fakeZod) }), (_i, ctx) => {
    ctx.log.info({}, 'hello');
    return 1;
  });
  await n.start();
  gw.lease('l-1', 'core/x');
  assert.equal((await gw.terminalFor('l-1')).type, 'ack');
  await n.stop({ timeoutMs: 500 });
});

// ---- the module loads where String.prototype.isWellFormed is missing ----

test('neuron.js has no regex lookbehind (a parse-time SyntaxError on Safari < 16.4)', async () => {
  const fs = await import('node:fs');
  for (const file of fs.readdirSync(new URL('../src/', import.meta.url))) {
    const text = fs.readFileSync(new URL(`../src/${file}`, import.meta.url), 'utf8');
    assert.doesNotMatch(text, /\(\?<[=!]/, `${file} uses a lookbehind`);
  }
});

// Every runnable example of the seed README, extracted from the README (not
// retyped), transpiled from TypeScript, and run against the local dev gateway.
// Only what the README leaves to the reader is supplied around each block: the
// gateway URL and token, and stubs for the user's own functions (runPython,
// driveClient, llmClient, ...). `electron` imports get a small stub module.
//
// The examples are written as modules inside this package folder, so
// `import ... from '@holokai/neuron-sdk'` resolves to this package by name.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { blocksUnder, toJs, readmeBlocks, seedAvailable, SEED_README_PATH } from './support/readme.js';
import { FakeGateway } from './support/fake-gateway.js';
import { startGateway, tokens, enqueue, dev, waitFor } from '../../tester-ui/testkit/helpers.js';
import { Neuron } from '@holokai/neuron-sdk';

const RUN_DIR = fileURLToPath(new URL('./.readme-run/', import.meta.url));

/** @type {any} */
let gw;
/** @type {Record<string, string>} */
let tk;
/** @type {{ path: string, body: any }[]} */
const posts = [];
const realFetch = globalThis.fetch;
/** @type {Neuron[]} */
const neurons = [];

before(async () => {
  rmSync(RUN_DIR, { recursive: true, force: true });
  mkdirSync(RUN_DIR, { recursive: true });
  writeFileSync(`${RUN_DIR}electron-stub.mjs`, [
    "import { EventEmitter } from 'node:events';",
    'export const powerMonitor = new EventEmitter();',
    'const main = globalThis.__readme.ipcMain;',
    'export const ipcRenderer = {',
    '  invoke: (channel, ...args) => main.invoke(channel, ...args),',
    '  on: (channel, listener) => main.on(channel, listener),',
    '  off: (channel, listener) => main.off(channel, listener),',
    '};',
    'export const contextBridge = { exposeInMainWorld: (name, api) => { globalThis.window ??= {}; globalThis.window[name] = api; } };',
  ].join('\n'));
  gw = await startGateway();
  tk = await tokens(gw);
  tk.combo = await gw.mintToken({ kind: ['service', 'desktop'], sub: 'combo-1', userId: 'user:abc' });
  // Every README neuron uses fetch: record what it posts.
  globalThis.fetch = (input, init) => {
    if (init?.method === 'POST' && typeof init.body === 'string') {
      posts.push({ path: new URL(String(input)).pathname, body: JSON.parse(init.body) });
    }
    return realFetch(input, init);
  };
  /** shared with the example modules */
  globalThis.__readme = {
    url: gw.url,
    tokens: tk,
    Neuron,
    /** @param {string} neuronId @param {string} [token] */
    neuron(neuronId, token = tk.service) {
      const n = new Neuron({ neuronId, gatewayUrl: gw.url, auth: () => token });
      neurons.push(n);
      return n;
    },
  };
});

after(async () => {
  for (const n of neurons) await n.stop({ drain: false });
  globalThis.fetch = realFetch;
  await gw.close();
  rmSync(RUN_DIR, { recursive: true, force: true });
});

let seq = 0;
/**
 * Write prelude + README block (as JS) + epilogue to a module and import it.
 * @param {string} name @param {{ prelude?: string, code: string, epilogue?: string }} parts
 */
async function runModule(name, { prelude = '', code, epilogue = '' }) {
  const file = `${RUN_DIR}${String(++seq).padStart(2, '0')}-${name}.mjs`;
  writeFileSync(file, `${prelude}\n${code}\n${epilogue}\n`);
  return import(pathToFileURL(file).href);
}

/** The README block under a heading (the n-th), as JavaScript. @param {string} heading */
function block(heading, n = 0) {
  return toJs(blocksUnder(heading)[n].code);
}

/** @param {string} id @param {string} state */
function taskIn(id, state, ms = 5000) {
  return waitFor(async () => {
    const r = await dev(gw, 'GET', `/dev/tasks/${encodeURIComponent(id)}`);
    const t = r.body.task ?? r.body;
    return t.state === state ? t : null;
  }, ms, `task ${id} to be ${state}`);
}

/** @param {string} path @param {(b: any) => boolean} [match] */
const posted = (path, match = () => true) => posts.filter((p) => p.path === path && match(p.body)).map((p) => p.body);

/** Keep a neuron a module made, so after() stops it. @param {any} mod */
function keep(mod) {
  neurons.push(mod.neuron);
  return mod.neuron;
}

test('the package README carries every code block of the seed README unchanged, under the same heading', (t) => {
  if (!seedAvailable()) {
    t.skip(`the seed README is not next to this checkout (${SEED_README_PATH})`);
    return;
  }
  const ours = readmeBlocks();
  let at = 0;
  for (const seed of readmeBlocks(SEED_README_PATH)) {
    const found = ours.findIndex((b, i) => i >= at && b.heading === seed.heading && b.code === seed.code && b.lang === seed.lang);
    assert.ok(found >= 0, `seed block under "${seed.heading}" missing or changed in web/README.md:\n${seed.code.slice(0, 200)}`);
    at = found + 1;
  }
});

test('Quick start', async () => {
  const code = block('Quick start').replace("'https://api.example.com'", 'globalThis.__readme.url');
  const sigterm = process.listeners('SIGTERM');
  const mod = await runModule('quick-start', {
    prelude: `const runPython = async (input, signal) => 'ran ' + input.code;\nprocess.env.GATEWAY_TOKEN = globalThis.__readme.tokens.service;`,
    code,
    epilogue: 'export { neuron };',
  });
  const neuron = keep(mod);
  const id = await enqueue(gw, { type: 'core/script.python', input: { code: 'print(1)' } });
  assert.deepEqual((await taskIn(id, 'done')).output, { output: 'ran print(1)' });
  const added = process.listeners('SIGTERM').filter((l) => !sigterm.includes(l));
  assert.equal(added.length, 1, 'the quick start installs its SIGTERM handler');
  for (const l of added) process.off('SIGTERM', l);
  await neuron.stop();
});

test('Scope: one neuron with mixed-scope capabilities', async () => {
  const mod = await runModule('scope', {
    prelude: [
      "const neuron = globalThis.__readme.neuron('readme-scope', globalThis.__readme.tokens.combo);",
      'const driveHandler = async (input) => ({ drive: input });',
      'const pythonHandler = async (input) => ({ python: input });',
    ].join('\n'),
    code: block('Scope'),
    epilogue: 'await neuron.start();\nexport { neuron };',
  });
  const neuron = keep(mod);
  const d = await enqueue(gw, { type: 'desktop/mcp/drive.read', input: 'f1', onBehalfOf: 'user:abc' });
  const p = await enqueue(gw, { type: 'core/script.python', input: 'p1' });
  assert.deepEqual((await taskIn(d, 'done')).output, { drive: 'f1' });
  assert.deepEqual((await taskIn(p, 'done')).output, { python: 'p1' });
  await neuron.stop();
});

/** Wrap a README fragment that lives inside a handler. @param {string} name @param {string} type @param {string} before @param {string} fragment @param {string} after */
async function handlerFragment(name, type, before, fragment, after) {
  const mod = await runModule(name, {
    prelude: `const neuron = globalThis.__readme.neuron('readme-${name}');\nneuron.handle({ type: '${type}', scope: 'any', concurrency: 2 }, async (input, ctx) => {\n${before}`,
    code: fragment,
    epilogue: `${after}\n});\nawait neuron.start();\nexport { neuron };`,
  });
  return keep(mod);
}

test('ctx.signal: pass it to fetch', async () => {
  const neuron = await handlerFragment('signal', 'core/fetch', 'const url = input.url;', block('`ctx.signal`'), 'return { status: resp.status };');
  const id = await enqueue(gw, { type: 'core/fetch', input: { url: `${gw.url}/healthz` } });
  assert.deepEqual((await taskIn(id, 'done')).output, { status: 200 });
  await neuron.stop();
});

test('ctx.progress(): both calls reach the gateway (merged while one is in flight)', async () => {
  const neuron = await handlerFragment('progress', 'core/progress', '', block('`ctx.progress()`'), "await new Promise((r) => setTimeout(r, 50));\nreturn 'ok';");
  const id = await enqueue(gw, { type: 'core/progress', input: null });
  await taskIn(id, 'done');
  const sent = posted('/neuron/progress', (b) => b.taskId === id);
  assert.ok(sent.length >= 1 && sent.length <= 2, JSON.stringify(sent));
  const merged = Object.assign({}, ...sent);
  assert.equal(merged.percent, 50);
  assert.equal(merged.message, 'halfway done');
  assert.deepEqual(merged.data, { rowsProcessed: 1200 });
  await neuron.stop();
});

test('ctx.fail(): terminal nack with the code', async () => {
  const neuron = await handlerFragment('fail', 'core/apikey', "const validApiKey = input.key === 'good';", block('`ctx.fail()`'), "return 'ok';");
  const bad = await enqueue(gw, { type: 'core/apikey', input: { key: 'bad' } });
  const good = await enqueue(gw, { type: 'core/apikey', input: { key: 'good' } });
  const failed = await taskIn(bad, 'failed');
  assert.deepEqual([failed.nack.kind, failed.nack.code, failed.nack.reason], ['terminal', 'INVALID_API_KEY', 'invalid API key']);
  assert.equal(failed.attempt, 1, 'terminal: no retry');
  assert.equal((await taskIn(good, 'done')).output, 'ok');
  await neuron.stop();
});

test('AuthCallback: refresh inside the callback', async () => {
  let refreshed = 0;
  globalThis.__readme.refresh = () => { refreshed++; };
  const mod = await runModule('auth', {
    prelude: [
      "const fetchInitialToken = async () => ({ accessToken: 'expired.token', expiresAt: 0 });",
      'const isExpired = (t) => t.expiresAt < Date.now();',
      'const refreshToken = async () => { globalThis.__readme.refresh(); return { accessToken: globalThis.__readme.tokens.service, expiresAt: Date.now() + 3600e3 }; };',
    ].join('\n'),
    code: block('`AuthCallback`', 1),
    epilogue: [
      "const neuron = new globalThis.__readme.Neuron({ neuronId: 'readme-auth', gatewayUrl: globalThis.__readme.url, auth });",
      "neuron.handle({ type: 'core/auth', scope: 'any', concurrency: 1 }, (i) => i);",
      'await neuron.start();',
      'export { neuron };',
    ].join('\n'),
  });
  const neuron = keep(mod);
  const id = await enqueue(gw, { type: 'core/auth', input: 'x' });
  assert.equal((await taskIn(id, 'done')).output, 'x');
  assert.equal(refreshed, 1, 'refreshed once, then the fresh token is reused');
  await neuron.stop();
});

test('NeuronLogger: a pino logger works as is (run in a child process, its JSON lines read back)', async () => {
  const code = block('`NeuronLogger`', 1).replace('{ ..., logger }', '{ ...globalThis.__opts, logger }');
  const file = `${RUN_DIR}pino-logger.mjs`;
  writeFileSync(file, [
    `globalThis.__opts = { neuronId: 'readme-pino', gatewayUrl: ${JSON.stringify(gw.url)}, auth: () => ${JSON.stringify(tk.service)} };`,
    "import { Neuron } from '@holokai/neuron-sdk';",
    code,
    "neuron.handle({ type: 'core/pino', scope: 'any', concurrency: 1 }, (input, ctx) => { ctx.log.info({ step: 1 }, 'inside the handler'); return input; });",
    'await neuron.start();',
    "await fetch(globalThis.__opts.gatewayUrl + '/dev/tasks', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'core/pino', input: 1 }) });",
    "await new Promise((r) => setTimeout(r, 300));",
    'await neuron.stop();',
  ].join('\n'));
  const out = await runChild(file);
  const lines = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
  const msgs = lines.map((l) => l.msg);
  assert.ok(msgs.includes('registered'), msgs.join(', '));
  assert.ok(msgs.includes('lease acked'), msgs.join(', '));
  const scoped = lines.find((l) => l.msg === 'inside the handler');
  assert.ok(scoped && scoped.step === 1 && typeof scoped.leaseId === 'string' && scoped.capability === 'core/pino', JSON.stringify(scoped));
  assert.equal(out.code, 0);
});

test('defineCapability(): zod validates, JSON Schema on the wire, per-deployment overrides', async () => {
  const full = blocksUnder('`defineCapability()`')[0].code;
  const cut = full.indexOf('// Or override defaults per deployment:');
  assert.ok(cut > 0, 'the README block has its overrides part');
  const mod = await runModule('define-capability', {
    prelude: "const neuron = globalThis.__readme.neuron('readme-define');",
    code: toJs(full.slice(0, cut)),
    epilogue: 'await neuron.start();\nexport { neuron, pythonCap };',
  });
  const neuron = keep(mod);
  const ok = await enqueue(gw, { type: 'core/script.python', input: { code: 'print(1)', args: { a: 1 } } });
  const bad = await enqueue(gw, { type: 'core/script.python', input: { code: 42 } });
  assert.deepEqual((await taskIn(ok, 'done')).output, { stdout: '...', exitCode: 0 });
  const failed = await taskIn(bad, 'failed');
  assert.equal(failed.nack.kind, 'schema-mismatch');
  assert.equal(failed.nack.errors[0].path, '/code');
  const reg = posted('/neuron/register', (b) => b.neuronId === 'readme-define')[0];
  const cap = reg.capabilities[0];
  assert.equal(cap.description, 'Run a Python script in a sandbox');
  assert.deepEqual(cap.inputSchema.required, ['code']);
  assert.equal(cap.outputSchema.properties.exitCode.type, 'number');
  await neuron.stop();

  // the overrides line, on a neuron of its own (one neuron handles a type once)
  const fake = new FakeGateway();
  globalThis.__readme.fake = fake;
  const mod2 = await runModule('define-capability-overrides', {
    prelude: [
      "const neuron = new globalThis.__readme.Neuron({ neuronId: 'readme-overrides', transport: globalThis.__readme.fake.transport });",
      "const fn = () => ({ stdout: '', exitCode: 0 });",
      `const { pythonCap } = await import(${JSON.stringify(pathToFileURL(`${RUN_DIR}${String(seq).padStart(2, '0')}-define-capability.mjs`).href)});`,
    ].join('\n'),
    code: toJs(full.slice(cut)),
    epilogue: 'await neuron.start();\nexport { neuron };',
  });
  const over = fake.sent('register')[0].capabilities[0];
  assert.deepEqual([over.scope, over.concurrency], [{ onBehalfOf: 'user-123' }, 8]);
  await mod2.neuron.stop();
});

test('Events: frame / once registered / reconnecting, with on() returning off()', async () => {
  /** @type {any[][]} */
  const shown = [];
  /** @type {string[]} */
  const logged = [];
  globalThis.__readme.shown = shown;
  const origLog = console.log;
  console.log = (...a) => logged.push(a.join(' '));
  try {
    const mod = await runModule('events', {
      prelude: [
        "const neuron = globalThis.__readme.neuron('readme-events');",
        'const log = { frames: [], append(f) { this.frames.push(f.type); } };',
        'const statusBar = { show: (...a) => globalThis.__readme.shown.push(a) };',
        "neuron.handle({ type: 'core/events', scope: 'any', concurrency: 1 }, (i) => i);",
      ].join('\n'),
      code: block('Events'),
      epilogue: 'await neuron.start();\nexport { neuron, log };',
    });
    const neuron = keep(mod);
    assert.ok(logged.some((l) => /^registered as s-/.test(l)), logged.join('\n'));
    assert.deepEqual(mod.log.frames, [], 'off() ran right after on(): the firehose listener is gone');
    await dev(gw, 'POST', '/dev/neurons/readme-events/disconnect', { reconnect: true });
    await waitFor(() => shown.length > 0, 5000, 'the reconnecting status');
    assert.match(shown[0][0], /^reconnecting \(attempt 1, \d+ms\)$/);
    assert.equal(typeof shown[0][1], 'string');
    await neuron.stop();
  } finally {
    console.log = origLog;
  }
});

test('HttpTransport built explicitly', async () => {
  const code = block('`HttpTransport`').replace("'https://api.example.com'", 'globalThis.__readme.url');
  process.env.GATEWAY_TOKEN = tk.service;
  const mod = await runModule('http-transport', {
    code,
    epilogue: "neuron.handle({ type: 'core/transport', scope: 'any', concurrency: 1 }, (i) => ({ via: 'transport', i }));\nawait neuron.start();\nexport { neuron };",
  });
  const neuron = keep(mod);
  const id = await enqueue(gw, { type: 'core/transport', input: 3 });
  assert.deepEqual((await taskIn(id, 'done')).output, { via: 'transport', i: 3 });
  await neuron.stop();
});

test('IpcTransport with the README preload, over a fake Electron main process', async () => {
  // The fake main: what an app's ipcMain handlers would do with an embedded gateway.
  const fake = new FakeGateway({ sessionId: 's-ipc' });
  /** @type {Map<string, Set<Function>>} */
  const listeners = new Map();
  const calls = /** @type {string[]} */ ([]);
  let framesCb = /** @type {any} */ (null);
  fake.transport.subscribe; // the fake gateway's Transport side is driven below instead
  globalThis.__readme.ipcMain = {
    async invoke(/** @type {string} */ channel, /** @type {any[]} */ ...args) {
      calls.push(channel);
      if (channel === 'bigbrain:attach') return { channel: `bigbrain:frames:${args[0]}` };
      if (channel === 'bigbrain:detach') return undefined;
      if (channel === 'bigbrain:post') return fake.transport.post(args[0], args[1]);
      throw new Error(`no handler for ${channel}`);
    },
    on(/** @type {string} */ channel, /** @type {Function} */ l) {
      if (!listeners.has(channel)) listeners.set(channel, new Set());
      listeners.get(channel)?.add(l);
      framesCb = (/** @type {any} */ frame) => l({ sender: 'main' }, frame);
    },
    off(/** @type {string} */ channel, /** @type {Function} */ l) { listeners.get(channel)?.delete(l); },
  };
  fake.cb = { onFrame: (/** @type {any} */ f) => framesCb?.(f) };
  await runModule('preload', { code: block('`IpcTransport`', 2).replace("from 'electron'", "from './electron-stub.mjs'") });
  assert.equal(typeof (/** @type {any} */ (globalThis).window?.bigbrainNeuron?.attach), 'function', 'the preload exposed the bridge');
  const mod = await runModule('ipc', {
    prelude: "const neuronId = 'readme-ipc';\nconst userId = 'user:abc';\nconst handler = async (input, ctx) => ({ ipc: input, leaseId: ctx.leaseId });",
    code: block('`IpcTransport`'),
    epilogue: 'export { neuron };',
  });
  const neuron = mod.neuron;
  assert.equal(fake.sent('register')[0].capabilities[0].type, 'desktop/local-tool');
  fake.lease('l-ipc', 'desktop/local-tool', { q: 1 }, { onBehalfOf: 'user:abc' });
  const ack = await fake.terminalFor('l-ipc');
  assert.deepEqual(ack.output, { ipc: { q: 1 }, leaseId: 'l-ipc' });
  await neuron.stop();
  assert.deepEqual(calls.filter((c) => c !== 'bigbrain:post'), ['bigbrain:attach', 'bigbrain:detach']);
  assert.equal(listeners.get('bigbrain:frames:readme-ipc')?.size, 0, 'stop() unsubscribed');
  delete (/** @type {any} */ (globalThis)).window;
});

test('Example: simple any-scoped capability (core/http)', async () => {
  process.env.GATEWAY_URL = gw.url;
  process.env.GATEWAY_TOKEN = tk.service;
  process.env.HOSTNAME ??= 'test-host';
  const mod = await runModule('simple', { code: block('Simple any-scoped capability'), epilogue: 'export { neuron };' });
  const neuron = keep(mod);
  const id = await enqueue(gw, { type: 'core/http', input: { url: `${gw.url}/healthz` } });
  const out = (await taskIn(id, 'done')).output;
  assert.equal(out.status, 200);
  assert.match(out.body, /neuron dev gateway/);
  await neuron.stop();
});

test('Example: user-scoped capability (desktop / MCP) with progress', async () => {
  const mod = await runModule('user-scoped', {
    prelude: [
      "const neuron = globalThis.__readme.neuron('readme-user', globalThis.__readme.tokens.desktop);",
      "const authToken = 'token-of-user-abc';",
      "const getUserIdFromToken = async (t) => 'user:abc';",
      "const driveClient = { files: { get: async ({ fileId }) => ({ name: 'doc-' + fileId, mimeType: 'text/plain' }), download: async ({ fileId }) => 'content of ' + fileId } };",
    ].join('\n'),
    code: block('User-scoped capability (desktop / MCP)'),
    epilogue: 'await neuron.start();\nexport { neuron };',
  });
  const neuron = keep(mod);
  const id = await enqueue(gw, { type: 'desktop/mcp/drive.read', input: { fileId: '7' }, onBehalfOf: 'user:abc' });
  assert.deepEqual((await taskIn(id, 'done')).output, { name: 'doc-7', mimeType: 'text/plain', content: 'content of 7' });
  assert.ok(posted('/neuron/progress', (b) => b.taskId === id).length >= 1);
  await neuron.stop();
});

test('Example: long-running task with progress', async () => {
  const neuron = keep(await runModule('long-running', {
    prelude: "const neuron = globalThis.__readme.neuron('readme-long');\nconst processRow = async (r) => r * 2;",
    code: block('Long-running task with progress'),
    epilogue: 'await neuron.start();\nexport { neuron };',
  }));
  const id = await enqueue(gw, { type: 'core/data.transform', input: { rows: [1, 2, 3] } });
  assert.deepEqual((await taskIn(id, 'done')).output, { results: [2, 4, 6] });
  const percents = posted('/neuron/progress', (b) => b.taskId === id).map((b) => b.percent);
  assert.ok(percents.length >= 1 && percents.every((p) => [33, 67, 100].includes(p)), String(percents));
  await neuron.stop();
});

test('Example: error handling (terminal on 400, retryable otherwise)', async () => {
  const neuron = keep(await runModule('errors', {
    prelude: [
      "const neuron = globalThis.__readme.neuron('readme-errors');",
      'const llmClient = { complete: async ({ prompt }) => {',
      "  if (prompt === 'bad') throw Object.assign(new Error('prompt too long'), { status: 400 });",
      "  if (prompt === 'flaky') throw new Error('upstream 503');",
      "  return { text: 'hello', usage: { total: 3 } };",
      '} };',
    ].join('\n'),
    code: block('Error handling'),
    epilogue: 'await neuron.start();\nexport { neuron };',
  }));
  const ok = await enqueue(gw, { type: 'core/llm', input: { prompt: 'hi', model: 'm' } });
  const bad = await enqueue(gw, { type: 'core/llm', input: { prompt: 'bad', model: 'm' } });
  const flaky = await enqueue(gw, { type: 'core/llm', input: { prompt: 'flaky', model: 'm' }, maxAttempts: 1 });
  assert.deepEqual((await taskIn(ok, 'done')).output, { text: 'hello', tokensUsed: 3 });
  const b = await taskIn(bad, 'failed');
  assert.deepEqual([b.nack.kind, b.nack.code, b.nack.reason], ['terminal', 'INVALID_REQUEST', 'invalid LLM request: prompt too long']);
  await taskIn(flaky, 'failed');
  const nacks = posted('/neuron/nack', (x) => x.taskId === flaky);
  assert.deepEqual([nacks[0].kind, nacks[0].reason], ['retryable', 'upstream 503']);
  await neuron.stop();
});

test('Example: graceful shutdown on SIGTERM drains the running task, then exits 0', async () => {
  const file = `${RUN_DIR}graceful.mjs`;
  writeFileSync(file, [
    "import { Neuron } from '@holokai/neuron-sdk';",
    `const neuron = new Neuron({ neuronId: 'readme-graceful', gatewayUrl: ${JSON.stringify(gw.url)}, auth: () => ${JSON.stringify(tk.service)} });`,
    "neuron.handle({ type: 'core/graceful', scope: 'any', concurrency: 1 }, async (input) => { console.log('handler started'); await new Promise((r) => setTimeout(r, 300)); return { finished: input }; });",
    block('Graceful shutdown'),
    "console.log('ready');",
  ].join('\n'));
  const child = spawn(process.execPath, [file], { cwd: RUN_DIR, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  await waitFor(() => stdout.includes('ready'), 5000, 'the neuron to start');
  const id = await enqueue(gw, { type: 'core/graceful', input: 'x' });
  await waitFor(() => stdout.includes('handler started'), 5000, 'the handler to start');
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 10_000))]);
  if (code === 'timeout') child.kill('SIGKILL');
  assert.equal(code, 0);
  assert.match(stdout, /SIGTERM received — draining\.\.\./);
  assert.deepEqual((await taskIn(id, 'done')).output, { finished: 'x' });
});

test('Example: runtime concurrency update (power events)', async () => {
  const mod = await runModule('concurrency', {
    prelude: "const neuron = globalThis.__readme.neuron('readme-power');\nneuron.handle({ type: 'core/script.python', scope: 'any', concurrency: 2 }, (i) => i);\nawait neuron.start();",
    code: block('Runtime concurrency update').replace("from 'electron'", "from './electron-stub.mjs'"),
    epilogue: 'export { neuron, powerMonitor };',
  });
  const neuron = keep(mod);
  mod.powerMonitor.emit('on-ac');
  await waitFor(() => posted('/neuron/update-capability', (b) => b.neuronId === 'readme-power' && b.concurrency === 8).length === 1, 3000, 'update to 8');
  mod.powerMonitor.emit('on-battery');
  await waitFor(() => posted('/neuron/update-capability', (b) => b.neuronId === 'readme-power' && b.concurrency === 1).length === 1, 3000, 'update to 1');
  // the gateway applied it (the spy saw the POST leave; the answer may still be on its way)
  await waitFor(async () => {
    const r = await dev(gw, 'GET', '/dev/neurons');
    const me = r.body.neurons.find((/** @type {any} */ x) => x.neuronId === 'readme-power');
    return me?.capabilities[0].concurrency === 1;
  }, 3000, 'the gateway to hold concurrency 1');
  await neuron.stop();
});

/** @param {string} file @returns {Promise<{ code: number | null, stdout: string }>} */
function runChild(file) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd: RUN_DIR, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => { stdout += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`child timed out: ${stdout}`)); }, 15_000);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, stdout }); });
  });
}

// The package as users get it: `npm pack` of web/, installed from the tarball
// into an empty project, then (1) the README's Quick start run by Node against
// an in-process dev gateway and (2) Vite and esbuild builds of a one-file page
// run in Chromium. The install tests skip only when the npm registry cannot be
// reached.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFile } from 'node:child_process';
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startGateway, dev, enqueue, waitFor } from '../../../tester-ui/testkit/helpers.js';
import { blocksUnder, toJs } from '../support/readme.js';

const WEB = fileURLToPath(new URL('../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const VITE = 'vite@8.3.8';
const ESBUILD = 'esbuild@0.28.2';

// Child processes get the environment without what an enclosing `npm run`
// says about web/ itself (its package, script and local prefix); npm config
// such as a registry or cafile is kept.
const CHILD_ENV = Object.fromEntries(Object.entries(process.env)
  .filter(([k]) => !/^(npm_package_|npm_lifecycle_|npm_config_local_prefix$|npm_command$|INIT_CWD$)/.test(k)));

/**
 * Run a command; resolves with { code, stdout, stderr } (never rejects on exit status).
 * @param {string} cmd @param {string[]} args @param {{ cwd?: string, timeout?: number }} [opts]
 */
function run(cmd, args, { cwd = WEB, timeout = 120_000 } = {}) {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, timeout, env: CHILD_ENV, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = /** @type {any} */ (err);
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : e.signal ?? e.code) : 0, stdout: String(stdout), stderr: String(stderr), killed: !!e?.killed });
    });
  });
}

/** @param {{ code: any, stdout: string, stderr: string }} r @param {string} what */
function check(r, what) {
  assert.equal(r.code, 0, `${what} failed (${r.code}):\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r;
}

// The one-file page the bundler tests build: a neuron on the page's main
// thread; ?schema=1 adds a capability with a raw JSON Schema.
const PAGE_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>a bundled page + neuron-sdk</title></head>
<body>
  <p>state: <output id="state">loading</output></p>
  <p>acked: <output id="acked">0</output></p>
  <ul id="done"></ul>
  <script type="module" src="./main.js"></script>
</body>
</html>
`;
const PAGE_MAIN = `import { Neuron } from '@holokai/neuron-sdk';

const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const neuron = new Neuron({
  gatewayUrl: params.get('gateway'),
  neuronId: params.get('neuronId') ?? 'vite-page',
  auth: () => params.get('token'),
});
neuron.handle({ type: 'core/vite.echo', scope: 'any', concurrency: 1 }, async (input, ctx) => {
  const li = document.createElement('li');
  li.dataset.taskId = ctx.task.taskId;
  li.textContent = ctx.task.taskId;
  $('done').append(li);
  return { echo: input };
});
// ?schema=1: a capability with a raw JSON Schema (the schema module loads then).
if (params.get('schema')) {
  neuron.handle({
    type: 'core/vite.checked', scope: 'any', concurrency: 1,
    inputSchema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } },
  }, async (input) => ({ doubled: input.n * 2 }));
}
neuron.on('connection:registered', () => { $('state').textContent = 'registered'; });
neuron.on('error', (err) => { $('state').textContent = 'error: ' + err.message; });
setInterval(() => { $('acked').textContent = String(neuron.stats()?.leasesAcked ?? 0); }, 50);
await neuron.start();
`;

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css',
  '.map': 'application/json',
};

/**
 * A Chromium page that records console errors, page errors and every .wasm fetched.
 * @param {import('node:test').TestContext} t
 */
async function chromiumPage(t) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const page = await browser.newPage();
  /** @type {string[]} */
  const errors = [];
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(`console: ${msg.text()}`); });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  /** @type {string[]} */
  const wasmResponses = [];
  page.on('response', (res) => { if (res.url().endsWith('.wasm')) wasmResponses.push(`${res.status()} ${new URL(res.url()).pathname}`); });
  return { page, errors, wasmResponses };
}

/** A static file server for `root` on 127.0.0.1 and a free port. @param {string} root */
async function serveStatic(root) {
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
    let ok = file.startsWith(root.endsWith(sep) ? root : root + sep);
    try {
      ok &&= statSync(file).isFile();
    } catch {
      ok = false;
    }
    if (!ok) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[/** @type {keyof TYPES} */ (extname(file))] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve(undefined)); }),
  };
}

/** Can npm reach its registry? `npm ping` with a short timeout and no retries. */
async function registryProblem() {
  const r = await run('npm', ['ping', '--loglevel=error', '--fetch-timeout=15000', '--fetch-retries=0'], { timeout: 30_000 });
  if (r.code === 0) return null;
  return (r.stderr || r.stdout).trim().split('\n').filter((l) => /err/i.test(l)).slice(0, 3).join(' | ') || `npm ping exited ${r.code}`;
}

/** @param {any} gw @param {string} taskId */
async function taskOf(gw, taskId) {
  const r = await dev(gw, 'GET', `/dev/tasks/${encodeURIComponent(taskId)}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.task;
}

/**
 * The two wasm assets of a Vite build: [neuron-core-*.wasm, neuron-schema-*.wasm].
 * @param {string[]} assets
 */
function wasmAssets(assets) {
  const wasm = assets.filter((f) => f.endsWith('.wasm'));
  const core = wasm.filter((f) => f.startsWith('neuron-core-'));
  const schema = wasm.filter((f) => f.startsWith('neuron-schema-'));
  assert.ok(wasm.length === 2 && core.length === 1 && schema.length === 1, `neuron-core-*.wasm and neuron-schema-*.wasm expected in ${assets.join(', ')}`);
  return [core[0], schema[0]];
}

/**
 * A capability whose raw inputSchema wants { n: integer }: a valid input is
 * acked, an invalid one nacked schema-mismatch (its handler never ran).
 * @param {any} gw @param {string} type
 */
async function checkSchemaTasks(gw, type) {
  const ended = (/** @type {string} */ id) => waitFor(async () => {
    const x = await taskOf(gw, id);
    return x.state !== 'pending' && x.state !== 'leased' && x;
  }, 10_000, `${type} task ended`);
  const good = await ended(await enqueue(gw, { type, input: { n: 21 } }));
  assert.equal(good.state, 'done', JSON.stringify(good));
  assert.deepEqual(good.output, { doubled: 42 });
  const bad = await ended(await enqueue(gw, { type, input: { n: 'x' } }));
  assert.equal(bad.state, 'failed', JSON.stringify(bad));
  assert.match(JSON.stringify(bad), /schema-mismatch/);
}

const SHIPPED_DIST = ['dist/neuron-core.mjs', 'dist/neuron-core.wasm', 'dist/neuron-schema.wasm'];

test('npm pack ships dist/neuron-core.{mjs,wasm}, dist/neuron-schema.wasm, src/, types/ and no tests or node_modules', async () => {
  const r = check(await run('npm', ['pack', '--dry-run', '--json', '--silent']), 'npm pack --dry-run');
  const [info] = JSON.parse(r.stdout);
  /** @type {string[]} */
  const files = info.files.map((/** @type {{ path: string }} */ f) => f.path);
  for (const f of [...SHIPPED_DIST, 'package.json', 'types/index.d.ts', 'types/ipc.d.ts']) assert.ok(files.includes(f), `${f} missing from ${files.join(', ')}`);
  for (const f of readdirSync(join(WEB, 'src'))) assert.ok(files.includes(`src/${f}`), `src/${f} missing from the tarball`);
  const forbidden = files.filter((f) => /^(test|tests|node_modules|examples|bench)\//.test(f) || f.includes('/node_modules/') || (f.startsWith('types/') && !f.endsWith('.d.ts')));
  assert.deepEqual(forbidden, [], 'files that must not ship (tests, fixtures; under types/ only .d.ts files)');
  const stray = files.filter((f) => !/^(src|types)\//.test(f) && !SHIPPED_DIST.includes(f) && !['package.json', 'README.md'].includes(f) && !/^LICEN[CS]E/i.test(f));
  assert.deepEqual(stray, [], 'unexpected files in the tarball');
});

const problem = await registryProblem();
const skip = problem ? `npm registry unreachable, skipping the install tests (${problem})` : false;
if (problem) console.log(skip);

describe('installed from the tarball into an empty project', { skip }, () => {
  /** @type {string} */ let tmp;
  /** @type {string} */ let proj;
  /** @type {string} */ let tarball;

  before(async () => {
    if (skip) return;
    tmp = mkdtempSync(join(tmpdir(), 'neuron-sdk-pack-'));
    proj = join(tmp, 'proj');
    const packed = check(await run('npm', ['pack', '--json', '--silent', '--pack-destination', tmp]), 'npm pack');
    tarball = join(tmp, JSON.parse(packed.stdout)[0].filename);
    const listed = check(await run('tar', ['-tzf', tarball]), 'tar -tzf').stdout.split('\n');
    for (const f of [...SHIPPED_DIST, 'src/index.js', 'types/index.d.ts']) assert.ok(listed.includes(`package/${f}`), `${f} not in ${tarball}`);

    check(await run('mkdir', ['-p', proj]), 'mkdir');
    check(await run('npm', ['init', '-y'], { cwd: proj }), 'npm init -y');
    check(await run('npm', ['pkg', 'set', 'type=module'], { cwd: proj }), 'npm pkg set type=module');
    check(await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', tarball, VITE, ESBUILD], { cwd: proj, timeout: 300_000 }), `npm install <tarball> ${VITE} ${ESBUILD}`);
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  test("the README's Quick start runs with Node from the installed package", { timeout: 120_000 }, async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const token = await gw.mintToken({ kind: 'service', sub: 'svc-quickstart' });

    const quickStart = blocksUnder('Quick start')[0].code;
    assert.ok(quickStart.includes("'https://api.example.com'"), 'the Quick start names https://api.example.com');
    const body = toJs(quickStart.replace("'https://api.example.com'", JSON.stringify(gw.url)));
    const prelude = [
      "globalThis.runPython = async (input) => 'ran ' + input.code;",
      `process.env.GATEWAY_TOKEN = ${JSON.stringify(token)};`,
    ].join('\n');
    const epilogue = [
      'const deadline = Date.now() + 20_000;',
      'while ((neuron.stats()?.leasesAcked ?? 0) < 1) {',
      "  if (Date.now() > deadline) { console.error('no ack within 20 s', JSON.stringify(neuron.stats())); process.exit(3); }",
      '  await new Promise((r) => setTimeout(r, 25));',
      '}',
      'await neuron.stop();',
      "console.log('quickstart: acked and stopped');",
    ].join('\n');
    writeFileSync(join(proj, 'quickstart.js'), `${prelude}\n${body}\n${epilogue}\n`);

    const taskId = await enqueue(gw, { type: 'core/script.python', input: { code: 'print(1)' } });
    const started = Date.now();
    // No process.exit() on success: after stop() the process must end by itself.
    const r = await run(process.execPath, ['quickstart.js'], { cwd: proj, timeout: 30_000 });
    assert.ok(!r.killed, `node quickstart.js did not exit within 30 s (stop() left something running?)\n${r.stdout}\n${r.stderr}`);
    check(r, 'node quickstart.js');
    assert.match(r.stdout, /quickstart: acked and stopped/);
    const task = await taskOf(gw, taskId);
    assert.equal(task.state, 'done', JSON.stringify(task));
    assert.deepEqual(task.output, { output: 'ran print(1)' });
    t.diagnostic(`quick start ran in ${Date.now() - started} ms`);
  });

  test('a Vite production build of a page using the package runs in Chromium (wasm found via import.meta.url)', { timeout: 180_000 }, async (t) => {
    const app = join(proj, 'app');
    check(await run('mkdir', ['-p', app]), 'mkdir app');
    writeFileSync(join(app, 'index.html'), PAGE_HTML);
    writeFileSync(join(app, 'main.js'), PAGE_MAIN);
    // No vite.config.js: Vite 8's default build target handles the package's top-level await.
    const built = check(await run('npx', ['--no-install', 'vite', 'build', app], { cwd: proj, timeout: 120_000 }), 'npx vite build');
    t.diagnostic(built.stdout.trim().split('\n').filter((l) => l.includes('dist/')).join(' ; '));
    const dist = join(app, 'dist');
    const assets = readdirSync(join(dist, 'assets'));
    const [wasm, schemaWasm] = wasmAssets(assets);
    const js = assets.filter((f) => f.endsWith('.js')).map((f) => readFileSync(join(dist, 'assets', f), 'utf8')).join('\n');
    for (const file of [wasm, schemaWasm]) {
      assert.match(js, new RegExp(`new URL\\([^)]*${file.replace(/[.]/g, '\\.')}[^)]*import\\.meta\\.url`), `the bundle locates ${file} with new URL(..., import.meta.url)`);
    }

    const gw = await startGateway();
    t.after(() => gw.close());
    const token = await gw.mintToken({ kind: 'service', sub: 'svc-vite' });
    const site = await serveStatic(dist);
    t.after(() => site.close());
    const { page, errors, wasmResponses } = await chromiumPage(t);

    /** @type {Promise<never>} */
    const pageError = new Promise((_, reject) => page.once('pageerror', (err) => reject(new Error(`the built page threw: ${err.message}`))));
    pageError.catch(() => {});

    const q = new URLSearchParams({ gateway: gw.url, token, neuronId: 'vite-page-1' });
    await page.goto(`${site.url}/index.html?${q}`);
    await Promise.race([pageError, page.waitForFunction(() => document.querySelector('#state')?.textContent !== 'loading', null, { timeout: 15_000 })]);
    await page.waitForFunction(() => document.querySelector('#state')?.textContent === 'registered', null, { timeout: 10_000 })
      .catch(async (err) => { throw new Error(`${err.message}; state ${await page.textContent('#state')}; page errors: ${JSON.stringify(errors)}`); });
    assert.deepEqual(wasmResponses, [`200 /assets/${wasm}`], 'no capability has a raw JSON Schema: the schema module is not fetched');

    const input = { hello: 'vite', n: 7 };
    const taskId = await enqueue(gw, { type: 'core/vite.echo', input });
    const task = await waitFor(async () => {
      const x = await taskOf(gw, taskId);
      return x.state !== 'pending' && x.state !== 'leased' && x;
    }, 10_000, 'vite task ended');
    assert.equal(task.state, 'done', JSON.stringify(task));
    assert.deepEqual(task.output, { echo: input });
    await page.waitForFunction(() => document.querySelector('#acked')?.textContent === '1', null, { timeout: 5_000 });
    assert.equal(await page.locator(`#done li[data-task-id="${taskId}"]`).count(), 1);
    assert.deepEqual(errors, []);

    // The same build with a raw JSON Schema: neuron-schema.wasm comes from the built assets too.
    wasmResponses.length = 0;
    await page.goto(`${site.url}/index.html?${new URLSearchParams({ gateway: gw.url, token, neuronId: 'vite-page-2', schema: '1' })}`);
    await page.waitForFunction(() => document.querySelector('#state')?.textContent === 'registered', null, { timeout: 10_000 })
      .catch(async (err) => { throw new Error(`${err.message}; state ${await page.textContent('#state')}; page errors: ${JSON.stringify(errors)}`); });
    assert.deepEqual(wasmResponses.sort(), [`200 /assets/${wasm}`, `200 /assets/${schemaWasm}`].sort());
    await checkSchemaTasks(gw, 'core/vite.checked');
    assert.deepEqual(errors, []);
  });

  test('an esbuild bundle of the page runs in Chromium once the two .wasm files are copied next to it, as the README says', { timeout: 180_000 }, async (t) => {
    const app = join(proj, 'esbuild-app');
    const out = join(app, 'out');
    check(await run('mkdir', ['-p', out]), 'mkdir esbuild-app/out');
    writeFileSync(join(app, 'main.js'), PAGE_MAIN);
    writeFileSync(join(out, 'index.html'), PAGE_HTML);
    // esbuild leaves new URL('neuron-core.wasm', import.meta.url) as it is and copies nothing.
    check(await run('npx', ['--no-install', 'esbuild', 'main.js', '--bundle', '--format=esm', '--minify', '--outfile=out/main.js'],
      { cwd: app, timeout: 60_000 }), 'npx esbuild');
    const bundle = readFileSync(join(out, 'main.js'), 'utf8');
    assert.match(bundle, /new URL\("neuron-core\.wasm",\s*import\.meta\.url\)/, 'the bundle still looks for neuron-core.wasm next to itself');
    // The README's step: copy the package's dist/*.wasm next to the bundle.
    const pkgDist = join(proj, 'node_modules', '@holokai', 'neuron-sdk', 'dist');
    for (const f of ['neuron-core.wasm', 'neuron-schema.wasm']) check(await run('cp', [join(pkgDist, f), out]), `cp ${f}`);

    const gw = await startGateway();
    t.after(() => gw.close());
    const token = await gw.mintToken({ kind: 'service', sub: 'svc-esbuild' });
    const site = await serveStatic(out);
    t.after(() => site.close());
    const { page, errors, wasmResponses } = await chromiumPage(t);
    await page.goto(`${site.url}/index.html?${new URLSearchParams({ gateway: gw.url, token, neuronId: 'esbuild-page', schema: '1' })}`);
    await page.waitForFunction(() => document.querySelector('#state')?.textContent === 'registered', null, { timeout: 15_000 })
      .catch(async (err) => { throw new Error(`${err.message}; state ${await page.textContent('#state')}; page errors: ${JSON.stringify(errors)}`); });
    assert.deepEqual(wasmResponses.sort(), ['200 /neuron-core.wasm', '200 /neuron-schema.wasm']);
    const input = { hello: 'esbuild' };
    const taskId = await enqueue(gw, { type: 'core/vite.echo', input });
    const task = await waitFor(async () => {
      const x = await taskOf(gw, taskId);
      return x.state !== 'pending' && x.state !== 'leased' && x;
    }, 10_000, 'esbuild task ended');
    assert.deepEqual(task.output, { echo: input });
    await checkSchemaTasks(gw, 'core/vite.checked');
    assert.deepEqual(errors, []);
  });

  test('a Vite build whose page runs the package in a module Web Worker (no DOM globals) gets a task acked', { timeout: 180_000 }, async (t) => {
    const app = join(proj, 'worker-app');
    check(await run('mkdir', ['-p', app]), 'mkdir worker-app');
    writeFileSync(join(app, 'index.html'), `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>vite + neuron-sdk in a worker</title></head>
<body>
  <p>state: <output id="state">loading</output></p>
  <p>worker globals: <output id="globals"></output></p>
  <p>acked: <output id="acked">0</output></p>
  <ul id="done"></ul>
  <ol id="log"></ol>
  <script type="module" src="./main.js"></script>
</body>
</html>
`);
    // The page owns the DOM; the worker owns the Neuron and reports back by postMessage.
    writeFileSync(join(app, 'main.js'), `const params = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);
const log = (line) => { const li = document.createElement('li'); li.textContent = line; $('log').append(li); };

const worker = new Worker(new URL('./neuron-worker.js', import.meta.url), { type: 'module' });
worker.addEventListener('message', ({ data }) => {
  log(JSON.stringify(data));
  switch (data.type) {
    case 'ready': // the worker's imports (the package and its wasm) are done: hand it the connection
      $('globals').textContent = JSON.stringify(data.globals);
      $('state').textContent = 'starting';
      worker.postMessage({ gatewayUrl: params.get('gateway'), token: params.get('token'), neuronId: params.get('neuronId') });
      break;
    case 'registered': $('state').textContent = 'registered'; break;
    case 'task': {
      const li = document.createElement('li');
      li.dataset.taskId = data.taskId;
      li.textContent = data.taskId;
      $('done').append(li);
      break;
    }
    case 'acked': $('acked').textContent = String(data.acked); break;
    case 'error':
      $('state').textContent = 'error: ' + data.message;
      console.error('neuron worker: ' + data.message);
      break;
  }
});
worker.addEventListener('error', (e) => {
  $('state').textContent = 'worker error: ' + (e.message || 'the worker script failed to load');
  console.error('worker error event: ' + (e.message || 'the worker script failed to load'));
});
worker.addEventListener('messageerror', () => console.error('worker messageerror'));
`);
    writeFileSync(join(app, 'neuron-worker.js'), `import { Neuron } from '@holokai/neuron-sdk';

const post = (type, data = {}) => self.postMessage({ type, ...data });
self.addEventListener('unhandledrejection', (e) => post('error', { message: 'unhandledrejection: ' + (e.reason?.message ?? e.reason) }));

self.addEventListener('message', async ({ data: { gatewayUrl, token, neuronId } }) => {
  const neuron = new Neuron({ gatewayUrl, neuronId, auth: () => token });
  neuron.handle({ type: 'core/worker.echo', scope: 'any', concurrency: 1 }, async (input, ctx) => {
    post('task', { taskId: ctx.task.taskId });
    return { echo: input, inWorker: typeof WorkerGlobalScope === 'function' && self instanceof WorkerGlobalScope };
  });
  // A raw JSON Schema: the worker loads the schema module as well.
  neuron.handle({
    type: 'core/worker.checked', scope: 'any', concurrency: 1,
    inputSchema: { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } },
  }, async (input) => ({ doubled: input.n * 2 }));
  neuron.on('connection:registered', (info) => post('registered', { sessionId: info.sessionId }));
  neuron.on('error', (err) => post('error', { message: err.message }));
  let acked = 0;
  setInterval(() => {
    const n = neuron.stats()?.leasesAcked ?? 0;
    if (n !== acked) post('acked', { acked: (acked = n) });
  }, 25);
  await neuron.start();
}, { once: true });

// Reached only after the package's top-level await (the wasm core) settled.
post('ready', { globals: { window: typeof window, document: typeof document, WorkerGlobalScope: typeof WorkerGlobalScope } });
`);
    // What a Vite user has to add for this: workers are bundled as 'iife' by
    // default, which cannot hold the package's top-level await (rolldown:
    // INVALID_TLA_FORMAT); a { type: 'module' } worker takes format 'es'.
    writeFileSync(join(app, 'vite.config.js'), `export default { worker: { format: 'es' } };\n`);
    const built = check(await run('npx', ['--no-install', 'vite', 'build', app], { cwd: proj, timeout: 120_000 }), 'npx vite build (worker app)');
    t.diagnostic(built.stdout.trim().split('\n').filter((l) => l.includes('dist/')).join(' ; '));
    const dist = join(app, 'dist');
    const assets = readdirSync(join(dist, 'assets'));
    const [wasm, schemaWasm] = wasmAssets(assets);
    const workerChunk = assets.filter((f) => /^neuron-worker-.*\.js$/.test(f));
    assert.equal(workerChunk.length, 1, `one neuron-worker-*.js chunk expected in ${assets.join(', ')}`);
    for (const file of [wasm, schemaWasm]) {
      assert.match(readFileSync(join(dist, 'assets', workerChunk[0]), 'utf8'), new RegExp(`new URL\\([^)]*${file.replace(/[.]/g, '\\.')}[^)]*import\\.meta\\.url`),
        `the worker chunk locates ${file} with new URL(..., import.meta.url)`);
    }

    const gw = await startGateway();
    t.after(() => gw.close());
    const token = await gw.mintToken({ kind: 'service', sub: 'svc-vite-worker' });
    const site = await serveStatic(dist);
    t.after(() => site.close());
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    t.after(() => browser.close());
    const page = await browser.newPage();
    /** @type {string[]} */
    const errors = [];
    /** @type {string[]} */
    const workers = [];
    page.on('console', (msg) => { if (msg.type() === 'error' && !msg.worker()) errors.push(`console: ${msg.text()}`); });
    page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
    page.on('worker', (w) => {
      workers.push(new URL(w.url()).pathname);
      w.on('console', (msg) => { if (msg.type() === 'error' || msg.type() === 'warning') errors.push(`worker console ${msg.type()}: ${msg.text()}`); });
    });
    /** @type {string[]} */
    const wasmResponses = [];
    page.on('response', (res) => { if (res.url().endsWith('.wasm')) wasmResponses.push(`${res.status()} ${new URL(res.url()).pathname}`); });
    const state = async () => `state ${await page.textContent('#state')}; log ${JSON.stringify(await page.locator('#log li').allTextContents())}; errors ${JSON.stringify(errors)}`;

    const started = Date.now();
    const q = new URLSearchParams({ gateway: gw.url, token, neuronId: 'vite-worker-1' });
    await page.goto(`${site.url}/index.html?${q}`);
    await page.waitForFunction(() => document.querySelector('#state')?.textContent === 'registered', null, { timeout: 10_000 })
      .catch(async (err) => { throw new Error(`${err.message}; ${await state()}`); });
    const registeredMs = Date.now() - started;
    assert.deepEqual(workers, [`/assets/${workerChunk[0]}`], 'one dedicated worker, started from the built chunk');
    assert.deepEqual(JSON.parse(await page.textContent('#globals') ?? ''), { window: 'undefined', document: 'undefined', WorkerGlobalScope: 'function' });
    assert.deepEqual(wasmResponses.sort(), [`200 /assets/${wasm}`, `200 /assets/${schemaWasm}`].sort(), 'the worker fetched both modules from the built assets');
    const neurons = (await dev(gw, 'GET', '/dev/neurons')).body.neurons;
    assert.deepEqual(neurons.map((/** @type {any} */ n) => [n.neuronId, n.capabilities.map((/** @type {any} */ c) => c.type)]), [['vite-worker-1', ['core/worker.echo', 'core/worker.checked']]]);


    const input = { hello: 'worker', n: 8 };
    const taskId = await enqueue(gw, { type: 'core/worker.echo', input });
    const task = await waitFor(async () => {
      const x = await taskOf(gw, taskId);
      return x.state !== 'pending' && x.state !== 'leased' && x;
    }, 5_000, 'worker task ended');
    assert.equal(task.state, 'done', JSON.stringify(task));
    assert.deepEqual(task.output, { echo: input, inWorker: true });
    await page.waitForFunction(() => document.querySelector('#acked')?.textContent === '1', null, { timeout: 5_000 })
      .catch(async (err) => { throw new Error(`${err.message}; ${await state()}`); });
    assert.equal(await page.locator(`#done li[data-task-id="${taskId}"]`).count(), 1);
    await checkSchemaTasks(gw, 'core/worker.checked');
    assert.deepEqual(errors, []);
    t.diagnostic(`worker neuron registered ${registeredMs} ms after goto, task acked ${Date.now() - started} ms after goto`);
  });
});

// The package's benchmark: CPU per lease through the public API in Node, plus
// size, cold start and memory. Run: `npm run bench` in web/ (or scripts/bench).
// Figures are printed with their targets (issue "WASM build and the npm
// package"); nothing here fails a test.
//
//   node --expose-gc bench/bench.js [--quick]
//
// Every lease: a no-op handler returning a small object, 64 leases
// outstanding, CPU from process.cpuUsage() (user + system) over the run.

import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { spawnSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Neuron } from '../src/index.js';

const QUICK = process.argv.includes('--quick');
const WINDOW = 64;
const N = QUICK ? 20_000 : 200_000;
const WARMUP = QUICK ? 5_000 : 20_000;

const encoder = new TextEncoder();
const INPUT = '{"code":"print(1)","args":{"a":1},"lang":"python","timeoutMs":1000,"tags":["x"]}';
const inputSchema = {
  type: 'object',
  required: ['code', 'lang'],
  properties: {
    code: { type: 'string' },
    args: { type: 'object' },
    lang: { type: 'string', enum: ['python', 'node'] },
    timeoutMs: { type: 'integer', minimum: 1 },
    tags: { type: 'array', items: { type: 'string' } },
  },
};
const outputSchema = { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' }, n: { type: 'integer' } } };

/** @param {number} i */
const leaseJson = (i) =>
  `{"type":"lease","leaseId":"l-${i}","expiresAt":"2026-01-01T00:00:30.000Z","task":{"taskId":"t-${i}","type":"core/bench","input":${INPUT},"attempt":1,"createdAt":"2026-01-01T00:00:00.000Z"}}`;

/** CPU microseconds used while `fn` runs `leases` leases. @param {() => Promise<void>} fn */
async function cpuOf(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { cpuUs: c.user + c.system, wallMs: performance.now() - t0 };
}

/**
 * A fetch that plays a gateway from memory: the SSE stream hands out lease
 * events whenever fewer than WINDOW are outstanding, and every POST answers
 * 200 at once (plain Response-shaped objects: the mock should cost little).
 */
function memoryGateway() {
  let issued = 0;
  let acked = 0;
  /** @type {(() => void) | null} */
  let wake = null;
  let target = 0;
  /** @type {(() => void) | null} */
  let reached = null;
  /** @type {ReadableStreamDefaultController<Uint8Array> | null} */
  let ctrl = null;
  const ok = { status: 200, text: () => Promise.resolve('') };
  const okJson = { status: 200, text: () => Promise.resolve('{}') };
  const stream = new ReadableStream({
    start(c) { ctrl = c; },
    pull(c) {
      return new Promise((resolve) => {
        const fill = () => {
          let chunk = '';
          while (issued < target && issued - acked < WINDOW) chunk += `data: ${leaseJson(issued++)}\n\n`;
          if (chunk) {
            c.enqueue(encoder.encode(chunk));
            resolve();
          } else {
            wake = fill;
          }
        };
        fill();
      });
    },
  }, { highWaterMark: 0 });
  /** @type {typeof fetch} */
  const fetchMock = async (url, init) => {
    const path = new URL(String(url)).pathname;
    if (path === '/neuron/events') {
      return /** @type {any} */ ({ status: 200, headers: { get: () => 'text/event-stream' }, body: stream });
    }
    if (path === '/neuron/register') {
      queueMicrotask(() => ctrl?.enqueue(encoder.encode('data: {"type":"registered","sessionId":"s-bench","capabilities":[]}\n\n')));
      return /** @type {any} */ (okJson);
    }
    if (path === '/neuron/ack' || path === '/neuron/nack') {
      acked++;
      if (acked === target && reached) reached();
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    }
    return /** @type {any} */ (path === '/neuron/heartbeat' ? okJson : ok);
  };
  return {
    fetch: fetchMock,
    /** Run until `n` more leases are acked. @param {number} n */
    run(n) {
      target += n;
      return new Promise((resolve) => {
        reached = () => resolve(undefined);
        if (wake) {
          const w = wake;
          wake = null;
          w();
        }
      });
    },
  };
}

/** @param {boolean} schemas */
async function bytePath(schemas) {
  const gw = memoryGateway();
  const n = new Neuron({ neuronId: 'bench', gatewayUrl: 'http://gateway.bench', auth: () => 'token', fetch: gw.fetch, heartbeatIntervalMs: 10_000 });
  n.handle({ type: 'core/bench', scope: 'any', concurrency: WINDOW, ...(schemas ? { inputSchema, outputSchema } : {}) }, () => ({ ok: true, n: 1 }));
  await n.start();
  await gw.run(WARMUP);
  const r = await cpuOf(() => gw.run(N));
  await n.stop();
  return r;
}

/** A custom in-process Transport handing frame objects to onFrame. */
/**
 * @param {number} [leases] @param {number} [warmup]
 * @param {{ at: number, then: () => void }[]} [checkpoints] run to `at` leases acked (none in flight), call `then`, go on
 */
async function customTransport(leases = N, warmup = WARMUP, checkpoints = []) {
  /** @type {any} */
  let cb = {};
  let issued = 0;
  let acked = 0;
  let target = 0;
  /** @type {(() => void) | null} */
  let reached = null;
  const input = JSON.parse(INPUT);
  const lease = (/** @type {number} */ i) => ({
    type: 'lease', leaseId: `l-${i}`, expiresAt: '2026-01-01T00:00:30.000Z',
    task: { taskId: `t-${i}`, type: 'core/bench', input, attempt: 1, createdAt: '2026-01-01T00:00:00.000Z' },
  });
  const feed = () => {
    while (issued < target && issued - acked < WINDOW) cb.onFrame(lease(issued++));
  };
  const transport = {
    subscribe(/** @type {any} */ c) { cb = c; },
    async start() { queueMicrotask(() => cb.onOpen()); },
    async stop() {},
    isConnected: () => true,
    async post(/** @type {string} */ path) {
      if (path === '/neuron/register') queueMicrotask(() => cb.onFrame({ type: 'registered', sessionId: 's', capabilities: [] }));
      if (path === '/neuron/ack') {
        acked++;
        if (acked === target && reached) reached();
        else queueMicrotask(feed);
      }
      return undefined;
    },
  };
  const n = new Neuron({ neuronId: 'bench', transport });
  n.handle({ type: 'core/bench', scope: 'any', concurrency: WINDOW }, () => ({ ok: true, n: 1 }));
  await n.start();
  const run = (/** @type {number} */ k) => new Promise((resolve) => {
    target += k;
    reached = () => resolve(undefined);
    feed();
  });
  if (warmup) await run(warmup);
  if (checkpoints.length) {
    let done = 0;
    for (const c of checkpoints) {
      await run(c.at - done);
      done = c.at;
      c.then();
    }
  }
  const r = checkpoints.length ? { cpuUs: 0, wallMs: 0 } : await cpuOf(() => run(leases));
  await n.stop();
  return r;
}

/** Loopback HTTP against the dev gateway in its own process. */
async function loopback() {
  const tester = fileURLToPath(new URL('../../tester-ui/', import.meta.url));
  const secret = 'bench-secret';
  // Port 0: the system picks a free one and the gateway prints its URL (a
  // random port of our own choosing collided once with a socket in use).
  const gwProc = spawn(process.execPath, ['gateway/cli.js', 'serve', '--port', '0', '--secret', secret, '--data', ':memory:'], {
    cwd: tester, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  gwProc.stderr.on('data', (d) => { stderr += d; });
  gwProc.stdout.on('data', (d) => { if (stdout.length < 65_536) stdout += d; });  // read on: its log must not fill the pipe
  let exited = false;
  gwProc.on('exit', () => { exited = true; });
  try {
    // Up to 20 s: a cold start on a busy machine (module loading, SQLite).
    let url = '';
    for (let i = 0; ; i++) {
      url ||= /GATEWAY_URL=(\S+)/.exec(stdout)?.[1] ?? '';
      if (url && (await fetch(`${url}/healthz`).then((res) => res.ok, () => false))) break;
      if (exited || i > 400) throw new Error(`the dev gateway did not start${exited ? ' (it exited)' : ''}: ${stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const { mintToken } = await import('../../tester-ui/gateway/auth.js');
    const token = await mintToken(secret, { kind: 'service', sub: 'bench' });
    const total = QUICK ? 1000 : 5000;
    /** @type {Map<string, number>} */
    const leasedAt = new Map();
    /** @type {number[]} */
    const latencies = [];
    let done = 0;
    /** @type {() => void} */
    let finished = () => {};
    const allDone = new Promise((r) => { finished = () => r(undefined); });
    /** @type {typeof fetch} */
    const timedFetch = async (input, init) => {
      const res = await fetch(input, init);
      if (init?.method === 'POST' && String(input).endsWith('/neuron/ack')) {
        const id = JSON.parse(String(init.body)).leaseId;
        const t = leasedAt.get(id);
        if (t !== undefined) latencies.push(performance.now() - t);
        if (++done === total) finished();
      }
      return res;
    };
    // Enqueue everything first, so the measured window holds only the
    // neuron's work: the gateway hands out 64 leases at a time.
    const input = JSON.parse(INPUT);
    for (let i = 0; i < total; i += 50) {
      await Promise.all(Array.from({ length: Math.min(50, total - i) }, () => fetch(`${url}/dev/tasks`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'core/bench', input }),
      })));
    }
    const n = new Neuron({ neuronId: 'bench-http', gatewayUrl: url, auth: () => token, fetch: timedFetch });
    n.on('frame', (f) => { if (f.type === 'lease') leasedAt.set(f.leaseId, performance.now()); });
    n.handle({ type: 'core/bench', scope: 'any', concurrency: WINDOW }, () => ({ ok: true, n: 1 }));
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await n.start();
    await allDone;
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    await n.stop();
    latencies.sort((a, b) => a - b);
    const q = (/** @type {number} */ p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
    return { total, leasesPerSec: total / (wallMs / 1000), p50: q(0.5), p99: q(0.99), cpuPerLeaseUs: (c.user + c.system) / total };
  } finally {
    gwProc.kill();
  }
}

function sizes() {
  const wasm = readFileSync(new URL('../dist/neuron-core.wasm', import.meta.url));
  const glue = readFileSync(new URL('../dist/neuron-core.mjs', import.meta.url));
  return { wasm: wasm.length, glue: glue.length, gz: gzipSync(wasm, { level: 9 }).length + gzipSync(glue, { level: 9 }).length };
}

function coldStart() {
  const entry = new URL('../src/index.js', import.meta.url).href;
  const runs = QUICK ? 5 : 15;
  const time = (/** @type {string} */ code) => {
    /** @type {number[]} */
    const t = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`cold start run failed: ${code}`);
      t.push(performance.now() - t0);
    }
    t.sort((a, b) => a - b);
    return t[Math.floor(t.length / 2)];
  };
  const empty = time('');
  const withSdk = time(`const { Neuron } = await import(${JSON.stringify(entry)}); new Neuron({ neuronId: 'x', gatewayUrl: 'http://x', auth: () => 't' });`);
  return { emptyMs: empty, sdkMs: withSdk, extraMs: withSdk - empty };
}

async function memory() {
  const gc = /** @type {any} */ (globalThis).gc;
  if (typeof gc !== 'function') return null;
  const total = QUICK ? 100_000 : 1_000_000;
  /** @type {Record<number, number>} */
  const at = {};
  const measure = () => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  const before = measure(); // this process with the SDK loaded, before any neuron
  // Measured between runs: every lease acked, none in flight.
  await customTransport(total, 0, [10_000, total].map((n) => ({ at: n, then: () => { at[n] = measure(); } })));
  const { getCore } = await import('../src/core.js');
  return { before, after10k: at[10_000], afterAll: at[total], total, wasmMemory: getCore().HEAPU8.length };
}

const f = (/** @type {number} */ x, d = 2) => x.toFixed(d);
const mark = (/** @type {boolean} */ ok) => (ok ? 'met' : 'MISSED');

const out = [];
const plain = await bytePath(false);
const schema = await bytePath(true);
const custom = await customTransport();
const perLease = (/** @type {{ cpuUs: number }} */ r) => r.cpuUs / N;
out.push(`byte path (injected fetch, SSE from memory), ${N} leases, window ${WINDOW}:`);
out.push(`  no schema:                 ${f(perLease(plain))} us CPU/lease (target <= 4)  ${mark(perLease(plain) <= 4)}   ${f(N / (plain.wallMs / 1000), 0)} leases/s`);
out.push(`  5-prop input + output schema: ${f(perLease(schema))} us CPU/lease (target <= 4)  ${mark(perLease(schema) <= 4)}   ${f(N / (schema.wallMs / 1000), 0)} leases/s`);
out.push(`custom Transport (frame objects): ${f(perLease(custom))} us CPU/lease (target <= 3)  ${mark(perLease(custom) <= 3)}`);
const s = sizes();
out.push(`size: wasm ${s.wasm} B + glue ${s.glue} B = ${f(s.gz / 1024, 1)} KiB gzipped (target <= 100, aim 80)  ${mark(s.gz <= 100 * 1024)}`);
const cs = coldStart();
out.push(`cold start: import -> new Neuron ${f(cs.sdkMs, 1)} ms vs empty node ${f(cs.emptyMs, 1)} ms: +${f(cs.extraMs, 1)} ms (target <= 30)  ${mark(cs.extraMs <= 30)}`);
const mem = await memory();
if (mem) {
  const mib = (/** @type {number} */ b) => f(b / 1048576, 2);
  out.push(`memory (heap + external, after gc): ${mib(mem.before)} MiB before any neuron (Node + SDK loaded; wasm memory ${mib(mem.wasmMemory)} MiB), ${mib(mem.after10k)} MiB after 10 000 leases, ${mib(mem.afterAll)} MiB after ${mem.total}: drift ${f((mem.afterAll - mem.after10k) / 1024, 1)} KiB (target <= 0)  ${mark(mem.afterAll <= mem.after10k)}; under 10 MiB: ${mark(mem.afterAll < 10 * 1048576)}`);
} else {
  out.push('memory: run with node --expose-gc to measure');
}
const lb = await loopback();
out.push(`loopback HTTP vs the dev gateway (its own process, ${lb.total} tasks queued first, window ${WINDOW}): ${f(lb.leasesPerSec, 0)} leases/s, lease frame -> ack answered p50 ${f(lb.p50)} ms p99 ${f(lb.p99)} ms, neuron CPU ${f(lb.cpuPerLeaseUs, 1)} us/lease`);
console.log(out.join('\n'));

// The neuron under attack, in a process of its own (spawned by
// neuron-process.js): the package as a user imports it, talking to the
// hostile gateway over real HTTP. It reports to the parent over IPC: the
// neuron's events, and on request its memory (process.memoryUsage(), peak RSS)
// and open file descriptors, also their peaks between requests.
//
// argv[2] is the JSON config:
//   { gatewayUrl, neuronId?, options?: extra NeuronOptions,
//     capabilities: [{ type, concurrency, behaviour? }] }
// behaviour: 'echo' (default: returns { echo: input }, or { bytes } for a big
// input), 'gate' (every handler waits until 3 s after the first one started,
// then all return at once), 'until-abort' (returns only when ctx.signal fires).

import fs from 'node:fs';
import { Neuron } from '../../../src/index.js';

const cfg = JSON.parse(process.argv[2]);
const send = (/** @type {any} */ msg) => {
  if (process.connected) process.send?.(msg);
};

const neuron = new Neuron({
  neuronId: cfg.neuronId ?? 'hostile-neuron',
  gatewayUrl: cfg.gatewayUrl,
  auth: () => 'hostile-token',
  ...cfg.options,
});

const MAX_FORWARDED_ERRORS = 500;
let errorsTotal = 0;
neuron.on('error', (/** @type {any} */ err) => {
  errorsTotal++;
  if (errorsTotal <= MAX_FORWARDED_ERRORS) {
    send({ type: 'error', code: err?.code ?? '', name: err?.name ?? '', message: String(err?.message ?? err).slice(0, 400) });
  }
});
for (const name of ['connection:open', 'connection:registered', 'connection:close', 'connection:reconnecting']) {
  neuron.on(name, (/** @type {any} */ payload) => send({ type: name, payload }));
}

// Handler calls per lease id: a lease whose handler runs twice is a bug.
/** @type {Map<string, number>} */
const calls = new Map();
let duplicateCalls = 0;
/** @type {Promise<void> | null} */
let gate = null;

/** @param {string} behaviour */
function handlerFor(behaviour) {
  return async (/** @type {any} */ input, /** @type {any} */ ctx) => {
    const n = (calls.get(ctx.leaseId) ?? 0) + 1;
    calls.set(ctx.leaseId, n);
    if (n > 1) duplicateCalls++;
    if (behaviour === 'gate') {
      gate ??= new Promise((resolve) => setTimeout(resolve, cfg.gateMs ?? 3_000));
      await gate;
      return { ok: true };
    }
    if (behaviour === 'until-abort') {
      const signal = ctx.signal;
      await new Promise((resolve) => {
        if (signal.aborted) resolve(undefined);
        else signal.addEventListener('abort', () => resolve(undefined), { once: true });
      });
      send({ type: 'aborted', leaseId: ctx.leaseId, reason: signal.reason?.message ?? String(signal.reason) });
      return { aborted: true };
    }
    const text = JSON.stringify(input) ?? '';
    return text.length <= 4096 ? { echo: input } : { bytes: text.length };
  };
}

for (const c of cfg.capabilities ?? [{ type: 'hostile/echo', concurrency: 4 }]) {
  neuron.handle({ type: c.type, scope: 'any', concurrency: c.concurrency }, handlerFor(c.behaviour ?? 'echo'));
}

const openFds = () => fs.readdirSync('/proc/self/fd').length;
let peakHeapExternal = 0;
let peakFds = 0;
let peakRssSampled = 0;
/** @type {NodeJS.MemoryUsage} */
let lastMemory = process.memoryUsage();
// Measuring needs a file descriptor too (memoryUsage reads /proc/self/stat):
// out of descriptors (EMFILE) a measurement is skipped, so what the test sees
// is the package's behaviour, not the sampler's.
function observe() {
  try {
    lastMemory = process.memoryUsage();
  } catch {
    /* keep the last one */
  }
  const m = lastMemory;
  peakHeapExternal = Math.max(peakHeapExternal, m.heapUsed + m.external);
  peakRssSampled = Math.max(peakRssSampled, m.rss);
  try {
    peakFds = Math.max(peakFds, openFds());
  } catch {
    /* EMFILE while listing: the peak is what it was */
  }
  return m;
}
setInterval(observe, cfg.sampleEveryMs ?? 20).unref();

/** @param {{ gc?: boolean, reset?: boolean }} opts */
function sample(opts) {
  if (opts.gc && typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
  const m = observe();
  let fds = -1;
  try {
    fds = openFds();
  } catch {
    /* reported as -1 */
  }
  const out = {
    rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers,
    heapExternal: m.heapUsed + m.external, fds,
    maxRss: process.resourceUsage().maxRSS * 1024, // the kernel's high-water mark, since the process started
    peakRss: peakRssSampled, peakHeapExternal, peakFds,
    handlerCalls: [...calls.values()].reduce((a, b) => a + b, 0), duplicateCalls, errorsTotal,
    stats: neuron.stats(),
  };
  if (opts.reset) {
    peakHeapExternal = out.heapExternal;
    peakRssSampled = out.rss;
    peakFds = fds;
  }
  return out;
}

process.on('message', async (/** @type {any} */ msg) => {
  if (msg.cmd === 'sample') send({ type: 'reply', id: msg.id, value: sample(msg) });
  if (msg.cmd === 'stop') {
    const t0 = performance.now();
    await neuron.stop(msg.opts);
    send({ type: 'reply', id: msg.id, value: { stopMs: performance.now() - t0, ...sample({}) } });
    // Nothing of ours is left: the process must now exit on its own (rule 12).
    process.disconnect();
  }
});

neuron.start().then(
  () => send({ type: 'started' }),
  (/** @type {any} */ err) => send({ type: 'start-failed', message: String(err?.message ?? err) }),
);

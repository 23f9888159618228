// Parent side of neuron-child.js: spawns the neuron in its own `node`
// process (so a crash, an EMFILE or a runaway heap takes down only that
// process, and its memory and file descriptors can be measured alone), and
// collects what it reports.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { HostileGateway, MiB } from './gateway.js';

const CHILD = fileURLToPath(new URL('./neuron-child.js', import.meta.url));

/**
 * @typedef {{ rss: number, heapUsed: number, external: number, arrayBuffers: number, heapExternal: number,
 *   fds: number, maxRss: number, peakRss: number, peakHeapExternal: number, peakFds: number,
 *   handlerCalls: number, duplicateCalls: number, errorsTotal: number, stats: any }} Sample
 */

export class NeuronProcess {
  /**
   * @param {object} cfg see neuron-child.js
   * @param {{ fdLimit?: number }} [opts] fdLimit: the child's soft limit on open
   *   file descriptors (`ulimit -n`), so running out of them does not depend
   *   on the machine's setting
   */
  constructor(cfg, opts = {}) {
    /** @type {any[]} everything the child reported, in order */
    this.events = [];
    /** @type {Map<number, (v: any) => void>} */
    this.replies = new Map();
    this.nextId = 1;
    /** the child's stdout and stderr (the tail), for failure messages */
    this.output = '';
    /** @type {{ code: number | null, signal: string | null } | null} */
    this.exit = null;
    const node = [process.execPath, '--expose-gc', CHILD, JSON.stringify(cfg)];
    // exec keeps the IPC descriptor (NODE_CHANNEL_FD) open for the node it starts.
    const [cmd, ...args] = opts.fdLimit ? ['/bin/sh', '-c', `ulimit -n ${opts.fdLimit} && exec "$@"`, 'sh', ...node] : node;
    // Not inherited: the test runner reads this process's stdout as TAP.
    this.child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    const keep = (/** @type {Buffer} */ d) => {
      this.output = (this.output + d).slice(-8000);
    };
    this.child.stdout?.on('data', keep);
    this.child.stderr?.on('data', keep);
    this.child.on('message', (/** @type {any} */ msg) => {
      if (msg.type === 'reply') {
        this.replies.get(msg.id)?.(msg.value);
        this.replies.delete(msg.id);
        return;
      }
      this.events.push(msg);
      this.notify();
    });
    this.exited = once(this.child, 'exit').then(([code, signal]) => {
      this.exit = { code, signal };
      this.notify();
      return this.exit;
    });
  }

  /** Called on every report and on exit (setup() wakes the gateway's waiters with it). */
  notify() {}

  /** What the child said before it died, for assertion messages. */
  describeExit() {
    if (!this.exit) return 'still running';
    return `the neuron process exited (code ${this.exit.code}, signal ${this.exit.signal}); its output:\n${this.output.slice(-3000)}`;
  }

  /** Events of one type (e.g. 'error', 'connection:reconnecting'). @param {string} type */
  of(type) {
    return this.events.filter((e) => e.type === type);
  }

  get errors() {
    return this.of('error');
  }

  /** @param {string} cmd @param {object} [args] */
  request(cmd, args = {}, timeoutMs = 20_000) {
    if (this.exit || !this.child.connected) return Promise.reject(new Error(`neuron: cannot ${cmd}: ${this.describeExit()}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`neuron: no answer to ${cmd} within ${timeoutMs} ms`)), timeoutMs);
      this.exited.then(() => reject(new Error(`neuron: no answer to ${cmd}: ${this.describeExit()}`)));
      this.replies.set(id, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.child.send({ cmd, id, ...args });
    });
  }

  /**
   * Memory and descriptors now; `gc` collects first, `reset` restarts the peaks.
   * @param {{ gc?: boolean, reset?: boolean }} [opts] @returns {Promise<Sample>}
   */
  sample(opts = {}) {
    return this.request('sample', opts);
  }

  /**
   * stop() in the child, then the child must exit by itself (no timer, socket
   * or request left behind). Resolves with the last sample and the stop time.
   * @param {{ drain?: boolean, timeoutMs?: number }} [opts]
   */
  async stop(opts = { drain: false }, exitWithinMs = 10_000) {
    const last = /** @type {Sample & { stopMs: number }} */ (await this.request('stop', { opts }, 60_000));
    const exit = await Promise.race([
      this.exited,
      new Promise((resolve) => setTimeout(() => resolve(null), exitWithinMs).unref()),
    ]);
    if (!exit) throw new Error(`neuron: stop() resolved but the process did not exit on its own within ${exitWithinMs} ms (something still holds the event loop)`);
    return last;
  }

  kill() {
    if (!this.exit) this.child.kill('SIGKILL');
  }
}

/**
 * A hostile gateway and a neuron process registered on it; `close()` ends
 * both. `until(cond, what)` waits for a condition on either side (checked on
 * every POST, stream and report) and fails at once if the neuron dies.
 * @param {{ gateway?: ConstructorParameters<typeof HostileGateway>[0],
 *           neuron?: { options?: object, capabilities?: object[], gateMs?: number, neuronId?: string },
 *           fdLimit?: number }} [opts]
 */
export async function setup(opts = {}) {
  const gw = new HostileGateway(opts.gateway);
  const gatewayUrl = await gw.listen();
  const neuron = new NeuronProcess({ gatewayUrl, ...opts.neuron }, { fdLimit: opts.fdLimit });
  neuron.notify = () => gw.notify();
  const close = async () => {
    neuron.kill();
    await neuron.exited;
    await gw.close();
  };
  /** @param {() => boolean} cond @param {string} what @param {number} [timeoutMs] */
  const until = (cond, what, timeoutMs) => gw.until(() => {
    if (neuron.exit) throw new Error(`waiting for ${what}, but ${neuron.describeExit()}`);
    return cond();
  }, what, timeoutMs);
  try {
    await until(() => neuron.of('started').length > 0, 'start() to resolve (registered)');
  } catch (err) {
    await close();
    throw err;
  }
  return { gw, neuron, until, close };
}

/** Megabytes, for messages and diagnostics. @param {number} bytes */
export const mb = (bytes) => `${(bytes / MiB).toFixed(1)} MiB`;

/** One line of figures for the test's diagnostics. @param {Sample} s */
export function figures(s) {
  return `rss ${mb(s.rss)} (peak ${mb(s.maxRss)}), heapUsed+external ${mb(s.heapExternal)} (peak ${mb(s.peakHeapExternal)}), fds ${s.fds} (peak ${s.peakFds})`;
}

/**
 * @typedef {Awaited<ReturnType<typeof setup>>} Setup
 * @typedef {{ before: Sample, after: Sample, last: Sample & { stopMs: number }, ms: number,
 *   gw: HostileGateway, neuron: NeuronProcess, leaseId: string }} AttackResult
 */

/**
 * One attack against a fresh neuron process, then a valid lease on the same
 * stream that must be acked; the neuron is then stopped and must exit by
 * itself. Memory is sampled before (after a GC) and after (after a GC, with
 * the peaks in between).
 * @param {(s: Setup) => Promise<void>} attack
 * @param {Parameters<typeof setup>[0] & { leaseId?: string, timeoutMs?: number }} [opts]
 * @returns {Promise<AttackResult>}
 */
export async function attackThenLease(attack, opts = {}) {
  const s = await setup(opts);
  const leaseId = opts.leaseId ?? 'after-the-attack';
  try {
    const before = await s.neuron.sample({ gc: true, reset: true });
    const t0 = performance.now();
    await attack(s);
    await s.gw.lease(leaseId);
    await s.until(() => s.gw.terminal(leaseId).length > 0, `the ack of ${leaseId}, the lease after the attack`, opts.timeoutMs ?? 30_000);
    const ms = performance.now() - t0;
    const after = await s.neuron.sample({ gc: true });
    const last = await s.neuron.stop();
    return { before, after, last, ms, gw: s.gw, neuron: s.neuron, leaseId };
  } finally {
    await s.close();
  }
}

/**
 * What every attack must end with: the lease after it acked exactly once, no
 * handler run twice, every POST valid UTF-8 JSON, the process alive until
 * stop() and gone by itself after, the stream never reopened (unless
 * `streams` says otherwise), and exactly the `error` events listed (codes).
 * @param {AttackResult} r @param {{ errors?: string[], streams?: number }} expect
 */
export function assertSurvived(r, expect = {}) {
  const { gw, neuron, leaseId } = r;
  const verdicts = gw.terminal(leaseId);
  assert.equal(verdicts.length, 1, `the lease after the attack got ${verdicts.length} ack/nack frames: ${JSON.stringify(verdicts).slice(0, 300)}`);
  assert.equal(verdicts[0].type, 'ack', `the lease after the attack was not acked: ${JSON.stringify(verdicts[0]).slice(0, 300)}`);
  assert.equal(r.last.duplicateCalls, 0, 'a handler ran twice for the same lease');
  for (const [id, list] of gw.terminals) assert.equal(list.length, 1, `lease ${id} got ${list.length} ack/nack frames`);
  assert.deepEqual(gw.posts.filter((p) => p.invalidUtf8).map((p) => p.path), [], 'POST bodies that are not valid UTF-8');
  assert.deepEqual(neuron.exit, { code: 0, signal: null }, neuron.describeExit());
  assert.equal(gw.streams.length, expect.streams ?? 1, `streams opened: ${gw.streams.length} (reconnects: ${JSON.stringify(neuron.of('connection:reconnecting').map((e) => e.payload))})`);
  if (expect.errors) {
    assert.deepEqual(neuron.errors.map((e) => e.code), expect.errors, `error events: ${JSON.stringify(neuron.errors).slice(0, 600)}`);
  }
}

/**
 * The same attack at two sizes must cost the same memory, within a fixed
 * slack (never in proportion to the size): the kernel's peak RSS, the peak of
 * heapUsed + external, and what is left after a GC. The peaks move by up to
 * ~20 MiB between runs of the same attack (stream chunks waiting for a GC);
 * a 64 MiB -> 1 GiB attack that kept even 5 % of its bytes would exceed the
 * 48 MiB slack. What a GC leaves is stable to 0.1 MiB.
 * @param {AttackResult} small @param {AttackResult} large
 * @param {{ rss?: number, peak?: number, retained?: number }} [slack]
 */
export function assertSizeIndependent(small, large, slack = {}) {
  const { rss = 48 * MiB, peak = 48 * MiB, retained = 8 * MiB } = slack;
  const grew = (/** @type {number} */ a, /** @type {number} */ b) => `${mb(a)} -> ${mb(b)}`;
  assert.ok(large.after.maxRss - small.after.maxRss <= rss, `peak RSS grew with the attack's size: ${grew(small.after.maxRss, large.after.maxRss)}`);
  assert.ok(large.after.peakHeapExternal - small.after.peakHeapExternal <= peak,
    `peak heapUsed + external grew with the attack's size: ${grew(small.after.peakHeapExternal, large.after.peakHeapExternal)}`);
  assert.ok(large.after.heapExternal - small.after.heapExternal <= retained,
    `heapUsed + external left after a GC grew with the attack's size: ${grew(small.after.heapExternal, large.after.heapExternal)}`);
}

/**
 * The figures of one run, for the test's diagnostics (the report quotes them).
 * @param {string} label @param {AttackResult} r
 */
export function report(label, r) {
  return `${label}: ${(r.ms / 1000).toFixed(2)} s; before ${figures(r.before)}; after ${figures(r.after)}`;
}

/**
 * Runs the same attack at a small and a large size, each against a fresh
 * neuron process, logs their figures and returns [small, large].
 * @param {{ diagnostic(msg: string): void }} t
 * @param {[string, number][]} sizes [label, size] twice
 * @param {(size: number) => Promise<AttackResult>} run
 */
export async function atTwoSizes(t, sizes, run) {
  /** @type {AttackResult[]} */
  const results = [];
  for (const [label, size] of sizes) {
    const r = await run(size);
    t.diagnostic(report(label, r));
    results.push(r);
  }
  return results;
}

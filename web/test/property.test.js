// Property-based tests of the JS half (web/src: the Neuron host, both
// carriers, the tape player, the clock), through the public API only.
//
// fast-check generates gateway scripts (leases, duplicate and malformed ones,
// bursts of frames in one chunk, cancels, revocations, lost-lease answers,
// stream drops, POST answers 200 / 401 / 403 / 409 / 429 / 503 / 400 /
// network error / none, with delays; slow, failing, hanging or
// signal-ignoring handlers and handlers that call stop() themselves;
// updateCapability; stop() with and without drain at any point) and
// support/property-harness.js runs each one against a Neuron on a custom
// Transport, on the package's IpcTransport over a scripted bridge, and on the
// byte path (an injected fetch serving SSE bytes from a ReadableStream), then
// checks the run against a model of PROTOCOL.md section 3. What every run
// must show:
//   - exactly one terminal frame (ack or nack, retried only as 1.1 allows,
//     the same frame each time) per accepted lease, none for leases dropped on
//     connection loss or lost, and the verdict the rules give (rules 2-9, 12);
//   - heartbeats list exactly the running leases, only while registered;
//   - no handler starts on a lease that is not waiting to run (FIFO, within
//     its capability's concurrency); no progress reaches the gateway after
//     its lease's verdict; ctx.signal fires, with the documented reason, for
//     cancelled, revoked, stopped and lost leases, and only for them;
//   - stop() keeps its drain, settles by its deadline and soon after its last
//     lease ended; nothing is posted after it resolved;
//   - no unhandled rejection, no uncaught exception, no exception thrown into
//     the transport's code, no frame left unread on an open stream;
//   - no timer, stream or pending request left once stop() resolved, and a
//     Node process running a script exits by itself.
//
// Runs: each property has a run count and a time box (a slow machine runs
// fewer scripts; a failing property stops shrinking at the box). For a long
// run: PROPERTY_RUNS=2000 node --test test/property.test.js (no time box).
// PROPERTY_SEED / PROPERTY_PATH replay a reported failure.
// A failure prints the violations and the (shrunk) script: paste it into
// test/property-regressions.test.js.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { runScript, settleAbandoned } from './support/property-harness.js';
import { script, runs } from './support/property-scripts.js';

const long = Number(process.env.PROPERTY_RUNS) > 0;
/**
 * fast-check parameters: `quick` runs by default, within `limitMs` (which
 * also keeps a failing property's shrinking from taking the suite hostage);
 * the long mode has no limit.
 * @param {number} quick @param {number} limitMs
 * @returns {import('fast-check').Parameters<unknown>}
 */
function params(quick, limitMs) {
  /** @type {any} */
  const p = { numRuns: runs(quick), includeErrorInReport: true };
  if (process.env.PROPERTY_SEED) p.seed = Number(process.env.PROPERTY_SEED);
  if (process.env.PROPERTY_PATH) p.path = process.env.PROPERTY_PATH;
  if (!long) p.interruptAfterTimeLimit = limitMs;
  return p;
}

/**
 * fc.assert, then the wait for any run its time limit gave up on (see
 * settleAbandoned): the next test starts with no neuron of this one running,
 * and what such a run found fails the test as any run's would (after
 * fc.assert's own failure, if there is one).
 * @param {any} property @param {import('fast-check').Parameters<unknown>} p
 */
async function assertThenSettle(property, p) {
  let failure = null;
  try {
    await fc.assert(property, p);
  } catch (err) {
    failure = err;
  }
  const abandoned = await settleAbandoned();
  if (failure) throw failure;
  assert.deepEqual(abandoned, [], 'violations of a run the time limit gave up on');
}

/**
 * The property: the script's run shows no violation.
 * @param {'transport' | 'ipc' | 'bytes'} carrier @param {any} s
 */
async function holds(carrier, s) {
  const r = await runScript(s, { carrier });
  if (r.violations.length) {
    throw new Error(`${r.violations.length} violation(s) on the ${carrier} carrier:\n  - ${r.violations.join('\n  - ')}`);
  }
}

/** @type {Record<string, string>} */
const NAMES = { transport: 'custom Transport', ipc: 'IpcTransport (a scripted bridge)', bytes: 'byte path (gatewayUrl + auth + fetch)' };

for (const carrier of /** @type {const} */ (['transport', 'ipc', 'bytes'])) {
  test(`${NAMES[carrier]}: generated gateway scripts keep the lease rules, heartbeats, signals, stop() and leave nothing behind`, {
    // About one run in 250 meets the first; see property-regressions.test.js, sections 4 and 8.
  }, async () => {
    await assertThenSettle(fc.asyncProperty(script(carrier), (s) => holds(carrier, s)), params({ transport: 100, ipc: 80, bytes: 150 }[carrier], 40_000));
  });
}

for (const carrier of /** @type {const} */ (['transport', 'bytes'])) {
  const name = NAMES[carrier];

  test(`${name}: handlers that return or throw strange values (thenables, revoked proxies, non-Error throws, outputs JSON cannot carry, odd ctx.fail / ctx.progress arguments)`, {
  }, async () => {
    await assertThenSettle(fc.asyncProperty(script(carrier, { strange: true }), (s) => holds(carrier, s)), params(100, 12_000));
  });
}

for (const carrier of /** @type {const} */ (['transport', 'bytes'])) {
  test(`${carrier === 'transport' ? 'custom Transport' : 'byte path'}: a progress POST the gateway never answers delays no verdict (and doubles none)`, {
  }, async () => {
    await assertThenSettle(fc.asyncProperty(script(carrier, { stalledProgress: true }), (s) => holds(carrier, s)), params(30, 8_000));
  });
}

test('custom Transport and IPC: stop() settles by its deadline whatever transport.stop() / bridge.detach() does (never settles, rejects, throws, slow)', {
}, async () => {
  const carrier = fc.constantFrom('transport', 'ipc');
  await assertThenSettle(fc.asyncProperty(carrier.chain((c) => fc.tuple(fc.constant(c), script(/** @type {any} */ (c), { stuckTransportStop: true }))),
    ([c, s]) => holds(/** @type {any} */ (c), s)), params(20, 12_000));
});

/**
 * Runs `s` in a child Node process; resolves with its result and how long the
 * process took to exit after printing it (Infinity: killed after `graceMs`).
 * @param {any} s @param {'transport' | 'ipc' | 'bytes'} carrier @param {number} graceMs
 */
function runInChild(s, carrier, graceMs) {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./support/property-child.js', import.meta.url)), JSON.stringify(s), carrier], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let printedAt = NaN;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let killer;
  child.stdout.on('data', (d) => {
    out += d;
    if (Number.isNaN(printedAt) && out.includes('\n')) {
      printedAt = performance.now();
      killer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    }
  });
  child.stderr.on('data', (d) => { err += d; });
  const hardKill = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      clearTimeout(hardKill);
      const line = out.split('\n')[0];
      resolve({
        result: line ? JSON.parse(line) : null,
        exitMs: signal === 'SIGKILL' ? Infinity : performance.now() - printedAt,
        code,
        stderr: err,
      });
    });
  });
}

test('a Node process that ran a generated script exits by itself right after stop() resolved (every carrier)', async () => {
  const graceMs = 2000;
  await assertThenSettle(fc.asyncProperty(fc.constantFrom('transport', 'ipc', 'bytes').chain((carrier) => fc.tuple(fc.constant(carrier), script(/** @type {any} */ (carrier)))), async ([carrier, s]) => {
    // This property is about the process exiting; the run's other
    // violations are the first property's business (named here to help).
    const r = /** @type {any} */ (await runInChild(s, /** @type {any} */ (carrier), graceMs));
    assert.ok(r.result, `the child printed no result (exit ${r.code}): ${r.stderr}`);
    const also = r.result.violations.length ? ` (its run also showed: ${r.result.violations.join('; ')})` : '';
    assert.ok(r.exitMs < graceMs, `the child (${carrier}) had not exited ${graceMs} ms after stop() resolved and its script ended${also}`);
    assert.equal(r.code, 0, r.stderr);
  }), params(12, 30_000));
});

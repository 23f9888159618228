// Hostile gateway, attack class 8: a backlog. 20 000 leases of ~400 B in one
// burst (a gateway may send more than a capability's concurrency: PROTOCOL
// rule 2), the first handlers hold for 3 s, then every handler returns at
// once; also 20 000 leases for a type nobody handles (each one a nack).
// Every lease must end in exactly one ack or nack, the gateway must never see
// more connections than the request bound (maxInFlightRequests; by default
// the capabilities' concurrency added up, 16 to 128) plus the stream, and the process memory must stay
// bounded. The neuron runs with the common default soft limit of 1024 open
// file descriptors, so running out of them does not depend on the machine.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MiB, leaseFrame, sse } from './support/gateway.js';
import { attackThenLease, assertSurvived, figures, mb, report } from './support/neuron-process.js';

const LEASES = 20_000;
/** maxInFlightRequests' default for one capability: its concurrency, 16 to 128. */
const defaultBound = (/** @type {number} */ concurrency) => Math.min(128, Math.max(16, concurrency));

/**
 * @param {import('node:test').TestContext} t
 * @param {{ concurrency: number, type: string, verdict: 'ack' | 'nack' }} opts
 */
async function backlog(t, { concurrency, type, verdict }) {
  const REQUEST_BOUND = defaultBound(concurrency);
  const pad = 'p'.repeat(230); // ~400 bytes a lease event
  let burst = '';
  for (let i = 0; i < LEASES; i++) burst += sse(leaseFrame(`b-${String(i).padStart(6, '0')}`, { i, pad }, type));
  /** @type {import('./support/neuron-process.js').Sample | null} */
  let queued = null;
  let drainedMs = 0;
  const r = await attackThenLease(async ({ gw, neuron, until }) => {
    const t0 = performance.now();
    await gw.write(burst);
    if (verdict === 'ack') {
      // While the first handlers hold: every lease is queued or running.
      for (;;) {
        const s = await neuron.sample();
        const [cap] = s.stats.capabilities;
        assert.equal(s.stats.requestBound, REQUEST_BOUND, 'stats().requestBound');
        if (cap.queued + cap.running + gw.terminals.size >= LEASES || performance.now() - t0 > 2_500) {
          queued = s;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await until(() => {
      // Fail at once rather than wait out a neuron that has already broken a rule.
      if (gw.sockets.max > REQUEST_BOUND + 1) throw new Error(`${gw.sockets.max} connections open at once at the gateway (bound ${REQUEST_BOUND} + the stream)`);
      const gaveUp = neuron.errors.find((e) => e.code === 'post-failed');
      if (gaveUp) throw new Error(`a verdict was given up: ${gaveUp.message}`);
      return gw.terminals.size >= LEASES;
    }, `a verdict for each of the ${LEASES} leases`, 120_000);
    drainedMs = performance.now() - t0;
  }, {
    fdLimit: 1024,
    timeoutMs: 60_000,
    // The acked backlogs hold their first handlers (the gate) so that every
    // lease queues. The flood of nacks runs no handler, so its lease after
    // the attack is answered at once. Gated, that ack came 3 s later, when
    // undici retires idle connections (the gateway's 5 s keep-alive less
    // undici's 2 s margin); its new connection then opened while the old
    // ones closed, and the gateway now and then counted one too many.
    neuron: { capabilities: [{ type: 'hostile/echo', concurrency, behaviour: verdict === 'ack' ? 'gate' : 'echo' }] },
  });

  t.diagnostic(`${LEASES} leases (${mb(burst.length)}) drained in ${(drainedMs / 1000).toFixed(1)} s; ` +
    `at most ${r.gw.sockets.max} connections open at once (${r.gw.sockets.total} in all)`);
  if (queued) t.diagnostic(`all queued: ${figures(queued)}`);
  t.diagnostic(report('backlog', r));
  assertSurvived(r, { errors: [] });
  for (let i = 0; i < LEASES; i++) {
    const id = `b-${String(i).padStart(6, '0')}`;
    const v = r.gw.terminal(id);
    assert.equal(v.length, 1, `${id}: ${v.length} verdicts`);
    assert.equal(v[0].type, verdict, id);
    if (verdict === 'nack') assert.equal(v[0].code, 'NO_HANDLER', id);
  }
  assert.ok(r.gw.sockets.max <= REQUEST_BOUND + 1, `${r.gw.sockets.max} connections open at once`);
  // The same bound seen from inside: descriptors (sampled every 20 ms) beyond the idle process's.
  assert.ok(r.after.peakFds - r.before.fds <= REQUEST_BOUND + 1, `open descriptors ${r.before.fds} -> peak ${r.after.peakFds}`);
  // Queued leases cost memory by design (~1.5 KiB each, all included); the bound is that the
  // drain adds no per-lease cost on top (bounded in-flight requests: peak +120 MiB measured).
  assert.ok(r.after.maxRss - r.before.rss <= 192 * MiB, `peak RSS ${mb(r.after.maxRss)} from ${mb(r.before.rss)} before the burst`);
  assert.ok(r.after.heapExternal - r.before.heapExternal <= 48 * MiB,
    `heapUsed + external after the backlog and a GC: ${mb(r.before.heapExternal)} -> ${mb(r.after.heapExternal)}`);
}

test(`8. backlog: ${LEASES} leases at once to concurrency 1, the first handler holds 3 s, then all return at once: each acked exactly once, at most ${defaultBound(1)} + 1 connections, memory bounded`,
  { timeout: 180_000 },
  (t) => backlog(t, { concurrency: 1, type: 'hostile/echo', verdict: 'ack' }));

test(`8. backlog: ${LEASES} leases at once to concurrency 64, the first handlers hold 3 s, then all return at once: each acked exactly once, at most ${defaultBound(64)} + 1 connections, memory bounded`,
  { timeout: 180_000 },
  (t) => backlog(t, { concurrency: 64, type: 'hostile/echo', verdict: 'ack' }));

test(`9. a flood of ${LEASES} leases for a type nobody handles: each nacked NO_HANDLER exactly once, at most ${defaultBound(1)} + 1 connections, memory bounded`,
  { timeout: 180_000 },
  (t) => backlog(t, { concurrency: 1, type: 'nobody/handles-this', verdict: 'nack' }));

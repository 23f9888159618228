// fast-check arbitraries for the gateway scripts that
// support/property-harness.js runs. A script is plain JSON, so a shrunk
// counterexample can be pasted into test/property-regressions.test.js as is.

import fc from 'fast-check';
import { STRANGE_NAMES } from './strange-values.js';
import { NEVER } from './property-harness.js';

/**
 * fc.record without null-prototype objects: a counterexample then prints as
 * plain JSON, ready to paste into a regression test.
 * @type {typeof fc.record}
 */
const record = /** @type {any} */ ((/** @type {any} */ shape, /** @type {any} */ opts = {}) => fc.record(shape, { noNullPrototype: true, ...opts }));

/** Lease ids come from a small pool, so duplicates, cancels and lost answers hit real leases. */
const leaseId = fc.constantFrom('L0', 'L1', 'L2', 'L3', 'L4', 'L5', 'L6', 'L7');

/** Small JSON values (well-formed strings: a lone surrogate becomes U+FFFD on the wire, by design). */
const json = fc.jsonValue({ maxDepth: 2, stringUnit: 'grapheme' });

const progressUpdate = record({
  percent: fc.integer({ min: 0, max: 100 }),
  message: fc.string({ maxLength: 12, unit: 'grapheme' }),
  data: json,
}, { requiredKeys: [] });

/** What the handler does with a lease: see makeHandler() in the harness. */
const behaviour = record({
  k: fc.oneof(
    { weight: 5, arbitrary: fc.constant('ok') },
    { weight: 2, arbitrary: fc.constant('throw') },
    { weight: 1, arbitrary: fc.constant('fail') },
    { weight: 2, arbitrary: fc.constant('reject-abort') },
    { weight: 1, arbitrary: fc.constant('return-abort') },
    { weight: 1, arbitrary: fc.constant('ignore-abort') },
    { weight: 1, arbitrary: fc.constant('hang') },
    { weight: 1, arbitrary: fc.constant('stop') },
  ),
  d: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 40 }) }),
  p: fc.array(record({ at: fc.constantFrom('before', 'after'), u: progressUpdate }), { maxLength: 2 }),
  o: json,
});

/** A handler that returns or throws one of support/strange-values.js. */
const strangeBehaviour = record({
  k: fc.constant('strange'),
  s: fc.constantFrom(...STRANGE_NAMES),
  d: fc.constant(0),
  p: fc.array(record({ at: fc.constantFrom('before', 'after'), u: progressUpdate }), { maxLength: 1 }),
  o: fc.constant(null),
});

/** @param {boolean} strange */
const leaseStep = (strange) => record({
  t: fc.constant('lease'),
  id: leaseId,
  cap: fc.oneof({ weight: 6, arbitrary: fc.constant('a') }, { weight: 2, arbitrary: fc.constant('b') }, { weight: 1, arbitrary: fc.constant('none') }),
  badInput: fc.boolean(),
  malformed: fc.oneof(
    { weight: 12, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom('noLeaseId', 'numericLeaseId', 'noTaskId', 'noType', 'noTask') },
  ),
  b: strange ? fc.oneof({ weight: 3, arbitrary: strangeBehaviour }, { weight: 2, arbitrary: behaviour }) : behaviour,
});

/**
 * One POST answer: s = HTTP status (0 = network error, NEVER = no answer), d = delay in ms.
 * @param {number[]} failures statuses besides 200
 */
const answer = (failures) => record({
  s: fc.oneof({ weight: 6, arbitrary: fc.constant(200) }, { weight: 2, arbitrary: fc.constantFrom(...failures) }),
  d: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) }),
});

/**
 * A whole script for `carrier`.
 *
 * The custom transport and IPC get no reconnect or retry settings (they are
 * HTTP options), so their backoff starts at the default 500 ms: retried acks and
 * failed registers cost half a second each there. Its answers keep those
 * rare (at most 2 retryable terminal answers per script) to keep runs short;
 * the byte path runs with 5 ms backoffs and gets them freely.
 * @param {'transport' | 'ipc' | 'bytes'} carrier
 * @param {{ strange?: boolean, stuckTransportStop?: boolean, stalledProgress?: boolean }} [opts]
 *   strange: most handlers return or throw strange values;
 *   stuckTransportStop: the custom transport's stop() (the IPC bridge's
 *     detach()) may never settle;
 *   stalledProgress: the gateway may never answer a progress POST
 */
export function script(carrier, { strange = false, stuckTransportStop = false, stalledProgress = false } = {}) {
  const bytes = carrier === 'bytes';
  const stopOpts = record({ t: fc.constant('stop'), drain: fc.boolean(), timeoutMs: fc.integer({ min: 0, max: 60 }) });
  // Weights: mostly leases and waits (so handlers run, finish, and meet the
  // cancels, drops and lost answers that follow); a revocation or a stop()
  // ends much of a script, so they are rarer.
  const cancel = record({ t: fc.constant('cancel'), id: leaseId });
  const revoke = record({ t: fc.constant('revoke'), cap: fc.constantFrom('a', 'b', 'none') });
  const step = fc.oneof(
    { weight: 16, arbitrary: leaseStep(strange) },
    { weight: 5, arbitrary: cancel },
    { weight: 1, arbitrary: revoke },
    // frames that arrive together: one chunk on the byte path (one batch for the core)
    { weight: 2, arbitrary: record({ t: fc.constant('burst'), frames: fc.array(fc.oneof({ weight: 4, arbitrary: leaseStep(strange) }, { weight: 2, arbitrary: cancel }, { weight: 1, arbitrary: revoke }), { minLength: 2, maxLength: 4 }) }) },
    // (IPC channels do not drop.)
    { weight: carrier === 'ipc' ? 0 : 2, arbitrary: record({ t: fc.constant('drop'), how: bytes ? fc.constantFrom('eof', 'error', 'disconnect') : fc.constant('onClose'), gap: fc.integer({ min: 0, max: 20 }) }) },
    { weight: 9, arbitrary: record({ t: fc.constant('wait'), ms: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 2, arbitrary: record({ t: fc.constant('update'), cap: fc.constantFrom('a', 'b', 'none'), concurrency: fc.integer({ min: 0, max: 3 }) }) },
    { weight: 3, arbitrary: record({ t: fc.constant('lost'), ids: fc.uniqueArray(leaseId, { minLength: 1, maxLength: 3 }) }) },
    { weight: 1, arbitrary: stopOpts },
  );
  const stopPlan = fc.oneof(
    { weight: 6, arbitrary: record({ how: fc.constant('ok') }) },
    { weight: 1, arbitrary: record({ how: fc.constant('slow'), ms: fc.integer({ min: 1, max: 40 }) }) },
    { weight: 1, arbitrary: record({ how: fc.constantFrom('rejects', 'throws') }) },
    ...(stuckTransportStop ? [{ weight: 4, arbitrary: record({ how: fc.constant('never') }) }] : []),
  );
  const terminalFailures = bytes ? [401, 409, 429, 503, 0, 400] : [401, 409, 400];
  const terminal = bytes
    ? fc.array(answer(terminalFailures), { maxLength: 12 })
    : fc.tuple(fc.array(answer(terminalFailures), { maxLength: 12 }), fc.array(record({ at: fc.nat(11), s: fc.constantFrom(429, 503, 0) }), { maxLength: 2 }))
      .map(([list, retryable]) => {
        const out = list.slice();
        for (const r of retryable) if (r.at < out.length) out[r.at] = { s: r.s, d: 0 };
        return out;
      });
  return record({
    hb: fc.integer({ min: 8, max: 30 }),
    conc: record({ a: fc.integer({ min: 1, max: 3 }), b: fc.integer({ min: 1, max: 2 }) }),
    steps: fc.array(step, { minLength: 1, maxLength: 24, size: 'medium' }),
    finalStop: stopOpts,
    // stop() before start() settled: in the same tick, or a few ms later
    stopDuringStart: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 8 }) }),
    answers: record({
      // 403 ends the run's connection for good (RegistrationError): rare.
      register: fc.array(record({
        s: fc.oneof({ weight: 16, arbitrary: fc.constant(200) }, { weight: bytes ? 4 : 0, arbitrary: fc.constantFrom(401, 503, 0) }, { weight: 1, arbitrary: fc.constant(403) }),
        d: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }) }),
      }), { maxLength: 2 }),
      heartbeat: fc.array(answer([401, 503, 0, NEVER]), { maxLength: 6 }),
      progress: stalledProgress
        ? fc.array(fc.oneof(answer([401, 503, 0]), record({ s: fc.constant(NEVER), d: fc.constant(0) })), { minLength: 1, maxLength: 4 })
        : fc.array(answer([401, 503, 0]), { maxLength: 4 }),
      terminal,
      'update-capability': fc.array(answer([401, 503, 0]), { maxLength: 2 }),
      stream: bytes ? fc.array(record({ s: fc.oneof({ weight: 4, arbitrary: fc.constant(200) }, { weight: 1, arbitrary: fc.constantFrom(503, 0) }), d: fc.constant(0) }), { maxLength: 3 }) : fc.constant([]),
    }),
    // How the custom transport's stop(), or the IPC bridge's detach(), ends.
    transportStop: carrier === 'transport' ? stopPlan : fc.constant(undefined),
    ipc: carrier === 'ipc' ? record({ attachMs: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 20 }) }), detach: stopPlan }) : fc.constant(undefined),
    asyncAuth: fc.boolean(),
    chunk: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }) }),
    crlf: fc.boolean(),
    comments: fc.boolean(),
    bom: fc.boolean(),
  });
}

/** Runs per property: PROPERTY_RUNS overrides (e.g. PROPERTY_RUNS=2000 for a long run). @param {number} quick */
export function runs(quick) {
  const n = Number(process.env.PROPERTY_RUNS);
  return Number.isInteger(n) && n > 0 ? n : quick;
}

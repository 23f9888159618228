// @ts-check
// Record and replay: the session file the page exports, and the reader that
// checks one before it is replayed. No DOM here (component-tested).
//
// A session file is JSON:
//   { format: 'neuron-tester-session', version: 1, exportedAt, neuronId,
//     gatewayUrl, startedAt, capabilities: CapabilitySpec[], entries: Entry[] }
// Replaying feeds the recorded inbound frames (dir 'in'), at their recorded
// offsets from the first one, to a Neuron through an in-memory Transport:
// the same core, the same handler code, no gateway.

export const SESSION_FORMAT = 'neuron-tester-session';
export const SESSION_VERSION = 1;

/**
 * @typedef {{
 *   type: string, scopeUser: string, concurrency: number, description: string,
 *   inputSchema: string, outputSchema: string, code: string,
 * }} CapabilitySpec  schemas and code as the editor holds them (text)
 * @typedef {import('./firehose.js').Entry} Entry
 * @typedef {{
 *   format: string, version: number, exportedAt: string, neuronId: string, gatewayUrl: string,
 *   startedAt: number, capabilities: CapabilitySpec[], entries: Entry[],
 * }} Session
 */

/**
 * @param {{ neuronId: string, gatewayUrl: string, startedAt: number, capabilities: CapabilitySpec[], entries: Entry[], now?: number }} s
 * @returns {Session}
 */
export function exportSession({ neuronId, gatewayUrl, startedAt, capabilities, entries, now = Date.now() }) {
  return {
    format: SESSION_FORMAT,
    version: SESSION_VERSION,
    exportedAt: new Date(now).toISOString(),
    neuronId,
    gatewayUrl,
    startedAt,
    capabilities: capabilities.map((c) => ({ ...c })),
    entries: entries.map((e) => ({ ...e })),
  };
}

const DIRS = new Set(['in', 'out', 'conn']);

/** @param {unknown} v */
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Reads a session file; every problem names where it is.
 * @param {string} text
 * @returns {{ ok: true, session: Session } | { ok: false, error: string }}
 */
export function readSession(text) {
  /** @type {any} */
  let s;
  try {
    s = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${/** @type {Error} */ (err).message}` };
  }
  if (!isObject(s)) return { ok: false, error: 'a session file is a JSON object' };
  if (s.format !== SESSION_FORMAT) {
    return { ok: false, error: `not a neuron-tester session (format is ${JSON.stringify(s.format)}, expected "${SESSION_FORMAT}")` };
  }
  if (s.version !== SESSION_VERSION) {
    return { ok: false, error: `session version ${JSON.stringify(s.version)} is not supported (this page reads version ${SESSION_VERSION})` };
  }
  if (typeof s.neuronId !== 'string' || !s.neuronId) return { ok: false, error: '`neuronId` must be a non-empty string' };
  if (!Array.isArray(s.capabilities)) return { ok: false, error: '`capabilities` must be an array' };
  for (const [i, c] of s.capabilities.entries()) {
    const where = `capabilities[${i}]`;
    if (!isObject(c)) return { ok: false, error: `${where} must be an object` };
    for (const k of ['type', 'scopeUser', 'description', 'inputSchema', 'outputSchema', 'code']) {
      if (typeof c[k] !== 'string') return { ok: false, error: `${where}.${k} must be a string` };
    }
    if (!Number.isInteger(c.concurrency) || c.concurrency < 1) return { ok: false, error: `${where}.concurrency must be an integer >= 1` };
  }
  if (!Array.isArray(s.entries)) return { ok: false, error: '`entries` must be an array' };
  let lastSeq = 0;
  for (const [i, e] of s.entries.entries()) {
    const where = `entries[${i}]`;
    if (!isObject(e)) return { ok: false, error: `${where} must be an object` };
    if (!Number.isInteger(e.seq) || e.seq <= lastSeq) return { ok: false, error: `${where}.seq must be an integer greater than the previous entry's` };
    lastSeq = e.seq;
    if (typeof e.t !== 'number' || !Number.isFinite(e.t)) return { ok: false, error: `${where}.t must be a time in ms` };
    if (!DIRS.has(e.dir)) return { ok: false, error: `${where}.dir must be "in", "out" or "conn"` };
    if (typeof e.type !== 'string') return { ok: false, error: `${where}.type must be a string` };
    if (e.dir === 'in' && (!isObject(e.frame) || typeof e.frame.type !== 'string')) {
      return { ok: false, error: `${where}.frame must be a frame object with a "type" (inbound entries are replayed)` };
    }
    for (const k of ['leaseId', 'capability', 'note']) if (e[k] === undefined) e[k] = '';
    if (e.status === undefined) e.status = null;
  }
  return { ok: true, session: /** @type {Session} */ (s) };
}

/**
 * What a replay feeds the neuron: each inbound frame with its offset from the
 * first inbound frame (ms, never negative, in recorded order).
 * @param {Session} session @param {{ speed?: number }} [opts] speed 2 plays twice as fast
 * @returns {{ at: number, frame: any }[]}
 */
export function replaySchedule(session, { speed = 1 } = {}) {
  if (!(speed > 0)) throw new RangeError('replay speed must be > 0');
  const inbound = session.entries.filter((e) => e.dir === 'in');
  if (!inbound.length) return [];
  const t0 = inbound[0].t;
  let last = 0;
  return inbound.map((e) => {
    last = Math.max(last, (e.t - t0) / speed);
    return { at: last, frame: structuredClone(e.frame) };
  });
}

/**
 * The outbound frames of a run, reduced to what must match between a
 * recording and its replay (times and session ids differ): type, lease,
 * and the verdict of terminal frames. Heartbeats and progress depend on
 * timing, so they are left out.
 * @param {Entry[]} entries
 */
export function outboundSummary(entries) {
  return entries
    .filter((e) => e.dir === 'out' && e.type !== 'heartbeat' && e.type !== 'register' && e.type !== 'progress')
    .map((e) => {
      const f = /** @type {any} */ (e.frame);
      if (e.type === 'nack') return `nack ${f.leaseId} ${f.kind}${f.code ? ` ${f.code}` : ''}`;
      if (e.type === 'ack') return `ack ${f.leaseId} ${JSON.stringify(f.output)}`;
      return `${e.type}${f?.leaseId ? ` ${f.leaseId}` : ''}`;
    });
}

/**
 * Compares a recording's outbound summary with its replay's. Each lease's
 * frames must come out the same and in the same order, but the order
 * across leases is not compared: two leases running at once finish in the
 * order their handlers' timers fire, which a replay cannot promise.
 * @param {string[]} recorded @param {string[]} replayed
 * @returns {{ same: boolean, firstDifference: string }}
 */
export function compareReplay(recorded, replayed) {
  const key = (/** @type {string} */ line) => line.split(' ')[1] ?? '';
  // A stable sort by lease keeps each lease's own frames in their order.
  const a = [...recorded].sort((x, y) => (key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0));
  const b = [...replayed].sort((x, y) => (key(x) < key(y) ? -1 : key(x) > key(y) ? 1 : 0));
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) {
      return { same: false,
        firstDifference: `recorded ${JSON.stringify(a[i] ?? null)}, replayed ${JSON.stringify(b[i] ?? null)}` };
    }
  }
  return { same: true, firstDifference: 'none' };
}

// @ts-check
// The firehose's model: a bounded log of everything on the wire, and the
// filters over it. No DOM here (component-tested in app/test/unit).

/**
 * @typedef {'in' | 'out' | 'conn'} Direction
 * @typedef {{
 *   seq: number,           // 1, 2, 3... in arrival order, never reused
 *   t: number,             // ms since the epoch
 *   dir: Direction,        // in: gateway -> neuron (SSE), out: neuron -> gateway (POST), conn: stream / connection events
 *   type: string,          // frame type ('lease', 'ack', ...) or connection event ('stream-open', 'reconnecting', ...)
 *   leaseId: string,       // '' when the frame has none
 *   capability: string,    // '' when unknown
 *   status: number | null, // HTTP status of a POST once answered (0: network error), null before
 *   note: string,          // short human text (injected faults, close reasons)
 *   frame: unknown,        // the full JSON (frame object, or details of a connection event)
 * }} Entry
 */

/** A ring buffer of entries: the newest `capacity` are kept, older ones counted as dropped. */
export class FrameLog {
  /** @param {number} capacity */
  constructor(capacity = 5000) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new RangeError('FrameLog capacity must be a positive integer');
    this.capacity = capacity;
    /** @type {Entry[]} */
    this.items = [];
    this.start = 0; // index of the oldest entry in items once full
    this.nextSeq = 1;
    this.dropped = 0;
  }

  /**
   * @param {Omit<Entry, 'seq' | 'status' | 'note' | 'leaseId' | 'capability'> & Partial<Pick<Entry, 'status' | 'note' | 'leaseId' | 'capability'>>} e
   * @returns {Entry} the stored entry (mutable: a POST's status lands later)
   */
  push(e) {
    /** @type {Entry} */
    const entry = { seq: this.nextSeq++, status: null, note: '', leaseId: '', capability: '', ...e };
    if (this.items.length < this.capacity) {
      this.items.push(entry);
    } else {
      this.items[this.start] = entry;
      this.start = (this.start + 1) % this.capacity;
      this.dropped++;
    }
    return entry;
  }

  get size() {
    return this.items.length;
  }

  /** Entries oldest first. @returns {Entry[]} */
  toArray() {
    if (this.start === 0) return this.items.slice();
    return this.items.slice(this.start).concat(this.items.slice(0, this.start));
  }

  clear() {
    this.items = [];
    this.start = 0;
    this.dropped = 0;
  }
}

/**
 * @typedef {{
 *   types: string[],   // empty: every type
 *   dirs: Direction[], // empty: every direction
 *   lease: string,     // substring of the lease id
 *   capability: string,// substring of the capability type
 *   text: string,      // substring of the JSON, case-insensitive; "a b" needs both
 * }} Filter
 */

/** @returns {Filter} */
export function emptyFilter() {
  return { types: [], dirs: [], lease: '', capability: '', text: '' };
}

/** @param {Filter} f */
export function isEmptyFilter(f) {
  return !f.types.length && !f.dirs.length && !f.lease.trim() && !f.capability.trim() && !f.text.trim();
}

/** @type {WeakMap<Entry, string>} */
const jsonCache = new WeakMap();

/** The text the free-text filter searches: type, lease, capability, note and the JSON. @param {Entry} e */
function searchable(e) {
  let s = jsonCache.get(e);
  // A POST's status arrives later: cache only what cannot change.
  if (s === undefined) {
    let json;
    try {
      json = JSON.stringify(e.frame) ?? '';
    } catch {
      json = '';
    }
    s = `${e.type} ${e.leaseId} ${e.capability} ${json}`.toLowerCase();
    jsonCache.set(e, s);
  }
  return `${s} ${e.note.toLowerCase()} ${e.status ?? ''}`;
}

/**
 * Compiles a filter into a predicate (trimmed, case-insensitive substrings).
 * @param {Filter} f
 * @returns {(e: Entry) => boolean}
 */
export function compileFilter(f) {
  const types = f.types.length ? new Set(f.types) : null;
  const dirs = f.dirs.length ? new Set(f.dirs) : null;
  const lease = f.lease.trim().toLowerCase();
  const capability = f.capability.trim().toLowerCase();
  const words = f.text.trim().toLowerCase().split(/\s+/).filter(Boolean);
  return (e) => {
    if (types && !types.has(e.type)) return false;
    if (dirs && !dirs.has(e.dir)) return false;
    if (lease && !e.leaseId.toLowerCase().includes(lease)) return false;
    if (capability && !e.capability.toLowerCase().includes(capability)) return false;
    if (words.length) {
      const s = searchable(e);
      for (const w of words) if (!s.includes(w)) return false;
    }
    return true;
  };
}

/** @param {Entry[]} entries @param {Filter} f */
export function filterEntries(entries, f) {
  if (isEmptyFilter(f)) return entries;
  return entries.filter(compileFilter(f));
}

/** The frame types the filter offers, in wire order. */
export const FRAME_TYPES = [
  'registered', 'lease', 'cancel', 'capability-revoked', 'disconnect',
  'register', 'update-capability', 'heartbeat', 'progress', 'ack', 'nack',
  'stream-open', 'stream-close', 'reconnecting', 'error',
];

/**
 * Lease id and capability of a frame, if it names them.
 * @param {any} frame @param {(leaseId: string) => string} capabilityOf
 */
export function describeFrame(frame, capabilityOf) {
  const leaseId = typeof frame?.leaseId === 'string' ? frame.leaseId : '';
  let capability = '';
  if (frame?.type === 'lease' && typeof frame.task?.type === 'string') capability = frame.task.type;
  else if (frame?.type === 'capability-revoked' && typeof frame.capability === 'string') capability = frame.capability;
  else if (frame?.type === 'update-capability' && typeof frame.capability === 'string') capability = frame.capability;
  else if (leaseId) capability = capabilityOf(leaseId);
  return { leaseId, capability };
}

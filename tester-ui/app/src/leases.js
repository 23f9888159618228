// @ts-check
// The leases' model: one row per lease (queued -> running -> acked / nacked /
// lost), progress, heartbeats, and slot occupancy over time per capability.
// Fed by what the page sees: inbound frames, handler starts, outbound frames.

/**
 * @typedef {'queued' | 'running' | 'acked' | 'nacked' | 'lost'} LeaseState
 * @typedef {{
 *   leaseId: string, taskId: string, capability: string, attempt: number,
 *   state: LeaseState,
 *   receivedAt: number, startedAt: number | null, endedAt: number | null,
 *   percent: number | null, message: string,
 *   heartbeats: number,
 *   nack: { kind: string, reason: string, code: string } | null,
 *   cancelRequested: boolean,
 * }} LeaseRow
 * @typedef {{ t: number, running: number, queued: number }} Sample
 * @typedef {{ t: number }} Beat
 */

const ENDED = new Set(['acked', 'nacked', 'lost']);

export class LeaseBoard {
  /** @param {{ keepEnded?: number, keepSamples?: number }} [opts] */
  constructor({ keepEnded = 500, keepSamples = 2000 } = {}) {
    this.keepEnded = keepEnded;
    this.keepSamples = keepSamples;
    /** @type {Map<string, LeaseRow>} insertion order = arrival order */
    this.rows = new Map();
    /** @type {Map<string, Sample[]>} */
    this.samples = new Map();
    /** @type {Beat[]} */
    this.beats = [];
    /** @type {Map<string, { acked: number, nacked: number, lost: number }>} */
    this.totals = new Map();
    this.ended = 0;
  }

  /** @param {string} leaseId */
  capabilityOf(leaseId) {
    return this.rows.get(leaseId)?.capability ?? '';
  }

  /** @param {any} frame @param {number} t */
  inbound(frame, t) {
    if (frame?.type === 'lease' && typeof frame.leaseId === 'string') {
      if (this.rows.has(frame.leaseId)) return; // a duplicate delivery: the SDK ignores it too
      const task = frame.task ?? {};
      this.rows.set(frame.leaseId, {
        leaseId: frame.leaseId, taskId: String(task.taskId ?? ''), capability: String(task.type ?? ''),
        attempt: Number(task.attempt ?? 1), state: 'queued', receivedAt: t, startedAt: null, endedAt: null,
        percent: null, message: '', heartbeats: 0, nack: null, cancelRequested: false,
      });
      this.sample(String(task.type ?? ''), t);
    } else if (frame?.type === 'cancel') {
      const row = this.rows.get(frame.leaseId);
      if (row) row.cancelRequested = true;
    }
  }

  /** The handler of `leaseId` was called. @param {string} leaseId @param {number} t */
  started(leaseId, t) {
    const row = this.rows.get(leaseId);
    if (!row || row.state !== 'queued') return;
    row.state = 'running';
    row.startedAt = t;
    this.sample(row.capability, t);
  }

  /** @param {any} frame @param {number} t */
  outbound(frame, t) {
    switch (frame?.type) {
      case 'ack':
      case 'nack': {
        const row = this.rows.get(frame.leaseId);
        if (!row || ENDED.has(row.state)) return;
        row.state = frame.type === 'ack' ? 'acked' : 'nacked';
        row.endedAt = t;
        if (frame.type === 'nack') row.nack = { kind: String(frame.kind ?? ''), reason: String(frame.reason ?? ''), code: String(frame.code ?? '') };
        this.end(row, t);
        break;
      }
      case 'progress': {
        const row = this.rows.get(frame.leaseId);
        if (!row) return;
        if (typeof frame.percent === 'number') row.percent = frame.percent;
        if (typeof frame.message === 'string') row.message = frame.message;
        break;
      }
      case 'heartbeat': {
        this.beats.push({ t });
        if (this.beats.length > this.keepSamples) this.beats.splice(0, this.beats.length - this.keepSamples);
        for (const f of Array.isArray(frame.inFlight) ? frame.inFlight : []) {
          const row = this.rows.get(f?.leaseId);
          if (row) row.heartbeats++;
        }
        break;
      }
      default:
    }
  }

  /** The lease was lost (no terminal frame will come from this neuron). @param {string} leaseId @param {number} t */
  lost(leaseId, t) {
    const row = this.rows.get(leaseId);
    if (!row || ENDED.has(row.state)) return;
    row.state = 'lost';
    row.endedAt = t;
    this.end(row, t);
  }

  /**
   * Leases the core aborted without a terminal frame of ours (lease lost,
   * or ended by a stop that could not post): rows still open become lost.
   * @param {number} t
   */
  closeOpen(t) {
    for (const row of [...this.rows.values()]) this.lost(row.leaseId, t);
  }

  /** @private @param {LeaseRow} row @param {number} t */
  end(row, t) {
    const totals = this.totals.get(row.capability) ?? { acked: 0, nacked: 0, lost: 0 };
    totals[/** @type {'acked' | 'nacked' | 'lost'} */ (row.state)]++;
    this.totals.set(row.capability, totals);
    this.ended++;
    this.sample(row.capability, t);
    if (this.ended > this.keepEnded) this.prune();
  }

  /** @private Drops the oldest ended rows beyond keepEnded. */
  prune() {
    let excess = this.ended - this.keepEnded;
    for (const [id, row] of this.rows) {
      if (excess <= 0) break;
      if (ENDED.has(row.state)) {
        this.rows.delete(id);
        this.ended--;
        excess--;
      }
    }
  }

  /** @private @param {string} capability @param {number} t */
  sample(capability, t) {
    let running = 0;
    let queued = 0;
    for (const row of this.rows.values()) {
      if (row.capability !== capability) continue;
      if (row.state === 'running') running++;
      else if (row.state === 'queued') queued++;
    }
    const list = this.samples.get(capability) ?? [];
    list.push({ t, running, queued });
    if (list.length > this.keepSamples) list.splice(0, list.length - this.keepSamples);
    this.samples.set(capability, list);
  }

  /** Counts per capability: queued / running now, acked / nacked / lost in total. */
  summary() {
    /** @type {Map<string, { queued: number, running: number, acked: number, nacked: number, lost: number }>} */
    const out = new Map();
    const get = (/** @type {string} */ c) => {
      let s = out.get(c);
      if (!s) {
        s = { queued: 0, running: 0, acked: 0, nacked: 0, lost: 0, ...this.totals.get(c) };
        out.set(c, s);
      }
      return s;
    };
    for (const c of this.totals.keys()) get(c);
    for (const row of this.rows.values()) {
      if (row.state === 'queued') get(row.capability).queued++;
      else if (row.state === 'running') get(row.capability).running++;
    }
    return out;
  }

  /** Newest first, at most `limit`. @param {number} limit */
  latest(limit) {
    const all = [...this.rows.values()];
    return all.slice(Math.max(0, all.length - limit)).reverse();
  }

  clear() {
    this.rows.clear();
    this.samples.clear();
    this.beats = [];
    this.totals.clear();
    this.ended = 0;
  }
}

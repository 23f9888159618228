// The dev feed: every inbound frame, outbound frame, connect/disconnect and task change,
// as JSON events with a sequence number. Kept in a ring buffer for replay; streamed on GET /dev/feed.

/**
 * @typedef {{ seq: number, at: string, kind: string, [k: string]: unknown }} FeedEvent
 */

export class Feed {
  /** @param {number} [size] ring-buffer size */
  constructor(size = 1000) {
    this.size = size;
    this.seq = 0;
    /** @type {FeedEvent[]} */
    this.buffer = [];
    /** @type {Set<(e: FeedEvent) => void>} */
    this.listeners = new Set();
  }

  /**
   * @param {string} kind
   * @param {Record<string, unknown>} data
   * @returns {FeedEvent}
   */
  publish(kind, data) {
    const e = { seq: ++this.seq, at: new Date().toISOString(), kind, ...data };
    this.buffer.push(e);
    if (this.buffer.length > this.size) this.buffer.shift();
    for (const l of this.listeners) {
      try { l(e); } catch { /* a listener's failure is not the gateway's */ }
    }
    return e;
  }

  /** @param {(e: FeedEvent) => void} fn @returns {() => void} unsubscribe */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** @param {number} [afterSeq] */
  since(afterSeq = 0) {
    return this.buffer.filter((e) => e.seq > afterSeq);
  }
}

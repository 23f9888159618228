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
    /** @type {[string, Record<string, unknown>][] | null} */
    this.held = null;
  }

  /**
   * @param {string} kind
   * @param {Record<string, unknown>} data
   * @returns {FeedEvent|null} null while held
   */
  publish(kind, data) {
    if (this.held) {
      this.held.push([kind, data]);
      return null;
    }
    const e = { seq: ++this.seq, at: new Date().toISOString(), kind, ...data };
    this.buffer.push(e);
    if (this.buffer.length > this.size) this.buffer.shift();
    for (const l of this.listeners) {
      try { l(e); } catch { /* a listener's failure is not the gateway's */ }
    }
    return e;
  }

  /**
   * Hold publications (while a POST is processed synchronously) so the inbound frame can be
   * published before the frames it caused.
   */
  hold() {
    if (!this.held) this.held = [];
  }

  /** Publish `first` (if given), then everything held. @param {[string, Record<string, unknown>]} [first] */
  release(first) {
    /** @type {[string, Record<string, unknown>][]} */
    const held = this.held ?? [];
    this.held = null;
    if (first) this.publish(first[0], first[1]);
    for (const [k, d] of held) this.publish(k, d);
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

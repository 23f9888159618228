// An in-process gateway behind the public `Transport` interface: the test
// decides every frame the neuron receives and sees every frame it posts.
// Used for the lease rules a real gateway will not produce on demand
// (duplicate leases, malformed leases, lostLeases answers, exact ordering).

export class FakeGateway {
  constructor({ sessionId = 's-fake', heartbeatAnswer = () => ({}) } = {}) {
    /** @type {{ path: string, frame: any }[]} */
    this.posts = [];
    /** @type {any} */
    this.cb = {};
    this.connected = false;
    this.sessionId = sessionId;
    this.heartbeatAnswer = heartbeatAnswer;
    /** @type {((p: { path: string, frame: any }) => void)[]} */
    this.waiters = [];
    /** @type {(path: string, frame: any) => any} */
    this.answer = () => ({});
    const self = this;
    /** The Transport the neuron is given. */
    this.transport = {
      subscribe(cb) { self.cb = cb; },
      async start() { self.connected = true; queueMicrotask(() => self.cb.onOpen?.()); },
      async stop() { self.connected = false; },
      async post(path, frame) {
        const p = { path, frame: structuredClone(frame) };
        self.posts.push(p);
        for (const w of self.waiters.splice(0)) w(p);
        if (path === '/neuron/register') {
          queueMicrotask(() => self.send({
            type: 'registered', sessionId: self.sessionId,
            capabilities: frame.capabilities.map((c) => ({ type: c.type, scope: c.scope, concurrency: c.concurrency })),
          }));
        }
        if (path === '/neuron/heartbeat') return self.heartbeatAnswer(frame);
        return self.answer(path, frame);
      },
      isConnected() { return self.connected; },
    };
  }

  /** Deliver one frame to the neuron. @param {object} frame */
  send(frame) {
    this.cb.onFrame?.(frame);
  }

  /** @param {string} leaseId @param {string} type @param {unknown} input @param {object} [extra] */
  lease(leaseId, type, input = null, extra = {}) {
    this.send({ type: 'lease', leaseId, expiresAt: new Date(Date.now() + 30_000).toISOString(),
      task: { taskId: `task-${leaseId}`, type, input, attempt: 1, ...extra } });
  }

  /** Frames posted to a path (e.g. 'ack'). @param {string} kind */
  sent(kind) {
    return this.posts.filter((p) => p.path === `/neuron/${kind}`).map((p) => p.frame);
  }

  /** Terminal frames (ack + nack) for a lease. @param {string} leaseId */
  terminal(leaseId) {
    return this.posts.filter((p) => (p.path === '/neuron/ack' || p.path === '/neuron/nack') && p.frame.leaseId === leaseId).map((p) => p.frame);
  }

  /** Resolves with the next post matching `match`, or one already seen. @param {(p: { path: string, frame: any }) => boolean} match */
  next(match, timeoutMs = 3000) {
    const seen = this.posts.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('FakeGateway: timed out waiting for a post')), timeoutMs);
      const w = (/** @type {any} */ p) => {
        if (match(p)) {
          clearTimeout(timer);
          resolve(p);
        } else this.waiters.push(w);
      };
      this.waiters.push(w);
    });
  }

  /** @param {string} leaseId */
  terminalFor(leaseId, timeoutMs = 3000) {
    return this.next((p) => (p.path === '/neuron/ack' || p.path === '/neuron/nack') && p.frame.leaseId === leaseId, timeoutMs).then((p) => p.frame);
  }
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `fn` until it is true; rejects after `ms` naming `what`.
 * @param {() => boolean} fn @param {string} [what] @param {number} [ms]
 */
export async function until(fn, what = 'condition', ms = 3000) {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

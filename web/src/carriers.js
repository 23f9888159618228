// Carriers: what performs the core's OpenStream / CloseStream / Post /
// AbortPost actions, and reports back through the host (host.js).
//
//   HttpCarrier       fetch + ReadableStream; stream bytes go straight into
//                     wasm memory. Used for `gatewayUrl` + `auth` and for an
//                     HttpTransport given as `transport`.
//   TransportCarrier  any other Transport (IpcTransport, custom ones): frames
//                     as objects, posts as objects; the transport reconnects
//                     (or not) by itself.

import { POST_PATHS } from './frames.js';
import { messageOf } from './errors.js';

/**
 * @typedef {{
 *   streamOpened(id: number, status: number, isEventStream: boolean): void,
 *   streamBytes(id: number, chunk: Uint8Array): void,
 *   streamFrame(id: number, json: string): void,
 *   leaseObject(id: number, frame: any): void,
 *   streamClosed(id: number, reason: string): void,
 *   postResult(id: number, status: number, body: string): void,
  postReleased(id: number): void,
 *   reconnectNow(): void,
 *   emitError(err: Error): void,
 *   emitReconnecting(info: { attempt: number, delayMs: number, reason: string }): void,
 * }} CarrierHost
 */

// In Node, undici gives a connection back to its pool some turns after the
// answer's body ended: a POST sent sooner opens one more connection, and the
// bound on requests would not bound sockets (measured: 16 POSTs in flight
// back to back open 25 connections; released a timer turn later, 16). So
// there the core hears an answer at once but keeps its place in the bound
// until the carrier reports the POST released (Config::host_releases_posts).
// Browsers pool their own connections: there an answer frees its place. So
// does the answer of an injected `fetch`: how it pools is its own affair
// (and a timer turn per batch of answers would cap an in-memory fetch at
// some 16 000 POSTs a second).
export const RELEASES_POSTS = typeof globalThis.setImmediate === 'function';

/**
 * Whether a carrier with these options reports POSTs released a timer turn
 * after their answers (Node's own fetch), or frees their place at once.
 * @param {{ fetch?: unknown }} opts
 */
export function releasesPosts(opts) {
  return RELEASES_POSTS && !opts.fetch;
}

/** How long an answer nobody reads may hold its connection before it is cut. */
const UNREAD_ANSWER_MS = 1000;

/**
 * The body of an answer: at most `max` bytes of it as text when `wanted`,
 * else ''. It is read to its end so a keep-alive connection can be reused,
 * but never held for: past `max` bytes, or (when not wanted) past
 * UNREAD_ANSWER_MS, the rest is cancelled rather than waited for.
 * @param {Response} res @param {number} max @param {boolean} wanted
 * @returns {Promise<string>}
 */
async function readAnswer(res, max, wanted) {
  const body = res.body;
  if (!body) {
    // A Response-like object without a stream (tests, fakes).
    return wanted && typeof res.text === 'function' ? String(await res.text()).slice(0, max) : '';
  }
  const reader = body.getReader();
  const decoder = wanted ? new TextDecoder() : null;
  const cut = () => reader.cancel().catch(() => {});
  const timer = wanted ? null : setTimeout(cut, UNREAD_ANSWER_MS);
  let text = '';
  let seen = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += value.length;
      if (decoder) text += decoder.decode(value, { stream: true });
      if (seen > max) {
        cut();
        break;
      }
    }
  } catch {
    /* cancelled, or the connection failed after the status: the status stands */
  } finally {
    if (timer) clearTimeout(timer);
  }
  return decoder ? (text + decoder.decode()).slice(0, max) : '';
}

/** @param {unknown} gatewayUrl */
export function normalizeGatewayUrl(gatewayUrl) {
  if (typeof gatewayUrl !== 'string' || gatewayUrl === '') {
    throw new TypeError('`gatewayUrl` must be the gateway base URL, e.g. "https://api.example.com"');
  }
  let url;
  try {
    url = new URL(gatewayUrl);
  } catch {
    throw new TypeError(`\`gatewayUrl\` is not an absolute URL: ${JSON.stringify(gatewayUrl)} (expected e.g. "https://api.example.com")`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`\`gatewayUrl\` must be http:// or https://, got ${JSON.stringify(gatewayUrl)}`);
  }
  return gatewayUrl.replace(/\/+$/, '');
}

/** @param {unknown} token */
function checkToken(token) {
  if (typeof token !== 'string') {
    throw new TypeError(`auth callback returned ${token === null ? 'null' : typeof token}; it must return the gateway token (a string) or a promise of one`);
  }
  return token;
}

/**
 * Calls `auth` and hands the token to `then`, synchronously when auth is sync.
 * @param {() => unknown} auth @param {(token: string) => void} then @param {(err: unknown) => void} fail
 */
function withToken(auth, then, fail) {
  let t;
  try {
    t = auth();
  } catch (err) {
    fail(err);
    return;
  }
  const settle = (/** @type {unknown} */ v) => {
    let token;
    try {
      token = checkToken(v);
    } catch (err) {
      fail(err);
      return;
    }
    then(token);
  };
  if (t != null && typeof (/** @type {any} */ (t).then) === 'function') /** @type {Promise<unknown>} */ (t).then(settle, fail);
  else settle(t);
}

/**
 * fetch(url, init) as a promise, also when a user-supplied fetch throws
 * synchronously or returns something else: the failure then takes the path of
 * a network error instead of escaping into the core's tape.
 * @param {typeof fetch} f @param {string} url @param {RequestInit} init
 * @returns {Promise<Response>}
 */
function callFetch(f, url, init) {
  try {
    return Promise.resolve(f(url, init));
  } catch (err) {
    return Promise.reject(err);
  }
}

const EVENT_STREAM = /^\s*text\/event-stream/i;
const POSTS_PER_SIGNAL = 256;

export class HttpCarrier {
  /**
   * @param {CarrierHost} host
   * @param {{ gatewayUrl: string, auth: () => unknown, fetch?: typeof fetch }} opts
   */
  constructor(host, opts) {
    this.host = host;
    this.base = normalizeGatewayUrl(opts.gatewayUrl);
    this.auth = opts.auth;
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('no `fetch` available: pass `fetch` in the options (Node 20+ and browsers have it built in)');
    /** @type {typeof fetch} */
    this.fetch = f;
    this.releasesPosts = releasesPosts(opts);
    /** @type {Map<number, AbortController>} */
    this.streams = new Map();
    /** @type {Map<number, Slot>} POSTs in flight, each on its slot */
    this.posts = new Map();
    /** @type {Slot[]} slots with no POST on them */
    this.free = [];
    /** @type {number[]} answered POSTs to report released (see RELEASES_POSTS) */
    this.releasing = [];
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.releaseTimer = null;
    this.released = () => {
      this.releaseTimer = null;
      const ids = this.releasing;
      this.releasing = [];
      for (const id of ids) this.host.postReleased(id);
    };
  }

  /** @param {number} id @param {string} path */
  openStream(id, path) {
    const ac = new AbortController();
    this.streams.set(id, ac);
    const current = () => this.streams.get(id) === ac;
    const failed = (/** @type {unknown} */ err) => {
      if (!current()) return;
      this.streams.delete(id);
      this.host.streamClosed(id, describe(err, 'stream'));
    };
    withToken(this.auth, (token) => {
      callFetch(this.fetch, this.base + path, {
        headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
        signal: ac.signal,
        cache: 'no-store',
      }).then((res) => {
        if (!current()) {
          res.body?.cancel().catch(() => {});
          return;
        }
        const ok = res.status === 200 && EVENT_STREAM.test(res.headers?.get('content-type') ?? '');
        if (!ok || !res.body) {
          res.body?.cancel().catch(() => {});
          this.host.streamOpened(id, res.status, ok);
          if (ok) failed(new Error('response has no body'));
          return;
        }
        this.host.streamOpened(id, res.status, true);
        this.pump(id, ac, res.body.getReader());
      }, failed);
    }, (err) => failed(new Error(`auth callback failed: ${messageOf(err)}`)));
  }

  /** @param {number} id @param {AbortController} ac @param {ReadableStreamDefaultReader<Uint8Array>} reader */
  pump(id, ac, reader) {
    const onChunk = (/** @type {ReadableStreamReadResult<Uint8Array>} */ r) => {
      if (this.streams.get(id) !== ac) {
        reader.cancel().catch(() => {});
        return;
      }
      if (r.done) {
        this.streams.delete(id);
        this.host.streamClosed(id, 'stream ended');
        return;
      }
      try {
        this.host.streamBytes(id, r.value);
      } catch (err) {
        // An SDK bug must not stop the reader: report it and go on.
        this.host.emitError(new Error(`neuron-sdk: stream chunk failed: ${messageOf(err)}`));
      }
      reader.read().then(onChunk, onError);
    };
    const onError = (/** @type {unknown} */ err) => {
      if (this.streams.get(id) !== ac) return;
      this.streams.delete(id);
      this.host.streamClosed(id, describe(err, 'stream'));
    };
    reader.read().then(onChunk, onError);
  }

  /** @param {number} id */
  closeStream(id) {
    const ac = this.streams.get(id);
    if (!ac) return;
    this.streams.delete(id);
    ac.abort();
  }

  /**
   * The core sends at most maxInFlightRequests POSTs at once, so a few slots
   * carry them all. Each slot has its AbortController, so the core's
   * AbortPost ends exactly that request; the controller is changed after
   * POSTS_PER_SIGNAL requests, because fetch (undici) leaves its abort
   * listener on a signal after the answer and one per POST costs more than
   * the rest of a POST's path in Node.
   * @returns {Slot}
   */
  slot() {
    const s = this.free.pop() ?? { ac: new AbortController(), used: 0 };
    if (s.used >= POSTS_PER_SIGNAL) {
      s.ac = new AbortController();
      s.used = 0;
    }
    s.used++;
    return s;
  }


  /**
   * @param {number} id @param {string} path @param {string} body
   * @param {number} answerBytes @param {boolean} readsSuccessBody
   */
  post(id, path, body, answerBytes, readsSuccessBody) {
    const slot = this.slot();
    this.posts.set(id, slot);
    const finish = (/** @type {number} */ status, /** @type {string} */ text) => {
      if (this.posts.get(id) !== slot) return;  // aborted, or disposed
      this.posts.delete(id);
      this.free.push(slot);
      this.host.postResult(id, status, text);
      if (this.releasesPosts) {
        this.releaseTimer ??= setTimeout(this.released, 0);
        this.releasing.push(id);
      }
    };
    const fail = (/** @type {unknown} */ err) => finish(0, describe(err, 'request'));
    withToken(this.auth, (token) => {
      // The core may have given up on this POST (stop, its timeout) while an
      // async auth was pending: then it is never sent.
      if (this.posts.get(id) !== slot) return;
      callFetch(this.fetch, this.base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body,
        signal: slot.ac.signal,
      }).then((res) => {
        const ok = res.status >= 200 && res.status < 300;
        readAnswer(res, answerBytes, !ok || readsSuccessBody).then((text) => finish(res.status, text), fail);
      }, fail);
    }, (err) => fail(new Error(`auth callback failed: ${messageOf(err)}`)));
  }

  /**
   * The core gave up on this POST (its timeout, or stop): the request ends
   * now, and its slot gets a fresh controller.
   * @param {number} id
   */
  abortPost(id) {
    const slot = this.posts.get(id);
    if (!slot) return;
    this.posts.delete(id);
    slot.ac.abort();
    slot.ac = new AbortController();
    slot.used = 0;
    this.free.push(slot);
  }

  dispose() {
    for (const ac of this.streams.values()) ac.abort();
    for (const slot of this.posts.values()) slot.ac.abort();
    this.streams.clear();
    this.posts.clear();
    this.free = [];
    this.releasing = [];
    if (this.releaseTimer) clearTimeout(this.releaseTimer);
    this.releaseTimer = null;
  }
}

/** @typedef {{ ac: AbortController, used: number }} Slot */

/** @param {unknown} err @param {string} what */
function describe(err, what) {
  const e = /** @type {any} */ (err);
  const cause = e?.cause ? ` (${messageOf(e.cause)})` : '';
  return `${messageOf(err)}${cause}`;
}

export class TransportCarrier {
  /**
   * @param {CarrierHost} host
   * @param {import('../types/index.js').Transport} transport
   */
  constructor(host, transport) {
    for (const m of ['subscribe', 'start', 'stop', 'post', 'isConnected']) {
      if (typeof (/** @type {any} */ (transport))[m] !== 'function') {
        throw new TypeError(`\`transport\` must implement the Transport interface: ${m}() is missing`);
      }
    }
    this.host = host;
    this.transport = transport;
    /** the core's current stream id, 0 when none */
    this.current = 0;
    this.started = false;
    this.open = false;
    /** @type {Set<number>} */
    this.posts = new Set();
    this.disposed = false;
    /** @type {Promise<void> | undefined} */
    this.stopping = undefined;
    transport.subscribe({
      onOpen: () => {
        this.open = true;
        if (this.current) this.host.streamOpened(this.current, 200, true);
        else if (this.started) this.host.reconnectNow(); // the transport came back by itself
      },
      onClose: (reason) => {
        this.open = false;
        const id = this.current;
        this.current = 0;
        if (id) this.host.streamClosed(id, typeof reason === 'string' && reason ? reason : 'transport closed');
      },
      onFrame: (frame) => {
        if (!this.current) return;
        try {
          // Leases, nearly every frame, go to the core as fields: their task
          // stays here as the object the transport made.
          if (frame !== null && typeof frame === 'object' && frame.type === 'lease') {
            this.host.leaseObject(this.current, frame);
            return;
          }
          const json = typeof frame === 'string' ? frame : JSON.stringify(frame);
          if (typeof json === 'string') this.host.streamFrame(this.current, json);
        } catch (err) {
          // Never into the transport's own code: a frame JSON cannot carry,
          // a getter that throws, an SDK bug.
          this.host.emitError(new Error(`transport delivered a frame that could not be read: ${messageOf(err)}`));
        }
      },
      onError: (err) => this.host.emitError(err instanceof Error ? err : new Error(messageOf(err))),
      onReconnecting: (info) => this.host.emitReconnecting(info),
    });
  }

  /** @param {number} id */
  openStream(id) {
    this.current = id;
    if (this.started) {
      if (this.open || this.isConnected()) this.host.streamOpened(id, 200, true);
      return;
    }
    this.started = true;
    Promise.resolve()
      .then(() => this.transport.start())
      .catch((err) => {
        if (this.current !== id) return;
        this.current = 0;
        this.started = false;
        this.host.streamClosed(id, `transport start failed: ${messageOf(err)}`);
      });
  }

  /** transport.isConnected(), where a throw means no */
  isConnected() {
    try {
      return this.transport.isConnected() === true;
    } catch {
      return false;
    }
  }

  /** @param {number} id */
  closeStream(id) {
    if (this.current === id) this.current = 0;
    this.stopTransport();
  }

  /** Tells the transport to stop, once per start(). */
  stopTransport() {
    if (!this.started) return;
    this.started = false;
    this.open = false;
    // Called now, not in a microtask: stop() must not resolve before the
    // transport was told to stop (dispose() waits for it).
    let stopped;
    try {
      stopped = Promise.resolve(this.transport.stop());
    } catch (err) {
      stopped = Promise.reject(err);
    }
    this.stopping = stopped.catch((err) => this.host.emitError(new Error(`transport stop failed: ${messageOf(err)}`)));
  }

  /**
   * @param {number} id @param {string} path @param {string} body
   * @param {number} answerBytes @param {boolean} readsSuccessBody
   */
  post(id, path, body, answerBytes, readsSuccessBody) {
    this.postFrame(id, path, JSON.parse(body), answerBytes, readsSuccessBody);
  }

  /**
   * @param {number} id @param {string} path @param {object} frame
   * @param {number} answerBytes @param {boolean} [readsSuccessBody]
   */
  postFrame(id, path, frame, answerBytes, readsSuccessBody = false) {
    this.posts.add(id);
    /** @type {any} */
    let sent;
    try {
      sent = this.transport.post(/** @type {any} */ (path), /** @type {any} */ (frame));
      // A native promise is used as it is (one promise less per POST).
      if (!(sent instanceof Promise)) sent = Promise.resolve(sent);
    } catch (err) {
      sent = Promise.reject(err);  // a post() that throws is a network error for that frame
    }
    sent.then((/** @type {unknown} */ res) => {
      // An answer to a POST the core gave up on is still reported while the
      // carrier lives, and the core decides: it reads a late heartbeat
      // answer's lost leases and ignores the rest.
      if (!this.posts.delete(id) && this.disposed) return;
      let text = '';
      if (readsSuccessBody && res !== undefined) {
        try {
          text = (JSON.stringify(res) ?? '').slice(0, answerBytes);
        } catch {
          /* an answer we cannot read is an empty one */
        }
      }
      this.host.postResult(id, 200, text);
    }, (/** @type {any} */ err) => {
      if (!this.posts.delete(id)) return;
      const status = typeof err?.status === 'number' ? err.status : typeof err?.statusCode === 'number' ? err.statusCode : 0;
      this.host.postResult(id, status, JSON.stringify({ error: messageOf(err) }).slice(0, answerBytes));
    });
  }

  /** @param {number} id */
  abortPost(id) {
    this.posts.delete(id);
  }

  /**
   * The neuron has stopped: the transport is stopped too (also when it had
   * closed by itself and the core had no stream left to close).
   * @returns {Promise<void> | undefined} resolves once the transport has stopped
   */
  dispose() {
    this.posts.clear();
    this.disposed = true;
    this.current = 0;
    this.stopTransport();
    return this.stopping;
  }
}

// Carriers: what performs the core's OpenStream / CloseStream / Post /
// AbortPost actions, and reports back through the host (neuron.js).
//
//   HttpCarrier       fetch + ReadableStream; stream bytes go straight into
//                     wasm memory. Used for `gatewayUrl` + `auth` and for an
//                     HttpTransport given as `transport`.
//   TransportCarrier  any other Transport (IpcTransport, custom ones): frames
//                     as objects, posts as objects; the transport reconnects
//                     (or not) by itself.

import { messageOf } from './errors.js';

/**
 * @typedef {{
 *   streamOpened(id: number, status: number, isEventStream: boolean): void,
 *   streamBytes(id: number, chunk: Uint8Array): void,
 *   streamFrame(id: number, json: string): void,
 *   streamClosed(id: number, reason: string): void,
 *   postResult(id: number, status: number, body: string): void,
 *   reconnectNow(): void,
 *   emitError(err: Error): void,
 *   emitReconnecting(info: { attempt: number, delayMs: number, reason: string }): void,
 * }} CarrierHost
 */

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
    /** @type {Map<number, AbortController>} */
    this.streams = new Map();
    /** @type {Set<number>} POSTs whose answer the core still wants */
    this.posts = new Set();
    /** @type {Set<{ ac: AbortController, pending: number, used: number }>} */
    this.batches = new Set();
    /** @type {{ ac: AbortController, pending: number, used: number } | null} */
    this.current = null;
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
   * The signal for the next POST. An AbortController costs more than the
   * rest of a POST's path in Node, and fetch (undici) keeps its abort
   * listener on a signal after the answer, so one signal for all would
   * collect listeners for good: POSTs share a signal in batches of
   * POSTS_PER_SIGNAL, and a batch's controller is dropped once its last POST
   * has answered.
   * @returns {{ ac: AbortController, pending: number }}
   */
  batch() {
    let b = this.current;
    if (!b || b.used >= POSTS_PER_SIGNAL) {
      b = { ac: new AbortController(), pending: 0, used: 0 };
      this.current = b;
      this.batches.add(b);
    }
    b.used++;
    b.pending++;
    return b;
  }

  /** @param {{ ac: AbortController, pending: number, used: number }} b */
  settled(b) {
    if (--b.pending === 0 && b !== this.current) this.batches.delete(b);
  }

  /** @param {number} id @param {string} path @param {string} body */
  post(id, path, body) {
    const b = this.batch();
    this.posts.add(id);
    let done = false;
    const finish = (/** @type {number} */ status, /** @type {string} */ text) => {
      if (done) return;
      done = true;
      this.settled(b);
      if (this.posts.delete(id)) this.host.postResult(id, status, text);
    };
    const fail = (/** @type {unknown} */ err) => finish(0, describe(err, 'request'));
    withToken(this.auth, (token) => {
      callFetch(this.fetch, this.base + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body,
        signal: b.ac.signal,
      }).then((res) => {
        // Reading the body (usually empty) also frees the connection for reuse.
        res.text().then((text) => finish(res.status, text), fail);
      }, fail);
    }, (err) => fail(new Error(`auth callback failed: ${messageOf(err)}`)));
  }

  /**
   * The core gave up on this POST (its timeout): its answer is ignored from
   * now on. The request itself ends with its batch, at the latest in dispose().
   * @param {number} id
   */
  abortPost(id) {
    this.posts.delete(id);
  }

  dispose() {
    for (const ac of this.streams.values()) ac.abort();
    for (const b of this.batches) if (b.pending > 0) b.ac.abort();
    this.streams.clear();
    this.posts.clear();
    this.batches.clear();
    this.current = null;
  }
}

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
        let json;
        try {
          json = typeof frame === 'string' ? frame : JSON.stringify(frame);
        } catch (err) {
          this.host.emitError(new Error(`transport delivered a frame that is not JSON: ${messageOf(err)}`));
          return;
        }
        if (typeof json !== 'string') return;
        try {
          this.host.streamFrame(this.current, json);
        } catch (err) {
          // Never into the transport's own code.
          this.host.emitError(new Error(`neuron-sdk: frame failed: ${messageOf(err)}`));
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

  /** @param {number} id @param {string} path @param {string} body */
  post(id, path, body) {
    this.posts.add(id);
    const frame = JSON.parse(body);
    Promise.resolve()
      .then(() => this.transport.post(/** @type {any} */ (path), frame))
      .then((res) => {
        if (!this.posts.delete(id)) return;
        let text = '';
        try {
          text = res === undefined ? '' : JSON.stringify(res) ?? '';
        } catch {
          /* an answer we cannot read is an empty one */
        }
        this.host.postResult(id, 200, text);
      }, (err) => {
        if (!this.posts.delete(id)) return;
        const status = typeof err?.status === 'number' ? err.status : typeof err?.statusCode === 'number' ? err.statusCode : 0;
        this.host.postResult(id, status, JSON.stringify({ error: messageOf(err) }));
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
    this.current = 0;
    this.stopTransport();
    return this.stopping;
  }
}

// HttpTransport: SSE in, HTTPS POST out.
//
// Given to `new Neuron({ transport })`, it is not driven through the methods
// below: the Neuron reads its options and runs the byte path (fetch stream
// bytes straight into the wasm core, which parses SSE, reconnects with backoff
// and retries 401s itself), exactly as for `gatewayUrl` + `auth`. The Neuron
// then attaches itself (attachHttpTransport), and the object tells the truth
// about that connection: isConnected() is the neuron's stream, start() and
// stop() start and stop the neuron, subscribed callbacks hear its connection
// events and inbound frames.
//
// The methods make it a complete Transport on its own too, for code that uses
// one directly (tests, tools): frames as objects, the same reconnect schedule
// (PROTOCOL.md 1.2) and the same 401 rule (auth again, retry once). Its SSE is
// cut by the core's parser (Sse_* in emscripten/bindings.cpp), the one the
// Neuron uses, with the same bound on an event's size.

import { normalizeGatewayUrl } from './carriers.js';
import { getCore } from './core.js';
import { messageOf } from './errors.js';

const OPTIONS = Symbol('httpTransportOptions');
const DRIVER = Symbol('httpTransportDriver');

/** What a stand-alone HttpTransport keeps of one SSE event at most (as a Neuron's default maxFrameBytes). */
const MAX_EVENT_BYTES = 16 * 1024 * 1024;

/** The frames a gateway sends; the Neuron's `frame` event also carries its own posts. */
const SERVER_FRAMES = new Set(['registered', 'lease', 'cancel', 'capability-revoked', 'disconnect']);

/**
 * Throws unless a Neuron may attach to `t`: one Neuron per transport, and
 * not one already running on its own.
 * @param {HttpTransport} t
 */
export function checkAttachable(t) {
  if (t[DRIVER]) throw new TypeError('this HttpTransport already carries another Neuron: give each Neuron its own');
  if (/** @type {any} */ (t)._run) throw new TypeError('this HttpTransport was started on its own: stop() it first, or give the Neuron a new one');
}

/**
 * A Neuron runs its byte path with this transport's options: from now on the
 * transport reports that connection and its start/stop drive the neuron.
 * @param {HttpTransport} t @param {import('./neuron.js').Neuron} neuron
 */
export function attachHttpTransport(t, neuron) {
  checkAttachable(t);
  const u = /** @type {any} */ (t);
  u[DRIVER] = neuron;
  neuron.on('connection:open', () => u._cb.onOpen?.());
  neuron.on('connection:close', (/** @type {string} */ reason) => u._cb.onClose?.(reason));
  neuron.on('connection:reconnecting', (/** @type {any} */ info) => u._cb.onReconnecting?.(info));
  neuron.on('error', (/** @type {Error} */ err) => u._cb.onError?.(err));
  u._followFrames();
}

/**
 * The options of an HttpTransport the Neuron may drive through its byte path,
 * or undefined when the object's Transport methods are not HttpTransport's
 * own (a subclass or a patched instance): those are driven through the
 * methods, like any custom transport, so the overrides run.
 * @param {HttpTransport} t
 */
export function httpTransportOptions(t) {
  const own = /** @type {any} */ (HttpTransport.prototype);
  for (const m of ['subscribe', 'start', 'stop', 'post', 'isConnected']) {
    if (/** @type {any} */ (t)[m] !== own[m]) return undefined;
  }
  return t[OPTIONS];
}

/**
 * @typedef {{ stopped: boolean, connected: boolean, ac: AbortController | null,
 *   timer: ReturnType<typeof setTimeout> | null, opened: Promise<void>, resolveOpened: () => void }} Run
 */

export class HttpTransport {
  /** @param {import('../types/index.js').HttpTransportOptions} opts */
  constructor(opts) {
    if (opts == null || typeof opts !== 'object') throw new TypeError('new HttpTransport(opts) needs { gatewayUrl, neuronId, auth }');
    if (typeof opts.neuronId !== 'string' || opts.neuronId === '') throw new TypeError('HttpTransport: `neuronId` must be a non-empty string');
    if (typeof opts.auth !== 'function') throw new TypeError('HttpTransport: `auth` must be a function returning the gateway token');
    if (opts.fetch !== undefined && typeof opts.fetch !== 'function') throw new TypeError('HttpTransport: `fetch` must be a fetch-compatible function');
    const gatewayUrl = normalizeGatewayUrl(opts.gatewayUrl);
    /** @private */
    this[OPTIONS] = {
      gatewayUrl,
      auth: opts.auth,
      fetch: opts.fetch,
      initialReconnectDelayMs: opts.initialReconnectDelayMs,
      maxReconnectDelayMs: opts.maxReconnectDelayMs,
    };
    /** @private */ this._neuronId = opts.neuronId;
    /** @private */ this._logger = opts.logger;
    /** @private @type {import('../types/index.js').TransportCallbacks} */ this._cb = {};
    /**
     * The current connect loop, one per start(); stop() ends it. Each loop
     * checks its own record, so a loop that stop() ended never reconnects,
     * whatever start() came after.
     * @private @type {Run | null}
     */
    this._run = null;
    /** Unsubscribes onFrame from an attached Neuron's frames. @private @type {(() => void) | null} */
    this._frames = null;
  }

  /** @param {import('../types/index.js').TransportCallbacks} callbacks */
  subscribe(callbacks) {
    this._cb = callbacks ?? {};
    this._followFrames();
  }

  /**
   * Attached to a Neuron: its inbound frames reach onFrame, and the core
   * builds frame events only while someone listens.
   * @private
   */
  _followFrames() {
    const neuron = this[DRIVER];
    if (!neuron) return;
    this._frames?.();
    this._frames = this._cb.onFrame
      ? neuron.on('frame', (/** @type {any} */ f) => {
        if (SERVER_FRAMES.has(f?.type)) this._cb.onFrame?.(f);
      })
      : null;
  }

  /**
   * Opens the stream and keeps it open, reconnecting with backoff. Resolves
   * once it is open, or when stop() is called first. Attached to a Neuron:
   * starts that neuron (resolves once it is registered).
   */
  start() {
    const neuron = this[DRIVER];
    if (neuron) return neuron.start();
    if (this._run) return this._run.opened;
    try {
      getCore();  // its SSE parser: fail now, with the loader's how-to, not after a stream is open
    } catch (err) {
      return Promise.reject(err);
    }
    /** @type {Run} */
    const run = { stopped: false, connected: false, ac: null, timer: null, opened: Promise.resolve(), resolveOpened: () => {} };
    run.opened = new Promise((resolve) => {
      run.resolveOpened = resolve;
    });
    this._run = run;
    void this._connect(run, 1);
    return run.opened;
  }

  /** Closes the stream for good. Attached to a Neuron: stops it without drain (running handlers are aborted and nacked). */
  async stop() {
    const neuron = this[DRIVER];
    if (neuron) {
      await neuron.stop({ drain: false });
      return;
    }
    const run = this._run;
    if (!run) return;
    this._run = null;
    run.stopped = true;
    if (run.timer) clearTimeout(run.timer);
    run.timer = null;
    run.ac?.abort();
    run.ac = null;
    run.resolveOpened();
    if (run.connected) {
      run.connected = false;
      this._cb.onClose?.('stopped');
    }
  }

  isConnected() {
    const neuron = this[DRIVER];
    return neuron ? neuron.isConnected() : this._run?.connected === true;
  }

  /**
   * POST one frame; resolves with the answer's JSON body (if any), rejects
   * with an Error carrying `status` for a non-2xx answer.
   * @param {string} path @param {object} frame
   */
  async post(path, frame) {
    const body = JSON.stringify(frame);
    let res = await this._fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (res.status === 401) res = await this._fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = await res.text();
    if (res.status < 200 || res.status > 299) {
      let message = text;
      try {
        message = JSON.parse(text).error ?? text;
      } catch { /* not JSON */ }
      throw Object.assign(new Error(`POST ${path} answered ${res.status}: ${message}`), { status: res.status });
    }
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  /** @private @param {string} path @param {RequestInit} init */
  async _fetch(path, init) {
    const o = this[OPTIONS];
    const token = await o.auth();
    if (typeof token !== 'string') throw new TypeError('auth callback must return the gateway token (a string)');
    const f = o.fetch ?? globalThis.fetch;
    return f(o.gatewayUrl + path, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` } });
  }

  /** @private @param {Run} run @param {number} attempt */
  async _connect(run, attempt) {
    if (run.stopped) return;
    const ac = new AbortController();
    run.ac = ac;
    let reason = 'stream ended';
    try {
      const path = `/neuron/events?neuronId=${encodeURIComponent(this._neuronId)}`;
      let res = await this._fetch(path, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
      if (res.status === 401 && !run.stopped) res = await this._fetch(path, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
      if (res.status !== 200 || !/^\s*text\/event-stream/i.test(res.headers.get('content-type') ?? '') || !res.body) {
        await res.body?.cancel().catch(() => {});
        throw new Error(`stream open failed: HTTP ${res.status}`);
      }
      if (run.stopped) {
        await res.body.cancel().catch(() => {});
        return;
      }
      run.connected = true;
      attempt = 1;
      this._cb.onOpen?.();
      run.resolveOpened();
      await this._read(res.body, run);
    } catch (err) {
      if (run.stopped) return;
      reason = messageOf(err);
      this._cb.onError?.(err instanceof Error ? err : new Error(reason));
    }
    if (run.stopped) return;
    if (run.connected) {
      run.connected = false;
      this._cb.onClose?.(reason);
    }
    const o = this[OPTIONS];
    const initial = o.initialReconnectDelayMs ?? 500;
    const max = o.maxReconnectDelayMs ?? 30_000;
    const delayMs = Math.round(Math.min(max, initial * 2 ** (attempt - 1)) * (1 - 0.2 * Math.random()));
    this._cb.onReconnecting?.({ attempt, delayMs, reason });
    run.timer = setTimeout(() => {
      run.timer = null;
      void this._connect(run, attempt + 1);
    }, delayMs);
  }

  /** @private @param {ReadableStream<Uint8Array>} body @param {Run} run */
  async _read(body, run) {
    const core = getCore();
    const sse = core.Sse_new(MAX_EVENT_BYTES);
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || run.stopped) return;
        // Each event's data, each followed by CR (no data holds one).
        const events = core.Sse_feed(sse, value);
        for (let at = 0; at < events.length;) {
          const end = events.indexOf('\r', at);
          this._deliver(events.slice(at, end));
          if (run.stopped) return;
          at = end + 1;
        }
        const dropped = core.Sse_oversized(sse);
        if (dropped) this._cb.onError?.(new Error(`dropped ${dropped} SSE event(s) over ${MAX_EVENT_BYTES} bytes`));
      }
    } finally {
      core.Sse_delete(sse);
    }
  }

  /** @private @param {string} text */
  _deliver(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (err) {
      this._cb.onError?.(new Error(`undecodable frame dropped: ${messageOf(err)}`));
      return;
    }
    this._cb.onFrame?.(frame);
  }
}

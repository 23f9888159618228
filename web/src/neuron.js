// Neuron: the README's public class, a thin host around the wasm core.
//
// The core (src/neuron/engine.h, compiled to wasm) decides everything the
// protocol fixes: leases, slots, acks and nacks, heartbeats, reconnects,
// deadlines. This file only performs what it asks for and feeds back what
// happened:
//   - every core call returns a tape (emscripten/bindings.cpp) that
//     boundary.play() turns into calls on this object: events to emit, streams
//     and POSTs for the carrier, handlers to start or abort, the next deadline;
//   - ONE timer stays armed to the core's earliest deadline;
//   - handlers run here, in JS, with a HandlerContext; their results go back
//     with handlerDone().

import EventEmitter from 'eventemitter3';
import { getCore } from './core.js';
import { HttpCarrier, TransportCarrier } from './carriers.js';
import { HttpTransport, httpTransportOptions } from './http-transport.js';
import { errorFromCore, messageOf, TaskFailure } from './errors.js';
import { isCapabilityDefinition, isZodSchema, zodCheck, zodToWireSchema } from './capability.js';
import { makeClock } from './clock.js';

export const SDK_VERSION = '0.1.1';

const LEVELS = /** @type {const} */ (['debug', 'info', 'warn', 'error']);
/** @type {Record<string, number>} */
const PINO_LEVELS = { trace: 0, debug: 0, info: 1, warn: 2, error: 3, fatal: 3, silent: 4 };
const RESULT = { returned: 0, threw: 1, failed: 2, inputInvalid: 3, outputInvalid: 4 };
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long stop() waits for a transport's own stop() after the core has settled. */
const TRANSPORT_STOP_GRACE_MS = 1000;
const US = '\x1f';

/**
 * A string the core can take: lone UTF-16 surrogates (a string cut inside an
 * emoji) become U+FFFD, as TextEncoder would make them.
 * @param {string} str
 */
const wellFormed = typeof ''.isWellFormed === 'function'
  ? (/** @type {string} */ str) => (str.isWellFormed() ? str : str.toWellFormed())
  : toWellFormed;

/**
 * String.prototype.toWellFormed for engines without it (no regex lookbehind:
 * that is a parse-time SyntaxError where lookbehind is missing too).
 * @param {string} str
 */
function toWellFormed(str) {
  let out = '';
  let from = 0;
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < str.length) {
      const d = str.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    out += str.slice(from, i) + '\uFFFD';
    from = i + 1;
  }
  return from === 0 ? str : out + str.slice(from);
}

/**
 * Calls logger[level](meta, msg), ignoring whatever the logger throws: a
 * broken logger must never break the neuron or a handler.
 * @param {any} logger @param {string} level @param {unknown} meta @param {string} [msg]
 */
function safeLog(logger, level, meta, msg) {
  try {
    logger?.[level](meta, msg);
  } catch {
    /* ignored */
  }
}

/**
 * True if `err` is what ctx.fail() throws; false for anything else, also for
 * values whose instanceof check itself throws (a revoked Proxy).
 * @param {unknown} err
 */
function isTaskFailure(err) {
  try {
    return err instanceof TaskFailure;
  } catch {
    return false;
  }
}

const now = makeClock();

/** Frees a core whose Neuron was garbage-collected without being stopped. */
const registry = typeof FinalizationRegistry === 'function'
  ? new FinalizationRegistry((/** @type {any} */ core) => {
    try {
      core.delete();
    } catch {
      /* already deleted */
    }
  })
  : null;

/** @param {unknown} v */
const isObject = (v) => v !== null && typeof v === 'object';

/** @param {unknown} v @param {string} name */
function optionalNumber(v, name) {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw new TypeError(`\`${name}\` must be a non-negative number of milliseconds, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** A logger that drops everything (the README's default). */
const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** @param {any} logger */
function checkLogger(logger) {
  if (logger === undefined) return null;
  if (!isObject(logger) || LEVELS.some((l) => typeof logger[l] !== 'function')) {
    throw new TypeError('`logger` must have debug/info/warn/error(meta, msg) methods (pino and console-like wrappers do)');
  }
  return logger;
}

/** @param {any} logger */
function coreLogLevel(logger) {
  if (!logger) return 4;
  const level = typeof logger.level === 'string' ? PINO_LEVELS[logger.level] : undefined;
  return level ?? 0;
}

/**
 * The second argument of every handler.
 */
class HandlerContext {
  /**
   * @param {Sink} sink @param {number} hid @param {string} leaseId @param {any} task @param {any} cap
   */
  constructor(sink, hid, leaseId, task, cap) {
    /** @private */ this._sink = sink;
    /** @private */ this._hid = hid;
    /** @private the capability whose handler runs */ this._cap = cap;
    /** Full task metadata (taskId, type, input, attempt, onBehalfOf, ...). */
    this.task = task;
    /** Gateway lease id (for logging / debugging). */
    this.leaseId = leaseId;
    /** @private @type {AbortController | null} */ this._ac = null;
    /** @private @type {DOMException | null} */ this._abortReason = null;
    /** @private @type {any} */ this._log = null;
    /** @private */ this._done = false;
  }

  /** Fires on cancel, lease loss, revocation or shutdown; `reason.message` says which. */
  get signal() {
    // Made on first use: most handlers never look, and an AbortController is
    // the most expensive thing a lease would otherwise allocate.
    if (!this._ac) {
      this._ac = new AbortController();
      if (this._abortReason) this._ac.abort(this._abortReason);
    }
    return this._ac.signal;
  }

  /** Logger scoped to this lease: every record carries leaseId, taskId and capability. */
  get log() {
    if (!this._log) {
      const base = this._sink.n._logger ?? silentLogger;
      const scope = { leaseId: this.leaseId, taskId: this.task?.taskId, capability: this.task?.type };
      const log = /** @type {any} */ ({});
      for (const level of LEVELS) {
        log[level] = (/** @type {any} */ meta, /** @type {string | undefined} */ msg) => {
          try {
            if (typeof meta === 'string' && msg === undefined) base[level]({ ...scope }, meta);
            else base[level]({ ...scope, ...(isObject(meta) ? meta : { value: meta }) }, msg);
          } catch {
            /* a logger that throws must not fail the lease */
          }
        };
      }
      this._log = log;
    }
    return this._log;
  }

  /**
   * Report progress; never blocks, never throws. Newer fields win when the
   * SDK merges updates into one pending POST.
   * @param {{ percent?: number, message?: string, data?: unknown }} update
   */
  progress(update) {
    try {
      if (this._done || !isObject(update)) return;
      this._sink._progress(this._hid, update);
    } catch {
      /* progress never throws */
    }
  }

  /**
   * Terminal failure: ends the lease with nack(kind='terminal'). Never returns.
   * @param {string} reason @param {{ code?: string }} [opts]
   * @returns {never}
   */
  fail(reason, opts) {
    throw new TaskFailure(typeof reason === 'string' ? reason : messageOf(reason), typeof opts?.code === 'string' ? opts.code : undefined);
  }

  /** @internal @param {string} reason */
  _abort(reason) {
    if (this._abortReason) return;
    this._abortReason = new DOMException(reason, 'AbortError');
    if (this._ac) this._ac.abort(this._abortReason);
  }
}

export class Neuron extends EventEmitter {
  /** @param {import('../types/index.js').NeuronOptions} opts */
  constructor(opts) {
    super();
    if (!isObject(opts)) throw new TypeError('new Neuron(opts) needs an options object: { neuronId, gatewayUrl, auth } or { neuronId, transport }');
    const o = /** @type {any} */ (opts);
    if (typeof o.neuronId !== 'string' || o.neuronId === '') {
      throw new TypeError('`neuronId` must be a non-empty string, stable per process/device (e.g. `worker-${hostname}`)');
    }
    /** @internal */ this._logger = checkLogger(o.logger);
    const hasTransport = o.transport !== undefined;
    const hasHttp = o.gatewayUrl !== undefined || o.auth !== undefined;
    if (hasTransport && hasHttp) {
      throw new TypeError('pass either `transport` or `gatewayUrl` + `auth`, not both (an HttpTransport carries its own gatewayUrl and auth)');
    }
    if (!hasTransport && !hasHttp) {
      throw new TypeError('new Neuron needs `gatewayUrl` + `auth` (HTTP) or a `transport` (e.g. IpcTransport)');
    }

    /** @type {any} */
    let http = null;
    if (hasTransport) {
      if (!isObject(o.transport)) throw new TypeError('`transport` must be a Transport object (HttpTransport, IpcTransport or your own)');
      if (o.transport instanceof HttpTransport) http = httpTransportOptions(o.transport);
    } else {
      if (typeof o.auth !== 'function') {
        throw new TypeError('`auth` must be a function returning the gateway token (or a promise of it), e.g. () => process.env.GATEWAY_TOKEN');
      }
      if (o.fetch !== undefined && typeof o.fetch !== 'function') throw new TypeError('`fetch` must be a fetch-compatible function');
      http = { gatewayUrl: o.gatewayUrl, auth: o.auth, fetch: o.fetch, initialReconnectDelayMs: o.initialReconnectDelayMs, maxReconnectDelayMs: o.maxReconnectDelayMs };
    }

    const jitter = o.reconnectJitter;
    if (jitter !== undefined && (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1))) {
      throw new TypeError('`reconnectJitter` must be a number from 0 to 1');
    }
    const config = {
      neuronId: o.neuronId,
      sdkVersion: SDK_VERSION,
      carrier: http ? 'http' : 'ipc',
      heartbeatIntervalMs: optionalNumber(o.heartbeatIntervalMs, 'heartbeatIntervalMs'),
      initialReconnectDelayMs: optionalNumber(http?.initialReconnectDelayMs, 'initialReconnectDelayMs'),
      maxReconnectDelayMs: optionalNumber(http?.maxReconnectDelayMs, 'maxReconnectDelayMs'),
      reconnectJitter: jitter,
      randomSeed: Math.floor(Math.random() * 2 ** 52),
      idleTimeoutMs: optionalNumber(o.idleTimeoutMs, 'idleTimeoutMs'),
      maxFrameBytes: optionalNumber(o.maxFrameBytes, 'maxFrameBytes'),
      requestTimeoutMs: optionalNumber(o.requestTimeoutMs, 'requestTimeoutMs'),
      maxInFlightRequests: optionalNumber(o.maxInFlightRequests, 'maxInFlightRequests'),
    };

    const Module = getCore();
    /** @private */ this._boundary = Module.boundary;
    const core = new Module.Core(JSON.stringify(config));
    const configError = core.configError();
    if (configError) {
      core.delete();
      throw new TypeError(`invalid Neuron options: ${configError}`);
    }
    /** @private */ this._core = core;
    /** @private */ this._hot = Module.boundary.hot(core);
    registry?.register(this, core, this);
    core.setLogLevel(coreLogLevel(this._logger));

    /** @private */ this._sink = new Sink(this);
    /** @private */ this._carrier = http ? new HttpCarrier(this._sink, http) : new TransportCarrier(this._sink, o.transport);
    /** @private @type {{ type: string, handler: Function, input: any, output: any }[]} */ this._caps = [];
    /** @private @type {Map<number, HandlerContext>} */ this._running = new Map();
    /** @private @type {string[]} */ this._tapes = [];
    /** @private @type {HandlerContext[]} leases started by the tapes, whose handlers run once the tapes are played */ this._toRun = [];
    /** @private */ this._playing = false;
    /** @private @type {Promise<void> | null} */ this._startPromise = null;
    /** @private @type {{ resolve: () => void, reject: (e: Error) => void } | null} */ this._startSettle = null;
    /** @private @type {Promise<void> | null} */ this._stopPromise = null;
    /** @private @type {(() => void) | null} */ this._stopResolve = null;
    /** @private */ this._startCalled = false;
    /** @private */ this._frameEvents = false;
  }

  // ------------------------------------------------------------- commands --

  /**
   * Register a handler for a capability; before start() only.
   * handle(registration, handler) | handle(definition, handler) | handle(definition, overrides, handler)
   * @param {any} reg @param {any} a @param {any} [b]
   */
  handle(reg, a, b) {
    if (this._startCalled) {
      throw new Error('Neuron.handle() must be called before start(); use updateCapability() for runtime changes');
    }
    if (!isObject(reg)) throw new TypeError('neuron.handle(reg, handler): `reg` must be { type, scope, concurrency } or a defineCapability() result');
    /** @type {any} */
    let spec;
    /** @type {any} */
    let handler;
    if (isCapabilityDefinition(reg)) {
      const overrides = typeof a === 'function' ? {} : a;
      handler = typeof a === 'function' ? a : b;
      if (!isObject(overrides)) throw new TypeError(`neuron.handle(${reg.type}, overrides, handler): overrides must be { scope?, concurrency? }`);
      spec = {
        type: reg.type,
        scope: overrides.scope ?? reg.scope,
        concurrency: overrides.concurrency ?? reg.concurrency,
        description: reg.description,
        input: reg.input,
        output: reg.output,
      };
    } else {
      handler = a;
      spec = { ...reg, input: null, output: null };
    }
    if (typeof handler !== 'function') throw new TypeError(`neuron.handle(${JSON.stringify(spec.type)}, ...): the handler must be a function (input, ctx) => output`);
    if (typeof spec.type !== 'string') throw new TypeError('capability `type` must be a string like "core/script.python"');
    let onBehalfOf = '';
    if (spec.scope !== 'any') {
      if (!isObject(spec.scope) || typeof spec.scope.onBehalfOf !== 'string' || spec.scope.onBehalfOf === '') {
        throw new TypeError(`capability ${spec.type}: \`scope\` must be 'any' or { onBehalfOf: userId }`);
      }
      onBehalfOf = spec.scope.onBehalfOf;
    }
    if (typeof spec.concurrency !== 'number') {
      throw new TypeError(`capability ${spec.type}: \`concurrency\` must be an integer >= 1`);
    }
    if (spec.description !== undefined && typeof spec.description !== 'string') {
      throw new TypeError(`capability ${spec.type}: \`description\` must be a string`);
    }
    const zod = isZodSchema(spec.input) || isZodSchema(spec.output);
    const schemaText = (/** @type {unknown} */ s, /** @type {string} */ name) => {
      if (s === undefined || s === null) return '';
      if (typeof s !== 'object' && typeof s !== 'boolean') throw new TypeError(`capability ${spec.type}: \`${name}\` must be a JSON Schema object`);
      return JSON.stringify(s);
    };
    const inSchema = zod ? '' : schemaText(spec.inputSchema, 'inputSchema');
    const outSchema = zod ? '' : schemaText(spec.outputSchema, 'outputSchema');
    this._command(this._core.handle(spec.type, onBehalfOf, spec.concurrency, spec.description ?? '', inSchema, outSchema, zod));
    this._caps.push({ type: spec.type, handler, input: zod ? spec.input : null, output: zod ? spec.output : null });
  }

  /** Connect, register, heartbeat. Resolves on the first `registered`; a second call returns the same promise. */
  start() {
    if (this._stopPromise) return Promise.reject(new Error('Neuron.start() after stop(): a stopped neuron stays stopped; create a new Neuron'));
    if (this._startPromise) return this._startPromise;
    if (!this._caps.length) {
      return Promise.reject(new Error('Neuron.start() requires at least one handler: call neuron.handle() first'));
    }
    this._startCalled = true;
    this._startPromise = new Promise((resolve, reject) => {
      this._startSettle = { resolve, reject };
    });
    this._startPromise.catch(() => {}); // a rejected start also surfaces as `error`; never an unhandled rejection by itself
    this._advertiseZodSchemas().then(() => {
      if (!this._core) return;
      if (this._stopPromise) {
        this._sink._settleStart(errorFromCore('stopped', 'Neuron.stop() was called before the gateway registered the neuron'));
        return;
      }
      this._command(this._core.start(now()));
    }).catch((err) => this._sink._settleStart(err instanceof Error ? err : new Error(messageOf(err))));
    return this._startPromise;
  }

  /**
   * Graceful shutdown (PROTOCOL.md rule 12): always ends by its deadline.
   * @param {{ drain?: boolean, timeoutMs?: number }} [opts]
   */
  stop(opts = {}) {
    if (this._stopPromise) return this._stopPromise;
    const drain = opts?.drain ?? true;
    const timeoutMs = opts?.timeoutMs ?? 30_000;
    if (typeof drain !== 'boolean') return Promise.reject(new TypeError('stop({ drain }): `drain` must be a boolean'));
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) {
      return Promise.reject(new TypeError('stop({ timeoutMs }): `timeoutMs` must be a non-negative number'));
    }
    this._startCalled = true;
    this._stopPromise = new Promise((resolve) => {
      this._stopResolve = resolve;
    });
    if (this._core) this._apply(this._core.stop(now(), drain, Math.min(timeoutMs, 1e12)));
    return this._stopPromise;
  }

  /**
   * Change a registered capability's concurrency at runtime (rule 13).
   * @param {{ type: string, concurrency: number }} update
   */
  async updateCapability(update) {
    if (!isObject(update) || typeof update.type !== 'string' || typeof update.concurrency !== 'number') {
      throw new TypeError('updateCapability({ type, concurrency }): type is the capability type, concurrency an integer >= 1');
    }
    if (!this._core) throw new Error('Neuron.updateCapability() after the neuron was disposed');
    this._command(this._core.updateCapability(now(), update.type, update.concurrency));
  }

  /** Counters from the core (leases acked, nacks by kind, reconnects, bytes, per-capability slots). */
  stats() {
    const stats = JSON.parse(this._core.stats());
    stats.capabilities = stats.capabilities.map((/** @type {object} */ c, /** @type {number} */ i) => ({ type: this._caps[i].type, ...c }));
    return stats;
  }

  /** True while the stream (or IPC channel) is open. */
  isConnected() {
    return this._core ? this._core.isConnected() : false;
  }

  /** Skip the rest of a reconnect backoff and connect now. */
  reconnectNow() {
    if (this._core) this._apply(this._core.reconnectNow(now()));
  }

  // --------------------------------------------------------------- events --

  /**
   * Subscribe; returns a function that unsubscribes (`const off = neuron.on('frame', fn); off()`).
   * @param {string | symbol} event @param {(...args: any[]) => void} fn @param {any} [context]
   */
  on(event, fn, context) {
    super.on(event, fn, context);
    if (event === 'frame') this._syncFrameEvents();
    return /** @type {any} */ (() => this.off(event, fn, context));
  }

  /** @param {string | symbol} event @param {(...args: any[]) => void} fn @param {any} [context] */
  addListener(event, fn, context) {
    return this.on(event, fn, context);
  }

  /** @param {string | symbol} event @param {(...args: any[]) => void} fn @param {any} [context] */
  once(event, fn, context) {
    super.once(event, fn, context);
    if (event === 'frame') this._syncFrameEvents();
    return /** @type {any} */ (() => this.off(event, fn, context));
  }

  /** @param {string | symbol} event @param {(...args: any[]) => void} [fn] @param {any} [context] @param {boolean} [once] */
  off(event, fn, context, once) {
    super.off(event, fn, context, once);
    if (event === 'frame') this._syncFrameEvents();
    return this;
  }

  /** @param {string | symbol} event @param {(...args: any[]) => void} [fn] @param {any} [context] @param {boolean} [once] */
  removeListener(event, fn, context, once) {
    return this.off(event, fn, context, once);
  }

  /** @param {string | symbol} [event] */
  removeAllListeners(event) {
    super.removeAllListeners(event);
    this._syncFrameEvents();
    return this;
  }

  /** @private */
  _syncFrameEvents() {
    // The core only builds frame events while someone listens: off, the
    // firehose costs nothing.
    const want = this.listenerCount('frame') > 0;
    if (want !== this._frameEvents && this._core) {
      this._frameEvents = want;
      this._core.setFrameEvents(want);
    }
  }

  /**
   * emit that never lets a listener's exception break the core's loop: it is
   * rethrown on its own (like any uncaught error), after the SDK's work is done.
   * @private @param {string} event @param {...any} args
   */
  _emit(event, ...args) {
    try {
      super.emit(event, ...args);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  // ------------------------------------------------------------ internals --

  /** @private */
  async _advertiseZodSchemas() {
    for (let i = 0; i < this._caps.length; i++) {
      const cap = this._caps[i];
      if (!cap.input && !cap.output) continue;
      const [inp, out] = await Promise.all([
        cap.input ? zodToWireSchema(cap.input, 'input') : { json: '' },
        cap.output ? zodToWireSchema(cap.output, 'output') : { json: '' },
      ]);
      for (const r of [inp, out]) {
        if (r.why) safeLog(this._logger, 'warn', { capability: cap.type }, `capability advertised without its JSON Schema: ${r.why}`);
      }
      if (!this._core || this._stopPromise) return;
      this._command(this._core.advertiseSchemas(i, inp.json, out.json));
    }
  }

  /**
   * Runs a command's tape; throws if the core refused the command.
   * @private @param {string} tape
   */
  _command(tape) {
    if (tape.charCodeAt(0) !== 33 /* ! */) {
      this._apply(tape);
      return;
    }
    const end = tape.indexOf('\x1e');
    const [, code, message] = tape.slice(0, end < 0 ? tape.length : end).split(US);
    if (end >= 0) this._apply(tape.slice(end + 1));
    const err = errorFromCore(code, message);
    throw code === 'invalid-capability' || code === 'duplicate-capability' ? Object.assign(new TypeError(message), { code }) : err;
  }

  /**
   * Plays tapes in the order the core produced them, also when playing one
   * leads to another (a handler that returns synchronously, a listener that
   * calls stop()): those wait until the current tape is done. Handlers run
   * only once every tape so far is played: a stop(), cancel or revocation
   * that a listener or an earlier handler set off reaches their leases
   * first, so no handler starts on a lease that has already ended.
   * @private @param {string} tape
   */
  _apply(tape) {
    if (tape !== '') this._tapes.push(tape);
    if (this._playing) return;
    this._playing = true;
    try {
      for (;;) {
        const t = this._tapes.shift();
        if (t !== undefined) {
          this._boundary.play(t, this._sink);
          continue;
        }
        const ctx = this._toRun.shift();
        if (ctx === undefined) break;
        this._sink._run(ctx);
      }
    } finally {
      this._playing = false;
    }
  }

}

/**
 * Receives the core's tapes (boundary.play calls these methods in order) and
 * the carrier's reports. Kept off Neuron so its public surface is the README's.
 */
class Sink {
  /** @param {Neuron} n */
  constructor(n) {
    /** @type {any} */
    this.n = n;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._timer = null;
    this._timerAt = Infinity;
    this._onTimer = () => {
      this._timer = null;
      this._timerAt = Infinity;
      const core = this.n._core;
      if (core) this.n._apply(this.n._hot.timeout(now()));
    };
  }

  /** @param {string} tape */
  apply(tape) {
    this.n._apply(tape);
  }

  // ---- the tape's sink: events ----

  /** @internal */ open() { this.n._emit('connection:open'); }
  /** @internal @param {string} sessionId @param {number} capabilities */
  registered(sessionId, capabilities) { this.n._emit('connection:registered', { sessionId, capabilities }); }
  /** @internal @param {string} reason */
  close(reason) { this.n._emit('connection:close', reason); }
  /** @internal @param {number} attempt @param {number} delayMs @param {string} reason */
  reconnecting(attempt, delayMs, reason) { this.n._emit('connection:reconnecting', { attempt, delayMs, reason }); }
  /** @internal @param {string} code @param {string} message @param {number} status */
  error(code, message, status) { this.n._emit('error', errorFromCore(code, message, status)); }
  /** @internal @param {string} json */
  frame(json) {
    if (this.n.listenerCount('frame') === 0) return;
    this.n._emit('frame', JSON.parse(json));
  }
  /** @internal @param {number} level @param {string} msg @param {string} meta */
  log(level, msg, meta) {
    const logger = this.n._logger;
    if (logger) safeLog(logger, LEVELS[level] ?? 'info', JSON.parse(meta), msg);
  }
  /** @internal @param {string} code @param {string} message @param {number} status */
  startSettled(code, message, status) {
    this._settleStart(code ? errorFromCore(code, message, status) : null);
  }
  /** @internal */
  stopSettled() {
    this._clearTimer();
    const stopped = this.n._carrier.dispose();
    for (const ctx of this.n._running.values()) ctx._abort('shutting down');
    this.n._running.clear();
    const resolve = this.n._stopResolve;
    this.n._stopResolve = null;
    if (!stopped) {
      resolve?.();
      return;
    }
    // stop() ends by its deadline (rule 12) also when a transport's stop()
    // never settles (an Electron main process that is gone): it gets a short
    // grace, then stop() resolves anyway and says so.
    const timer = setTimeout(() => {
      this.n._emit('error', errorFromCore('transport-stop-timeout',
        `the transport's stop() did not settle within ${TRANSPORT_STOP_GRACE_MS} ms; Neuron.stop() resolved without waiting for it`));
      resolve?.();
    }, TRANSPORT_STOP_GRACE_MS);
    stopped.then(() => {
      clearTimeout(timer);
      resolve?.();
    });
  }

  /** @private @param {Error | null} err */
  _settleStart(err) {
    const s = this.n._startSettle;
    if (!s) return;
    this.n._startSettle = null;
    if (err) s.reject(err);
    else s.resolve();
  }

  // ---- the tape's sink: actions ----

  /** @internal @param {number} id @param {string} path */
  openStream(id, path) { this.n._carrier.openStream(id, path); }
  /** @internal @param {number} id */
  closeStream(id) { this.n._carrier.closeStream(id); }
  /** @internal @param {number} id @param {string} path @param {string} body */
  post(id, path, body) { this.n._carrier.post(id, path, body); }
  /** @internal @param {number} id */
  abortPost(id) { this.n._carrier.abortPost(id); }

  /** @internal @param {number} hid @param {string} reason */
  abortHandler(hid, reason) {
    this.n._running.get(hid)?._abort(reason);
  }

  /** @internal @param {number} hid @param {number} index @param {string} leaseId @param {string} taskJson */
  startHandler(hid, index, leaseId, taskJson) {
    const ctx = new HandlerContext(this, hid, leaseId, JSON.parse(taskJson), this.n._caps[index]);
    this.n._running.set(hid, ctx);
    this.n._toRun.push(ctx); // run by _apply once the tapes are played
  }

  /** @internal @param {HandlerContext} ctx */
  _run(ctx) {
    const cap = /** @type {any} */ (ctx)._cap;
    const task = ctx.task;
    if (cap.input) {
      let checked;
      try {
        checked = zodCheck(cap.input, task.input);
      } catch (err) {
        this._done(ctx, RESULT.threw, '', `input validation threw: ${messageOf(err)}`, '', '');
        return;
      }
      if (checked instanceof Promise) {
        checked.then((c) => this._afterInputCheck(cap, ctx, c), (err) => this._done(ctx, RESULT.threw, '', `input validation threw: ${messageOf(err)}`, '', ''));
      } else {
        this._afterInputCheck(cap, ctx, checked);
      }
      return;
    }
    this._invoke(cap, ctx, task.input);
  }

  /** @private @param {any} cap @param {HandlerContext} ctx @param {any} checked */
  _afterInputCheck(cap, ctx, checked) {
    if (!checked.ok) {
      this._done(ctx, RESULT.inputInvalid, '', 'input does not match the capability schema', '', errorsText(checked.errors));
      return;
    }
    this._invoke(cap, ctx, checked.data);
  }

  /** @private @param {any} cap @param {HandlerContext} ctx @param {unknown} input */
  _invoke(cap, ctx, input) {
    // Aborted before it ran (cancelled, revoked, stop() without drain, also
    // while an async zod check was pending): the handler is never called.
    const aborted = /** @type {any} */ (ctx)._abortReason;
    if (aborted) {
      this._done(ctx, RESULT.threw, '', aborted.message, '', '');
      return;
    }
    let out;
    try {
      out = cap.handler(input, ctx);
    } catch (err) {
      this._threw(ctx, err);
      return;
    }
    // Promise semantics, without a microtask for the plain values most
    // handlers return: `then` is read once; a getter or a then() that throws
    // is a rejection. Nothing the handler returns can throw past this point.
    /** @type {unknown} */
    let then;
    if (out !== null && (typeof out === 'object' || typeof out === 'function')) {
      try {
        then = /** @type {any} */ (out).then;
      } catch (err) {
        this._threw(ctx, err);
        return;
      }
    }
    if (typeof then !== 'function') {
      this._returned(cap, ctx, out);
      return;
    }
    const returned = (/** @type {unknown} */ v) => this._returned(cap, ctx, v);
    const threw = (/** @type {unknown} */ e) => this._threw(ctx, e);
    new Promise((resolve, reject) => {
      /** @type {Function} */ (then).call(out, resolve, reject);
    }).then(returned, threw);
  }

  /** @private @param {any} cap @param {HandlerContext} ctx @param {unknown} value */
  _returned(cap, ctx, value) {
    if (ctx._done) return;
    if (cap.output) {
      let checked;
      try {
        checked = zodCheck(cap.output, value);
      } catch (err) {
        this._done(ctx, RESULT.threw, '', `output validation threw: ${messageOf(err)}`, '', '');
        return;
      }
      if (checked instanceof Promise) {
        checked.then((c) => this._afterOutputCheck(ctx, c), (err) => this._done(ctx, RESULT.threw, '', `output validation threw: ${messageOf(err)}`, '', ''));
        return;
      }
      this._afterOutputCheck(ctx, checked);
      return;
    }
    this._sendOutput(ctx, value);
  }

  /** @private @param {HandlerContext} ctx @param {any} checked */
  _afterOutputCheck(ctx, checked) {
    if (!checked.ok) {
      this._done(ctx, RESULT.outputInvalid, '', 'output does not match the capability schema', '', errorsText(checked.errors));
      return;
    }
    this._sendOutput(ctx, checked.data);
  }

  /** @private @param {HandlerContext} ctx @param {unknown} value */
  _sendOutput(ctx, value) {
    let json;
    try {
      json = JSON.stringify(value === undefined ? null : value);
    } catch (err) {
      // A BigInt, a cycle: no retry would change that.
      this._done(ctx, RESULT.failed, '', `handler output is not JSON-serialisable: ${messageOf(err)}`, 'INVALID_OUTPUT', '');
      return;
    }
    this._done(ctx, RESULT.returned, json ?? 'null', '', '', '');
  }

  /** @private @param {HandlerContext} ctx @param {unknown} err */
  _threw(ctx, err) {
    if (isTaskFailure(err)) {
      const f = /** @type {TaskFailure} */ (err);
      this._done(ctx, RESULT.failed, '', f.message, f.code ?? '', '');
    } else {
      this._done(ctx, RESULT.threw, '', messageOf(err), '', '');
    }
  }

  /**
   * @private @param {HandlerContext} ctx @param {number} result @param {string} output
   * @param {string} reason @param {string} code @param {string} errors
   */
  _done(ctx, result, output, reason, code, errors) {
    if (ctx._done) return;
    ctx._done = true;
    const hid = /** @type {any} */ (ctx)._hid;
    this.n._running.delete(hid);
    if (!this.n._core) return;
    if (result === RESULT.returned) this.n._apply(this.n._hot.handlerReturned(now(), hid, output));
    else this.n._apply(this.n._core.handlerDone(now(), hid, result, '', wellFormed(reason), wellFormed(code), wellFormed(errors)));
  }

  /** @internal @param {number} hid @param {{ percent?: number, message?: string, data?: unknown }} u */
  _progress(hid, u) {
    if (!this.n._core) return;
    const percent = typeof u.percent === 'number' && Number.isFinite(u.percent) ? u.percent : NaN;
    const hasMessage = typeof u.message === 'string';
    let data = '';
    if (u.data !== undefined) {
      try {
        data = JSON.stringify(u.data) ?? '';
      } catch {
        data = '';
      }
    }
    this.n._apply(this.n._core.progress(now(), hid, percent, hasMessage, hasMessage ? wellFormed(/** @type {string} */ (u.message)) : '', data !== '', data));
  }

  // ---- the tape's sink: the one timer ----

  /** @internal @param {number} at ms since the epoch, or -1 for none */
  deadline(at) {
    if (at < 0) {
      this._clearTimer();
      return;
    }
    // Keep an earlier timer: when it fires the core just reports the real
    // deadline again. Re-arming on every tape would cost a clearTimeout +
    // setTimeout per lease.
    if (this._timer !== null && this._timerAt <= at) return;
    this._clearTimer();
    this._timerAt = at;
    this._timer = setTimeout(this._onTimer, Math.min(MAX_TIMER_MS, Math.max(0, at - now())));
  }

  /** @private */
  _clearTimer() {
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
    this._timerAt = Infinity;
  }

  // ---- carrier host ----

  /** @internal @param {number} id @param {number} status @param {boolean} ok */
  streamOpened(id, status, ok) { if (this.n._core) this.n._apply(this.n._core.streamOpened(now(), id, status, ok)); }
  /** @internal @param {number} id @param {Uint8Array} chunk */
  streamBytes(id, chunk) { if (this.n._core) this.n._apply(this.n._hot.streamBytes(now(), id, chunk)); }
  /** @internal @param {number} id @param {string} json */
  streamFrame(id, json) { if (this.n._core) this.n._apply(this.n._hot.streamFrame(now(), id, json)); }
  /** @internal @param {number} id @param {string} reason */
  streamClosed(id, reason) { if (this.n._core) this.n._apply(this.n._core.streamClosed(now(), id, reason)); }
  /** @internal @param {number} id @param {number} status @param {string} body */
  postResult(id, status, body) { if (this.n._core) this.n._apply(this.n._hot.postResult(now(), id, status, body)); }
  /** @internal @param {Error} err */
  emitError(err) { this.n._emit('error', err); }
  /**
   * A tape record threw (the rest of the tape still played): a bug of the
   * SDK or of a user-supplied fetch / transport; reported as `error`.
   * @internal @param {unknown} err
   */
  failedRecord(err) {
    this.n._emit('error', errorFromCore('internal', `neuron-sdk: ${messageOf(err)}`));
  }
  /** @internal @param {{ attempt: number, delayMs: number, reason: string }} info */
  emitReconnecting(info) { this.n._emit('connection:reconnecting', info); }

  reconnectNow() {
    this.n.reconnectNow();
  }
}

/** @param {{ path: string, message: string }[]} errors */
function errorsText(errors) {
  let s = '';
  for (const e of errors) s += (s ? US : '') + e.path.replace(/\x1f/g, '?') + US + e.message.replace(/\x1f/g, '?');
  return s;
}

// Neuron: the README's public class.
//
// The core (src/neuron/engine.h, compiled to wasm) decides everything the
// protocol fixes: leases, slots, acks and nacks, heartbeats, reconnects,
// deadlines. host.js feeds it and plays what it answers; carriers.js does the
// I/O; handlers.js runs the handlers. This file checks the options, turns the
// README's calls into commands and keeps the promises of start() and stop().

import EventEmitter from 'eventemitter3';
import { getCore } from './core.js';
import { HttpCarrier, TransportCarrier, releasesPosts } from './carriers.js';
import { HttpTransport, attachHttpTransport, checkAttachable, httpTransportOptions } from './http-transport.js';
import { errorFromCore, messageOf } from './errors.js';
import { isCapabilityDefinition, isZodSchema, zodToWireSchema } from './capability.js';
import { Host, now, safeLog, wellFormed } from './host.js';
import { compileFastCheck } from './schema-fast.js';
import { loadSchemaModule } from './schema.js';

export const SDK_VERSION = '0.1.1';

const LEVELS = /** @type {const} */ (['debug', 'info', 'warn', 'error']);
/** @type {Record<string, number>} */
const PINO_LEVELS = { trace: 0, debug: 0, info: 1, warn: 2, error: 3, fatal: 3, silent: 4 };

/** Frees the core of a Neuron that was garbage-collected, stopped or not (a stopped one still answers stats()). */
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

/** @param {unknown} v @param {string} name */
function optionalCount(v, name) {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 1e6) {
    throw new TypeError(`\`${name}\` must be an integer from 1 to 1000000, got ${JSON.stringify(v)}`);
  }
  return v;
}

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
      if (http) checkAttachable(o.transport);
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
      maxInFlightRequests: optionalCount(o.maxInFlightRequests, 'maxInFlightRequests'),
      progressGraceMs: optionalNumber(o.progressGraceMs, 'progressGraceMs'),
      releasesPosts: http != null && releasesPosts(http),
    };

    const Module = getCore();
    const core = new Module.Core(JSON.stringify(config));
    const configError = core.configError();
    if (configError) {
      core.delete();
      throw new TypeError(`invalid Neuron options: ${configError}`);
    }
    /** @private */ this._core = core;
    registry?.register(this, core, this);
    core.setLogLevel(coreLogLevel(this._logger));
    /** @private @type {{ type: string, handler: Function, input: any, output: any }[]} */ this._caps = [];
    /** @private */ this._host = new Host(this, Module, core, { neuronId: o.neuronId, logger: this._logger, caps: this._caps, buildsAcks: !http });
    this._host.carrier = http ? new HttpCarrier(this._host, http) : new TransportCarrier(this._host, o.transport);
    /** @private @type {Promise<void> | null} */ this._startPromise = null;
    /** @private @type {{ resolve: () => void, reject: (e: Error) => void } | null} */ this._startSettle = null;
    /** @private @type {Promise<void> | null} */ this._stopPromise = null;
    /** @private @type {(() => void) | null} */ this._stopResolve = null;
    /** @private */ this._startCalled = false;
    /** @private */ this._frameEvents = false;
    // The HttpTransport the user holds reports this neuron's connection.
    if (http && hasTransport) attachHttpTransport(o.transport, this);
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
    this._command(() => this._core.handle(wellFormed(spec.type), wellFormed(onBehalfOf), spec.concurrency, wellFormed(spec.description ?? ''), inSchema, outSchema, zod));
    this._caps.push({ type: spec.type, handler, input: zod ? spec.input : null, output: zod ? spec.output : null, inputSchema: inSchema, outputSchema: outSchema });
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
    this._prepare().then(() => {
      if (this._stopPromise) {
        this._startSettled(errorFromCore('stopped', 'Neuron.stop() was called before the gateway registered the neuron'));
        return;
      }
      this._command(() => this._core.start(now()));
      // Leases given as objects bring their input's JSON, and handlers their
      // output's, only where the core checks it.
      this._caps.forEach((cap, i) => {
        const checks = this._core.checks(i);
        if (checks & 1) this._host.checkedInput.set(cap.type, compileFastCheck(cap.inputSchema));
        if (checks & 2) this._host.checkedOutput.set(cap.type, compileFastCheck(cap.outputSchema));
      });
    }).catch((err) => this._startSettled(err instanceof Error ? err : new Error(messageOf(err))));
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
    this._host.stopCalled = true;
    this._host.command(() => this._core.stop(now(), drain, Math.min(timeoutMs, 1e12)));
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
    this._command(() => this._core.updateCapability(now(), wellFormed(update.type), update.concurrency));
  }

  /** Counters from the core (leases acked, nacks by kind, reconnects, bytes, requests, per-capability slots). */
  stats() {
    const stats = JSON.parse(this._core.stats());
    stats.capabilities = stats.capabilities.map((/** @type {object} */ c, /** @type {number} */ i) => ({ type: this._caps[i].type, ...c }));
    return stats;
  }

  /** True while the stream (or IPC channel) is open. */
  isConnected() {
    return this._core.isConnected();
  }

  /** Skip the rest of a reconnect backoff and connect now. */
  reconnectNow() {
    this._host.reconnectNow();
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

  // ------------------------------------------------------------ internals --

  /**
   * emit that never lets a listener's exception break the core's loop: it is
   * rethrown on its own (like any uncaught error), after the SDK's work is done.
   * @internal @param {string} event @param {...any} args
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

  /** @internal @param {Error | null} err */
  _startSettled(err) {
    const s = this._startSettle;
    if (!s) return;
    this._startSettle = null;
    if (err) s.reject(err);
    else s.resolve();
  }

  /** @internal The core has settled stop(); the carrier follows, within its grace. */
  _stopSettled() {
    const resolve = this._stopResolve;
    this._stopResolve = null;
    this._host.disposeCarrier().then(() => resolve?.());
  }

  /**
   * Runs a command; throws if the core refused it.
   * @private @param {() => number} call
   */
  _command(call) {
    const failed = this._host.command(call);
    if (!failed) return;
    const [code, message] = failed;
    throw code === 'invalid-capability' || code === 'duplicate-capability' ? Object.assign(new TypeError(message), { code }) : errorFromCore(code, message);
  }

  /**
   * Before start(): the JSON Schema validator when a capability brings a raw
   * JSON Schema (a module of its own, loaded on demand), and the JSON
   * Schemas of zod capabilities for the register frame.
   * @private
   */
  async _prepare() {
    if (this._core.needsSchemaValidator()) await loadSchemaModule();
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
      if (this._stopPromise) return;
      this._command(() => this._core.advertiseSchemas(i, inp.json, out.json));
    }
  }
}

// @ts-check
// Hosts one real Neuron (the npm package, as any consumer imports it) and
// records everything it does on the wire:
//   - inbound frames from the `frame` event;
//   - outbound POSTs, their bodies and HTTP status, and the event stream's
//     opening and end, through the `fetch` the Neuron is given (the README's
//     test override), which is also where client-side faults are injected
//     (drop the stream, stall heartbeats, answer the next POST with 401/503);
//   - handler starts, through a wrapper around each handler.
// The page renders `log` (the firehose), `board` (leases) and `conn`.

import { Neuron } from '@holokai/neuron-sdk';
import { FrameLog, describeFrame } from './firehose.js';
import { LeaseBoard } from './leases.js';
import { compileCapability } from './capabilities.js';
import { replaySchedule } from './session.js';

/**
 * @typedef {import('./session.js').CapabilitySpec} CapabilitySpec
 * @typedef {{
 *   state: 'idle' | 'connecting' | 'registered' | 'reconnecting' | 'stopping' | 'closed',
 *   sessionId: string,
 *   effective: { type: string, scope: unknown, concurrency: number }[],
 *   rejected: { type: string, reason: string }[],
 *   attempt: number, delayMs: number, reconnectAt: number,
 *   reason: string,
 * }} ConnState
 */

/** @returns {ConnState} */
const idleConn = () => ({ state: 'idle', sessionId: '', effective: [], rejected: [], attempt: 0, delayMs: 0, reconnectAt: 0, reason: '' });

export class TesterHost {
  constructor({ logCapacity = 5000 } = {}) {
    this.log = new FrameLog(logCapacity);
    this.board = new LeaseBoard();
    /** @type {ConnState} */
    this.conn = idleConn();
    /** @type {Neuron | null} */
    this.neuron = null;
    /** @type {'live' | 'replay'} */
    this.mode = 'live';
    this.neuronId = '';
    this.gatewayUrl = '';
    this.startedAt = 0;
    /** @type {CapabilitySpec[]} the capabilities the running neuron was started with */
    this.capabilities = [];
    /** @type {{ at: number, message: string }[]} */
    this.errors = [];
    this.faults = { nextPostStatus: 0, stallHeartbeats: false };
    /** @type {(() => void) | null} drops the open event stream */
    this.dropCurrentStream = null;
    /** @type {Set<() => void>} released when heartbeats are unstalled */
    this.stalled = new Set();
    /** @type {Set<() => void>} */
    this.listeners = new Set();
    /** @type {ReturnType<typeof setTimeout>[]} */
    this.replayTimers = [];
  }

  /** @param {() => void} fn @returns {() => void} */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** @private */
  changed() {
    for (const fn of this.listeners) fn();
  }

  get running() {
    return this.neuron !== null;
  }

  /** @param {string} message */
  error(message) {
    this.errors.push({ at: Date.now(), message });
    if (this.errors.length > 50) this.errors.shift();
    this.log.push({ t: Date.now(), dir: 'conn', type: 'error', frame: { message }, note: message });
    this.changed();
  }

  /**
   * Compiles every capability (errors by index and field) without starting.
   * @param {CapabilitySpec[]} specs
   */
  static check(specs) {
    /** @type {Record<number, import('./capabilities.js').FieldErrors>} */
    const errors = {};
    const compiled = [];
    const seen = new Set();
    for (const [i, s] of specs.entries()) {
      const r = compileCapability(s);
      if (!r.ok) errors[i] = r.errors;
      else if (seen.has(s.type)) errors[i] = { type: `${s.type} is already in the list` };
      else compiled.push(r.compiled);
      seen.add(s.type);
    }
    return { errors, compiled };
  }

  /**
   * Creates and starts a neuron on a gateway.
   * @param {{ gatewayUrl: string, token: string, neuronId: string, capabilities: CapabilitySpec[], idleTimeoutMs?: number, heartbeatIntervalMs?: number }} opts
   * @returns {Promise<void>} resolves once registered; rejects with what went wrong
   */
  async start({ gatewayUrl, token, neuronId, capabilities, idleTimeoutMs, heartbeatIntervalMs }) {
    if (this.neuron) throw new Error('a neuron is already running: stop it first');
    const { errors, compiled } = TesterHost.check(capabilities);
    if (Object.keys(errors).length) throw Object.assign(new Error('fix the capabilities marked in red first'), { fieldErrors: errors });
    if (!compiled.length) throw new Error('add at least one capability first');
    this.mode = 'live';
    this.resetRun(neuronId, gatewayUrl, capabilities);
    this.token = token;
    const neuron = new Neuron({
      neuronId,
      gatewayUrl,
      auth: () => this.token ?? '',
      fetch: this.recordingFetch(),
      logger: this.pageLogger(),
      ...(idleTimeoutMs ? { idleTimeoutMs } : {}),
      ...(heartbeatIntervalMs ? { heartbeatIntervalMs } : {}),
    });
    return this.run(neuron, compiled);
  }

  /**
   * Replays a recorded session through the same core, without a gateway.
   * @param {import('./session.js').Session} session @param {{ speed?: number }} [opts]
   */
  async replay(session, { speed = 1 } = {}) {
    if (this.neuron) throw new Error('stop the running neuron before replaying a session');
    const { errors, compiled } = TesterHost.check(session.capabilities);
    if (Object.keys(errors).length) throw new Error(`the session's capabilities do not compile: ${JSON.stringify(errors)}`);
    this.mode = 'replay';
    this.resetRun(session.neuronId, 'replay (no gateway)', session.capabilities);
    const schedule = replaySchedule(session, { speed });
    const host = this;
    /** @type {any} */
    let cb = {};
    let open = false;
    let next = 0; // the first frame not played yet
    let lastFramePlayedAt = 0;
    const IDLE_LIMIT_MS = 30_000;
    // Done once the last frame has played and every lease it started has
    // ended, or IDLE_LIMIT_MS after the last frame (a handler that never settles).
    const checkDone = () => {
      if (host.replayDone || next < schedule.length) return;
      const busy = host.slots().some((c) => c.queued > 0 || c.running > 0);
      if (busy && Date.now() - lastFramePlayedAt < IDLE_LIMIT_MS) {
        host.replayTimers.push(setTimeout(checkDone, 50));
        return;
      }
      host.replayDone = true;
      host.replayNote = busy ? `leases still running ${IDLE_LIMIT_MS / 1000} s after the last frame` : '';
      host.changed();
    };
    // Plays frames from `next` on, keeping the recorded gaps between them.
    // One timer at a time, each playing the next frame: a timer per frame
    // could fire out of order when two frames share a time (their delays are
    // computed a millisecond apart), and skip a frame. A replayed disconnect
    // stops the transport (clearing the timer); start() plays on from `next`.
    let origin = 0;
    let chain = 0; // bumped by each start and stop: a timer of an older chain does nothing
    const arm = (/** @type {number} */ c) => host.replayTimers.push(next < schedule.length
      ? setTimeout(() => step(c), Math.max(0, origin + schedule[next].at - Date.now()))
      : setTimeout(checkDone, 50));
    const step = (/** @type {number} */ c) => {
      // Every frame that is due, in order (frames recorded together arrive
      // together; a browser clamps nested timers to 4 ms, so one timer a
      // frame would stretch a burst).
      do {
        if (!open || c !== chain) return;
        lastFramePlayedAt = Date.now();
        cb.onFrame?.(schedule[next++].frame);
      } while (next < schedule.length && origin + schedule[next].at <= Date.now());
      if (c === chain) arm(c);
    };
    const playFrom = () => {
      origin = Date.now() - (schedule[next]?.at ?? 0);
      arm(++chain);
    };
    const transport = {
      /** @param {any} callbacks */
      subscribe(callbacks) { cb = callbacks; },
      // The SDK stops and restarts a transport when a recorded `disconnect`
      // replays: the replay pauses and goes on from where it was.
      async start() {
        open = true;
        queueMicrotask(() => {
          if (!open) return;
          cb.onOpen?.();
          playFrom();
        });
      },
      async stop() {
        open = false;
        chain++;
        for (const t of host.replayTimers.splice(0)) clearTimeout(t);
      },
      /** @param {string} path @param {any} frame */
      async post(path, frame) {
        const entry = host.pushFrame('out', frame);
        entry.status = 200;
        host.board.outbound(frame, entry.t);
        host.changed();
        return {};
      },
      isConnected() { return open; },
    };
    this.replayDone = false;
    this.replayNote = '';
    const neuron = new Neuron({ neuronId: session.neuronId, transport, logger: this.pageLogger() });
    return this.run(neuron, compiled);
  }

  /** @private @param {string} neuronId @param {string} gatewayUrl @param {CapabilitySpec[]} capabilities */
  resetRun(neuronId, gatewayUrl, capabilities) {
    this.log.clear();
    this.board.clear();
    this.errors = [];
    this.conn = { ...idleConn(), state: 'connecting' };
    this.neuronId = neuronId;
    this.gatewayUrl = gatewayUrl;
    this.startedAt = Date.now();
    this.capabilities = capabilities.map((c) => ({ ...c }));
  }

  /** @private @param {Neuron} neuron @param {import('./capabilities.js').Compiled[]} compiled */
  async run(neuron, compiled) {
    this.neuron = neuron;
    for (const c of compiled) {
      const handler = (/** @type {unknown} */ input, /** @type {any} */ ctx) => {
        this.board.started(ctx.leaseId, Date.now());
        this.changed();
        return c.run(input, ctx);
      };
      try {
        neuron.handle(/** @type {any} */ (c.reg), handler);
      } catch (err) {
        this.neuron = null;
        this.conn = idleConn();
        throw new Error(`${c.reg.type}: ${/** @type {Error} */ (err).message}`);
      }
    }
    neuron.on('frame', (/** @type {any} */ frame) => {
      const now = Date.now();
      this.board.inbound(frame, now);
      this.pushFrame('in', frame);
      if (frame.type === 'disconnect' && frame.reconnect === false && this.mode === 'live') {
        // The gateway will not have this neuron back (superseded by another tab with the same
        // neuronId, for one): the SDK will not reconnect, so the page stops it and says why.
        const why = `disconnected by the gateway: ${frame.reason ?? 'no reason given'} (no reconnect)`;
        queueMicrotask(() => this.stop({ drain: false, timeoutMs: 0 }).then(() => {
          this.conn = { ...this.conn, state: 'closed', reason: why };
          this.error(why);
        }));
      }
      if (frame.type === 'registered') {
        this.conn = {
          ...this.conn, state: 'registered', sessionId: String(frame.sessionId ?? ''),
          effective: Array.isArray(frame.capabilities) ? frame.capabilities : [],
          rejected: Array.isArray(frame.rejected) ? frame.rejected : [],
          attempt: 0, reason: '',
        };
      }
      this.changed();
    });
    neuron.on('connection:reconnecting', (/** @type {any} */ info) => {
      this.conn = { ...this.conn, state: 'reconnecting', attempt: info.attempt, delayMs: info.delayMs, reconnectAt: Date.now() + info.delayMs, reason: info.reason };
      this.log.push({ t: Date.now(), dir: 'conn', type: 'reconnecting', frame: info, note: `attempt ${info.attempt} in ${info.delayMs} ms: ${info.reason}` });
      this.changed();
    });
    neuron.on('connection:open', () => {
      if (this.conn.state !== 'stopping') this.conn = { ...this.conn, state: 'connecting' };
      this.changed();
    });
    neuron.on('connection:close', (/** @type {string} */ reason) => {
      this.log.push({ t: Date.now(), dir: 'conn', type: 'stream-close', frame: { reason }, note: reason });
      if (this.conn.state === 'registered') this.conn = { ...this.conn, state: 'connecting', reason };
      this.changed();
    });
    neuron.on('error', (/** @type {any} */ err) => this.error(`${err.code ? `${err.code}: ` : ''}${err.message}`));
    try {
      await neuron.start();
    } catch (err) {
      await this.stop({ drain: false, timeoutMs: 0 }).catch(() => {});
      this.conn = { ...idleConn(), state: 'closed', reason: /** @type {Error} */ (err).message };
      this.changed();
      throw err;
    }
  }

  /** @param {{ drain: boolean, timeoutMs: number }} opts */
  async stop({ drain, timeoutMs }) {
    const neuron = this.neuron;
    if (!neuron) return;
    this.conn = { ...this.conn, state: 'stopping' };
    this.changed();
    this.releaseStalled();
    await neuron.stop({ drain, timeoutMs });
    for (const t of this.replayTimers.splice(0)) clearTimeout(t);
    this.board.closeOpen(Date.now());
    this.neuron = null;
    this.conn = { ...this.conn, state: 'closed', reason: 'stopped' };
    this.changed();
  }

  /** @param {string} type @param {number} concurrency */
  async updateConcurrency(type, concurrency) {
    if (!this.neuron) throw new Error('start the neuron first');
    await this.neuron.updateCapability({ type, concurrency });
    const c = this.capabilities.find((x) => x.type === type);
    if (c) c.concurrency = concurrency;
    this.conn = { ...this.conn, effective: this.conn.effective.map((e) => (e.type === type ? { ...e, concurrency } : e)) };
    this.changed();
  }

  /** Slots per capability from the core: { type, queued, running, concurrency }. */
  slots() {
    if (!this.neuron) return [];
    try {
      return /** @type {{ type: string, queued: number, running: number, concurrency: number }[]} */ (this.neuron.stats().capabilities);
    } catch {
      return [];
    }
  }

  // ---------------------------------------------------------------- faults --

  /** Drops the event stream (as a network error would). @returns {boolean} whether one was open */
  dropStream() {
    const drop = this.dropCurrentStream;
    if (!drop) return false;
    drop();
    return true;
  }

  /** @param {boolean} on */
  stallHeartbeats(on) {
    this.faults.stallHeartbeats = on;
    if (!on) this.releaseStalled();
    this.changed();
  }

  /** @param {0 | 401 | 503} status */
  failNextPost(status) {
    this.faults.nextPostStatus = status;
    this.changed();
  }

  /** @private */
  releaseStalled() {
    for (const release of this.stalled) release();
    this.stalled.clear();
  }

  // -------------------------------------------------------------- recording --

  /** @param {'in' | 'out'} dir @param {any} frame */
  pushFrame(dir, frame) {
    const { leaseId, capability } = describeFrame(frame, (id) => this.board.capabilityOf(id));
    return this.log.push({ t: Date.now(), dir, type: String(frame?.type ?? '?'), leaseId, capability, frame });
  }

  /** @private A logger that shows warnings and errors (handlers' ctx.log too) in the firehose. */
  pageLogger() {
    const push = (/** @type {string} */ level, /** @type {any} */ meta, /** @type {string} */ msg) => {
      // A lost lease ends with no frame of ours (the gateway has taken it back): the core's warning says so.
      if (msg === 'lease lost' && typeof meta?.leaseId === 'string') this.board.lost(meta.leaseId, Date.now());
      this.log.push({ t: Date.now(), dir: 'conn', type: 'log', leaseId: typeof meta?.leaseId === 'string' ? meta.leaseId : '',
        capability: typeof meta?.capability === 'string' ? meta.capability : '', frame: { level, msg, ...meta }, note: `${level}: ${msg ?? ''}` });
      this.changed();
    };
    return {
      level: 'warn',
      debug() {},
      info() {},
      warn: (/** @type {any} */ meta, /** @type {string} */ msg) => push('warn', meta, msg),
      error: (/** @type {any} */ meta, /** @type {string} */ msg) => push('error', meta, msg),
    };
  }

  /**
   * The fetch the Neuron uses: records and, on request, misbehaves.
   * @private @returns {typeof fetch}
   */
  recordingFetch() {
    const realFetch = globalThis.fetch.bind(globalThis);
    return /** @type {typeof fetch} */ (async (input, init = {}) => {
      const url = String(input);
      const path = new URL(url).pathname;
      if ((init.method ?? 'GET') === 'GET') return this.recordStream(realFetch, url, init);
      /** @type {any} */
      let frame;
      try {
        frame = JSON.parse(String(init.body));
      } catch {
        frame = { type: path.split('/').pop(), body: String(init.body) };
      }
      const entry = this.pushFrame('out', frame);
      this.board.outbound(frame, entry.t);
      this.changed();
      const injected = this.faults.nextPostStatus;
      if (injected) {
        this.faults.nextPostStatus = 0;
        entry.status = injected;
        entry.note = `answered ${injected} by the tester (injected fault)`;
        this.changed();
        return new Response(JSON.stringify({ error: `injected by the neuron-tester page: ${injected}` }), { status: injected, headers: { 'content-type': 'application/json' } });
      }
      if (frame.type === 'heartbeat' && this.faults.stallHeartbeats) {
        entry.note = 'stalled by the tester';
        this.changed();
        await new Promise((resolve) => {
          const release = () => resolve(undefined);
          this.stalled.add(release);
          init.signal?.addEventListener('abort', release, { once: true });
        });
        init.signal?.throwIfAborted();
      }
      try {
        const res = await realFetch(url, init);
        entry.status = res.status;
        if (!res.ok) entry.note = `${res.status} ${res.statusText}`;
        this.changed();
        return res;
      } catch (err) {
        entry.status = 0;
        entry.note = /** @type {Error} */ (err).message;
        this.changed();
        throw err;
      }
    });
  }

  /** @private @param {typeof fetch} realFetch @param {string} url @param {RequestInit} init */
  async recordStream(realFetch, url, init) {
    const opened = this.log.push({ t: Date.now(), dir: 'conn', type: 'stream-open', frame: { url }, note: 'opening the event stream' });
    this.changed();
    /** @type {Response} */
    let res;
    try {
      res = await realFetch(url, init);
    } catch (err) {
      opened.status = 0;
      opened.note = `stream failed: ${/** @type {Error} */ (err).message}`;
      this.changed();
      throw err;
    }
    opened.status = res.status;
    opened.note = res.ok ? 'event stream open' : `event stream refused: ${res.status}`;
    this.changed();
    if (!res.body) return res;
    const reader = res.body.getReader();
    const body = new ReadableStream({
      start: (c) => {
        this.dropCurrentStream = () => {
          this.dropCurrentStream = null;
          this.log.push({ t: Date.now(), dir: 'conn', type: 'stream-close', frame: { reason: 'dropped by the tester' }, note: 'stream dropped by the tester (injected fault)' });
          reader.cancel().catch(() => {});
          c.error(new TypeError('network error: stream dropped by the neuron-tester page'));
          this.changed();
        };
      },
      pull: async (c) => {
        try {
          const { done, value } = await reader.read();
          if (done) {
            this.dropCurrentStream = null;
            c.close();
          } else {
            c.enqueue(value);
          }
        } catch (err) {
          this.dropCurrentStream = null;
          c.error(err);
        }
      },
      cancel: (reason) => {
        this.dropCurrentStream = null;
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  }
}

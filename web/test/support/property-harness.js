// Runs one generated gateway script against a Neuron, through the package's
// public API only, and checks what the gateway saw against a model of
// PROTOCOL.md section 3. Used by test/property.test.js (fast-check generates
// the scripts), test/property-regressions.test.js (shrunk counterexamples,
// replayed as plain tests) and support/property-child.js (the same run in a
// child process that must exit on its own).
//
// Three carriers, one script format:
//   'transport'  a custom in-process Transport: frames handed to onFrame as
//                objects, posts answered as promises; a drop is onClose()
//                followed, after a gap, by onOpen() (a custom transport
//                reconnects by itself).
//   'ipc'        the package's IpcTransport over a NeuronIpcBridge the
//                script plays (attach delays, detach behaviour); no drops.
//   'bytes'      new Neuron({ gatewayUrl, auth, fetch }) with an injected
//                fetch: the event stream is served as SSE bytes from a
//                ReadableStream (split into chunks, CRLF or LF, comments),
//                POSTs are answered with Responses (or network errors) as the
//                script says; a drop ends or errors the stream, or sends a
//                `disconnect` frame, and the neuron reconnects by itself.
//
// Everything that happens goes into one ordered log (handler calls and
// settlements, signal aborts, frames the neuron took in (its `frame`
// firehose), POSTs the gateway received and how it answered them, connection
// events, stop()). check() walks the log with the model and returns the
// violations, in words.

import { Neuron } from '../../src/index.js';
import { IpcTransport } from '../../src/ipc.js';
import { STRANGE } from './strange-values.js';

export const CAPS = /** @type {const} */ ({ a: 'core/a', b: 'core/b', none: 'core/none' });
/** core/b has an inputSchema (rule 5): { n: integer } required. */
const B_SCHEMA = { type: 'object', required: ['n'], properties: { n: { type: 'integer' } } };
/**
 * stop()'s flush: once the drain has ended (every lease ended), the time the
 * core leaves the final acks and nacks (their answers, their retries) before
 * stop() resolves anyway. Neither PROTOCOL.md nor the README gives the
 * number; measured: with an ack never answered, or retried on 503 with the
 * custom transport's 500 ms backoff, stop() resolved 5 000-5 007 ms after the
 * drain ended (`stop_flush_ms` in src/neuron/engine.h).
 */
export const FLUSH_MS = 5000;
/** What stop() may take beyond its documented deadline (event loop, the transport's own stop). */
export const STOP_SLACK_MS = 1000;
/** stop() resolves within this of its last lease ending and its last ack/nack answered (a loaded 2-core machine). */
const STOP_PROMPT_MS = 300;
/** A frame the byte path has not taken in after this long (its stream still open) is a stalled stream. */
const STALL_MS = 750;
/** An answer status meaning: the gateway never answers this POST. */
export const NEVER = -2;
const RETRYABLE = (/** @type {number} */ s) => s === 0 || s === 429 || (s >= 500 && s <= 599);
const SIGNAL_REASON = { cancel: 'cancelled', revoke: 'capability revoked', stop: 'shutting down', lost: 'lease lost' };

const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
/**
 * 'ok' / 'rejected' when `p` settles within `ms`, else 'hung'; leaves no timer behind.
 * @param {Promise<unknown>} p @param {number} ms
 */
export function within(p, ms) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const hung = new Promise((r) => { timer = setTimeout(() => r('hung'), ms); });
  return Promise.race([p.then(() => 'ok', () => 'rejected'), hung]).finally(() => clearTimeout(timer));
}
const jsonEq = (/** @type {unknown} */ a, /** @type {unknown} */ b) => JSON.stringify(a) === JSON.stringify(b);
/** The JSON a value becomes on the wire (undefined -> null). @param {unknown} v */
const wire = (v) => JSON.parse(JSON.stringify(v === undefined ? null : v));

/** Counts live timers (`Timeout` resources keep a Node process alive). */
export function activeTimeouts() {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/**
 * Where the timers still pending were set: while it is on, setTimeout and
 * clearTimeout are wrapped (the SDK looks them up when it calls them) to
 * remember the stack of each timer until it fires or is cleared, so that a
 * "timer still pending" violation says whose timer it is. (An async hook
 * would see them too, but it would also slow every promise of the run.)
 */
function timerSites() {
  /** @type {Map<unknown, string>} */
  const live = new Map();
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  /** @type {any} */ (globalThis).setTimeout = function setTimeout(/** @type {Function} */ fn, /** @type {any[]} */ ...rest) {
    const frames = (new Error().stack ?? '').split('\n').slice(2).map((l) => l.trim()).filter((l) => !l.includes('(node:'));
    const timer = realSet((/** @type {any[]} */ ...args) => {
      live.delete(timer);
      fn(...args);
    }, ...rest);
    live.set(timer, frames.slice(0, 4).join(' < ') || '(node internals)');
    return timer;
  };
  /** @type {any} */ (globalThis).clearTimeout = function clearTimeout(/** @type {any} */ timer) {
    live.delete(timer);
    realClear(timer);
  };
  return {
    pending: () => [...live.values()],
    stop: () => {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    },
  };
}

/**
 * The run's ordered log. Each event also carries its `turn`: events logged in
 * the same turn of the event loop (one macrotask and its microtasks, or a
 * few timers that fired together) share it. The SDK builds a POST's body in
 * one place and hands it to the carrier a few microtasks later (after an
 * async auth callback, or in the custom transport's `post` call): what
 * happened in between, within the turn, may or may not be in the body.
 */
class Log {
  constructor() {
    this.t0 = performance.now();
    /** @type {any[]} */
    this.events = [];
    this.turn = 0;
    this.turnOpen = false;
  }

  /** @param {string} type @param {object} [data] */
  add(type, data = {}) {
    if (!this.turnOpen) {
      this.turn++;
      this.turnOpen = true;
      setImmediate(() => { this.turnOpen = false; });
    }
    const e = { ...data, seq: this.events.length, turn: this.turn, t: Math.round((performance.now() - this.t0) * 10) / 10, type };
    this.events.push(e);
    return e;
  }

  now() {
    return performance.now() - this.t0;
  }
}

// ------------------------------------------------------------------ answers --

/**
 * The script's answers, per kind of POST, in order; past the end: 200 at once.
 * An answer is { s, d }: s = HTTP status, 0 for a network error, NEVER for no
 * answer at all; d = delay ms.
 */
class Answers {
  /** @param {Record<string, { s: number, d: number }[]>} plan */
  constructor(plan) {
    this.plan = plan ?? {};
    /** @type {Record<string, number>} */
    this.next = {};
  }

  /** @param {string} path */
  take(path) {
    const kind = kindOf(path);
    const i = this.next[kind] ?? 0;
    this.next[kind] = i + 1;
    return this.plan[kind]?.[i] ?? { s: 200, d: 0 };
  }
}

/** @param {string} path */
function kindOf(path) {
  const k = path.replace('/neuron/', '');
  return k === 'ack' || k === 'nack' ? 'terminal' : k;
}

// ------------------------------------------------------------------ drivers --

/** Shared by both drivers: readiness follows the neuron's own events. */
class DriverBase {
  /** @param {Log} log @param {any} script @param {Timers} timers */
  constructor(log, script, timers) {
    this.log = log;
    this.script = script;
    this.timers = timers;
    this.answers = new Answers(script.answers);
    /** leaseIds the next heartbeat answer reports lost */
    /** @type {string[]} */
    this.lostNext = [];
    this.ready = false;
    this.rejected = false;
    /** the neuron stopped: nothing is delivered any more */
    this.finished = false;
    this.frameSeq = 0;
    /** @type {Set<number>} */
    this.seenSeq = new Set();
    /** @type {(() => void)[]} */
    this.wakers = [];
  }

  /** @param {import('../../src/index.js').Neuron} neuron */
  attach(neuron) {
    neuron.on('connection:registered', () => {
      this.ready = true;
      this.wake();
    });
    neuron.on('connection:close', (/** @type {string} */ reason) => {
      this.ready = false;
      if (reason === 'stopped') this.finished = true;
      this.wake();
    });
    neuron.on('frame', (/** @type {any} */ f) => {
      if (typeof f?._seq === 'number') this.seenSeq.add(f._seq);
      this.wake();
    });
    neuron.on('error', (/** @type {any} */ e) => {
      if (e?.code === 'registration-rejected') this.rejected = true;
      this.wake();
    });
  }

  wake() {
    for (const w of this.wakers.splice(0)) w();
  }

  /** Resolves when `cond` holds or after `ms`; returns cond(). @param {() => boolean} cond @param {number} ms */
  async waitFor(cond, ms) {
    const end = performance.now() + ms;
    while (!cond() && performance.now() < end) {
      await new Promise((r) => {
        const cancel = this.timers.set(() => r(undefined), Math.min(20, Math.max(1, end - performance.now())));
        this.wakers.push(() => {
          cancel();
          r(undefined);
        });
      });
    }
    return cond();
  }

  /** The body the gateway answers a heartbeat with. */
  heartbeatBody() {
    if (!this.lostNext.length) return {};
    const lostLeases = this.lostNext;
    this.lostNext = [];
    return { lostLeases };
  }
}

/** Timers the harness itself sets: counted, so the run can wait for them before it counts the SDK's. */
class Timers {
  constructor() {
    this.live = 0;
    /** @type {(() => void)[]} */
    this.idle = [];
  }

  /** @param {() => void} fn @param {number} ms */
  set(fn, ms) {
    this.live++;
    let done = false;
    const h = setTimeout(() => {
      done = true;
      this.live--;
      try {
        fn();
      } finally {
        if (this.live === 0) for (const w of this.idle.splice(0)) w();
      }
    }, ms);
    return () => {
      if (done) return;
      done = true;
      clearTimeout(h);
      this.live--;
      if (this.live === 0) for (const w of this.idle.splice(0)) w();
    };
  }

  /** Resolves once no harness timer is pending (or after `ms`). @param {number} ms */
  idleOnce(ms) {
    if (this.live === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.idle.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  /**
   * Resolves true once no harness timer is pending and none is set in the
   * turn that follows (a timer's callback may settle a promise whose
   * continuation sets the next one), false after `ms`. @param {number} ms
   */
  async drained(ms) {
    const end = performance.now() + ms;
    while (performance.now() < end && await this.idleOnce(Math.max(0, end - performance.now()))) {
      await new Promise((r) => setImmediate(r));
      if (this.live === 0) return true;
    }
    return false;
  }
}

/**
 * The carriers that hand frames over as objects and answer posts with
 * promises: a custom Transport and the IPC bridge. `posts` answers each POST
 * as the script says; subclasses say how a frame reaches the neuron.
 */
class ObjectDriver extends DriverBase {
  /** True while frames can reach the neuron. */
  get open() { return false; }

  /** Hands one frame to the neuron now. @param {any} _frame */
  push(_frame) {}

  /** @param {string} path @param {any} frame */
  onPost(path, frame) {
    const answer = this.answers.take(path);
    const post = this.log.add('post', { path, frame: structuredClone(frame), answer });
    return new Promise((resolve, reject) => {
      const give = () => {
        const lost = path === '/neuron/heartbeat' && answer.s >= 200 && answer.s < 300 ? this.heartbeatBody() : null;
        this.log.add('answer', { path, post: post.seq, status: answer.s, lost: lost?.lostLeases });
        if (answer.s >= 200 && answer.s < 300) {
          resolve(lost ?? {});
          if (path === '/neuron/register') {
            const caps = frame.capabilities.map((/** @type {any} */ c) => ({ type: c.type, scope: c.scope, concurrency: c.concurrency }));
            queueMicrotask(() => this.deliverNow({ type: 'registered', sessionId: 's-prop', capabilities: caps }));
          }
        } else if (answer.s === 0) {
          reject(new TypeError('network error (script)'));
        } else {
          reject(Object.assign(new Error(`HTTP ${answer.s} (script)`), { status: answer.s }));
        }
      };
      if (answer.s === NEVER) return; // the gateway never answers
      if (answer.d > 0) this.timers.set(give, answer.d);
      else give();
    });
  }

  /** @param {any} frame */
  deliverNow(frame) {
    if (!this.open) return false;
    this.log.add('deliver', { frame });
    this.push(frame);
    return true;
  }

  /** Frames delivered one after the other, synchronously. @param {any[]} frames */
  async send(frames) {
    if (!(await this.waitFor(() => this.ready || this.rejected || this.finished || !this.open, 300)) || !this.ready) return false;
    for (const frame of frames) {
      frame._seq = ++this.frameSeq;
      this.deliverNow(frame);
    }
    return true;
  }

  /**
   * Calls `fn` (a callback the SDK gave us); an exception out of it is the
   * SDK's, thrown into the transport's or the bridge's code.
   * @param {string} name @param {() => void} fn
   */
  guard(name, fn) {
    try {
      fn();
    } catch (err) {
      this.log.add('callback-threw', { name, error: describe(err) });
    }
  }

  /** How the script's transport / bridge stop resolves. @param {{ how: string, ms?: number } | undefined} plan */
  stopping(plan) {
    const how = plan?.how ?? 'ok';
    if (how === 'throws') throw new Error('stop threw (script)');
    if (how === 'rejects') return Promise.reject(new Error('stop rejected (script)'));
    if (how === 'never') return new Promise(() => {});
    if (how === 'slow') return new Promise((r) => this.timers.set(() => r(undefined), plan?.ms ?? 1));
    return Promise.resolve();
  }
}

/** A custom Transport (the README's Transport interface). */
class TransportDriver extends ObjectDriver {
  /** @param {Log} log @param {any} script @param {Timers} timers */
  constructor(log, script, timers) {
    super(log, script, timers);
    /** @type {any} */
    this.cb = {};
    this.connected = false;
    this.starts = 0;
    this.stops = 0;
    const self = this;
    this.transport = {
      subscribe(/** @type {any} */ cb) { self.cb = cb; },
      async start() {
        self.starts++;
        self.log.add('transport-start');
        self.connected = true;
        queueMicrotask(() => { if (self.connected) self.guard('onOpen', () => self.cb.onOpen?.()); });
      },
      stop() {
        self.stops++;
        self.log.add('transport-stop');
        self.connected = false;
        self.ready = false;
        return self.stopping(self.script.transportStop);
      },
      post(/** @type {string} */ path, /** @type {any} */ frame) { return self.onPost(path, frame); },
      isConnected() { return self.connected; },
    };
  }

  get open() { return this.connected; }

  options() {
    return { transport: this.transport };
  }

  /** @param {any} frame */
  push(frame) {
    this.guard('onFrame', () => this.cb.onFrame?.(frame));
  }

  /** @param {{ how: string, gap: number }} step */
  async drop(step) {
    if (!this.connected) return;
    this.log.add('drop', { how: 'onClose' });
    this.connected = false;
    this.ready = false;
    const stopsBefore = this.stops;
    this.guard('onClose', () => this.cb.onClose?.('dropped by the script'));
    await sleep(step.gap);
    // The transport comes back by itself, unless the neuron stopped it meanwhile.
    if (this.stops === stopsBefore && !this.connected) {
      this.connected = true;
      this.log.add('reopen');
      this.guard('onOpen', () => this.cb.onOpen?.());
    }
  }

  /** Leftovers once stop() resolved. */
  leftovers() {
    /** @type {string[]} */
    const out = [];
    if (this.starts > 0 && this.stops === 0) out.push('stop() resolved but transport.stop() was never called');
    if (this.connected) out.push('the transport is still connected after stop()');
    return out;
  }
}

/**
 * The package's IpcTransport (`@holokai/neuron-sdk/ipc`) over a
 * NeuronIpcBridge the script plays: attach may take a while, detach may be
 * slow, reject, throw or never settle. IPC has no drops (1.4).
 */
class IpcDriver extends ObjectDriver {
  /** @param {Log} log @param {any} script @param {Timers} timers */
  constructor(log, script, timers) {
    super(log, script, timers);
    /** @type {Set<(frame: any) => void>} */
    this.subs = new Set();
    this.attached = 0;
    this.detaches = 0;
    const self = this;
    this.bridge = {
      attach(/** @type {string} */ id) {
        self.log.add('ipc-attach');
        return new Promise((resolve) => {
          const done = () => {
            self.attached++;
            resolve({ channel: `neuron:${id}` });
          };
          const ms = self.script.ipc?.attachMs ?? 0;
          if (ms > 0) self.timers.set(done, ms);
          else queueMicrotask(done);
        });
      },
      detach() {
        self.detaches++;
        self.log.add('ipc-detach');
        return self.stopping(self.script.ipc?.detach);
      },
      subscribe(/** @type {string} */ _channel, /** @type {(frame: any) => void} */ cb) {
        self.subs.add(cb);
        self.log.add('ipc-subscribe');
        return () => {
          self.subs.delete(cb);
          self.log.add('ipc-unsubscribe');
        };
      },
      invoke(/** @type {string} */ path, /** @type {any} */ frame) { return self.onPost(path, frame); },
    };
  }

  get open() { return this.subs.size > 0; }

  options() {
    return { transport: new IpcTransport({ bridge: /** @type {any} */ (this.bridge), neuronId: 'n-prop' }) };
  }

  /** @param {any} frame */
  push(frame) {
    for (const cb of [...this.subs]) this.guard('the bridge subscription', () => cb(frame));
  }

  async drop() {
    // IPC channels do not drop (PROTOCOL.md 1.4): nothing to do.
  }

  leftovers() {
    /** @type {string[]} */
    const out = [];
    if (this.subs.size) out.push(`${this.subs.size} bridge subscription(s) left after stop()`);
    if (this.attached > this.detaches) out.push(`bridge attached ${this.attached} time(s), detached ${this.detaches} time(s) after stop()`);
    return out;
  }
}

const enc = new TextEncoder();

class BytesDriver extends DriverBase {
  /** @param {Log} log @param {any} script @param {Timers} timers */
  constructor(log, script, timers) {
    super(log, script, timers);
    /** @type {{ epoch: number, ctrl: ReadableStreamDefaultController<Uint8Array>, open: boolean, used: boolean, signal: AbortSignal } | null} */
    this.cur = null;
    this.epoch = 0;
    /** @type {Set<{ epoch: number, open: boolean }>} */
    this.streams = new Set();
    /** @type {Set<number>} POSTs not answered yet */
    this.pending = new Set();
    this.tokens = 0;
    this.fetch = this.fetch.bind(this);
  }

  options() {
    const auth = this.script.asyncAuth
      ? async () => `tok-${++this.tokens}`
      : () => `tok-${++this.tokens}`;
    return { gatewayUrl: 'http://gw.test/', auth, fetch: this.fetch, initialReconnectDelayMs: 5, maxReconnectDelayMs: 40, reconnectJitter: 0 };
  }

  /** @param {string} url @param {any} init */
  fetch(url, init = {}) {
    if (!/^Bearer tok-\d+$/.test(init.headers?.authorization ?? '')) {
      this.log.add('bad-request', { what: `no bearer token on ${url}` });
    }
    if (url.startsWith('http://gw.test/neuron/events?neuronId=')) return this.openStream(init);
    if (!url.startsWith('http://gw.test/neuron/') || init.method !== 'POST') {
      this.log.add('bad-request', { what: `unexpected request ${init.method ?? 'GET'} ${url}` });
      return Promise.reject(new TypeError('unexpected request'));
    }
    const path = url.slice('http://gw.test'.length);
    const frame = JSON.parse(init.body);
    const answer = this.answers.take(path);
    const post = this.log.add('post', { path, frame, answer });
    this.pending.add(post.seq);
    /** @type {AbortSignal | undefined} */
    const signal = init.signal;
    return new Promise((resolve, reject) => {
      let cancel = () => {};
      const onAbort = () => {
        if (!this.pending.delete(post.seq)) return;
        cancel();
        this.log.add('answer', { path, post: post.seq, status: -1, aborted: true });
        reject(new DOMException('This operation was aborted', 'AbortError'));
      };
      if (signal?.aborted) {
        queueMicrotask(onAbort);
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      const give = () => {
        if (!this.pending.delete(post.seq)) return;
        signal?.removeEventListener('abort', onAbort);
        const ok = answer.s >= 200 && answer.s < 300;
        const body = path === '/neuron/heartbeat' && ok ? this.heartbeatBody() : {};
        this.log.add('answer', { path, post: post.seq, status: answer.s, lost: /** @type {any} */ (body).lostLeases });
        if (answer.s === 0) {
          reject(new TypeError('fetch failed (script)'));
          return;
        }
        resolve(new Response(ok ? JSON.stringify(body) : '{"error":"script says no"}', { status: answer.s, headers: { 'content-type': 'application/json' } }));
        if (ok && path === '/neuron/register') {
          const caps = frame.capabilities.map((/** @type {any} */ c) => ({ type: c.type, scope: c.scope, concurrency: c.concurrency }));
          const epoch = this.cur?.epoch;
          queueMicrotask(() => { if (this.cur?.epoch === epoch) this.enqueue({ type: 'registered', sessionId: 's-prop', capabilities: caps }); });
        }
      };
      // Even an answer "at once" comes after the SDK's current tape has
      // played (a real fetch never settles synchronously).
      if (answer.s === NEVER) return; // only the request's signal ends it
      if (answer.d > 0) cancel = this.timers.set(give, answer.d);
      else queueMicrotask(give);
    });
  }

  /** @param {any} init */
  openStream(init) {
    const answer = this.answers.take('/neuron/stream');
    const epoch = ++this.epoch;
    this.log.add('stream-open', { epoch, status: answer.s });
    if (answer.s === 0) return Promise.reject(new TypeError('fetch failed (script: stream)'));
    if (answer.s !== 200) return Promise.resolve(new Response('{"error":"no"}', { status: answer.s }));
    /** @type {any} */
    const s = { epoch, open: true, used: false, ctrl: null, signal: init.signal };
    const body = new ReadableStream({
      start: (c) => { s.ctrl = c; },
      cancel: () => {
        if (!s.open) return;
        s.open = false;
        this.log.add('stream-cancelled', { epoch });
      },
    });
    const signal = /** @type {AbortSignal} */ (init.signal);
    signal?.addEventListener('abort', () => {
      if (!s.open) return;
      s.open = false;
      this.log.add('stream-aborted', { epoch });
      try {
        s.ctrl.error(new DOMException('This operation was aborted', 'AbortError'));
      } catch {
        /* already closed */
      }
      this.wake();
    }, { once: true });
    this.streams.add(s);
    this.cur = s;
    return Promise.resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream; charset=utf-8' } }));
  }

  /** SSE bytes of one frame, split as the script says. @param {any} frame */
  enqueue(...frames) {
    const s = this.cur;
    if (!s?.open) return false;
    const eol = this.script.crlf ? '\r\n' : '\n';
    let text = '';
    for (const frame of frames) text += `${this.script.comments ? `: ping${eol}` : ''}event: ${frame.type}${eol}data: ${JSON.stringify(frame)}${eol}${eol}`;
    if (!s.used && this.script.bom) text = `\uFEFF${text}`; // a BOM opens the stream
    s.used = true;
    const bytes = enc.encode(text);
    const size = this.script.chunk > 0 ? this.script.chunk : bytes.length;
    for (const frame of frames) this.log.add('deliver', { frame });
    try {
      for (let i = 0; i < bytes.length; i += size) s.ctrl.enqueue(bytes.subarray(i, i + size));
    } catch {
      return false;
    }
    return true;
  }

  /** @param {any} frame */
  /** Frames written together (one chunk unless the script splits them). @param {any[]} frames */
  async send(frames) {
    if (!(await this.waitFor(() => this.ready || this.rejected || this.finished, 300)) || !this.ready) return false;
    for (const frame of frames) frame._seq = ++this.frameSeq;
    const s = this.cur;
    if (!this.enqueue(...frames)) return false;
    const last = frames[frames.length - 1];
    const seen = await this.waitFor(() => this.seenSeq.has(last._seq) || !s?.open, STALL_MS);
    if (!seen) this.log.add('stall', { frameSeq: last._seq, frame: last });
    return true;
  }

  /** @param {{ how: string, gap: number }} step */
  async drop(step) {
    const s = this.cur;
    if (!s?.open) return;
    this.log.add('drop', { how: step.how });
    if (step.how === 'disconnect') {
      this.frameSeq++;
      this.enqueue({ type: 'disconnect', reason: 'script', reconnect: true, _seq: this.frameSeq });
    } else {
      s.open = false;
      try {
        if (step.how === 'error') s.ctrl.error(new TypeError('terminated (script)'));
        else s.ctrl.close();
      } catch {
        /* the neuron got there first */
      }
    }
    await sleep(step.gap);
  }

  leftovers() {
    /** @type {string[]} */
    const out = [];
    for (const s of this.streams) if (s.open) out.push(`event stream ${s.epoch} still open after stop()`);
    if (this.pending.size) out.push(`${this.pending.size} POST(s) still pending (neither answered nor aborted) after stop()`);
    return out;
  }
}

// ----------------------------------------------------------------- handlers --

/**
 * The handler every capability runs: its behaviour comes from the lease input
 * { k, d, p, o } (kind, delay, progress calls, output).
 *   ok            returns o after d ms (d 0: synchronously)
 *   throw         throws Error(`boom <leaseId>`) after d ms (d 0: synchronously)
 *   fail          ctx.fail(`failed <leaseId>`, { code: 'E_SCRIPT' }) after d ms
 *   reject-abort  returns o after d ms, or rejects with signal.reason on abort
 *   return-abort  returns o after d ms, or returns { aborted: true } on abort
 *   ignore-abort  returns o after d ms whatever the signal does
 *   hang          never settles and ignores the signal
 *   strange       returns or throws STRANGE[s] (support/strange-values.js)
 *   stop          calls neuron.stop({ drain: d odd, timeoutMs: d }) itself, then returns o
 * @param {Log} log @param {Timers} timers @param {{ stop: (opts: { drain: boolean, timeoutMs: number }) => void }} hooks
 */
function makeHandler(log, timers, hooks) {
  return (/** @type {any} */ input, /** @type {any} */ ctx) => {
    const leaseId = ctx.leaseId;
    const b = input && typeof input === 'object' ? input : {};
    log.add('call', { leaseId, cap: ctx.task?.type });
    const signal = ctx.signal;
    signal.addEventListener('abort', () => {
      log.add('abort', { leaseId, reason: signal.reason?.message, name: signal.reason?.name });
    }, { once: true });
    if (signal.aborted) log.add('abort', { leaseId, reason: signal.reason?.message, name: signal.reason?.name, already: true });
    const progress = Array.isArray(b.p) ? b.p : [];
    for (const u of progress) if (u.at === 'before') ctx.progress(u.u);
    const after = () => {
      for (const u of progress) if (u.at === 'after') queueMicrotask(() => ctx.progress(u.u));
    };
    const settle = (/** @type {string} */ how, /** @type {unknown} */ value) => {
      log.add('settle', { leaseId, how, value });
      after();
    };
    const d = typeof b.d === 'number' ? b.d : 0;
    switch (b.k) {
      case 'throw':
        if (d === 0) {
          settle('throw', `boom ${leaseId}`);
          throw new Error(`boom ${leaseId}`);
        }
        return new Promise((_r, reject) => timers.set(() => {
          settle('throw', `boom ${leaseId}`);
          reject(new Error(`boom ${leaseId}`));
        }, d));
      case 'fail':
        if (d === 0) {
          settle('fail', `failed ${leaseId}`);
          ctx.fail(`failed ${leaseId}`, { code: 'E_SCRIPT' });
        }
        return new Promise((resolve, reject) => timers.set(() => {
          settle('fail', `failed ${leaseId}`);
          try {
            ctx.fail(`failed ${leaseId}`, { code: 'E_SCRIPT' });
          } catch (e) {
            reject(e);
          }
          resolve(undefined);
        }, d));
      case 'reject-abort':
      case 'return-abort':
        return new Promise((resolve, reject) => {
          const cancel = timers.set(() => {
            signal.removeEventListener('abort', onAbort);
            settle('return', b.o);
            resolve(b.o);
          }, Math.max(1, d));
          const onAbort = () => {
            cancel();
            if (b.k === 'reject-abort') {
              settle('throw', signal.reason?.message);
              reject(signal.reason);
            } else {
              settle('return', { aborted: true });
              resolve({ aborted: true });
            }
          };
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        });
      case 'ignore-abort':
        return new Promise((resolve) => timers.set(() => {
          settle('return', b.o);
          resolve(b.o);
        }, Math.max(1, d)));
      case 'hang':
        return new Promise(() => {});
      case 'stop':
        hooks.stop({ drain: d % 2 === 1, timeoutMs: d });
        settle('return', b.o);
        return b.o;
      case 'strange': {
        // Logged as settled at the call: a thenable may settle then (the SDK
        // calls its then() itself) or a few microtasks later (Promise
        // semantics); the model allows for the second (see `raceTurn`).
        const entry = STRANGE[b.s];
        if (entry.settles !== false) settle('strange', b.s);
        return entry.make(ctx);
      }
      default:
        if (d === 0) {
          settle('return', b.o);
          return b.o;
        }
        return new Promise((resolve) => timers.set(() => {
          settle('return', b.o);
          resolve(b.o);
        }, d));
    }
  };
}

// ----------------------------------------------------------------- the run --

/** The frame a lease / cancel / revoke step describes. @param {any} step */
function frameOf(step) {
  if (step.t === 'cancel') return { type: 'cancel', leaseId: step.id, reason: 'script cancel' };
  if (step.t === 'revoke') return { type: 'capability-revoked', capability: CAPS[/** @type {keyof typeof CAPS} */ (step.cap)] ?? step.cap, reason: 'script revoke' };
  return leaseFrame(step);
}

/** The lease frame a script step describes. @param {any} step */
export function leaseFrame(step) {
  const cap = CAPS[/** @type {keyof typeof CAPS} */ (step.cap)] ?? step.cap;
  /** @type {any} */
  const input = { k: step.b?.k ?? 'ok', d: step.b?.d ?? 0, p: step.b?.p ?? [], o: step.b?.o ?? null };
  if (step.b?.s !== undefined) input.s = step.b.s;
  if (step.cap === 'b') input.n = step.badInput ? 'not an integer' : 1;
  /** @type {any} */
  const task = { taskId: `t-${step.id}`, type: cap, input, attempt: 1 };
  /** @type {any} */
  const frame = { type: 'lease', leaseId: step.id, expiresAt: new Date(Date.now() + 60_000).toISOString(), task };
  switch (step.malformed) {
    case 'noLeaseId': delete frame.leaseId; break;
    case 'numericLeaseId': frame.leaseId = 7; break;
    case 'noTaskId': delete task.taskId; break;
    case 'noType': delete task.type; break;
    case 'noTask': delete frame.task; break;
    default: break;
  }
  return frame;
}

/**
 * Runs under way. fast-check's time limit (`interruptAfterTimeLimit`) can
 * give up on a run while it is still going: its neuron, its timers and its
 * setTimeout patch would then live on into the next test's runs and be
 * counted there (seen as "timer(s) still pending after stop()" set by a
 * neuron that was never stopped). See settleAbandoned.
 * @type {Set<Promise<unknown>>}
 */
const inFlight = new Set();

/**
 * Runs `script` on `carrier` and checks it.
 * @param {any} script @param {{ carrier: 'transport' | 'ipc' | 'bytes' }} opts
 * @returns {Promise<{ violations: string[], log: any[], stopMs: number, durationMs: number }>}
 */
export async function runScript(script, opts) {
  const run = runScriptNow(script, opts);
  inFlight.add(run);
  try {
    return await run;
  } finally {
    inFlight.delete(run);
  }
}

/**
 * Lets every run fast-check gave up on finish (each ends with its script's
 * stop()), so that none of them is still running when the next test starts,
 * and returns what they found: a run given up on is still a run (nothing
 * else runs beside it), so its violations count; one that has not finished
 * within `ms` is a violation too (stop() must settle by its deadline).
 * @param {number} [ms] at most this long
 * @returns {Promise<string[]>}
 */
export async function settleAbandoned(ms = 30_000) {
  if (!inFlight.size) return [];
  const runs = [...inFlight];
  /** @type {string[]} */
  const violations = [];
  const collect = Promise.allSettled(runs).then((results) => {
    for (const r of results) {
      if (r.status === 'rejected') violations.push(`a run given up on by the time limit threw: ${r.reason}`);
      else violations.push(...r.value.violations);
    }
  });
  if ((await within(collect, ms)) === 'hung') {
    violations.push(`${runs.length} run(s) given up on by the time limit still running ${ms} ms later`);
  }
  return violations;
}

/**
 * @param {any} script @param {{ carrier: 'transport' | 'ipc' | 'bytes' }} opts
 * @returns {Promise<{ violations: string[], log: any[], stopMs: number, durationMs: number }>}
 */
async function runScriptNow(script, { carrier }) {
  const log = new Log();
  const timers = new Timers();
  /** @type {unknown[]} */
  const stray = [];
  // The run owns these two process events while it lasts: a stray error is a
  // finding of this run, not something for the test runner to attribute.
  const saved = {
    uncaughtException: process.listeners('uncaughtException'),
    unhandledRejection: process.listeners('unhandledRejection'),
  };
  const onStray = (/** @type {string} */ kind) => (/** @type {unknown} */ err) => {
    stray.push(err);
    log.add('stray', { kind, error: describe(err) });
  };
  const onException = onStray('uncaughtException');
  const onRejection = onStray('unhandledRejection');
  process.removeAllListeners('uncaughtException');
  process.removeAllListeners('unhandledRejection');
  process.on('uncaughtException', onException);
  process.on('unhandledRejection', onRejection);
  const timeoutsBefore = activeTimeouts();
  const sites = timerSites();

  /** @type {string[]} */
  const violations = [];
  let stopMs = NaN;
  try {
    const driver = carrier === 'transport' ? new TransportDriver(log, script, timers)
      : carrier === 'ipc' ? new IpcDriver(log, script, timers) : new BytesDriver(log, script, timers);
    const neuron = new Neuron({ neuronId: 'n-prop', heartbeatIntervalMs: script.hb, ...driver.options() });
    driver.attach(neuron);
    neuron.on('frame', (f) => log.add('frame', { frame: f }));
    neuron.on('error', (e) => log.add('error', { code: /** @type {any} */ (e).code, message: e.message }));
    neuron.on('connection:close', (reason) => log.add('close', { reason }));
    neuron.on('connection:open', () => log.add('open'));
    neuron.on('connection:registered', (r) => log.add('registered', { r }));
    const hooks = { stop: (/** @type {{ drain: boolean, timeoutMs: number }} */ _opts) => {} };
    const handler = makeHandler(log, timers, hooks);
    neuron.handle({ type: CAPS.a, scope: 'any', concurrency: script.conc.a }, handler);
    neuron.handle({ type: CAPS.b, scope: 'any', concurrency: script.conc.b, inputSchema: B_SCHEMA }, handler);

    const started = neuron.start();
    started.then(() => log.add('start-resolved'), (err) => log.add('start-rejected', { error: describe(err) }));
    /** @type {Promise<void> | null} */
    let stopping = null;
    let stopAt = NaN;
    /** @param {{ drain: boolean, timeoutMs: number }} opts */
    const stop = (opts) => {
      if (stopping) {
        const again = neuron.stop(opts);
        if (again !== stopping) violations.push('a second stop() did not return the first promise');
        return;
      }
      log.add('stop-call', { drain: opts.drain, timeoutMs: opts.timeoutMs });
      stopAt = performance.now();
      stopping = neuron.stop(opts);
      stopping.then(() => {
        log.add('stop-done');
        driver.finished = true;
      }, (err) => log.add('stop-rejected', { error: describe(err) }));
    };
    hooks.stop = stop;
    // stopDuringStart: true stops in the same tick as start(); a number of ms
    // stops while start() may still be under way (e.g. IPC attach pending).
    if (script.stopDuringStart === true) stop(script.finalStop);
    else if (typeof script.stopDuringStart === 'number') {
      await sleep(script.stopDuringStart);
      stop(script.finalStop);
    } else {
      const r = await within(started, 3000);
      if (r === 'hung') violations.push('start() did not settle within 3 s');
    }

    for (const step of script.steps) {
      switch (step.t) {
        case 'lease':
        case 'cancel':
        case 'revoke':
          await driver.send([frameOf(step)]);
          break;
        case 'burst':
          await driver.send(step.frames.map(frameOf));
          break;
        case 'drop':
          await driver.drop(step);
          break;
        case 'wait':
          await sleep(step.ms);
          break;
        case 'lost':
          driver.lostNext = [...step.ids];
          log.add('lost-armed', { ids: step.ids });
          break;
        case 'update': {
          const type = CAPS[/** @type {keyof typeof CAPS} */ (step.cap)] ?? step.cap;
          const e = log.add('update-call', { cap: type, concurrency: step.concurrency });
          try {
            await neuron.updateCapability({ type, concurrency: step.concurrency });
            log.add('update-ok', { call: e.seq, cap: type, concurrency: step.concurrency });
          } catch (err) {
            log.add('update-rejected', { call: e.seq, cap: type, concurrency: step.concurrency, error: describe(err) });
          }
          break;
        }
        case 'stop':
          stop(step);
          break;
        default:
          throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
    }
    if (!stopping) stop(script.finalStop);
    const first = /** @type {any} */ (log.events.find((e) => e.type === 'stop-call'));
    const deadline = (first.drain ? first.timeoutMs : 0) + FLUSH_MS + STOP_SLACK_MS;
    const r = await within(/** @type {Promise<void>} */ (stopping), deadline + 500);
    stopMs = performance.now() - stopAt;
    if (r === 'hung') violations.push(`stop() did not settle within ${deadline + 500} ms (drain ${first.drain}, timeoutMs ${first.timeoutMs})`);
    else if (r === 'rejected') violations.push('stop() rejected');
    else if (stopMs > deadline) violations.push(`stop() took ${Math.round(stopMs)} ms, past its deadline of ${deadline} ms (drain ${first.drain}, timeoutMs ${first.timeoutMs}, + flush ${FLUSH_MS} + slack ${STOP_SLACK_MS})`);
    await sleep(30); // anything the SDK still does after stop() shows up now
    log.add('end');
    violations.push(...driver.leftovers());
    if (neuron.isConnected()) violations.push('isConnected() is true after stop()');
    // User timers (handlers that ignore the signal) end by themselves; then
    // every timer left is the SDK's.
    const drained = await timers.drained(2000);
    await sleep(1);
    const timeoutsAfter = activeTimeouts();
    // The harness's own timers (set in this file) may be another run's: a
    // transport's slow stop() from an earlier run, still pending, was once
    // counted against a byte-path run. They are the harness's, whichever run
    // set them; every other timer left is the SDK's.
    const pending = sites.pending();
    const harness = pending.filter((site) => site.split(' < ')[0].includes('/property-harness.js:')).length;
    if (timeoutsAfter > timeoutsBefore && (pending.length > harness || timeoutsAfter - timeoutsBefore > harness)) {
      // What tells an SDK timer from one of the harness's own (a handler's,
      // an answer's delay) that had not fired yet.
      const host = /** @type {any} */ (neuron)._host;
      const state = `harness timers ${drained ? 'drained' : `not drained after 2000 ms (${timers.live} live)`}; ` +
        `host stopped: ${host?.stopped}, host timer: ${host?.timer ? `armed for ${Math.round(host.timerAt - Date.now())} ms` : 'none'}`;
      violations.push(`${timeoutsAfter - timeoutsBefore} timer(s) still pending after stop() resolved (${state}), set at: ${pending.join(' | ')}`);
    }
    violations.push(...check(log.events, { carrier, script }));
  } finally {
    sites.stop();
    process.off('uncaughtException', onException);
    process.off('unhandledRejection', onRejection);
    for (const l of saved.uncaughtException) process.on('uncaughtException', l);
    for (const l of saved.unhandledRejection) process.on('unhandledRejection', l);
  }
  for (const s of stray) violations.push(`stray error: ${describe(s)}`);
  return { violations: [...new Set(violations)], log: log.events, stopMs, durationMs: log.now() };
}

/** @param {unknown} err */
export function describe(err) {
  try {
    if (err instanceof Error) return `${err.name}: ${err.message}`;
    if (typeof err === 'symbol') return err.toString();
    return `${typeof err} ${String(err)}`;
  } catch {
    return 'an unprintable value';
  }
}

// -------------------------------------------------------------------- model --

/**
 * @typedef {{
 *   id: string, n: number, cap: string, accepted: number,
 *   state: 'queued' | 'running' | 'ended' | 'dropped' | 'lost',
 *   called: boolean, raceTurn?: number, raceAbort?: string, settled: boolean, settleSeq?: number, settleHow?: string, settleValue?: unknown,
 *   verdict: { type?: string, kind?: string, code?: string, reason?: string, output?: unknown, alternatives?: any[] } | null,
 *   stored: { type: string, kind?: string, code?: string, why: string } | null,
 *   expectAbort: string | null, aborts: string[],
 *   posts: any[], endedAt: number, why: string,
 * }} Instance
 */

/**
 * Walks the log with PROTOCOL.md section 3 as the model; returns violations.
 * @param {any[]} events @param {{ carrier: string, script: any }} ctx
 */
export function check(events, { carrier, script }) {
  /** @type {string[]} */
  const v = [];
  const http = carrier === 'bytes';
  /** @type {Map<string, Instance>} current instance per leaseId */
  const current = new Map();
  /** @type {Instance[]} */
  const all = [];
  /** @type {Record<string, number>} */
  const concurrency = { [CAPS.a]: script.conc.a, [CAPS.b]: script.conc.b };
  /** @type {Set<string>} */
  const revoked = new Set();
  let stopping = false;
  /** @type {any} */
  let stopCall = null;
  let stopDone = /** @type {any} */ (null);
  let registered = false;
  let instanceNo = 0;
  let badHeartbeats = 0;
  let closedForGood = false;
  /** @type {Map<number, any>} post seq -> answer event */
  const answers = new Map();
  for (const e of events) if (e.type === 'answer') answers.set(e.post, e);

  const known = (/** @type {string} */ id) => {
    const inst = current.get(id);
    if (!inst) return false;
    // PROTOCOL rule 2: queued, running, or finished recently. Dropped leases are
    // redelivered (accepted again); a lost lease is known while its handler runs.
    if (inst.state === 'dropped') return false;
    if (inst.state === 'lost') return inst.called && !inst.settled;
    return true;
  };
  const runningOf = (/** @type {string} */ cap) => all.filter((i) => i.cap === cap && i.called && !i.settled).length;
  const queuedOf = (/** @type {string} */ cap) => all.filter((i) => i.cap === cap && i.state === 'queued');
  /** @param {Instance} inst @param {any} verdict @param {number} seq @param {string} why */
  const end = (inst, verdict, seq, why) => {
    inst.state = 'ended';
    inst.verdict = verdict;
    inst.endedAt = seq;
    inst.why = why;
  };
  /** @param {string} id @param {string} cap @param {number} seq */
  const accept = (id, cap, seq) => {
    /** @type {Instance} */
    const inst = {
      id, n: ++instanceNo, cap, accepted: seq, state: 'queued', called: false, settled: false,
      verdict: null, stored: null, expectAbort: null, aborts: [], posts: [], endedAt: -1, why: '',
    };
    current.set(id, inst);
    all.push(inst);
    return inst;
  };
  const validUpdate = (/** @type {any} */ e) => (e.cap === CAPS.a || e.cap === CAPS.b) && Number.isInteger(e.concurrency) && e.concurrency >= 1;
  /**
   * A handler that returned a thenable was logged as settled at its call;
   * under Promise semantics the SDK sees it settle a few microtasks later.
   * A cancel, revocation or stop() in that same turn may therefore come
   * first: either verdict is right, and the signal may fire.
   * @param {Instance} inst @param {any} e
   */
  const racing = (inst, e) => inst.raceTurn === e.turn && inst.state === 'ended' && !inst.posts.length;
  /** @param {Instance} inst @param {any} other @param {string} reason */
  const raced = (inst, other, reason) => {
    inst.verdict = { alternatives: [...(inst.verdict?.alternatives ?? [inst.verdict]), other] };
    inst.raceAbort = reason;
  };
  const nack = (/** @type {string} */ kind, /** @type {string | undefined} */ code) => ({ type: 'nack', kind, code });
  /** Stop: queued leases are nacked at once. @param {number} seq */
  const stopQueued = (seq) => {
    for (const inst of all) if (inst.state === 'queued') end(inst, nack('retryable', 'SHUTTING_DOWN'), seq, 'queued at stop()');
  };
  /** Running leases end now: their stored verdict, or SHUTTING_DOWN. @param {Instance} inst @param {number} seq */
  const stopRunning = (inst, seq) => {
    if (inst.stored) end(inst, inst.stored, seq, `${inst.stored.why}, then stop()`);
    else end(inst, nack('retryable', 'SHUTTING_DOWN'), seq, 'running when stop() aborted it');
  };

  let turn = -1;
  /** @type {Set<string>} leases that stopped running in this turn */
  let endedThisTurn = new Set();
  /** @type {Set<string>} leases that started running in this turn */
  let startedThisTurn = new Set();
  for (const e of events) {
    if (e.turn !== turn) {
      turn = e.turn;
      endedThisTurn = new Set();
      startedThisTurn = new Set();
    }
    const runningBefore = new Set(all.filter((i) => i.state === 'running').map((i) => i.id));
    modelEvent(e);
    for (const inst of all) {
      const was = runningBefore.has(inst.id) && current.get(inst.id) === inst;
      if (was && inst.state !== 'running') endedThisTurn.add(inst.id);
      if (!was && inst.state === 'running') startedThisTurn.add(inst.id);
    }
  }

  /** @param {any} e */
  function modelEvent(e) {
    switch (e.type) {
      case 'registered':
        registered = true;
        break;
      case 'close':
        registered = false;
        if (e.reason === 'stopped') closedForGood = true;
        if (e.reason !== 'stopped') {
          // 1.2: queued leases are dropped on connection loss, with no nack.
          for (const inst of all) if (inst.state === 'queued') {
            inst.state = 'dropped';
            inst.why = 'queued when the stream was lost';
          }
        }
        break;
      case 'stop-call':
        stopping = true;
        stopCall = e;
        stopQueued(e.seq);
        if (!e.drain) {
          for (const inst of all) if (racing(inst, e)) raced(inst, nack('retryable', 'SHUTTING_DOWN'), SIGNAL_REASON.stop);
          for (const inst of all) if (inst.state === 'running') stopRunning(inst, e.seq);
        }
        break;
      case 'stop-done':
        stopDone = e;
        if (events.filter((x) => x.type === 'close' && x.reason === 'stopped').length !== 1) {
          v.push(`connection:close "stopped" fired ${events.filter((x) => x.type === 'close' && x.reason === 'stopped').length} times; once expected`);
        }
        break;
      case 'update-call':
        // The new limit applies inside the call (queued leases start there and then).
        if (!stopping && validUpdate(e)) concurrency[e.cap] = e.concurrency;
        break;
      case 'update-ok':
        if (!validUpdate(e)) v.push(`updateCapability({ type: ${JSON.stringify(e.cap)}, concurrency: ${e.concurrency} }) resolved; it must reject (rule 13)`);
        break;
      case 'update-rejected':
        if (!stopping && validUpdate(e)) v.push(`updateCapability({ type: ${e.cap}, concurrency: ${e.concurrency} }) rejected: ${e.error}`);
        break;
      case 'frame': {
        const f = e.frame;
        if (f.type === 'lease') {
          const id = typeof f.leaseId === 'string' && f.leaseId ? f.leaseId : null;
          const taskId = typeof f.task?.taskId === 'string' && f.task.taskId ? f.task.taskId : null;
          const type = typeof f.task?.type === 'string' && f.task.type ? f.task.type : null;
          if (!id || !taskId) break; // rule 4: an error event, nothing to nack
          if (!type) {
            if (!known(id)) end(accept(id, '?', e.seq), nack('terminal', 'MALFORMED_LEASE'), e.seq, 'malformed (no task.type)');
            break;
          }
          if (known(id)) break; // rule 2
          const inst = accept(id, type, e.seq);
          if (stopping) end(inst, nack('retryable', 'SHUTTING_DOWN'), e.seq, 'arrived while stopping');
          else if (!(type in concurrency)) end(inst, nack('retryable', 'NO_HANDLER'), e.seq, 'no handler');
          else if (revoked.has(type)) end(inst, nack('retryable', 'CAPABILITY_REVOKED'), e.seq, 'capability revoked before');
          else if (type === CAPS.b && !Number.isInteger(f.task.input?.n)) end(inst, { type: 'nack', kind: 'schema-mismatch' }, e.seq, 'input fails inputSchema');
        } else if (f.type === 'cancel') {
          const inst = current.get(f.leaseId);
          if (inst && racing(inst, e)) raced(inst, nack('cancelled'), SIGNAL_REASON.cancel);
          if (!inst || !known(f.leaseId) || inst.state === 'ended' || inst.state === 'lost') break;
          if (inst.state === 'queued') end(inst, nack('cancelled'), e.seq, 'cancelled while queued');
          else if (!inst.stored) {
            inst.stored = { type: 'nack', kind: 'cancelled', why: 'cancelled while running' };
            inst.expectAbort = SIGNAL_REASON.cancel;
          }
        } else if (f.type === 'capability-revoked') {
          if (!(f.capability in concurrency)) break;
          revoked.add(f.capability);
          for (const inst of all) {
            if (inst.cap !== f.capability) continue;
            if (racing(inst, e)) raced(inst, nack('retryable', 'CAPABILITY_REVOKED'), SIGNAL_REASON.revoke);
            if (inst.state === 'queued') end(inst, nack('retryable', 'CAPABILITY_REVOKED'), e.seq, 'queued when revoked');
            else if (inst.state === 'running' && !inst.stored) {
              inst.stored = { type: 'nack', kind: 'retryable', code: 'CAPABILITY_REVOKED', why: 'revoked while running' };
              inst.expectAbort = SIGNAL_REASON.revoke;
            }
          }
        }
        break;
      }
      case 'call': {
        const inst = current.get(e.leaseId);
        if (!inst || inst.state !== 'queued') {
          v.push(`handler called for ${e.leaseId} (#${e.seq}) but that lease is ${inst ? `${inst.state} (${inst.why})` : 'unknown'}: no handler may run for a lease that is not waiting to run`);
          break;
        }
        const before = queuedOf(inst.cap).filter((i) => i.accepted < inst.accepted);
        if (before.length) v.push(`FIFO (rule 6): ${inst.id} started before ${before.map((i) => i.id).join(', ')} of ${inst.cap}, which were queued earlier`);
        const running = runningOf(inst.cap);
        if (running >= concurrency[inst.cap]) v.push(`slots (rule 6/13): ${inst.id} started while ${running} lease(s) of ${inst.cap} ran, concurrency ${concurrency[inst.cap]}`);
        inst.state = 'running';
        inst.called = true;
        if (stopping && stopCall && !stopCall.drain) v.push(`handler of ${inst.id} started after stop({ drain: false })`);
        break;
      }
      case 'settle': {
        const inst = current.get(e.leaseId);
        if (!inst) break;
        inst.settled = true;
        inst.settleSeq = e.seq;
        inst.settleHow = e.how;
        inst.settleValue = e.value;
        if (e.how === 'strange' && STRANGE[e.value].async) inst.raceTurn = e.turn;
        if (inst.state === 'running') {
          if (inst.stored) end(inst, inst.stored, e.seq, inst.stored.why);
          else if (e.how === 'strange') end(inst, STRANGE[e.value].expect, e.seq, `handler gave ${e.value}`);
          else if (e.how === 'return') end(inst, { type: 'ack', output: wire(e.value) }, e.seq, 'handler returned');
          else if (e.how === 'throw') end(inst, { type: 'nack', kind: 'retryable', reason: String(e.value) }, e.seq, 'handler threw');
          else end(inst, { type: 'nack', kind: 'terminal', code: 'E_SCRIPT', reason: String(e.value) }, e.seq, 'ctx.fail()');
        }
        break;
      }
      case 'abort': {
        const inst = current.get(e.leaseId);
        if (!inst) break;
        inst.aborts.push(e.reason);
        if (e.name !== 'AbortError') v.push(`ctx.signal.reason of ${inst.id} is not an AbortError (${e.name})`);
        if (inst.raceAbort === e.reason && inst.raceTurn === e.turn) break; // see racing()
        if (inst.settled && !(inst.raceAbort === e.reason && inst.raceTurn === e.turn)) v.push(`ctx.signal of ${inst.id} fired (${e.reason}) after its handler had settled`);
        if (e.reason === SIGNAL_REASON.stop && inst.state !== 'lost') {
          if (!stopping) v.push(`${inst.id} aborted with "shutting down" before stop() was called`);
          else if (inst.state === 'running') stopRunning(inst, e.seq);
          if (stopCall?.drain && e.t < stopCall.t + stopCall.timeoutMs - 2) {
            v.push(`drain (rule 12): ${inst.id} was aborted ${Math.round(e.t - stopCall.t)} ms after stop({ drain: true, timeoutMs: ${stopCall.timeoutMs} })`);
          }
        } else if (inst.state === 'lost' && inst.expectAbort === SIGNAL_REASON.lost) {
          if (e.reason !== SIGNAL_REASON.lost) v.push(`1.3: ctx.signal of ${inst.id} fired with "${e.reason}", but the gateway had reported the lease lost ("lease lost" expected)`);
        } else if (e.reason === SIGNAL_REASON.lost) {
          v.push(`${inst.id} aborted with "lease lost" while ${inst.state}${inst.stored ? ` (${inst.stored.why})` : ''}`);
        } else if (e.reason !== inst.expectAbort) {
          v.push(`ctx.signal of ${inst.id} fired with "${e.reason}", expected ${inst.expectAbort ? `"${inst.expectAbort}"` : 'no abort'}`);
        }
        break;
      }
      case 'answer': {
        if (e.lost) {
          for (const id of e.lost) {
            const inst = current.get(id);
            if (!inst) continue;
            if (inst.state === 'queued') {
              inst.state = 'lost';
              inst.why = 'lost while queued';
            } else if (inst.state === 'running') {
              // It ends now, with no terminal frame; its signal fires "lease
              // lost" unless a cancel or revocation fired it already.
              inst.state = 'lost';
              inst.why = inst.stored ? `lost after ${inst.stored.why}` : 'lost while running';
              if (!inst.stored) inst.expectAbort = SIGNAL_REASON.lost;
            }
          }
        }
        break;
      }
      case 'post': {
        const f = e.frame;
        if (stopDone) v.push(`${e.path} posted after stop() resolved`);
        else if (closedForGood) v.push(`${e.path} posted (#${e.seq}) after the neuron had closed for good (connection:close "stopped"${carrier === 'transport' ? ', transport.stop() called' : ''})`);
        if (e.path === '/neuron/ack' || e.path === '/neuron/nack') {
          const inst = current.get(f.leaseId);
          if (!inst) {
            v.push(`${f.type} for ${f.leaseId}, a lease the neuron never accepted`);
            break;
          }
          if (inst.state === 'running') {
            // With stop() under way: the drain's deadline ended it (a lease with
            // a stored verdict has no signal left to fire, so no abort shows it).
            if (stopping) stopRunning(inst, e.seq);
            else v.push(`${f.type} for ${inst.id} posted while its handler still ran${inst.stored ? ` (${inst.stored.why})` : ''}`);
          } else if (inst.state === 'queued') {
            v.push(`${f.type} for ${inst.id} posted while it waited for a slot (nothing ended it)`);
          }
          inst.posts.push(e);
        } else if (e.path === '/neuron/progress') {
          const inst = current.get(f.leaseId);
          if (!inst?.called) v.push(`progress for ${f.leaseId}, whose handler never ran`);
          else if (inst.posts.length) v.push(`progress for ${inst.id} reached the gateway after its ${inst.posts[0].frame.type} (rule 10)`);
        } else if (e.path === '/neuron/heartbeat') {
          if (!registered && !closedForGood) v.push(`heartbeat posted while not registered (#${e.seq})`);
          // Exactly the running leases; one that started or stopped in the
          // very turn the heartbeat left in may go either way.
          const listed = (f.inFlight ?? []).map((/** @type {any} */ l) => l.leaseId).sort();
          const running = all.filter((i) => i.state === 'running').map((i) => i.id);
          const extra = listed.filter((id) => !running.includes(id) && !endedThisTurn.has(id));
          const missing = running.filter((id) => !listed.includes(id) && !startedThisTurn.has(id));
          if (extra.length || missing.length || new Set(listed).size !== listed.length) {
            badHeartbeats++;
            if (badHeartbeats === 1) v.push(`heartbeat #${e.seq} at ${e.t} ms lists [${listed}] but the running leases were [${running.sort()}] (queued: [${all.filter((i) => i.state === 'queued').map((i) => i.id)}])`);
          }
        }
        break;
      }
      case 'stall':
        v.push(`the byte path stopped taking in frames: frame ${e.frameSeq} (${e.frame.type} ${e.frame.leaseId ?? ''}) not seen by the neuron in ${STALL_MS} ms while its stream stayed open`);
        break;
      case 'bad-request':
        v.push(e.what);
        break;
      case 'callback-threw':
        v.push(`the neuron's ${e.name} callback threw into the transport: ${e.error}`);
        break;
      default:
        break;
    }
  }

  if (badHeartbeats > 1) v.push(`(${badHeartbeats - 1} later heartbeat(s) did not list exactly the running leases either)`);

  // ---- per lease, after the run ----
  // The drain ends when the last lease has ended; the flush deadline runs
  // from there. A stop() that took that long may leave acks/nacks unanswered
  // or their retries unsent (the documented exception).
  const stopPlan = script.transportStop ?? script.ipc?.detach;
  let drainEnd = stopCall?.t ?? 0;
  for (const inst of all) if (inst.endedAt >= 0) drainEnd = Math.max(drainEnd, events[inst.endedAt].t);
  const flushHit = Boolean(stopDone) && stopDone.t - drainEnd >= FLUSH_MS - 50;
  if (!stopDone) v.push('stop() never resolved');
  else if (!flushHit && stopPlan?.how !== 'never') {
    // Rule 12, measured from the log: stop() resolves once every lease has
    // ended and the last ack/nack has its answer (and the transport stopped).
    let ready = drainEnd;
    for (const inst of all) for (const p of inst.posts) ready = Math.max(ready, answers.get(p.seq)?.t ?? p.t);
    const allowed = STOP_PROMPT_MS + (stopPlan?.how === 'slow' ? stopPlan.ms : 0);
    if (stopDone.t - ready > allowed) {
      v.push(`stop() resolved ${Math.round(stopDone.t - ready)} ms after the last lease ended and the last ack/nack was answered (allowed ${allowed} ms)`);
    }
  }
  for (const inst of all) {
    const label = `${inst.id}#${inst.n} (${inst.why || inst.state})`;
    if (inst.state === 'dropped' || inst.state === 'lost') {
      if (inst.posts.length) v.push(`${label}: ${inst.posts.length} terminal frame(s) posted for a ${inst.state} lease; it must get none`);
      if (inst.state === 'dropped' && inst.called) v.push(`${label}: handler ran for a dropped lease`);
      if (inst.state === 'lost' && inst.called && !inst.stored && !inst.aborts.length) v.push(`${label}: ctx.signal never fired ("lease lost" expected)`);
      continue;
    }
    if (inst.state !== 'ended') {
      if (!flushHit) v.push(`${label}: still ${inst.state} when stop() resolved; rule 12 ends every lease`);
      continue;
    }
    if (inst.expectAbort && inst.called && !inst.aborts.includes(inst.expectAbort) && !inst.aborts.length) {
      v.push(`${label}: ctx.signal never fired ("${inst.expectAbort}" expected)`);
    }
    // (A handler that had returned by the time the SDK got to it, e.g. one
    // that called stop() itself and returned at once, has no signal to fire.)
    const settledFirst = inst.settled && inst.settleSeq < (inst.posts[0]?.seq ?? Infinity);
    if (inst.verdict?.code === 'SHUTTING_DOWN' && inst.called && !settledFirst && !inst.aborts.includes(SIGNAL_REASON.stop)) {
      v.push(`${label}: ended SHUTTING_DOWN while its handler ran, but ctx.signal never fired "shutting down"`);
    }
    if (!inst.called && inst.aborts.length) v.push(`${label}: aborted but never called`);
    checkTerminal(inst, label, answers, { http, flushHit, stopDone, v });
  }
  return v;
}

/**
 * One terminal frame per accepted lease, retried only as 1.1 allows.
 * @param {Instance} inst @param {string} label @param {Map<number, any>} answers
 * @param {{ http: boolean, flushHit: boolean, stopDone: any, v: string[] }} o
 */
function checkTerminal(inst, label, answers, { http, flushHit, v }) {
  const posts = inst.posts;
  if (!posts.length) {
    // Not even at stop()'s flush deadline: a verdict goes on the wire when
    // it is decided (rule 11); only its answer may still be missing then.
    v.push(`${label}: no ack or nack was posted (expected ${fmt(inst.verdict)})`);
    return;
  }
  const first = posts[0].frame;
  if (first.type === 'nack' && typeof first.reason !== 'string') v.push(`${label}: nack without a reason string`);
  const strip = (/** @type {any} */ f) => {
    const { sentAt, _seq, ...rest } = f;
    void sentAt;
    void _seq;
    return rest;
  };
  for (const p of posts.slice(1)) {
    if (!jsonEq(strip(p.frame), strip(first))) v.push(`${label}: two different terminal frames: ${JSON.stringify(strip(first))} then ${JSON.stringify(strip(p.frame))}`);
  }
  const want = inst.verdict;
  if (want) {
    const matches = (/** @type {any} */ w) => {
      const kindOk = w.kind === undefined || (Array.isArray(w.kind) ? w.kind.includes(first.kind) : first.kind === w.kind);
      return first.type === w.type && kindOk && (w.code === undefined || first.code === w.code)
        && (w.type !== 'ack' || jsonEq(first.output, w.output))
        && (w.reason === undefined || first.reason === w.reason);
    };
    const options = want.alternatives ?? [want];
    if (!options.some(matches)) v.push(`${label}: posted ${fmt(first)}, expected ${options.map(fmt).join(' or ')}`);
  }
  // 1.1: retry on 429 / 5xx / network error (at most 5 attempts), once more on a 401 (HTTP).
  let attempt = 1;
  let reauthed = false;
  for (let i = 0; i < posts.length; i++) {
    const a = answers.get(posts[i].seq);
    const next = posts[i + 1];
    if (!a) {
      if (next) v.push(`${label}: retried before the previous attempt was answered`);
      continue;
    }
    if (next && next.seq < a.seq) v.push(`${label}: a retry was posted before the previous attempt was answered`);
    const s = a.status;
    let retry = false;
    if (s === 401 && http && !reauthed) {
      retry = true;
      reauthed = true;
    } else if (RETRYABLE(s) && attempt < 5) {
      retry = true;
      attempt++;
      reauthed = false;
    }
    if (next && !retry) v.push(`${label}: posted again after a final answer (${s === -1 ? 'aborted' : `HTTP ${s}`}) on attempt ${attempt}`);
    if (!next && retry && !flushHit) v.push(`${label}: answered ${s === 0 ? 'with a network error' : `HTTP ${s}`} on attempt ${attempt} and never retried`);
    if (!next && s === -1 && !flushHit) v.push(`${label}: its ${posts[i].frame.type} was aborted by stop() before the flush deadline`);
  }
}

/** @param {any} f */
function fmt(f) {
  if (!f) return 'nothing';
  return `${f.type}${f.kind ? ` ${f.kind}` : ''}${f.code ? ` ${f.code}` : ''}${f.type === 'ack' ? ` ${JSON.stringify(f.output)}` : ''}`;
}

// Test helpers: an in-process gateway, a raw HTTP+SSE test neuron (fetch + ReadableStream), waiting utilities.

import { createGateway } from '../gateway/index.js';

export const SECRET = 'test-secret';

/**
 * @param {import('../gateway/index.js').GatewayOptions} [opts]
 */
export function startGateway(opts = {}) {
  return createGateway({ secret: SECRET, pingIntervalMs: 60_000, logLevel: 'silent', ...opts });
}

/**
 * Minimal SSE parser (WHATWG rules that matter here): LF/CR/CRLF, comments, event/data fields, BOM.
 */
export class SseParser {
  /** @param {(ev: { event: string, data: string }) => void} onEvent @param {(text: string) => void} [onComment] */
  constructor(onEvent, onComment) {
    this.onEvent = onEvent;
    this.onComment = onComment ?? (() => {});
    this.buf = '';
    this.event = '';
    /** @type {string[]} */
    this.data = [];
    this.first = true;
  }

  /** @param {string} chunk */
  push(chunk) {
    if (this.first) { chunk = chunk.replace(/^\uFEFF/, ''); this.first = false; }
    this.buf += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buf);
      if (!m) break;
      if (m[0] === '\r' && m.index === this.buf.length - 1) break; // maybe CRLF split across chunks
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
  }

  /** @param {string} line */
  line(line) {
    if (line === '') {
      if (this.data.length) this.onEvent({ event: this.event || 'message', data: this.data.join('\n') });
      this.event = '';
      this.data = [];
      return;
    }
    if (line.startsWith(':')) { this.onComment(line.slice(1).trim()); return; }
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
  }
}

/**
 * Open an SSE stream with fetch and collect events.
 * @param {string} url @param {Record<string, string>} [headers]
 */
export async function openSse(url, headers = {}) {
  const ctrl = new AbortController();
  const res = await fetch(url, { headers, signal: ctrl.signal });
  /** @type {any[]} */
  const events = [];
  /** @type {string[]} */
  const comments = [];
  /** @type {(() => void)[]} */
  let wake = [];
  const notify = () => { const w = wake; wake = []; w.forEach((f) => f()); };
  let ended = false;
  const parser = new SseParser(
    (ev) => { events.push(JSON.parse(ev.data)); notify(); },
    (c) => { comments.push(c); notify(); },
  );
  const done = (async () => {
    if (!res.ok || !res.body) return;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } catch { /* aborted */ }
    ended = true;
    notify();
  })();
  let cursor = 0;
  const sse = {
    res,
    events,
    comments,
    get ended() { return ended; },
    done,
    close() { ctrl.abort(); return done; },
    /**
     * Wait until `pred` holds over the collected state.
     * @param {() => any} pred @param {number} [timeoutMs] @param {string} [what]
     */
    async until(pred, timeoutMs = 3000, what = 'condition') {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const v = pred();
        if (v) return v;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${what}; events so far: ${JSON.stringify(events).slice(0, 2000)}`);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, Math.min(left, 200));
          wake.push(() => { clearTimeout(t); resolve(undefined); });
        });
      }
    },
    /**
     * Next not-yet-consumed event matching `match` (a frame type or a predicate); consumes events in order.
     * @param {string | ((e: any) => boolean)} match @param {number} [timeoutMs]
     */
    async next(match, timeoutMs = 3000) {
      const test = typeof match === 'string' ? (/** @type {any} */ e) => e.type === match : match;
      return sse.until(() => {
        for (let i = cursor; i < events.length; i++) {
          if (test(events[i])) { cursor = i + 1; return events[i]; }
        }
        return null;
      }, timeoutMs, `event ${typeof match === 'string' ? match : 'matching predicate'}`);
    },
    /** No matching unconsumed event arrives within `ms`. */
    async none(match, ms = 150) {
      const test = typeof match === 'string' ? (/** @type {any} */ e) => e.type === match : match;
      await new Promise((r) => setTimeout(r, ms));
      return events.slice(cursor).filter(test);
    },
  };
  return sse;
}

/** A raw test neuron speaking HTTP + SSE. */
export class TestNeuron {
  /**
   * @param {{ url: string }} gw @param {string} neuronId @param {string} token
   */
  constructor(gw, neuronId, token) {
    this.gw = gw;
    this.neuronId = neuronId;
    this.token = token;
    /** @type {Awaited<ReturnType<typeof openSse>>|null} */
    this.sse = null;
  }

  async connect() {
    this.sse = await openSse(`${this.gw.url}/neuron/events?neuronId=${encodeURIComponent(this.neuronId)}`, { Authorization: `Bearer ${this.token}` });
    if (this.sse.res.status !== 200) throw new Error(`stream open failed: ${this.sse.res.status}`);
    return this;
  }

  /**
   * @param {string} path e.g. '/neuron/ack'
   * @param {unknown} body
   * @param {{ token?: string|null, raw?: string }} [o]
   */
  async post(path, body, o = {}) {
    /** @type {Record<string, string>} */
    const headers = { 'Content-Type': 'application/json' };
    const token = o.token === undefined ? this.token : o.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(`${this.gw.url}${path}`, { method: 'POST', headers, body: o.raw ?? JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }

  /** @param {object[]} capabilities */
  async register(capabilities) {
    const r = await this.post('/neuron/register', { type: 'register', neuronId: this.neuronId, sentAt: new Date().toISOString(), sdk: { name: 'test', version: '0' }, capabilities });
    if (r.status !== 200) return { ...r, frame: null };
    const frame = await this.next('registered');
    return { ...r, frame };
  }

  /** @param {string|((e:any)=>boolean)} match @param {number} [timeoutMs] */
  next(match, timeoutMs) {
    return /** @type {NonNullable<typeof this.sse>} */ (this.sse).next(match, timeoutMs);
  }

  /** @param {string|((e:any)=>boolean)} match @param {number} [ms] */
  none(match, ms) {
    return /** @type {NonNullable<typeof this.sse>} */ (this.sse).none(match, ms);
  }

  /** @param {any} lease @param {unknown} [output] */
  ack(lease, output = { ok: true }) {
    return this.post('/neuron/ack', { type: 'ack', neuronId: this.neuronId, sentAt: new Date().toISOString(), leaseId: lease.leaseId, taskId: lease.task.taskId, output, durationMs: 1 });
  }

  /** @param {any} lease @param {string} kind @param {object} [extra] */
  nack(lease, kind, extra = {}) {
    return this.post('/neuron/nack', { type: 'nack', neuronId: this.neuronId, sentAt: new Date().toISOString(), leaseId: lease.leaseId, taskId: lease.task.taskId, kind, reason: `test ${kind}`, ...extra });
  }

  /** @param {string[]} leaseIds */
  heartbeat(leaseIds) {
    return this.post('/neuron/heartbeat', { type: 'heartbeat', neuronId: this.neuronId, sentAt: new Date().toISOString(), inFlight: leaseIds.map((leaseId) => ({ leaseId, taskId: 'x', startedAt: new Date().toISOString() })) });
  }

  /** @param {string} capability @param {number} concurrency */
  updateCapability(capability, concurrency) {
    return this.post('/neuron/update-capability', { type: 'update-capability', neuronId: this.neuronId, sentAt: new Date().toISOString(), capability, concurrency });
  }

  close() {
    return this.sse?.close();
  }
}

/**
 * JSON over the dev API.
 * @param {{ url: string }} gw @param {string} method @param {string} path @param {unknown} [body]
 */
export async function dev(gw, method, path, body) {
  const res = await fetch(`${gw.url}${path}`, {
    method,
    // dev POSTs need Content-Type: application/json, with or without a body
    headers: body === undefined && method !== 'POST' ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** @param {{ url: string }} gw @param {object} task */
export async function enqueue(gw, task) {
  const r = await dev(gw, 'POST', '/dev/tasks', task);
  if (r.status !== 201) throw new Error(`enqueue failed: ${r.status} ${JSON.stringify(r.body)}`);
  return /** @type {string} */ (r.body.taskId);
}

/**
 * Poll until fn() returns truthy.
 * @template T @param {() => T | Promise<T>} fn @param {number} [timeoutMs] @param {string} [what]
 * @returns {Promise<T>}
 */
export async function waitFor(fn, timeoutMs = 3000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Token helpers for each identity kind. @param {import('../gateway/index.js').Gateway} gw */
export async function tokens(gw) {
  return {
    service: await gw.mintToken({ kind: 'service', sub: 'svc-1' }),
    desktop: await gw.mintToken({ kind: 'desktop', sub: 'desk-1', userId: 'user:abc' }),
    org: await gw.mintToken({ kind: 'org-extension', sub: 'ext-1', orgId: 'org1' }),
    user: await gw.mintToken({ kind: 'user-extension', sub: 'uext-1', userId: 'user:abc' }),
  };
}

/** @param {string} type @param {number} [concurrency] */
export const anyCap = (type, concurrency = 1) => ({ type, scope: 'any', concurrency });
/** @param {string} type @param {string} user @param {number} [concurrency] */
export const userCap = (type, user, concurrency = 1) => ({ type, scope: { onBehalfOf: user }, concurrency });

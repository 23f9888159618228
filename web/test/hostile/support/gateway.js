// A misbehaving gateway on a raw node:http server, for the hostile suite.
//
// It speaks enough of PROTOCOL.md to get a neuron registered (the stream, the
// register POST answered with a `registered` frame on the stream) and records
// every POST; everything else is up to the test: it writes what it likes on
// the stream (`write`, `pump`, `trickle`), takes over any POST answer
// (`answer`), or serves the stream itself (`onStream`).
//
// It also counts what a bounded neuron must keep bounded: TCP connections
// open at the same time and requests in flight (current and maximum), and it
// checks every POST body is valid UTF-8 JSON.

import http from 'node:http';
import { once } from 'node:events';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * @typedef {{ path: string, frame: any, bytes: number, invalidUtf8: boolean, at: number }} Post
 * @typedef {{ req: http.IncomingMessage, res: http.ServerResponse, opened: number, closed: boolean }} Stream
 * @typedef {(path: string, frame: any, res: http.ServerResponse) => boolean | { status?: number, body?: string } | void} Answer
 */

/** The SSE event carrying one frame. @param {unknown} frame */
export const sse = (frame) => `data: ${typeof frame === 'string' ? frame : JSON.stringify(frame)}\n\n`;

/** A valid lease frame. @param {string} leaseId @param {unknown} [input] @param {string} [type] */
export function leaseFrame(leaseId, input = { ok: 1 }, type = 'hostile/echo') {
  return {
    type: 'lease', leaseId, expiresAt: new Date(Date.now() + 60_000).toISOString(),
    task: { taskId: `task-${leaseId}`, type, input, attempt: 1 },
  };
}

/**
 * The first bytes of a lease event, up to and including `input` (raw JSON
 * text, or the start of it): the caller writes the rest and `}}\n\n`.
 * @param {string} id @param {string} input
 */
export const leaseOpening = (id, input) =>
  `data: {"type":"lease","leaseId":"${id}","task":{"taskId":"task-${id}","type":"hostile/echo","input":${input}`;

/** A whole lease event whose input is the raw JSON text given. @param {string} id @param {string} input */
export const rawLease = (id, input) => `${leaseOpening(id, input)}}}\n\n`;

export class HostileGateway {
  /**
   * @param {{ onStream?: (req: http.IncomingMessage, res: http.ServerResponse, gw: HostileGateway) => void,
   *           answer?: Answer, sessionId?: string }} [opts]
   */
  constructor(opts = {}) {
    /** Serves GET /neuron/events; the default opens a proper SSE stream. */
    this.onStream = opts.onStream ?? ((req, res) => this.openStream(req, res));
    /** Takes over a POST answer: return true if it answered `res` itself, or { status, body }. */
    this.answer = opts.answer ?? (() => undefined);
    this.sessionId = opts.sessionId ?? 's-hostile';
    /** @type {Stream[]} every stream request, in order */
    this.streams = [];
    /** @type {Post[]} */
    this.posts = [];
    /** @type {Map<string, any[]>} leaseId -> ack / nack frames posted for it */
    this.terminals = new Map();
    this.sockets = { open: 0, max: 0, total: 0 };
    this.requests = { open: 0, max: 0 };
    /** @type {(() => void)[]} */
    this.watchers = [];
    /** @type {Set<import('node:net').Socket>} */
    this.live = new Set();
    this.server = http.createServer({ keepAliveTimeout: 5_000, noDelay: true }, (req, res) => this.route(req, res));
    this.server.on('connection', (socket) => {
      this.live.add(socket);
      this.sockets.total++;
      this.sockets.max = Math.max(this.sockets.max, ++this.sockets.open);
      socket.on('close', () => {
        this.live.delete(socket);
        this.sockets.open--;
      });
      socket.on('error', () => {}); // resets from a dying neuron are expected here
      this.notify();
    });
  }

  /** @returns {Promise<string>} the gateway URL */
  async listen() {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    const { port } = /** @type {import('node:net').AddressInfo} */ (this.server.address());
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }

  async close() {
    for (const s of this.streams) if (!s.closed) s.res.destroy();
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  /** @param {http.IncomingMessage} req @param {http.ServerResponse} res */
  route(req, res) {
    this.requests.max = Math.max(this.requests.max, ++this.requests.open);
    let counted = true;
    const done = () => {
      if (counted) this.requests.open--;
      counted = false;
    };
    res.on('close', done);
    const url = new URL(req.url ?? '/', 'http://gw');
    if (req.method === 'GET' && url.pathname === '/neuron/events') {
      this.onStream(req, res, this);
      this.notify();
      return;
    }
    if (req.method !== 'POST' || !url.pathname.startsWith('/neuron/')) {
      res.writeHead(404).end();
      return;
    }
    /** @type {Buffer[]} */
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('error', () => {});
    req.on('end', () => this.received(url.pathname, Buffer.concat(chunks), res));
  }

  /**
   * The default stream: 200, text/event-stream (`contentType` null: no
   * Content-Type at all), kept open.
   * @param {http.IncomingMessage} req @param {http.ServerResponse} res
   * @param {{ contentType?: string | null, status?: number }} [opts]
   */
  openStream(req, res, { contentType = 'text/event-stream', status = 200 } = {}) {
    /** @type {Stream} */
    const s = { req, res, opened: Date.now(), closed: false };
    this.streams.push(s);
    res.on('close', () => {
      s.closed = true;
      this.notify();
    });
    res.writeHead(status, contentType === null ? { 'cache-control': 'no-store' } : { 'content-type': contentType, 'cache-control': 'no-store' });
    res.flushHeaders();
    return s;
  }

  /** The latest stream. */
  get stream() {
    const s = this.streams.at(-1);
    if (!s) throw new Error('HostileGateway: no stream was opened');
    return s;
  }

  /** @param {string} path @param {Buffer} body @param {http.ServerResponse} res */
  received(path, body, res) {
    let text = '';
    let invalidUtf8 = false;
    try {
      text = fatalUtf8.decode(body);
    } catch {
      invalidUtf8 = true;
      text = body.toString('utf8');
    }
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      frame = { unparsable: text.slice(0, 200) };
    }
    this.posts.push({ path, frame, bytes: body.length, invalidUtf8, at: Date.now() });
    if ((path === '/neuron/ack' || path === '/neuron/nack') && typeof frame.leaseId === 'string') {
      const list = this.terminals.get(frame.leaseId) ?? [];
      list.push({ ...frame, type: path === '/neuron/ack' ? 'ack' : 'nack' });
      this.terminals.set(frame.leaseId, list);
    }
    this.notify();
    const custom = this.answer(path, frame, res);
    if (custom === true) return;
    const { status = 200, body: answer = '{}' } = custom || {};
    res.writeHead(status, { 'content-type': 'application/json' }).end(answer);
    if (path === '/neuron/register' && status === 200 && frame.type === 'register') {
      const s = this.streams.at(-1);
      if (s && !s.closed) {
        s.res.write(sse({
          type: 'registered', sessionId: this.sessionId,
          capabilities: frame.capabilities.map((/** @type {any} */ c) => ({ type: c.type, scope: c.scope, concurrency: c.concurrency })),
        }));
      }
    }
  }

  notify() {
    for (const w of this.watchers.splice(0)) w();
  }

  /**
   * Resolves once `cond()` holds (checked on every stream, POST and close,
   * and whenever `notify()` is called); rejects on timeout or if `cond` throws.
   * @param {() => boolean} cond @param {string} what @param {number} [timeoutMs]
   */
  until(cond, what, timeoutMs = 20_000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gateway: timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      const check = () => {
        let ok;
        try {
          ok = cond();
        } catch (err) {
          clearTimeout(timer);
          reject(err);
          return;
        }
        if (ok) {
          clearTimeout(timer);
          resolve(undefined);
        } else this.watchers.push(check);
      };
      check();
    });
  }

  /** Frames POSTed to /neuron/{kind}. @param {string} kind */
  sent(kind) {
    return this.posts.filter((p) => p.path === `/neuron/${kind}`).map((p) => p.frame);
  }

  /** Ack / nack frames for a lease. @param {string} leaseId */
  terminal(leaseId) {
    return this.terminals.get(leaseId) ?? [];
  }

  /** Resolves with the first ack / nack for the lease. @param {string} leaseId @param {number} [timeoutMs] */
  async terminalFor(leaseId, timeoutMs = 20_000) {
    await this.until(() => this.terminal(leaseId).length > 0, `the ack or nack of ${leaseId}`, timeoutMs);
    return this.terminal(leaseId)[0];
  }

  /**
   * Writes bytes on the latest stream (or on `res`, any answer), waiting for
   * the socket to drain.
   * @param {string | Uint8Array} bytes @param {http.ServerResponse} [res]
   */
  async write(bytes, res = this.stream.res) {
    if (res.destroyed) throw new Error('HostileGateway: the response is closed');
    if (!res.write(bytes)) await drained(res);
  }

  /** @param {string} leaseId @param {unknown} [input] @param {string} [type] */
  lease(leaseId, input, type) {
    return this.write(sse(leaseFrame(leaseId, input, type)));
  }

  /**
   * Streams `total` bytes made of `unit` repeated, from one reusable buffer
   * (nothing the size of the attack is ever built), with backpressure, on
   * the latest stream or on `res`.
   * @param {number} total @param {string | Uint8Array} unit @param {http.ServerResponse} [res]
   */
  async pump(total, unit, res = this.stream.res) {
    const u = typeof unit === 'string' ? Buffer.from(unit, 'latin1') : Buffer.from(unit);
    const reps = Math.max(1, Math.floor(256 * KiB / u.length));
    const block = Buffer.alloc(u.length * reps);
    for (let i = 0; i < reps; i++) u.copy(block, i * u.length);
    let left = total;
    while (left > 0) {
      if (res.destroyed) throw new Error(`HostileGateway: the response closed with ${left} bytes of the attack left`);
      const n = Math.min(left, block.length);
      const ok = res.write(n === block.length ? block : block.subarray(0, n));
      left -= n;
      if (!ok) await drained(res);
    }
  }

  /**
   * Writes `bytes` one byte at a time, `everyMs` apart (slowloris).
   * @param {string | Uint8Array} bytes @param {number} everyMs
   */
  async trickle(bytes, everyMs, res = this.stream.res) {
    const b = typeof bytes === 'string' ? Buffer.from(bytes) : Buffer.from(bytes);
    for (let i = 0; i < b.length; i++) {
      await this.write(b.subarray(i, i + 1), res);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** @param {http.ServerResponse} res */
function drained(res) {
  return new Promise((resolve, reject) => {
    const ok = () => {
      res.off('close', gone);
      resolve(undefined);
    };
    const gone = () => {
      res.off('drain', ok);
      reject(new Error('HostileGateway: the response closed while the attack was being written'));
    };
    res.once('drain', ok);
    res.once('close', gone);
  });
}

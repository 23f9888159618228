// The local dev gateway: createGateway(options) starts it and returns a handle.

import http from 'node:http';
import pino from 'pino';
import { authenticate, mintToken, AuthError, principalOf } from './auth.js';
import { validateFrame, FrameError, POST_PATHS } from './frames.js';
import { HttpError, readJson, sendJson, applyCors, preflight, SseStream, jsonDepthExceeds, MAX_JSON_DEPTH } from './http.js';
import { TaskStore, DECLINE_CODES } from './store.js';
import { Feed } from './feed.js';
import { Hub, leaseFrameBytes } from './hub.js';
import { isCapabilityType } from './policy.js';
import { Faults, parseFaultChange } from './faults.js';

export { mintToken } from './auth.js';
export { TaskStore } from './store.js';

export const DEFAULT_SECRET = 'neuron-dev-gateway-insecure-secret';

/**
 * @typedef {{
 *   port?: number, host?: string, dataFile?: string, secret?: string, origins?: '*'|string[],
 *   leaseTtlMs?: number, reaperIntervalMs?: number, maxAttempts?: number, pingIntervalMs?: number,
 *   maxBodyBytes?: number, maxFrameBytes?: number, disabledTypes?: string[], logger?: import('pino').Logger, logLevel?: string,
 *   feedBufferSize?: number, devApi?: boolean, devHosts?: string[], devOrigins?: string[]
 * }} GatewayOptions
 *
 * @typedef {{
 *   url: string, port: number, host: string, server: import('node:http').Server,
 *   store: TaskStore, hub: Hub, feed: Feed, faults: Faults, settings: Required<Omit<GatewayOptions, 'logger'|'logLevel'>>,
 *   log: import('pino').Logger, recovered: number,
 *   mintToken: (claims: Parameters<typeof mintToken>[1]) => Promise<string>,
 *   close: () => Promise<void>
 * }} Gateway
 */

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

/** Origins of pages served from this machine: http://localhost:*, http://127.0.0.1:*, http://[::1]:*. */
const LOOPBACK_ORIGIN = /^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d{1,5})?$/i;

/** Lease frames nest input and metadata at level 3 (frame > task > input). */
const TASK_FIELD_LEVEL = 3;

/**
 * Start a gateway.
 * @param {GatewayOptions} [options]
 * @returns {Promise<Gateway>}
 */
export async function createGateway(options = {}) {
  const settings = {
    port: options.port ?? 0,
    host: options.host ?? '127.0.0.1',
    dataFile: options.dataFile ?? ':memory:',
    secret: options.secret ?? DEFAULT_SECRET,
    origins: options.origins ?? '*',
    leaseTtlMs: options.leaseTtlMs ?? 30_000,
    reaperIntervalMs: options.reaperIntervalMs ?? 1_000,
    maxAttempts: options.maxAttempts ?? 5,
    pingIntervalMs: options.pingIntervalMs ?? 15_000,
    maxBodyBytes: options.maxBodyBytes ?? 16 * 1024 * 1024 + 64 * 1024,
    maxFrameBytes: options.maxFrameBytes ?? 16 * 1024 * 1024,
    disabledTypes: options.disabledTypes ?? [],
    feedBufferSize: options.feedBufferSize ?? 1000,
    devApi: options.devApi ?? true,
    devHosts: options.devHosts ?? [],
    devOrigins: options.devOrigins ?? [],
  };
  const log = options.logger ?? pino({ level: options.logLevel ?? 'silent' });
  const store = new TaskStore({ dataFile: settings.dataFile, maxAttempts: settings.maxAttempts });
  const recovered = store.recoverLeases();
  if (recovered) log.info({ recovered }, 'returned leases of a previous process to pending');
  const feed = new Feed(settings.feedBufferSize);
  const hub = new Hub({ store, feed, log, settings });
  const faults = new Faults();
  /** @type {Set<SseStream>} */
  const feedStreams = new Set();

  const server = http.createServer((req, res) => {
    req.on('error', (err) => log.debug({ err }, 'request stream error'));
    handle(req, res).catch((err) => {
      if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message });
      log.error({ err }, 'request failed');
      sendJson(res, 500, { error: `internal error: ${err?.message ?? err}` });
    });
  });
  server.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  /**
   * @param {http.IncomingMessage} req
   * @param {http.ServerResponse} res
   */
  async function handle(req, res) {
    const url = new URL(req.url ?? '/', 'http://gateway');
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    // the dev API has its own origin policy (loopback pages and --dev-origins only), see handleDev
    if (path === '/dev' || path.startsWith('/dev/')) return handleDev(req, res, path, url);
    if (req.method === 'OPTIONS') return preflight(req, res, settings.origins);
    if (!applyCors(req, res, settings.origins)) throw new HttpError(403, `origin ${req.headers.origin} is not allowed`);

    if (path === '/neuron/events') {
      if (req.method !== 'GET') throw new HttpError(405, 'use GET for /neuron/events');
      return openStream(req, res, url);
    }
    if (POST_PATHS[path]) {
      if (req.method !== 'POST') throw new HttpError(405, `use POST for ${path}`);
      return handlePost(req, res, path);
    }
    if (path === '/' || path === '/healthz') {
      return sendJson(res, 200, { ok: true, name: 'neuron dev gateway', protocol: 1, neurons: hub.neurons.size });
    }
    throw new HttpError(404, `no route ${req.method} ${path}`);
  }

  /** @param {http.IncomingMessage} req */
  async function auth(req) {
    try {
      return await authenticate(settings.secret, req.headers.authorization);
    } catch (err) {
      if (err instanceof AuthError) throw new HttpError(401, err.message);
      throw err;
    }
  }

  /**
   * @param {http.IncomingMessage} req @param {http.ServerResponse} res @param {URL} url
   */
  async function openStream(req, res, url) {
    let identity;
    try {
      identity = await auth(req);
    } catch (err) {
      feed.publish('stream-refused', { neuronId: url.searchParams.get('neuronId'), status: 401, error: /** @type {Error} */ (err).message });
      throw err;
    }
    const neuronId = url.searchParams.get('neuronId');
    if (!neuronId) throw new HttpError(400, `query parameter 'neuronId' is required`);
    try {
      hub.checkAttach(neuronId, identity);
    } catch (err) {
      feed.publish('stream-refused', { neuronId, status: /** @type {HttpError} */ (err).status, error: /** @type {Error} */ (err).message });
      throw err;
    }
    const stream = new SseStream(res, settings.pingIntervalMs, () => faults.keepAlives(neuronId));
    hub.attach(neuronId, identity, stream);
  }

  /**
   * @param {http.IncomingMessage} req @param {http.ServerResponse} res @param {string} path
   */
  async function handlePost(req, res, path) {
    /** @type {any} */
    let frame = null;
    /** @type {string|null} */
    let neuronId = null;
    const reply = (/** @type {number} */ status, /** @type {any} */ body) => {
      feed.release(['inbound', { path, neuronId, status, frame, response: body }]);
      if (status >= 400) log.info({ path, neuronId, status, error: body?.error }, 'frame refused');
      sendJson(res, status, body);
    };
    try {
      const identity = await auth(req);
      const principal = principalOf(identity);
      frame = await readJson(req, settings.maxBodyBytes);
      if (frame && typeof frame === 'object' && typeof frame.neuronId === 'string') neuronId = frame.neuronId;
      feed.hold();
      const f = validateFrame(path, frame);
      switch (f.type) {
        case 'register':
          return reply(200, hub.register(identity, f));
        case 'update-capability':
          return reply(200, hub.updateCapability(identity, f));
        case 'heartbeat': {
          hub.connFor(f.neuronId, identity, false);
          const ids = f.inFlight.map((/** @type {any} */ e) => e.leaseId);
          const { lostLeases } = store.heartbeat(f.neuronId, principal, ids, settings.leaseTtlMs);
          return reply(200, { lostLeases });
        }
        case 'ack':
        case 'nack': {
          const conn = hub.connFor(f.neuronId, identity, false);
          const r = f.type === 'ack' ? store.ack(f.neuronId, principal, f) : store.nack(f.neuronId, principal, f);
          if (r.status === 'not-held')
            return reply(409, { error: `lease '${f.leaseId}' is not held by neuron '${f.neuronId}' (unknown, expired, returned or already ended)` });
          if (r.status === 'task-mismatch')
            return reply(400, { error: `taskId '${f.taskId}' does not match lease '${f.leaseId}' (task '${r.task.taskId}')` });
          // the neuron declined the lease (stopping, no handler, revoked): lease nothing more of it to this connection
          if (f.type === 'nack' && f.kind === 'retryable' && DECLINE_CODES.has(f.code)) hub.declined(conn, f.code, r.task.type);
          const declined = 'declined' in r && r.declined;
          hub.taskChanged(r.task, f.type === 'ack' ? 'ack' : declined ? `declined (${f.code}): not counted as an attempt` : `nack ${f.kind}`);
          hub.scheduleDispatch();
          return reply(200, { taskId: r.task.taskId, state: r.task.state });
        }
        case 'progress': {
          hub.connFor(f.neuronId, identity, false);
          const t = store.progress(f.neuronId, principal, f);
          if (!t) return reply(409, { error: `lease '${f.leaseId}' is not held by neuron '${f.neuronId}'` });
          feed.publish('progress', { taskId: t.taskId, leaseId: f.leaseId, progress: t.progress });
          return reply(200, { taskId: t.taskId });
        }
      }
      return reply(400, { error: `unhandled frame type '${f.type}'` });
    } catch (err) {
      if (err instanceof FrameError) return reply(400, { error: err.message });
      if (err instanceof HttpError) {
        if (err.status === 413) res.setHeader('Connection', 'close');
        return reply(err.status, { error: err.message });
      }
      throw err;
    } finally {
      feed.release();
    }
  }

  /** @param {http.IncomingMessage} req */
  function devAllowed(req) {
    const remote = req.socket.remoteAddress ?? '';
    const hostHeader = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
    const hosts = new Set(['localhost', '127.0.0.1', '[::1]', settings.host.toLowerCase(), ...settings.devHosts]);
    return (LOOPBACK.has(remote) || remote.startsWith('127.')) && hosts.has(hostHeader);
  }

  /**
   * Web pages that may call the dev API: loopback origins and --dev-origins. A request without
   * Origin (curl, scripts, same-origin GETs) is not a cross-site request.
   * @param {http.IncomingMessage} req
   */
  function devOriginAllowed(req) {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    return LOOPBACK_ORIGIN.test(origin) || settings.devOrigins.includes(origin);
  }

  /**
   * Check and answer the value of a task to enqueue against what its lease frame may be: nested at
   * most MAX_JSON_DEPTH levels (the SDK does not decode deeper) and at most maxFrameBytes of data.
   * @param {{ type: string, input?: unknown, onBehalfOf?: string|null, workflowId?: string|null, metadata?: unknown, maxAttempts: number }} t
   */
  function checkLeaseFrame(t) {
    const room = MAX_JSON_DEPTH - TASK_FIELD_LEVEL + 1; // levels left for a value at level 3
    for (const k of /** @type {const} */ (['input', 'metadata'])) {
      if (t[k] != null && jsonDepthExceeds(JSON.stringify(t[k]), room))
        throw new HttpError(400, `'${k}' nests deeper than ${room} levels: its lease frame would nest deeper than ${MAX_JSON_DEPTH}, which the SDK does not decode`);
    }
    const bytes = leaseFrameBytes(t);
    if (bytes > settings.maxFrameBytes)
      throw new HttpError(413, `the task's lease frame would be ${bytes} bytes, over the ${settings.maxFrameBytes}-byte frame limit (the SDK's maxFrameBytes)`);
  }

  /**
   * @param {http.IncomingMessage} req @param {http.ServerResponse} res @param {string} path @param {URL} url
   */
  async function handleDev(req, res, path, url) {
    if (!settings.devApi) throw new HttpError(404, 'the dev API is disabled');
    if (!devAllowed(req)) throw new HttpError(403, 'the dev API answers only loopback clients addressing localhost');
    if (!devOriginAllowed(req))
      throw new HttpError(403, `origin ${req.headers.origin} may not use the dev API (only loopback pages and --dev-origins)`);
    if (req.headers.origin !== undefined) {
      res.setHeader('Access-Control-Allow-Origin', req.headers.origin);
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type, Last-Event-ID',
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return;
    }
    /** @type {string[]} */
    let seg;
    try {
      seg = path.split('/').slice(2).map(decodeURIComponent); // after '/dev'
    } catch {
      throw new HttpError(400, 'malformed percent-encoding in path');
    }
    const method = req.method;
    if (method === 'POST') {
      const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'application/json') throw new HttpError(415, `dev API POSTs need Content-Type: application/json${type ? ` (got ${type})` : ''}`);
    }
    const body = async () => {
      const b = await readJson(req, settings.maxBodyBytes);
      if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new HttpError(400, 'body must be a JSON object');
      return /** @type {Record<string, any>} */ (b);
    };
    /** A body that may be empty. @returns {Promise<Record<string, any>>} */
    const optionalBody = () => body().catch((e) => (e.status === 400 && /empty body/.test(e.message) ? {} : Promise.reject(e)));
    const dev = (/** @type {string} */ action, /** @type {unknown} */ data) => feed.publish('dev', { action, ...(/** @type {object} */ (data)) });

    // GET /dev/feed
    if (seg[0] === 'feed' && seg.length === 1 && method === 'GET') {
      const stream = new SseStream(res, settings.pingIntervalMs, () => faults.keepAlives(null));
      feedStreams.add(stream);
      const replay = url.searchParams.get('replay');
      if (replay === '1' || replay === 'true') for (const e of feed.since(0)) stream.send('feed', e);
      const after = Number(url.searchParams.get('since'));
      if (Number.isFinite(after) && after > 0) for (const e of feed.since(after)) stream.send('feed', e);
      const off = feed.subscribe((e) => stream.send('feed', e));
      stream.onClose.push(() => { off(); feedStreams.delete(stream); });
      return;
    }
    // GET /dev/events?since=N  (buffered feed as JSON)
    if (seg[0] === 'events' && seg.length === 1 && method === 'GET') {
      return sendJson(res, 200, { events: feed.since(Number(url.searchParams.get('since')) || 0) });
    }
    if (seg[0] === 'tasks') {
      if (seg.length === 1 && method === 'POST') {
        const b = await body();
        if (!isCapabilityType(b.type)) throw new HttpError(400, `'type' must be a capability type like core/script.python`);
        for (const k of ['onBehalfOf', 'workflowId']) {
          if (b[k] != null && (typeof b[k] !== 'string' || !b[k])) throw new HttpError(400, `'${k}' must be a non-empty string`);
        }
        if (b.maxAttempts != null && (!Number.isInteger(b.maxAttempts) || b.maxAttempts < 1)) throw new HttpError(400, `'maxAttempts' must be an integer >= 1`);
        if (b.metadata != null && (typeof b.metadata !== 'object' || Array.isArray(b.metadata))) throw new HttpError(400, `'metadata' must be an object`);
        const t = { type: b.type, input: b.input, onBehalfOf: b.onBehalfOf, workflowId: b.workflowId, metadata: b.metadata, maxAttempts: b.maxAttempts ?? settings.maxAttempts };
        checkLeaseFrame(t);
        const task = store.enqueue(t);
        dev('enqueue', { taskId: task.taskId });
        hub.taskChanged(task, 'enqueued');
        hub.scheduleDispatch();
        return sendJson(res, 201, { taskId: task.taskId, task });
      }
      if (seg.length === 1 && method === 'GET') {
        const state = url.searchParams.get('state') ?? undefined;
        if (state && !['pending', 'leased', 'done', 'failed', 'cancelled'].includes(state)) throw new HttpError(400, `unknown state '${state}'`);
        const limit = Number(url.searchParams.get('limit')) || undefined;
        return sendJson(res, 200, { tasks: store.list({ state, type: url.searchParams.get('type') ?? undefined, limit }) });
      }
      if (seg.length === 2 && method === 'GET') {
        const task = store.get(seg[1]);
        if (!task) throw new HttpError(404, `no task '${seg[1]}'`);
        return sendJson(res, 200, { task, history: store.history(seg[1]) });
      }
      if (seg.length === 3 && seg[2] === 'cancel' && method === 'POST') {
        const b = await optionalBody();
        const r = hub.cancel(seg[1], typeof b.reason === 'string' ? b.reason : null);
        dev('cancel', { taskId: seg[1], cancelSent: r.cancelSent });
        return sendJson(res, 200, r);
      }
    }
    if (seg[0] === 'neurons') {
      if (seg.length === 1 && method === 'GET') return sendJson(res, 200, { neurons: hub.describe() });
      if (seg.length === 3 && method === 'POST' && seg[2] === 'revoke') {
        const b = await body();
        if (typeof b.capability !== 'string') throw new HttpError(400, `'capability' must be a string`);
        const r = hub.revoke(seg[1], b.capability, typeof b.reason === 'string' ? b.reason : undefined);
        dev('revoke', r);
        return sendJson(res, 200, r);
      }
      if (seg.length === 3 && method === 'POST' && seg[2] === 'disconnect') {
        const b = await optionalBody();
        const conn = hub.neurons.get(seg[1]);
        if (!conn) throw new HttpError(404, `neuron '${seg[1]}' is not connected`);
        const opts = { reason: typeof b.reason === 'string' ? b.reason : 'disconnected from the dev API', reconnect: b.reconnect !== false };
        dev('disconnect', { neuronId: seg[1], ...opts });
        hub.disconnect(conn, opts);
        return sendJson(res, 200, { neuronId: seg[1], ...opts });
      }
    }
    if (seg[0] === 'tokens' && seg.length === 1 && method === 'POST') {
      const b = await body();
      try {
        return sendJson(res, 201, { token: await mintToken(settings.secret, /** @type {any} */ (b)) });
      } catch (err) {
        throw new HttpError(400, /** @type {Error} */ (err).message);
      }
    }
    // GET /dev/faults, POST /dev/faults { keepAlives, neuronId? }
    if (seg[0] === 'faults' && seg.length === 1) {
      if (method === 'GET') return sendJson(res, 200, faults.state());
      if (method === 'POST') {
        const change = parseFaultChange(await body());
        const state = faults.apply(change);
        dev('faults', change);
        log.info({ ...change, state }, 'dev fault: keep-alives');
        return sendJson(res, 200, state);
      }
    }
    if (seg[0] === 'info' && seg.length === 1 && method === 'GET') {
      const { secret: _s, ...shown } = settings;
      return sendJson(res, 200, { settings: shown, neurons: hub.neurons.size });
    }
    throw new HttpError(404, `no dev route ${method} ${path}`);
  }

  const reaper = setInterval(() => {
    try { hub.reap(); } catch (err) { log.error({ err }, 'reaper failed'); }
  }, settings.reaperIntervalMs);
  reaper.unref();

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(settings.port, settings.host, () => { server.off('error', reject); resolve(undefined); });
  });
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
  const hostForUrl = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
  const gatewayUrl = `http://${hostForUrl}:${addr.port}`;
  log.info({ url: gatewayUrl, dataFile: settings.dataFile }, 'gateway listening');
  hub.scheduleDispatch();

  let closing = /** @type {Promise<void>|null} */ (null);
  return {
    url: gatewayUrl,
    port: addr.port,
    host: settings.host,
    server,
    store,
    hub,
    feed,
    faults,
    settings,
    log,
    recovered,
    mintToken: (claims) => mintToken(settings.secret, claims),
    close() {
      if (closing) return closing;
      closing = (async () => {
        clearInterval(reaper);
        hub.close();
        for (const s of feedStreams) s.end();
        await new Promise((resolve) => {
          server.close(() => resolve(undefined));
          server.closeAllConnections();
        });
        store.close();
      })();
      return closing;
    },
  };
}

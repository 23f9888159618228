// Small HTTP helpers: JSON bodies with a size limit, JSON answers, CORS, SSE streams.

export class HttpError extends Error {
  /** @param {number} status @param {string} message */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** How far past the limit a body is still drained (so the client can read the 413) before the socket is cut. */
const DRAIN_SLACK = 64 * 1024 * 1024;

/** Deepest JSON nesting accepted (PROTOCOL.md: the SDK does not decode deeper frames). */
export const MAX_JSON_DEPTH = 256;

/**
 * Nesting depth of a JSON text (brackets outside strings), stopping early past `max`.
 * @param {string} text @param {number} max
 */
export function jsonDepthExceeds(text, max) {
  let depth = 0;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inStr) {
      if (c === 92) i++; // backslash: skip the escaped char
      else if (c === 34) inStr = false;
    } else if (c === 34) inStr = true;
    else if (c === 91 || c === 123) { if (++depth > max) return true; }
    else if (c === 93 || c === 125) depth--;
  }
  return false;
}

/**
 * Read a JSON body. Over `limit` bytes -> 413 (the rest of the body is drained so the client
 * gets the answer; past limit + 64 MiB the connection is cut). Bad JSON or nesting deeper than
 * 256 -> 400.
 * @param {import('node:http').IncomingMessage} req
 * @param {number} limit
 * @returns {Promise<unknown>}
 */
export function readJson(req, limit) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    let over = Number.isFinite(declared) && declared > limit;
    req.on('data', (/** @type {Buffer} */ c) => {
      size += c.length;
      if (size > limit) over = true;
      if (over) {
        chunks.length = 0;
        if (size > limit + DRAIN_SLACK) {
          reject(new HttpError(413, `body over the ${limit}-byte limit`));
          req.destroy();
        }
        return;
      }
      chunks.push(c);
    });
    req.on('error', (err) => reject(new HttpError(400, `request error: ${err.message}`)));
    req.on('end', () => {
      if (over) return reject(new HttpError(413, `body of ${size} bytes is over the ${limit}-byte limit`));
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return reject(new HttpError(400, 'empty body: expected a JSON object'));
      if (jsonDepthExceeds(text, MAX_JSON_DEPTH)) return reject(new HttpError(400, `JSON nests deeper than ${MAX_JSON_DEPTH} levels`));
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new HttpError(400, `malformed JSON: ${/** @type {Error} */ (err).message}`));
      }
    });
  });
}

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 */
export function sendJson(res, status, body) {
  if (res.headersSent) { res.end(); return; }
  const text = JSON.stringify(body ?? {});
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Set CORS headers for an allowed origin. Returns false if the request has an Origin that is not allowed.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {'*'|string[]} origins
 */
export function applyCors(req, res, origins) {
  const origin = req.headers.origin;
  if (!origin) return true;
  const ok = origins === '*' || origins.includes(origin);
  if (!ok) return false;
  res.setHeader('Access-Control-Allow-Origin', origins === '*' ? '*' : origin);
  if (origins !== '*') res.setHeader('Vary', 'Origin');
  return true;
}

/**
 * Answer a CORS preflight.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {'*'|string[]} origins
 */
export function preflight(req, res, origins) {
  if (!applyCors(req, res, origins)) return sendJson(res, 403, { error: `origin ${req.headers.origin} is not allowed` });
  res.writeHead(204, {
    'Access-Control-Allow-Methods': 'GET, POST, OPTIONS',
    'Access-Control-Allow-Headers': 'Authorization, Content-Type, Last-Event-ID',
    'Access-Control-Max-Age': '600',
  });
  res.end();
}

/** A server-sent-events response. */
export class SseStream {
  /**
   * @param {import('node:http').ServerResponse} res
   * @param {number} pingIntervalMs
   * @param {() => boolean} [keepAlive] asked at every tick: false skips that `: ping` (a dev fault); frames still go out
   */
  constructor(res, pingIntervalMs, keepAlive = () => true) {
    this.res = res;
    this.closed = false;
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    res.write(': connected\n\n');
    this.ping = setInterval(() => { if (keepAlive()) this.comment('ping'); }, pingIntervalMs);
    this.ping.unref();
    /** @type {(() => void)[]} */
    this.onClose = [];
    const done = () => {
      if (this.closed) return;
      this.closed = true;
      clearInterval(this.ping);
      for (const f of this.onClose) f();
    };
    res.on('close', done);
    res.on('error', done);
  }

  /** @param {string} text */
  comment(text) {
    if (!this.closed) this.res.write(`: ${text}\n\n`);
  }

  /** @param {string} event @param {unknown} data */
  send(event, data) {
    if (this.closed) return false;
    this.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    return true;
  }

  end() {
    if (this.closed) return;
    this.res.end();
    // 'close' follows; make sure the socket does not linger on keep-alive.
    this.res.socket?.end();
  }
}

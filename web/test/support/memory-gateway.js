// A gateway behind an injected `fetch`: the SSE stream served from memory as
// bytes, every POST recorded (as the parsed frame, and its body as sent) and
// answered by `answer`
// (200 '{}' by default). For byte-path tests that need exact control over
// the stream and the answers, without a socket.

const enc = new TextEncoder();

/**
 * @param {{
 *   throwOnce?: ((frame: any) => boolean) | null,
 *   answer?: (frame: any) => Promise<Response>,
 * }} [opts]
 *   throwOnce: the first POST it matches makes fetch throw synchronously;
 *   answer: the answer to each POST (a promise that may never settle).
 */
export function memoryGateway({ throwOnce = null, answer = () => Promise.resolve(new Response('{}', { status: 200 })) } = {}) {
  /** @type {ReadableStreamDefaultController<Uint8Array>} */
  let ctrl;
  /** @type {any[]} */
  const posts = [];
  /** @type {string[]} every POST's body as sent */
  const bodies = [];
  /** @type {typeof fetch} */
  const fetch = /** @type {any} */ ((/** @type {string} */ url, /** @type {any} */ init = {}) => {
    if (url.includes('/neuron/events')) {
      const body = new ReadableStream({ start(c) { ctrl = c; } });
      return Promise.resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
    }
    bodies.push(init.body);
    const frame = JSON.parse(init.body);
    if (throwOnce?.(frame)) {
      throwOnce = null;
      throw new TypeError('fetch failed synchronously (e.g. a bad header from an interceptor)');
    }
    posts.push(frame);
    if (frame.type === 'register') queueMicrotask(() => send('{"type":"registered","sessionId":"s"}'));
    return answer(frame);
  });
  /** @param {string | Uint8Array} bytes stream bytes, as they are */
  const raw = (bytes) => ctrl.enqueue(typeof bytes === 'string' ? enc.encode(bytes) : bytes);
  /** @param {string} json the frame, as the gateway wrote it */
  const send = (json) => raw(`data: ${json}\n\n`);
  /** @param {string} id @param {string} [input] */
  const lease = (id, input = '1') => send(`{"type":"lease","leaseId":"${id}","task":{"taskId":"t-${id}","type":"core/x","input":${input}}}`);
  /** @param {string} id */
  const terminal = (id) => posts.filter((p) => (p.type === 'ack' || p.type === 'nack') && p.leaseId === id);
  return { fetch, posts, bodies, raw, send, lease, terminal };
}

// A static file server for local pages (the neuron-tester page, the package's
// example page): 127.0.0.1 only, no caching, paths confined to `root`.

import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';

const TYPES = /** @type {Record<string, string>} */ ({
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.wasm': 'application/wasm', '.json': 'application/json', '.map': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png',
});

/**
 * Serves `root` (a directory path ending in the separator) on `port` (0: any free one).
 * @param {string} root
 * @param {{ port?: number, allow?: (file: string) => boolean, inject?: string, headers?: Record<string, string> }} [opts]
 *   allow: which files under root may be served; inject: HTML put first in the `<head>` of every HTML page served
 *   (tests: browsers.js's PREAMBLE); headers: sent with every file (e.g. a Content-Security-Policy)
 * @returns {Promise<{ server: http.Server, url: string, close: () => Promise<void> }>}
 */
export async function startStaticServer(root, { port = 0, allow = () => true, inject = '', headers = {} } = {}) {
  const base = root.endsWith(sep) ? root : root + sep;
  const server = http.createServer(async (req, res) => {
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://page').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const file = normalize(join(base, path.endsWith('/') ? `${path}index.html` : path));
    if (!file.startsWith(base) || !allow(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    try {
      let body = await readFile(file);
      if (inject && extname(file) === '.html') body = Buffer.from(body.toString('utf8').replace(/<head[^>]*>/i, (head) => head + inject));
      res.writeHead(200, { ...headers, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(undefined));
  });
  const url = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (server.address()).port}/`;
  return {
    server,
    url,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve(undefined));
    }),
  };
}

/**
 * Enqueues a demo task on a local gateway every `everyMs` through its dev API.
 * @param {string} gatewayUrl @param {number} everyMs @param {(n: number) => object} task the n-th task (1, 2, ...)
 * @returns {() => void} stops it
 */
export function trickleTasks(gatewayUrl, everyMs, task) {
  if (!(everyMs > 0)) return () => {};
  let n = 0;
  const timer = setInterval(() => {
    n++;
    fetch(`${gatewayUrl}/dev/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(task(n)) }).catch(() => {});
  }, everyMs);
  return () => clearInterval(timer);
}

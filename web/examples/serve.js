// The README's run command: the local dev gateway, this example page served
// next to it, and a trickle of demo tasks, so a person sees a neuron in a tab
// take leases and ack them live. Dev only (not in the npm package).
//
//   node web/examples/serve.js [--gateway-port 8787] [--page-port 8788] [--demo-every-ms 2000]

import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGateway } from '../../tester-ui/gateway/index.js';

const { values } = parseArgs({
  options: {
    'gateway-port': { type: 'string', default: '8787' },
    'page-port': { type: 'string', default: '8788' },
    'demo-every-ms': { type: 'string', default: '2000' },
  },
});
const ROOT = fileURLToPath(new URL('..', import.meta.url)); // web/
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css' };

const gw = await createGateway({ port: Number(values['gateway-port']), logLevel: 'info' });
const token = await gw.mintToken({ kind: 'service', sub: 'example-page' });

const page = http.createServer(async (req, res) => {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://page').pathname);
  const file = normalize(join(ROOT, path.endsWith('/') ? `${path}index.html` : path));
  if (!file.startsWith(ROOT) || file.includes(`${sep}node_modules${sep}`) && !file.includes(`${sep}eventemitter3${sep}`)) {
    res.writeHead(404).end();
    return;
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': TYPES[/** @type {keyof typeof TYPES} */ (extname(file))] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((resolve) => page.listen(Number(values['page-port']), '127.0.0.1', () => resolve(undefined)));
const pageUrl = `http://127.0.0.1:${/** @type {any} */ (page.address()).port}/examples/`;
const open = `${pageUrl}?${new URLSearchParams({ gateway: gw.url, token, autostart: '1' })}`;

let n = 0;
const every = Number(values['demo-every-ms']);
const demo = every > 0 ? setInterval(() => {
  n++;
  fetch(`${gw.url}/dev/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'core/example.echo', input: { demo: n, waitMs: 200 + (n % 5) * 300 } }),
  }).catch(() => {});
}, every) : null;

console.log(`
  dev gateway   ${gw.url}
  example page  ${pageUrl}

  Open this to host a neuron in the tab (token included, connects at once):
  ${open}

  A demo task (core/example.echo) is enqueued every ${every} ms; enqueue your own:
  curl -s -X POST ${gw.url}/dev/tasks -H 'content-type: application/json' -d '{"type":"core/example.echo","input":{"hello":1}}'
  Ctrl-C stops everything.
`);

const shutdown = async () => {
  if (demo) clearInterval(demo);
  page.close();
  await gw.close();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

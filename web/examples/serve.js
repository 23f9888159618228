// The package's example page served next to the local dev gateway,
// with a trickle of demo tasks, so a person sees a neuron in a tab
// take leases and ack them live. Dev only (not in the npm package).
//
//   node web/examples/serve.js [--gateway-port 8787] [--page-port 8788] [--demo-every-ms 2000]

import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGateway } from '../../tester-ui/gateway/index.js';
import { startStaticServer, trickleTasks } from '../../tester-ui/testkit/static-server.js';

const { values } = parseArgs({
  options: {
    'gateway-port': { type: 'string', default: '8787' },
    'page-port': { type: 'string', default: '8788' },
    'demo-every-ms': { type: 'string', default: '2000' },
  },
});
const ROOT = fileURLToPath(new URL('..', import.meta.url)); // web/

const gw = await createGateway({ port: Number(values['gateway-port']), logLevel: 'info' });
const token = await gw.mintToken({ kind: 'service', sub: 'example-page' });

// The page imports the package's sources and eventemitter3, nothing else from node_modules.
const page = await startStaticServer(ROOT, {
  port: Number(values['page-port']),
  allow: (file) => !file.includes(`${sep}node_modules${sep}`) || file.includes(`${sep}eventemitter3${sep}`),
});
const pageUrl = `${page.url}examples/`;
const open = `${pageUrl}?${new URLSearchParams({ gateway: gw.url, token, autostart: '1' })}`;

const every = Number(values['demo-every-ms']);
const stopDemo = trickleTasks(gw.url, every, (n) => ({ type: 'core/example.echo', input: { demo: n, waitMs: 200 + (n % 5) * 300 } }));

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
  stopDemo();
  await page.close();
  await gw.close();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

// Serves the built neuron-tester page (app/dist) next to a local dev gateway,
// and trickles demo tasks to the demo neuron the page starts. The README's run
// command (scripts/run) runs this; the end-to-end tests use startTester().
//
//   node tester-ui/app/serve.js [--gateway-port 8787] [--page-port 8788]
//                               [--demo-every-ms 2000] [--data :memory:] [--no-open]

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGateway } from '../gateway/index.js';
import { startStaticServer, trickleTasks } from '../testkit/static-server.js';

const DIST = fileURLToPath(new URL('./dist/', import.meta.url));

/**
 * Starts the gateway and the page server.
 * @param {{ gatewayPort?: number, pagePort?: number, dataFile?: string, demoEveryMs?: number, logLevel?: string, gateway?: object, inject?: string }} [opts]
 *   inject: HTML put first in the page's `<head>` (the browser tests' console recorder)
 */
export async function startTester({ gatewayPort = 0, pagePort = 0, dataFile = ':memory:', demoEveryMs = 0, logLevel = 'silent', gateway = {}, inject = '' } = {}) {
  if (!existsSync(join(DIST, 'index.html'))) {
    throw new Error(`the tester page is not built (${DIST} is missing): run \`npm run build\` in tester-ui (scripts/run does it)`);
  }
  const gw = await createGateway({ port: gatewayPort, dataFile, logLevel, ...gateway });
  const page = await startStaticServer(DIST, { port: pagePort, inject });
  const pageUrl = page.url;
  const stopDemo = trickleTasks(gw.url, demoEveryMs, (n) => (n % 5 === 0
    ? { type: 'core/demo.sleep', input: { ms: 1500 + (n % 3) * 1000 } }
    : { type: 'core/demo.echo', input: { text: `demo ${n}` } }));
  return {
    gw,
    pageUrl,
    /** The page URL that connects a demo neuron at once (token included). @param {Record<string, string>} [extra] */
    async demoUrl(extra = {}) {
      const token = await gw.mintToken({ kind: 'service', sub: 'neuron-tester' });
      return `${pageUrl}?${new URLSearchParams({ gateway: gw.url, token, autostart: '1', demo: '1', ...extra })}`;
    },
    async close() {
      stopDemo();
      await page.close();
      await gw.close();
    },
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  const { values } = parseArgs({
    options: {
      'gateway-port': { type: 'string', default: '8787' },
      'page-port': { type: 'string', default: '8788' },
      'demo-every-ms': { type: 'string', default: '2000' },
      data: { type: 'string', default: ':memory:' },
      open: { type: 'boolean', default: true },
    },
    allowNegative: true,
  });
  let tester;
  try {
    tester = await startTester({
      gatewayPort: Number(values['gateway-port']), pagePort: Number(values['page-port']),
      demoEveryMs: Number(values['demo-every-ms']), dataFile: values.data, logLevel: 'warn',
    });
  } catch (err) {
    console.error(`neuron tester: ${/** @type {Error} */ (err).message}`);
    process.exitCode = 1;
    throw err;
  }
  const open = await tester.demoUrl();
  console.log(`
  neuron tester   ${tester.pageUrl}
  dev gateway     ${tester.gw.url}

  Open this: the page hosts a demo neuron (core/demo.echo, core/demo.sleep),
  registered on the local gateway at once, with a dev token:

  ${open}

  A demo task is enqueued every ${values['demo-every-ms']} ms (--demo-every-ms 0: none). Ctrl-C stops.
`);
  // On a desktop, open it in the default browser (--no-open: don't).
  if (values.open && (process.env.DISPLAY || process.env.WAYLAND_DISPLAY || process.platform === 'darwin')) {
    const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
    spawn(opener, [open], { detached: true, stdio: 'ignore' }).on('error', () => {}).unref();
  }
  const shutdown = () => {
    tester.close().finally(() => process.exit(0));
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

// neuron-schema.wasm, the JSON Schema validator loaded on demand, in Chromium,
// Firefox ESR and WebKitGTK: a page whose capability has a raw inputSchema,
// served under a strict Content-Security-Policy (no inline script, no eval;
// 'wasm-unsafe-eval' is what compiling any wasm needs), loads it next to the
// core and validates with it; served without it, start() rejects with an error
// that says what is missing and how to hand it over.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startGateway, dev, enqueue, waitFor } from '../../../tester-ui/testkit/helpers.js';
import { startStaticServer } from '../../../tester-ui/testkit/static-server.js';
import { PREAMBLE, engines, launch } from '../../../tester-ui/testkit/browsers.js';

const WEB_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PAGE = 'test/browser/fixtures/schema-page.html';

/** @param {string} text */
const sha256 = (text) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
/** The page's inline scripts, allowed by their hashes: the test's error recorder and the import map. */
const INLINE = [
  sha256(PREAMBLE.slice('<script>'.length, -'</script>'.length)),
  sha256(/** @type {string[]} */ (readFileSync(join(WEB_ROOT, PAGE), 'utf8').match(/<script type="importmap">([^<]*)<\/script>/))[1]),
];

/** @param {string} gateway */
const strictCsp = (gateway) => [
  "default-src 'none'",
  `script-src 'self' 'wasm-unsafe-eval' ${INLINE.join(' ')}`,
  `connect-src 'self' ${new URL(gateway).origin}`,
  "img-src 'self' data:",
].join('; ');

/** @param {any} gw @param {string} taskId */
async function ended(gw, taskId) {
  return waitFor(async () => {
    const r = await dev(gw, 'GET', `/dev/tasks/${encodeURIComponent(taskId)}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const task = r.body.task;
    return task.state !== 'pending' && task.state !== 'leased' && task;
  }, 10_000, `task ${taskId} ended`);
}

/**
 * The page's state once it is no longer 'loading'. Polled from here: the
 * WebKit driver's in-page wait compiles its predicate with new Function,
 * which the strict CSP refuses (as it should).
 * @param {import('../../../tester-ui/testkit/browsers.js').Page} page
 */
async function settledState(page) {
  const until = Date.now() + 15_000;
  for (;;) {
    const state = await page.attr('#state', 'data-state');
    if (state !== 'loading') return state;
    if (Date.now() > until) throw new Error(`the page still loads after 15 s; errors: ${JSON.stringify(await page.errors())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const engine of engines()) {
  test(`${engine}: a raw JSON Schema capability loads neuron-schema.wasm under a strict CSP, and a missing one fails start() clearly`, { timeout: 120_000 }, async (t) => {
    const gw = await startGateway();
    t.after(() => gw.close());
    const token = await gw.mintToken({ kind: 'service', sub: 'svc-schema-page' });
    const site = await startStaticServer(WEB_ROOT, { inject: PREAMBLE, headers: { 'content-security-policy': strictCsp(gw.url) } });
    t.after(() => site.close());
    const browser = await launch(engine);
    t.after(() => browser.close());
    t.diagnostic(`${engine}: ${browser.version}`);

    const page = await browser.newPage();
    const neuronId = `schema-${engine}`;
    await page.goto(`${site.url}${PAGE}?${new URLSearchParams({ gateway: gw.url, token, neuronId })}`);
    // Registered, as the gateway sees it (WebKit's driver cannot run script in a page under
    // this CSP: it is refused like any eval, so the page is observed from outside here).
    await waitFor(async () => {
      const neurons = (await dev(gw, 'GET', '/dev/neurons')).body.neurons;
      return neurons.some((/** @type {any} */ n) => n.neuronId === neuronId);
    }, 15_000, `${neuronId} registered`);

    const good = await ended(gw, await enqueue(gw, { type: 'core/page.checked', input: { n: 21 } }));
    assert.equal(good.state, 'done', JSON.stringify(good));
    assert.deepEqual(good.output, { doubled: 42 });
    const bad = await ended(gw, await enqueue(gw, { type: 'core/page.checked', input: { n: 'x' } }));
    assert.equal(bad.state, 'failed', JSON.stringify(bad));
    assert.match(JSON.stringify(bad), /schema-mismatch/, 'nacked by the validator, the handler never ran');
    // A value that exhausts the validator's stack is refused saying why; the
    // validator works on after it.
    /** @type {any} */
    let deep = 1;
    for (let i = 0; i < 250; i++) deep = [deep];
    const tooDeep = await ended(gw, await enqueue(gw, { type: 'core/page.tree', input: deep }));
    assert.equal(tooDeep.state, 'failed', JSON.stringify(tooDeep).slice(0, 500));
    assert.match(JSON.stringify(tooDeep), /schema-mismatch/);
    assert.match(JSON.stringify(tooDeep), /the value could not be checked: the JSON Schema validator failed on it/);
    const after = await ended(gw, await enqueue(gw, { type: 'core/page.tree', input: [[[1]]] }));
    assert.equal(after.state, 'done', JSON.stringify(after));
    assert.deepEqual(after.output, { got: 7 });
    const goodAgain = await ended(gw, await enqueue(gw, { type: 'core/page.checked', input: { n: 2 } }));
    assert.deepEqual(goodAgain.output, { doubled: 4 });
    if (engine !== 'webkit') {
      assert.equal(await page.attr('#state', 'data-state'), 'registered');
      assert.deepEqual(await page.errors(), [], 'no CSP violation, no console error');
    }

    // The same page from a server that does not have neuron-schema.wasm.
    const bare = await startStaticServer(WEB_ROOT, { inject: PREAMBLE, allow: (f) => !f.endsWith('neuron-schema.wasm') });
    t.after(() => bare.close());
    const page2 = await browser.newPage();
    await page2.goto(`${bare.url}${PAGE}?${new URLSearchParams({ gateway: gw.url, token, neuronId: `schema-missing-${engine}` })}`);
    assert.equal(await settledState(page2), 'failed');
    const message = await page2.text('#state');
    assert.match(message, /could not load its JSON Schema validator from http:\/\/127\.0\.0\.1:\d+\/dist\/neuron-schema\.wasm: HTTP 404/);
    assert.match(message, /initNeuronSdk\(\{ schemaWasm/, 'says how to hand it over');
  });
}

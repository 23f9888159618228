// The neuron-tester page in headless Chromium against the local dev gateway,
// used as a person would: through its controls, reading what it shows.
// Built page (npm run build) + packed SDK installed in tester-ui (scripts/setup).
// Any error in the page's console fails the test. A screenshot of the main
// view is saved to app/test/artifacts/tester.png.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startTester } from '../../serve.js';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** @param {import('node:test').TestContext} t @param {Parameters<typeof startTester>[0]} [opts] */
async function open(t, opts) {
  const tester = await startTester(opts);
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  t.after(async () => {
    await browser.close();
    await tester.close();
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 1100 }, acceptDownloads: true });
  const page = await context.newPage();
  /** @type {string[]} */
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  t.after(() => assert.deepEqual(consoleErrors, [], 'errors in the page console'));
  return { tester, page };
}

/** @param {import('playwright-core').Page} page @param {string} type @param {string} col */
const summaryCell = (page, type, col) => page.locator(`[data-testid=lease-summary] tr[data-capability="${type}"] td[data-col=${col}]`);

/** @param {import('playwright-core').Page} page @param {string} type @param {string} col @param {number} n */
async function expectCount(page, type, col, n, timeout = 15_000) {
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(/** @type {string} */ (sel))?.textContent === String(want),
    [`[data-testid=lease-summary] tr[data-capability="${type}"] td[data-col=${col}]`, n],
    { timeout },
  ).catch(async (err) => {
    throw new Error(`${type} ${col}: expected ${n}, page shows ${await summaryCell(page, type, col).textContent().catch(() => '?')} (${err.message})`);
  });
}

/** @param {import('playwright-core').Page} page @param {string} state */
const waitState = (page, state, timeout = 15_000) => page.waitForSelector(`[data-testid=conn-state][data-state=${state}]`, { timeout });

/** @param {import('playwright-core').Page} page @param {string} type @param {unknown} input @param {number} count */
async function send(page, type, input, count) {
  await page.fill('[data-testid=task-type]', type);
  await page.fill('[data-testid=task-input]', JSON.stringify(input));
  await page.fill('[data-testid=task-count]', String(count));
  await page.click('[data-testid=send]');
}

test('connect, add an example, send a burst, cancel one, drop the stream, change concurrency, stop with drain', async (t) => {
  const { tester, page } = await open(t);
  await page.goto(`${tester.pageUrl}?${new URLSearchParams({ gateway: tester.gw.url })}`);

  // Connect: a dev token with one click; the neuronId is kept across reloads.
  await page.waitForSelector('[data-testid=mint]:not([disabled])');
  await page.click('[data-testid=mint]');
  await page.waitForFunction(() => /** @type {HTMLInputElement} */ (document.querySelector('[data-testid=token]')).value.length > 20);
  const neuronId = await page.inputValue('[data-testid=neuron-id]');
  assert.match(neuronId, /^tester-/);
  // The gateway's keep-alive switch outlives the page: a reload shows it as the gateway has it.
  const faults = (/** @type {object} */ body) => fetch(`${tester.gw.url}/dev/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
  await faults({ keepAlives: false, neuronId });
  await page.reload();
  assert.equal(await page.inputValue('[data-testid=neuron-id]'), neuronId, 'neuronId survives a reload');
  const keepAlives = page.getByLabel('pause keep-alives (local gateway)');
  await page.waitForFunction(() => /** @type {HTMLInputElement} */ (document.querySelector('[data-testid=pause-keep-alives]'))?.checked === true);
  await keepAlives.uncheck();
  for (let i = 0; ; i++) {
    const state = await (await fetch(`${tester.gw.url}/dev/faults`)).json();
    if (state.keepAlives !== false) break;
    assert.ok(i < 100, `the gateway still pauses keep-alives: ${JSON.stringify(state)}`);
    await new Promise((r) => setTimeout(r, 50));
  }

  // Capabilities: an edited one removed leaves the others' code as it was.
  await page.getByRole('button', { name: 'core/demo.echo', exact: true }).click();
  await page.locator('[data-testid=capability][data-type="core/demo.echo"] [data-testid=handler-code]').fill('return "EDITED";');
  await page.getByRole('button', { name: 'remove core/demo.echo' }).click();
  for (const code of await page.locator('[data-testid=handler-code]').evaluateAll((els) => els.map((e) => /** @type {HTMLTextAreaElement} */ (e).value))) {
    assert.doesNotMatch(code, /EDITED/);
  }
  // Then the examples: echo again, and "respects cancel".
  await page.selectOption('[data-testid=add-example]', 'echo');
  await page.selectOption('[data-testid=add-example]', 'cancel');
  assert.deepEqual(await page.locator('[data-testid=capability]').evaluateAll((els) => els.map((e) => e.getAttribute('data-type'))),
    ['core/demo.sleep', 'core/demo.echo', 'core/demo.long']);
  assert.match(await page.locator('[data-testid=capability][data-type="core/demo.long"] [data-testid=handler-code]').inputValue(), /ctx\.signal/);
  await page.click('[data-testid=start]');
  await waitState(page, 'registered');
  const registered = await page.textContent('[data-testid=conn-state]');
  for (const type of ['core/demo.echo', 'core/demo.sleep', 'core/demo.long']) {
    await page.waitForSelector(`text=${type} ×`);
  }
  const dev = await (await fetch(`${tester.gw.url}/dev/neurons`)).json();
  assert.deepEqual(dev.neurons.map((/** @type {any} */ n) => n.neuronId), [neuronId], 'the gateway sees the page\'s neuron');

  // A burst: every task acked, in the table and in the firehose.
  await send(page, 'core/demo.echo', { text: 'burst' }, 40);
  await expectCount(page, 'core/demo.echo', 'acked', 40);
  assert.equal(await page.locator('[data-testid=lease-table] tr[data-state=acked]').count(), 40);
  await page.selectOption('[data-testid=filter-type]', 'ack');
  await page.waitForFunction(() => /^40 of \d+ frames match/.test(document.querySelector('[data-testid=firehose-count]')?.textContent ?? ''));
  const ackRow = page.locator('[data-testid=firehose-list] .fh-row[data-type=ack]').first();
  await ackRow.click();
  const detail = JSON.parse(await page.locator('[data-testid=frame-detail] pre').textContent() ?? '{}');
  assert.equal(detail.type, 'ack');
  assert.deepEqual(detail.output, { echoed: 'burst' });
  await page.selectOption('[data-testid=filter-type]', '');

  // Pause keeps every frame: the count of new ones shows on the button.
  await page.click('[data-testid=firehose-pause]');
  await send(page, 'core/demo.echo', { text: 'while paused' }, 3);
  await expectCount(page, 'core/demo.echo', 'acked', 43);
  await page.waitForFunction(() => /Resume \([1-9]\d* new\)/.test(document.querySelector('[data-testid=firehose-pause]')?.textContent ?? ''));
  await page.click('[data-testid=firehose-pause]');
  await page.fill('[data-testid=filter-text]', 'while paused');
  await page.waitForFunction(() => /^6 of \d+ frames match/.test(document.querySelector('[data-testid=firehose-count]')?.textContent ?? ''));
  await page.fill('[data-testid=filter-text]', '');

  // Cancel a running task from its row: the handler sees the signal, the lease ends nack cancelled.
  await send(page, 'core/demo.long', { seconds: 60 }, 1);
  const longRow = page.locator('[data-testid=lease-table] tr[data-state=running]', { hasText: 'core/demo.long' });
  await longRow.waitFor();
  const leaseId = await longRow.getAttribute('data-lease');
  await longRow.getByRole('button', { name: /cancel task/ }).click();
  await page.waitForSelector(`[data-testid=lease-table] tr[data-lease="${leaseId}"][data-state=nacked]`);
  assert.match(await page.locator(`[data-testid=lease-table] tr[data-lease="${leaseId}"]`).textContent() ?? '', /cancelled/);

  // Drop the stream: the neuron reconnects with backoff and registers again.
  await page.click('[data-testid=drop-stream]');
  await page.waitForSelector('[data-testid=conn-state]:not([data-state=registered])');
  await waitState(page, 'registered');
  assert.notEqual(await page.textContent('[data-testid=conn-state]'), registered, 'a new session after the reconnect');
  await page.fill('[data-testid=filter-text]', 'dropped');
  await page.waitForSelector('[data-testid=firehose-list] .fh-row[data-type=stream-close]');
  await page.fill('[data-testid=filter-text]', '');
  await send(page, 'core/demo.echo', { text: 'after reconnect' }, 5);
  await expectCount(page, 'core/demo.echo', 'acked', 48);

  // Live concurrency: update-capability goes out, the slots follow.
  const sleepCap = page.locator('[data-testid=capability][data-type="core/demo.sleep"] [data-testid=concurrency]');
  await sleepCap.fill('3');
  await sleepCap.dispatchEvent('change');
  await page.waitForSelector('[data-testid=lease-summary] tr[data-capability="core/demo.sleep"] >> text=0/3');
  await page.selectOption('[data-testid=filter-type]', 'update-capability');
  await page.waitForSelector('[data-testid=firehose-list] .fh-row[data-type=update-capability]');
  await page.selectOption('[data-testid=filter-type]', '');

  // The main view, for the README and for people reading a CI run.
  await send(page, 'core/demo.sleep', { ms: 3000 }, 3);
  await expectCount(page, 'core/demo.sleep', 'running', 3);
  await page.getByRole('button', { name: 'close the frame detail' }).click();
  await page.getByRole('button', { name: 'core/demo.long', exact: true }).click(); // fold its editor
  await page.evaluate(() => {
    window.scrollTo(0, 0);
    const list = document.querySelector('[data-testid=firehose-list]');
    if (list) list.scrollTop = list.scrollHeight;
  });
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}tester.png` });

  // Stop with drain: running tasks finish and are acked, then the neuron closes.
  await page.click('[data-testid=stop]');
  await waitState(page, 'closed', 20_000);
  await expectCount(page, 'core/demo.sleep', 'acked', 3);
  assert.equal(await summaryCell(page, 'core/demo.sleep', 'nacked').textContent(), '0');
  const after = await (await fetch(`${tester.gw.url}/dev/neurons`)).json();
  assert.deepEqual(after.neurons, [], 'the neuron left the gateway');
});

test('record a session, replay it without a gateway; faults: 503 and 401 answers, keep-alives paused, revoke', async (t) => {
  const { tester, page } = await open(t, { gateway: { pingIntervalMs: 200 } });
  await page.goto(await tester.demoUrl({ idleTimeoutMs: '1500', heartbeatIntervalMs: '300' }));
  await waitState(page, 'registered');

  // Record: a few tasks of both kinds, a disconnect forced by the gateway, more tasks; then export.
  await send(page, 'core/demo.echo', { text: 'recorded' }, 4);
  await send(page, 'core/demo.sleep', { ms: 200 }, 2);
  await expectCount(page, 'core/demo.echo', 'acked', 4);
  await expectCount(page, 'core/demo.sleep', 'acked', 2);
  await page.click('[data-testid=force-disconnect]');
  await page.waitForSelector('[data-testid=conn-state]:not([data-state=registered])');
  await waitState(page, 'registered');
  await send(page, 'core/demo.echo', { text: 'after the disconnect' }, 3);
  await expectCount(page, 'core/demo.echo', 'acked', 7);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid=export]')]);
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = `${ARTIFACTS}session.json`;
  await download.saveAs(file);
  const session = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(session.format, 'neuron-tester-session');
  assert.equal(session.entries.filter((/** @type {any} */ e) => e.dir === 'in' && e.type === 'lease').length, 9);
  assert.equal(session.entries.filter((/** @type {any} */ e) => e.dir === 'in' && e.type === 'disconnect').length, 1);
  await page.click('[data-testid=stop]');
  await waitState(page, 'closed');

  // Replay: the same frames through the same core, no gateway; the same verdicts come out.
  await page.setInputFiles('[data-testid=replay-file]', file);
  await page.waitForSelector('[data-testid=replay-result] >> text=/Replay done/', { timeout: 30_000 });
  assert.match(await page.textContent('[data-testid=replay-result]') ?? '', /posted the same 9 frames as in the recording\.$/);
  assert.match(await page.textContent('[data-testid=conn-state]') ?? '', /^replay/);
  await page.click('[data-testid=stop]');
  await waitState(page, 'closed');

  // A broken file is refused with the reason.
  await page.setInputFiles('[data-testid=replay-file]', { name: 'broken.json', mimeType: 'application/json', buffer: Buffer.from('{"format":"har"}') });
  await page.waitForSelector('[data-testid=replay-result] >> text=/Cannot replay broken.json: not a neuron-tester session/');

  // Live again, then faults on purpose.
  await page.click('[data-testid=start]');
  await waitState(page, 'registered');
  const acked = Number(await summaryCell(page, 'core/demo.echo', 'acked').textContent());
  for (const status of ['503', '401']) {
    await page.getByRole('button', { name: status, exact: true }).click();
    await send(page, 'core/demo.echo', { text: `after ${status}` }, 1);
    await page.fill('[data-testid=filter-text]', `answered ${status}`);
    await page.waitForSelector('[data-testid=firehose-list] .fh-row .bad');
    await page.fill('[data-testid=filter-text]', '');
  }
  await expectCount(page, 'core/demo.echo', 'acked', acked + 2);

  // Keep-alives paused on the gateway: the silent stream is declared dead after idleTimeoutMs, and reopened.
  await page.getByLabel('pause keep-alives (local gateway)').check();
  await page.waitForSelector('[data-testid=conn-state]:not([data-state=registered])', { timeout: 10_000 });
  await page.getByLabel('pause keep-alives (local gateway)').uncheck();
  await waitState(page, 'registered');

  // Stalled heartbeats: the POST hangs (the firehose says so) until released, then heartbeats flow again.
  await send(page, 'core/demo.sleep', { ms: 4000 }, 1);
  await expectCount(page, 'core/demo.sleep', 'running', 1);
  await page.getByLabel('stall heartbeats').check();
  await page.fill('[data-testid=filter-text]', 'stalled by the tester');
  await page.waitForSelector('[data-testid=firehose-list] .fh-row[data-type=heartbeat]');
  await page.getByLabel('stall heartbeats').uncheck();
  await page.fill('[data-testid=filter-text]', '');
  const beats = () => page.evaluate(() => /** @type {any} */ (globalThis).neuronTester.log.toArray()
    .filter((/** @type {any} */ e) => e.type === 'heartbeat' && e.status === 200).length);
  const before = await beats();
  await page.waitForFunction((n) => /** @type {any} */ (globalThis).neuronTester.log.toArray()
    .filter((/** @type {any} */ e) => e.type === 'heartbeat' && e.status === 200).length > n, before);
  await expectCount(page, 'core/demo.sleep', 'acked', 1, 20_000); // counts start again with each start

  // Revoke: the gateway revokes a capability; the frame shows in the firehose.
  await page.fill('[data-testid=task-type]', 'core/demo.sleep');
  await page.getByRole('button', { name: 'Revoke core/demo.sleep' }).click();
  await page.selectOption('[data-testid=filter-type]', 'capability-revoked');
  await page.waitForSelector('[data-testid=firehose-list] .fh-row[data-type=capability-revoked]');
  await page.click('[data-testid=stop]');
  await waitState(page, 'closed');
});

test('the README run command: the URL it prints opens the page with the demo neuron registered on its gateway', async (t) => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [fileURLToPath(new URL('../../serve.js', import.meta.url)),
    '--gateway-port', '0', '--page-port', '0', '--demo-every-ms', '300', '--no-open'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGTERM'));
  let out = '';
  const url = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /(http:\/\/127\.0\.0\.1:\d+\/\?\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`serve.js exited (${code}) before printing the URL: ${out}`)));
  });
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  t.after(() => browser.close());
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(/** @type {string} */ (url));
  await waitState(page, 'registered');
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=lease-summary] tr[data-capability="core/demo.echo"] td[data-col=acked]')?.textContent) >= 2,
    undefined, { timeout: 15_000 });
  // Every control has a name a screen reader can say (a label, aria-label or text).
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select, textarea')]
    .filter((el) => {
      const e = /** @type {HTMLInputElement} */ (el);
      const name = e.getAttribute('aria-label') || [...(e.labels ?? [])].map((l) => l.textContent).join('') || e.textContent || e.title;
      return !name?.trim();
    })
    .map((el) => el.outerHTML.slice(0, 120)));
  assert.deepEqual(unnamed, [], 'controls without an accessible name');

  const gateway = new URL(/** @type {string} */ (url)).searchParams.get('gateway');
  const { neurons } = await (await fetch(`${gateway}/dev/neurons`)).json();
  assert.deepEqual(neurons[0].capabilities.map((/** @type {any} */ c) => c.type).sort(), ['core/demo.echo', 'core/demo.sleep']);

  // A second tab of the same browser has the same neuronId: the gateway keeps the newer
  // connection and tells the first it will not have it back; the first tab says so and stops.
  const second = await context.newPage();
  await second.goto(/** @type {string} */ (url));
  await waitState(second, 'registered');
  await waitState(page, 'closed');
  assert.match(await page.textContent('[data-testid=conn-state]') ?? '', /superseded/);
  assert.equal(await page.isEnabled('[data-testid=start]'), true, 'the first tab can start again');
});

// The neuron-tester page in Chromium, Firefox ESR and WebKitGTK (testkit/browsers.js)
// against the local dev gateway, used as a person would: through its controls,
// reading what it shows. Built page (npm run build) + packed SDK installed in
// tester-ui (scripts/setup). WebKitGTK needs an X display (xvfb-run -a).
// Any error in the page's console fails the test. A screenshot of the main
// view per engine is saved to app/test/artifacts/ (tester.png for Chromium,
// tester-firefox.png, tester-webkit.png).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PREAMBLE, byLabel, byRole, engines, launch, withText } from '../../../testkit/browsers.js';
import { startTester } from '../../serve.js';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/', import.meta.url));

/**
 * @typedef {import('../../../testkit/browsers.js').Page} Page
 * @typedef {import('../../../testkit/browsers.js').Engine} Engine
 */

/** @param {import('node:test').TestContext} t @param {Engine} engine @param {Parameters<typeof startTester>[0]} [opts] */
async function open(t, engine, opts) {
  const tester = await startTester({ ...opts, inject: PREAMBLE });
  const browser = await launch(engine, { viewport: { width: 1440, height: 1100 } });
  const page = await browser.newPage();
  t.after(async () => {
    try {
      assert.deepEqual((await page.errors()).map((e) => `${e.kind}: ${e.text} (${e.url})`), [], 'errors in the page console');
    } finally {
      await browser.close();
      await tester.close();
    }
  });
  return { tester, page };
}

/** @param {string} type @param {string} col */
const summaryCell = (type, col) => `[data-testid=lease-summary] tr[data-capability="${type}"] td[data-col=${col}]`;

/** @param {Page} page @param {string} type @param {string} col @param {number} n */
async function expectCount(page, type, col, n, timeout = 15_000) {
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(/** @type {string} */ (sel))?.textContent === String(want),
    [summaryCell(type, col), n],
    { timeout },
  ).catch(async (err) => {
    throw new Error(`${type} ${col}: expected ${n}, page shows ${await page.text(summaryCell(type, col)).catch(() => '?')} (${err.message})`);
  });
}

/** @param {Page} page @param {string} state */
const waitState = (page, state, timeout = 15_000) => page.waitFor(`[data-testid=conn-state][data-state=${state}]`, { timeout });

/** @param {Page} page @param {string} type @param {unknown} input @param {number} count */
async function send(page, type, input, count) {
  await page.fill('[data-testid=task-type]', type);
  await page.fill('[data-testid=task-input]', JSON.stringify(input));
  await page.fill('[data-testid=task-count]', String(count));
  await page.click('[data-testid=send]');
}

/**
 * Runs in the page: what is laid out wrong. A label or button whose words break across lines
 * (a label's words under its control), the firehose's filters on more than one row, its Pause
 * button below its header row.
 */
function layoutFaults() {
  /** @type {string[]} */
  const faults = [];
  // boxes on more than one line: one lies wholly below another
  const stacked = (/** @type {DOMRect[]} */ rects) => rects.some((a) => rects.some((b) => b.top >= a.bottom - 1));
  for (const el of document.querySelectorAll('.panel label:not(.field), .panel button:not(.fh-row)')) {
    // the boxes of its words and of its controls (not of a select's options)
    const rects = [...el.childNodes].flatMap((n) => {
      if (n instanceof Element) return [n.getBoundingClientRect()];
      const range = document.createRange();
      range.selectNodeContents(n);
      return [...range.getClientRects()];
    }).filter((r) => r.width > 0 && r.height > 0);
    if (stacked(rects)) faults.push(`on two lines: ${el.tagName.toLowerCase()} "${el.textContent?.trim()}"`);
  }
  if (stacked([...document.querySelectorAll('.filters > *')].map((e) => e.getBoundingClientRect()))) faults.push('the firehose\'s filters take more than one row');
  const pause = /** @type {Element} */ (document.querySelector('[data-testid=firehose-pause]')).getBoundingClientRect();
  const head = /** @type {Element} */ (document.querySelector('#firehose-h')).getBoundingClientRect();
  if (pause.top >= head.bottom) faults.push('the firehose\'s Pause button is below its header row');
  return faults;
}

for (const engine of engines()) describe(engine, () => {
  test('connect, add an example, send a burst, cancel one, drop the stream, change concurrency, stop with drain', async (t) => {
    const { tester, page } = await open(t, engine);
    await page.goto(`${tester.pageUrl}?${new URLSearchParams({ gateway: tester.gw.url })}`);

    // Connect: a dev token with one click; the neuronId is kept across reloads.
    await page.waitFor('[data-testid=mint]:not([disabled])');
    await page.click('[data-testid=mint]');
    await page.waitForFunction(() => /** @type {HTMLInputElement} */ (document.querySelector('[data-testid=token]')).value.length > 20);
    const neuronId = await page.value('[data-testid=neuron-id]');
    assert.match(neuronId, /^tester-/);
    // The gateway's keep-alive switch outlives the page: a reload shows it as the gateway has it.
    const faults = (/** @type {object} */ body) => fetch(`${tester.gw.url}/dev/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }).then((r) => r.json());
    await faults({ keepAlives: false, neuronId });
    await page.reload();
    assert.equal(await page.value('[data-testid=neuron-id]'), neuronId, 'neuronId survives a reload');
    const keepAlives = byLabel('pause keep-alives (local gateway)');
    await page.waitForFunction(() => /** @type {HTMLInputElement} */ (document.querySelector('[data-testid=pause-keep-alives]'))?.checked === true);
    await page.check(keepAlives, false);
    for (let i = 0; ; i++) {
      const state = await (await fetch(`${tester.gw.url}/dev/faults`)).json();
      if (state.keepAlives !== false) break;
      assert.ok(i < 100, `the gateway still pauses keep-alives: ${JSON.stringify(state)}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    // Capabilities: an edited one removed leaves the others' code as it was.
    await page.click(byRole('button', 'core/demo.echo', { exact: true }));
    await page.fill('[data-testid=capability][data-type="core/demo.echo"] [data-testid=handler-code]', 'return "EDITED";');
    await page.click(byRole('button', 'remove core/demo.echo'));
    for (const code of await page.evaluate(() => [...document.querySelectorAll('[data-testid=handler-code]')].map((e) => /** @type {HTMLTextAreaElement} */ (e).value))) {
      assert.doesNotMatch(code, /EDITED/);
    }
    // Then the examples: echo again, and "respects cancel".
    await page.select('[data-testid=add-example]', 'echo');
    await page.select('[data-testid=add-example]', 'cancel');
    assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll('[data-testid=capability]')].map((e) => e.getAttribute('data-type'))),
      ['core/demo.sleep', 'core/demo.echo', 'core/demo.long']);
    assert.match(await page.value('[data-testid=capability][data-type="core/demo.long"] [data-testid=handler-code]'), /ctx\.signal/);
    // Code and JSON are not prose: no spell-checking squiggles under them (the new capability's editor is open).
    const textareas = await page.evaluate(() => [...document.querySelectorAll('textarea')].map((e) => [e.closest('label')?.firstChild?.textContent?.trim(), e.spellcheck]));
    assert.ok(textareas.length >= 4, JSON.stringify(textareas));
    assert.deepEqual(textareas.filter(([, spellcheck]) => spellcheck), [], 'textareas with spell-checking');
    await page.click('[data-testid=start]');
    await waitState(page, 'registered');
    const registered = await page.text('[data-testid=conn-state]');
    for (const type of ['core/demo.echo', 'core/demo.sleep', 'core/demo.long']) {
      await page.waitFor(withText('.pill.ok', `${type} ×`));
    }
    const dev = await (await fetch(`${tester.gw.url}/dev/neurons`)).json();
    assert.deepEqual(dev.neurons.map((/** @type {any} */ n) => n.neuronId), [neuronId], 'the gateway sees the page\'s neuron');

    // A burst: every task acked, in the table and in the firehose.
    await send(page, 'core/demo.echo', { text: 'burst' }, 40);
    await expectCount(page, 'core/demo.echo', 'acked', 40);
    assert.equal(await page.count('[data-testid=lease-table] tr[data-state=acked]'), 40);
    await page.select('[data-testid=filter-type]', 'ack');
    await page.waitForFunction(() => /^40 of \d+ frames match/.test(document.querySelector('[data-testid=firehose-count]')?.textContent ?? ''));
    await page.click({ css: '[data-testid=firehose-list] .fh-row[data-type=ack]', nth: 0 });
    const detail = JSON.parse(await page.text('[data-testid=frame-detail] pre') ?? '{}');
    assert.equal(detail.type, 'ack');
    assert.deepEqual(detail.output, { echoed: 'burst' });
    await page.select('[data-testid=filter-type]', '');

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
    const longRow = withText('[data-testid=lease-table] tr[data-state=running]', 'core/demo.long');
    await page.waitFor(longRow);
    const leaseId = await page.attr(longRow, 'data-lease');
    await page.click({ ...byRole('button', /cancel task/), within: `[data-testid=lease-table] tr[data-lease="${leaseId}"]` });
    await page.waitFor(`[data-testid=lease-table] tr[data-lease="${leaseId}"][data-state=nacked]`);
    assert.match(await page.text(`[data-testid=lease-table] tr[data-lease="${leaseId}"]`) ?? '', /cancelled/);

    // Drop the stream: the neuron reconnects with backoff and registers again.
    await page.click('[data-testid=drop-stream]');
    await page.waitFor('[data-testid=conn-state]:not([data-state=registered])');
    await waitState(page, 'registered');
    assert.notEqual(await page.text('[data-testid=conn-state]'), registered, 'a new session after the reconnect');
    await page.fill('[data-testid=filter-text]', 'dropped');
    await page.waitFor('[data-testid=firehose-list] .fh-row[data-type=stream-close]');
    await page.fill('[data-testid=filter-text]', '');
    await send(page, 'core/demo.echo', { text: 'after reconnect' }, 5);
    await expectCount(page, 'core/demo.echo', 'acked', 48);

    // Live concurrency: update-capability goes out, the slots follow.
    const sleepCap = '[data-testid=capability][data-type="core/demo.sleep"] [data-testid=concurrency]';
    await page.fill(sleepCap, '3');
    // What is typed stays while the page redraws (leases arriving) until it is committed.
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${tester.gw.url}/dev/tasks`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'core/demo.echo', input: { text: 'while typing' } }) });
      assert.equal(r.status, 201, await r.text());
    }
    await expectCount(page, 'core/demo.echo', 'acked', 50);
    await new Promise((r) => setTimeout(r, 500)); // the panels redraw at most every 200 ms
    assert.equal(await page.value(sleepCap), '3', 'the typed concurrency after redraws');
    await page.dispatch(sleepCap, 'change');
    await page.waitFor(withText('[data-testid=lease-summary] tr[data-capability="core/demo.sleep"] *', '0/3'));
    await page.select('[data-testid=filter-type]', 'update-capability');
    await page.waitFor('[data-testid=firehose-list] .fh-row[data-type=update-capability]');
    await page.select('[data-testid=filter-type]', '');

    // The main view, for the README and for people reading a CI run.
    await send(page, 'core/demo.sleep', { ms: 3000 }, 3);
    await expectCount(page, 'core/demo.sleep', 'running', 3);
    await page.click(byRole('button', 'close the frame detail'));
    await page.click(byRole('button', 'core/demo.long', { exact: true })); // fold its editor
    await page.evaluate(() => {
      window.scrollTo(0, 0);
      const list = document.querySelector('[data-testid=firehose-list]');
      if (list) list.scrollTop = list.scrollHeight;
    });
    assert.deepEqual(await page.evaluate(layoutFaults), [], 'layout at 1440 px');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot(`${ARTIFACTS}${engine === 'chromium' ? 'tester' : `tester-${engine}`}.png`);

    // Stop with drain: running tasks finish and are acked, then the neuron closes.
    await page.click('[data-testid=stop]');
    await waitState(page, 'closed', 20_000);
    await expectCount(page, 'core/demo.sleep', 'acked', 3);
    assert.equal(await page.text(summaryCell('core/demo.sleep', 'nacked')), '0');
    const after = await (await fetch(`${tester.gw.url}/dev/neurons`)).json();
    assert.deepEqual(after.neurons, [], 'the neuron left the gateway');
  });

  test('record a session, replay it without a gateway; faults: 503 and 401 answers, keep-alives paused, revoke', async (t) => {
    const { tester, page } = await open(t, engine, { gateway: { pingIntervalMs: 200 } });
    await page.goto(await tester.demoUrl({ idleTimeoutMs: '1500', heartbeatIntervalMs: '300' }));
    await waitState(page, 'registered');

    // Record: a few tasks of both kinds, a disconnect forced by the gateway, more tasks; then export.
    await send(page, 'core/demo.echo', { text: 'recorded' }, 4);
    await send(page, 'core/demo.sleep', { ms: 200 }, 2);
    await expectCount(page, 'core/demo.echo', 'acked', 4);
    await expectCount(page, 'core/demo.sleep', 'acked', 2);
    await page.click('[data-testid=force-disconnect]');
    await page.waitFor('[data-testid=conn-state]:not([data-state=registered])');
    await waitState(page, 'registered');
    await send(page, 'core/demo.echo', { text: 'after the disconnect' }, 3);
    await expectCount(page, 'core/demo.echo', 'acked', 7);
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = `${ARTIFACTS}session-${engine}.json`;
    await page.download(() => page.click('[data-testid=export]'), file);
    const session = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(session.format, 'neuron-tester-session');
    assert.equal(session.entries.filter((/** @type {any} */ e) => e.dir === 'in' && e.type === 'lease').length, 9);
    assert.equal(session.entries.filter((/** @type {any} */ e) => e.dir === 'in' && e.type === 'disconnect').length, 1);
    await page.click('[data-testid=stop]');
    await waitState(page, 'closed');

    // Replay: the same frames through the same core, no gateway; the same verdicts come out.
    await page.setFile('[data-testid=replay-file]', file);
    await page.waitFor(withText('[data-testid=replay-result]', /Replay done/), { timeout: 30_000 });
    assert.match(await page.text('[data-testid=replay-result]') ?? '', /posted the same 9 frames as in the recording\.$/);
    assert.match(await page.text('[data-testid=conn-state]') ?? '', /^replay/);
    await page.click('[data-testid=stop]');
    await waitState(page, 'closed');

    // A broken file is refused with the reason.
    mkdirSync(`${ARTIFACTS}${engine}`, { recursive: true });
    writeFileSync(`${ARTIFACTS}${engine}/broken.json`, '{"format":"har"}');
    await page.setFile('[data-testid=replay-file]', `${ARTIFACTS}${engine}/broken.json`);
    await page.waitFor(withText('[data-testid=replay-result]', /Cannot replay broken.json: not a neuron-tester session/));

    // Live again, then faults on purpose.
    await page.click('[data-testid=start]');
    await waitState(page, 'registered');
    const acked = Number(await page.text(summaryCell('core/demo.echo', 'acked')));
    for (const status of ['503', '401']) {
      await page.click(byRole('button', status, { exact: true }));
      await send(page, 'core/demo.echo', { text: `after ${status}` }, 1);
      await page.fill('[data-testid=filter-text]', `answered ${status}`);
      await page.waitFor('[data-testid=firehose-list] .fh-row .bad');
      await page.fill('[data-testid=filter-text]', '');
    }
    await expectCount(page, 'core/demo.echo', 'acked', acked + 2);

    // Keep-alives paused on the gateway: the silent stream is declared dead after idleTimeoutMs, and reopened.
    await page.check(byLabel('pause keep-alives (local gateway)'), true);
    await page.waitFor('[data-testid=conn-state]:not([data-state=registered])', { timeout: 10_000 });
    await page.check(byLabel('pause keep-alives (local gateway)'), false);
    await waitState(page, 'registered');

    // Stalled heartbeats: the POST hangs (the firehose says so) until released, then heartbeats flow again.
    await send(page, 'core/demo.sleep', { ms: 4000 }, 1);
    await expectCount(page, 'core/demo.sleep', 'running', 1);
    await page.check(byLabel('stall heartbeats'), true);
    await page.fill('[data-testid=filter-text]', 'stalled by the tester');
    await page.waitFor('[data-testid=firehose-list] .fh-row[data-type=heartbeat]');
    await page.check(byLabel('stall heartbeats'), false);
    await page.fill('[data-testid=filter-text]', '');
    const beats = () => page.evaluate(() => /** @type {any} */ (globalThis).neuronTester.log.toArray()
      .filter((/** @type {any} */ e) => e.type === 'heartbeat' && e.status === 200).length);
    const before = await beats();
    await page.waitForFunction((/** @type {number} */ n) => /** @type {any} */ (globalThis).neuronTester.log.toArray()
      .filter((/** @type {any} */ e) => e.type === 'heartbeat' && e.status === 200).length > n, before);
    await expectCount(page, 'core/demo.sleep', 'acked', 1, 20_000); // counts start again with each start

    // Revoke: the gateway revokes a capability; the frame shows in the firehose.
    await page.fill('[data-testid=task-type]', 'core/demo.sleep');
    await page.click(byRole('button', 'Revoke core/demo.sleep'));
    await page.select('[data-testid=filter-type]', 'capability-revoked');
    await page.waitFor('[data-testid=firehose-list] .fh-row[data-type=capability-revoked]');
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
    const browser = await launch(engine);
    t.after(() => browser.close());
    const page = await browser.newPage();
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
    const second = await browser.newPage();
    await second.goto(/** @type {string} */ (url));
    await waitState(second, 'registered');
    await waitState(page, 'closed');
    assert.match(await page.text('[data-testid=conn-state]') ?? '', /superseded/);
    assert.equal(await page.enabled('[data-testid=start]'), true, 'the first tab can start again');
    for (const p of [page, second]) assert.deepEqual((await p.errors()).map((e) => `${e.kind}: ${e.text} (${e.url})`), [], 'errors in the page console');
  });
});

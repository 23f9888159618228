// The test kit's WebKit teardown (tester-ui/testkit/browsers.js): when a page's
// web process dies, WebKitWebDriver's session breaks and quitting it no longer
// closes MiniBrowser. A MiniBrowser left running kept the driver's stderr, and
// with it the test file's process, open forever after its test had failed
// (a CI run hung that way once). close() must leave no browser process behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { engines, launch, running } from '../../../tester-ui/testkit/browsers.js';

/** This process's descendants that run WebKit, as [pid, name]. */
function ourBrowserProcesses() {
  /** @type {Map<number, { ppid: number, name: string, state: string }>} */
  const all = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const [state, ppid] = stat.slice(close + 2).split(' ');
      all.set(Number(d), { ppid: Number(ppid), name: stat.slice(stat.indexOf('(') + 1, close), state });
    } catch {
      // gone meanwhile
    }
  }
  /** @param {number} pid */
  const ours = (pid) => {
    for (let p = all.get(pid)?.ppid; p; p = all.get(p)?.ppid) if (p === process.pid) return true;
    return false;
  };
  return [...all].filter(([pid, p]) => p.state !== 'Z' && /WebKit|MiniBrowser/.test(p.name) && ours(pid)).map(([pid, p]) => [pid, p.name]);
}

test('webkit: a browser whose page process died closes, and leaves no process behind', { skip: !engines().includes('webkit'), timeout: 60_000 }, async () => {
  const browser = await launch('webkit');
  /** @type {(string | number)[][]} */
  let started = [];
  try {
    const page = await browser.newPage();
    await page.goto('about:blank');
    // Listed while the driver still holds them: once it is gone, what it left is no
    // longer this process's descendant.
    started = ourBrowserProcesses();
    const pages = started.filter(([, name]) => String(name).startsWith('WebKitWebProc'));
    assert.ok(pages.length > 0 && started.some(([, name]) => name === 'MiniBrowser'), `MiniBrowser and a page's web process run: ${JSON.stringify(started)}`);
    for (const [pid] of pages) process.kill(Number(pid), 'SIGKILL');
  } finally {
    await browser.close();
  }
  assert.deepEqual(started.filter(([pid]) => running(Number(pid))), [], `browser processes left running after close(): ${JSON.stringify(started)}`);
});

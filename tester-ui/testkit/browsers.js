// One small driver interface over the three browser engines Debian ships, so a
// browser test runs the same steps in each:
//
//   chromium  Debian's /usr/bin/chromium, driven by playwright-core (CDP)
//   firefox   Debian's /usr/bin/firefox-esr, driven by puppeteer-core (WebDriver BiDi)
//   webkit    WebKitGTK's MiniBrowser through /usr/bin/WebKitWebDriver, driven by
//             selenium-webdriver (classic WebDriver); needs an X display
//             (scripts/test runs it under xvfb-run -a)
//
// Nothing here downloads a browser. `BROWSERS=chromium,webkit` runs a subset.
//
// Elements are found in the page by one function (`findAll` below) from a
// target: a CSS selector string, or `{ css, text, role, name, exact, label,
// within, nth }` (helpers: byRole, byLabel, withText). Actions wait for their
// element (present, visible and enabled) and, as Playwright's locators do,
// refuse a target that matches more than one element unless `nth` says which.
//
// Console errors: Chromium and Firefox report them through their protocol.
// Classic WebDriver has none, so pages served to a test carry PREAMBLE first
// (`startStaticServer(root, { inject: PREAMBLE })`): it records console.error
// calls, uncaught errors, failed resource loads and unhandled rejections in
// the page, and the WebKit driver collects them (and installs the same
// recorder after each navigation, should a page have come without it).

import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ENGINES = /** @type {const} */ (['chromium', 'firefox', 'webkit']);
/** @typedef {typeof ENGINES[number]} Engine */

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const FIREFOX = '/usr/bin/firefox-esr';
const WEBKIT_DRIVER = '/usr/bin/WebKitWebDriver';
const MINIBROWSER = '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const DEFAULT_TIMEOUT = 30_000;

/** The engines to test: all three, or the ones listed in $BROWSERS. @returns {Engine[]} */
export function engines() {
  const wanted = (process.env.BROWSERS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  for (const e of wanted) if (!ENGINES.includes(/** @type {Engine} */ (e))) throw new Error(`BROWSERS: unknown engine ${e} (known: ${ENGINES.join(', ')})`);
  return wanted.length ? /** @type {Engine[]} */ (wanted) : [...ENGINES];
}

// ---------------------------------------------------------------- in the page

/** Records console errors in the page (for drivers without console events). Runs in the page. */
function recordErrors() {
  const w = /** @type {any} */ (window);
  if (w.__testErrors) return;
  /** @type {{ kind: string, text: string, url: string }[]} */
  const errors = (w.__testErrors = []);
  const show = (/** @type {unknown} */ v) => {
    if (v instanceof Error) return `${v.name}: ${v.message}`;
    if (typeof v === 'string') return v;
    try { return JSON.stringify(v); } catch { return String(v); }
  };
  const original = console.error;
  console.error = function (...args) {
    errors.push({ kind: 'console', text: args.map(show).join(' '), url: location.href });
    return original.apply(this, args);
  };
  addEventListener('error', (e) => {
    const el = /** @type {any} */ (e.target);
    if (el && el !== window && el.tagName) errors.push({ kind: 'console', text: `failed to load ${el.tagName.toLowerCase()} ${el.src || el.href || ''}`, url: el.src || el.href || '' });
    else errors.push({ kind: 'pageerror', text: e.error ? show(e.error) : e.message, url: e.filename || location.href });
  }, true);
  addEventListener('unhandledrejection', (e) => errors.push({ kind: 'pageerror', text: `unhandled rejection: ${show(e.reason)}`, url: location.href }));
}

/** The `<script>` a test's page server puts first in every HTML page it serves (see the header). */
export const PREAMBLE = `<script>(${recordErrors})()</script>`;

/**
 * @typedef {{ css?: string, text?: string | RegExp, role?: string, name?: string | RegExp, exact?: boolean,
 *   label?: string, within?: Target, nth?: number }} TargetSpec
 * @typedef {string | TargetSpec} Target
 */

/** @param {string} role @param {string | RegExp} name @param {{ exact?: boolean }} [o] @returns {TargetSpec} */
export const byRole = (role, name, o = {}) => ({ role, name, ...o });
/** @param {string} label @returns {TargetSpec} */
export const byLabel = (label) => ({ label });
/** @param {string} css @param {string | RegExp} text @returns {TargetSpec} */
export const withText = (css, text) => ({ css, text });

/** A target as it crosses into the page (RegExps as source and flags). @param {Target} t @returns {any} */
function wire(t) {
  if (typeof t === 'string') return { css: t };
  const re = (/** @type {unknown} */ v) => (v instanceof RegExp ? { re: v.source, flags: v.flags } : v);
  return { ...t, text: re(t.text), name: re(t.name), within: t.within && wire(t.within) };
}

/** @param {Target} t */
const describe = (t) => (typeof t === 'string' ? t : JSON.stringify(wire(t)));

/**
 * Runs in the page: the elements a target names, and for `mode` 'one' the single one an action
 * may use (or a reason why not yet). Self-contained: drivers send it as source text.
 * @param {any} spec @param {'all' | 'one' | 'count'} mode
 */
function findAll(spec, mode) {
  const norm = (/** @type {string | null | undefined} */ s) => (s ?? '').replace(/\s+/g, ' ').trim();
  const matches = (/** @type {any} */ want, /** @type {string} */ got, /** @type {boolean} */ exact) => {
    if (want && typeof want === 'object') return new RegExp(want.re, want.flags).test(got);
    return exact ? got === want : got.toLowerCase().includes(String(want).toLowerCase());
  };
  const accessibleName = (/** @type {any} */ el) => norm(el.getAttribute('aria-label')
    || (el.labels && [...el.labels].map((/** @type {Element} */ l) => l.textContent).join(' ')) || el.textContent || el.title);
  const ROLES = /** @type {Record<string, string>} */ ({
    button: 'button, [role=button], input[type=button], input[type=submit]',
    checkbox: 'input[type=checkbox], [role=checkbox]',
    textbox: 'input:not([type]), input[type=text], textarea, [role=textbox]',
  });
  /** @returns {Element[]} */
  const select = (/** @type {any} */ s) => {
    /** @type {ParentNode[]} */
    let roots = [document];
    if (s.within) roots = select(s.within).slice(0, 1);
    let els = roots.flatMap((r) => [...r.querySelectorAll(s.role ? (ROLES[s.role] ?? `[role=${s.role}]`) : (s.css ?? '*'))]);
    if (s.role && s.css) els = els.filter((e) => e.matches(s.css));
    if (s.name !== undefined) els = els.filter((e) => matches(s.name, accessibleName(e), s.exact === true));
    if (s.label !== undefined) {
      const byLabelText = [...document.querySelectorAll('label')].filter((l) => matches(s.label, norm(l.textContent), false))
        .map((l) => /** @type {HTMLLabelElement} */ (l).control).filter((c) => c !== null);
      const byAria = [...document.querySelectorAll('[aria-label]')].filter((e) => matches(s.label, norm(e.getAttribute('aria-label')), false));
      els = [...new Set([...byLabelText, ...byAria])].filter((e) => els.includes(/** @type {Element} */ (e)));
    }
    if (s.text !== undefined) els = els.filter((e) => matches(s.text, norm(e.textContent), false));
    if (s.nth !== undefined) els = els.slice(s.nth, s.nth + 1);
    return els;
  };
  const els = select(spec);
  if (mode === 'count') return els.length;
  if (mode === 'all') return els;
  if (els.length > 1) return { error: `${els.length} elements match` };
  const el = /** @type {HTMLElement | undefined} */ (els[0]);
  if (!el) return { wait: 'no element matches' };
  return { el };
}

/** Runs in the page: findAll's verdict for one element, or `getter`'s value for it. @param {[string, any, string, any]} a */
function readOne([src, spec, getter, arg]) {
  const r = (0, eval)(`(${src})`)(spec, 'one');
  return r.el ? { value: (0, eval)(`(${getter})`)(r.el, arg) } : r;
}

/** Runs in the page: whether the element can take a click or typing now. @param {any} el */
function actionable(el) {
  if (!el.isConnected) return 'detached';
  if (el.getClientRects().length === 0 || getComputedStyle(el).visibility === 'hidden') return 'not visible';
  if (el.disabled || el.closest('fieldset[disabled]')) return 'disabled';
  return '';
}

/**
 * Runs in the page (WebDriver's executeAsyncScript): calls back with { value } once `src`(arg) is
 * truthy, { timeout: true } after `budget` ms, { error } if it throws.
 * @param {string} src @param {any} arg @param {number} budget @param {(r: object) => void} done
 */
function waitInPage(src, arg, budget, done) {
  const fn = (0, eval)(`(${src})`);
  const until = Date.now() + budget;
  /** @type {MutationObserver | undefined} */
  let observer;
  /** @type {any} */
  let timer;
  let over = false;
  const finish = (/** @type {object} */ r) => {
    over = true;
    observer?.disconnect();
    clearInterval(timer);
    done(r);
  };
  const check = () => {
    if (over) return;
    let v;
    try {
      v = fn(arg);
    } catch (err) {
      finish({ error: String(err) });
      return;
    }
    if (v) {
      let value = true;  // what JSON cannot carry (an element, a cycle) comes back as true
      try { value = JSON.parse(JSON.stringify(v)) ?? true; } catch { /* true */ }
      finish({ value });
    } else if (Date.now() >= until) {
      finish({ timeout: true });
    }
  };
  check();
  if (over) return;
  observer = new MutationObserver(check);
  observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
  timer = setInterval(check, 10);
}

// ------------------------------------------------------------------- drivers

/**
 * @typedef {{ kind: string, text: string, url: string }} PageError
 * @typedef {{ status: number, method: string, url: string, postData: string, body: () => Promise<string> } | { failed: string, url: string }} NetworkNote
 */

/**
 * What a test does with a page, the same in every engine.
 * @typedef {object} Page
 * @property {(url: string) => Promise<void>} goto
 * @property {() => Promise<void>} reload
 * @property {(t: Target, o?: { timeout?: number }) => Promise<void>} waitFor the element exists (and is visible)
 * @property {(fn: Function, arg?: any, o?: { timeout?: number }) => Promise<any>} waitForFunction until fn(arg) in the page is truthy; its value
 * @property {(fn: Function, arg?: any) => Promise<any>} evaluate
 * @property {(t: Target) => Promise<void>} click
 * @property {(t: Target, value: string) => Promise<void>} fill replaces the value, as typing would
 * @property {(t: Target, on: boolean) => Promise<void>} check clicks the checkbox if it is not `on`
 * @property {(t: Target, value: string) => Promise<void>} select
 * @property {(t: Target, type: string) => Promise<void>} dispatch an event of `type` on the element
 * @property {(t: Target, file: string) => Promise<void>} setFile sets the file input's file (a path)
 * @property {(trigger: () => Promise<void>, saveAs: string) => Promise<void>} download runs trigger, saves the download it starts
 * @property {(t: Target) => Promise<string>} value an input's value
 * @property {(t: Target) => Promise<string>} text textContent
 * @property {(t: Target, name: string) => Promise<string | null>} attr
 * @property {(t: Target) => Promise<boolean>} enabled
 * @property {(t: Target) => Promise<number>} count
 * @property {(path: string) => Promise<void>} screenshot of the viewport, PNG
 * @property {() => Promise<PageError[]>} errors console errors and uncaught errors so far
 * @property {((fn: (n: NetworkNote) => void) => void) | null} onNetworkError responses >= 400 and failed requests (null: the driver cannot see them)
 */

/**
 * @typedef {object} Browser
 * @property {Engine} engine
 * @property {string} version
 * @property {() => Promise<Page>} newPage a page in the same browser context (shared storage)
 * @property {() => Promise<void>} close
 */

/** @param {number} ms */
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` until it returns a value other than undefined, or throws after `timeout`.
 * @template T @param {() => Promise<T | undefined>} probe @param {number} timeout @param {() => string} what
 * @returns {Promise<T>}
 */
async function poll(probe, timeout, what) {
  const until = Date.now() + timeout;
  for (let delay = 20; ; delay = Math.min(delay * 2, 200)) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeout} ms: ${what()}`);
    await sleep(delay);
  }
}

/** Runs in the page: whether `spec` (findAll's source text and a target) names an element now. @param {[string, any]} a */
function present([src, spec]) {
  return (0, eval)(`(${src})`)(spec, 'count') > 0;
}

/**
 * The engine-neutral half of a page, built on the driver's `run` (evaluate with element handles
 * as arguments), `one` (findAll's verdict, its element as a driver handle) and `waitForFunction`.
 * @param {{
 *   run: (fn: Function, ...args: any[]) => Promise<any>,
 *   one: (spec: any) => Promise<{ el?: any, error?: string, wait?: string }>,
 *   waitForFunction: (fn: Function, arg: any, o: { timeout?: number }) => Promise<any>,
 * }} d
 */
function common(d) {
  /** Waits until the target names one actionable element (or only one present, for `present`). */
  const resolve = async (/** @type {Target} */ t, /** @type {'act' | 'present'} */ need = 'act', timeout = DEFAULT_TIMEOUT) => {
    let why = '';
    const failure = new Error(describe(t));  // with the caller's stack
    return poll(async () => {
      const r = await d.one(wire(t));
      if (r.error) throw new Error(`${describe(t)}: ${r.error}`);
      if (!r.el) { why = r.wait ?? ''; return undefined; }
      if (need === 'act') {
        why = await d.run(actionable, r.el);
        if (why) return undefined;
      }
      return r.el;
    }, timeout, () => `${describe(t)}: ${why}`).catch((err) => {
      failure.message = err.message;
      throw failure;
    });
  };
  /**
   * Runs a driver's action on the target's element; again with the element found anew if the
   * page replaced it meanwhile (a re-render), as Playwright's locators do.
   * @param {Target} t @param {(el: any) => Promise<any>} action @param {'act' | 'present'} [need]
   */
  const act = async (t, action, need = 'act') => {
    const until = Date.now() + DEFAULT_TIMEOUT;
    for (;;) {
      const el = await resolve(t, need);
      try {
        return await action(el);
      } catch (err) {
        const attached = await d.run((/** @type {any} */ e) => e.isConnected, el).catch(() => false);
        if (attached || Date.now() > until) throw err;
      }
    }
  };
  /**
   * Finds the target's element and reads it in one step in the page (so the value is never
   * that of an element the page has replaced), once it is there.
   * @param {Target} t @param {(el: any, arg?: any) => any} getter @param {any} [arg]
   */
  const read = async (t, getter, arg) => {
    const failure = new Error(describe(t));  // with the caller's stack
    let why = '';
    const r = await poll(async () => {
      const got = await d.run(readOne, [String(findAll), wire(t), String(getter), arg]);
      if (got.error) throw new Error(`${describe(t)}: ${got.error}`);
      why = got.wait ?? '';
      return 'value' in got ? got : undefined;
    }, DEFAULT_TIMEOUT, () => `${describe(t)}: ${why}`).catch((err) => {
      failure.message = err.message;
      throw failure;
    });
    return r.value;
  };
  return {
    act,
    /** @param {Target} t @param {{ timeout?: number }} [o] */
    async waitFor(t, o = {}) {
      const failure = new Error(`waiting for ${describe(t)}`);  // with the caller's stack
      await d.waitForFunction(present, [String(findAll), wire(t)], o).catch((err) => {
        failure.message += `: ${err.message}`;
        throw failure;
      });
    },
    /** @param {Function} fn @param {any} arg @param {{ timeout?: number }} [o] */
    async waitForFunction(fn, arg, o = {}) {
      const failure = new Error('waitForFunction');
      return d.waitForFunction(fn, arg, o).catch((err) => {
        failure.message = err.message;
        throw failure;
      });
    },
    /** @param {Target} t */
    value: (t) => read(t, (/** @type {any} */ el) => el.value),
    /** @param {Target} t */
    text: (t) => read(t, (/** @type {any} */ el) => el.textContent),
    /** @param {Target} t @param {string} name */
    attr: (t, name) => read(t, (/** @type {any} */ el, /** @type {string} */ n) => el.getAttribute(n), name),
    /** @param {Target} t */
    enabled: (t) => read(t, (/** @type {any} */ el) => !el.disabled),
    /** @param {Target} t */
    count: async (t) => d.run(findAll, wire(t), 'count'),
    /** As Playwright's selectOption: sets the value, fires input and change. @param {Target} t @param {string} value */
    async select(t, value) {
      const ok = await d.run((/** @type {any} */ el, /** @type {string} */ v) => {
        if (![...el.options].some((/** @type {any} */ o) => o.value === v)) return false;
        el.value = v;
        el.dispatchEvent(new Event('input', { bubbles: true }));
        el.dispatchEvent(new Event('change', { bubbles: true }));
        return true;
      }, await resolve(t), value);
      if (!ok) throw new Error(`${describe(t)} has no option ${value}`);
    },
    /** @param {Target} t @param {string} type */
    async dispatch(t, type) {
      await d.run((/** @type {any} */ el, /** @type {string} */ ty) => el.dispatchEvent(new Event(ty, { bubbles: true, cancelable: true, composed: true })), await resolve(t, 'present'), type);
    },
  };
}

/**
 * The part of a page that Playwright and Puppeteer drive alike (the same calls and event names).
 * @param {any} page a Playwright or Puppeteer page
 */
function protocolPage(page) {
  /** @type {PageError[]} */
  const errors = [];
  page.on('console', (/** @type {any} */ m) => { if (m.type() === 'error') errors.push({ kind: 'console', text: m.text(), url: m.location().url ?? '' }); });
  page.on('pageerror', (/** @type {Error} */ e) => errors.push({ kind: 'pageerror', text: e.message ?? String(e), url: page.url() }));
  return {
    /** findAll's verdict for one target, its element as an element handle. @param {any} spec */
    async one(spec) {
      const h = await page.evaluateHandle((/** @type {[string, any]} */ [src, s]) => (0, eval)(`(${src})`)(s, 'one'), [String(findAll), spec]);
      const r = await h.evaluate((/** @type {any} */ x) => ({ error: x.error, wait: x.wait, has: !!x.el }));
      return r.has ? { el: (await h.getProperty('el')).asElement() } : r;
    },
    page: {
      goto: async (/** @type {string} */ url) => { await page.goto(url); },
      reload: async () => { await page.reload(); },
      evaluate: (/** @type {Function} */ fn, /** @type {any} */ arg) => page.evaluate(fn, arg),
      screenshot: async (/** @type {string} */ path) => { await page.screenshot({ path }); },
      errors: async () => [...errors],
      /** @param {(n: NetworkNote) => void} fn */
      onNetworkError(fn) {
        page.on('response', (/** @type {any} */ res) => {
          if (res.status() < 400) return;
          const req = res.request();
          fn({ status: res.status(), method: req.method(), url: res.url(), postData: req.postData() ?? '', body: () => res.text() });
        });
        page.on('requestfailed', (/** @type {any} */ req) => fn({ failed: req.failure()?.errorText ?? '?', url: req.url() }));
      },
    },
  };
}

/** @param {{ width: number, height: number }} viewport @returns {Promise<Browser>} */
async function launchChromium(viewport) {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  return {
    engine: 'chromium',
    version: browser.version(),
    async newPage() {
      const page = await context.newPage();
      const p = protocolPage(page);
      const c = common({
        // Playwright passes one argument, element handles anywhere inside it.
        run: (fn, ...args) => page.evaluate(([src, a]) => (0, eval)(`(${src})`)(...a), /** @type {[string, any[]]} */ ([String(fn), args])),
        one: p.one,
        // polled on every animation frame
        waitForFunction: async (fn, arg, o = {}) => (await page.waitForFunction(/** @type {any} */ (fn), arg, { timeout: o.timeout ?? DEFAULT_TIMEOUT })).jsonValue(),
      });
      return {
        ...c,
        ...p.page,
        click: (t) => c.act(t, (el) => el.click()),
        fill: (t, v) => c.act(t, (el) => el.fill(v)),
        check: (t, on) => c.act(t, (el) => el.setChecked(on)),
        setFile: (t, file) => c.act(t, (el) => el.setInputFiles(file), 'present'),
        async download(trigger, saveAs) {
          const [dl] = await Promise.all([page.waitForEvent('download'), trigger()]);
          await dl.saveAs(saveAs);
        },
      };
    },
    close: () => browser.close(),
  };
}

/** @param {{ width: number, height: number }} viewport @returns {Promise<Browser>} */
async function launchFirefox(viewport) {
  const puppeteer = (await import('puppeteer-core')).default;
  const downloads = mkdtempSync(join(tmpdir(), 'firefox-downloads-'));
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, headless: true,
    extraPrefsFirefox: {
      'browser.download.folderList': 2, 'browser.download.dir': downloads, 'browser.download.useDownloadDir': true,
      'browser.download.always_ask_before_handling_new_types': false, 'browser.download.start_downloads_in_tmp_dir': false,
    },
  });
  return {
    engine: 'firefox',
    version: await browser.version(),
    async newPage() {
      const page = await browser.newPage();
      await page.setViewport(viewport);
      const p = protocolPage(page);
      const c = common({
        // Puppeteer passes element handles as arguments of their own.
        run: (fn, ...args) => page.evaluate((/** @type {string} */ src, /** @type {any[]} */ ...a) => (0, eval)(`(${src})`)(...a), String(fn), ...args),
        one: p.one,
        // polled on every animation frame, as Playwright does
        waitForFunction: async (fn, arg, o = {}) => (await page.waitForFunction(/** @type {any} */ (fn), { timeout: o.timeout ?? DEFAULT_TIMEOUT, polling: 'raf' }, arg)).jsonValue(),
      });
      return {
        ...c,
        ...p.page,
        click: (t) => c.act(t, (el) => el.click()),
        fill: (t, v) => c.act(t, async (el) => {
          await el.evaluate((/** @type {any} */ e) => { e.focus(); e.select(); });
          if (v === '') await page.keyboard.press('Backspace');
          else await page.keyboard.type(v);
        }),
        check: (t, on) => c.act(t, async (el) => {
          if (await el.evaluate((/** @type {any} */ e) => e.checked) !== on) await el.click();
        }),
        setFile: (t, file) => c.act(t, (el) => el.uploadFile(file), 'present'),
        download: (trigger, saveAs) => downloadInto(downloads, trigger, saveAs),
      };
    },
    async close() {
      await browser.close();
      rmSync(downloads, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `trigger` and waits for the browser to finish writing a new file into `dir`, then copies it to `saveAs`.
 * @param {string} dir @param {() => Promise<void>} trigger @param {string} saveAs
 */
async function downloadInto(dir, trigger, saveAs) {
  const before = new Set(readdirSync(dir));
  await trigger();
  // Done when no temporary name is left and the new file has bytes that did
  // not change since the last look (WebKitGTK may create the final name
  // first and write into it afterwards).
  let last = -1;
  const file = await poll(async () => {
    const names = readdirSync(dir).filter((n) => !before.has(n));
    if (names.length === 0 || names.some((n) => n.endsWith('.part') || n.endsWith('.download'))) return undefined;
    const size = statSync(join(dir, names[0])).size;
    const settled = size > 0 && size === last;
    last = size;
    return settled ? names[0] : undefined;
  }, DEFAULT_TIMEOUT, () => `a download in ${dir}`);
  copyFileSync(join(dir, file), saveAs);
}

/** A free TCP port on 127.0.0.1. @returns {Promise<number>} */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/**
 * The processes `pid` started, and the ones they started (from Linux's /proc;
 * none where it has no such list).
 * @param {number} pid @returns {number[]}
 */
function descendants(pid) {
  /** @type {number[]} */
  const found = [];
  let tasks = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return found;
  }
  for (const task of tasks) {
    let children = '';
    try {
      children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const child of children.split(' ').filter(Boolean).map(Number)) found.push(child, ...descendants(child));
  }
  return found;
}

/** @param {number} pid whether the process runs (a zombie does not; Linux's /proc) */
export function running(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

/** @param {{ width: number, height: number }} viewport @returns {Promise<Browser>} */
async function launchWebKit(viewport) {
  if (!process.env.DISPLAY) throw new Error('WebKitGTK (MiniBrowser) needs an X display: run the tests under `xvfb-run -a` (scripts/test does)');
  const { Builder, Key } = await import('selenium-webdriver');
  const port = await freePort();
  const home = mkdtempSync(join(tmpdir(), 'webkit-home-'));  // MiniBrowser's downloads and caches land here
  const downloads = join(home, 'Downloads');
  mkdirSync(downloads);
  // MiniBrowser saves a download into the user's download folder (GLib reads it from here).
  mkdirSync(join(home, '.config'));
  writeFileSync(join(home, '.config', 'user-dirs.dirs'), 'XDG_DOWNLOAD_DIR="$HOME/Downloads"\n');
  const driverProcess = spawn(WEBKIT_DRIVER, [`--port=${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {
      ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config'), XDG_CACHE_HOME: join(home, '.cache'), XDG_DATA_HOME: join(home, '.local'),
      MESA_SHADER_CACHE_DISABLE: 'true',
      // No GPU here: with its default (accelerated, DMA-BUF) renderer on Mesa's software GL
      // under Xvfb, MiniBrowser painted the tester page every ~150 ms with stalls of up to 1 s on
      // a 2-core machine, so a state the page shows for half a second was never painted.
      // Without compositing it paints at 60 Hz, as Chromium does with --disable-gpu.
      WEBKIT_DISABLE_COMPOSITING_MODE: '1',
    },
  });
  let stderr = '';
  driverProcess.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const exited = new Promise((resolve) => driverProcess.once('exit', resolve));
  const stopDriver = async () => {
    // What the driver started and did not close (a session that broke, e.g. when a page's
    // web process died): a MiniBrowser left running keeps the driver's stderr open, and
    // with it this test process, after the test has ended (seen once: a CI run that hung).
    const left = driverProcess.pid ? descendants(driverProcess.pid) : [];
    if (driverProcess.exitCode === null) driverProcess.kill('SIGTERM');
    await exited;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const until = Date.now() + 5_000; left.some(running) && Date.now() < until;) await sleep(20);
    driverProcess.stderr?.destroy();
    // the browser's processes may still be writing their caches as they exit
    try {
      rmSync(home, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
    } catch (err) {
      console.warn(`browsers.js: could not remove ${home}: ${/** @type {Error} */ (err).message}`);
    }
  };
  const url = `http://127.0.0.1:${port}`;
  /** @type {import('selenium-webdriver').WebDriver} */
  let driver;
  try {
    await poll(async () => (await fetch(`${url}/status`).then((r) => r.ok, () => false)) || undefined, 10_000, () => `WebKitWebDriver on ${url}: ${stderr}`);
    driver = await new Builder().usingServer(url).withCapabilities({
      browserName: 'MiniBrowser',
      'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
    }).build();
  } catch (err) {
    await stopDriver();
    throw err;
  }
  const version = /** @type {string} */ ((await driver.getCapabilities()).get('browserVersion'));
  // The window holds the page plus MiniBrowser's toolbar: size it so the page gets `viewport`.
  await driver.manage().window().setRect({ width: viewport.width, height: viewport.height });
  const inner = await driver.executeScript('return [innerWidth, innerHeight]');
  await driver.manage().window().setRect({ width: 2 * viewport.width - inner[0], height: 2 * viewport.height - inner[1] });
  let firstWindow = await driver.getWindowHandle();
  let current = firstWindow;
  return {
    engine: 'webkit',
    version: `MiniBrowser ${version}`,
    async newPage() {
      let handle = firstWindow;
      if (handle) {
        firstWindow = '';
      } else {
        await driver.switchTo().newWindow('tab');
        handle = await driver.getWindowHandle();
      }
      current = handle;
      const focus = async () => {
        if (current !== handle) {
          await driver.switchTo().window(handle);
          current = handle;
        }
      };
      /** @type {PageError[]} */
      const errors = [];
      const collect = async () => {
        await focus();
        const got = await driver.executeScript('const e = window.__testErrors; if (!e) return []; return e.splice(0, e.length);').catch(() => []);
        errors.push(.../** @type {PageError[]} */ (got));
      };
      const record = () => driver.executeScript(`(${recordErrors})()`);
      const run = async (/** @type {Function} */ fn, /** @type {any[]} */ ...args) => {
        await focus();
        return driver.executeScript(`return (${fn}).apply(null, arguments)`, ...args);
      };
      const c = common({
        run,
        one: (spec) => run(findAll, spec, 'one'),
        // Checked in the page on every DOM change and every 10 ms, so a state the page shows
        // only briefly is seen (a round trip per check would miss it).
        async waitForFunction(fn, arg, o = {}) {
          const until = Date.now() + (o.timeout ?? DEFAULT_TIMEOUT);
          for (;;) {
            await focus();
            const budget = Math.max(0, Math.min(10_000, until - Date.now()));
            /** @type {any} */
            const r = await driver.executeAsyncScript(waitInPage, String(fn), arg, budget)
              .catch((/** @type {Error} */ err) => ({ retry: err.message }));  // e.g. the page navigated meanwhile
            if (r.error) throw new Error(r.error);
            if ('value' in r) return r.value;
            if (Date.now() >= until) throw new Error(`timed out: ${String(fn).slice(0, 200)}${r.retry ? ` (${r.retry})` : ''}`);
          }
        },
      });
      // Select what is there and type over it, as a person would (WebDriver's clear() would
      // fire a change event with an empty value first). Send Keys keeps the selection of an
      // element that has the focus already.
      const sendKeys = async (/** @type {any} */ el, /** @type {string} */ v) => {
        await run((/** @type {any} */ e) => { e.focus(); e.select(); }, el);
        await el.sendKeys(v === '' ? Key.BACK_SPACE : v);
      };
      return {
        ...c,
        async goto(u) {
          await collect();
          await driver.get(u);
          await record();
        },
        async reload() {
          await collect();
          await driver.navigate().refresh();
          await record();
        },
        evaluate: (fn, arg) => run(fn, arg),
        click: (t) => c.act(t, (el) => el.click()),
        fill: (t, v) => c.act(t, (el) => sendKeys(el, v)),
        check: (t, on) => c.act(t, async (el) => {
          if (await el.isSelected() !== on) await el.click();
        }),
        setFile: (t, file) => c.act(t, (el) => el.sendKeys(file), 'present'),
        download: (trigger, saveAs) => downloadInto(downloads, trigger, saveAs),
        async screenshot(path) {
          await focus();
          writeFileSync(path, await driver.takeScreenshot(), 'base64');
        },
        async errors() {
          await collect();
          return [...errors];
        },
        onNetworkError: null,
      };
    },
    async close() {
      // A driver whose browser broke may never answer: it is stopped anyway.
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let timer;
      await Promise.race([driver.quit().catch(() => {}), new Promise((resolve) => { timer = setTimeout(resolve, 10_000); })]);
      clearTimeout(timer);
      await stopDriver();
    },
  };
}

/**
 * Launches `engine` with pages of `viewport` size.
 * @param {Engine} engine @param {{ viewport?: { width: number, height: number } }} [o]
 * @returns {Promise<Browser>}
 */
export function launch(engine, { viewport = { width: 1280, height: 800 } } = {}) {
  if (engine === 'chromium') return launchChromium(viewport);
  if (engine === 'firefox') return launchFirefox(viewport);
  if (engine === 'webkit') return launchWebKit(viewport);
  throw new Error(`unknown engine ${engine}`);
}

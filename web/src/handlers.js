// Running a handler: the HandlerContext it gets, the input and output checks
// of zod capabilities, and how whatever it returns or throws becomes one
// completion for the core (host.js). Nothing a handler gives back, however
// strange (a thenable whose then() throws, a revoked Proxy, a BigInt), can
// throw past this file.

import { messageOf, TaskFailure } from './errors.js';
import { zodCheck } from './capability.js';

export const RESULT = { threw: 1, failed: 2, inputInvalid: 3, outputInvalid: 4 };
const LEVELS = /** @type {const} */ (['debug', 'info', 'warn', 'error']);
const US = '\x1f';

/** A logger that drops everything (the README's default). */
export const silentLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** @param {unknown} v */
const isObject = (v) => v !== null && typeof v === 'object';

/**
 * True if `err` is what ctx.fail() throws; false for anything else, also for
 * values whose instanceof check itself throws (a revoked Proxy).
 * @param {unknown} err
 */
function isTaskFailure(err) {
  try {
    return err instanceof TaskFailure;
  } catch {
    return false;
  }
}

/**
 * What the runner needs of the host (host.js).
 * @typedef {{
 *   logger: any,
 *   stopCalled: boolean,
 *   returned(ctx: HandlerContext, value: unknown): void,
 *   done(ctx: HandlerContext, result: number, reason: string, code: string, errors: string): void,
 *   progress(ctx: HandlerContext, update: { percent?: number, message?: string, data?: unknown }): void,
 * }} RunnerHost
 */

/**
 * The second argument of every handler.
 */
export class HandlerContext {
  /**
   * @param {RunnerHost} host @param {number} hid @param {string} leaseId
   * @param {any} task null while `taskJson` holds it, not parsed yet
   * @param {{ handler: Function, input: any, output: any }} cap
   * @param {unknown} input task.input
   * @param {string | null} taskJson the task's JSON, parsed on first use of `task`
   */
  constructor(host, hid, leaseId, task, cap, input, taskJson) {
    /** @private */ this._host = host;
    /** @internal */ this._hid = hid;
    /** @internal the capability whose handler runs */ this._cap = cap;
    /** @private */ this._task = task;
    /** @private */ this._taskJson = taskJson;
    /** @internal the handler's input (task.input) */ this._input = input;
    /** Gateway lease id (for logging / debugging). */
    this.leaseId = leaseId;
    /** @private @type {AbortController | null} */ this._ac = null;
    /** @internal @type {DOMException | null} */ this._abortReason = null;
    /** @private @type {any} */ this._log = null;
    /** @internal */ this._done = false;
    /** @internal the output an ack built in JS carries (host.js) */ this._output = undefined;
  }

  /** Full task metadata (taskId, type, input, attempt, onBehalfOf, ...). */
  get task() {
    // Parsed on first use: most handlers read only their input. Its `input`
    // is the very value the handler got.
    if (this._taskJson !== null) {
      const task = JSON.parse(this._taskJson);
      task.input = this._input;
      this._task = task;
      this._taskJson = null;
    }
    return this._task;
  }

  set task(task) {
    this._task = task;
    this._taskJson = null;
  }

  /** Fires on cancel, lease loss, revocation or shutdown; `reason.message` says which. */
  get signal() {
    // Made on first use: most handlers never look, and an AbortController is
    // the most expensive thing a lease would otherwise allocate.
    if (!this._ac) {
      this._ac = new AbortController();
      if (this._abortReason) this._ac.abort(this._abortReason);
    }
    return this._ac.signal;
  }

  /** Logger scoped to this lease: every record carries leaseId, taskId and capability. */
  get log() {
    if (!this._log) {
      const base = this._host.logger ?? silentLogger;
      const scope = { leaseId: this.leaseId, taskId: this.task?.taskId, capability: this.task?.type };
      const log = /** @type {any} */ ({});
      for (const level of LEVELS) {
        log[level] = (/** @type {any} */ meta, /** @type {string | undefined} */ msg) => {
          try {
            if (typeof meta === 'string' && msg === undefined) base[level]({ ...scope }, meta);
            else base[level]({ ...scope, ...(isObject(meta) ? meta : { value: meta }) }, msg);
          } catch {
            /* a logger that throws must not fail the lease */
          }
        };
      }
      this._log = log;
    }
    return this._log;
  }

  /**
   * Report progress; never blocks, never throws. Newer fields win when the
   * SDK merges updates into one pending POST.
   * @param {{ percent?: number, message?: string, data?: unknown }} update
   */
  progress(update) {
    try {
      if (this._done || !isObject(update)) return;
      this._host.progress(this, update);
    } catch {
      /* progress never throws */
    }
  }

  /**
   * Terminal failure: ends the lease with nack(kind='terminal'). Never returns.
   * @param {string} reason @param {{ code?: string }} [opts]
   * @returns {never}
   */
  fail(reason, opts) {
    // Whatever it is given (a revoked Proxy, a getter that throws), fail()
    // ends the lease terminally.
    let code;
    try {
      code = typeof opts?.code === 'string' ? opts.code : undefined;
    } catch {
      code = undefined;
    }
    throw new TaskFailure(typeof reason === 'string' ? reason : messageOf(reason), code);
  }

  /** @internal @param {string} reason */
  _abort(reason) {
    if (this._abortReason) return;
    this._abortReason = new DOMException(reason, 'AbortError');
    if (this._ac) this._ac.abort(this._abortReason);
  }
}

/**
 * Runs ctx's handler: input check (zod), the handler, output check, then one
 * completion through the host.
 * @param {RunnerHost} host @param {HandlerContext} ctx
 */
export function run(host, ctx) {
  // stop() came after the core started this lease but before its handler
  // ran (a handler of the same batch called it): it ends like a queued lease.
  if (host.stopCalled) {
    host.done(ctx, RESULT.threw, 'neuron is shutting down', 'SHUTTING_DOWN', '');
    return;
  }
  const cap = ctx._cap;
  if (!cap.input) {
    invoke(host, ctx, ctx._input);
    return;
  }
  let checked;
  try {
    checked = zodCheck(cap.input, ctx._input);
  } catch (err) {
    host.done(ctx, RESULT.threw, `input validation threw: ${messageOf(err)}`, '', '');
    return;
  }
  if (checked instanceof Promise) {
    checked.then((c) => afterInputCheck(host, ctx, c), (err) => host.done(ctx, RESULT.threw, `input validation threw: ${messageOf(err)}`, '', ''));
  } else {
    afterInputCheck(host, ctx, checked);
  }
}

/** @param {RunnerHost} host @param {HandlerContext} ctx @param {any} checked */
function afterInputCheck(host, ctx, checked) {
  if (!checked.ok) {
    host.done(ctx, RESULT.inputInvalid, 'input does not match the capability schema', '', errorsText(checked.errors));
    return;
  }
  invoke(host, ctx, checked.data);
}

/** @param {RunnerHost} host @param {HandlerContext} ctx @param {unknown} input */
function invoke(host, ctx, input) {
  // Aborted before it ran (cancelled, revoked, stop() without drain, also
  // while an async zod check was pending): the handler is never called.
  if (ctx._abortReason) {
    host.done(ctx, RESULT.threw, ctx._abortReason.message, '', '');
    return;
  }
  let out;
  try {
    out = ctx._cap.handler(input, ctx);
  } catch (err) {
    threw(host, ctx, err);
    return;
  }
  settle(host, ctx, out);
}

/**
 * Promise semantics for what a handler gave back, as soon as it is known:
 * `then` is read once, a getter or a then() that throws is a rejection, a
 * thenable that resolves to a thenable is followed. A plain value (most
 * handlers) and a then() that throws at once settle the lease now, not a
 * microtask later.
 * @param {RunnerHost} host @param {HandlerContext} ctx @param {unknown} out
 */
function settle(host, ctx, out) {
  /** @type {unknown} */
  let then;
  if (out !== null && (typeof out === 'object' || typeof out === 'function')) {
    try {
      then = /** @type {any} */ (out).then;
    } catch (err) {
      threw(host, ctx, err);
      return;
    }
  }
  if (typeof then !== 'function') {
    returned(host, ctx, out);
    return;
  }
  let settled = false;
  const resolve = (/** @type {unknown} */ v) => {
    if (settled) return;
    settled = true;
    if (v === out) threw(host, ctx, new TypeError('the handler returned a thenable that resolved with itself'));
    else settle(host, ctx, v);
  };
  const reject = (/** @type {unknown} */ e) => {
    if (settled) return;
    settled = true;
    threw(host, ctx, e);
  };
  try {
    /** @type {Function} */ (then).call(out, resolve, reject);
  } catch (err) {
    reject(err);
  }
}

/** @param {RunnerHost} host @param {HandlerContext} ctx @param {unknown} value */
function returned(host, ctx, value) {
  if (ctx._done) return;
  const output = ctx._cap.output;
  if (!output) {
    host.returned(ctx, value);
    return;
  }
  let checked;
  try {
    checked = zodCheck(output, value);
  } catch (err) {
    host.done(ctx, RESULT.threw, `output validation threw: ${messageOf(err)}`, '', '');
    return;
  }
  const after = (/** @type {any} */ c) => {
    if (c.ok) host.returned(ctx, c.data);
    else host.done(ctx, RESULT.outputInvalid, 'output does not match the capability schema', '', errorsText(c.errors));
  };
  if (checked instanceof Promise) {
    checked.then(after, (err) => host.done(ctx, RESULT.threw, `output validation threw: ${messageOf(err)}`, '', ''));
  } else {
    after(checked);
  }
}

/** @param {RunnerHost} host @param {HandlerContext} ctx @param {unknown} err */
function threw(host, ctx, err) {
  if (isTaskFailure(err)) {
    const f = /** @type {TaskFailure} */ (err);
    host.done(ctx, RESULT.failed, f.message, f.code ?? '', '');
  } else {
    host.done(ctx, RESULT.threw, messageOf(err), '', '');
  }
}

/** @param {{ path: string, message: string }[]} errors */
function errorsText(errors) {
  let s = '';
  for (const e of errors) s += (s ? US : '') + e.path.replace(/\x1f/g, '?') + US + e.message.replace(/\x1f/g, '?');
  return s;
}

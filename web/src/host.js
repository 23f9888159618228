// The host of one core: it feeds the core what happened and plays the tapes
// the core answers with (emscripten/library_neuron.js knows their format).
//
//   - What happens (stream bytes, frames, POST answers, handler outputs) goes
//     into the core's inbox; the inbox is flushed once per turn of the event
//     loop, so a chunk of 64 leases, their 64 outputs and the 64 answers cost
//     three calls into wasm, not 192.
//   - Each tape is played in order: events are emitted, streams and POSTs go
//     to the carrier, handlers are started (after every tape so far has
//     played: a stop(), cancel or revocation reaches its lease first), one
//     timer stays armed to the core's next deadline.
//   - Commands (start, stop, a handler that threw...) are embind calls; the
//     inbox is flushed before each, so the core sees everything in order.

import { errorFromCore, messageOf } from './errors.js';
import { HandlerContext, run } from './handlers.js';
import { makeClock } from './clock.js';
import { isPlainJson } from './schema-fast.js';

const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long stop() waits for a transport's own stop() after the core has settled. */
const TRANSPORT_STOP_GRACE_MS = 1000;
const LEVELS = /** @type {const} */ (['debug', 'info', 'warn', 'error']);
/** The PostPath of an ack (emscripten/library_neuron.js, `paths`). */
const ACK_PATH = '/neuron/ack';

export const now = makeClock();

/**
 * `str` as a JSON string literal, spelled as the core's frames spell one
 * (frames.cpp, put_escape): JSON.stringify's, but \u0008 and \u000c for its
 * \b and \f. `str` must be well-formed (no lone surrogate).
 * @param {string} str
 */
export function jsonLikeCore(str) {
  return JSON.stringify(str).replace(/\\(.)/g, (esc, c) => (c === 'b' ? '\\u0008' : c === 'f' ? '\\u000c' : esc));
}

/**
 * Whether a handler output's JSON (JSON.stringify's text, of an output no
 * schema checks) goes into its ack as it is, as the core would write it:
 * shorter than 514 characters, it nests at most 256 levels (the core's
 * limit: each level takes two brackets), and without a `\ud` in it, it
 * holds no lone surrogate escape (which the core writes as U+FFFD; a `\\ud`
 * of an escaped backslash is taken for one: the core then writes it).
 * @param {string} json
 */
function writesAsIs(json) {
  return json.length < 514 && !json.includes('\\ud');
}

/**
 * A string the core can take through embind: lone UTF-16 surrogates (a
 * string cut inside an emoji) become U+FFFD, as TextEncoder would make them.
 * @param {string} str
 */
export const wellFormed = typeof ''.isWellFormed === 'function'
  ? (/** @type {string} */ str) => (str.isWellFormed() ? str : str.toWellFormed())
  : toWellFormed;

/**
 * String.prototype.toWellFormed for engines without it (no regex lookbehind:
 * that is a parse-time SyntaxError where lookbehind is missing too).
 * @param {string} str
 */
function toWellFormed(str) {
  let out = '';
  let from = 0;
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < str.length) {
      const d = str.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    out += str.slice(from, i) + '\uFFFD';
    from = i + 1;
  }
  return from === 0 ? str : out + str.slice(from);
}

/**
 * Calls logger[level](meta, msg), ignoring whatever the logger throws: a
 * broken logger must never break the neuron.
 * @param {any} logger @param {string} level @param {unknown} meta @param {string} [msg]
 */
export function safeLog(logger, level, meta, msg) {
  try {
    logger?.[level](meta, msg);
  } catch {
    /* ignored */
  }
}

/** `sentAt` stamps: acks of one millisecond share one string. */
let isoMs = NaN;
let isoText = '';
/**
 * A stamp as the core writes one (src/neuron/iso_time.cpp): clamped to the
 * years 0000 to 9999, so every stamp has the same width (toISOString would
 * write "+010000-..." past them, and throw past ±8.64e15 ms).
 * @param {number} ms
 */
export function iso(ms) {
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(Math.min(Math.max(ms, -62167219200000), 253402300799999)).toISOString();
  }
  return isoText;
}

/**
 * What the host needs of its Neuron.
 * @typedef {{
 *   _emit(event: string, ...args: any[]): void,
 *   listenerCount(event: string): number,
 *   _startSettled(err: Error | null): void,
 *   _stopSettled(): void,
 * }} HostOwner
 */

/**
 * @typedef {{ type: string, handler: Function, input: any, output: any, inputSchema: string, outputSchema: string }} Cap
 */

export class Host {
  /**
   * @param {HostOwner} owner @param {any} Module @param {any} core
   * @param {{ neuronId: string, logger: any, caps: Cap[], buildsAcks: boolean }} opts
   */
  constructor(owner, Module, core, opts) {
    this.owner = owner;
    this.boundary = Module.boundary;
    this.core = core;
    this.port = this.boundary.port(core);
    this.neuronId = opts.neuronId;
    /** the neuron id as the core's frames spell it */
    this.neuronIdJson = jsonLikeCore(wellFormed(opts.neuronId));
    this.logger = opts.logger;
    this.caps = opts.caps;
    /** The carrier takes frames as objects: the first ack is built here (Post.host_ack). */
    this.buildsAcks = opts.buildsAcks;
    /** @type {any} set by the Neuron once made (it needs this host) */
    this.carrier = null;
    /** @type {Map<number, { frame: any, leaseId: string }>} leases given as fields (the frame, its id as the core took it), by host ref, until they start or are let go */
    this.tasks = new Map();
    this.nextRef = 0;
    /** @type {Map<number, HandlerContext>} handlers whose output (ctx._output) the ack built here carries */
    this.outputs = new Map();
    /** @type {Map<number, string>} the JSON of outputs whose acks are written here (postHostJson) */
    this.outputJson = new Map();
    /** @type {Map<number, HandlerContext>} handlers started and not done, by handler id */
    this.running = new Map();
    /**
     * Capability types whose input the core checks, each with the fast check
     * that can vouch for a value (schema-fast.js; null: the core needs the
     * JSON of every value).
     * @type {Map<string, ((v: unknown) => boolean) | null>}
     */
    this.checkedInput = new Map();
    /** @type {Map<string, ((v: unknown) => boolean) | null>} the same for outputs */
    this.checkedOutput = new Map();
    /** @type {any[]} tapes not played yet */
    this.tapes = [];
    /** @type {HandlerContext[]} handlers to run once the tapes are played */
    this.toRun = [];
    this.toRunAt = 0;
    this.playing = false;
    this.kicked = false;
    this.stopped = false;
    /** stop() was called: handlers not run yet never will be */
    this.stopCalled = false;
    this.onKick = () => {
      this.kicked = false;
      this.run();
    };
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.timer = null;
    this.timerAt = Infinity;
    this.onTimer = () => {
      this.timer = null;
      this.timerAt = Infinity;
      if (this.stopped) return;
      this.queueInbox();
      this.tapes.push(this.port.timeout(now()));
      this.run();
    };
  }

  // ------------------------------------------------------------ the loop --

  /** The inbox's tape, queued to play after what is queued already. */
  queueInbox() {
    if (this.port.waiting()) this.tapes.push(this.port.flush(now()));
  }

  /**
   * Plays every tape, runs the handlers they started, and flushes what that
   * put in the inbox, until nothing is left. Re-entrant calls (a listener or
   * a handler calling in) return at once: the running loop takes their work.
   */
  run() {
    if (this.playing) return;
    this.playing = true;
    try {
      for (;;) {
        const tape = this.tapes.shift();
        if (tape !== undefined) {
          this.boundary.play(tape, this);
          continue;
        }
        if (this.toRunAt < this.toRun.length) {
          const ctx = this.toRun[this.toRunAt++];
          run(this, ctx);
          continue;
        }
        if (this.toRunAt) {
          this.toRun.length = 0;
          this.toRunAt = 0;
        }
        if (this.port.waiting()) {
          this.tapes.push(this.port.flush(now()));
          continue;
        }
        break;
      }
    } finally {
      this.playing = false;
    }
  }

  /** Flushes the inbox in a microtask: inputs of one turn share one call. */
  kick() {
    if (this.kicked || this.playing) return;
    this.kicked = true;
    queueMicrotask(this.onKick);
  }

  /**
   * Runs an embind command after everything already in the inbox; returns
   * [code, message] if the core refused it.
   * @param {() => number} call
   * @returns {[string, string] | null}
   */
  command(call) {
    this.queueInbox();
    const tape = this.port.tape(call());
    this.tapes.push(tape);
    const failed = this.boundary.failed(tape);
    this.run();
    return failed;
  }

  // ------------------------------------------------------- inputs (carrier) --

  /** @param {number} id @param {Uint8Array} chunk */
  streamBytes(id, chunk) {
    this.port.bytes(id, chunk);
    this.run();
  }

  /** @param {number} id @param {string} json */
  streamFrame(id, json) {
    this.port.frame(id, json);
    this.kick();
  }

  /**
   * A lease frame a transport delivered as an object: the core gets its ids,
   * the frame stays here (the handler's task, the `frame` event).
   * @param {number} id @param {any} frame
   */
  leaseObject(id, frame) {
    const task = frame.task;
    const hasTask = task !== null && typeof task === 'object' && !Array.isArray(task);
    const type = hasTask && typeof task.type === 'string' ? task.type : '';
    let input = null;
    let vouched = false;
    if (hasTask && this.checkedInput.has(type) && 'input' in task) {
      const fast = this.checkedInput.get(type);
      if (fast && fast(task.input)) {
        vouched = true;  // certainly valid: the core needs no JSON
      } else {
        try {
          input = JSON.stringify(task.input) ?? 'null';
        } catch {
          input = 'null';  // not JSON: the schema check fails it as null
        }
      }
    }
    const ref = this.nextRef = this.nextRef >= 0x7fffffff ? 1 : this.nextRef + 1;
    const leaseId = typeof frame.leaseId === 'string' ? frame.leaseId : '';
    // The lease id as the core took it: the tape does not bring it back.
    this.tasks.set(ref, { frame, leaseId });
    this.port.lease(id, ref, hasTask, leaseId, hasTask && typeof task.taskId === 'string' ? task.taskId : '', type, input, vouched);
    this.kick();
  }

  /** @param {number} id @param {number} status @param {string} body */
  postResult(id, status, body) {
    this.port.result(id, status, body);
    this.kick();
  }

  /** @param {number} id */
  postReleased(id) {
    this.port.released(id);
    this.kick();
  }

  /** @param {number} id @param {number} status @param {boolean} ok */
  streamOpened(id, status, ok) {
    this.command(() => this.core.streamOpened(now(), id, status, ok));
  }

  /** @param {number} id @param {string} reason */
  streamClosed(id, reason) {
    this.command(() => this.core.streamClosed(now(), id, wellFormed(reason)));
  }

  /** @param {Error} err */
  emitError(err) {
    this.owner._emit('error', err);
  }

  /** @param {{ attempt: number, delayMs: number, reason: string }} info */
  emitReconnecting(info) {
    this.owner._emit('connection:reconnecting', info);
  }

  reconnectNow() {
    this.command(() => this.core.reconnectNow(now()));
  }

  // ------------------------------------------------------ inputs (handlers) --

  /** @param {HandlerContext} ctx @param {unknown} value */
  returned(ctx, value) {
    if (ctx._done) return;
    // Where the core checks the output against a schema, the fast check may
    // vouch for it (schema-fast.js; it vouches only for plain JSON, so one
    // walk over the value tells both).
    const fast = this.checkedOutput.get(ctx._cap.type);
    const vouched = !!fast && fast(value);
    // What the core is told (library_neuron.js, port.returned): 2, a
    // transport that takes objects gets the value itself in every attempt of
    // the ack and no JSON of it is made (nothing checks it, or the fast check
    // vouched); 1, the same for the first attempt, the JSON for the rest;
    // 2 + 8, the byte path's JSON, kept here for the ack JSON written here
    // (postHostJson), so it never crosses into the core: when the fast check
    // vouched for it or nothing checks it, and it writesAsIs (the fast check
    // and JSON.stringify each read the value: a getter may answer each
    // differently); 4, the vouched JSON the core need not check against its
    // schema again; 0, JSON for the core to check and encode. (An output no ack
    // takes, a lost lease's, is let go on releaseOutput.)
    let flags = 0;
    let text = '';
    if (this.buildsAcks && (fast === undefined ? isPlainJson(value) : vouched)) {
      flags = 2;
    } else {
      try {
        text = JSON.stringify(value === undefined ? null : value) ?? 'null';
      } catch (err) {
        // A BigInt, a cycle: no retry would change that.
        this.done(ctx, 2, `handler output is not JSON-serialisable: ${messageOf(err)}`, 'INVALID_OUTPUT', '');
        return;
      }
      // Not plain JSON when the walk above said so; only a value the fast
      // check turned down for its schema is walked again.
      if (this.buildsAcks) flags = fast !== undefined && isPlainJson(value) ? 1 : 0;
      else if ((vouched || fast === undefined) && writesAsIs(text)) {
        flags = 10;
      } else if (vouched) {
        flags = 4;  // the core need not check it against its schema again
      }
    }
    ctx._done = true;
    this.running.delete(ctx._hid);
    if (this.stopped) return;
    if (flags & 8) {
      this.outputJson.set(ctx._hid, text);  // only the text: the context and its task are let go now
    } else if (flags & 3) {
      ctx._output = value === undefined ? null : value;
      this.outputs.set(ctx._hid, ctx);
    }
    this.port.returned(ctx._hid, flags & 8 ? '' : text, flags);
    if (!this.playing) this.kick();
  }

  /**
   * @param {HandlerContext} ctx @param {number} result @param {string} reason
   * @param {string} code @param {string} errors
   */
  done(ctx, result, reason, code, errors) {
    if (ctx._done) return;
    ctx._done = true;
    const hid = ctx._hid;
    this.running.delete(hid);
    if (this.stopped) return;
    this.command(() => this.core.handlerDone(now(), hid, result, wellFormed(reason), wellFormed(code), wellFormed(errors)));
  }

  /** @param {HandlerContext} ctx @param {{ percent?: number, message?: string, data?: unknown }} u */
  progress(ctx, u) {
    if (this.stopped) return;
    const percent = typeof u.percent === 'number' && Number.isFinite(u.percent) ? u.percent : NaN;
    const hasMessage = typeof u.message === 'string';
    let data = '';
    if (u.data !== undefined) {
      try {
        data = JSON.stringify(u.data) ?? '';
      } catch {
        data = '';
      }
    }
    this.command(() => this.core.progress(now(), ctx._hid, percent, hasMessage, hasMessage ? wellFormed(/** @type {string} */ (u.message)) : '', data !== '', data));
  }

  // ---------------------------------------------------- the tape: actions --

  /** @param {number} at ms since the epoch, or -1 for none */
  deadline(at) {
    // Once stop() has settled the core holds no timer (its fuzzer checks
    // that), and neither does the host: a deadline still on a tape queued
    // before it arms nothing. (A timer left after stop() was seen once in the
    // property run, set from a tape played after the stop settled.)
    if (at < 0 || this.stopped) {
      this.clearTimer();
      return;
    }
    // Keep an earlier timer: when it fires the core just reports the real
    // deadline again. Re-arming on every tape would cost a clearTimeout +
    // setTimeout per lease.
    if (this.timer !== null && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = setTimeout(this.onTimer, Math.min(MAX_TIMER_MS, Math.max(0, at - now())));
  }

  clearTimer() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  /**
   * @param {number} hid @param {number} index @param {string | null} leaseId (null for a lease given as fields)
   * @param {string | null} taskJson @param {number} ref
   * @param {string | null} inputJson the task's input (null: it has none, or the lease was given as fields)
   */
  startHandler(hid, index, leaseId, taskJson, ref, inputJson) {
    let ctx;
    if (ref) {
      const given = this.tasks.get(ref);
      const task = given?.frame.task;
      this.tasks.delete(ref);
      ctx = new HandlerContext(this, hid, given?.leaseId ?? '', task, this.caps[index], task?.input, null);
    } else if (inputJson !== null) {
      // Only the input is parsed now: the task, only if the handler reads ctx.task.
      ctx = new HandlerContext(this, hid, /** @type {string} */ (leaseId), null, this.caps[index], JSON.parse(inputJson), taskJson);
    } else {
      const task = JSON.parse(/** @type {string} */ (taskJson));
      ctx = new HandlerContext(this, hid, /** @type {string} */ (leaseId), task, this.caps[index], undefined, null);
    }
    this.running.set(hid, ctx);
    this.toRun.push(ctx);  // run once the tapes are played
  }

  /** @param {number} ref */
  releaseTask(ref) {
    this.tasks.delete(ref);
  }

  /** @param {number} hid */
  releaseOutput(hid) {
    this.outputs.delete(hid);
    this.outputJson.delete(hid);
  }

  /** @param {number} hid @param {string} reason */
  abortHandler(hid, reason) {
    this.running.get(hid)?._abort(reason);
  }

  /** @param {number} id @param {string} path */
  openStream(id, path) {
    this.carrier.openStream(id, path);
  }

  /** @param {number} id */
  closeStream(id) {
    this.carrier.closeStream(id);
  }

  /**
   * @param {number} id @param {string} path @param {string} body @param {number} answerBytes
   * @param {boolean} readsSuccessBody
   */
  post(id, path, body, answerBytes, readsSuccessBody) {
    if (!this.stopped) this.carrier.post(id, path, body, answerBytes, readsSuccessBody);
  }

  /**
   * A lease's first ack, built here from the handler's own output.
   * @param {number} id @param {number} hid @param {number} sentAt @param {number} durationMs
   * @param {number} answerBytes
   */
  postHostAck(id, hid, sentAt, durationMs, answerBytes) {
    const kept = this.outputs.get(hid);  // let go of on releaseOutput, which the core sends after this
    if (!kept) {
      // Never expected; the core sends the frame itself on the retry.
      this.postResult(id, 0, '');
      return;
    }
    const frame = { type: 'ack', neuronId: this.neuronId, sentAt: iso(sentAt), leaseId: kept.leaseId, taskId: kept.task?.taskId, output: kept._output, durationMs };
    this.carrier.postFrame(id, ACK_PATH, frame, answerBytes);
  }

  /**
   * A lease's ack written here as JSON around the output's JSON kept here,
   * with the ids as the core read them (JSON string literals), in the
   * order and spelling of the core's frames (frames.cpp, encode_ack).
   * @param {number} id @param {number} hid @param {number} sentAt @param {number} durationMs
   * @param {number} answerBytes @param {string} leaseIdJson @param {string} taskIdJson
   */
  postHostJson(id, hid, sentAt, durationMs, answerBytes, leaseIdJson, taskIdJson) {
    const kept = this.outputJson.get(hid);  // let go of on releaseOutput, once the ack has settled
    if (kept === undefined) {
      // Never expected: reported as a failed request.
      this.postResult(id, 0, 'neuron-sdk internal error: the output of this ack is gone');
      return;
    }
    this.post(id, ACK_PATH, `{"type":"ack","neuronId":${this.neuronIdJson},"sentAt":"${iso(sentAt)}","leaseId":${leaseIdJson
    },"taskId":${taskIdJson},"output":${kept},"durationMs":${durationMs}}`, answerBytes, false);
  }

  /** @param {number} id */
  abortPost(id) {
    this.carrier.abortPost(id);
  }

  // ----------------------------------------------------- the tape: events --

  open() { this.owner._emit('connection:open'); }

  /** @param {string} sessionId @param {number} capabilities */
  registered(sessionId, capabilities) { this.owner._emit('connection:registered', { sessionId, capabilities }); }

  /** @param {string} reason */
  close(reason) { this.owner._emit('connection:close', reason); }

  /** @param {number} attempt @param {number} delayMs @param {string} reason */
  reconnecting(attempt, delayMs, reason) { this.owner._emit('connection:reconnecting', { attempt, delayMs, reason }); }

  /** @param {string} code @param {string} message @param {number} status */
  error(code, message, status) { this.owner._emit('error', errorFromCore(code, message, status)); }

  /** @param {string | null} json @param {number} ref */
  frame(json, ref) {
    if (this.owner.listenerCount('frame') === 0) return;
    this.owner._emit('frame', json === null ? this.tasks.get(ref)?.frame : JSON.parse(json));
  }

  /** @param {number} level @param {string} msg @param {string} meta */
  log(level, msg, meta) {
    if (this.logger) safeLog(this.logger, LEVELS[level] ?? 'info', JSON.parse(meta), msg);
  }

  /** @param {string} code @param {string} message @param {number} status */
  startSettled(code, message, status) {
    this.owner._startSettled(code ? errorFromCore(code, message, status) : null);
  }

  stopSettled() {
    this.stopped = true;
    this.clearTimer();
    for (const ctx of this.running.values()) ctx._abort('shutting down');
    this.running.clear();
    this.tasks.clear();
    this.outputs.clear();
    this.outputJson.clear();
    this.owner._stopSettled();
  }

  /**
   * A tape record threw (the rest of the tape still played): a bug of the
   * SDK or of a user-supplied fetch / transport; reported as `error`.
   * @param {unknown} err
   */
  failedRecord(err) {
    this.owner._emit('error', errorFromCore('internal', `neuron-sdk: ${messageOf(err)}`));
  }

  /**
   * The carrier stopped (a transport's stop() may take its time): resolves
   * by TRANSPORT_STOP_GRACE_MS at the latest, saying so if it overran.
   * @returns {Promise<void>}
   */
  disposeCarrier() {
    const stopped = this.carrier.dispose();
    if (!stopped) return Promise.resolve();
    return new Promise((resolve) => {
      // stop() ends by its deadline (rule 12) also when a transport's stop()
      // never settles (an Electron main process that is gone).
      const timer = setTimeout(() => {
        this.owner._emit('error', errorFromCore('transport-stop-timeout',
          `the transport's stop() did not settle within ${TRANSPORT_STOP_GRACE_MS} ms; Neuron.stop() resolved without waiting for it`));
        resolve();
      }, TRANSPORT_STOP_GRACE_MS);
      stopped.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

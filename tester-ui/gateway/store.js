// Task store on SQLite (better-sqlite3 12).
//
// States: pending -> leased -> done | failed | cancelled   (leased -> pending on retry/expiry/drop)
// `attempt` counts deliveries: it is incremented each time a lease is handed out, so the first
// lease carries attempt 1 and a redelivery attempt + 1. A delivery the neuron declined without
// running it (nack retryable SHUTTING_DOWN / CAPABILITY_REVOKED / NO_HANDLER before any heartbeat
// or progress reported it running) is taken back: attempt - 1, history event 'declined'.
// A lease is bound to the neuronId and the identity (principal) it was handed to; `started` is set
// once a heartbeat (inFlight) or a progress POST reports it running.
// Every state change runs in one transaction and is guarded by `state = 'leased' AND lease_id = ?`,
// so a task ends exactly once; a late ack/nack finds no row and changes nothing.
// task_history keeps one row per event; exactly one 'ended' row per finished task.

// @ts-ignore -- better-sqlite3 ships no types and @types/better-sqlite3 is not a dependency
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';

/**
 * @typedef {'pending'|'leased'|'done'|'failed'|'cancelled'} TaskState
 * @typedef {{
 *   taskId: string, type: string, state: TaskState, input: unknown, onBehalfOf: string|null,
 *   workflowId: string|null, metadata: unknown, attempt: number, maxAttempts: number,
 *   leaseId: string|null, neuronId: string|null, leaseExpiresAt: string|null, started: boolean,
 *   cancelRequested: boolean, cancelReason: string|null, output: unknown,
 *   nack: { kind: string, reason: string|null, code: string|null, errors: unknown } | null,
 *   progress: { percent?: number, message?: string, data?: unknown, at: string } | null,
 *   createdAt: string, updatedAt: string, finishedAt: string|null
 * }} Task
 */

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL UNIQUE,
  type TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending','leased','done','failed','cancelled')),
  input_json TEXT NOT NULL,
  on_behalf_of TEXT,
  workflow_id TEXT,
  metadata_json TEXT,
  attempt INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  lease_id TEXT UNIQUE,
  neuron_id TEXT,
  lease_expires_at INTEGER,
  lease_principal TEXT,
  started INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  cancel_reason TEXT,
  output_json TEXT,
  nack_kind TEXT,
  nack_reason TEXT,
  nack_code TEXT,
  nack_errors_json TEXT,
  progress_json TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (state, type, seq);
CREATE INDEX IF NOT EXISTS tasks_pending_obo ON tasks (state, type, on_behalf_of, seq);
CREATE INDEX IF NOT EXISTS tasks_neuron ON tasks (neuron_id, state);
CREATE INDEX IF NOT EXISTS tasks_expiry ON tasks (state, lease_expires_at);
CREATE TABLE IF NOT EXISTS task_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  event TEXT NOT NULL,
  lease_id TEXT,
  neuron_id TEXT,
  detail_json TEXT
);
CREATE INDEX IF NOT EXISTS task_history_task ON task_history (task_id, id);
`;

/** Retryable nack codes with which the SDK declines a lease without running it (PROTOCOL 3.3, 3.9, 3.12). */
export const DECLINE_CODES = new Set(['SHUTTING_DOWN', 'CAPABILITY_REVOKED', 'NO_HANDLER']);

const iso = (/** @type {number|null|undefined} */ ms) => (ms == null ? null : new Date(ms).toISOString());
const parse = (/** @type {string|null} */ s) => (s == null ? null : JSON.parse(s));
const json = (/** @type {unknown} */ v) => (v === undefined ? null : JSON.stringify(v));

/** @param {any} r @returns {Task} */
function toTask(r) {
  return {
    taskId: r.task_id,
    type: r.type,
    state: r.state,
    input: parse(r.input_json),
    onBehalfOf: r.on_behalf_of,
    workflowId: r.workflow_id,
    metadata: parse(r.metadata_json),
    attempt: r.attempt,
    maxAttempts: r.max_attempts,
    leaseId: r.lease_id,
    neuronId: r.neuron_id,
    leaseExpiresAt: iso(r.lease_expires_at),
    started: !!r.started,
    cancelRequested: !!r.cancel_requested,
    cancelReason: r.cancel_reason,
    output: parse(r.output_json),
    nack: r.nack_kind
      ? { kind: r.nack_kind, reason: r.nack_reason, code: r.nack_code, errors: parse(r.nack_errors_json) }
      : null,
    progress: parse(r.progress_json),
    createdAt: /** @type {string} */ (iso(r.created_at)),
    updatedAt: /** @type {string} */ (iso(r.updated_at)),
    finishedAt: iso(r.finished_at),
  };
}

export class TaskStore {
  /**
   * @param {{ dataFile?: string, maxAttempts?: number }} [opts]
   */
  constructor(opts = {}) {
    this.dataFile = opts.dataFile ?? ':memory:';
    this.maxAttempts = opts.maxAttempts ?? 5;
    this.db = new Database(this.dataFile);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this._migrate();
    this.db.exec(SCHEMA);
    const db = this.db;
    this.q = {
      insert: db.prepare(`INSERT INTO tasks (task_id, type, state, input_json, on_behalf_of, workflow_id, metadata_json,
        max_attempts, created_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)`),
      get: db.prepare(`SELECT * FROM tasks WHERE task_id = ?`),
      byLease: db.prepare(`SELECT * FROM tasks WHERE lease_id = ? AND state = 'leased'`),
      hist: db.prepare(`INSERT INTO task_history (task_id, at, event, lease_id, neuron_id, detail_json) VALUES (?, ?, ?, ?, ?, ?)`),
      history: db.prepare(`SELECT * FROM task_history WHERE task_id = ? ORDER BY id`),
      lease: db.prepare(`UPDATE tasks SET state = 'leased', lease_id = ?, neuron_id = ?, lease_principal = ?, started = 0,
        lease_expires_at = ?, attempt = attempt + 1, updated_at = ? WHERE task_id = ? AND state = 'pending' RETURNING *`),
      finish: db.prepare(`UPDATE tasks SET state = @state, lease_expires_at = NULL, output_json = @output,
        nack_kind = @nackKind, nack_reason = @nackReason, nack_code = @nackCode, nack_errors_json = @nackErrors,
        updated_at = @now, finished_at = @now
        WHERE task_id = @taskId AND state = 'leased' AND lease_id = @leaseId RETURNING *`),
      requeue: db.prepare(`UPDATE tasks SET state = 'pending', lease_id = NULL, neuron_id = NULL, lease_expires_at = NULL,
        lease_principal = NULL, started = 0, attempt = attempt - @undo, nack_kind = @nackKind, nack_reason = @nackReason, nack_code = @nackCode, nack_errors_json = @nackErrors, updated_at = @now
        WHERE task_id = @taskId AND state = 'leased' AND lease_id = @leaseId RETURNING *`),
      renew: db.prepare(`UPDATE tasks SET lease_expires_at = ?, started = 1, updated_at = ?
        WHERE state = 'leased' AND neuron_id = ? AND (lease_principal IS NULL OR lease_principal = ?)
        AND lease_id IN (SELECT value FROM json_each(?)) RETURNING lease_id`),
      progress: db.prepare(`UPDATE tasks SET progress_json = ?, started = 1, updated_at = ?
        WHERE state = 'leased' AND lease_id = ? AND neuron_id = ? AND (lease_principal IS NULL OR lease_principal = ?) RETURNING *`),
      leasedBy: db.prepare(`SELECT * FROM tasks WHERE state = 'leased' AND neuron_id = ? ORDER BY seq`),
      countLeased: db.prepare(`SELECT count(*) AS n FROM tasks WHERE state = 'leased' AND neuron_id = ? AND type = ?`),
      expired: db.prepare(`SELECT * FROM tasks WHERE state = 'leased' AND lease_expires_at <= ? ORDER BY seq`),
      allLeased: db.prepare(`SELECT * FROM tasks WHERE state = 'leased' ORDER BY seq`),
      pendingPage: db.prepare(`SELECT * FROM tasks WHERE state = 'pending' AND type = ? AND seq > ? ORDER BY seq LIMIT ?`),
      pendingPageFor: db.prepare(`SELECT * FROM tasks WHERE state = 'pending' AND type = ? AND seq > ?
        AND on_behalf_of IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?`),
      pendingTypes: db.prepare(`SELECT DISTINCT type FROM tasks WHERE state = 'pending'`),
      cancelPending: db.prepare(`UPDATE tasks SET state = 'cancelled', cancel_requested = 1, cancel_reason = ?, updated_at = ?,
        finished_at = ? WHERE task_id = ? AND state = 'pending' RETURNING *`),
      markCancel: db.prepare(`UPDATE tasks SET cancel_requested = 1, cancel_reason = ?, updated_at = ?
        WHERE task_id = ? AND state = 'leased' RETURNING *`),
    };
  }

  close() {
    if (this.db.open) this.db.close();
  }

  /** Add the columns later versions introduced to a data file written by an earlier one. */
  _migrate() {
    const cols = new Set(this.db.prepare(`SELECT name FROM pragma_table_info('tasks')`).all().map((/** @type {any} */ r) => r.name));
    if (!cols.size) return; // fresh file: SCHEMA creates everything
    if (!cols.has('lease_principal')) this.db.exec(`ALTER TABLE tasks ADD COLUMN lease_principal TEXT`);
    if (!cols.has('started')) this.db.exec(`ALTER TABLE tasks ADD COLUMN started INTEGER NOT NULL DEFAULT 0`);
  }

  /** @param {string} taskId @param {string} event @param {string|null} leaseId @param {string|null} neuronId @param {unknown} [detail] */
  _hist(taskId, event, leaseId, neuronId, detail) {
    this.q.hist.run(taskId, Date.now(), event, leaseId, neuronId, json(detail));
  }

  /**
   * @param {{ type: string, input?: unknown, onBehalfOf?: string|null, workflowId?: string|null, metadata?: unknown, maxAttempts?: number }} t
   * @returns {Task}
   */
  enqueue(t) {
    const taskId = `task-${randomUUID()}`;
    const now = Date.now();
    return this.db.transaction(() => {
      this.q.insert.run(taskId, t.type, JSON.stringify(t.input ?? null), t.onBehalfOf ?? null, t.workflowId ?? null,
        json(t.metadata), t.maxAttempts ?? this.maxAttempts, now, now);
      this._hist(taskId, 'enqueued', null, null);
      return toTask(this.q.get.get(taskId));
    })();
  }

  /** @param {string} taskId @returns {Task|null} */
  get(taskId) {
    const r = this.q.get.get(taskId);
    return r ? toTask(r) : null;
  }

  /** @param {string} taskId */
  history(taskId) {
    return this.q.history.all(taskId).map((/** @type {any} */ r) => ({
      at: iso(r.at), event: r.event, leaseId: r.lease_id, neuronId: r.neuron_id, detail: parse(r.detail_json),
    }));
  }

  /**
   * @param {{ state?: string, type?: string, limit?: number }} [f]
   * @returns {Task[]}
   */
  list(f = {}) {
    const where = [];
    /** @type {unknown[]} */
    const args = [];
    if (f.state) { where.push('state = ?'); args.push(f.state); }
    if (f.type) { where.push('type = ?'); args.push(f.type); }
    const sql = `SELECT * FROM tasks ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY seq LIMIT ?`;
    args.push(f.limit ?? 1000);
    return this.db.prepare(sql).all(...args).map(toTask);
  }

  /** Types that have pending tasks. @returns {string[]} */
  pendingTypes() {
    return this.q.pendingTypes.all().map((/** @type {any} */ r) => r.type);
  }

  /**
   * Pending tasks of a type in creation order, after `afterSeq`; with `onBehalfOf` given, only
   * tasks for those users (what user-scoped free slots can serve).
   * @param {string} type @param {number} afterSeq @param {string[]|null} onBehalfOf @param {number} [limit]
   * @returns {{ seq: number, task: Task }[]}
   */
  pendingPage(type, afterSeq, onBehalfOf, limit = 200) {
    const rows = onBehalfOf
      ? this.q.pendingPageFor.all(type, afterSeq, JSON.stringify(onBehalfOf), limit)
      : this.q.pendingPage.all(type, afterSeq, limit);
    return rows.map((/** @type {any} */ r) => ({ seq: r.seq, task: toTask(r) }));
  }

  /** @param {string} neuronId @param {string} type @returns {number} */
  countLeased(neuronId, type) {
    return /** @type {any} */ (this.q.countLeased.get(neuronId, type)).n;
  }

  /** @param {string} neuronId @returns {Task[]} */
  leasedBy(neuronId) {
    return this.q.leasedBy.all(neuronId).map(toTask);
  }

  /**
   * Hand a pending task to a neuron (bound to the identity `principal`). Returns null if it is no longer pending.
   * @param {string} taskId @param {string} neuronId @param {string|null} principal @param {number} ttlMs
   * @returns {Task|null}
   */
  lease(taskId, neuronId, principal, ttlMs) {
    const leaseId = `lease-${randomUUID()}`;
    const now = Date.now();
    return this.db.transaction(() => {
      const r = this.q.lease.get(leaseId, neuronId, principal, now + ttlMs, now, taskId);
      if (!r) return null;
      this._hist(taskId, 'leased', leaseId, neuronId, { attempt: /** @type {any} */ (r).attempt });
      return toTask(r);
    })();
  }

  /**
   * Look up the task held under a lease by a neuron (and, if given, the identity it was handed to).
   * @param {string} leaseId @param {string} neuronId @param {string|null} [principal]
   * @returns {Task|null}
   */
  held(leaseId, neuronId, principal = null) {
    const r = /** @type {any} */ (this.q.byLease.get(leaseId));
    if (!r || r.neuron_id !== neuronId) return null;
    if (principal != null && r.lease_principal != null && r.lease_principal !== principal) return null;
    return toTask(r);
  }

  /**
   * End a leased task (done / failed / cancelled).
   * @param {Task} task @param {'done'|'failed'|'cancelled'} state
   * @param {{ output?: unknown, nack?: { kind: string, reason?: string|null, code?: string|null, errors?: unknown } }} data
   * @param {string} why
   */
  _finish(task, state, data, why) {
    const now = Date.now();
    if (!data.nack && task.nack) data = { ...data, nack: task.nack };
    const r = this.q.finish.get({
      state, taskId: task.taskId, leaseId: task.leaseId, now,
      output: data.output === undefined ? null : JSON.stringify(data.output),
      nackKind: data.nack?.kind ?? null, nackReason: data.nack?.reason ?? null, nackCode: data.nack?.code ?? null,
      nackErrors: data.nack?.errors == null ? null : JSON.stringify(data.nack.errors),
    });
    if (!r) return null;
    this._hist(task.taskId, 'ended', task.leaseId, task.neuronId, { state, why });
    return toTask(r);
  }

  /**
   * Back to pending (kept nack info if any). @param {Task} task @param {string} event @param {any} [nack]
   * @param {boolean} [undo] take the delivery back (attempt - 1): the neuron declined without running it
   */
  _requeue(task, event, nack, undo = false) {
    const r = this.q.requeue.get({
      taskId: task.taskId, leaseId: task.leaseId, now: Date.now(), undo: undo ? 1 : 0,
      nackKind: nack?.kind ?? task.nack?.kind ?? null, nackReason: nack?.reason ?? task.nack?.reason ?? null,
      nackCode: nack?.code ?? task.nack?.code ?? null,
      nackErrors: json(nack ? nack.errors ?? undefined : task.nack?.errors ?? undefined),
    });
    if (!r) return null;
    this._hist(task.taskId, event, task.leaseId, task.neuronId);
    return toTask(r);
  }

  /**
   * Ack. @param {string} neuronId @param {string|null} principal
   * @param {{ leaseId: string, taskId: string, output?: unknown, durationMs?: number }} f
   * @returns {{ status: 'ok', task: Task } | { status: 'not-held' } | { status: 'task-mismatch', task: Task }}
   */
  ack(neuronId, principal, f) {
    return this.db.transaction(() => {
      const task = this.held(f.leaseId, neuronId, principal);
      if (!task) return { status: /** @type {const} */ ('not-held') };
      if (task.taskId !== f.taskId) return { status: /** @type {const} */ ('task-mismatch'), task };
      this._hist(task.taskId, 'acked', task.leaseId, neuronId, { durationMs: f.durationMs });
      const done = /** @type {Task} */ (this._finish(task, 'done', { output: f.output ?? null }, 'ack'));
      return { status: /** @type {const} */ ('ok'), task: done };
    })();
  }

  /**
   * Nack. retryable -> pending (or failed once attempt >= maxAttempts; cancelled if a cancel was requested),
   * terminal / schema-mismatch -> failed, cancelled -> cancelled. A retryable nack with a DECLINE_CODES code
   * for a lease never reported running is a decline: pending again without counting the delivery.
   * @param {string} neuronId @param {string|null} principal
   * @param {{ leaseId: string, taskId: string, kind: string, reason?: string, code?: string, errors?: unknown }} f
   * @returns {{ status: 'ok', task: Task, declined: boolean } | { status: 'not-held' } | { status: 'task-mismatch', task: Task }}
   */
  nack(neuronId, principal, f) {
    return this.db.transaction(() => {
      const task = this.held(f.leaseId, neuronId, principal);
      if (!task) return { status: /** @type {const} */ ('not-held') };
      if (task.taskId !== f.taskId) return { status: /** @type {const} */ ('task-mismatch'), task };
      const nack = { kind: f.kind, reason: f.reason ?? null, code: f.code ?? null, errors: f.errors ?? null };
      this._hist(task.taskId, 'nacked', task.leaseId, neuronId, nack);
      let out;
      let declined = false;
      if (f.kind === 'cancelled' || task.cancelRequested) out = this._finish(task, 'cancelled', { nack }, `nack ${f.kind}`);
      else if (f.kind === 'retryable' && f.code != null && DECLINE_CODES.has(f.code) && !task.started) {
        declined = true;
        out = this._requeue(task, 'declined', nack, true);
      } else if (f.kind === 'retryable') {
        out = task.attempt >= task.maxAttempts
          ? this._finish(task, 'failed', { nack }, `nack retryable after ${task.attempt} of ${task.maxAttempts} attempts`)
          : this._requeue(task, 'requeued', nack);
      } else out = this._finish(task, 'failed', { nack }, `nack ${f.kind}`);
      return { status: /** @type {const} */ ('ok'), task: /** @type {Task} */ (out), declined };
    })();
  }

  /**
   * Progress (also marks the lease running).
   * @param {string} neuronId @param {string|null} principal
   * @param {{ leaseId: string, taskId: string, percent?: number, message?: string, data?: unknown }} f
   * @returns {Task|null} null when the lease is not held
   */
  progress(neuronId, principal, f) {
    const p = { percent: f.percent ?? undefined, message: f.message ?? undefined, data: f.data, at: new Date().toISOString() };
    const r = this.q.progress.get(JSON.stringify(p), Date.now(), f.leaseId, neuronId, principal);
    return r ? toTask(r) : null;
  }

  /**
   * Renew the held leases among `leaseIds` in one statement (and mark them running); report the others as lost.
   * @param {string} neuronId @param {string|null} principal @param {string[]} leaseIds @param {number} ttlMs
   * @returns {{ renewed: string[], lostLeases: string[] }}
   */
  heartbeat(neuronId, principal, leaseIds, ttlMs) {
    const now = Date.now();
    const renewed = this.q.renew.all(now + ttlMs, now, neuronId, principal, JSON.stringify(leaseIds)).map((/** @type {any} */ r) => r.lease_id);
    const set = new Set(renewed);
    return { renewed, lostLeases: [...new Set(leaseIds.filter((l) => !set.has(l)))] };
  }

  /**
   * A lease stops being held without ack/nack (stream dropped, expired, gateway restart).
   * Cancel-requested tasks end cancelled; expiries count against maxAttempts (see README); the rest go back to pending.
   * @param {Task} task @param {'released'|'expired'|'recovered'} event
   */
  _drop(task, event) {
    if (task.cancelRequested) return this._finish(task, 'cancelled', {}, `${event} after cancel`);
    if (event === 'expired' && task.attempt >= task.maxAttempts)
      return this._finish(task, 'failed', { nack: { kind: 'retryable', reason: `lease expired on attempt ${task.attempt} of ${task.maxAttempts}`, code: 'LEASE_EXPIRED' } }, 'lease expired, no attempts left');
    return this._requeue(task, event);
  }

  /**
   * The neuron's stream is gone: return its leases that were never reported running (queued in the SDK,
   * which discards them); running ones stay leased until ack/nack or expiry (PROTOCOL 1.2).
   * @param {string} neuronId @returns {{ returned: Task[], kept: Task[] }} returned: tasks after the change
   */
  releaseNeuron(neuronId) {
    return this.db.transaction(() => {
      const leased = this.leasedBy(neuronId);
      const returned = leased.filter((t) => !t.started).map((t) => this._drop(t, 'released')).filter((t) => t != null);
      return { returned: /** @type {Task[]} */ (returned), kept: leased.filter((t) => t.started) };
    })();
  }

  /** Reap expired leases. @param {number} [now] @returns {{ before: Task, after: Task }[]} */
  reapExpired(now = Date.now()) {
    return this.db.transaction(() => {
      const out = [];
      for (const r of this.q.expired.all(now)) {
        const before = toTask(r);
        const after = this._drop(before, 'expired');
        if (after) out.push({ before, after });
      }
      return out;
    })();
  }

  /** On start: leases of a previous process are not held by anyone: back to pending. @returns {number} */
  recoverLeases() {
    return this.db.transaction(() => this.q.allLeased.all().map(toTask).map((/** @type {Task} */ t) => this._drop(t, 'recovered')).length)();
  }

  /**
   * Cancel request from the dev API.
   * @param {string} taskId @param {string|null} reason
   * @returns {{ action: 'cancelled'|'cancel-requested'|'finished'|'not-found', task: Task|null }}
   */
  requestCancel(taskId, reason) {
    return this.db.transaction(() => {
      const now = Date.now();
      const task = this.get(taskId);
      if (!task) return { action: /** @type {const} */ ('not-found'), task: null };
      if (task.state === 'pending') {
        const r = this.q.cancelPending.get(reason, now, now, taskId);
        this._hist(taskId, 'ended', null, null, { state: 'cancelled', why: 'cancelled while pending' });
        return { action: /** @type {const} */ ('cancelled'), task: toTask(r) };
      }
      if (task.state === 'leased') {
        const r = this.q.markCancel.get(reason, now, taskId);
        this._hist(taskId, 'cancel-requested', task.leaseId, task.neuronId, { reason });
        return { action: /** @type {const} */ ('cancel-requested'), task: toTask(r) };
      }
      return { action: /** @type {const} */ ('finished'), task };
    })();
  }
}

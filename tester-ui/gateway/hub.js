// Connected neurons, their sessions and capabilities, and lease dispatch.

import { randomUUID } from 'node:crypto';
import { principalOf } from './auth.js';
import { applyPolicy } from './policy.js';
import { HttpError } from './http.js';

/**
 * @typedef {import('./auth.js').Identity} Identity
 * @typedef {import('./policy.js').Capability} Capability
 * @typedef {import('./store.js').Task} Task
 * @typedef {Capability & { revoked: boolean, revokedReason?: string, declined: string|null }} LiveCapability
 *   declined: the nack code (NO_HANDLER / CAPABILITY_REVOKED) with which the neuron refused a lease of it
 *   this session; no more leases of it go to this connection until it registers again.
 * @typedef {{
 *   neuronId: string, identity: Identity, principal: string, stream: import('./http.js').SseStream,
 *   connectedAt: string, sessionId: string|null, registeredAt: string|null,
 *   capabilities: Map<string, LiveCapability>, rejected: { type: string, reason: string }[],
 *   draining: boolean, closed: boolean, closeReason: string|null
 * }} Conn
 *   draining: the neuron answered a lease with nack retryable SHUTTING_DOWN (it is stopping): no more
 *   leases to this connection until it registers again.
 */

/** Placeholder lengths for sizing a lease frame before the task has its ids. */
const SAMPLE_TASK_ID = `task-${'0'.repeat(36)}`;
const SAMPLE_LEASE_ID = `lease-${'0'.repeat(36)}`;
const SAMPLE_TIME = '2000-01-01T00:00:00.000Z';

/**
 * The lease frame for a (leased) task.
 * @param {Task} task
 */
export function leaseFrameOf(task) {
  /** @type {Record<string, unknown>} */
  const t = { taskId: task.taskId, type: task.type, input: task.input, attempt: task.attempt, createdAt: task.createdAt };
  if (task.onBehalfOf != null) t.onBehalfOf = task.onBehalfOf;
  if (task.workflowId != null) t.workflowId = task.workflowId;
  if (task.metadata != null) t.metadata = task.metadata;
  return { type: 'lease', leaseId: /** @type {string} */ (task.leaseId), expiresAt: /** @type {string} */ (task.leaseExpiresAt), task: t };
}

/**
 * Size in bytes of the SSE data of the largest lease frame a task to be enqueued can produce
 * (its last attempt, ids and times at their fixed lengths).
 * @param {{ type: string, input?: unknown, onBehalfOf?: string|null, workflowId?: string|null, metadata?: unknown, maxAttempts: number }} t
 */
export function leaseFrameBytes(t) {
  const task = /** @type {Task} */ (/** @type {unknown} */ ({
    taskId: SAMPLE_TASK_ID, type: t.type, input: t.input ?? null, attempt: t.maxAttempts, createdAt: SAMPLE_TIME,
    onBehalfOf: t.onBehalfOf ?? null, workflowId: t.workflowId ?? null, metadata: t.metadata ?? null,
    leaseId: SAMPLE_LEASE_ID, leaseExpiresAt: SAMPLE_TIME,
  }));
  return Buffer.byteLength(JSON.stringify(leaseFrameOf(task)));
}

/** Pending tasks read per query while dispatching one type. */
const PAGE = 200;

/** @param {import('./policy.js').Scope} scope @param {string|null} onBehalfOf */
export function scopeServes(scope, onBehalfOf) {
  if (scope === 'any') return true;
  return onBehalfOf != null && scope.onBehalfOf === onBehalfOf;
}

export class Hub {
  /**
   * @param {{ store: import('./store.js').TaskStore, feed: import('./feed.js').Feed, log: import('pino').Logger,
   *   settings: { leaseTtlMs: number, disabledTypes: string[] } }} deps
   */
  constructor({ store, feed, log, settings }) {
    this.store = store;
    this.feed = feed;
    this.log = log;
    this.settings = settings;
    /** @type {Map<string, Conn>} */
    this.neurons = new Map();
    this.dispatching = false;
    this.again = false;
    this.scheduled = false;
    this.closed = false;
    this.rr = 0;
  }

  /**
   * May `identity` open a stream for `neuronId`? Not while a live stream for it belongs to another identity (409).
   * @param {string} neuronId @param {Identity} identity
   */
  checkAttach(neuronId, identity) {
    const live = this.neurons.get(neuronId);
    if (live && !live.closed && live.principal !== principalOf(identity))
      throw new HttpError(409, `neuronId '${neuronId}' has a live event stream opened by another identity`);
  }

  /**
   * A new event stream for a neuron. An older stream for the same neuronId and identity is superseded:
   * it gets `disconnect { reason: 'superseded', reconnect: false }`, is closed, and its unstarted leases return to pending.
   * @param {string} neuronId @param {Identity} identity @param {import('./http.js').SseStream} stream
   */
  attach(neuronId, identity, stream) {
    this.checkAttach(neuronId, identity);
    const old = this.neurons.get(neuronId);
    if (old) this.disconnect(old, { reason: 'superseded', reconnect: false });
    /** @type {Conn} */
    const conn = {
      neuronId, identity, principal: principalOf(identity), stream,
      connectedAt: new Date().toISOString(), sessionId: null, registeredAt: null,
      capabilities: new Map(), rejected: [], draining: false, closed: false, closeReason: null,
    };
    this.neurons.set(neuronId, conn);
    stream.onClose.push(() => this.detach(conn, conn.closeReason ?? 'stream closed'));
    this.feed.publish('connect', { neuronId, identity });
    this.log.info({ neuronId, identity }, 'neuron stream opened');
    return conn;
  }

  /**
   * The stream is gone: forget the neuron and return its leases that were never reported running.
   * Leases a heartbeat (or progress) reported running stay leased to the neuronId and identity: the
   * SDK keeps those handlers running and posts their ack/nack (PROTOCOL 1.2); heartbeats after a
   * reconnect renew them, and otherwise they expire like any lease.
   * @param {Conn} conn @param {string} reason
   */
  detach(conn, reason) {
    if (conn.closed) return;
    conn.closed = true;
    conn.closeReason = reason;
    conn.stream.end();
    if (this.neurons.get(conn.neuronId) === conn) this.neurons.delete(conn.neuronId);
    const { returned, kept } = this.store.releaseNeuron(conn.neuronId);
    for (const t of returned) this.taskChanged(t, 'lease released: stream closed');
    this.feed.publish('disconnect', {
      neuronId: conn.neuronId, reason, returnedTasks: returned.map((t) => t.taskId), runningTasks: kept.map((t) => t.taskId),
    });
    this.log.info({ neuronId: conn.neuronId, reason, returned: returned.length, running: kept.length }, 'neuron stream closed');
    this.scheduleDispatch();
  }

  /**
   * Send `disconnect`, then close the stream.
   * @param {Conn} conn @param {{ reason?: string, reconnect?: boolean }} opts
   */
  disconnect(conn, { reason = 'disconnected by gateway', reconnect = true } = {}) {
    this.send(conn, { type: 'disconnect', reason, reconnect });
    this.detach(conn, `disconnect: ${reason}`);
  }

  /** @param {Conn} conn @param {Record<string, unknown> & { type: string }} frame */
  send(conn, frame) {
    const ok = conn.stream.send(frame.type, frame);
    this.feed.publish('outbound', { neuronId: conn.neuronId, frame, delivered: ok });
    return ok;
  }

  /** @param {Task} task @param {string} why */
  taskChanged(task, why) {
    this.feed.publish('task', { taskId: task.taskId, state: task.state, attempt: task.attempt, why, task });
  }

  /**
   * The connection that a POST for `neuronId` from `identity` belongs to.
   * @param {string} neuronId @param {Identity} identity @param {boolean} required
   * @returns {Conn|null}
   */
  connFor(neuronId, identity, required) {
    const conn = this.neurons.get(neuronId);
    if (!conn) {
      if (required) throw new HttpError(400, `no open event stream for neuronId '${neuronId}': open GET /neuron/events?neuronId=... first`);
      return null;
    }
    if (conn.principal !== principalOf(identity))
      throw new HttpError(400, `neuronId '${neuronId}' does not match the stream: it was opened by another identity`);
    return conn;
  }

  /**
   * @param {Identity} identity @param {any} frame a validated register frame
   * @returns {{ sessionId: string, capabilities: object[], rejected: object[] }}
   */
  register(identity, frame) {
    const conn = /** @type {Conn} */ (this.connFor(frame.neuronId, identity, true));
    const r = applyPolicy(identity, frame.capabilities, this.settings);
    if ('forbidden' in r) throw new HttpError(403, `registration rejected: ${r.forbidden}`);
    conn.sessionId = `s-${randomUUID()}`;
    conn.registeredAt = new Date().toISOString();
    conn.capabilities = new Map(r.effective.map((c) => [c.type, { ...c, revoked: false, declined: null }]));
    conn.draining = false;
    conn.rejected = r.rejected;
    const capabilities = r.effective.map((c) => ({ type: c.type, scope: c.scope, concurrency: c.concurrency }));
    const registered = { type: 'registered', sessionId: conn.sessionId, capabilities, rejected: r.rejected };
    this.send(conn, registered);
    this.scheduleDispatch();
    return { sessionId: conn.sessionId, capabilities, rejected: r.rejected };
  }

  /** @param {Identity} identity @param {any} frame */
  updateCapability(identity, frame) {
    const conn = /** @type {Conn} */ (this.connFor(frame.neuronId, identity, true));
    if (!conn.sessionId) throw new HttpError(400, `neuron '${frame.neuronId}' has not registered on this stream`);
    const cap = conn.capabilities.get(frame.capability);
    if (!cap) throw new HttpError(400, `capability '${frame.capability}' is not registered (effective) for neuron '${frame.neuronId}'`);
    if (cap.revoked) throw new HttpError(400, `capability '${frame.capability}' was revoked for neuron '${frame.neuronId}'`);
    cap.concurrency = frame.concurrency;
    this.scheduleDispatch();
    return { capability: cap.type, concurrency: cap.concurrency };
  }

  /**
   * Revoke a capability for the rest of the session: send `capability-revoked`, stop dispatching it.
   * @param {string} neuronId @param {string} type @param {string} [reason]
   */
  revoke(neuronId, type, reason) {
    const conn = this.neurons.get(neuronId);
    if (!conn) throw new HttpError(404, `neuron '${neuronId}' is not connected`);
    const cap = conn.capabilities.get(type);
    if (!cap) throw new HttpError(404, `neuron '${neuronId}' has no effective capability '${type}'`);
    cap.revoked = true;
    cap.revokedReason = reason ?? 'revoked by gateway';
    /** @type {Record<string, unknown> & { type: string }} */
    const frame = { type: 'capability-revoked', capability: type };
    if (reason) frame.reason = reason;
    this.send(conn, frame);
    return { neuronId, capability: type, revoked: true };
  }

  /** @param {Task} task */
  leaseFrame(task) {
    return leaseFrameOf(task);
  }

  /**
   * The neuron declined a lease without running it (nack retryable with a decline code):
   * SHUTTING_DOWN -> the connection is draining (no more leases); NO_HANDLER / CAPABILITY_REVOKED ->
   * no more leases of that capability to it. Both last until it registers again.
   * @param {Conn|null} conn @param {string} code @param {string} type
   */
  declined(conn, code, type) {
    if (!conn || conn.closed) return;
    if (code === 'SHUTTING_DOWN') {
      if (!conn.draining) this.log.info({ neuronId: conn.neuronId }, 'neuron is shutting down: no more leases to it');
      conn.draining = true;
      return;
    }
    const cap = conn.capabilities.get(type);
    if (cap && !cap.declined) {
      cap.declined = code;
      this.log.info({ neuronId: conn.neuronId, capability: type, code }, 'neuron declined a capability: no more leases of it');
    }
  }

  scheduleDispatch() {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.closed) this.dispatch();
    });
  }

  /**
   * Hand pending tasks to neurons: FIFO per type (creation order), only to registered, non-draining
   * neurons whose non-revoked, non-declined capability serves the task's scope, never more leases
   * outstanding per neuron and capability than its concurrency. Among fitting neurons the one with
   * the most free slots wins. Pending tasks are read in pages by creation order until the free slots
   * are full or none is left; while no `any` slot is free, only tasks for the users the free slots
   * serve are read, so tasks nobody can take do not hide the ones behind them.
   */
  dispatch() {
    if (this.dispatching) { this.again = true; return; }
    this.dispatching = true;
    try {
      do {
        this.again = false;
        for (const type of this.store.pendingTypes()) {
          /** @type {{ conn: Conn, cap: LiveCapability, free: number }[]} */
          const slots = [];
          for (const conn of this.neurons.values()) {
            const cap = conn.capabilities.get(type);
            if (conn.closed || conn.draining || !conn.sessionId || !cap || cap.revoked || cap.declined) continue;
            const free = cap.concurrency - this.store.countLeased(conn.neuronId, type);
            if (free > 0) slots.push({ conn, cap, free });
          }
          let after = 0;
          for (;;) {
            const open = slots.filter((s) => s.free > 0);
            if (!open.length) break;
            const users = open.some((s) => s.cap.scope === 'any')
              ? null
              : [...new Set(open.map((s) => /** @type {{ onBehalfOf: string }} */ (s.cap.scope).onBehalfOf))];
            const page = this.store.pendingPage(type, after, users, PAGE);
            for (const { seq, task } of page) {
              after = seq;
              const fits = open.filter((s) => s.free > 0 && scopeServes(s.cap.scope, task.onBehalfOf));
              if (!fits.length) continue;
              const top = Math.max(...fits.map((s) => s.free));
              const best = fits.filter((s) => s.free === top);
              const pick = best[this.rr++ % best.length];
              const leased = this.store.lease(task.taskId, pick.conn.neuronId, pick.conn.principal, this.settings.leaseTtlMs);
              if (!leased) continue;
              pick.free--;
              this.taskChanged(leased, `leased to ${pick.conn.neuronId}`);
              this.send(pick.conn, this.leaseFrame(leased));
              if (open.every((s) => s.free <= 0)) break;
            }
            if (page.length < PAGE) break;
          }
        }
      } while (this.again);
    } catch (err) {
      this.log.error({ err }, 'dispatch failed');
    } finally {
      this.dispatching = false;
    }
  }

  /** Expired leases back to pending (or failed), then redeliver. */
  reap() {
    const reaped = this.store.reapExpired();
    for (const { before, after } of reaped) {
      this.taskChanged(after, `lease ${before.leaseId} expired`);
      this.feed.publish('lease-expired', { neuronId: before.neuronId, leaseId: before.leaseId, taskId: before.taskId });
    }
    if (reaped.length) {
      this.log.info({ count: reaped.length }, 'reaped expired leases');
      this.scheduleDispatch();
    }
    return reaped.length;
  }

  /** @param {string} taskId @param {string|null} reason */
  cancel(taskId, reason) {
    const r = this.store.requestCancel(taskId, reason);
    if (r.action === 'not-found') throw new HttpError(404, `no task '${taskId}'`);
    if (r.action === 'finished') throw new HttpError(409, `task '${taskId}' already ended (${r.task?.state})`);
    const task = /** @type {Task} */ (r.task);
    let cancelSent = false;
    if (r.action === 'cancelled') this.taskChanged(task, 'cancelled while pending');
    else {
      const conn = task.neuronId ? this.neurons.get(task.neuronId) : undefined;
      if (conn) {
        /** @type {Record<string, unknown> & { type: string }} */
        const frame = { type: 'cancel', leaseId: /** @type {string} */ (task.leaseId) };
        if (reason) frame.reason = reason;
        cancelSent = this.send(conn, frame);
      }
      this.taskChanged(task, 'cancel requested');
    }
    return { task, cancelSent };
  }

  /** Snapshot for GET /dev/neurons. */
  describe() {
    return [...this.neurons.values()].map((c) => {
      const leases = this.store.leasedBy(c.neuronId);
      return {
        neuronId: c.neuronId,
        identity: c.identity,
        connectedAt: c.connectedAt,
        sessionId: c.sessionId,
        registeredAt: c.registeredAt,
        draining: c.draining,
        capabilities: [...c.capabilities.values()].map((cap) => ({
          type: cap.type, scope: cap.scope, concurrency: cap.concurrency, revoked: cap.revoked, declined: cap.declined,
          inFlight: leases.filter((l) => l.type === cap.type).length,
        })),
        rejected: c.rejected,
        leases: leases.map((l) => ({ leaseId: l.leaseId, taskId: l.taskId, type: l.type, attempt: l.attempt, expiresAt: l.leaseExpiresAt, started: l.started, cancelRequested: l.cancelRequested })),
      };
    });
  }

  close() {
    this.closed = true;
    for (const conn of [...this.neurons.values()]) {
      conn.closed = true; // the store keeps the leases: a restart returns them to pending
      conn.stream.end();
    }
    this.neurons.clear();
  }
}

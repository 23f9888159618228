// @ts-check
// The local dev gateway's dev API (tester-ui/README.md, "Dev API"): enqueue,
// cancel, revoke, disconnect, tokens, faults. Only the local gateway has it.

export class DevApi {
  /** @param {string} gatewayUrl */
  constructor(gatewayUrl) {
    this.base = gatewayUrl.replace(/\/+$/, '');
  }

  /** @param {string} method @param {string} path @param {unknown} [body] */
  async call(method, path, body) {
    let res;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: method === 'POST' ? { 'content-type': 'application/json' } : {},
        body: method === 'POST' ? JSON.stringify(body ?? {}) : undefined,
      });
    } catch (err) {
      throw new Error(`the gateway at ${this.base} did not answer (${/** @type {Error} */ (err).message}); is it running?`);
    }
    const text = await res.text();
    /** @type {any} */
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: text };
    }
    if (!res.ok) {
      const why = data?.error ?? res.statusText;
      throw new Error(res.status === 404 && path.startsWith('/dev/')
        ? `${method} ${path}: 404 — this gateway has no dev API (only the local dev gateway does)`
        : `${method} ${path}: ${res.status} ${why}`);
    }
    return data;
  }

  /** @returns {Promise<boolean>} */
  async available() {
    try {
      await this.call('GET', '/dev/info');
      return true;
    } catch {
      return false;
    }
  }

  /** @param {string} kind @param {Record<string, string>} [extra] @returns {Promise<string>} */
  async mintToken(kind = 'service', extra = {}) {
    return (await this.call('POST', '/dev/tokens', { kind, ...extra })).token;
  }

  /** @param {{ type: string, input?: unknown, onBehalfOf?: string }} task @returns {Promise<string>} the task id */
  async enqueue(task) {
    return (await this.call('POST', '/dev/tasks', task)).taskId;
  }

  /** @param {string} taskId @param {string} [reason] */
  cancel(taskId, reason = 'cancelled from the tester page') {
    return this.call('POST', `/dev/tasks/${encodeURIComponent(taskId)}/cancel`, { reason });
  }

  /** @param {string} neuronId @param {string} capability */
  revoke(neuronId, capability) {
    return this.call('POST', `/dev/neurons/${encodeURIComponent(neuronId)}/revoke`, { capability, reason: 'revoked from the tester page' });
  }

  /** @param {string} neuronId */
  disconnect(neuronId) {
    return this.call('POST', `/dev/neurons/${encodeURIComponent(neuronId)}/disconnect`, { reconnect: true, reason: 'forced from the tester page' });
  }

  /** @returns {Promise<{ keepAlives: boolean, neuronIds?: string[] }>} */
  faults() {
    return this.call('GET', '/dev/faults');
  }

  /** @param {boolean} on @param {string} [neuronId] @returns {Promise<{ keepAlives: boolean, neuronIds?: string[] }>} */
  keepAlives(on, neuronId) {
    return this.call('POST', '/dev/faults', neuronId ? { keepAlives: on, neuronId } : { keepAlives: on });
  }
}

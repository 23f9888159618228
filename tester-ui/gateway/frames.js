// Validation of neuron -> gateway frames (PROTOCOL.md section 2.1).
// Every check throws FrameError with a message that says what was wrong (-> 400).
// Unknown extra fields are ignored.

import { isCapabilityType } from './policy.js';

export class FrameError extends Error {}

/** POST path -> frame type */
export const POST_PATHS = /** @type {Record<string, string>} */ ({
  '/neuron/register': 'register',
  '/neuron/update-capability': 'update-capability',
  '/neuron/heartbeat': 'heartbeat',
  '/neuron/ack': 'ack',
  '/neuron/nack': 'nack',
  '/neuron/progress': 'progress',
});

const FRAME_TYPES = new Set(Object.values(POST_PATHS));
export const NACK_KINDS = ['retryable', 'terminal', 'schema-mismatch', 'cancelled'];

/** @param {unknown} v */
const isObj = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
/** @param {unknown} v */
const isStr = (v) => typeof v === 'string' && v.length > 0;

/**
 * @param {Record<string, unknown>} f
 * @param {string} key
 */
function str(f, key) {
  if (!isStr(f[key])) throw new FrameError(`'${key}' must be a non-empty string`);
  return /** @type {string} */ (f[key]);
}

/**
 * @param {Record<string, unknown>} f
 * @param {string} key
 */
function optStr(f, key) {
  if (f[key] !== undefined && f[key] !== null && typeof f[key] !== 'string') throw new FrameError(`'${key}' must be a string`);
}

/** @param {unknown} v @param {string} where */
function concurrency(v, where) {
  if (!Number.isInteger(v) || /** @type {number} */ (v) < 1) throw new FrameError(`${where}: 'concurrency' must be an integer >= 1`);
  return /** @type {number} */ (v);
}

/**
 * Validate a POSTed frame against the path it came on.
 * @param {string} path
 * @param {unknown} body
 * @returns {any} the frame (capabilities normalised)
 */
export function validateFrame(path, body) {
  const expected = POST_PATHS[path];
  if (!isObj(body)) throw new FrameError('body must be a JSON object (a frame)');
  const f = /** @type {Record<string, any>} */ (body);
  if (!isStr(f.type)) throw new FrameError(`'type' must be a non-empty string`);
  if (!FRAME_TYPES.has(f.type)) throw new FrameError(`unknown frame type '${f.type}'`);
  if (f.type !== expected) throw new FrameError(`frame type '${f.type}' does not belong on ${path} (expected '${expected}')`);
  str(f, 'neuronId');
  optStr(f, 'sentAt');
  switch (f.type) {
    case 'register': {
      if (!Array.isArray(f.capabilities) || f.capabilities.length === 0) throw new FrameError(`'capabilities' must be a non-empty array`);
      f.capabilities = f.capabilities.map((/** @type {unknown} */ c, /** @type {number} */ i) => {
        const where = `capabilities[${i}]`;
        if (!isObj(c)) throw new FrameError(`${where} must be an object`);
        const cap = /** @type {Record<string, any>} */ (c);
        if (!isCapabilityType(cap.type)) throw new FrameError(`${where}: invalid capability type ${JSON.stringify(cap.type)}`);
        let scope;
        if (cap.scope === 'any') scope = 'any';
        else if (isObj(cap.scope) && isStr(cap.scope.onBehalfOf)) scope = { onBehalfOf: cap.scope.onBehalfOf };
        else throw new FrameError(`${where} (${cap.type}): 'scope' must be 'any' or { onBehalfOf: string }`);
        /** @type {Record<string, any>} */
        const out = { type: cap.type, scope, concurrency: concurrency(cap.concurrency, `${where} (${cap.type})`) };
        if (typeof cap.description === 'string') out.description = cap.description;
        if (cap.inputSchema !== undefined) out.inputSchema = cap.inputSchema;
        if (cap.outputSchema !== undefined) out.outputSchema = cap.outputSchema;
        return out;
      });
      break;
    }
    case 'update-capability':
      str(f, 'capability');
      concurrency(f.concurrency, 'update-capability');
      break;
    case 'heartbeat':
      if (f.inFlight === undefined) f.inFlight = [];
      if (!Array.isArray(f.inFlight)) throw new FrameError(`'inFlight' must be an array`);
      f.inFlight.forEach((/** @type {unknown} */ e, /** @type {number} */ i) => {
        if (!isObj(e) || !isStr(/** @type {any} */ (e).leaseId)) throw new FrameError(`inFlight[${i}].leaseId must be a non-empty string`);
      });
      break;
    case 'ack':
      str(f, 'leaseId');
      str(f, 'taskId');
      if (f.durationMs !== undefined && typeof f.durationMs !== 'number') throw new FrameError(`'durationMs' must be a number`);
      break;
    case 'nack':
      str(f, 'leaseId');
      str(f, 'taskId');
      if (!NACK_KINDS.includes(f.kind)) throw new FrameError(`'kind' must be one of ${NACK_KINDS.join(', ')}`);
      optStr(f, 'reason');
      optStr(f, 'code');
      if (f.errors !== undefined && f.errors !== null && !Array.isArray(f.errors)) throw new FrameError(`'errors' must be an array`);
      break;
    case 'progress':
      str(f, 'leaseId');
      str(f, 'taskId');
      if (f.percent !== undefined && f.percent !== null && (typeof f.percent !== 'number' || !Number.isFinite(f.percent)))
        throw new FrameError(`'percent' must be a number`);
      optStr(f, 'message');
      break;
  }
  return f;
}

// The wire frames' JSON Schemas (draft-07), as PROTOCOL.md section 2 fixes
// them. Exported for gateways, tests and debug UIs; the SDK itself decodes
// frames in the wasm core. Unknown extra fields are allowed everywhere
// (forward compatibility). The annotations let bundlers drop this module
// from a page that imports none of it.

const str = { type: 'string' };
const time = { type: 'string', description: 'ISO-8601 UTC with milliseconds' };
const scope = { oneOf: [{ const: 'any' }, { type: 'object', required: ['onBehalfOf'], properties: { onBehalfOf: str } }] };

/** @param {string} type @param {Record<string, object>} properties @param {string[]} required */
/* @__NO_SIDE_EFFECTS__ */
function frame(type, properties, required) {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: type,
    type: 'object',
    required: ['type', ...required],
    properties: { type: { const: type }, ...properties },
  };
}

/** A frame the neuron posts: it also carries neuronId and sentAt. */
/** @param {string} type @param {Record<string, object>} properties @param {string[]} required */
/* @__NO_SIDE_EFFECTS__ */
function clientFrame(type, properties, required) {
  return frame(type, { neuronId: str, sentAt: time, ...properties }, ['neuronId', 'sentAt', ...required]);
}

const register = clientFrame('register', {
  sdk: { type: 'object', properties: { name: str, version: str } },
  capabilities: {
    type: 'array',
    items: {
      type: 'object',
      required: ['type', 'scope', 'concurrency'],
      properties: { type: str, scope, concurrency: { type: 'integer', minimum: 1 }, description: str, inputSchema: {}, outputSchema: {} },
    },
  },
}, ['capabilities']);
const updateCapability = clientFrame('update-capability', { capability: str, concurrency: { type: 'integer', minimum: 1 } },
  ['capability', 'concurrency']);
const heartbeat = clientFrame('heartbeat', {
  inFlight: { type: 'array', items: { type: 'object', required: ['leaseId', 'taskId', 'startedAt'], properties: { leaseId: str, taskId: str, startedAt: time } } },
}, ['inFlight']);
const ack = clientFrame('ack', { leaseId: str, taskId: str, output: {}, durationMs: { type: 'number', minimum: 0 } },
  ['leaseId', 'taskId', 'output', 'durationMs']);
const nack = clientFrame('nack', {
  leaseId: str,
  taskId: str,
  kind: { enum: ['retryable', 'terminal', 'schema-mismatch', 'cancelled'] },
  reason: str,
  code: str,
  errors: { type: 'array', items: { type: 'object', required: ['path', 'message'], properties: { path: str, message: str } } },
}, ['leaseId', 'taskId', 'kind', 'reason']);
const progress = clientFrame('progress', { leaseId: str, taskId: str, percent: { type: 'number' }, message: str, data: {} },
  ['leaseId', 'taskId']);
const registered = frame('registered', {
  sessionId: str,
  capabilities: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: str, scope, concurrency: { type: 'integer' } } } },
  rejected: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: str, reason: str } } },
}, ['sessionId', 'capabilities']);
const lease = frame('lease', {
  leaseId: str,
  expiresAt: time,
  task: {
    type: 'object',
    required: ['taskId', 'type'],
    properties: {
      taskId: str, type: str, input: {}, attempt: { type: 'integer', minimum: 1 }, onBehalfOf: str,
      workflowId: str, createdAt: time, metadata: { type: 'object' },
    },
  },
}, ['leaseId', 'task']);
const cancel = frame('cancel', { leaseId: str, reason: str }, ['leaseId']);
const capabilityRevoked = frame('capability-revoked', { capability: str, reason: str }, ['capability']);
const disconnect = frame('disconnect', { reason: str, reconnect: { type: 'boolean', default: true } }, []);

export const frameSchemas = /* @__PURE__ */ Object.freeze({
  register,
  'update-capability': updateCapability,
  heartbeat,
  ack,
  nack,
  progress,
  registered,
  lease,
  cancel,
  'capability-revoked': capabilityRevoked,
  disconnect,
});

/** Any frame the gateway sends (the `frame` event's payload). */
export const serverToNeuronFrameSchema = /* @__PURE__ */ Object.freeze({
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'ServerToNeuronFrame',
  oneOf: [registered, lease, cancel, capabilityRevoked, disconnect],
});

/** Any frame a neuron posts. */
export const clientFrameSchema = /* @__PURE__ */ Object.freeze({
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'ClientFrame',
  oneOf: [register, updateCapability, heartbeat, ack, nack, progress],
});

/** The POST path of each client frame (PROTOCOL.md 1.1). */
export const POST_PATHS = /* @__PURE__ */ Object.freeze({
  register: '/neuron/register',
  'update-capability': '/neuron/update-capability',
  heartbeat: '/neuron/heartbeat',
  ack: '/neuron/ack',
  nack: '/neuron/nack',
  progress: '/neuron/progress',
});

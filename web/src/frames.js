// The wire frames' JSON Schemas (draft-07), as PROTOCOL.md section 2 fixes
// them. Exported for gateways, tests and debug UIs; the SDK itself decodes
// frames in the wasm core. Unknown extra fields are allowed everywhere
// (forward compatibility).

const str = { type: 'string' };
const time = { type: 'string', description: 'ISO-8601 UTC with milliseconds' };
const scope = { oneOf: [{ const: 'any' }, { type: 'object', required: ['onBehalfOf'], properties: { onBehalfOf: str } }] };

/** @param {string} type @param {Record<string, object>} properties @param {string[]} required */
function frame(type, properties, required) {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: type,
    type: 'object',
    required: ['type', ...required],
    properties: { type: { const: type }, ...properties },
  };
}

const client = { neuronId: str, sentAt: time };
const clientRequired = ['neuronId', 'sentAt'];

export const frameSchemas = Object.freeze({
  register: frame('register', {
    ...client,
    sdk: { type: 'object', properties: { name: str, version: str } },
    capabilities: {
      type: 'array',
      items: {
        type: 'object',
        required: ['type', 'scope', 'concurrency'],
        properties: { type: str, scope, concurrency: { type: 'integer', minimum: 1 }, description: str, inputSchema: {}, outputSchema: {} },
      },
    },
  }, [...clientRequired, 'capabilities']),
  'update-capability': frame('update-capability', { ...client, capability: str, concurrency: { type: 'integer', minimum: 1 } },
    [...clientRequired, 'capability', 'concurrency']),
  heartbeat: frame('heartbeat', {
    ...client,
    inFlight: { type: 'array', items: { type: 'object', required: ['leaseId', 'taskId', 'startedAt'], properties: { leaseId: str, taskId: str, startedAt: time } } },
  }, [...clientRequired, 'inFlight']),
  ack: frame('ack', { ...client, leaseId: str, taskId: str, output: {}, durationMs: { type: 'number', minimum: 0 } },
    [...clientRequired, 'leaseId', 'taskId', 'output', 'durationMs']),
  nack: frame('nack', {
    ...client,
    leaseId: str,
    taskId: str,
    kind: { enum: ['retryable', 'terminal', 'schema-mismatch', 'cancelled'] },
    reason: str,
    code: str,
    errors: { type: 'array', items: { type: 'object', required: ['path', 'message'], properties: { path: str, message: str } } },
  }, [...clientRequired, 'leaseId', 'taskId', 'kind', 'reason']),
  progress: frame('progress', { ...client, leaseId: str, taskId: str, percent: { type: 'number' }, message: str, data: {} },
    [...clientRequired, 'leaseId', 'taskId']),
  registered: frame('registered', {
    sessionId: str,
    capabilities: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: str, scope, concurrency: { type: 'integer' } } } },
    rejected: { type: 'array', items: { type: 'object', required: ['type'], properties: { type: str, reason: str } } },
  }, ['sessionId', 'capabilities']),
  lease: frame('lease', {
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
  }, ['leaseId', 'task']),
  cancel: frame('cancel', { leaseId: str, reason: str }, ['leaseId']),
  'capability-revoked': frame('capability-revoked', { capability: str, reason: str }, ['capability']),
  disconnect: frame('disconnect', { reason: str, reconnect: { type: 'boolean', default: true } }, []),
});

const fs = frameSchemas;

/** Any frame the gateway sends (the `frame` event's payload). */
export const serverToNeuronFrameSchema = Object.freeze({
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'ServerToNeuronFrame',
  oneOf: [fs.registered, fs.lease, fs.cancel, fs['capability-revoked'], fs.disconnect],
});

/** Any frame a neuron posts. */
export const clientFrameSchema = Object.freeze({
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'ClientFrame',
  oneOf: [fs.register, fs['update-capability'], fs.heartbeat, fs.ack, fs.nack, fs.progress],
});

/** The POST path of each client frame (PROTOCOL.md 1.1). */
export const POST_PATHS = Object.freeze({
  register: '/neuron/register',
  'update-capability': '/neuron/update-capability',
  heartbeat: '/neuron/heartbeat',
  ack: '/neuron/ack',
  nack: '/neuron/nack',
  progress: '/neuron/progress',
});

// The exported frame JSON Schemas describe the frames that really cross the
// wire: every frame the SDK posts and every frame the dev gateway sends in a
// session that touches each kind validates, and malformed ones do not.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import Ajv from 'ajv';
import { Neuron, frameSchemas, serverToNeuronFrameSchema, clientFrameSchema, POST_PATHS } from '../src/index.js';
import { startGateway, tokens, enqueue, dev, waitFor } from '../../tester-ui/testkit/helpers.js';

const ajv = new Ajv({ allErrors: true, strict: false });
const server = ajv.compile(serverToNeuronFrameSchema);
const client = ajv.compile(clientFrameSchema);
/** @param {import('ajv').ValidateFunction} v @param {unknown} frame */
const check = (v, frame) => assert.ok(v(frame), `${JSON.stringify(frame)}: ${ajv.errorsText(v.errors)}`);

test('every frame of a real session validates against the exported schemas', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const tk = await tokens(gw);
  /** @type {{ path: string, frame: any }[]} */
  const posted = [];
  /** @type {typeof fetch} */
  const spy = (input, init) => {
    if (init?.method === 'POST') posted.push({ path: new URL(String(input)).pathname, frame: JSON.parse(String(init.body)) });
    return fetch(input, init);
  };
  const n = new Neuron({ neuronId: 'w-schemas', gatewayUrl: gw.url, auth: () => tk.service, fetch: spy, heartbeatIntervalMs: 50 });
  /** @type {any[]} */
  const received = [];
  n.on('frame', (f) => received.push(f));
  n.handle({ type: 'core/a', scope: 'any', concurrency: 2, description: 'a', inputSchema: { type: 'object' }, outputSchema: { type: 'object' } },
    async (input, ctx) => {
      ctx.progress({ percent: 10, message: 'm', data: { x: 1 } });
      if (input.fail) ctx.fail('no', { code: 'NO' });
      if (input.wait) await new Promise((r) => ctx.signal.addEventListener('abort', r));
      await new Promise((r) => setTimeout(r, 80));
      return { ok: true };
    });
  n.handle({ type: 'core/b', scope: 'any', concurrency: 1 }, () => 1);
  await n.start();
  const ids = [
    await enqueue(gw, { type: 'core/a', input: { ok: 1 }, workflowId: 'wf-1', metadata: { m: 1 } }),
    await enqueue(gw, { type: 'core/a', input: { fail: true } }),
    await enqueue(gw, { type: 'core/a', input: 'not an object' }),
  ];
  const slow = await enqueue(gw, { type: 'core/a', input: { wait: true } });
  await waitFor(async () => (await dev(gw, 'GET', `/dev/tasks/${slow}`)).body.task?.state === 'leased', 3000, 'the slow task to be leased');
  await new Promise((r) => setTimeout(r, 30));
  await dev(gw, 'POST', `/dev/tasks/${slow}/cancel`, {});
  await n.updateCapability({ type: 'core/a', concurrency: 3 });
  await dev(gw, 'POST', '/dev/neurons/w-schemas/revoke', { capability: 'core/b', reason: 'test' });
  for (const id of ids) {
    await waitFor(async () => ['done', 'failed'].includes((await dev(gw, 'GET', `/dev/tasks/${id}`)).body.task?.state), 3000, `task ${id}`);
  }
  await dev(gw, 'POST', '/dev/neurons/w-schemas/disconnect', { reconnect: false });
  await waitFor(() => received.some((f) => f.type === 'disconnect'), 3000, 'the disconnect frame');
  await n.stop();

  const kinds = (/** @type {any[]} */ list) => [...new Set(list.map((f) => f.type))].sort();
  assert.deepEqual(kinds(received), ['cancel', 'capability-revoked', 'disconnect', 'lease', 'registered']);
  assert.deepEqual(kinds(posted.map((p) => p.frame)), ['ack', 'heartbeat', 'nack', 'progress', 'register', 'update-capability']);
  for (const f of received) check(server, f);
  for (const { path, frame } of posted) {
    check(client, frame);
    check(ajv.compile(frameSchemas[/** @type {keyof typeof frameSchemas} */ (frame.type)]), frame);
    assert.equal(path, POST_PATHS[/** @type {keyof typeof POST_PATHS} */ (frame.type)]);
  }
});

test('the schemas reject malformed frames', () => {
  for (const bad of [
    { type: 'lease', leaseId: 'l' },
    { type: 'lease', leaseId: 'l', task: { taskId: 't' } },
    { type: 'registered', capabilities: [] },
    { type: 'nope' },
    { leaseId: 'l' },
  ]) assert.equal(server(bad), false, JSON.stringify(bad));
  for (const bad of [
    { type: 'ack', neuronId: 'n', sentAt: 't', leaseId: 'l', taskId: 't', output: 1 },
    { type: 'nack', neuronId: 'n', sentAt: 't', leaseId: 'l', taskId: 't', kind: 'maybe', reason: 'r' },
    { type: 'update-capability', neuronId: 'n', sentAt: 't', capability: 'c', concurrency: 0 },
  ]) assert.equal(client(bad), false, JSON.stringify(bad));
});

// Restart safety: kill -9 the gateway (a child process) mid-lease, start it again on the same data file,
// and check every unfinished task is delivered again and ends exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestNeuron, anyCap, enqueue, dev, SECRET } from '../testkit/helpers.js';
import { mintToken } from '../gateway/auth.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'gateway', 'cli.js');

/**
 * Start `cli.js serve` on a free port; resolves once it printed its URL.
 * @param {string} dataFile
 */
function spawnGateway(dataFile) {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data', dataFile, '--secret', SECRET, '--log-level', 'silent'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (c) => { err += c; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out} ${err}`)), 10_000);
    child.stdout.on('data', (c) => {
      out += c;
      const m = /GATEWAY_URL=(\S+)/.exec(out);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.once('exit', () => { clearTimeout(timer); reject(new Error(`gateway exited early: ${out} ${err}`)); });
  });
  return { child, ready: /** @type {Promise<string>} */ (ready), exited, output: () => out };
}

test('kill -9 mid-lease, restart on the same data file: unfinished tasks are redelivered and end exactly once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'neuron-gw-'));
  const dataFile = join(dir, 'tasks.db');
  /** @type {ReturnType<typeof spawnGateway>[]} */
  const procs = [];
  t.after(() => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const token = await mintToken(SECRET, { kind: 'service', sub: 'restart-worker' });

  // first life
  const a = spawnGateway(dataFile);
  procs.push(a);
  const gwA = { url: await a.ready };
  const ids = [];
  for (let i = 0; i < 4; i++) ids.push(await enqueue(gwA, { type: 'core/work', input: i }));
  const n1 = await new TestNeuron(gwA, 'w-1', token).connect();
  assert.equal((await n1.register([anyCap('core/work', 2)])).status, 200);
  const l0 = await n1.next('lease');
  const l1 = await n1.next('lease');
  assert.deepEqual([l0.task.taskId, l1.task.taskId], [ids[0], ids[1]]);
  assert.equal((await n1.ack(l0, 'zero')).status, 200);
  const l2 = await n1.next('lease');
  assert.equal(l2.task.taskId, ids[2]);
  assert.equal((await n1.post('/neuron/progress', { type: 'progress', neuronId: 'w-1', leaseId: l1.leaseId, taskId: ids[1], percent: 40 })).status, 200);
  // now: ids[0] done, ids[1] and ids[2] leased (running), ids[3] pending

  a.child.kill('SIGKILL');
  const exitA = await a.exited;
  assert.equal(/** @type {any} */ (exitA).signal, 'SIGKILL');
  await n1.sse?.done; // the stream ended with the process

  // second life, same file
  const b = spawnGateway(dataFile);
  procs.push(b);
  const gwB = { url: await b.ready };
  assert.match(b.output(), /2 lease\(s\) from a previous run returned to pending/);
  const before = await dev(gwB, 'GET', '/dev/tasks');
  assert.deepEqual(before.body.tasks.map((/** @type {any} */ x) => x.state), ['done', 'pending', 'pending', 'pending']);
  assert.equal(before.body.tasks[1].progress.percent, 40, 'last progress survived');

  // the old neuron's ack for a lease of the dead process: not held
  assert.equal((await new TestNeuron(gwB, 'w-1', token).ack(l1, 'late')).status, 409);

  const n2 = await new TestNeuron(gwB, 'w-1', token).connect();
  assert.equal((await n2.register([anyCap('core/work', 2)])).status, 200);
  /** @type {any[]} */
  const got = [];
  while (got.length < 3) {
    const l = await n2.next('lease', 5000);
    got.push(l);
    assert.equal((await n2.ack(l, `out-${l.task.input}`)).status, 200);
  }
  assert.deepEqual(got.map((l) => l.task.taskId), [ids[1], ids[2], ids[3]]);
  assert.deepEqual(got.map((l) => l.task.attempt), [2, 2, 1]);
  assert.deepEqual(await n2.none('lease', 150), []);

  for (const [i, id] of ids.entries()) {
    const r = await dev(gwB, 'GET', `/dev/tasks/${id}`);
    assert.equal(r.body.task.state, 'done', `task ${i}`);
    assert.equal(r.body.task.output, i === 0 ? 'zero' : `out-${i}`);
    const events = r.body.history.map((/** @type {any} */ h) => h.event);
    assert.equal(events.filter((e) => e === 'ended').length, 1, `task ${i} ended exactly once: ${events}`);
    assert.equal(events.filter((e) => e === 'recovered').length, i === 1 || i === 2 ? 1 : 0);
  }

  // a graceful stop exits 0
  await n2.close();
  b.child.kill('SIGTERM');
  assert.deepEqual(await b.exited, { code: 0, signal: null });
});

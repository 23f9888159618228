// Hostile gateway, class 9: what a broken or hostile gateway produces besides
// oversized and malformed frames. Repeated `registered` frames and duplicate
// leases in a flood, a heartbeat answer naming 100 000 lost leases, gigantic
// retry: / id: / event: fields, a stream with the wrong content type, POST
// answers with a 1 GiB body or that never end, and streams cut mid-chunk,
// reset or ended mid-event.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GiB, MiB, leaseFrame, sse } from './support/gateway.js';
import { atTwoSizes, attackThenLease, assertSurvived, assertSizeIndependent, mb, report } from './support/neuron-process.js';

const sleep = (/** @type {number} */ ms) => new Promise((resolve) => setTimeout(resolve, ms));
const REQUEST_BOUND = 16; // maxInFlightRequests' default for these neurons (concurrency under 16)

test('9. `registered` 1 000 times over and one lease 10 000 / 100 000 times: the handler runs once, one ack, one register POST, heartbeats at their own pace; memory the same for both floods', { timeout: 120_000 }, async (t) => {
  const run = (/** @type {number} */ copies) => attackThenLease(async ({ gw, until }) => {
    const registered = sse({ type: 'registered', sessionId: 's-again', capabilities: [{ type: 'hostile/echo', scope: 'any', concurrency: 4 }] });
    await gw.write(registered.repeat(1_000));
    const heartbeatsBefore = gw.sent('heartbeat').length;
    await gw.write(sse(leaseFrame('dup')).repeat(copies));
    await until(() => gw.terminal('dup').length > 0, 'the ack of the duplicated lease');
    await sleep(1_000); // 5 heartbeat intervals
    const beats = gw.sent('heartbeat').length - heartbeatsBefore;
    assert.ok(beats >= 2 && beats <= 8, `${beats} heartbeats in ~1 s at heartbeatIntervalMs 200`);
  }, { neuron: { options: { heartbeatIntervalMs: 200 } } });
  const [small, large] = await atTwoSizes(t, [['10 000 duplicates', 10_000], ['100 000 duplicates', 100_000]], run);
  for (const r of [small, large]) {
    assertSurvived(r, { errors: [] });
    assert.equal(r.gw.terminal('dup').length, 1);
    assert.equal(r.last.handlerCalls, 2, 'the duplicated lease and the one after it');
    assert.equal(r.gw.sent('register').length, 1, 'a repeated `registered` is no reason to register again');
  }
  assertSizeIndependent(small, large);
});

test('9. a heartbeat answer naming 100 000 lost leases, among them a running one: that handler is aborted ("lease lost") and posts nothing, the other ids are ignored, the next lease acked, memory bounded', { timeout: 60_000 }, async (t) => {
  const count = 100_000;
  let armed = true;
  let answerBytes = 0;
  const r = await attackThenLease(async ({ gw, neuron, until }) => {
    await gw.lease('running', 1, 'hostile/wait');
    await until(() => neuron.of('aborted').length > 0, 'the running lease to be aborted');
    armed = false;
  }, {
    neuron: {
      options: { heartbeatIntervalMs: 100 },
      capabilities: [{ type: 'hostile/echo', concurrency: 4 }, { type: 'hostile/wait', concurrency: 1, behaviour: 'until-abort' }],
    },
    gateway: {
      answer: (path, frame) => {
        if (path !== '/neuron/heartbeat' || !armed || !frame.inFlight.some((/** @type {any} */ l) => l.leaseId === 'running')) return;
        const lost = Array.from({ length: count }, (_, i) => `lost-${String(i).padStart(24, '0')}`);
        lost.splice(count >> 1, 0, 'running');
        const body = JSON.stringify({ lostLeases: lost });
        answerBytes = body.length;
        return { body };
      },
    },
  });
  t.diagnostic(`a ${mb(answerBytes)} answer; ${report('100 000 lost leases', r)}`);
  assertSurvived(r, { errors: [] });
  assert.deepEqual(r.neuron.of('aborted').map((e) => [e.leaseId, e.reason]), [['running', 'lease lost']]);
  assert.deepEqual(r.gw.terminal('running'), [], 'a lost lease gets no ack or nack (PROTOCOL 1.3)');
  // The answer is read whole (it must be); the wasm heap keeps its high-water mark.
  assert.ok(r.after.maxRss - r.before.rss <= 96 * MiB, `peak RSS ${mb(r.before.rss)} -> ${mb(r.after.maxRss)}`);
  assert.ok(r.after.heapExternal - r.before.heapExternal <= 48 * MiB, `heapUsed + external kept after a GC: ${mb(r.before.heapExternal)} -> ${mb(r.after.heapExternal)}`);
});

test('9. gigantic fields: retry: of 1 MiB of digits and of int64 max, id: of 8 MiB and of 100 MiB, event: and an unknown field of 100 MiB: the stream kept, the next lease acked, memory bounded; the reconnect after them keeps its own delay and sends no giant header', { timeout: 120_000 }, async (t) => {
  /** @type {number[]} */
  const headerBytes = [];
  const r = await attackThenLease(async ({ gw, neuron, until }) => {
    await gw.write('retry: ');
    await gw.pump(MiB, '9');
    await gw.write('\n\nretry: 9223372036854775807\n\n');
    for (const [field, size] of /** @type {[string, number][]} */ ([['id', 8 * MiB], ['id', 100 * MiB], ['event', 100 * MiB], ['x-unknown', 100 * MiB]])) {
      await gw.write(`${field}: `);
      await gw.pump(size, 'i');
      await gw.write('\n\n');
    }
    await gw.lease('after-fields');
    await until(() => gw.terminal('after-fields').length > 0, 'the ack after the fields');
    // Drop the stream: the reconnect must come after the neuron's own backoff.
    gw.stream.res.destroy();
    await until(() => gw.streams.length === 2 && neuron.of('connection:registered').length === 2, 'the reconnect', 10_000);
  }, {
    neuron: { options: { initialReconnectDelayMs: 100, reconnectJitter: 0 } },
    gateway: {
      onStream: (req, res, gw) => {
        headerBytes.push(req.rawHeaders.reduce((n, h) => n + h.length, 0));
        gw.openStream(req, res);
      },
    },
  });
  t.diagnostic(report('gigantic fields', r));
  assertSurvived(r, { streams: 2 });
  assert.equal(r.gw.terminal('after-fields')[0]?.type, 'ack');
  assert.deepEqual(r.neuron.of('connection:reconnecting').map((e) => e.payload.delayMs), [100], 'retry: does not set the reconnect delay');
  assert.ok(Math.max(...headerBytes) < 4096, `stream request headers of ${headerBytes.join(', ')} bytes`);
  assert.ok(r.after.maxRss - r.before.rss <= 160 * MiB, `peak RSS ${mb(r.after.maxRss)} from ${mb(r.before.rss)}: more than the 16 MiB line limit explains`);
});

test('9. a stream answered 200 with the wrong content type (text/html carrying a lease), then with none: an error each, reconnects with backoff, the lease in the HTML never runs, `text/event-stream; charset=utf-8` is accepted', { timeout: 60_000 }, async (t) => {
  let opened = 0;
  const r = await attackThenLease(async ({ until }) => {
    await until(() => opened === 3, 'the third stream', 10_000);
  }, {
    neuron: { options: { initialReconnectDelayMs: 50 } },
    gateway: {
      onStream: (req, res, gw) => {
        opened++;
        if (opened === 1) {
          gw.openStream(req, res, { contentType: 'text/html' });
          res.end(`<html>${sse(leaseFrame('in-html'))}</html>`);
        } else if (opened === 2) {
          gw.openStream(req, res, { contentType: null });
          res.end(sse(leaseFrame('no-type')));
        } else gw.openStream(req, res, { contentType: 'text/event-stream; charset=utf-8' });
      },
    },
  });
  t.diagnostic(report('wrong content type', r));
  assertSurvived(r, { errors: ['stream-failed', 'stream-failed'], streams: 3 });
  for (const e of r.neuron.errors) assert.match(e.message, /Content-Type/);
  assert.deepEqual(r.gw.terminal('in-html'), []);
  assert.deepEqual(r.gw.terminal('no-type'), []);
  assert.equal(r.neuron.of('connection:reconnecting').length, 2);
});

for (const kind of /** @type {const} */ (['ack', 'heartbeat'])) {
  test(`9. ${kind === 'ack' ? 'an ack' : 'a heartbeat'} answered 200 with a body of 64 MiB / 1 GiB: ${kind === 'ack' ? 'the ack counts as delivered once (only the heartbeat\'s answer is read: PROTOCOL 1.1)' : 'the heartbeats go on'}, the next lease acked, memory the same for both sizes and not the body's size`,
    { timeout: 180_000 },
    async (t) => {
      const run = (/** @type {number} */ size) => {
        let answered = 0;
        return attackThenLease(async ({ gw, until }) => {
          if (kind === 'ack') await gw.lease('big-answer');
          await until(() => {
            if (gw.terminal('big-answer').length > 1) throw new Error('the ack was posted again');
            return answered > 0;
          }, 'the big answer to be sent, or cut by the neuron', 60_000);
          await sleep(1_500); // past the first retry's backoff
          const beats = gw.sent('heartbeat').length;
          await until(() => gw.sent('heartbeat').length > beats, 'a heartbeat after the big answer', 5_000);
        }, {
          neuron: { options: { heartbeatIntervalMs: 200 } },
          gateway: {
            answer(path, frame, res) {
              const big = kind === 'ack' ? path === '/neuron/ack' && frame.leaseId === 'big-answer' : path === '/neuron/heartbeat' && answered === 0;
              if (!big) return;
              answered = -1; // being sent
              res.writeHead(200, { 'content-type': 'application/json' });
              const gw = /** @type {import('./support/gateway.js').HostileGateway} */ (/** @type {unknown} */ (this));
              gw.pump(size, ' ', res).then(() => {
                res.end('{}');
                answered = 1;
                gw.notify();
              }, () => {
                // The neuron read what it wanted and closed the connection.
                answered = 2;
                gw.notify();
              });
              return true;
            },
          },
        });
      };
      const [small, large] = await atTwoSizes(t, [[`64 MiB ${kind} answer`, 64 * MiB], [`1 GiB ${kind} answer`, GiB]], run);
      for (const r of [small, large]) assertSurvived(r, { errors: [] });
      for (const r of [small, large]) {
        assert.ok(r.after.heapExternal - r.before.heapExternal <= 16 * MiB, `heapUsed + external kept after a GC: ${mb(r.before.heapExternal)} -> ${mb(r.after.heapExternal)}`);
      }
      assertSizeIndependent(small, large);
    });
}

test(`9. answers that never end (every heartbeat, and one ack, answered 200 with a body trickling forever): the ack counts once, never more than ${REQUEST_BOUND} + 1 connections, other leases acked, stop() ends by its deadline and the process exits by itself`,
  { timeout: 120_000 },
  async (t) => {
    /** @type {Set<import('node:http').ServerResponse>} */
    const hanging = new Set();
    const r = await attackThenLease(async ({ gw, until }) => {
      await gw.lease('hung-answer');
      const check = () => {
        if (gw.terminal('hung-answer').length > 1) throw new Error('the ack answered 200 was posted again');
        if (gw.sockets.max > REQUEST_BOUND + 1) throw new Error(`${gw.sockets.max} connections open at once`);
        return false;
      };
      // Past the core's 30 s request timeout, when a retry would come.
      await until(check, 'nothing', 36_000).catch((/** @type {Error} */ err) => {
        if (!/timed out/.test(err.message)) throw err;
      });
      await gw.lease('meanwhile');
      await until(() => check() || gw.terminal('meanwhile').length > 0, 'the ack of a later lease', 45_000);
    }, {
      timeoutMs: 45_000,
      neuron: { options: { heartbeatIntervalMs: 100 } },
      gateway: {
        answer(path, frame, res) {
          if (path !== '/neuron/heartbeat' && !(path === '/neuron/ack' && frame.leaseId === 'hung-answer')) return;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"lostLeases":[');
          const tick = setInterval(() => res.write(' '), 100);
          res.on('close', () => clearInterval(tick));
          hanging.add(res);
          return true;
        },
      },
    });
    t.diagnostic(`${report('answers that never end', r)}; stop() took ${r.last.stopMs.toFixed(0)} ms; at most ${r.gw.sockets.max} connections`);
    for (const res of hanging) res.destroy();
    assertSurvived(r, { errors: [] });
    assert.equal(r.after.stats.requestBound, REQUEST_BOUND, 'stats().requestBound: the bound the connections are held to');
    assert.ok(r.gw.sockets.max <= REQUEST_BOUND + 1, `${r.gw.sockets.max} connections open at once`);
    assert.ok(r.last.stopMs <= 5_000 + 1_000, `stop({ drain: false }) took ${r.last.stopMs.toFixed(0)} ms`);
  });

test('9. a stream cut mid-chunk, reset (RST) mid-event and ended cleanly mid-event: each partial event is discarded, the neuron reconnects, the lease resent on the new stream is acked once, and a handler running across the cuts still acks', { timeout: 60_000 }, async (t) => {
  const half = (/** @type {string} */ id) => {
    const event = sse(leaseFrame(id));
    return event.slice(0, event.length >> 1);
  };
  /** @type {[string, (res: import('node:http').ServerResponse) => void][]} */
  const cuts = [
    // A chunk that announces 4 KiB, 10 bytes of it, then the connection closes.
    ['cut-mid-chunk', (res) => { res.socket?.write('1000\r\ndata: {"ty'); res.socket?.destroy(); }],
    ['reset-mid-event', (res) => res.socket?.resetAndDestroy()],
    ['ended-mid-event', (res) => res.end()],
  ];
  const r = await attackThenLease(async ({ gw, neuron, until }) => {
    await gw.lease('across', 1, 'hostile/slow'); // its handler holds 1 s
    for (const [id, cut] of cuts) {
      const streams = gw.streams.length;
      await gw.write(half(id));
      await sleep(50);
      cut(gw.stream.res);
      await until(() => gw.streams.length === streams + 1 && neuron.of('connection:registered').length === streams + 1, `the reconnect after ${id}`, 10_000);
      await gw.lease(id);
      await until(() => gw.terminal(id).length > 0, `the ack of ${id}, resent`);
    }
    await until(() => gw.terminal('across').length > 0, 'the ack of the lease that ran across the cuts');
  }, {
    neuron: {
      options: { initialReconnectDelayMs: 50 },
      gateMs: 1_000,
      capabilities: [{ type: 'hostile/echo', concurrency: 4 }, { type: 'hostile/slow', concurrency: 1, behaviour: 'gate' }],
    },
  });
  t.diagnostic(report('cut / reset / ended streams', r));
  assertSurvived(r, { errors: [], streams: 4 });
  for (const [id] of cuts) assert.equal(r.gw.terminal(id)[0]?.type, 'ack', id);
  assert.equal(r.gw.terminal('across')[0]?.type, 'ack', 'a running handler keeps running across a lost stream; its ack is still posted (PROTOCOL 1.2)');
  assert.equal(r.neuron.of('connection:reconnecting').length, 3);
});

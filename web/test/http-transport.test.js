// HttpTransport used on its own (no Neuron): its SSE is cut by the core's
// parser, so it reads every line-ending style, chunking, BOM and comment the
// Neuron's byte path reads, and drops an event over the bound instead of
// buffering it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { HttpTransport } from '../src/index.js';

/**
 * A gateway that writes `chunks` on the stream, one per `gapMs`, then holds it open.
 * @param {(string | Uint8Array)[]} chunks @param {number} [gapMs]
 */
async function sseServer(chunks, gapMs = 0) {
  /** @type {Set<import('node:http').ServerResponse>} */
  const open = new Set();
  const server = createServer(async (req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    open.add(res);
    res.on('close', () => open.delete(res));
    for (const c of chunks) {
      if (res.destroyed) return;
      res.write(c);
      if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', () => r(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => {
      for (const res of open) res.destroy();
      return new Promise((r) => server.close(() => r(undefined)));
    },
  };
}

/** @param {string} url */
function transportFor(url) {
  const t = new HttpTransport({ gatewayUrl: url, neuronId: 'raw', auth: () => 'tok', initialReconnectDelayMs: 60_000 });
  /** @type {any[]} */
  const frames = [];
  /** @type {Error[]} */
  const errors = [];
  t.subscribe({ onFrame: (f) => frames.push(f), onError: (e) => errors.push(e) });
  return { t, frames, errors };
}

/** @param {() => boolean} cond */
async function until(cond, ms = 5000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('every line ending, a BOM, comments, fields without a space and multi-line data, fed one byte at a time', async (t) => {
  const text = '\ufeff: hello\r\n'
    + 'data:{"type":"cancel","leaseId":"a"}\r\n\r\n'
    + 'event: message\rdata: {"type":"cancel",\rdata: "leaseId":"b"}\r\r'
    + 'id: 7\ndata\ndata: {"type":"cancel","leaseId":"c"}\n\n'
    + 'retry: 10\n: a comment\ndata: {"type":"cancel","leaseId":"d"}\n\n';
  const bytes = new TextEncoder().encode(text);
  const gw = await sseServer([...bytes].map((b) => Uint8Array.of(b)), 0);
  t.after(() => gw.close());
  const { t: tr, frames, errors } = transportFor(gw.url);
  await tr.start();
  t.after(() => tr.stop());
  await until(() => frames.length === 4);
  assert.deepEqual(frames.map((f) => f.leaseId), ['a', 'b', 'c', 'd']);
  assert.deepEqual(errors, []);
});

test('an event over the bound is dropped with an error, and the stream goes on', async (t) => {
  const big = `data: {"type":"cancel","leaseId":"${'x'.repeat(17 * 1024 * 1024)}"}\n\n`;
  const gw = await sseServer([big.slice(0, 1 << 20), big.slice(1 << 20), 'data: {"type":"cancel","leaseId":"after"}\n\n']);
  t.after(() => gw.close());
  const { t: tr, frames, errors } = transportFor(gw.url);
  await tr.start();
  t.after(() => tr.stop());
  await until(() => frames.length === 1);
  assert.equal(frames[0].leaseId, 'after');
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /dropped 1 SSE event\(s\) over 16777216 bytes/);
});

test('undecodable data is reported and skipped; invalid UTF-8 does not stop the stream', async (t) => {
  const gw = await sseServer([
    'data: {not json\n\n',
    Uint8Array.of(...new TextEncoder().encode('data: {"type":"cancel","leaseId":"'), 0xff, 0xc3, ...new TextEncoder().encode('"}\n\n')),
    'data: {"type":"cancel","leaseId":"ok"}\n\n',
  ]);
  t.after(() => gw.close());
  const { t: tr, frames, errors } = transportFor(gw.url);
  await tr.start();
  t.after(() => tr.stop());
  await until(() => frames.length === 2);
  assert.equal(frames[0].leaseId, '\ufffd\ufffd');
  assert.equal(frames[1].leaseId, 'ok');
  assert.equal(errors.length, 1);
  assert.match(errors[0].message, /undecodable frame dropped/);
});

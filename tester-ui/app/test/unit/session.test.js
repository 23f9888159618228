// Record and replay: the session file's writer, its reader (every problem
// named with where it is), the replay schedule and the comparison summary.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameLog } from '../../src/firehose.js';
import { compareReplay, exportSession, outboundSummary, readSession, replaySchedule, SESSION_FORMAT } from '../../src/session.js';
import { EXAMPLES } from '../../src/capabilities.js';

function recorded() {
  const log = new FrameLog(100);
  log.push({ t: 5000, dir: 'conn', type: 'stream-open', frame: { url: 'http://gw/neuron/events' } });
  log.push({ t: 5010, dir: 'out', type: 'register', frame: { type: 'register' }, status: 200 });
  log.push({ t: 5020, dir: 'in', type: 'registered', frame: { type: 'registered', sessionId: 's-1' } });
  log.push({ t: 5520, dir: 'in', type: 'lease', leaseId: 'l-1', frame: { type: 'lease', leaseId: 'l-1', task: { taskId: 't-1', type: 'core/demo.echo', input: { text: 'a' } } } });
  log.push({ t: 5530, dir: 'out', type: 'ack', leaseId: 'l-1', frame: { type: 'ack', leaseId: 'l-1', output: { echoed: 'a' } }, status: 200 });
  log.push({ t: 6020, dir: 'in', type: 'cancel', leaseId: 'l-2', frame: { type: 'cancel', leaseId: 'l-2' } });
  log.push({ t: 6030, dir: 'out', type: 'nack', leaseId: 'l-2', frame: { type: 'nack', leaseId: 'l-2', kind: 'cancelled', code: 'X' }, status: 503 });
  log.push({ t: 6040, dir: 'out', type: 'heartbeat', frame: { type: 'heartbeat', inFlight: [] }, status: 200 });
  return exportSession({ neuronId: 'n-1', gatewayUrl: 'http://gw', startedAt: 5000, capabilities: [EXAMPLES.echo.spec], entries: log.toArray(), now: Date.UTC(2026, 10, 26) });
}

test('an exported session reads back equal, and survives a JSON round trip', () => {
  const s = recorded();
  assert.equal(s.format, SESSION_FORMAT);
  assert.equal(s.exportedAt, '2026-11-26T00:00:00.000Z');
  const r = readSession(JSON.stringify(s));
  assert.ok(r.ok);
  assert.deepEqual(r.session, JSON.parse(JSON.stringify(s)));
});

test('the reader refuses what it cannot replay, saying where', () => {
  const good = recorded();
  /** @param {(s: any) => void} edit */
  const bad = (edit) => {
    const s = structuredClone(good);
    edit(s);
    const r = readSession(JSON.stringify(s));
    assert.equal(r.ok, false);
    return /** @type {{ error: string }} */ (r).error;
  };
  assert.match(/** @type {any} */ (readSession('{')).error, /^not JSON/);
  assert.match(/** @type {any} */ (readSession('[]')).error, /JSON object/);
  assert.match(bad((s) => { s.format = 'har'; }), /not a neuron-tester session \(format is "har"/);
  assert.match(bad((s) => { s.version = 2; }), /version 2 is not supported/);
  assert.match(bad((s) => { s.neuronId = ''; }), /neuronId/);
  assert.match(bad((s) => { delete s.capabilities; }), /`capabilities` must be an array/);
  assert.match(bad((s) => { s.capabilities[0].code = 5; }), /capabilities\[0\]\.code must be a string/);
  assert.match(bad((s) => { s.capabilities[0].concurrency = 0; }), /capabilities\[0\]\.concurrency must be an integer >= 1/);
  assert.match(bad((s) => { s.entries = {}; }), /`entries` must be an array/);
  assert.match(bad((s) => { s.entries[3].seq = 2; }), /entries\[3\]\.seq must be an integer greater than the previous/);
  assert.match(bad((s) => { s.entries[1].t = 'noon'; }), /entries\[1\]\.t must be a time/);
  assert.match(bad((s) => { s.entries[2].dir = 'up'; }), /entries\[2\]\.dir/);
  assert.match(bad((s) => { s.entries[3].frame = 'lease'; }), /entries\[3\]\.frame must be a frame object/);
  assert.match(bad((s) => { delete s.entries[2].frame.type; }), /entries\[2\]\.frame must be a frame object with a "type"/);
});

test('the reader fills optional entry fields an older or hand-written file left out', () => {
  const s = structuredClone(recorded());
  delete s.entries[2].leaseId;
  delete s.entries[2].note;
  delete s.entries[2].status;
  const r = readSession(JSON.stringify(s));
  assert.ok(r.ok);
  assert.equal(r.session.entries[2].leaseId, '');
  assert.equal(r.session.entries[2].status, null);
});

test('the replay schedule: inbound frames only, at their offsets from the first, scaled by speed', () => {
  const s = recorded();
  assert.deepEqual(replaySchedule(s).map((x) => [x.at, x.frame.type]), [[0, 'registered'], [500, 'lease'], [1000, 'cancel']]);
  assert.deepEqual(replaySchedule(s, { speed: 2 }).map((x) => x.at), [0, 250, 500]);
  const frames = replaySchedule(s).map((x) => x.frame);
  frames[1].leaseId = 'changed';
  assert.equal(/** @type {any} */ (s.entries[3].frame).leaseId, 'l-1', 'the schedule holds copies');
  assert.deepEqual(replaySchedule({ ...s, entries: [] }), []);
  assert.throws(() => replaySchedule(s, { speed: 0 }), /speed/);
  // Clock skew in a recording never makes an offset go back.
  const skewed = structuredClone(s);
  skewed.entries[5].t = 5100;
  assert.deepEqual(replaySchedule(skewed).map((x) => x.at), [0, 500, 500]);
});

test('outboundSummary keeps what a replay must reproduce: verdicts per lease, not heartbeats or times', () => {
  assert.deepEqual(outboundSummary(recorded().entries), ['ack l-1 {"echoed":"a"}', 'nack l-2 cancelled X']);
});

test('compareReplay: leases may finish in another order, but each lease must post the same frames in the same order', () => {
  const rec = ['ack l-1 {"a":1}', 'ack l-2 {"b":2}', 'nack l-3 retryable'];
  assert.deepEqual(compareReplay(rec, ['ack l-2 {"b":2}', 'nack l-3 retryable', 'ack l-1 {"a":1}']),
    { same: true, firstDifference: 'none' });
  const differ = compareReplay(rec, ['ack l-1 {"a":1}', 'ack l-2 {"b":3}', 'nack l-3 retryable']);
  assert.equal(differ.same, false);
  assert.equal(differ.firstDifference, 'recorded "ack l-2 {\\"b\\":2}", replayed "ack l-2 {\\"b\\":3}"');
  assert.equal(compareReplay(rec, rec.slice(0, 2)).same, false, 'a missing frame differs');
  assert.equal(compareReplay(['progress l-1', 'ack l-1 {}'], ['ack l-1 {}', 'progress l-1']).same, false,
    'one lease\'s frames keep their order');
});

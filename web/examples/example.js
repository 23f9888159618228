// A Neuron hosted in a browser tab: one echo capability, the frame firehose,
// connection state and ack/nack counters. Plain DOM, no build step.
import { Neuron } from '../src/index.js';

const CAPABILITY = 'core/example.echo';
const MAX_ROWS = 500;
const ID_KEY = 'neuron-sdk-example.neuronId';

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const form = $('settings');
const fields = { gateway: $('gateway'), token: $('token'), neuronId: $('neuronId') };
const startBtn = $('start');
const stopBtn = $('stop');
const frames = $('frames');

// ---- settings: query params, then localStorage for the neuron id ----
const params = new URLSearchParams(location.search);
fields.gateway.value = params.get('gateway') || 'http://127.0.0.1:4800';
fields.token.value = params.get('token') || '';
fields.neuronId.value = localStorage.getItem(ID_KEY) || `tab-${Math.random().toString(36).slice(2, 10)}`;
fields.neuronId.addEventListener('change', () => localStorage.setItem(ID_KEY, fields.neuronId.value.trim()));

/** @type {Neuron | null} */
let neuron = null;
/** @type {ReturnType<typeof setInterval> | null} */
let statsTimer = null;

/** @param {string} state @param {string} [detail] */
function setState(state, detail) {
  $('state').dataset.state = state;
  $('state').textContent = detail ? `${state} (${detail})` : state;
}

/** @param {boolean} running */
function setRunning(running) {
  startBtn.disabled = running;
  stopBtn.disabled = !running;
  for (const f of Object.values(fields)) f.disabled = running;
}

/** Sleep that ends early, rejecting with the abort reason, when `signal` fires. */
function sleep(/** @type {number} */ ms, /** @type {AbortSignal} */ signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => { clearTimeout(t); reject(signal.reason); };
    const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(undefined); }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Echo the input after input.waitMs (default 300 ms), reporting progress in up to 4 steps. */
async function echo(/** @type {any} */ input, /** @type {any} */ ctx) {
  const waitMs = Math.max(0, Math.min(Number(input?.waitMs ?? 300) || 0, 60_000));
  const steps = 4;
  for (let i = 0; i < steps; i++) {
    ctx.progress({ percent: Math.round((i / steps) * 100), message: `waiting ${waitMs} ms` });
    await sleep(waitMs / steps, ctx.signal); // an AbortError here ends the lease as nack(cancelled)
  }
  ctx.progress({ percent: 100, message: 'done' });
  return { echo: input ?? null };
}

/** @param {any} frame */
function appendFrame(frame) {
  const li = document.createElement('li');
  const leaseId = frame.leaseId ?? '';
  li.dataset.type = frame.type;
  if (leaseId) li.dataset.leaseId = leaseId;
  li.textContent = `${new Date().toISOString().slice(11, 23)}  ${frame.type}  ${leaseId}`;
  const atBottom = frames.scrollTop + frames.clientHeight >= frames.scrollHeight - 4;
  frames.append(li);
  while (frames.childElementCount > MAX_ROWS) frames.firstElementChild.remove();
  if (atBottom) frames.scrollTop = frames.scrollHeight;
}

function showStats() {
  const s = neuron?.stats();
  if (!s) return;
  $('acked').textContent = String(s.leasesAcked);
  $('nacked').textContent = String(s.nacksRetryable + s.nacksTerminal + s.nacksSchemaMismatch + s.nacksCancelled);
  $('nacked-cancelled').textContent = String(s.nacksCancelled);
  $('running').textContent = String(s.capabilities.reduce((n, c) => n + c.running, 0));
}

function start() {
  const gatewayUrl = fields.gateway.value.trim();
  const neuronId = fields.neuronId.value.trim();
  const token = fields.token.value.trim();
  localStorage.setItem(ID_KEY, neuronId);
  $('last-error').textContent = '';
  $('session').textContent = '–';

  const n = new Neuron({ gatewayUrl, neuronId, auth: () => token });
  neuron = n;
  n.handle({ type: CAPABILITY, scope: 'any', concurrency: 2 }, echo);
  n.on('frame', appendFrame);
  n.on('connection:open', () => setState('open'));
  n.on('connection:registered', ({ sessionId }) => {
    setState('registered');
    $('session').textContent = sessionId;
  });
  n.on('connection:reconnecting', ({ attempt, delayMs, reason }) => setState('reconnecting', `attempt ${attempt}, ${delayMs} ms: ${reason}`));
  n.on('connection:close', (reason) => { if (neuron === n) setState('closed', reason); });
  n.on('error', (err) => { $('last-error').textContent = `${err.name}: ${err.message}`; });

  setRunning(true);
  setState('connecting');
  statsTimer = setInterval(showStats, 250);
  n.start().catch((err) => {
    $('last-error').textContent = `start failed: ${err.message}`;
    setState('error');
  });
}

async function stop() {
  const n = neuron;
  if (!n) return;
  stopBtn.disabled = true;
  setState('stopping');
  await n.stop({ drain: true, timeoutMs: 5_000 });
  if (statsTimer) clearInterval(statsTimer);
  statsTimer = null;
  showStats();
  neuron = null;
  setState('stopped');
  setRunning(false);
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  if (!neuron) {
    try {
      start();
    } catch (err) {
      $('last-error').textContent = String(/** @type {Error} */ (err).message ?? err);
      setRunning(false);
      setState('error');
    }
  }
});
stopBtn.addEventListener('click', () => { stop(); });

startBtn.disabled = false;
document.body.dataset.ready = 'yes'; // the SDK (and its wasm core) loaded
// ?autostart=1 (scripts/run): connect at once with the settings from the URL.
if (params.get('autostart') === '1' && fields.token.value) form.requestSubmit();

// @ts-check
// The neuron-tester page: a real neuron in this tab, its wire live.
//
// URL parameters (scripts/run passes them): gateway, token, autostart=1,
// demo=1 (echo + sleep capabilities), idleTimeoutMs and heartbeatIntervalMs
// (the SDK options). Connection settings and capabilities
// are kept in localStorage, so a reload brings the same neuron back.

import { render } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { html, useThrottledUpdates } from './ui/lib.js';
import { TesterHost } from './host.js';
import { DevApi } from './dev-api.js';
import { EXAMPLES } from './capabilities.js';
import { compareReplay, exportSession, outboundSummary, readSession } from './session.js';
import { ConnectionBadge, ConnectPanel, CapabilitiesPanel, SendWorkPanel, FaultsPanel, SessionPanel } from './ui/panels.js';
import { Leases, Firehose } from './ui/wire.js';

const STORE_KEY = 'neuron-tester/v1';
const params = new URLSearchParams(location.search);

/** @typedef {import('./session.js').CapabilitySpec} CapabilitySpec */

function loadSaved() {
  try {
    return JSON.parse(localStorage.getItem(STORE_KEY) ?? '{}') ?? {};
  } catch {
    return {};
  }
}

/**
 * Gives each capability a stable `key` for the editor's rows (an index would
 * move one row's text into another when a row is removed).
 * @param {CapabilitySpec[]} caps
 */
function withKeys(caps) {
  return caps.map((c) => (/** @type {any} */ (c).key ? c : { ...c, key: crypto.randomUUID() }));
}

function initialState() {
  const saved = loadSaved();
  const neuronId = typeof saved.neuronId === 'string' && saved.neuronId ? saved.neuronId : `tester-${crypto.randomUUID().slice(0, 8)}`;
  /** @type {CapabilitySpec[]} */
  const caps = withKeys(!params.has('demo') && Array.isArray(saved.caps) && saved.caps.length ? saved.caps : [EXAMPLES.echo.spec, EXAMPLES.sleep.spec]);
  return {
    form: {
      gatewayUrl: params.get('gateway') ?? saved.gatewayUrl ?? 'http://127.0.0.1:8787',
      token: params.get('token') ?? saved.token ?? '',
      neuronId,
      drain: saved.drain ?? true,
      timeoutMs: saved.timeoutMs ?? 10_000,
    },
    caps,
  };
}

const host = new TesterHost();
// For tests and the console: the host and its models (read-only use).
/** @type {any} */ (globalThis).neuronTester = host;

function App() {
  const init = useMemo(initialState, []);
  const [form, setFormState] = useState(init.form);
  const [caps, setCapsState] = useState(init.caps);
  const setCaps = (/** @type {CapabilitySpec[]} */ c) => setCapsState(withKeys(c));
  const [fieldErrors, setFieldErrors] = useState(/** @type {Record<number, any>} */ ({}));
  const [devApi, setDevApi] = useState(false);
  const [busy, setBusy] = useState(false);
  const [keepAlivesPaused, setKeepAlivesPaused] = useState(false);
  const [notice, setNotice] = useState('');
  const [replayResult, setReplayResult] = useState('');
  const [recorded, setRecorded] = useState(/** @type {string[] | null} */ (null));
  const subscribe = useCallback((/** @type {() => void} */ fn) => host.subscribe(fn), []);
  useThrottledUpdates(subscribe, 200); // the firehose redraws itself more often

  const api = useMemo(() => new DevApi(form.gatewayUrl), [form.gatewayUrl]);
  useEffect(() => {
    let live = true;
    api.available().then((ok) => live && setDevApi(ok));
    return () => { live = false; };
  }, [api]);

  // The gateway keeps its fault switch across page loads: show what it is.
  useEffect(() => {
    if (!devApi) return;
    api.faults().then((f) => setKeepAlivesPaused(pausedFor(f)), () => {});
  }, [devApi, api, form.neuronId]);

  useEffect(() => {
    localStorage.setItem(STORE_KEY, JSON.stringify({ ...form, caps }));
  }, [form, caps]);

  // Inline validation as the capabilities are edited.
  useEffect(() => setFieldErrors(TesterHost.check(caps).errors), [caps]);

  // A replay's verdict once its last frame has played.
  useEffect(() => {
    if (host.mode !== 'replay' || !host.replayDone || !recorded) return;
    const replayed = outboundSummary(host.log.toArray());
    const { same, firstDifference } = compareReplay(recorded, replayed);
    const note = host.replayNote ? ` (${host.replayNote})` : '';
    setReplayResult(same
      ? `Replay done: the neuron posted the same ${replayed.length} frames as in the recording${note}.`
      : `Replay done: the posts differ from the recording (recorded ${recorded.length}, replayed ${replayed.length}); first difference: ${firstDifference}${note}`);
    setRecorded(null);
  });

  const setForm = (/** @type {any} */ p) => setFormState((f) => ({ ...f, ...p }));
  const fail = (/** @type {unknown} */ err) => setNotice(/** @type {Error} */ (err)?.message ?? String(err));

  const start = async () => {
    setNotice('');
    setBusy(true);
    try {
      let token = form.token;
      if (!token && devApi) {
        token = await api.mintToken('service', { sub: form.neuronId });
        setForm({ token });
      }
      if (!token) throw new Error('a token is needed: paste one, or mint a dev token on the local gateway');
      await host.start({ gatewayUrl: form.gatewayUrl, token, neuronId: form.neuronId, capabilities: caps,
        idleTimeoutMs: Number(params.get('idleTimeoutMs')) || undefined, heartbeatIntervalMs: Number(params.get('heartbeatIntervalMs')) || undefined });
    } catch (err) {
      const fe = /** @type {any} */ (err).fieldErrors;
      if (fe) setFieldErrors(fe);
      fail(err);
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    if (params.get('autostart') === '1') start();
  }, []);

  const stop = () => {
    // Keep-alives paused for this neuron would greet its next start with a silent stream.
    if (keepAlivesPaused) setKeepAlives(false);
    return host.stop({ drain: form.drain, timeoutMs: form.timeoutMs }).catch(fail);
  };
  const mint = () => api.mintToken('service', { sub: form.neuronId }).then((token) => setForm({ token }), fail);
  const send = async (/** @type {{ type: string, input: unknown, onBehalfOf?: string }} */ task, /** @type {number} */ n) => {
    const batch = 16;
    for (let i = 0; i < n; i += batch) {
      await Promise.all(Array.from({ length: Math.min(batch, n - i) }, () => api.enqueue(task)));
    }
  };
  const cancel = (/** @type {string} */ taskId) => api.cancel(taskId).then(() => setNotice(`cancel of ${taskId} sent`), fail);
  const revoke = (/** @type {string} */ type) => api.revoke(form.neuronId, type).catch(fail);
  const disconnect = () => api.disconnect(form.neuronId).catch(fail);
  /** Whether the gateway's fault switch pauses this neuron's keep-alives. @param {{ keepAlives: boolean, neuronIds?: string[] }} f */
  const pausedFor = (f) => f.keepAlives === false && (!f.neuronIds || f.neuronIds.includes(form.neuronId));
  const setKeepAlives = (/** @type {boolean} */ paused) => {
    setKeepAlivesPaused(paused); // at once; put right by the gateway's answer
    api.keepAlives(!paused, form.neuronId).then((f) => setKeepAlivesPaused(pausedFor(f)), (err) => {
      setKeepAlivesPaused(!paused);
      fail(err);
    });
  };
  const onConcurrency = (/** @type {string} */ type, /** @type {number} */ n) => host.updateConcurrency(type, n).catch(fail);

  const onExport = () => {
    const session = exportSession({ neuronId: host.neuronId, gatewayUrl: host.gatewayUrl, startedAt: host.startedAt, capabilities: host.capabilities, entries: host.log.toArray() });
    const blob = new Blob([JSON.stringify(session, null, 1)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `neuron-session-${host.neuronId}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  };
  const onLoad = async (/** @type {File} */ file) => {
    setReplayResult('');
    const r = readSession(await file.text());
    if (!r.ok) {
      setReplayResult(`Cannot replay ${file.name}: ${r.error}`);
      return;
    }
    setRecorded(outboundSummary(r.session.entries));
    setCaps(r.session.capabilities);
    setReplayResult(`Replaying ${file.name}: ${r.session.entries.filter((e) => e.dir === 'in').length} inbound frames…`);
    host.replay(r.session).catch((err) => setReplayResult(`Replay failed: ${err.message}`));
  };

  return html`<div class="app">
    <header class="top">
      <h1>neuron tester</h1>
      <${ConnectionBadge} host=${host} />
      <span class="small">${host.neuronId || form.neuronId}${host.gatewayUrl ? ` → ${host.gatewayUrl}` : ''}</span>
    </header>
    ${notice ? html`<div class="notice" role="alert" data-testid="notice">${notice} <button class="link" onClick=${() => setNotice('')} aria-label="dismiss">dismiss</button></div>` : ''}
    <main class="columns">
      <div class="left">
        <${ConnectPanel} host=${host} form=${form} setForm=${setForm} onStart=${start} onStop=${stop} onMint=${mint} devApi=${devApi} busy=${busy} />
        <${CapabilitiesPanel} host=${host} caps=${caps} setCaps=${setCaps} errors=${fieldErrors} onConcurrency=${onConcurrency} />
        <${SendWorkPanel} host=${host} caps=${caps} send=${send} cancel=${cancel} revoke=${revoke} disconnect=${disconnect} devApi=${devApi} />
        <${FaultsPanel} host=${host} devApi=${devApi} keepAlivesPaused=${keepAlivesPaused} setKeepAlives=${setKeepAlives} />
        <${SessionPanel} host=${host} onExport=${onExport} onLoad=${onLoad} result=${replayResult} />
      </div>
      <div class="right">
        <${Leases} host=${host} onCancel=${cancel} canCancel=${devApi && host.mode === 'live'} />
        <${Firehose} host=${host} />
      </div>
    </main>
  </div>`;
}

render(html`<${App} />`, /** @type {HTMLElement} */ (document.getElementById('app')));

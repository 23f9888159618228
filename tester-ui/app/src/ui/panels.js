// @ts-check
// The left-hand side: connect, capabilities, send work, faults, record / replay.

import { useState } from 'preact/hooks';
import { html, useTicker, duration, NumberField } from './lib.js';
import { EXAMPLES } from '../capabilities.js';

/**
 * @typedef {import('../host.js').TesterHost} TesterHost
 * @typedef {import('../session.js').CapabilitySpec} CapabilitySpec
 * @typedef {import('../capabilities.js').FieldErrors} FieldErrors
 */

/** @param {{ host: TesterHost }} p */
export function ConnectionBadge({ host }) {
  const c = host.conn;
  useTicker(c.state === 'reconnecting', 200);
  /** @type {string} */
  let text = c.state;
  if (c.state === 'registered') text = `registered · ${c.sessionId}`;
  if (c.state === 'reconnecting') {
    const left = Math.max(0, c.reconnectAt - Date.now());
    text = `reconnecting · attempt ${c.attempt} · in ${(left / 1000).toFixed(1)} s`;
  }
  if (c.state === 'closed' && c.reason) text = `closed · ${c.reason}`;
  if (host.mode === 'replay' && c.state !== 'idle') text = `replay · ${text}`;
  return html`<span class=${`badge ${c.state}`} role="status" aria-live="polite" data-testid="conn-state" data-state=${c.state}>${text}</span>`;
}

/**
 * @param {{
 *   host: TesterHost,
 *   form: { gatewayUrl: string, token: string, neuronId: string, drain: boolean, timeoutMs: number },
 *   setForm: (p: Partial<{ gatewayUrl: string, token: string, neuronId: string, drain: boolean, timeoutMs: number }>) => void,
 *   onStart: () => void, onStop: () => void, onMint: () => void, devApi: boolean, busy: boolean,
 * }} p
 */
export function ConnectPanel({ host, form, setForm, onStart, onStop, onMint, devApi, busy }) {
  const running = host.running;
  const c = host.conn;
  return html`<section class="panel" aria-labelledby="connect-h">
    <h2 id="connect-h">Connect</h2>
    <label class="field">gateway URL
      <input value=${form.gatewayUrl} disabled=${running} onInput=${(/** @type {any} */ e) => setForm({ gatewayUrl: e.currentTarget.value })} data-testid="gateway-url" /></label>
    <label class="field">token
      <span class="row"><input type="password" value=${form.token} disabled=${running} autocomplete="off"
        onInput=${(/** @type {any} */ e) => setForm({ token: e.currentTarget.value })} data-testid="token" />
      <button onClick=${onMint} disabled=${running || !devApi} title=${devApi ? 'mint a service token on the local dev gateway' : 'only the local dev gateway mints tokens'} data-testid="mint">Dev token</button></span></label>
    <label class="field">neuronId <span class="small">(kept across reloads)</span>
      <input value=${form.neuronId} disabled=${running} onInput=${(/** @type {any} */ e) => setForm({ neuronId: e.currentTarget.value })} data-testid="neuron-id" /></label>
    <div class="row wrap">
      <button class="primary" onClick=${onStart} disabled=${running || busy} data-testid="start">Start</button>
      <button onClick=${onStop} disabled=${!running || c.state === 'stopping'} data-testid="stop">Stop</button>
      <label><input type="checkbox" checked=${form.drain} onChange=${(/** @type {any} */ e) => setForm({ drain: e.currentTarget.checked })} data-testid="drain" /> drain</label>
      <label>timeout <input type="number" min="0" step="500" value=${form.timeoutMs} style="width:5em"
        onInput=${(/** @type {any} */ e) => setForm({ timeoutMs: Number(e.currentTarget.value) })} aria-label="stop timeout in ms" /> ms</label>
    </div>
    ${c.state === 'registered' || c.effective.length ? html`<div class="small">
      <div>effective: ${c.effective.map((x) => html`<span class="pill ok" key=${x.type}>${x.type} ×${x.concurrency}</span> `)}</div>
      ${c.rejected.length ? html`<div>rejected: ${c.rejected.map((x) => html`<span class="pill bad" key=${x.type} title=${x.reason}>${x.type}: ${x.reason}</span> `)}</div>` : ''}
    </div>` : ''}
    ${c.state === 'reconnecting' ? html`<div class="small">last close: ${c.reason}; next attempt ${c.attempt} after ${duration(c.delayMs)}</div>` : ''}
    ${host.errors.length ? html`<details class="small errors"><summary>${host.errors.length} error event${host.errors.length > 1 ? 's' : ''}</summary>
      <ul>${host.errors.slice(-10).reverse().map((e) => html`<li key=${e.at}>${new Date(e.at).toLocaleTimeString()} ${e.message}</li>`)}</ul></details>` : ''}
  </section>`;
}

/**
 * @param {{
 *   host: TesterHost, caps: CapabilitySpec[], setCaps: (c: CapabilitySpec[]) => void,
 *   errors: Record<number, FieldErrors>, onConcurrency: (type: string, n: number) => void,
 * }} p
 */
export function CapabilitiesPanel({ host, caps, setCaps, errors, onConcurrency }) {
  const running = host.running;
  const [open, setOpen] = useState(/** @type {number | null} */ (null));
  const update = (/** @type {number} */ i, /** @type {Partial<CapabilitySpec>} */ p) => setCaps(caps.map((c, j) => (j === i ? { ...c, ...p } : c)));
  const addExample = (/** @type {string} */ key) => {
    const ex = EXAMPLES[key];
    if (!ex) return;
    let type = ex.spec.type;
    for (let n = 2; caps.some((c) => c.type === type); n++) type = `${ex.spec.type}-${n}`;
    setCaps([...caps, { ...ex.spec, type }]);
    setOpen(caps.length);
  };
  return html`<section class="panel" aria-labelledby="caps-h">
    <h2 id="caps-h">Capabilities</h2>
    ${running ? html`<p class="small">Running: concurrency changes apply live (update-capability); other edits apply at the next start.</p>` : ''}
    <ul class="caps">${caps.map((c, i) => {
      const err = errors[i] ?? {};
      const live = running && host.capabilities.some((x) => x.type === c.type);
      return html`<li key=${/** @type {any} */ (c).key ?? i} class="cap" data-testid="capability" data-type=${c.type}>
        <div class="row between">
          <button class="link" onClick=${() => setOpen(open === i ? null : i)} aria-expanded=${open === i}>${c.type || '(no type)'}</button>
          <span class="row">
            <label>concurrency <${NumberField} min="1" value=${c.concurrency} style="width:4em" data-testid="concurrency" aria-label=${`concurrency of ${c.type}`}
              onCommit=${(/** @type {string} */ text) => {
                const n = Number(text);
                update(i, { concurrency: n });
                if (live && Number.isInteger(n) && n >= 1) onConcurrency(c.type, n);
              }} /></label>
            <button onClick=${() => setCaps(caps.filter((_, j) => j !== i))} disabled=${running} aria-label=${`remove ${c.type}`}>✕</button>
          </span>
        </div>
        ${err.concurrency ? html`<div class="err" role="alert">${err.concurrency}</div>` : ''}
        ${open === i || Object.keys(err).length ? html`<div class="cap-edit">
          <label class="field">type <input value=${c.type} aria-label=${`type of capability ${i + 1}`} onInput=${(/** @type {any} */ e) => update(i, { type: e.currentTarget.value })} /></label>
          ${err.type ? html`<div class="err" role="alert">${err.type}</div>` : ''}
          <label class="field">scope: on behalf of user <span class="small">(empty: any)</span>
            <input value=${c.scopeUser} placeholder="user:abc" onInput=${(/** @type {any} */ e) => update(i, { scopeUser: e.currentTarget.value })} /></label>
          <label class="field">input JSON Schema <textarea rows="4" class="mono" spellcheck=${false} value=${c.inputSchema} onInput=${(/** @type {any} */ e) => update(i, { inputSchema: e.currentTarget.value })}></textarea></label>
          ${err.inputSchema ? html`<div class="err" role="alert">${err.inputSchema}</div>` : ''}
          <label class="field">output JSON Schema <textarea rows="3" class="mono" spellcheck=${false} value=${c.outputSchema} onInput=${(/** @type {any} */ e) => update(i, { outputSchema: e.currentTarget.value })}></textarea></label>
          ${err.outputSchema ? html`<div class="err" role="alert">${err.outputSchema}</div>` : ''}
          <label class="field">handler <span class="small">(body of <code>async (input, ctx, sleep) => …</code>)</span>
            <textarea rows="7" class="mono" spellcheck=${false} data-testid="handler-code" value=${c.code} onInput=${(/** @type {any} */ e) => update(i, { code: e.currentTarget.value })}></textarea></label>
          ${err.code ? html`<div class="err" role="alert">${err.code}</div>` : ''}
        </div>` : ''}
      </li>`;
    })}</ul>
    <div class="row">
      <label class="grow">add example <select disabled=${running} onChange=${(/** @type {any} */ e) => { addExample(e.currentTarget.value); e.currentTarget.value = ''; }} data-testid="add-example">
        <option value="">choose…</option>
        ${Object.entries(EXAMPLES).map(([k, ex]) => html`<option value=${k}>${ex.label}</option>`)}
      </select></label>
      <button disabled=${running} onClick=${() => { setCaps([...caps, { type: 'core/my.tool', scopeUser: '', concurrency: 1, description: '', inputSchema: '', outputSchema: '', code: 'return input;' }]); setOpen(caps.length); }}>Add blank</button>
    </div>
  </section>`;
}

/**
 * @param {{
 *   host: TesterHost, caps: CapabilitySpec[],
 *   send: (task: { type: string, input: unknown, onBehalfOf?: string }, n: number) => Promise<void>,
 *   cancel: (taskId: string) => void, revoke: (type: string) => void, disconnect: () => void, devApi: boolean,
 * }} p
 */
export function SendWorkPanel({ host, caps, send, cancel, revoke, disconnect, devApi }) {
  const [type, setType] = useState('');
  const [input, setInput] = useState('');
  const [onBehalfOf, setOnBehalfOf] = useState('');
  const [count, setCount] = useState(1);
  const [taskId, setTaskId] = useState('');
  const [error, setError] = useState('');
  const [sent, setSent] = useState('');
  const t = type || caps[0]?.type || '';
  const sample = Object.values(EXAMPLES).find((e) => e.spec.type === t)?.sample;
  const inputText = input || (sample !== undefined ? JSON.stringify(sample) : '{}');
  const onSend = async () => {
    setError('');
    let value;
    try {
      value = JSON.parse(inputText);
    } catch (err) {
      setError(`input is not JSON: ${/** @type {Error} */ (err).message}`);
      return;
    }
    if (!Number.isInteger(count) || count < 1 || count > 10000) {
      setError('send 1 to 10 000 tasks at a time');
      return;
    }
    try {
      await send({ type: t, input: value, ...(onBehalfOf.trim() ? { onBehalfOf: onBehalfOf.trim() } : {}) }, count);
      setSent(`${count} task${count > 1 ? 's' : ''} of ${t} enqueued`);
    } catch (err) {
      setError(/** @type {Error} */ (err).message);
    }
  };
  if (!devApi) {
    return html`<section class="panel" aria-labelledby="send-h"><h2 id="send-h">Send work</h2>
      <p class="small">This gateway has no dev API: send work through your own BigBrain tooling. The local dev gateway (scripts/run) has it.</p></section>`;
  }
  return html`<section class="panel" aria-labelledby="send-h">
    <h2 id="send-h">Send work</h2>
    <label class="field">type <input list="cap-types" value=${t} onInput=${(/** @type {any} */ e) => setType(e.currentTarget.value)} data-testid="task-type" />
      <datalist id="cap-types">${caps.map((c) => html`<option value=${c.type} />`)}</datalist></label>
    <label class="field">input JSON <textarea rows="2" class="mono" spellcheck=${false} value=${inputText} onInput=${(/** @type {any} */ e) => setInput(e.currentTarget.value)} data-testid="task-input"></textarea></label>
    <label class="field">onBehalfOf <span class="small">(optional)</span> <input value=${onBehalfOf} onInput=${(/** @type {any} */ e) => setOnBehalfOf(e.currentTarget.value)} /></label>
    <div class="row">
      <label>count <input type="number" min="1" max="10000" value=${count} style="width:5em" onInput=${(/** @type {any} */ e) => setCount(Number(e.currentTarget.value))} data-testid="task-count" /></label>
      <button class="primary" onClick=${onSend} data-testid="send">Send</button>
    </div>
    ${error ? html`<div class="err" role="alert">${error}</div>` : sent ? html`<div class="small" role="status">${sent}</div>` : ''}
    <hr />
    <div class="row">
      <label>task id <input value=${taskId} onInput=${(/** @type {any} */ e) => setTaskId(e.currentTarget.value)} size="14" /></label>
      <button onClick=${() => taskId.trim() && cancel(taskId.trim())} disabled=${!taskId.trim()}>Cancel task</button>
    </div>
    <div class="row wrap">
      <button onClick=${() => revoke(t)} disabled=${!host.running || !t} title="the gateway revokes the capability above for this neuron">Revoke ${t || 'capability'}</button>
      <button onClick=${disconnect} disabled=${!host.running} data-testid="force-disconnect">Force disconnect</button>
    </div>
  </section>`;
}

/**
 * @param {{ host: TesterHost, devApi: boolean, keepAlivesPaused: boolean, setKeepAlives: (paused: boolean) => void }} p
 */
export function FaultsPanel({ host, devApi, keepAlivesPaused, setKeepAlives }) {
  const live = host.running && host.mode === 'live';
  return html`<section class="panel" aria-labelledby="faults-h">
    <h2 id="faults-h">Faults on purpose</h2>
    <div class="row wrap">
      <button onClick=${() => host.dropStream()} disabled=${!live} data-testid="drop-stream" title="error the event stream as a network failure would">Drop the stream</button>
      <label><input type="checkbox" checked=${host.faults.stallHeartbeats} disabled=${!live}
        onChange=${(/** @type {any} */ e) => host.stallHeartbeats(e.currentTarget.checked)} data-testid="stall-heartbeats" /> stall heartbeats</label>
    </div>
    <div class="row wrap">
      <span>next POST answers</span>
      <button onClick=${() => host.failNextPost(401)} disabled=${!live} aria-pressed=${host.faults.nextPostStatus === 401}>401</button>
      <button onClick=${() => host.failNextPost(503)} disabled=${!live} aria-pressed=${host.faults.nextPostStatus === 503}>503</button>
      ${host.faults.nextPostStatus ? html`<span class="pill muted">armed: ${host.faults.nextPostStatus}</span>` : ''}
    </div>
    <div class="row wrap">
      <label title=${devApi ? 'the local gateway stops sending : ping comments; the neuron declares the silent stream dead after idleTimeoutMs' : 'needs the local dev gateway'}>
        <input type="checkbox" checked=${keepAlivesPaused} disabled=${!devApi} data-testid="pause-keep-alives"
          onChange=${(/** @type {any} */ e) => setKeepAlives(e.currentTarget.checked)} /> pause keep-alives (local gateway)</label>
    </div>
  </section>`;
}

/**
 * @param {{ host: TesterHost, onExport: () => void, onLoad: (file: File) => void, result: string }} p
 */
export function SessionPanel({ host, onExport, onLoad, result }) {
  return html`<section class="panel" aria-labelledby="session-h">
    <h2 id="session-h">Record and replay</h2>
    <div class="row wrap">
      <button onClick=${onExport} disabled=${host.log.size === 0} data-testid="export">Export session</button>
      <label class="button">Replay a session…
        <input type="file" accept="application/json,.json" class="sr-only" disabled=${host.running}
          onChange=${(/** @type {any} */ e) => { const f = e.currentTarget.files?.[0]; if (f) onLoad(f); e.currentTarget.value = ''; }} data-testid="replay-file" /></label>
    </div>
    ${result ? html`<p class="small" role="status" data-testid="replay-result">${result}</p>` : ''}
  </section>`;
}

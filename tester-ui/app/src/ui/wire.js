// @ts-check
// The right-hand side: leases (summary, timeline, table) and the firehose.

import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html, VirtualList, clock, duration, useThrottledUpdates, useTicker } from './lib.js';
import { FRAME_TYPES, emptyFilter, filterEntries, isEmptyFilter } from '../firehose.js';

/** @typedef {import('../host.js').TesterHost} TesterHost */

/** @param {{ host: TesterHost, onCancel: (taskId: string) => void, canCancel: boolean }} props */
export function Leases({ host, onCancel, canCancel }) {
  const summary = host.board.summary();
  const slots = new Map(host.slots().map((s) => [s.type, s]));
  const types = [...new Set([...host.capabilities.map((c) => c.type), ...summary.keys()])];
  const rows = host.board.latest(100);
  useTicker(host.running, 500);
  return html`<section class="panel leases" aria-labelledby="leases-h">
    <h2 id="leases-h">Leases</h2>
    <table class="summary" data-testid="lease-summary">
      <thead><tr><th scope="col">capability</th><th scope="col">slots</th><th scope="col">queued</th><th scope="col">running</th>
        <th scope="col">acked</th><th scope="col">nacked</th><th scope="col">lost</th></tr></thead>
      <tbody>${types.map((type) => {
        const s = summary.get(type) ?? { queued: 0, running: 0, acked: 0, nacked: 0, lost: 0 };
        const slot = slots.get(type);
        return html`<tr key=${type} data-capability=${type}>
          <th scope="row">${type}</th>
          <td><${Slots} running=${slot?.running ?? s.running} concurrency=${slot?.concurrency ?? 0} /></td>
          <td data-col="queued">${s.queued}</td><td data-col="running">${s.running}</td>
          <td data-col="acked">${s.acked}</td><td data-col="nacked">${s.nacked}</td><td data-col="lost">${s.lost}</td>
        </tr>`;
      })}</tbody>
    </table>
    ${types.map((type) => html`<${Timeline} key=${type} host=${host} type=${type} concurrency=${slots.get(type)?.concurrency ?? 0} />`)}
    <div class="table-wrap">
      <table class="lease-table" data-testid="lease-table">
        <caption class="sr-only">The 100 most recent leases, newest first</caption>
        <thead><tr><th scope="col">lease</th><th scope="col">capability</th><th scope="col">state</th><th scope="col">progress</th>
          <th scope="col">verdict</th><th scope="col">duration</th><th scope="col">heartbeats</th><th scope="col"><span class="sr-only">actions</span></th></tr></thead>
        <tbody>${rows.map((r) => html`<tr key=${r.leaseId} class=${`state-${r.state}`} data-lease=${r.leaseId} data-state=${r.state}>
          <td class="mono" title=${`task ${r.taskId}, attempt ${r.attempt}`}>${r.leaseId}</td>
          <td class="nowrap">${r.capability}</td>
          <td><span class=${`pill ${r.state}`}>${r.state}</span>${r.cancelRequested ? html` <span class="pill muted">cancel sent</span>` : ''}</td>
          <td>${r.percent !== null
            ? html`<progress max="100" value=${r.percent} aria-label=${`progress of ${r.leaseId}`}></progress> <span class="small">${Math.round(r.percent)}% ${r.message}</span>`
            : html`<span class="small">${r.message}</span>`}</td>
          <td class="small">${r.nack ? `${r.nack.kind}${r.nack.code ? ` ${r.nack.code}` : ''}: ${r.nack.reason}` : r.state === 'acked' ? 'ack' : ''}</td>
          <td class="small">${r.startedAt ? duration((r.endedAt ?? Date.now()) - r.startedAt) : r.endedAt ? 'never ran' : ''}</td>
          <td class="small">${r.heartbeats}</td>
          <td>${canCancel && (r.state === 'queued' || r.state === 'running')
            ? html`<button class="small-btn" onClick=${() => onCancel(r.taskId)} aria-label=${`cancel task ${r.taskId}`}>cancel</button>` : ''}</td>
        </tr>`)}</tbody>
      </table>
    </div>
  </section>`;
}

/** @param {{ running: number, concurrency: number }} p */
function Slots({ running, concurrency }) {
  const n = Math.max(concurrency, running);
  return html`<span class="slots" role="img" aria-label=${`${running} of ${concurrency} slots busy`}>
    ${Array.from({ length: Math.min(n, 32) }, (_, i) => html`<span key=${i} class=${i < running ? 'slot busy' : 'slot'}></span>`)}
    <span class="small"> ${running}/${concurrency}</span>
  </span>`;
}

const WINDOW_MS = 60_000;

/**
 * The last minute of one capability: a bar per lease (queued part light,
 * running part solid, colour by verdict), slot occupancy below, heartbeats on top.
 * @param {{ host: TesterHost, type: string, concurrency: number }} p
 */
function Timeline({ host, type, concurrency }) {
  const now = Date.now();
  const from = now - WINDOW_MS;
  const W = 600;
  const x = (/** @type {number} */ t) => Math.max(0, ((t - from) / WINDOW_MS) * W);
  // The newest 150 leases of the window at most: enough to see the rhythm, cheap to draw.
  const leases = [...host.board.rows.values()].filter((r) => r.capability === type && (r.endedAt ?? now) >= from).slice(-150);
  /** @type {number[]} */
  const laneEnds = [];
  const bars = leases.map((r) => {
    const end = r.endedAt ?? now;
    let lane = laneEnds.findIndex((e) => e < r.receivedAt);
    if (lane < 0) lane = laneEnds.length;
    laneEnds[lane] = end;
    return { r, lane, end };
  }).filter((b) => b.lane < 12);
  const lanes = Math.max(1, Math.min(12, laneEnds.length));
  const barH = 6;
  const top = 8;
  const occTop = top + lanes * (barH + 2) + 4;
  const occH = 24;
  const samples = (host.board.samples.get(type) ?? []).filter((s) => s.t >= from - 5000);
  const maxY = Math.max(1, concurrency, ...samples.map((s) => s.running));
  let path = '';
  let last = 0;
  for (const s of samples) {
    const sx = x(s.t).toFixed(1);
    const sy = (occTop + occH - (s.running / maxY) * occH).toFixed(1);
    path += path ? ` H${sx} V${sy}` : `M${sx} ${sy}`;
    last = s.running;
  }
  if (path) path += ` H${W}`;
  const capY = occTop + occH - (concurrency / maxY) * occH;
  const beats = host.board.beats.filter((b) => b.t >= from);
  return html`<figure class="timeline" data-capability=${type}>
    <figcaption class="small">${type}: last minute (bars: leases, line: busy slots of ${concurrency}, ticks: heartbeats)</figcaption>
    <svg viewBox=${`0 0 ${W} ${occTop + occH + 4}`} preserveAspectRatio="none" role="img" aria-label=${`timeline of ${type}: ${leases.length} leases in the last minute, ${last} running now`}>
      ${beats.map((b) => html`<line class="beat" x1=${x(b.t)} x2=${x(b.t)} y1="0" y2="5" />`)}
      ${bars.map(({ r, lane, end }) => {
        const y = top + lane * (barH + 2);
        const start = r.startedAt ?? end;
        return html`<g key=${r.leaseId}>
          <rect class="bar queued" x=${x(r.receivedAt)} y=${y} width=${Math.max(1, x(start) - x(r.receivedAt))} height=${barH} />
          ${r.startedAt ? html`<rect class=${`bar ${r.state}`} x=${x(start)} y=${y} width=${Math.max(1.5, x(end) - x(start))} height=${barH}><title>${r.leaseId} ${r.state}</title></rect>` : ''}
        </g>`;
      })}
      ${concurrency ? html`<line class="cap-line" x1="0" x2=${W} y1=${capY} y2=${capY} />` : ''}
      ${path ? html`<path class="occ" d=${path} />` : ''}
    </svg>
  </figure>`;
}

/** @param {{ host: TesterHost }} props */
export function Firehose({ host }) {
  // Redrawn on every animation frame with news, independently of the rest of the page.
  const subscribe = useCallback((/** @type {() => void} */ fn) => host.subscribe(fn), [host]);
  useThrottledUpdates(subscribe);
  const [filter, setFilter] = useState(emptyFilter);
  /** While paused: the frames as they were at the pause (the log itself keeps recording). */
  const [paused, setPaused] = useState(/** @type {{ seq: number, entries: import('../firehose.js').Entry[] } | null} */ (null));
  const [atEnd, setAtEnd] = useState(true);
  const [selected, setSelected] = useState(/** @type {number | null} */ (null));
  const detailRef = /** @type {{ current: HTMLDivElement | null }} */ (useRef(null));
  const all = host.log.toArray();
  const visible = paused ? paused.entries : all;
  const lastSeq = visible.at(-1)?.seq;
  const shown = useMemo(() => filterEntries(visible, filter), [paused, lastSeq, visible.length, filter, visible.at(-1)?.status]);
  const latestSeq = host.log.nextSeq - 1;
  const newWhilePaused = paused ? latestSeq - paused.seq : 0;
  // Arrived after the pause and already pushed out of the bounded history.
  const droppedWhilePaused = paused && all.length ? Math.max(0, all[0].seq - paused.seq - 1) : 0;
  const detail = selected === null ? null : visible.find((e) => e.seq === selected) ?? all.find((e) => e.seq === selected) ?? null;
  useEffect(() => {
    if (selected !== null) detailRef.current?.focus();
  }, [selected]);
  const set = (/** @type {Partial<import('../firehose.js').Filter>} */ p) => setFilter({ ...filter, ...p });
  return html`<section class="panel firehose" aria-labelledby="firehose-h"
    onKeyDown=${(/** @type {KeyboardEvent} */ e) => { if (e.key === 'Escape' && selected !== null) setSelected(null); }}>
    <div class="row between">
      <h2 id="firehose-h">Firehose</h2>
      <span class="row">
        <span class="small" data-testid="firehose-count" aria-live="polite">${shown.length} of ${all.length} frames${isEmptyFilter(filter) ? '' : ' match'}${host.log.dropped ? `, ${host.log.dropped} older dropped` : ''}</span>
        <button onClick=${() => setFilter(emptyFilter())} disabled=${isEmptyFilter(filter)}>Clear filters</button>
        <button onClick=${() => setPaused(paused ? null : { seq: latestSeq, entries: all })} aria-pressed=${paused !== null} data-testid="firehose-pause">
          ${paused ? `Resume (${newWhilePaused} new)` : 'Pause'}</button>
      </span>
    </div>
    <div class="filters" role="search">
      <label>type <select value=${filter.types[0] ?? ''} onChange=${(/** @type {any} */ e) => set({ types: e.currentTarget.value ? [e.currentTarget.value] : [] })} data-testid="filter-type">
        <option value="">any</option>${FRAME_TYPES.concat('log').map((t) => html`<option value=${t}>${t}</option>`)}
      </select></label>
      <label>direction <select value=${filter.dirs[0] ?? ''} onChange=${(/** @type {any} */ e) => set({ dirs: e.currentTarget.value ? [e.currentTarget.value] : [] })}>
        <option value="">any</option><option value="in">in (gateway → neuron)</option><option value="out">out (neuron → gateway)</option><option value="conn">connection</option>
      </select></label>
      <label>lease <input value=${filter.lease} onInput=${(/** @type {any} */ e) => set({ lease: e.currentTarget.value })} size="12" /></label>
      <label>capability <input value=${filter.capability} onInput=${(/** @type {any} */ e) => set({ capability: e.currentTarget.value })} size="12" /></label>
      <label>text <input value=${filter.text} onInput=${(/** @type {any} */ e) => set({ text: e.currentTarget.value })} size="14" data-testid="filter-text" /></label>
    </div>
    <div class="fh-head mono small" aria-hidden="true"><span>time</span><span>dir</span><span>type</span><span>lease</span><span>status</span><span>detail</span></div>
    <${VirtualList} count=${shown.length} rowHeight=${22} label="frames on the wire" testId="firehose-list"
      stickToEnd=${paused === null && atEnd} onAtEndChange=${setAtEnd} itemKey=${(/** @type {number} */ i) => shown[i]?.seq ?? i}
      renderRow=${(/** @type {number} */ i) => {
        const e = shown[i];
        return html`<button class=${`fh-row dir-${e.dir}${selected === e.seq ? ' selected' : ''}`} data-type=${e.type} data-dir=${e.dir}
          onClick=${() => setSelected(e.seq)} aria-label=${`${e.dir} ${e.type} ${e.leaseId}`}>
          <span>${clock(e.t)}</span><span>${e.dir === 'in' ? '⇣ in' : e.dir === 'out' ? '⇡ out' : '• conn'}</span><span>${e.type}</span>
          <span>${e.leaseId}</span><span class=${e.status !== null && (e.status < 200 || e.status >= 300) ? 'bad' : ''}>${e.status ?? (e.dir === 'out' ? '…' : '')}</span>
          <span class="ellipsis">${e.note || e.capability}</span>
        </button>`;
      }} />
    ${droppedWhilePaused ? html`<p class="small" role="status" data-testid="dropped-while-paused">${droppedWhilePaused} of the frames that arrived while paused were already dropped: the history keeps the newest ${host.log.capacity}.</p>` : ''}
    ${detail ? html`<div class="detail" role="region" aria-label="frame detail (Escape closes)" data-testid="frame-detail" tabindex="-1" ref=${detailRef}>
      <div class="row between"><strong>#${detail.seq} ${detail.dir} ${detail.type}</strong>
        <button onClick=${() => setSelected(null)} aria-label="close the frame detail">×</button></div>
      <pre class="mono">${JSON.stringify(detail.frame, null, 2)}</pre>
    </div>` : ''}
  </section>`;
}

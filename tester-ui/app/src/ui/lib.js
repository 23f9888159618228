// @ts-check
// View-layer plumbing: Preact with htm tagged templates (no JSX build step),
// a hook that re-renders on host changes at most once per animation frame,
// and a virtualised list on @tanstack/virtual-core.

import { h } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { Virtualizer, observeElementRect, observeElementOffset, elementScroll } from '@tanstack/virtual-core';

export const html = htm.bind(h);

/**
 * A number input whose typed text survives re-renders. The page re-renders
 * several times a second while leases run; a controlled input would be reset
 * to its committed value each time, losing what is typed before Enter or blur.
 * So the field shows its own text from the first keystroke until `change`,
 * which hands that text to `onCommit`, or until it loses focus without one
 * (the text is back to what it was); then it shows `value` again.
 * @param {{ value: number, onCommit: (text: string) => void, [attr: string]: unknown }} p
 */
export function NumberField({ value, onCommit, ...attrs }) {
  const [draft, setDraft] = useState(/** @type {string | null} */ (null));
  return html`<input type="number" ...${attrs} value=${draft ?? String(value)}
    onInput=${(/** @type {any} */ e) => setDraft(e.currentTarget.value)}
    onChange=${(/** @type {any} */ e) => { setDraft(null); onCommit(e.currentTarget.value); }}
    onBlur=${() => setDraft(null)} />`;
}

/**
 * Re-renders the calling component when `subscribe` reports a change: at
 * most once per animation frame, and at most once per `minIntervalMs` (the
 * firehose may change a thousand times a second; panels that draw many
 * nodes ask for fewer redraws).
 * @param {(fn: () => void) => () => void} subscribe @param {number} [minIntervalMs]
 */
export function useThrottledUpdates(subscribe, minIntervalMs = 0) {
  const [, setTick] = useState(0);
  useEffect(() => {
    let scheduled = false;
    let last = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    let timer = null;
    let frame = 0;
    const flush = () => {
      scheduled = false;
      last = performance.now();
      setTick((t) => t + 1);
    };
    const off = subscribe(() => {
      if (scheduled) return;
      scheduled = true;
      const wait = minIntervalMs - (performance.now() - last);
      if (wait > 0) {
        timer = setTimeout(() => {
          timer = null;
          frame = requestAnimationFrame(flush);
        }, wait);
      } else {
        frame = requestAnimationFrame(flush);
      }
    });
    return () => {
      off();
      if (timer !== null) clearTimeout(timer);
      cancelAnimationFrame(frame);
    };
  }, [subscribe, minIntervalMs]);
}

/** Re-renders every `ms` while `on` (countdowns, timelines). @param {boolean} on @param {number} ms */
export function useTicker(on, ms) {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (!on) return undefined;
    const t = setInterval(() => setTick((x) => x + 1), ms);
    return () => clearInterval(t);
  }, [on, ms]);
}

/**
 * A list that renders only the rows in view.
 * @param {{
 *   count: number, rowHeight: number, label: string,
 *   renderRow: (index: number) => any,
 *   itemKey: (index: number) => string | number, // stable per row: focus stays on its row as rows come and go
 *   stickToEnd: boolean,            // keep the newest row in view while the user is at the end
 *   onAtEndChange?: (atEnd: boolean) => void,
 *   testId?: string,
 * }} props
 */
export function VirtualList({ count, rowHeight, label, renderRow, itemKey, stickToEnd, onAtEndChange, testId }) {
  const ref = /** @type {{ current: HTMLDivElement | null }} */ (useRef(null));
  const [, setTick] = useState(0);
  const vRef = /** @type {{ current: Virtualizer<HTMLDivElement, Element> | null }} */ (useRef(null));
  if (!vRef.current) {
    vRef.current = new Virtualizer({
      count,
      getScrollElement: () => ref.current,
      estimateSize: () => rowHeight,
      getItemKey: itemKey,
      observeElementRect,
      observeElementOffset,
      scrollToFn: elementScroll,
      overscan: 12,
      onChange: () => setTick((t) => t + 1),
    });
  }
  const v = vRef.current;
  v.setOptions({ ...v.options, count, getItemKey: itemKey });
  useLayoutEffect(() => v._didMount(), []);
  useLayoutEffect(() => {
    v._willUpdate();
  });
  useLayoutEffect(() => {
    // The end is known without asking the layout (reading scrollHeight here
    // would lay out the whole page on every render).
    if (stickToEnd && count > 0 && ref.current) ref.current.scrollTop = v.getTotalSize();
  }, [count, stickToEnd]);
  const onScroll = () => {
    const el = ref.current;
    if (!el || !onAtEndChange) return;
    onAtEndChange(v.getTotalSize() - el.scrollTop - el.clientHeight < rowHeight * 1.5);
  };
  return html`<div ref=${ref} class="vlist" role="list" aria-label=${label} onScroll=${onScroll} data-testid=${testId}>
    <div style=${{ height: `${v.getTotalSize()}px`, position: 'relative' }}>
      ${v.getVirtualItems().map((it) => html`<div key=${it.key} role="listitem" class="vrow"
        style=${{ height: `${rowHeight}px`, transform: `translateY(${it.start}px)` }}>${renderRow(it.index)}</div>`)}
    </div>
  </div>`;
}

/** hh:mm:ss.mmm in local time. @param {number} t */
export function clock(t) {
  const d = new Date(t);
  const p = (/** @type {number} */ n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** @param {number} ms */
export function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

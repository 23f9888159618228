// The time the core is fed: milliseconds since the epoch that never go back.
//
// A monotonic clock alone (performance.now()) keeps deadlines safe from wall
// clock changes, but it stops while a laptop sleeps in Node and in some
// browsers: every `sentAt` stamp would then lag by the length of the sleep,
// and leases that expired meanwhile would look fresh. So the monotonic clock
// is re-anchored to the wall clock whenever the wall clock is more than a
// second ahead of it; it is never moved back.

const RESYNC_MS = 1000;

/**
 * @param {() => number} [wall] ms since the epoch (Date.now)
 * @param {() => number} [mono] a monotonic ms counter (performance.now)
 * @returns {() => number}
 */
export function makeClock(wall = Date.now, mono = () => performance.now()) {
  let offset = wall() - mono();
  let last = -Infinity;
  return () => {
    const m = mono();
    const w = wall();
    if (w - (m + offset) > RESYNC_MS) offset = w - m;
    const t = Math.max(last, m + offset);
    last = t;
    return t;
  };
}

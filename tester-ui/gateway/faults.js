// Faults a person switches on from the dev API (POST /dev/faults) to watch a neuron cope:
// keep-alive pings paused on every SSE stream, or on the streams of some neuronIds.

import { HttpError } from './http.js';

/**
 * @typedef {{ keepAlives: boolean, neuronIds?: string[] }} FaultState
 *   keepAlives false without neuronIds: no stream gets pings; with neuronIds: only those neurons'
 *   streams get none. keepAlives true: every stream gets its pings.
 * @typedef {{ keepAlives: boolean, neuronId?: string }} FaultChange
 */

const EXPECTED = `expected { "keepAlives": true|false, "neuronId"?: "<neuronId>" }`;

/**
 * Check a POST /dev/faults body.
 * @param {Record<string, unknown>} b
 * @returns {FaultChange}
 */
export function parseFaultChange(b) {
  const unknown = Object.keys(b).filter((k) => k !== 'keepAlives' && k !== 'neuronId');
  if (unknown.length) throw new HttpError(400, `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')}: ${EXPECTED}`);
  if (typeof b.keepAlives !== 'boolean') throw new HttpError(400, `'keepAlives' must be true or false: ${EXPECTED}`);
  if (b.neuronId === undefined) return { keepAlives: b.keepAlives };
  if (typeof b.neuronId !== 'string' || !b.neuronId) throw new HttpError(400, `'neuronId' must be a non-empty string: ${EXPECTED}`);
  return { keepAlives: b.keepAlives, neuronId: b.neuronId };
}

export class Faults {
  constructor() {
    /** No stream gets pings. */
    this.allPaused = false;
    /** @type {Set<string>} neurons whose streams get no pings (empty while allPaused) */
    this.pausedNeurons = new Set();
  }

  /**
   * May a stream send its keep-alive ping now?
   * @param {string|null} neuronId the neuron of the stream; null for a /dev/feed stream
   */
  keepAlives(neuronId) {
    return !this.allPaused && !(neuronId !== null && this.pausedNeurons.has(neuronId));
  }

  /**
   * Apply a change. Resuming one neuron while every stream is paused is refused (409): the pause of
   * every stream covers streams not opened yet, so it has no list to take one out of.
   * @param {FaultChange} change
   * @returns {FaultState}
   */
  apply({ keepAlives, neuronId }) {
    if (neuronId === undefined) {
      this.allPaused = !keepAlives;
      this.pausedNeurons.clear();
    } else if (!keepAlives) {
      if (!this.allPaused) this.pausedNeurons.add(neuronId);
    } else {
      if (this.allPaused)
        throw new HttpError(409, `keep-alives are paused on every stream: resume them all with { "keepAlives": true }, then pause the neurons you want`);
      this.pausedNeurons.delete(neuronId);
    }
    return this.state();
  }

  /** @returns {FaultState} */
  state() {
    if (this.allPaused) return { keepAlives: false };
    if (this.pausedNeurons.size) return { keepAlives: false, neuronIds: [...this.pausedNeurons] };
    return { keepAlives: true };
  }
}

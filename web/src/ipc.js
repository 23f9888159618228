// @holokai/neuron-sdk/ipc: IpcTransport for Electron renderers whose main
// process hosts BigBrain. No network, no auth, no reconnect, no keep-alive
// (PROTOCOL.md 1.4). The SDK does not depend on Electron: the app's preload
// exposes a NeuronIpcBridge (see the README).

import { messageOf } from './errors.js';

export class IpcTransport {
  /** @param {import('../types/ipc.js').IpcTransportOptions} opts */
  constructor(opts) {
    if (opts == null || typeof opts !== 'object') throw new TypeError('new IpcTransport(opts) needs { bridge, neuronId }');
    const { bridge, neuronId } = opts;
    if (bridge == null || typeof bridge !== 'object') {
      throw new TypeError('IpcTransport: `bridge` is missing; expose a NeuronIpcBridge from the preload (contextBridge.exposeInMainWorld) and pass it, e.g. window.bigbrainNeuron');
    }
    for (const m of ['attach', 'detach', 'subscribe', 'invoke']) {
      if (typeof (/** @type {any} */ (bridge))[m] !== 'function') throw new TypeError(`IpcTransport: the bridge has no ${m}() function (NeuronIpcBridge needs attach, detach, subscribe, invoke)`);
    }
    if (typeof neuronId !== 'string' || neuronId === '') throw new TypeError('IpcTransport: `neuronId` must be a non-empty string');
    /** @private */ this._bridge = bridge;
    /** @private */ this._neuronId = neuronId;
    /** @private */ this._logger = opts.logger;
    /** @private @type {import('../types/index.js').TransportCallbacks} */ this._cb = {};
    /** @private @type {(() => void) | null} */ this._unsubscribe = null;
    /** @private */ this._connected = false;
    /** @private @type {Promise<void> | null} */ this._attaching = null;
    /** @private start/stop generation: an attach that completes after stop() is given back */ this._gen = 0;
  }

  /** @param {import('../types/index.js').TransportCallbacks} callbacks */
  subscribe(callbacks) {
    this._cb = callbacks ?? {};
  }

  /** bridge.attach(neuronId) → subscribe to the channel it names. */
  start() {
    if (this._connected) return Promise.resolve();
    if (this._attaching) return this._attaching;
    const gen = ++this._gen;
    const attaching = this._attach(gen).finally(() => {
      if (this._attaching === attaching) this._attaching = null;
    });
    this._attaching = attaching;
    return attaching;
  }

  /** @private @param {number} gen */
  async _attach(gen) {
    const attached = await this._bridge.attach(this._neuronId);
    if (gen !== this._gen) {
      // stop() came while attach was pending: give the attachment back.
      await this._bridge.detach(this._neuronId);
      return;
    }
    const channel = attached?.channel;
    if (typeof channel !== 'string') throw new Error(`IpcTransport: bridge.attach() must resolve { channel: string }, got ${messageOf(attached)}`);
    const unsubscribe = this._bridge.subscribe(channel, (frame) => {
      try {
        this._cb.onFrame?.(frame);
      } catch (err) {
        this._cb.onError?.(err instanceof Error ? err : new Error(messageOf(err)));
      }
    });
    this._unsubscribe = typeof unsubscribe === 'function' ? unsubscribe : null;
    this._connected = true;
    this._cb.onOpen?.();
  }

  /** Unsubscribe and bridge.detach(neuronId); also while start() is still attaching. */
  async stop() {
    ++this._gen;
    const attaching = this._attaching;
    const wasConnected = this._connected;
    this._connected = false;
    const unsubscribe = this._unsubscribe;
    this._unsubscribe = null;
    try {
      unsubscribe?.();
    } finally {
      if (attaching) {
        // start() detaches what it attached once it sees it was stopped.
        await attaching.catch(() => {});
      } else if (wasConnected) {
        try {
          await this._bridge.detach(this._neuronId);
        } finally {
          this._cb.onClose?.('stopped');
        }
      }
    }
  }

  /** @param {string} path @param {object} frame */
  post(path, frame) {
    return this._bridge.invoke(/** @type {any} */ (path), /** @type {any} */ (frame));
  }

  isConnected() {
    return this._connected;
  }
}

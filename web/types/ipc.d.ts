// Type declarations for @holokai/neuron-sdk/ipc: IpcTransport for Electron
// renderers whose main process hosts BigBrain. The SDK does not depend on
// Electron; the app's preload exposes a NeuronIpcBridge.

import type {
  ClientFrame,
  NeuronLogger,
  PostPath,
  ServerToNeuronFrame,
  Transport,
  TransportCallbacks,
} from './index.js';

/**
 * What the renderer's preload must expose (e.g. `contextBridge.exposeInMainWorld('bigbrainNeuron', ...)`),
 * typically forwarding to `ipcRenderer.invoke` / `ipcRenderer.on`.
 */
export interface NeuronIpcBridge {
  /** Attach this neuron in main; resolves the IPC channel its frames arrive on. */
  attach(neuronId: string): Promise<{ channel: string }>;
  detach(neuronId: string): Promise<void>;
  /** Deliver parsed frames from `channel` to `cb`; returns the unsubscribe function. */
  subscribe(channel: string, cb: (frame: ServerToNeuronFrame) => void): () => void;
  /**
   * Forward a POST to the embedded gateway (main attaches auth); resolve with
   * the answer body. Reject with an error carrying the HTTP `status` for a
   * non-2xx answer (403 refuses a `register`); a rejection without one counts
   * as a network error for that frame.
   */
  invoke<T extends ClientFrame>(path: PostPath, frame: T): Promise<unknown>;
}

export interface IpcTransportOptions {
  /** The preload's bridge, e.g. `window.bigbrainNeuron`. */
  bridge: NeuronIpcBridge;
  neuronId: string;
  logger?: NeuronLogger | undefined;
}

/**
 * Transport over Electron IPC: no network, no auth callback, no reconnect,
 * no keep-alive. A throwing bridge surfaces through `onError` / rejected
 * promises; what to do next is the app's call.
 */
export declare class IpcTransport implements Transport {
  /** Throws `TypeError` if the bridge lacks attach/detach/subscribe/invoke or `neuronId` is empty. */
  constructor(opts: IpcTransportOptions);
  subscribe(callbacks: TransportCallbacks): void;
  /** `bridge.attach(neuronId)`, then subscribes to the channel it names. */
  start(): Promise<void>;
  /** Unsubscribes, then `bridge.detach(neuronId)`. */
  stop(): Promise<void>;
  /** `bridge.invoke(path, frame)`. */
  post<T extends ClientFrame>(path: PostPath, frame: T): Promise<unknown>;
  isConnected(): boolean;
}

// Transports: HttpTransport from the root, IpcTransport from /ipc with a
// preload-provided window.bigbrainNeuron, and a custom Transport.

import { HttpTransport, Neuron, POST_PATHS } from '@holokai/neuron-sdk';
import type {
  ClientFrame,
  PostPath,
  ServerToNeuronFrame,
  Transport,
  TransportCallbacks,
} from '@holokai/neuron-sdk';
import { IpcTransport } from '@holokai/neuron-sdk/ipc';
import type { IpcTransportOptions, NeuronIpcBridge } from '@holokai/neuron-sdk/ipc';
import type { Equal, Expect } from './helpers.js';

declare global {
  interface Window {
    /** Exposed by the app's preload via contextBridge.exposeInMainWorld. */
    bigbrainNeuron: NeuronIpcBridge;
  }
}

// ---- HttpTransport --------------------------------------------------------

const transport = new HttpTransport({
  gatewayUrl: 'https://api.example.com',
  neuronId: 'my-worker-001',
  auth: () => process.env.GATEWAY_TOKEN!,
  // optional:
  initialReconnectDelayMs: 500,
  maxReconnectDelayMs: 30_000,
  logger: console,
  fetch: (input, init) => fetch(input, init),
});

const httpNeuron = new Neuron({ neuronId: 'my-worker-001', transport });
void httpNeuron;

// ---- IpcTransport ---------------------------------------------------------

const neuronId = 'desktop-1';
declare const userId: string;
declare const handler: (input: unknown) => Promise<{ ok: true }>;

const ipc = new IpcTransport({ bridge: window.bigbrainNeuron, neuronId });
const neuron = new Neuron({ neuronId, transport: ipc });

neuron.handle({ type: 'desktop/local-tool', scope: { onBehalfOf: userId }, concurrency: 1 }, handler);
await neuron.start();

// A bridge built the way the README's preload builds one.
declare const ipcRenderer: {
  invoke(channel: string, ...args: unknown[]): Promise<any>;
  on(channel: string, listener: (event: unknown, ...args: any[]) => void): void;
  off(channel: string, listener: (event: unknown, ...args: any[]) => void): void;
};
const bridge: NeuronIpcBridge = {
  attach: (neuronId) => ipcRenderer.invoke('bigbrain:attach', neuronId),
  detach: (neuronId) => ipcRenderer.invoke('bigbrain:detach', neuronId),
  subscribe: (channel, cb) => {
    const listener = (_e: unknown, frame: ServerToNeuronFrame) => cb(frame);
    ipcRenderer.on(channel, listener);
    return () => ipcRenderer.off(channel, listener);
  },
  invoke: (path, frame) => ipcRenderer.invoke('bigbrain:post', path, frame),
};
const ipcOptions: IpcTransportOptions = { bridge, neuronId, logger: console };
const asTransport: Transport = new IpcTransport(ipcOptions);
void asTransport;

// @ts-expect-error a bridge needs attach, detach, subscribe and invoke
void new IpcTransport({ bridge: { attach: bridge.attach }, neuronId });
// @ts-expect-error IpcTransport has no auth: main attaches it
void new IpcTransport({ bridge, neuronId, auth: () => 't' });

// ---- A custom Transport ---------------------------------------------------

class LoopbackTransport implements Transport {
  private callbacks: TransportCallbacks = {};
  private connected = false;
  readonly posted: Array<{ path: PostPath; frame: ClientFrame }> = [];

  subscribe(callbacks: TransportCallbacks): void {
    this.callbacks = callbacks;
  }
  async start(): Promise<void> {
    this.connected = true;
    this.callbacks.onOpen?.();
  }
  async stop(): Promise<void> {
    this.connected = false;
    this.callbacks.onClose?.('stopped');
  }
  async post<T extends ClientFrame>(path: PostPath, frame: T): Promise<unknown> {
    this.posted.push({ path, frame });
    switch (frame.type) {
      case 'register':
        this.callbacks.onFrame?.({
          type: 'registered',
          sessionId: 's-1',
          capabilities: frame.capabilities.map(({ type, scope, concurrency }) => ({ type, scope, concurrency })),
        });
        return undefined;
      case 'heartbeat':
        return { lostLeases: frame.inFlight.map((l) => l.leaseId).slice(0, 0) };
      case 'nack': {
        const kind: 'retryable' | 'terminal' | 'schema-mismatch' | 'cancelled' = frame.kind;
        return kind;
      }
      case 'ack':
      case 'progress':
      case 'update-capability':
        return undefined;
      default: {
        const never: never = frame;
        return never;
      }
    }
  }
  isConnected(): boolean {
    return this.connected;
  }
}
void new Neuron({ neuronId: 'loop', transport: new LoopbackTransport() });

// ---- POST_PATHS / PostPath ------------------------------------------------

type _paths = Expect<Equal<(typeof POST_PATHS)[keyof typeof POST_PATHS], PostPath>>;
type _keys = Expect<Equal<keyof typeof POST_PATHS, ClientFrame['type']>>;
await transport.post(POST_PATHS.heartbeat, {
  type: 'heartbeat',
  neuronId: 'w',
  sentAt: new Date().toISOString(),
  inFlight: [],
});
// @ts-expect-error not one of the six POST paths
await transport.post('/neuron/hello', { type: 'heartbeat', neuronId: 'w', sentAt: '', inFlight: [] });
// @ts-expect-error a heartbeat needs inFlight
await transport.post(POST_PATHS.heartbeat, { type: 'heartbeat', neuronId: 'w', sentAt: '' });

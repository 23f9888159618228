// The event map, and on/once/addListener returning an unsubscribe function.

import { Neuron, NeuronError, RegistrationError } from '@holokai/neuron-sdk';
import type { NeuronEvents, ServerToNeuronFrame } from '@holokai/neuron-sdk';
import { EventEmitter } from 'eventemitter3';
import type { Equal, Expect } from './helpers.js';

declare const neuron: Neuron;
declare const log: { append(frame: ServerToNeuronFrame): void };
declare const statusBar: { show(text: string, detail: string): void };

// ---- The README's Events section ------------------------------------------

const off = neuron.on('frame', (frame) => {
  log.append(frame); // see every parsed SSE frame
});
off(); // unsubscribe

neuron.once('connection:registered', ({ sessionId }) => {
  console.log(`registered as ${sessionId}`);
});

neuron.on('connection:reconnecting', ({ attempt, delayMs, reason }) => {
  statusBar.show(`reconnecting (attempt ${attempt}, ${delayMs}ms)`, reason);
});

// ---- Every event's payload -------------------------------------------------

const offs: Array<() => void> = [
  neuron.on('connection:open', (...args) => {
    type _ = Expect<Equal<typeof args, []>>;
  }),
  neuron.addListener('connection:registered', (info) => {
    type _ = Expect<Equal<typeof info, { sessionId: string; capabilities: number }>>;
  }),
  neuron.on('connection:close', (reason) => {
    type _ = Expect<Equal<typeof reason, string>>;
  }),
  neuron.on('connection:reconnecting', (info) => {
    type _ = Expect<Equal<typeof info, { attempt: number; delayMs: number; reason: string }>>;
  }),
  neuron.on('error', (err) => {
    type _ = Expect<Equal<typeof err, Error>>;
    if (err instanceof RegistrationError) {
      const status: number = err.status;
      const code: 'registration-rejected' = err.code;
      void [status, code];
    } else if (err instanceof NeuronError) {
      const detail: string = `${err.code} ${err.status}`;
      void detail;
    }
  }),
];
for (const unsubscribe of offs) unsubscribe();

// The `frame` payload is a union discriminated by `type`.
neuron.on('frame', (frame) => {
  switch (frame.type) {
    case 'registered':
      console.log(frame.sessionId, frame.capabilities.length, frame.rejected?.[0]?.reason);
      break;
    case 'lease':
      console.log(frame.leaseId, frame.expiresAt, frame.task.taskId, frame.task.attempt, frame.task.input);
      break;
    case 'cancel':
      console.log(frame.leaseId, frame.reason);
      break;
    case 'capability-revoked':
      console.log(frame.capability, frame.reason);
      break;
    case 'disconnect':
      console.log(frame.reason, frame.reconnect ?? true);
      break;
    default: {
      const unreachable: never = frame;
      void unreachable;
    }
  }
});

// ---- off / removeListener / removeAllListeners return the neuron ------------

const onFrame = (frame: ServerToNeuronFrame) => log.append(frame);
neuron.on('frame', onFrame);
const chained: Neuron = neuron.off('frame', onFrame).removeListener('error').removeAllListeners('frame').removeAllListeners();
void chained;
const count: number = neuron.listenerCount('frame');
const emitted: boolean = neuron.emit('connection:close', 'test');
void [count, emitted];

// Neuron is eventemitter3's EventEmitter at runtime.
const emitter: unknown = neuron;
if (emitter instanceof EventEmitter) void emitter.eventNames();
type _events = Expect<Equal<keyof NeuronEvents, 'connection:open' | 'connection:registered' | 'connection:close' | 'connection:reconnecting' | 'error' | 'frame'>>;

// ---- Wrong uses -----------------------------------------------------------

// @ts-expect-error on() returns an unsubscribe function, not the neuron
neuron.on('frame', onFrame).on('error', () => {});
// @ts-expect-error connection:close's payload is a string reason
neuron.on('connection:close', (reason: number) => void reason);
// @ts-expect-error connection:registered carries { sessionId, capabilities }, no neuronId
neuron.on('connection:registered', ({ neuronId }) => void neuronId);
// @ts-expect-error a frame is not a string
neuron.on('frame', (frame: string) => void frame);
// @ts-expect-error no such event
neuron.on('lease', () => {});
// @ts-expect-error emit checks payloads too
neuron.emit('connection:reconnecting', { attempt: 1 });

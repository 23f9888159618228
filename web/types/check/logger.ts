// NeuronLogger is pino's call shape. pino's own .d.ts needs @types/node, so
// this checks a logger shaped like pino's (its LogFn overloads) instead.

import { Neuron } from '@holokai/neuron-sdk';
import type { NeuronLogger } from '@holokai/neuron-sdk';

interface PinoLikeLogFn {
  <T extends object>(obj: T, msg?: string, ...args: any[]): void;
  (obj: unknown, msg?: string, ...args: any[]): void;
  (msg: string, ...args: any[]): void;
}
interface PinoLikeLogger {
  level: string;
  trace: PinoLikeLogFn;
  debug: PinoLikeLogFn;
  info: PinoLikeLogFn;
  warn: PinoLikeLogFn;
  error: PinoLikeLogFn;
  fatal: PinoLikeLogFn;
  child(bindings: Record<string, unknown>): PinoLikeLogger;
}
declare function pino(opts: { level: string }): PinoLikeLogger;

const logger = pino({ level: 'info' });
const neuron = new Neuron({ neuronId: 'w', gatewayUrl: 'https://api.example.com', auth: () => 't', logger });
void neuron;

// console works as is.
const fromConsole: NeuronLogger = console;

// A hand-written one.
const lines: string[] = [];
const collecting: NeuronLogger = {
  debug: (meta, msg) => lines.push(`debug ${msg ?? ''} ${JSON.stringify(meta)}`),
  info: (meta, msg) => lines.push(`info ${msg ?? ''} ${JSON.stringify(meta)}`),
  warn: (meta, msg) => lines.push(`warn ${msg ?? ''} ${JSON.stringify(meta)}`),
  error: (meta, msg) => lines.push(`error ${msg ?? ''} ${JSON.stringify(meta)}`),
};
void [fromConsole, collecting];

// @ts-expect-error a logger needs debug, info, warn and error
void new Neuron({ neuronId: 'w', gatewayUrl: 'https://api.example.com', auth: () => 't', logger: { info() {} } });

// The README's examples, adapted just enough to compile: stand-ins for app
// code come from ./helpers.js; `process` from ./env.d.ts.

import { Neuron, SDK_VERSION, initNeuronSdk } from '@holokai/neuron-sdk';
import type { AuthCallback, Handler, HandlerContext, NeuronOptions, NeuronStats } from '@holokai/neuron-sdk';
import {
  fetchInitialToken,
  isExpired,
  llmClient,
  processRow,
  readOrCreateStoredId,
  refreshToken,
  runPython,
  type Equal,
  type Expect,
} from './helpers.js';

// ---- Quick start ----------------------------------------------------------

const neuron = new Neuron({
  gatewayUrl: 'https://api.example.com',
  neuronId: 'my-worker-001', // stable per process/device
  auth: () => process.env.GATEWAY_TOKEN!, // or an async refresh function
});

neuron.handle(
  { type: 'core/script.python', scope: 'any', concurrency: 4 },
  async (input, ctx) => {
    type _input = Expect<Equal<typeof input, unknown>>;
    ctx.log.info({}, 'running python script');
    const result = await runPython(input as { code: string }, ctx.signal);
    return { output: result };
  },
);

await neuron.start();

process.on('SIGTERM', () => neuron.stop({ drain: true, timeoutMs: 30_000 }));

// ---- Mixed scopes ---------------------------------------------------------

declare const driveHandler: Handler;
declare const pythonHandler: Handler<unknown, { stdout: string }>;
neuron.handle({ type: 'desktop/mcp/drive.read', scope: { onBehalfOf: 'user:abc' }, concurrency: 1 }, driveHandler);
neuron.handle({ type: 'core/script.python', scope: 'any', concurrency: 4 }, pythonHandler);

// Raw JSON Schemas on a registration.
neuron.handle(
  {
    type: 'core/echo',
    scope: 'any',
    concurrency: 2,
    description: 'echo the input',
    inputSchema: { type: 'object', required: ['text'], properties: { text: { type: 'string', maxLength: 100 } } },
    outputSchema: true,
  },
  (input) => input,
);

// ---- Neuron ID ------------------------------------------------------------

const serverOpts: NeuronOptions = {
  neuronId: `worker-${process.env.HOSTNAME}-${process.pid}`,
  gatewayUrl: 'https://api.example.com',
  auth: () => 'token',
};
const desktopOpts: NeuronOptions = {
  neuronId: await readOrCreateStoredId('/var/lib/myapp/neuron-id'),
  gatewayUrl: 'https://api.example.com',
  auth: async () => 'token',
  // every option of the with-http shape, README and PROTOCOL.md extras:
  logger: console,
  heartbeatIntervalMs: 10_000,
  initialReconnectDelayMs: 500,
  maxReconnectDelayMs: 30_000,
  fetch: globalThis.fetch,
  idleTimeoutMs: 45_000,
  reconnectJitter: 0.2,
  maxFrameBytes: 16 * 1024 * 1024,
};
void [serverOpts, desktopOpts];

// ---- AuthCallback ---------------------------------------------------------

let token = await fetchInitialToken();
const auth: AuthCallback = async () => {
  if (isExpired(token)) {
    token = await refreshToken();
  }
  return token.accessToken;
};
void new Neuron({ neuronId: 'w', gatewayUrl: 'https://api.example.com', auth });

// ---- HandlerContext -------------------------------------------------------

neuron.handle({ type: 'core/ctx.tour', scope: 'any', concurrency: 1 }, async (_input, ctx) => {
  type _ctx = Expect<Equal<typeof ctx, HandlerContext>>;
  const resp = await fetch('https://example.com', { signal: ctx.signal });
  ctx.progress({ percent: 50, message: 'halfway done' });
  ctx.progress({ data: { rowsProcessed: 1200 } });
  const { taskId, type, attempt, onBehalfOf, workflowId, createdAt, metadata } = ctx.task;
  ctx.log.debug({ taskId, type, attempt, onBehalfOf, workflowId, createdAt, metadata, leaseId: ctx.leaseId });
  const validApiKey = resp.ok;
  if (!validApiKey) {
    ctx.fail('invalid API key', { code: 'INVALID_API_KEY' });
  }
  // @ts-expect-error progress takes an object
  ctx.progress(50);
  // @ts-expect-error the context's fields are read-only
  ctx.leaseId = 'x';
  return resp.status;
});

// ---- Simple any-scoped capability -----------------------------------------

neuron.handle(
  { type: 'core/http', scope: 'any', concurrency: 8 },
  async (input, ctx) => {
    const { url, method = 'GET', headers = {}, body } = input as {
      url: string;
      method?: string;
      headers?: Record<string, string>;
      body?: string;
    };

    const resp = await fetch(url, { method, headers, body, signal: ctx.signal });
    const text = await resp.text();
    return { status: resp.status, body: text };
  },
);

// ---- Long-running task with progress --------------------------------------

neuron.handle(
  { type: 'core/data.transform', scope: 'any', concurrency: 2 },
  async (input, ctx) => {
    const { rows } = input as { rows: unknown[] };
    const results: unknown[] = [];

    for (let i = 0; i < rows.length; i++) {
      if (ctx.signal.aborted) break; // respect cancellation
      results.push(await processRow(rows[i]));
      ctx.progress({ percent: Math.round(((i + 1) / rows.length) * 100) });
    }

    return { results };
  },
);

// ---- Error handling -------------------------------------------------------

neuron.handle(
  { type: 'core/llm', scope: 'any', concurrency: 4 },
  async (input, ctx) => {
    const { prompt, model } = input as { prompt: string; model: string };

    let response;
    try {
      response = await llmClient.complete({ prompt, model, signal: ctx.signal });
    } catch (err) {
      if ((err as Error).name === 'AbortError') {
        throw err; // let the SDK handle cancellation
      }
      if ((err as any).status === 400) {
        // Bad request: no point retrying
        ctx.fail(`invalid LLM request: ${(err as Error).message}`, { code: 'INVALID_REQUEST' });
      }
      // Anything else: throw to get a retryable nack
      throw err;
    }

    return { text: response.text, tokensUsed: response.usage.total };
  },
);

// ---- Graceful shutdown ----------------------------------------------------

const shutdown = async (signal: string) => {
  console.log(`${signal} received, draining...`);
  await neuron.stop({ drain: true, timeoutMs: 30_000 });
  process.exit(0);
};

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
await neuron.stop();
await neuron.stop({});

// ---- Runtime concurrency update -------------------------------------------

await neuron.updateCapability({ type: 'core/script.python', concurrency: 8 });
// @ts-expect-error updateCapability changes concurrency only
await neuron.updateCapability({ type: 'core/script.python', scope: 'any', concurrency: 8 });

// ---- Extras beyond the README ---------------------------------------------

const stats = neuron.stats();
type _stats = Expect<Equal<typeof stats, NeuronStats>>;
const acked: number = stats.leasesAcked;
const slots: number = stats.capabilities[0]!.running + stats.capabilities[0]!.queued;
const capType: string = stats.capabilities[0]!.type;
void [acked, slots, capType];
const connected: boolean = neuron.isConnected();
neuron.reconnectNow();
const version: string = SDK_VERSION;
void [connected, version];

await initNeuronSdk({ wasmBinary: new Uint8Array(8) });
await initNeuronSdk({ wasmUrl: new URL('https://cdn.example.com/neuron-core.wasm') });
declare const compiled: WebAssembly.Module;
await initNeuronSdk({ wasmModule: compiled });
// @ts-expect-error the bytes, a module or a URL
await initNeuronSdk({ wasmBinary: 'neuron-core.wasm' });

// ---- Wrong uses -----------------------------------------------------------

// @ts-expect-error scope is 'any' or { onBehalfOf }
neuron.handle({ type: 'core/x', scope: 'everyone', concurrency: 1 }, () => null);
// @ts-expect-error concurrency is required on a raw registration
neuron.handle({ type: 'core/x', scope: 'any' }, () => null);
// @ts-expect-error the handler is required
neuron.handle({ type: 'core/x', scope: 'any', concurrency: 1 });
// @ts-expect-error stop's options are { drain?, timeoutMs? }
await neuron.stop({ drain: 'yes' });

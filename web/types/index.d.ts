// Type declarations for @holokai/neuron-sdk (the package root).
// Hand-written; the implementation is src/index.js over a WebAssembly core.
// Wire shapes follow PROTOCOL.md section 2; names follow the README.

import type { EventEmitter } from 'eventemitter3';

// ---------------------------------------------------------------------------
// Capabilities and handlers
// ---------------------------------------------------------------------------

/** Who a capability serves: any user (shared queue), or one user only. */
export type CapabilityScope = 'any' | { onBehalfOf: string };

/**
 * A JSON Schema (any draft), checked loosely: the common keywords are typed,
 * any other keyword is allowed. `true` / `false` are schemas too.
 */
export type JsonSchema = boolean | JsonSchemaObject;

/** The object form of {@link JsonSchema}. */
export interface JsonSchemaObject {
  $schema?: string;
  $id?: string;
  $ref?: string;
  title?: string;
  description?: string;
  type?: string | readonly string[];
  properties?: { readonly [name: string]: JsonSchema };
  required?: readonly string[];
  additionalProperties?: JsonSchema;
  items?: JsonSchema | readonly JsonSchema[];
  enum?: readonly unknown[];
  const?: unknown;
  oneOf?: readonly JsonSchema[];
  anyOf?: readonly JsonSchema[];
  allOf?: readonly JsonSchema[];
  not?: JsonSchema;
  default?: unknown;
  [keyword: string]: any;
}

/** The raw (non-zod) form accepted by `neuron.handle(reg, handler)`. */
export interface CapabilityRegistration {
  /** Namespaced type `{owner}/{package}[/{name}][.{variant}]`, e.g. `core/script.python`. `handle()` throws on any other form. */
  type: string;
  scope: CapabilityScope;
  /** Max parallel executions; an integer >= 1. */
  concurrency: number;
  /** Advertised to the gateway (optional). */
  description?: string | undefined;
  /** Lease input failing it is nacked `schema-mismatch`; the handler is not called. */
  inputSchema?: JsonSchema | undefined;
  /** A return value failing it is nacked `schema-mismatch` instead of acked. */
  outputSchema?: JsonSchema | undefined;
}

/**
 * A task handler. Returning (or resolving) acks the lease with the value as
 * `output`; throwing nacks it `retryable`, unless the lease was cancelled
 * (`cancelled`) or the handler called `ctx.fail()` (`terminal`).
 */
export type Handler<TInput = unknown, TOutput = unknown> = (
  input: TInput,
  ctx: HandlerContext,
) => Promise<TOutput> | TOutput;

/** The second argument to every handler. */
export interface HandlerContext {
  /** Full task metadata as the gateway sent it; `task.input` is the raw, unvalidated input. */
  readonly task: TaskPayload;
  /** Gateway lease id (for logging / debugging). */
  readonly leaseId: string;
  /**
   * Fires on gateway cancel, lease loss, capability revocation or SDK
   * shutdown; `signal.reason` is an `AbortError` whose message says which.
   */
  readonly signal: AbortSignal;
  /** Logger scoped to this lease: every record carries leaseId, taskId and capability. */
  readonly log: NeuronLogger;
  /** Report progress. Never blocks, never throws; the SDK merges updates (latest fields win). */
  progress(update: { percent?: number | undefined; message?: string | undefined; data?: unknown }): void;
  /** Terminal failure: throws, and the lease is nacked `terminal` (no retry). */
  fail(reason: string, opts?: { code?: string | undefined }): never;
}

/** The `task` of a `lease` frame. */
export interface TaskPayload {
  taskId: string;
  /** The capability type this task was routed by. */
  type: string;
  /** Any JSON value. */
  input: unknown;
  /** 1 on first delivery, higher on redelivery. */
  attempt: number;
  /** The user a user-scoped task runs for. */
  onBehalfOf?: string;
  workflowId?: string;
  /** ISO-8601 UTC. */
  createdAt?: string;
  metadata?: Record<string, unknown>;
}

// ---------------------------------------------------------------------------
// defineCapability (zod, without importing zod)
// ---------------------------------------------------------------------------

/**
 * What `defineCapability` accepts as a schema: a zod 3 or zod 4 schema
 * (classic or mini), matched structurally so zod stays an optional peer.
 */
export type ZodLikeSchema = {
  safeParse(data: unknown, ...rest: any[]): unknown;
} & (
  | { readonly _zod: { readonly output: unknown; readonly input: unknown } }
  | { readonly _output: unknown; readonly _input: unknown }
);

/** The parsed (post-transform) type of a zod 3 or zod 4 schema: `z.output<S>`. */
export type SchemaOutput<S> = S extends { readonly _zod: { readonly output: any } }
  ? Required<S['_zod']>['output']
  : S extends { readonly _output: any }
    ? S['_output']
    : unknown;

/** The accepted (pre-transform) type of a zod 3 or zod 4 schema: `z.input<S>`. */
export type SchemaInput<S> = S extends { readonly _zod: { readonly input: any } }
  ? Required<S['_zod']>['input']
  : S extends { readonly _input: any }
    ? S['_input']
    : unknown;

declare const capabilityDefinition: unique symbol;

/**
 * A capability made by {@link defineCapability}, generic over its two zod
 * schemas. Its handler receives `SchemaOutput<I>` (the input schema's type
 * after transforms) and must return `SchemaInput<O>` (what the output schema
 * accepts). Validation runs the zod schemas themselves; the JSON Schema
 * advertised on the wire comes from zod-to-json-schema (zod 3) or zod 4's
 * toJSONSchema when installed, else the capability is advertised without one.
 */
export interface CapabilityDefinition<
  I extends ZodLikeSchema | undefined = ZodLikeSchema | undefined,
  O extends ZodLikeSchema | undefined = ZodLikeSchema | undefined,
> {
  /** @internal Marks a definition; `handle()` tells the two forms apart by it. */
  readonly [capabilityDefinition]: true;
  readonly type: string;
  readonly description: string | undefined;
  /** `undefined` when the definition has no input schema (input unchecked, typed `unknown`). */
  readonly input: I;
  /** `undefined` when the definition has no output schema (output unchecked). */
  readonly output: O;
  /** Default scope (`'any'` unless given); `handle()` overrides win. */
  readonly scope: CapabilityScope;
  /** Default concurrency (1 unless given); `handle()` overrides win. */
  readonly concurrency: number;
}

/** The `input` a definition's handler receives. */
export type CapabilityInput<D> = D extends CapabilityDefinition<infer I, any> ? SchemaOutput<I> : never;

/** What a definition's handler must return (or resolve to). */
export type CapabilityOutput<D> = D extends CapabilityDefinition<any, infer O> ? SchemaInput<O> : never;

/** The handler type for a definition, for handlers written apart from `handle()`. */
export type CapabilityHandler<D> = Handler<CapabilityInput<D>, CapabilityOutput<D>>;

/** Per-deployment overrides for `neuron.handle(definition, overrides, handler)`. */
export interface CapabilityOverrides {
  scope?: CapabilityScope | undefined;
  concurrency?: number | undefined;
}

/**
 * Build a typed capability from zod schemas (zod 3, or zod 4 via `zod/v4`).
 * The handler given to `neuron.handle(definition, handler)` then gets its
 * input and output types inferred. Throws if `input` / `output` are not zod
 * schemas (for raw JSON Schema use the `CapabilityRegistration` form).
 */
export declare function defineCapability<
  I extends ZodLikeSchema | undefined = undefined,
  O extends ZodLikeSchema | undefined = undefined,
>(def: {
  type: string;
  description?: string | undefined;
  /** Checks (and types) the handler's input; without it the input is unchecked. */
  input?: I;
  /** Checks (and types) what the handler returns; without it the output is unchecked. */
  output?: O;
  /** Default `'any'`. */
  scope?: CapabilityScope | undefined;
  /** Default 1. */
  concurrency?: number | undefined;
}): CapabilityDefinition<I, O>;

// ---------------------------------------------------------------------------
// Logging and auth
// ---------------------------------------------------------------------------

/** Token provider, called on every POST and stream open (the SDK caches nothing). */
export type AuthCallback = () => Promise<string> | string;

/** pino's call shape: `logger.info({ meta }, 'message')`. Default: silent. */
export interface NeuronLogger {
  debug(meta: Record<string, unknown>, msg?: string): void;
  info(meta: Record<string, unknown>, msg?: string): void;
  warn(meta: Record<string, unknown>, msg?: string): void;
  error(meta: Record<string, unknown>, msg?: string): void;
}

// ---------------------------------------------------------------------------
// Neuron
// ---------------------------------------------------------------------------

/** Options of every `Neuron`, whatever the carrier. */
export interface NeuronCommonOptions {
  /** Stable per process/device: the gateway correlates reconnects by it. */
  neuronId: string;
  /** pino, console wrappers, ... Default: silent. */
  logger?: NeuronLogger | undefined;
  /** Default 10_000 (10 s). */
  heartbeatIntervalMs?: number | undefined;
  /** A stream that delivered no bytes for this long is treated as dead and reopened. Default 45_000. */
  idleTimeoutMs?: number | undefined;
  /** Backoff delays are scaled by a factor drawn from [1 - jitter, 1]; 0..1, default 0.2 (0 = exact doubling). */
  reconnectJitter?: number | undefined;
  /** Events with more data than this are dropped (with an `error` event). Default 16 MiB. */
  maxFrameBytes?: number | undefined;
  /** POSTs in flight at once (the stream is separate); the rest wait in order. Default: the capabilities' concurrency added up, at least 16 and at most 128 (it follows `updateCapability`). */
  maxInFlightRequests?: number | undefined;
  /** How long a verdict waits for its lease's progress POST still in flight before it goes out anyway. Default 1_000. */
  progressGraceMs?: number | undefined;
}

/** Convenience shape: the SDK builds the HTTP carrier for you. */
export interface NeuronOptionsWithHttp extends NeuronCommonOptions {
  /** Base URL, e.g. `'https://api.example.com'` (a trailing slash is stripped). */
  gatewayUrl: string;
  auth: AuthCallback;
  /** First reconnect delay. Default 500. */
  initialReconnectDelayMs?: number | undefined;
  /** Reconnect delay ceiling. Default 30_000. */
  maxReconnectDelayMs?: number | undefined;
  /** Override the global `fetch` (tests). */
  fetch?: typeof fetch | undefined;
  transport?: never;
}

/** Bring your own carrier: `IpcTransport`, a prebuilt `HttpTransport`, or a custom `Transport`. */
export interface NeuronOptionsWithTransport extends NeuronCommonOptions {
  transport: Transport;
  /** Not with `transport`: an `HttpTransport` carries its own. */
  gatewayUrl?: never;
  /** Not with `transport`: an `HttpTransport` carries its own. */
  auth?: never;
  initialReconnectDelayMs?: never;
  maxReconnectDelayMs?: never;
  fetch?: never;
}

export type NeuronOptions = NeuronOptionsWithHttp | NeuronOptionsWithTransport;

/** Payload of `connection:registered`. */
export interface RegisteredInfo {
  sessionId: string;
  /** How many capabilities the gateway accepted (after its policy filters). */
  capabilities: number;
}

/** Payload of `connection:reconnecting` (emitted before the backoff wait). */
export interface ReconnectingInfo {
  /** 1-based; resets when the gateway answers `registered`. */
  attempt: number;
  delayMs: number;
  reason: string;
}

/** The `Neuron` event map: event name → listener arguments. */
export interface NeuronEvents {
  /** Stream open; `register` is posted right after. */
  'connection:open': [];
  'connection:registered': [info: RegisteredInfo];
  /** `reason` is `'stopped'` after `neuron.stop()`. */
  'connection:close': [reason: string];
  'connection:reconnecting': [info: ReconnectingInfo];
  /**
   * Transport, stream or frame trouble; the SDK recovers by itself. Mostly a
   * `NeuronError` (or `RegistrationError`); a custom transport's `onError` errors pass through.
   */
  error: [err: Error];
  /** Every parsed inbound frame, including the ones the SDK handles itself. */
  frame: [frame: ServerToNeuronFrame];
}

/** A `Neuron` event name. */
export type NeuronEventName = keyof NeuronEvents;

/** A listener for event `E`. */
export type NeuronListener<E extends NeuronEventName> = (...args: NeuronEvents[E]) => void;

/** Counters from `neuron.stats()`; all counts since construction. */
export interface NeuronStats {
  leasesReceived: number;
  leasesDuplicate: number;
  leasesAcked: number;
  nacksRetryable: number;
  nacksTerminal: number;
  nacksSchemaMismatch: number;
  nacksCancelled: number;
  /** Queued leases discarded on connection loss (no nack). */
  leasesDropped: number;
  /** Leases the gateway reported lost in a heartbeat answer. */
  leasesLost: number;
  reconnects: number;
  bytesIn: number;
  framesIn: number;
  framesOut: number;
  frameErrors: number;
  /** POSTs sent and not yet answered (the stream is not one). */
  requestsInFlight: number;
  /** POSTs waiting: for a place under `requestBound`, for their retry time, or behind their lease's progress. */
  requestsQueued: number;
  /** POSTs in flight at most: `maxInFlightRequests`, or by default the capabilities' concurrency added up (16 to 128). */
  requestBound: number;
  /** One entry per capability, in `handle()` order: leases waiting for a slot, running, and the current limit. */
  capabilities: Array<{ type: string; queued: number; running: number; concurrency: number }>;
}

/**
 * eventemitter3's `EventEmitter<NeuronEvents>` (Neuron's runtime base class)
 * without the methods Neuron re-types: its `on` / `addListener` / `once`
 * return an unsubscribe function rather than `this`.
 */
declare const NeuronEmitter: new () => Omit<
  EventEmitter<NeuronEvents>,
  'on' | 'addListener' | 'once' | 'off' | 'removeListener' | 'removeAllListeners'
>;

/**
 * A neuron: advertises capabilities, holds the gateway connection, runs
 * handlers for leased tasks. An eventemitter3 `EventEmitter` at runtime
 * (`neuron instanceof EventEmitter`); see {@link NeuronEvents}.
 */
export declare class Neuron extends NeuronEmitter {
  /** Throws `TypeError` on invalid options, or if the wasm core could not load (see `initNeuronSdk`). */
  constructor(opts: NeuronOptions);

  /**
   * Register a handler for a typed capability (input/output inferred from
   * its zod schemas). Before `start()` only; throws on a bad or duplicate type.
   */
  handle<I extends ZodLikeSchema | undefined, O extends ZodLikeSchema | undefined>(
    definition: CapabilityDefinition<I, O>,
    handler: Handler<SchemaOutput<I>, SchemaInput<O>>,
  ): void;
  /** Same, overriding the definition's default scope / concurrency. */
  handle<I extends ZodLikeSchema | undefined, O extends ZodLikeSchema | undefined>(
    definition: CapabilityDefinition<I, O>,
    overrides: CapabilityOverrides,
    handler: Handler<SchemaOutput<I>, SchemaInput<O>>,
  ): void;
  /** Register a handler for a raw capability (optional JSON Schemas). Before `start()` only. */
  handle(
    reg: CapabilityRegistration & { readonly [capabilityDefinition]?: never },
    handler: Handler,
  ): void;

  /**
   * Connect, register, start heartbeats. Resolves on the gateway's first
   * `registered`; rejects with a `RegistrationError` on a 403. Rejects if no
   * handler was registered. Later calls return the same promise.
   */
  start(): Promise<void>;

  /**
   * Graceful shutdown: queued leases are nacked `retryable` at once; with
   * `drain` (default true) running handlers get `timeoutMs` (default 30_000)
   * before their signals fire. Later calls return the same promise.
   */
  stop(opts?: { drain?: boolean | undefined; timeoutMs?: number | undefined }): Promise<void>;

  /** Change a registered capability's concurrency at runtime; rejects for an unregistered type. */
  updateCapability(update: { type: string; concurrency: number }): Promise<void>;

  /** Counters from the wasm core (a snapshot). */
  stats(): NeuronStats;

  /** True while the stream (or IPC channel) is open. */
  isConnected(): boolean;

  /** Skip the rest of a reconnect backoff and connect now. */
  reconnectNow(): void;

  /** Subscribe; returns a function that unsubscribes. */
  on<E extends NeuronEventName>(event: E, fn: NeuronListener<E>, context?: unknown): () => void;
  /** Alias of `on`: returns a function that unsubscribes. */
  addListener<E extends NeuronEventName>(event: E, fn: NeuronListener<E>, context?: unknown): () => void;
  /** Subscribe for one call; returns a function that unsubscribes (if it has not fired yet). */
  once<E extends NeuronEventName>(event: E, fn: NeuronListener<E>, context?: unknown): () => void;
  /** Remove a listener (or all of `event`'s when `fn` is omitted). */
  off<E extends NeuronEventName>(event: E, fn?: NeuronListener<E>, context?: unknown, once?: boolean): this;
  removeListener<E extends NeuronEventName>(event: E, fn?: NeuronListener<E>, context?: unknown, once?: boolean): this;
  removeAllListeners(event?: NeuronEventName): this;
}

/** The SDK version sent in `register` (`sdk.version`). */
export declare const SDK_VERSION: string;

/**
 * Hand the WebAssembly core over when the package could not load it at
 * import (Electron `file://`, a strict CSP, custom hosting). Resolves when
 * the core is ready; a no-op once it is.
 */
export declare function initNeuronSdk(source: {
  /** The bytes of `neuron-core.wasm` (exported as `@holokai/neuron-sdk/neuron-core.wasm`). */
  wasmBinary?: ArrayBuffer | Uint8Array | undefined;
  wasmModule?: WebAssembly.Module | undefined;
  wasmUrl?: string | URL | undefined;
  /**
   * `neuron-schema.wasm` (its bytes, a compiled Module or its URL), the JSON
   * Schema validator a capability with a raw `inputSchema` / `outputSchema`
   * needs; loaded when such a neuron starts. By default it is found next to
   * `neuron-core.wasm` (exported as `@holokai/neuron-sdk/neuron-schema.wasm`).
   */
  schemaWasm?: ArrayBuffer | Uint8Array | WebAssembly.Module | string | URL | undefined;
}): Promise<void>;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/** The gateway refused `register` (HTTP 403): the token may not advertise a capability's namespace. */
export declare class RegistrationError extends Error {
  constructor(message: string, status?: number);
  name: 'RegistrationError';
  /** HTTP status of the refusal (403). */
  status: number;
  code: 'registration-rejected';
}

/** Transport, stream or frame trouble, emitted as `error` (the SDK recovers by itself). */
export declare class NeuronError extends Error {
  constructor(message: string, code: string, status?: number);
  name: 'NeuronError';
  /** Stable kebab-case code, e.g. `'stream-failed'`, `'malformed-frame'`, `'post-failed'`. */
  code: string;
  /** HTTP status involved, or 0. */
  status: number;
}

// ---------------------------------------------------------------------------
// Transports
// ---------------------------------------------------------------------------

/** The six POST paths, one per client frame type. */
export type PostPath =
  | '/neuron/register'
  | '/neuron/update-capability'
  | '/neuron/heartbeat'
  | '/neuron/ack'
  | '/neuron/nack'
  | '/neuron/progress';

/** Inbound events a `Transport` reports. */
export interface TransportCallbacks {
  onOpen?: () => void;
  onClose?: (reason: string) => void;
  onFrame?: (frame: ServerToNeuronFrame) => void;
  onError?: (err: Error) => void;
  onReconnecting?: (info: ReconnectingInfo) => void;
}

/**
 * A carrier of frames: inbound `ServerToNeuronFrame`s through the
 * callbacks, outbound `ClientFrame`s through `post`. Implement it for a
 * custom carrier. If `post` rejects with an error carrying a numeric
 * `status`, the SDK treats it as that HTTP answer (403 on `/neuron/register`
 * = registration rejected, 409 on ack/nack = lease gone); any other
 * rejection counts as a network error for that frame. A transport that
 * reconnects by itself reports `onClose`, then `onOpen` again.
 */
export interface Transport {
  /** Called once, before `start()`. */
  subscribe(callbacks: TransportCallbacks): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Resolves with the answer body, if any (the heartbeat's may list `lostLeases`). */
  post<T extends ClientFrame>(path: PostPath, frame: T): Promise<unknown>;
  isConnected(): boolean;
}

export interface HttpTransportOptions {
  /** Base URL, e.g. `'https://api.example.com'`. */
  gatewayUrl: string;
  neuronId: string;
  auth: AuthCallback;
  logger?: NeuronLogger | undefined;
  /** Default 500. */
  initialReconnectDelayMs?: number | undefined;
  /** Default 30_000. */
  maxReconnectDelayMs?: number | undefined;
  fetch?: typeof fetch | undefined;
}

/**
 * SSE in, HTTPS POST out, reconnecting with exponential backoff; retries
 * once on 401. Given to `new Neuron({ transport })` it behaves exactly like
 * passing `gatewayUrl` + `auth`, and then reports that neuron's connection:
 * `isConnected()` is the neuron's stream, `start()` / `stop()` start and
 * stop the neuron, subscribed callbacks hear its connection events and the
 * frames the gateway sends. One Neuron per transport.
 */
export declare class HttpTransport implements Transport {
  /** Throws `TypeError` on a missing `neuronId` / `auth` or a non-http(s) `gatewayUrl`. */
  constructor(opts: HttpTransportOptions);
  subscribe(callbacks: TransportCallbacks): void;
  /** Resolves once the stream is open, then keeps it open (given to a Neuron: starts it, resolves once registered). */
  start(): Promise<void>;
  /** Closes the stream for good (given to a Neuron: stops it without drain). */
  stop(): Promise<void>;
  /** Rejects with an `Error` carrying `status` on a non-2xx answer. */
  post<T extends ClientFrame>(path: PostPath, frame: T): Promise<unknown>;
  isConnected(): boolean;
}

// ---------------------------------------------------------------------------
// Frames (PROTOCOL.md section 2). Unknown extra fields may appear.
// ---------------------------------------------------------------------------

/** A capability as listed in `register`. */
export interface AdvertisedCapability {
  type: string;
  scope: CapabilityScope;
  concurrency: number;
  description?: string;
  inputSchema?: JsonSchema;
  outputSchema?: JsonSchema;
}

/** Fields every neuron → gateway frame carries. */
export interface ClientFrameBase {
  neuronId: string;
  /** ISO-8601 UTC with milliseconds, stamped at send time. */
  sentAt: string;
}

/** POST /neuron/register */
export interface RegisterFrame extends ClientFrameBase {
  type: 'register';
  sdk: { name: string; version: string };
  capabilities: AdvertisedCapability[];
}

/** POST /neuron/update-capability */
export interface UpdateCapabilityFrame extends ClientFrameBase {
  type: 'update-capability';
  /** The capability type. */
  capability: string;
  concurrency: number;
}

/** A running lease, as listed in a heartbeat. */
export interface InFlightLease {
  leaseId: string;
  taskId: string;
  startedAt: string;
}

/** POST /neuron/heartbeat (running leases only, never queued ones). */
export interface HeartbeatFrame extends ClientFrameBase {
  type: 'heartbeat';
  inFlight: InFlightLease[];
}

/** POST /neuron/ack */
export interface AckFrame extends ClientFrameBase {
  type: 'ack';
  leaseId: string;
  taskId: string;
  /** Any JSON value (the handler's return; `null` for `undefined`). */
  output: unknown;
  durationMs: number;
}

export type NackKind = 'retryable' | 'terminal' | 'schema-mismatch' | 'cancelled';

/** One schema violation; `path` is a JSON Pointer into the value. */
export interface SchemaViolation {
  path: string;
  message: string;
}

/** POST /neuron/nack */
export interface NackFrame extends ClientFrameBase {
  type: 'nack';
  leaseId: string;
  taskId: string;
  kind: NackKind;
  reason: string;
  /** e.g. `ctx.fail`'s code, or `NO_HANDLER`, `SHUTTING_DOWN`, `CAPABILITY_REVOKED`, `MALFORMED_LEASE`. */
  code?: string;
  /** `schema-mismatch` only. */
  errors?: SchemaViolation[];
}

/** POST /neuron/progress */
export interface ProgressFrame extends ClientFrameBase {
  type: 'progress';
  leaseId: string;
  taskId: string;
  percent?: number;
  message?: string;
  data?: unknown;
}

/** Any frame a neuron posts. */
export type ClientFrame =
  | RegisterFrame
  | UpdateCapabilityFrame
  | HeartbeatFrame
  | AckFrame
  | NackFrame
  | ProgressFrame;

/** The gateway accepted `register`; lists the effective capabilities. */
export interface RegisteredFrame {
  type: 'registered';
  sessionId: string;
  capabilities: Array<{ type: string; scope: CapabilityScope; concurrency: number }>;
  /** Capabilities the gateway filtered out, with why. */
  rejected?: Array<{ type: string; reason: string }>;
}

/** A task to execute. */
export interface LeaseFrame {
  type: 'lease';
  leaseId: string;
  /** ISO-8601 UTC; heartbeats renew it. */
  expiresAt: string;
  task: TaskPayload;
}

/** The gateway cancels one lease (e.g. workflow cancelled). */
export interface CancelFrame {
  type: 'cancel';
  leaseId: string;
  reason?: string;
}

/** A capability was deauthorized mid-session. */
export interface CapabilityRevokedFrame {
  type: 'capability-revoked';
  /** The capability type. */
  capability: string;
  reason?: string;
}

/** The gateway is closing the connection cleanly. */
export interface DisconnectFrame {
  type: 'disconnect';
  reason?: string;
  /** Whether to reconnect; default true. */
  reconnect?: boolean;
}

/** Any frame the gateway sends (the `frame` event's payload). */
export type ServerToNeuronFrame =
  | RegisteredFrame
  | LeaseFrame
  | CancelFrame
  | CapabilityRevokedFrame
  | DisconnectFrame;

/** Every frame `type`. */
export type FrameType = ClientFrame['type'] | ServerToNeuronFrame['type'];

/** JSON Schema (draft-07) of each frame, by `type`. */
export declare const frameSchemas: { readonly [K in FrameType]: JsonSchemaObject };

/** JSON Schema (draft-07) of {@link ServerToNeuronFrame} (a `oneOf`). */
export declare const serverToNeuronFrameSchema: JsonSchemaObject;

/** JSON Schema (draft-07) of {@link ClientFrame} (a `oneOf`). */
export declare const clientFrameSchema: JsonSchemaObject;

/** The POST path of each client frame type. */
export declare const POST_PATHS: {
  readonly register: '/neuron/register';
  readonly 'update-capability': '/neuron/update-capability';
  readonly heartbeat: '/neuron/heartbeat';
  readonly ack: '/neuron/ack';
  readonly nack: '/neuron/nack';
  readonly progress: '/neuron/progress';
};

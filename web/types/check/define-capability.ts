// defineCapability with zod 3 (`zod`) and zod 4 (`zod/v4`): handler input is
// the input schema's output type, the handler returns the output schema's
// input type; overrides form; wrong uses.

import { defineCapability, Neuron } from '@holokai/neuron-sdk';
import type {
  CapabilityDefinition,
  CapabilityHandler,
  CapabilityInput,
  CapabilityOutput,
  CapabilityScope,
  SchemaInput,
  SchemaOutput,
} from '@holokai/neuron-sdk';
import { z } from 'zod';
import { z as z4 } from 'zod/v4';
import * as zm from 'zod/v4/mini';
import type { Equal, Expect } from './helpers.js';

declare const neuron: Neuron;
declare const fn: (input: { code: string; args?: Record<string, unknown> | undefined }) => Promise<{ stdout: string; exitCode: number }>;

// ---- zod 3, the README's example -------------------------------------------

const pythonCap = defineCapability({
  type: 'core/script.python',
  description: 'Run a Python script in a sandbox',
  input: z.object({ code: z.string(), args: z.record(z.unknown()).optional() }),
  output: z.object({ stdout: z.string(), exitCode: z.number() }),
  scope: 'any', // optional default; overridable at handle() time
  concurrency: 4, // optional default; overridable at handle() time
});

// Handler input/output inferred, no manual type annotations:
neuron.handle(pythonCap, async (input, ctx) => {
  type _input = Expect<Equal<typeof input, { code: string; args?: Record<string, unknown> | undefined }>>;
  ctx.log.info({ code: input.code.length, args: Object.keys(input.args ?? {}) });
  return { stdout: '...', exitCode: 0 };
});

// Or override defaults per deployment:
neuron.handle(pythonCap, { scope: { onBehalfOf: 'user-123' }, concurrency: 8 }, fn);
neuron.handle(pythonCap, { concurrency: 2 }, (input) => ({ stdout: input.code, exitCode: 0 }));

type _in3 = Expect<Equal<CapabilityInput<typeof pythonCap>, { code: string; args?: Record<string, unknown> | undefined }>>;
type _out3 = Expect<Equal<CapabilityOutput<typeof pythonCap>, { stdout: string; exitCode: number }>>;
type _schemas3 = Expect<Equal<(typeof pythonCap.input)['shape']['code'], z.ZodString>>;
type _scope = Expect<Equal<typeof pythonCap.scope, CapabilityScope>>;
const parsed = pythonCap.input.parse({ code: 'print(1)' }); // the schemas stay zod schemas
type _parsed = Expect<Equal<typeof parsed, z.infer<typeof pythonCap.input>>>;

// Transforms: the handler sees the parsed value and returns what the output schema accepts.
const lengthCap = defineCapability({
  type: 'core/text.length',
  input: z.object({ text: z.string() }).transform(({ text }) => ({ text, length: text.length })),
  output: z.object({ at: z.string().transform((s) => new Date(s)) }),
});
type _inT3 = Expect<Equal<CapabilityInput<typeof lengthCap>, { text: string; length: number }>>;
type _outT3 = Expect<Equal<CapabilityOutput<typeof lengthCap>, { at: string }>>;
type _zodAgrees3 = Expect<Equal<SchemaOutput<typeof lengthCap.input>, z.output<typeof lengthCap.input>>>;
type _zodAgrees3b = Expect<Equal<SchemaInput<typeof lengthCap.output>, z.input<typeof lengthCap.output>>>;
neuron.handle(lengthCap, (input) => ({ at: new Date(input.length).toISOString() }));

// A handler written apart from handle().
const standalone: CapabilityHandler<typeof pythonCap> = async ({ code }) => ({ stdout: code, exitCode: 0 });
neuron.handle(pythonCap, standalone);

// ---- zod 4 (zod/v4) --------------------------------------------------------

const searchCap = defineCapability({
  type: 'core/search.web',
  input: z4.object({ query: z4.string(), limit: z4.number().int().default(10) }),
  output: z4.object({
    hits: z4.array(z4.object({ url: z4.url(), title: z4.string() })),
    tookMs: z4.number().optional(),
  }),
});
neuron.handle(searchCap, async (input, ctx) => {
  // `limit` has a default: present after parsing.
  type _input = Expect<Equal<typeof input, { query: string; limit: number }>>;
  ctx.progress({ message: `searching ${input.query}` });
  return { hits: [{ url: 'https://example.com', title: 'Example' }].slice(0, input.limit) };
});
type _in4 = Expect<Equal<CapabilityInput<typeof searchCap>, { query: string; limit: number }>>;
type _out4 = Expect<Equal<CapabilityOutput<typeof searchCap>, { hits: { url: string; title: string }[]; tookMs?: number | undefined }>>;
type _zodAgrees4 = Expect<Equal<SchemaOutput<typeof searchCap.input>, z4.output<typeof searchCap.input>>>;
type _zodAgrees4b = Expect<Equal<SchemaInput<typeof searchCap.input>, z4.input<typeof searchCap.input>>>;

const parseCap = defineCapability({
  type: 'core/number.parse',
  input: z4.string().transform((s) => Number(s)),
  output: z4.string().pipe(z4.coerce.number()),
  concurrency: 16,
});
neuron.handle(parseCap, { scope: { onBehalfOf: 'user:abc' } }, (n) => {
  type _n = Expect<Equal<typeof n, number>>;
  return String(n * 2);
});
type _outP4 = Expect<Equal<CapabilityOutput<typeof parseCap>, string>>;

// zod 4 mini schemas work the same way.
const miniCap = defineCapability({
  type: 'core/mini.echo',
  input: zm.object({ text: zm.string(), times: zm.optional(zm.number()) }),
  output: zm.array(zm.string()),
});
neuron.handle(miniCap, ({ text, times }) => Array.from({ length: times ?? 1 }, () => text));
type _inM = Expect<Equal<CapabilityInput<typeof miniCap>, { text: string; times?: number | undefined }>>;
type _outM = Expect<Equal<CapabilityOutput<typeof miniCap>, string[]>>;

// Both zod versions are CapabilityDefinitions.
const defs: CapabilityDefinition[] = [pythonCap, lengthCap, searchCap, parseCap, miniCap];
void defs;

// ---- Wrong uses -----------------------------------------------------------

// @ts-expect-error exitCode must be a number (the output schema's input type)
neuron.handle(pythonCap, async () => {
  return { stdout: 'ok', exitCode: '0' };
});
// @ts-expect-error stdout is missing from the returned output
neuron.handle(pythonCap, () => ({ exitCode: 0 }));
neuron.handle(pythonCap, (input) => {
  // @ts-expect-error the input schema has no `script` property
  return { stdout: input.script, exitCode: 0 };
});
// @ts-expect-error hits[].title must be a string
neuron.handle(searchCap, { concurrency: 1 }, async (input) => {
  return { hits: [{ url: input.query, title: 1 }] };
});
// @ts-expect-error overrides are scope and concurrency only
neuron.handle(pythonCap, { type: 'core/other' }, fn);
// @ts-expect-error input must be a zod schema, not JSON Schema
defineCapability({ type: 'core/x', input: { type: 'object' }, output: z.string() });
// @ts-expect-error output must be a zod schema when given
defineCapability({ type: 'core/x', input: z.string(), output: { type: 'string' } });

// ---- Either schema may be left out: that side is unchecked, typed unknown ------

const inputOnly = defineCapability({ type: 'core/in-only', input: z.object({ n: z.number() }), concurrency: 2 });
type _inputOnly = [
  Expect<Equal<CapabilityInput<typeof inputOnly>, { n: number }>>,
  Expect<Equal<CapabilityOutput<typeof inputOnly>, unknown>>,
];
neuron.handle(inputOnly, (input) => input.n * 2);
neuron.handle(inputOnly, (input) => {
  // @ts-expect-error the input schema has no `m` property
  return input.m;
});
const outputOnly = defineCapability({ type: 'core/out-only', output: z4.string() });
type _outputOnly = [
  Expect<Equal<CapabilityInput<typeof outputOnly>, unknown>>,
  Expect<Equal<CapabilityOutput<typeof outputOnly>, string>>,
];
neuron.handle(outputOnly, () => 'fine');
// @ts-expect-error the output schema is a string
neuron.handle(outputOnly, () => 1);
const neither = defineCapability({ type: 'core/plain' });
neuron.handle(neither, (input: unknown) => input);

// ---- Raw JSON Schema from zod-to-json-schema -----------------------------------

import { zodToJsonSchema } from 'zod-to-json-schema';
import type { JsonSchema } from '@holokai/neuron-sdk';

neuron.handle(
  {
    type: 'core/script.ruby',
    scope: 'any',
    concurrency: 1,
    inputSchema: zodToJsonSchema(z.object({ code: z.string() })),
    outputSchema: zodToJsonSchema(z.object({ stdout: z.string() }), { target: 'jsonSchema7' }),
  },
  (input) => ({ stdout: String((input as { code: string }).code) }),
);

// `as const` schemas (readonly arrays, literal types) are accepted too.
const echoSchema = {
  type: 'object',
  required: ['text'],
  properties: { text: { type: 'string', enum: ['a', 'b'] }, n: { type: ['integer', 'null'] } },
  additionalProperties: false,
  'x-internal': true,
} as const;
const asJsonSchema: JsonSchema = echoSchema;
void asJsonSchema;
// @ts-expect-error a schema is an object or a boolean
const notASchema: JsonSchema = 'object';
void notASchema;

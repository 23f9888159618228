// defineCapability(): typed capabilities from zod schemas. zod is an optional
// peer dependency: nothing here imports it. Validation runs the user's own zod
// schemas in JS (so .refine / .transform / .preprocess / .brand all run); the
// JSON Schema advertised on the wire is produced at neuron.start() by
// zod-to-json-schema (zod 3) or toJSONSchema from zod/v4/core (zod 4), when
// installed; without them the capability is advertised without schemas.

const DEFINITION = Symbol.for('@holokai/neuron-sdk/capability-definition');

/** @param {unknown} s */
export function isZodSchema(s) {
  return s != null && typeof s === 'object' && typeof (/** @type {any} */ (s).safeParse) === 'function';
}

/** @param {unknown} v @returns {v is import('../types/index.js').CapabilityDefinition<any, any>} */
export function isCapabilityDefinition(v) {
  return v != null && typeof v === 'object' && /** @type {any} */ (v)[DEFINITION] === true;
}

/**
 * Either schema may be left out: that side is then unchecked (and typed
 * `unknown`), and advertised without a schema.
 * @param {{ type: string, description?: string, input?: any, output?: any,
 *           scope?: 'any' | { onBehalfOf: string }, concurrency?: number }} def
 */
export function defineCapability(def) {
  if (def == null || typeof def !== 'object') {
    throw new TypeError('defineCapability(def) needs an object: { type, input?, output?, scope?, concurrency?, description? }');
  }
  if (typeof def.type !== 'string') throw new TypeError('defineCapability: `type` must be a capability type string like "core/script.python"');
  for (const key of /** @type {const} */ (['input', 'output'])) {
    if (def[key] !== undefined && !isZodSchema(def[key])) {
      throw new TypeError(`defineCapability(${def.type}): \`${key}\` must be a zod schema (z.object(...)) or left out; for raw JSON Schema use neuron.handle({ type, scope, concurrency, ${key}Schema }, fn)`);
    }
  }
  return Object.freeze({
    [DEFINITION]: true,
    type: def.type,
    description: def.description,
    input: def.input,
    output: def.output,
    scope: def.scope ?? 'any',
    concurrency: def.concurrency ?? 1,
  });
}

/** @param {(string | number | symbol)[]} path */
function pointer(path) {
  let out = '';
  for (const seg of path) out += '/' + String(seg).replace(/~/g, '~0').replace(/\//g, '~1');
  return out;
}

/**
 * @typedef {{ ok: true, data: unknown } | { ok: false, errors: { path: string, message: string }[] }} Checked
 * @param {any} r
 * @returns {Checked}
 */
function fromSafeParse(r) {
  if (r.success) return { ok: true, data: r.data };
  const issues = r.error?.issues ?? [];
  const errors = issues.map((/** @type {any} */ i) => ({ path: pointer(i.path ?? []), message: String(i.message) }));
  if (!errors.length) errors.push({ path: '', message: String(r.error?.message ?? 'invalid') });
  return { ok: false, errors };
}

/**
 * Validate with a zod schema; a promise only when the schema is async.
 * @param {any} schema @param {unknown} value
 * @returns {Checked | Promise<Checked>}
 */
export function zodCheck(schema, value) {
  let r;
  try {
    r = schema.safeParse(value);
  } catch (err) {
    // zod throws from safeParse when it meets an async refine/transform
    if (typeof schema.safeParseAsync === 'function') return schema.safeParseAsync(value).then(fromSafeParse);
    throw err;
  }
  return fromSafeParse(r);
}

/** @type {Promise<{ v3: Function | null, v4: Function | null }> | null} */
let converters = null;

/** @param {string} name */
function optionalImport(name) {
  // A computed specifier: bundlers leave it alone, so a missing optional peer
  // is a runtime null here rather than a build error in the user's app.
  return import(/* @vite-ignore */ /* webpackIgnore: true */ name).catch(() => null);
}

function loadConverters() {
  converters ??= Promise.all([optionalImport(['zod-to-json-schema'][0]), optionalImport(['zod/v4/core'][0])]).then(([a, b]) => ({
    v3: a?.zodToJsonSchema ?? a?.default ?? null,
    v4: b?.toJSONSchema ?? null,
  }));
  return converters;
}

/**
 * The JSON Schema text advertised for a zod schema, or '' when it cannot be made.
 * @param {any} schema @param {'input' | 'output'} io
 * @returns {Promise<{ json: string, why?: string }>}
 */
export async function zodToWireSchema(schema, io) {
  const conv = await loadConverters();
  try {
    if (schema._zod) {
      if (!conv.v4) return { json: '', why: 'zod 4 schema but zod/v4/core could not be imported' };
      return { json: JSON.stringify(conv.v4(schema, { io, unrepresentable: 'any' })) };
    }
    if (!conv.v3) return { json: '', why: 'zod 3 schema but zod-to-json-schema is not installed (npm i zod-to-json-schema)' };
    return { json: JSON.stringify(conv.v3(schema, { target: 'jsonSchema7', $refStrategy: 'none' })) };
  } catch (err) {
    return { json: '', why: `JSON Schema conversion failed: ${/** @type {Error} */ (err).message}` };
  }
}

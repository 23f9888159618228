// @ts-check
// Capabilities as the editor holds them (text fields), the ready examples,
// and turning one into what neuron.handle() takes: checked, with every
// problem attached to the field it comes from.

/** @typedef {import('./session.js').CapabilitySpec} CapabilitySpec */

/** @param {Partial<CapabilitySpec> & { type: string }} c @returns {CapabilitySpec} */
const spec = (c) => ({ scopeUser: '', concurrency: 1, description: '', inputSchema: '', outputSchema: '', code: 'return input;', ...c });

const json = (/** @type {unknown} */ v) => JSON.stringify(v, null, 2);

/**
 * @param {string} label what the examples menu says @param {unknown} sample an input for "Send work"
 * @param {Partial<CapabilitySpec> & { type: string }} c
 */
const example = (label, sample, c) => ({ label, sample, spec: spec(c) });

/** The examples the page offers (echo, sleep with progress, fail, throw, respects cancel). */
export const EXAMPLES = /** @type {Record<string, { label: string, spec: CapabilitySpec, sample: unknown }>} */ ({
  echo: example('echo', { text: 'hello' }, {
    type: 'core/demo.echo', concurrency: 4, description: 'Returns its input',
    inputSchema: json({ type: 'object', properties: { text: { type: 'string' } }, required: ['text'] }),
    code: '// input is checked against inputSchema before this runs\nreturn { echoed: input.text };',
  }),
  sleep: example('sleep with progress', { ms: 2000 }, {
    type: 'core/demo.sleep', concurrency: 2, description: 'Sleeps, reporting progress',
    inputSchema: json({ type: 'object', properties: { ms: { type: 'integer', minimum: 0, maximum: 600000 } }, required: ['ms'] }),
    outputSchema: json({ type: 'object', properties: { sleptMs: { type: 'integer' } }, required: ['sleptMs'] }),
    code: [
      'const steps = 10;',
      'for (let i = 1; i <= steps; i++) {',
      '  await sleep(input.ms / steps, ctx.signal); // rejects when the lease is cancelled',
      '  ctx.progress({ percent: i * 10, message: `step ${i} of ${steps}` });',
      '}',
      'return { sleptMs: input.ms };',
    ].join('\n'),
  }),
  fail: example('fail terminal', { apiKey: 'wrong' }, {
    type: 'core/demo.fail', description: 'Always fails for good: nack terminal',
    code: "ctx.log.warn({ apiKey: '***' }, 'rejecting the key');\nctx.fail('invalid API key', { code: 'INVALID_API_KEY' });",
  }),
  throws: example('throw retryable', { url: 'https://example.invalid' }, {
    type: 'core/demo.flaky', description: 'Throws: nack retryable, the gateway redelivers',
    code: "await sleep(100);\nthrow new Error('socket hang up (a transient error)');",
  }),
  cancel: example('respects cancel', { seconds: 30 }, {
    type: 'core/demo.long', concurrency: 2, description: 'Runs until done or cancelled',
    code: [
      "// ctx.signal fires on cancel, revoke, lease loss and shutdown; reason says which",
      'const end = Date.now() + (input?.seconds ?? 30) * 1000;',
      'while (Date.now() < end) {',
      '  if (ctx.signal.aborted) throw ctx.signal.reason;',
      '  ctx.progress({ percent: Math.round(100 - (end - Date.now()) / ((input?.seconds ?? 30) * 10)) });',
      '  await sleep(250, ctx.signal);',
      '}',
      'return { done: true };',
    ].join('\n'),
  }),
});

/**
 * sleep(ms, signal?): the helper handler code gets; rejects with the
 * signal's reason when it fires.
 * @param {number} ms @param {AbortSignal} [signal]
 */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(undefined);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const AsyncFunction = /** @type {FunctionConstructor} */ (Object.getPrototypeOf(async () => {}).constructor);

/**
 * @typedef {{ type?: string, scopeUser?: string, concurrency?: string, inputSchema?: string, outputSchema?: string, code?: string }} FieldErrors
 * @typedef {{
 *   reg: { type: string, scope: 'any' | { onBehalfOf: string }, concurrency: number, description?: string, inputSchema?: object, outputSchema?: object },
 *   run: (input: unknown, ctx: any) => Promise<unknown>,
 * }} Compiled
 */

const TYPE_RE = /^[a-z][a-z0-9-]*\/\S+$/; // the SDK checks the rest when the neuron starts

/** @param {string} text @param {string} name @param {FieldErrors} errors @param {'inputSchema' | 'outputSchema'} key */
function parseSchema(text, name, errors, key) {
  if (!text.trim()) return undefined;
  try {
    const v = JSON.parse(text);
    if ((typeof v !== 'object' || v === null || Array.isArray(v)) && typeof v !== 'boolean') {
      errors[key] = `${name} must be a JSON Schema object`;
      return undefined;
    }
    return v;
  } catch (err) {
    errors[key] = `${name} is not JSON: ${/** @type {Error} */ (err).message}`;
    return undefined;
  }
}

/**
 * Checks a capability as typed in the editor and compiles its handler code
 * (the body of an async function of input, ctx and sleep).
 * @param {CapabilitySpec} c
 * @returns {{ ok: true, compiled: Compiled } | { ok: false, errors: FieldErrors }}
 */
export function compileCapability(c) {
  /** @type {FieldErrors} */
  const errors = {};
  if (!TYPE_RE.test(c.type)) errors.type = 'a type is namespace/name with a lower-case namespace, e.g. core/demo.echo';
  if (!Number.isInteger(c.concurrency) || c.concurrency < 1) errors.concurrency = 'concurrency is an integer >= 1';
  const inputSchema = parseSchema(c.inputSchema, 'inputSchema', errors, 'inputSchema');
  const outputSchema = parseSchema(c.outputSchema, 'outputSchema', errors, 'outputSchema');
  /** @type {Function | null} */
  let fn = null;
  try {
    fn = new AsyncFunction('input', 'ctx', 'sleep', c.code);
  } catch (err) {
    errors.code = `handler code does not compile: ${/** @type {Error} */ (err).message}`;
  }
  if (Object.keys(errors).length || !fn) return { ok: false, errors };
  const body = fn;
  return {
    ok: true,
    compiled: {
      reg: {
        type: c.type,
        scope: c.scopeUser.trim() ? { onBehalfOf: c.scopeUser.trim() } : 'any',
        concurrency: c.concurrency,
        ...(c.description ? { description: c.description } : {}),
        ...(inputSchema !== undefined ? { inputSchema } : {}),
        ...(outputSchema !== undefined ? { outputSchema } : {}),
      },
      run: (input, ctx) => body(input, ctx, sleep),
    },
  };
}

// What a user handler may return or throw besides plain values and Errors.
// Each entry: `make(ctx)` is the handler's body (it returns or throws the
// strange value); `expect` is the lease's terminal frame per PROTOCOL.md rule
// 7 and the README: the SDK treats a returned value with Promise semantics (a
// thenable whose `then` throws is a rejection), any throw that is not
// ctx.fail() is `nack retryable`, ctx.fail() is `nack terminal` whatever its
// arguments, an output JSON cannot carry is `nack terminal INVALID_OUTPUT`.
// `settles: false`: the handler never settles; stop() ends the lease.
// `async: true`: the value is a thenable (or reads as one): it settles a few
// microtasks later, as Promise semantics say.


function revokedProxy() {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

const retryable = { type: 'nack', kind: 'retryable' };
const terminal = { type: 'nack', kind: 'terminal' };
const invalidOutput = { type: 'nack', kind: 'terminal', code: 'INVALID_OUTPUT' };
const ok = { type: 'ack', output: 'fine' };

class MessageGetterThrows extends Error {
  get message() { throw new Error('message getter exploded'); }
}

/** @type {Record<string, { make: (ctx: any) => unknown, expect?: any, settles?: boolean, async?: boolean }>} */
export const STRANGE = {
  // ---- returned thenables (Promise semantics) ----
  'then-throws': { async: true, make: () => ({ then() { throw new Error('then exploded'); } }), expect: retryable },
  'then-getter-throws': { async: true, make: () => ({ get then() { throw new Error('then getter exploded'); } }), expect: retryable },
  'then-resolves-then-throws': { async: true, make: () => ({ then(/** @type {any} */ res) { res('fine'); throw new Error('after resolve'); } }), expect: ok },
  'then-rejects-with-revoked-proxy': { async: true, make: () => ({ then(/** @type {any} */ _res, /** @type {any} */ rej) { rej(revokedProxy()); } }), expect: retryable },
  'then-resolves-to-throwing-thenable': { async: true, make: () => ({ then(/** @type {any} */ res) { res({ then() { throw new Error('inner then exploded'); } }); } }), expect: retryable },
  'promise-subclass-then-throws': {
    async: true,
    make: () => {
      class P extends Promise {
        then() { throw new Error('subclass then exploded'); }
      }
      return P.resolve('x');
    },
    expect: retryable,
  },
  'thenable-never-calls-back': { make: () => ({ then() {} }), settles: false },
  'never-settling-promise': { make: () => new Promise(() => {}), settles: false },
  // ---- revoked proxies ----
  'returned-revoked-proxy': { async: true, make: () => revokedProxy(), expect: { type: 'nack', kind: ['retryable', 'terminal'] } },
  'thrown-revoked-proxy': { make: () => { throw revokedProxy(); }, expect: retryable },
  'rejected-with-revoked-proxy': { async: true, make: () => Promise.reject(revokedProxy()), expect: retryable },
  // ---- non-Error throws ----
  'thrown-string': { make: () => { throw 'a string'; }, expect: { ...retryable, reason: 'a string' } },
  'thrown-null': { make: () => { throw null; }, expect: retryable },
  'thrown-undefined': { make: () => { throw undefined; }, expect: retryable },
  'thrown-symbol': { make: () => { throw Symbol('sym'); }, expect: retryable },
  'thrown-number': { make: () => { throw 42; }, expect: retryable },
  'thrown-null-prototype-object': { make: () => { throw Object.create(null); }, expect: retryable },
  'thrown-object-message-getter-throws': { make: () => { throw { get message() { throw new Error('no'); } }; }, expect: retryable },
  'thrown-error-message-getter-throws': { make: () => { throw new MessageGetterThrows(); }, expect: retryable },
  'thrown-object-tojson-and-tostring-throw': {
    make: () => { throw { toJSON() { throw new Error('toJSON'); }, toString() { throw new Error('toString'); } }; },
    expect: retryable,
  },
  'rejected-with-string': { async: true, make: () => Promise.reject('rejected string'), expect: { ...retryable, reason: 'rejected string' } },
  // ---- outputs JSON cannot carry ----
  'output-bigint': { make: () => ({ n: 10n }), expect: invalidOutput },
  'output-cycle': {
    make: () => {
      /** @type {any} */
      const o = { a: 1 };
      o.self = o;
      return o;
    },
    expect: invalidOutput,
  },
  'output-tojson-throws': { make: () => ({ toJSON() { throw new Error('toJSON exploded'); } }), expect: invalidOutput },
  'output-getter-throws': { make: () => ({ get x() { throw new Error('getter exploded'); } }), expect: invalidOutput },
  'output-proxy-ownkeys-throws': {
    make: () => new Proxy({}, { ownKeys() { throw new Error('ownKeys exploded'); } }),
    expect: invalidOutput,
  },
  'output-function': { make: () => () => 1, expect: { type: 'ack', output: null } },
  // ---- ctx.fail with strange arguments: still the user's terminal verdict ----
  'fail-null-reason': { make: (ctx) => ctx.fail(null), expect: terminal },
  'fail-object-reason': { make: (ctx) => ctx.fail({ why: 'object' }, { code: 'OBJ' }), expect: { ...terminal, code: 'OBJ' } },
  'fail-symbol-reason': { make: (ctx) => ctx.fail(Symbol('why')), expect: terminal },
  'fail-revoked-proxy-reason': { make: (ctx) => ctx.fail(revokedProxy()), expect: terminal },
  'fail-code-getter-throws': { make: (ctx) => ctx.fail('bad', { get code() { throw new Error('code getter'); } }), expect: terminal },
  'fail-revoked-proxy-opts': { make: (ctx) => ctx.fail('bad', revokedProxy()), expect: terminal },
  'fail-numeric-code': { make: (ctx) => ctx.fail('bad', { code: 7 }), expect: terminal },
  // ---- ctx.progress with strange updates (the lease itself returns 'fine') ----
  'progress-strange-updates': {
    make: (ctx) => {
      const cyc = /** @type {any} */ ({});
      cyc.self = cyc;
      for (const u of [null, undefined, 42, 'text', Symbol('s'), revokedProxy(), { get percent() { throw new Error('percent getter'); } },
        { percent: NaN, message: 5 }, { percent: Infinity }, { percent: '50' }, { data: 10n }, { data: cyc },
        { data: { toJSON() { throw new Error('toJSON'); } } }, { message: 'cut \uD83D' }, { data: undefined }, { percent: -1e308 },
        new Proxy({}, { get() { throw new Error('proxy get'); } }), Object.create(null)]) {
        ctx.progress(/** @type {any} */ (u));
      }
      return 'fine';
    },
    expect: ok,
  },
  'progress-proxy-then-fine': {
    make: (ctx) => {
      ctx.progress(new Proxy({ percent: 5 }, { has() { throw new Error('has'); }, getOwnPropertyDescriptor() { throw new Error('gopd'); } }));
      return 'fine';
    },
    expect: ok,
  },
};

export const STRANGE_NAMES = Object.keys(STRANGE);

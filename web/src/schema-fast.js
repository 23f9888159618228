// The JS twin of the core's schema fast path (src/neuron/schema_fast_path.h),
// for values that reach a capability as objects (a custom Transport's task
// input, a handler's output): it answers only "is this value *certainly*
// valid?", so the common case needs no JSON text and no trip into wasm.
// "No" means "not sure": the caller hands the value's JSON to the core, which
// checks it (valijson stays the authority for every failure and every
// message). So a mistake here could only accept a value valijson would
// reject: web/test/schema-fast.test.js checks, on generated schemas and
// values, that this never happens.
//
// Subset (as in C++): type, properties, required, additionalProperties, items
// (one schema), enum/const (strings, booleans, null), minimum, maximum,
// exclusiveMinimum/exclusiveMaximum (numbers), minLength/maxLength (ASCII
// strings), minItems/maxItems, minProperties/maxProperties, boolean schemas,
// and the annotations title, description, default, examples, $comment,
// $schema. A value is judged as JSON.stringify would write it, so anything
// that is not plain JSON (undefined, functions, toJSON, a lone surrogate, a
// number JSON cannot spell or writes otherwise: -0) is "not sure": a value it
// vouches for is also plain JSON (host.js relies on that).

const NULL = 1, BOOLEAN = 2, OBJECT = 4, ARRAY = 8, STRING = 16, NUMBER = 32, INTEGER = 64, ANY = 127;
const TYPE_BITS = { null: NULL, boolean: BOOLEAN, object: OBJECT, array: ARRAY, string: STRING, number: NUMBER | INTEGER, integer: INTEGER };
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$comment', '$schema']);
const COUNTS = ['minLength', 'maxLength', 'minItems', 'maxItems', 'minProperties', 'maxProperties'];
const BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
const LIMIT = 2 ** 53;
const hasOwn = Object.prototype.hasOwnProperty;

/**
 * True when `str` has no lone UTF-16 surrogate (without isWellFormed: when it
 * has no surrogate at all, which errs on the safe side).
 * @type {(str: string) => boolean}
 */
export const isWellFormed = typeof ''.isWellFormed === 'function'
  ? (str) => str.isWellFormed()
  : (str) => !/[\ud800-\udfff]/.test(str);

/**
 * @typedef {{
 *   never?: boolean, types: number, props: Map<string, Node> | null, required: string[],
 *   additional: boolean | Node, items: Node | null, enumValues: unknown[] | null,
 *   minimum?: number, maximum?: number, exclusiveMinimum?: number, exclusiveMaximum?: number,
 *   minLength?: number, maxLength?: number, minItems?: number, maxItems?: number,
 *   minProperties?: number, maxProperties?: number, bounded: boolean,
 * }} Node
 */

/**
 * The fast check of a JSON Schema, or null when the schema uses anything
 * outside the subset (the core then checks every value).
 * @param {string} text the schema's JSON, as the core compiles it
 * @returns {((value: unknown) => boolean) | null}
 */
export function compileFastCheck(text) {
  // A lone surrogate in the schema (JSON.stringify escapes only those as
  // \udXXX) is read differently by valijson: the core decides there.
  if (/\\u[dD][89a-fA-F]/.test(text)) return null;
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const root = node(json);
  if (!root) return null;
  const valid = compile(root);
  return (value) => {
    try {
      return protoClean() && valid(value, 0);
    } catch {
      return false;  // a getter or a proxy threw: not sure
    }
  };
}

/** @param {any} s @returns {Node | null} */
function node(s) {
  /** @type {Node} */
  const n = { types: ANY, props: null, required: [], additional: true, items: null, enumValues: null, bounded: false };
  if (typeof s === 'boolean') {
    n.never = !s;
    return n;
  }
  if (s === null || typeof s !== 'object' || Array.isArray(s)) return null;
  for (const k of Object.keys(s)) {
    const v = s[k];
    if (ANNOTATIONS.has(k)) continue;
    if (k === 'type') {
      let types = 0;
      const list = Array.isArray(v) ? v : [v];
      for (const t of list) {
        if (typeof t !== 'string') return null;
        types |= hasOwn.call(TYPE_BITS, t) ? TYPE_BITS[/** @type {keyof TYPE_BITS} */ (t)] : 0;
      }
      if (types === 0) return null;
      n.types = types;
    } else if (k === 'properties') {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return null;
      n.props = new Map();
      for (const name of Object.keys(v)) {
        const child = node(v[name]);
        if (!child) return null;
        // Only well-formed names are declared here, so a key that matches one
        // needs no check of its own; a key with a lone surrogate is never
        // declared, and the check is not sure of it (valid()).
        if (isWellFormed(name) && !n.props.has(name)) n.props.set(name, child);  // the first wins, as in C++
      }
    } else if (k === 'required') {
      if (!Array.isArray(v) || v.some((r) => typeof r !== 'string')) return null;
      n.required = v;
    } else if (k === 'additionalProperties') {
      if (typeof v === 'boolean') {
        n.additional = v;
      } else {
        const child = node(v);
        if (!child) return null;
        n.additional = child;
      }
    } else if (k === 'items') {
      if (Array.isArray(v)) return null;
      const child = node(v);
      if (!child) return null;
      n.items = child;
    } else if (k === 'enum' || k === 'const') {
      const list = k === 'enum' ? v : [v];
      if (!Array.isArray(list)) return null;
      if (list.some((e) => e !== null && typeof e !== 'string' && typeof e !== 'boolean')) return null;
      if (n.enumValues) return null;  // both enum and const
      n.enumValues = list;
    } else if (BOUNDS.includes(k)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || (Number.isInteger(v) && Math.abs(v) >= LIMIT)) return null;
      /** @type {any} */ (n)[k] = v;
      n.bounded = true;
    } else if (COUNTS.includes(k)) {
      if (!Number.isSafeInteger(v) || v < 0) return null;
      /** @type {any} */ (n)[k] = v;
    } else {
      return null;  // format, pattern, $ref, allOf, ...: the core
    }
  }
  return n;
}

/**
 * Near a bound, a number's decimal text (the value's or the bound's) may read
 * back a unit in the last place apart in the core: not sure there. Integers
 * below 2^53 read back exactly.
 * @param {number} a @param {number} b
 */
function near(a, b) {
  return Math.abs(a - b) <= Math.max(Math.abs(a), Math.abs(b)) * 1e-12;
}

/** @typedef {(v: unknown, depth: number) => boolean} Check */

/** @type {Check} */
const NEVER = () => false;

// Each node compiles to a check of its own, a closure over its children's
// checks: a node that only names a type is one line, an object's members
// are checked by objectMembers. Each judges exactly as the general one,
// check(), would for its node.
/** @type {Check} */
const stringCheck = (v, depth) => depth <= 32 && typeof v === 'string' && isWellFormed(v);
/** @type {Check} */
const booleanCheck = (v, depth) => depth <= 32 && typeof v === 'boolean';
/** @type {Check} As the core reads JSON.stringify's text, digits only is an integer; -0 is written 0. */
const integerCheck = (v, depth) => depth <= 32 && typeof v === 'number' && Number.isSafeInteger(v) && !Object.is(v, -0);
/** @type {Check} */
const numberCheck = (v, depth) => depth <= 32 && typeof v === 'number' && Number.isFinite(v) && !Object.is(v, -0);

/**
 * @param {Node} n
 * @returns {Check}
 */
function compile(n) {
  if (n.never) return NEVER;
  const plainLeaf = !n.props && !n.required.length && n.additional === true && !n.items && !n.enumValues && !n.bounded &&
    COUNTS.every((k) => /** @type {any} */ (n)[k] === undefined);
  if (plainLeaf) {
    if (n.types === STRING) return stringCheck;
    if (n.types === BOOLEAN) return booleanCheck;
    if (n.types === INTEGER) return integerCheck;
    if (n.types === (NUMBER | INTEGER)) return numberCheck;
  }
  return check(n);
}

/**
 * The general check of a node: any mix of types, enum, bounds.
 * @param {Node} n
 * @returns {Check}
 */
function check(n) {
  const { types, enumValues } = n;
  /** @type {((o: Record<string, unknown>, depth: number) => boolean) | null} */
  let members = null;
  /** @type {((a: unknown[], depth: number) => boolean) | null} */
  let elements = null;
  const bounds = [n.minimum, n.maximum, n.exclusiveMinimum, n.exclusiveMaximum];
  return (v, depth) => {
    if (depth > 32) return false;
    let type;
    switch (typeof v) {
      case 'string':
        if (!isWellFormed(v)) return false;
        type = STRING;
        break;
      case 'boolean':
        type = BOOLEAN;
        break;
      case 'number':
        // -0: JSON writes 0, so a value kept as it is would differ from its JSON.
        if (!Number.isFinite(v) || Object.is(v, -0)) return false;
        // As the core reads JSON.stringify's text: digits only is an integer.
        if (Number.isSafeInteger(v)) type = INTEGER;
        else if (types & NUMBER) type = NUMBER;
        else return false;
        break;
      case 'object':
        if (v === null) type = NULL;
        else if (Array.isArray(v)) {
          if ('toJSON' in v) return false;  // JSON.stringify writes what it returns
          type = ARRAY;
        } else if (Object.getPrototypeOf(v) === Object.prototype && !('toJSON' in v)) type = OBJECT;
        else return false;
        break;
      default:
        return false;
    }
    if (!(types & type)) return false;
    if (enumValues && !enumValues.includes(v)) return false;
    switch (type) {
      case INTEGER:
      case NUMBER: {
        if (!n.bounded) return true;
        const d = /** @type {number} */ (v);
        if (Math.abs(d) >= LIMIT) return false;
        for (const b of bounds) {
          if (b !== undefined && near(d, b) && !(Number.isInteger(d) && Number.isInteger(b))) return false;
        }
        return (n.minimum === undefined || d >= n.minimum) && (n.maximum === undefined || d <= n.maximum) &&
          (n.exclusiveMinimum === undefined || d > n.exclusiveMinimum) &&
          (n.exclusiveMaximum === undefined || d < n.exclusiveMaximum);
      }
      case STRING: {
        if (n.minLength === undefined && n.maxLength === undefined) return true;
        const s = /** @type {string} */ (v);
        if (!/^[\x00-\x7f]*$/.test(s)) return false;  // code point counting: the core
        return (n.minLength === undefined || s.length >= n.minLength) && (n.maxLength === undefined || s.length <= n.maxLength);
      }
      case ARRAY:
        // Compiled on first use: the check of any value (plainCheck) holds itself.
        return (elements ??= arrayElements(n))(/** @type {unknown[]} */ (v), depth);
      case OBJECT:
        return (members ??= objectMembers(n))(/** @type {Record<string, unknown>} */ (v), depth);
      default:
        return true;
    }
  };
}

/**
 * The elements of an array that is one already.
 * @param {Node} n
 * @returns {(a: unknown[], depth: number) => boolean}
 */
function arrayElements(n) {
  const items = n.items ? compile(n.items) : plainCheck;
  const { minItems, maxItems } = n;
  return (a, depth) => {
    if ((minItems !== undefined && a.length < minItems) || (maxItems !== undefined && a.length > maxItems)) return false;
    for (let i = 0; i < a.length; i++) {
      if (!items(a[i], depth + 1)) return false;  // a hole: not sure
    }
    return true;
  };
}

/** Objects with more keys than this are not remembered (objectMembers). */
const REMEMBERED_KEYS = 64;

/**
 * The members of a plain object. Values of one shape list their keys in one
 * order, so the keys (and the check of each) of the last object that passed
 * are kept: a key equal to the one remembered at its place needs no lookup.
 * @param {Node} n
 * @returns {(o: Record<string, unknown>, depth: number) => boolean}
 */
function objectMembers(n) {
  /** @type {Map<string, Check>} */
  const props = new Map();
  for (const [name, child] of n.props ?? []) props.set(name, compile(child));
  const extra = n.additional === true ? plainCheck : n.additional === false ? NEVER : compile(n.additional);
  const { minProperties, maxProperties } = n;
  const requiredNames = new Set(n.required);
  /** @param {string} key @returns {Check} */
  const member = (key) => props.get(key) ?? (isWellFormed(key) ? extra : NEVER);  // not written as is: not sure
  /** @type {string[]} */
  let keys = [];
  /** @type {Check[]} */
  let checks = [];
  /** @type {number[]} 1 where the key is a required name */
  let isRequired = [];
  return (o, depth) => {
    let size = 0;
    let requiredSeen = 0;
    /** @type {string[] | null} */
    let newKeys = null;
    /** @type {Check[]} */
    let newChecks = [];
    /** @type {number[]} */
    let newIsRequired = [];
    // for...in lists the keys JSON.stringify writes: each own enumerable
    // key once, as the prototype is Object.prototype with none of its own
    // (protoClean), so counting the required names among them tells whether
    // the JSON has each.
    for (const key in o) {
      const value = o[key];
      if (value === undefined) return false;  // not written: not sure
      let c;
      if (newKeys === null && keys[size] === key) {
        c = checks[size];
        requiredSeen += isRequired[size];
      } else {
        if (newKeys === null) {
          newKeys = keys.slice(0, size);
          newChecks = checks.slice(0, size);
          newIsRequired = isRequired.slice(0, size);
        }
        c = member(key);
        const r = requiredNames.has(key) ? 1 : 0;
        requiredSeen += r;
        if (size < REMEMBERED_KEYS) {
          newKeys.push(key);
          newChecks.push(c);
          newIsRequired.push(r);
        }
      }
      if (!c(value, depth + 1)) return false;
      size++;
    }
    if ((minProperties !== undefined && size < minProperties) || (maxProperties !== undefined && size > maxProperties)) return false;
    if (requiredSeen !== requiredNames.size) return false;
    if (newKeys !== null) {
      keys = newKeys;
      checks = newChecks;
      isRequired = newIsRequired;
    }
    return true;
  };
}

const ANY_NODE = /** @type {Node} */ ({ types: ANY, props: null, required: [], additional: true, items: null, enumValues: null, bounded: false });

/**
 * Whether Object.prototype has no enumerable key (someone may have added
 * one): for...in of a plain object then lists only its own keys, as
 * JSON.stringify writes them. Otherwise every check is not sure.
 */
function protoClean() {
  for (const _ in Object.prototype) return false;
  return true;
}

/** Any plain JSON value (a part no keyword constrains). */
const plainCheck = check(ANY_NODE);

/**
 * True when `v` is what JSON.parse(JSON.stringify(v)) would give back (a
 * handler's `undefined`: null): plain objects and arrays of well-formed
 * strings, finite numbers (not -0), booleans and null, nothing with a
 * toJSON, at most 33 levels deep. False where looking throws (a getter, a
 * revoked proxy): then JSON.stringify says why.
 * @param {unknown} v
 */
export function isPlainJson(v) {
  try {
    return v === undefined || (protoClean() && plainCheck(v, 0));
  } catch {
    return false;
  }
}

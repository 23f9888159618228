// Namespace authorization (seed README table) and the gateway-side capability policy.
//
import { hasKind, kindsOf } from './auth.js';

// Decision per advertised capability, in this order:
//   1. namespace (first segment) not one of core/desktop/org/user   -> rejected ("unknown namespace")
//      org/* or user/* with fewer than 3 segments                    -> rejected (no tool name)
//   2. identity kind not allowed for the namespace                   -> 403 (whole register refused)
//   3. org id / user id in the type not the token's                  -> 403
//   4. scope not the one the namespace requires                      -> 403
//   5. type listed in the gateway's disabledTypes                    -> rejected ("disabled by gateway policy")
//   6. the same type twice in one register                           -> rejected ("duplicate capability type")
// A 403 names the capability; nothing of that register is applied.

/** @typedef {import('./auth.js').Identity} Identity */
/** @typedef {'any' | { onBehalfOf: string }} Scope */
/** @typedef {{ type: string, scope: Scope, concurrency: number, description?: string, inputSchema?: unknown, outputSchema?: unknown }} Capability */

export const CAPABILITY_TYPE_RE = /^[a-z0-9][a-z0-9-]*(\/[A-Za-z0-9][A-Za-z0-9:_-]*){1,3}(\.[A-Za-z0-9_-]+)?$/;

/** @param {unknown} t */
export function isCapabilityType(t) {
  return typeof t === 'string' && t.length <= 200 && CAPABILITY_TYPE_RE.test(t);
}

/** @param {Scope} s */
export function scopeText(s) {
  return s === 'any' ? 'any' : `{onBehalfOf: ${s.onBehalfOf}}`;
}

/**
 * Does a disabled-types pattern match? 'a/b' exact, 'a/*' prefix.
 * @param {string[]} patterns
 * @param {string} type
 */
export function isDisabled(patterns, type) {
  return patterns.some((p) => (p.endsWith('/*') ? type.startsWith(p.slice(0, -1)) : p === type));
}

/**
 * @param {Identity} id
 * @param {Capability} cap
 * @param {{ disabledTypes: string[] }} settings
 * @returns {{ ok: true } | { forbidden: string } | { rejected: string }}
 */
export function checkCapability(id, cap, settings) {
  const base = cap.type.split('.')[0];
  const seg = base.split('/');
  const ns = seg[0];
  const who = `identity kind '${kindsOf(id).join('+')}'`;
  const need = (/** @type {string} */ what) => `capability '${cap.type}': ${what}`;
  switch (ns) {
    case 'core':
      if (!hasKind(id, 'service')) return { forbidden: need(`${who} may not advertise core/* (server service identities only)`) };
      if (cap.scope !== 'any') return { forbidden: need(`core/* requires scope 'any', got ${scopeText(cap.scope)}`) };
      break;
    case 'desktop':
      if (!hasKind(id, 'desktop')) return { forbidden: need(`${who} may not advertise desktop/* (attested desktop binaries only)`) };
      if (!id.attested) return { forbidden: need(`desktop token is not attested`) };
      if (cap.scope === 'any' || cap.scope.onBehalfOf !== id.userId)
        return { forbidden: need(`desktop/* requires scope {onBehalfOf: ${id.userId}} (the token's user), got ${scopeText(cap.scope)}`) };
      break;
    case 'org':
      if (seg.length < 3) return { rejected: `org/* capabilities must be org/{orgId}/{name}` };
      if (!hasKind(id, 'org-extension')) return { forbidden: need(`${who} may not advertise org/* (tenant extensions only)`) };
      if (seg[1] !== id.orgId) return { forbidden: need(`org '${seg[1]}' is not the token's org '${id.orgId}'`) };
      if (cap.scope !== 'any') return { forbidden: need(`org/* requires scope 'any', got ${scopeText(cap.scope)}`) };
      break;
    case 'user':
      if (seg.length < 3) return { rejected: `user/* capabilities must be user/{userId}/{name}` };
      if (!hasKind(id, 'user-extension')) return { forbidden: need(`${who} may not advertise user/* (personal extensions only)`) };
      if (seg[1] !== id.userId) return { forbidden: need(`user '${seg[1]}' is not the token's user '${id.userId}'`) };
      if (cap.scope === 'any' || cap.scope.onBehalfOf !== id.userId)
        return { forbidden: need(`user/* requires scope {onBehalfOf: ${id.userId}}, got ${scopeText(cap.scope)}`) };
      break;
    default:
      return { rejected: `unknown namespace '${ns}/' (allowed: core, desktop, org, user)` };
  }
  if (isDisabled(settings.disabledTypes, cap.type)) return { rejected: 'disabled by gateway policy' };
  return { ok: true };
}

/**
 * Apply the policy to a whole register.
 * @param {Identity} id
 * @param {Capability[]} caps
 * @param {{ disabledTypes: string[] }} settings
 * @returns {{ forbidden: string } | { effective: Capability[], rejected: { type: string, reason: string }[] }}
 */
export function applyPolicy(id, caps, settings) {
  /** @type {Capability[]} */
  const effective = [];
  /** @type {{ type: string, reason: string }[]} */
  const rejected = [];
  const seen = new Set();
  for (const cap of caps) {
    const r = checkCapability(id, cap, settings);
    if ('forbidden' in r) return { forbidden: r.forbidden };
    if ('rejected' in r) { rejected.push({ type: cap.type, reason: r.rejected }); continue; }
    if (seen.has(cap.type)) { rejected.push({ type: cap.type, reason: 'duplicate capability type' }); continue; }
    seen.add(cap.type);
    effective.push(cap);
  }
  return { effective, rejected };
}

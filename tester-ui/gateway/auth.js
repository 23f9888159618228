// Bearer JWT (HS256) verification and dev-token minting.
//
// Claims (all tokens):
//   iss    'neuron-dev-gateway'          (checked)
//   aud    'bigbrain-gateway'            (checked)
//   sub    identity id (service name, desktop install id, extension id)
//   kind   'service' | 'desktop' | 'org-extension' | 'user-extension', or a list of them for a
//          combined identity that may advertise what each of its kinds may
//   exp/iat as usual (exp checked)
// Per kind:
//   service         no extra claims                    -> may advertise core/* with scope 'any'
//   desktop         userId (required), attested: true  -> desktop/* with scope { onBehalfOf: userId }
//   org-extension   orgId (required)                   -> org/{orgId}/* with scope 'any'
//   user-extension  userId (required)                  -> user/{userId}/* with scope { onBehalfOf: userId }

import { SignJWT, jwtVerify } from 'jose';

export const ISSUER = 'neuron-dev-gateway';
export const AUDIENCE = 'bigbrain-gateway';
export const KINDS = /** @type {const} */ (['service', 'desktop', 'org-extension', 'user-extension']);

/**
 * @typedef {'service'|'desktop'|'org-extension'|'user-extension'} IdentityKind
 * @typedef {{ kind: IdentityKind | IdentityKind[], sub: string, userId?: string, orgId?: string, attested?: boolean }} Identity
 *   `kind` is one kind, or a list for a combined identity (e.g. a desktop app that also runs a
 *   service worker: ['service', 'desktop']), which may advertise what each of its kinds may.
 */

/** @param {Identity} id @returns {IdentityKind[]} */
export function kindsOf(id) {
  return Array.isArray(id.kind) ? id.kind : [id.kind];
}

/** @param {Identity} id @param {IdentityKind} kind */
export function hasKind(id, kind) {
  return kindsOf(id).includes(kind);
}

/**
 * Check a kind claim: one kind or a non-empty list of distinct kinds.
 * @param {unknown} kind @returns {IdentityKind[] | null}
 */
function parseKinds(kind) {
  const list = Array.isArray(kind) ? kind : [kind];
  if (!list.length || new Set(list).size !== list.length) return null;
  return list.every((k) => KINDS.includes(/** @type {any} */ (k))) ? /** @type {IdentityKind[]} */ (list) : null;
}

/** @param {string} secret */
function keyOf(secret) {
  return new TextEncoder().encode(secret);
}

/**
 * Mint a dev token.
 * @param {string} secret
 * @param {{ kind: IdentityKind | IdentityKind[], sub?: string, userId?: string, orgId?: string, attested?: boolean, ttl?: string|number }} claims
 *   ttl: jose duration string ('12h', '30d') or seconds; default '30d'.
 * @returns {Promise<string>}
 */
export async function mintToken(secret, claims) {
  const kinds = parseKinds(claims.kind);
  if (!kinds) throw new Error(`unknown kind '${claims.kind}' (expected one of ${KINDS.join(', ')}, or a list of distinct ones)`);
  /** @type {Record<string, unknown>} */
  const payload = { kind: kinds.length === 1 ? kinds[0] : kinds };
  if (kinds.includes('desktop') || kinds.includes('user-extension')) {
    if (!claims.userId) throw new Error(`kind '${kinds.find((k) => k === 'desktop' || k === 'user-extension')}' needs a userId`);
    payload.userId = claims.userId;
  }
  if (kinds.includes('desktop')) payload.attested = claims.attested ?? true;
  if (kinds.includes('org-extension')) {
    if (!claims.orgId) throw new Error(`kind 'org-extension' needs an orgId`);
    payload.orgId = claims.orgId;
  }
  const sub = claims.sub ?? kinds.map((k) => defaultSub(k, claims)).join('+');
  const ttl = claims.ttl ?? '30d';
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(typeof ttl === 'number' ? Math.floor(Date.now() / 1000) + ttl : ttl)
    .sign(keyOf(secret));
}

/**
 * @param {IdentityKind} kind
 * @param {{ userId?: string, orgId?: string }} c
 */
function defaultSub(kind, c) {
  switch (kind) {
    case 'service': return 'service:dev-worker';
    case 'desktop': return `desktop:${c.userId}`;
    case 'org-extension': return `org-extension:${c.orgId}`;
    case 'user-extension': return `user-extension:${c.userId}`;
  }
  return 'unknown';
}

export class AuthError extends Error {}

/**
 * Verify the Authorization header and return the identity.
 * @param {string} secret
 * @param {string|undefined} header
 * @returns {Promise<Identity>}
 * @throws {AuthError}
 */
export async function authenticate(secret, header) {
  if (!header) throw new AuthError('missing Authorization header');
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw new AuthError('Authorization header must be "Bearer <token>"');
  let payload;
  try {
    ({ payload } = await jwtVerify(m[1], keyOf(secret), {
      algorithms: ['HS256'],
      issuer: ISSUER,
      audience: AUDIENCE,
    }));
  } catch (err) {
    throw new AuthError(`invalid token: ${/** @type {Error} */ (err).message}`);
  }
  const kinds = parseKinds(payload.kind);
  if (!kinds) throw new AuthError(`invalid token: claim 'kind' must be one of ${KINDS.join(', ')} (or a list of them)`);
  if (typeof payload.sub !== 'string' || !payload.sub) throw new AuthError(`invalid token: claim 'sub' missing`);
  /** @type {Identity} */
  const id = { kind: kinds.length === 1 ? kinds[0] : kinds, sub: payload.sub };
  if (kinds.includes('desktop') || kinds.includes('user-extension')) {
    if (typeof payload.userId !== 'string' || !payload.userId) throw new AuthError(`invalid token: kind '${kinds.join('+')}' needs claim 'userId'`);
    id.userId = payload.userId;
  }
  if (kinds.includes('desktop')) id.attested = payload.attested === true;
  if (kinds.includes('org-extension')) {
    if (typeof payload.orgId !== 'string' || !payload.orgId) throw new AuthError(`invalid token: kind 'org-extension' needs claim 'orgId'`);
    id.orgId = payload.orgId;
  }
  return id;
}

/**
 * A stable key for "the same identity": kinds, sub and the user / org the token speaks for.
 * @param {Identity} id
 */
export function principalOf(id) {
  return JSON.stringify([kindsOf(id).join('+'), id.sub, id.userId ?? null, id.orgId ?? null]);
}

// Errors the SDK throws or emits. Every one says what was wrong and what to do.

/** The gateway refused `register` (HTTP 403): the token may not advertise a capability's namespace. */
export class RegistrationError extends Error {
  /** @param {string} message @param {number} [status] */
  constructor(message, status = 403) {
    super(message);
    this.name = 'RegistrationError';
    /** HTTP status of the refusal (403). */
    this.status = status;
    this.code = 'registration-rejected';
  }
}

/** Transport, stream or frame trouble, emitted as `error` (the SDK recovers by itself). */
export class NeuronError extends Error {
  /** @param {string} message @param {string} code @param {number} [status] */
  constructor(message, code, status = 0) {
    super(message);
    this.name = 'NeuronError';
    /** Stable kebab-case code, e.g. 'stream-failed', 'malformed-frame', 'post-failed'. */
    this.code = code;
    /** HTTP status involved, if any (0 otherwise). */
    this.status = status;
  }
}

/** Thrown by ctx.fail(): ends the lease with nack(kind='terminal'). */
export class TaskFailure extends Error {
  /** @param {string} reason @param {string | undefined} code */
  constructor(reason, code) {
    super(reason);
    this.name = 'TaskFailure';
    this.code = code;
  }
}

/** @param {string} code @param {string} message @param {number} [status] */
export function errorFromCore(code, message, status = 0) {
  if (code === 'registration-rejected') return new RegistrationError(message, status || 403);
  return new NeuronError(message, code, status);
}

/** A readable message for anything thrown. @param {unknown} err */
export function messageOf(err) {
  // Whatever was thrown (a revoked Proxy, a getter that throws, a Symbol),
  // this returns a string and never throws.
  try {
    if (err instanceof Error) return String(err.message || err.name);
    if (typeof err === 'string') return err;
    return JSON.stringify(err) ?? String(err);
  } catch {
    try {
      return String(err);
    } catch {
      return `a ${typeof err} that cannot be described`;
    }
  }
}

/**
 * One catalogue of error codes for the whole program. Callers test `code` or
 * the class, never the message text.
 */
export const ErrorCodes = {
  /** A backend id is configured twice. */
  DuplicateBackend: 'DS_DUPLICATE_BACKEND',
  /** A Backend document names an implementation that does not exist. */
  UnknownBackendType: 'DS_UNKNOWN_BACKEND_TYPE',
  /** A backend does not support a node's type. */
  UnsupportedType: 'DS_UNSUPPORTED_TYPE',
  /** A secret reference could not be resolved. */
  SecretUnavailable: 'DS_SECRET_UNAVAILABLE',
  /** The state store cannot be opened (lock, lineage, schema). */
  StateStore: 'DS_STATE_STORE',
  /** The state store is locked by another process. */
  StateLocked: 'DS_STATE_LOCKED',
  /** Command-line usage error (exit 64). */
  Usage: 'DS_USAGE',
  /** A fault policy or circuit-breaker configuration failed validation. */
  InvalidPolicy: 'DS_INVALID_POLICY',
  /** A persisted node-machine snapshot is not one this program knows. */
  InvalidNodeSnapshot: 'DS_INVALID_NODE_SNAPSHOT',
  /** Something named on the command line (a script hash) is not there, or matches several. */
  NotFound: 'DS_NOT_FOUND',
  /** What the command asks for is refused as things stand (a script not reviewed, or whose text does not match its hash). */
  Refused: 'DS_REFUSED',
  /** The user interrupted the command (Ctrl-C at a question) before it changed anything: exit 130. */
  Interrupted: 'DS_INTERRUPTED',
  /** A failure the program did not expect (a bug): exit 70. */
  Internal: 'DS_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** Base class: every error we throw carries a code, context fields and its cause. */
export class DesiredStateError extends Error {
  readonly code: ErrorCode;
  readonly context: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; context?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = Object.freeze({ ...(options.context ?? {}) });
  }
}

/** Exhaustiveness guard for switches over unions. */
export function assertNever(value: never, what = 'value'): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}

/** A readable message from anything thrown. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** The words for system errors a user can put right, by code. */
export const SYSTEM_REASONS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'a loop of symbolic links',
};

/**
 * Why a file system call failed, in words with the system's code (`permission denied (EACCES)`),
 * `words` first; the message of an error that has no code.
 */
export function systemReason(err: unknown, words: Readonly<Record<string, string>> = {}): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === undefined) return errorMessage(err);
  return `${words[code] ?? SYSTEM_REASONS[code] ?? 'the system refused'} (${code})`;
}
